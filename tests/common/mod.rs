//! Shared by the end-to-end tests: the real `switchboard` binary as a child process, a
//! ws2017 client over TCP on loopback, and the admin commands of the binary.

#![allow(dead_code)]

pub mod ims;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any one expected line, log line or exit may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// Serve flags that lift, for tests that flood the store on purpose, the rate limit and the mailbox share on stored messages.
pub const UNLIMITED_STORES: &[&str] = &[
    "--durable-rate-per-conn",
    "1000000/100000",
    "--durable-rate-per-ip",
    "1000000/100000",
    "--offline-share-percent",
    "100",
];

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// The environment variable naming the runtime the servers of these tests run on
/// (`serve --runtime`): `smol` when unset. CI runs the suite once per runtime.
pub const RUNTIME_VAR: &str = "SWITCHBOARD_TEST_RUNTIME";

/// The runtime under test, from [`RUNTIME_VAR`]; `smol` when unset.
pub fn runtime() -> &'static str {
    match std::env::var(RUNTIME_VAR).as_deref() {
        Err(_) | Ok("" | "smol") => "smol",
        Ok("mio") => "mio",
        Ok(other) => panic!("{RUNTIME_VAR}={other:?}: expected smol or mio"),
    }
}

/// The log target (crate) of the runtime under test, e.g. `switchboard_mio`.
pub fn runtime_crate() -> String {
    format!("switchboard_{}", runtime())
}

/// `RUST_LOG` for tests that watch each commit, whichever the runtime.
pub const COMMIT_DEBUG_LOG: &str =
    "info,switchboard::conn=debug,switchboard_store::commit_log=debug";

/// `RUST_LOG` of the tests' servers unless they say otherwise: `info`, with each
/// connection's opening and closing (logged at debug).
pub const CONN_LOG: &str = "info,switchboard::conn=debug";

/// How to start the server beyond its data directory.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Seconds between pings (and their timeout is five times that).
    pub ping_interval: Option<&'static str>,
    /// `RUST_LOG`, [`CONN_LOG`] when `None`.
    pub log: Option<&'static str>,
    /// Leave out `--seed 1`, so the server draws its seed from the OS.
    pub drawn_seed: bool,
}

/// The server process; killed when dropped, also when the test panics.
pub struct Switchboard {
    pub child: Child,
    /// Its stderr, line by line, from where the test last looked.
    log: Receiver<String>,
    /// Every line of its stderr so far.
    all_log: Arc<Mutex<Vec<String>>>,
    pub addr: SocketAddr,
    /// The address of its arsc listener.
    pub arsc_addr: SocketAddr,
    /// The ims listener's address.
    pub ims_addr: SocketAddr,
    pub data_dir: PathBuf,
}

impl Switchboard {
    /// Starts the binary on a free port with fast pings and cheap password hashes, and
    /// waits for its listener.
    pub fn start(data_dir: &Path) -> Switchboard {
        Switchboard::start_with(data_dir, ServerOptions::default())
    }

    pub fn start_with(data_dir: &Path, options: ServerOptions) -> Switchboard {
        Switchboard::start_with_flags(data_dir, options, &[])
    }

    /// [`start_with`](Self::start_with), with more flags of `serve`.
    pub fn start_with_flags(
        data_dir: &Path,
        options: ServerOptions,
        flags: &[&str],
    ) -> Switchboard {
        let mut command = Switchboard::command(data_dir, &options);
        command.args(flags);
        Switchboard::spawn(command, data_dir)
    }

