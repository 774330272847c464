//! End to end: the real `switchboard` binary, three ws2017 clients over TCP on loopback.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long any one expected line, log line or exit may take before the test fails.
const WAIT: Duration = Duration::from_secs(5);

/// The server process; killed when dropped, also when the test panics.
struct Switchboard {
    child: Child,
    /// Its stderr, line by line.
    log: Receiver<String>,
    addr: SocketAddr,
    _data_dir: TempDir,
}

impl Switchboard {
    /// Starts the binary on a free port with fast pings and waits for its listener.
    fn start() -> Switchboard {
        let data_dir = tempfile::tempdir().expect("temporary data dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["--ws2017", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path().join("data"))
            .args([
                "--ws2017-ping-interval",
                "0.2",
                "--ws2017-ping-timeout",
                "1",
            ])
            .args(["--seed", "1"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the switchboard binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines, log) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[switchboard] {line}");
                // Keep draining after the test stops listening, so the server never blocks.
                let _ = lines.send(line);
            }
        });
        let mut server = Switchboard {
            child,
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            _data_dir: data_dir,
        };
        let line = server.wait_for_log("ws2017 listening on ");
        let addr = line
            .split("ws2017 listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok());
        server.addr = addr.unwrap_or_else(|| panic!("no address in {line:?}"));
        assert!(
            server.data_dir().is_dir(),
            "--data-dir was not created: {}",
            server.data_dir().display()
        );
        server
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self._data_dir.path().join("data")
    }

    /// The first log line from now on that contains `needle`.
    fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no log line with {needle:?}: {e}"),
            }
        }
    }

    fn connect(&self, name: &str) -> Client {
        Client::connect(self.addr, name)
    }

    /// Waits for the process to exit by itself.
    fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn assert_running(&mut self) {
        let status = self.child.try_wait().expect("wait for the server");
        assert!(status.is_none(), "the server died: {status:?}");
    }
}

impl Drop for Switchboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ws2017 client. A thread reads its lines and answers the server's `cping`s (until told
/// not to), so the test can take its time between steps.
struct Client {
    name: String,
    lines: Receiver<String>,
    writer: Arc<Mutex<TcpStream>>,
    answer_pings: Arc<AtomicBool>,
}

impl Client {
    fn connect(addr: SocketAddr, name: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        let reader = stream.try_clone().expect("clone the stream");
        let writer = Arc::new(Mutex::new(stream));
        let answer_pings = Arc::new(AtomicBool::new(true));
        let (tx, lines) = mpsc::channel();
        let ponger = (writer.clone(), answer_pings.clone());
        thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(n) if n > 0 => {}
                    _ => return,
                }
                let Some(text) = line.strip_suffix("\r\n") else {
                    let _ = tx.send(format!("(no CRLF) {line}"));
                    continue;
                };
                if text == "cping" {
                    if ponger.1.load(Ordering::SeqCst) {
                        let mut stream = ponger.0.lock().expect("writer lock");
                        let _ = stream.write_all(b"cpong\r\n");
                    }
                    continue;
                }
                if tx.send(text.to_owned()).is_err() {
                    return;
                }
            }
        });
        Client {
            name: name.to_owned(),
            lines,
            writer,
            answer_pings,
        }
    }

    fn send_raw(&self, bytes: &[u8]) {
        let mut stream = self.writer.lock().expect("writer lock");
        stream.write_all(bytes).expect("send");
    }

    fn send(&self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// The next line other than `cping`.
    fn next(&self) -> String {
        match self.lines.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("{}: nothing within {WAIT:?}", self.name),
            Err(RecvTimeoutError::Disconnected) => panic!("{}: connection closed", self.name),
        }
    }

    fn expect(&self, want: &str) {
        assert_eq!(self.next(), want, "{} got an unexpected line", self.name);
    }

    /// The server closes the connection, with no more lines before that.
    fn expect_closed(&self) {
        match self.lines.recv_timeout(WAIT) {
            Err(RecvTimeoutError::Disconnected) => {}
            Ok(line) => panic!("{}: expected the close, got {line:?}", self.name),
            Err(RecvTimeoutError::Timeout) => panic!("{}: still open after {WAIT:?}", self.name),
        }
    }

    fn greeting(&self) {
        let line = self.next();
        assert!(line.starts_with("+OK "), "{}: greeting {line:?}", self.name);
    }

    /// Connects, is greeted and takes its name.
    fn login(server: &Switchboard, name: &str) -> Client {
        let client = server.connect(name);
        client.greeting();
        client.send(&format!("uname {name}"));
        client.expect(&format!("+OK uname 'you are' {name}"));
        client
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Ok(stream) = self.writer.lock() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn three_clients_chat_rename_misbehave_time_out_and_quit() {
    let mut server = Switchboard::start();

    let alice = Client::login(&server, "alice");
    let bob = Client::login(&server, "bob");
    alice.expect("nuser bob");
    let carol = Client::login(&server, "carol");
    alice.expect("nuser carol");
    bob.expect("nuser carol");

    alice.send("cgetu");
    alice.expect("+OK cgetu alice bob carol");

    // A direct message, and bob's receipt relayed back to alice.
    alice.send("chatm alice bob 'hello bob'");
    alice.expect("+OK chatm 'message relayed'");
    bob.expect("chatm alice bob 'hello bob'");
    bob.send("chatr alice bob");
    alice.expect("chatr alice bob");

    // A rename is seen by the others.
    bob.send("uname robert");
    bob.expect("+OK uname robert");
    alice.expect("+OK nuser bob robert");
    carol.expect("+OK nuser bob robert");

    // Garbage gets an error, and the connection keeps working.
    alice.send("hello world");
    alice.expect("-ERR 'entered command does not exist'");
    alice.send("chatm alice");
    alice.expect("-ERR 'chatm is not a properly formatted command'");
    alice.send_raw(b"\xff\xfe garbage\r\n");
    alice.expect("-ERR '?? is not a properly formatted command'");
    alice.send("CGETU");
    alice.expect("+OK cgetu alice carol robert");

    // carol stops answering pings: she is dropped and the others are told.
    carol.answer_pings.store(false, Ordering::SeqCst);
    carol.expect_closed();
    alice.expect("cquit carol");
    bob.expect("cquit carol");
    server.wait_for_log("reason=\"timeout\"");

    // robert quits.
    bob.send("cquit");
    bob.expect("+OK cquit 'terminating tasks and disconnecting'");
    bob.expect_closed();
    alice.expect("cquit robert");

    alice.send("cgetu");
    alice.expect("+OK cgetu alice");
    server.assert_running();
}

#[cfg(unix)]
#[test]
fn sigint_shuts_down_cleanly() {
    let mut server = Switchboard::start();
    let client = Client::login(&server, "alice");

    let pid = libc::pid_t::try_from(server.child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) with a valid signal on our own child process has no memory effects.
    let sent = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(sent, 0, "kill failed");

    client.expect_closed();
    drop(client);
    let status = server.wait_for_exit();
    assert!(status.success(), "exit status {status:?}");
    assert!(TcpStream::connect(server.addr).is_err(), "still accepting");
}