    /// Starts `command` (a server on `data_dir`, from [`Switchboard::command`] with more
    /// set on it, say) and waits for its listener and admin socket.
    pub fn spawn(mut command: Command, data_dir: &Path) -> Switchboard {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the switchboard binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines, log) = mpsc::channel();
        let all_log = Arc::new(Mutex::new(Vec::new()));
        let all = all_log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[switchboard] {line}");
                if let Ok(mut all) = all.lock() {
                    all.push(line.clone());
                }
                // Keep draining after the test stops listening, so the server never blocks.
                let _ = lines.send(line);
            }
        });
        let mut server = Switchboard {
            child,
            log,
            all_log,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            arsc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ims_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_owned(),
        };
        let line = server.wait_for_log("ws2017 listening on ");
        let addr = line
            .split("ws2017 listening on ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| c.is_whitespace() || c == '"').next())
            .and_then(|addr| addr.parse().ok());
        server.addr = addr.unwrap_or_else(|| panic!("no address in {line:?}"));
        let line = server.wait_for_log("arsc listening on ");
        let addr = line
            .split("arsc listening on ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| c.is_whitespace() || c == '"').next())
            .and_then(|addr| addr.parse().ok());
        server.arsc_addr = addr.unwrap_or_else(|| panic!("no address in {line:?}"));
        let line = server.wait_for_log("ims listening on ");
        let addr = line
            .split("ims listening on ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| c.is_whitespace() || c == '"').next())
            .and_then(|addr| addr.parse().ok());
        server.ims_addr = addr.unwrap_or_else(|| panic!("no address in {line:?}"));
        server.wait_for_log("admin socket listening");
        server
    }

    /// The command line of a server on `data_dir`.
    pub fn command(data_dir: &Path, options: &ServerOptions) -> Command {
        let interval = options.ping_interval.unwrap_or("0.2");
        let timeout = (interval.parse::<f64>().expect("seconds") * 5.0).to_string();
        let args: Vec<String> = [
            "serve",
            "--runtime",
            runtime(),
            "--ws2017",
            "127.0.0.1:0",
            "--arsc",
            "127.0.0.1:0",
            "--ims",
            "127.0.0.1:0",
            "--opcode",
            "127.0.0.1:0",
            "--ws2017-ping-interval",
            interval,
            "--ws2017-ping-timeout",
            &timeout,
            "--hash-cost",
            "cheap",
            "--data-dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([data_dir.display().to_string()])
        .chain(
            (!options.drawn_seed)
                .then(|| ["--seed".to_owned(), "1".to_owned()])
                .into_iter()
                .flatten(),
        )
        .collect();
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("RUST_LOG", options.log.unwrap_or(CONN_LOG));
        command
    }

    /// The first log line from now on that contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> String {
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

    /// How many log lines so far contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        let all = self.all_log.lock().expect("log lock");
        all.iter().filter(|line| line.contains(needle)).count()
    }

    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.all_log.lock().expect("log lock").clone()
    }

    /// The address the opcode listener bound, from its log line.
    #[allow(dead_code)]
    pub fn opcode_addr(&self) -> SocketAddr {
        let needle = "opcode listening on ";
        let line = match self.log_lines().into_iter().find(|l| l.contains(needle)) {
            Some(line) => line,
            None => self.wait_for_log(needle),
        };
        let addr = line
            .split(needle)
            .nth(1)
            .and_then(|rest| rest.split(|c: char| c.is_whitespace() || c == '"').next())
            .and_then(|addr| addr.parse().ok());
        addr.unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    pub fn connect(&self, name: &str) -> Client {
        Client::connect(self.addr, name)
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits pid_t")
    }

    /// Sends `signal` to the server process.
    #[cfg(unix)]
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child process has no memory effects.
        let sent = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(sent, 0, "kill failed");
    }

    /// Kills the server with SIGKILL and reaps it.
    #[cfg(unix)]
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Asks the server to stop (SIGINT) and waits for its exit status.
    #[cfg(unix)]
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGINT);
        self.wait_for_exit()
    }

    /// Waits for the process to exit by itself.
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn assert_running(&mut self) {
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

/// What an admin command printed and how it exited.
#[derive(Debug)]
pub struct AdminRun {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl AdminRun {
    /// The stdout lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Asserts exit status 0 and returns the stdout lines.
    pub fn ok(&self) -> Vec<&str> {
        assert_eq!(self.status, Some(0), "{self:?}");
        self.lines()
    }

    /// Asserts exit status 1 and returns the stdout lines.
    pub fn refused(&self) -> Vec<&str> {
        assert_eq!(self.status, Some(1), "{self:?}");
        self.lines()
    }
}

/// Runs `switchboard <args> --data-dir <data_dir>` with cheap hashes, feeding `stdin`.
///
/// Admin commands refuse a data dir that holds no store; for the tests' convenience, when
/// `data_dir` does not exist yet this first creates an empty store there, as the first
/// `switchboard serve` would. [`admin_exact`] does not.
pub fn admin(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> AdminRun {
    if !data_dir.exists() {
        drop(switchboard_store::Store::open(data_dir).expect("create a store"));
    }
    admin_exact(data_dir, args, stdin)
}

/// [`admin`] on `data_dir` exactly as it is.
pub fn admin_exact(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> AdminRun {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--hash-cost", "cheap"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run an admin command");
    let mut input = child.stdin.take().expect("piped stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    let output = child.wait_with_output().expect("admin command output");
    AdminRun {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A ws2017 client. A thread reads its lines and answers the server's `cping`s (until told
/// not to), so the test can take its time between steps.
pub struct Client {
    pub name: String,
    lines: Receiver<String>,
    writer: Arc<Mutex<TcpStream>>,
    pub answer_pings: Arc<AtomicBool>,
}

impl Client {
    pub fn connect(addr: SocketAddr, name: &str) -> Client {
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

    pub fn send_raw(&self, bytes: &[u8]) {
        let mut stream = self.writer.lock().expect("writer lock");
        stream.write_all(bytes).expect("send");
    }

    pub fn send(&self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// The next line other than `cping`.
    pub fn next(&self) -> String {
        match self.lines.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("{}: nothing within {WAIT:?}", self.name),
            Err(RecvTimeoutError::Disconnected) => panic!("{}: connection closed", self.name),
        }
    }

    /// The next line within `wait`, if any.
    pub fn next_within(&self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    pub fn expect(&self, want: &str) {
        assert_eq!(self.next(), want, "{} got an unexpected line", self.name);
    }

    /// Nothing arrives for `wait`.
    pub fn expect_nothing(&self, wait: Duration) {
        if let Some(line) = self.next_within(wait) {
            panic!("{}: expected nothing, got {line:?}", self.name);
        }
    }

    /// The server closes the connection, with no more lines before that.
    pub fn expect_closed(&self) {
        match self.lines.recv_timeout(WAIT) {
            Err(RecvTimeoutError::Disconnected) => {}
            Ok(line) => panic!("{}: expected the close, got {line:?}", self.name),
            Err(RecvTimeoutError::Timeout) => panic!("{}: still open after {WAIT:?}", self.name),
        }
    }

    pub fn greeting(&self) {
        let line = self.next();
        assert!(line.starts_with("+OK "), "{}: greeting {line:?}", self.name);
    }

    /// Connects, is greeted and takes its name.
    pub fn login(server: &Switchboard, name: &str) -> Client {
        let client = server.connect(name);
        client.greeting();
        client.send(&format!("uname {name}"));
        client.expect(&format!("+OK uname you are {name}"));
        client
    }
}

impl Client {
    /// Connects, is greeted and takes its name, accepting any `+OK uname` confirmation
    /// (the tests that use it are not about the wording).
    pub fn join(server: &Switchboard, name: &str) -> Client {
        let client = server.connect(name);
        client.greeting();
        client.send(&format!("uname {name}"));
        client.skip_until(|line| line.starts_with("+OK uname"));
        client
    }

    /// Reads lines until one satisfies `want`, which it returns; fails after [`WAIT`].
    pub fn skip_until(&self, want: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self.next();
            if want(&line) {
                return line;
            }
        }
    }

    /// The lines left until the server closes the connection.
    pub fn rest(&self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => return lines,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: still open after {WAIT:?}; read {lines:?}", self.name)
                }
            }
        }
    }
}

/// The path of the database in `data_dir`.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(switchboard_store::DB_FILE_NAME)
}

/// Opens the database with rusqlite directly, bypassing the store's code.
pub fn open_db(data_dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db_path(data_dir)).expect("open the database");
    conn.busy_timeout(WAIT).expect("busy timeout");
    conn
}

/// The offline messages in the database, `(sender, recipient, body)` in queue order, read
/// with SQL of the test's own.
pub fn offline_rows(data_dir: &Path) -> Vec<(String, String, String)> {
    let conn = open_db(data_dir);
    let mut statement = conn
        .prepare("SELECT sender, recipient, body FROM offline_messages ORDER BY seq")
        .expect("query offline messages");
    let rows = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("read offline messages");
    rows.collect::<Result<_, _>>()
        .expect("offline message rows")
}

/// Holds the database's write lock (an open `BEGIN IMMEDIATE` transaction) until dropped
/// or [`release`](Self::release)d: the server's commits wait for it (SQLite's busy timeout).
pub struct WriteLock(Option<rusqlite::Connection>);

impl WriteLock {
    pub fn take(data_dir: &Path) -> WriteLock {
        let conn = open_db(data_dir);
        conn.execute_batch("BEGIN IMMEDIATE")
            .expect("take the write lock");
        WriteLock(Some(conn))
    }

    pub fn release(mut self) {
        if let Some(conn) = self.0.take() {
            conn.execute_batch("ROLLBACK")
                .expect("release the write lock");
        }
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Ok(stream) = self.writer.lock() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}
