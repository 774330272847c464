//! The runtime over real TCP on loopback: deadlines, closes, backpressure, shutdown, the
//! store and the admin socket.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use switchboard_proto::{Config, Protocol};
use switchboard_smol::{Error, LockError, Options, Runtime};
use switchboard_store::credentials::Cost;
use switchboard_store::Store;
use tempfile::TempDir;

/// How long any single read may take before the test fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A runtime on its own thread with its own data directory, stopped when dropped.
struct TestServer {
    addr: SocketAddr,
    stop: smol::channel::Sender<()>,
    thread: Option<JoinHandle<Result<(), Error>>>,
    data_dir: TempDir,
}

fn options() -> Options {
    Options {
        seed: Some(7),
        hash_cost: Cost::cheap(),
        ..Options::default()
    }
}

impl TestServer {
    fn start(config: Config) -> TestServer {
        let data_dir = tempfile::tempdir().expect("temporary data dir");
        TestServer::start_in(config, data_dir)
    }

    fn start_in(config: Config, data_dir: TempDir) -> TestServer {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let runtime = Runtime::bind(
            config,
            data_dir.path(),
            &[(Protocol::Ws2017, listen)],
            options(),
        )
        .expect("bind");
        assert_eq!(runtime.seed(), switchboard_proto::Seed::number(7));
        let addrs = runtime.local_addrs();
        assert_eq!(addrs.len(), 1);
        let (protocol, addr) = addrs[0];
        assert_eq!(protocol, Protocol::Ws2017);
        assert_ne!(addr.port(), 0, "port 0 must be replaced by the bound port");
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let thread = thread::spawn(move || {
            runtime.run_until(async move {
                let _ = stopped.recv().await;
            })
        });
        TestServer {
            addr,
            stop,
            thread: Some(thread),
            data_dir,
        }
    }

    /// Stops the server and returns what `run_until` returned.
    fn stop(mut self) -> Result<(), Error> {
        self.stop_inner().expect("the runtime thread is running")
    }

    /// Stops the server and hands its data directory back.
    fn stop_keeping_data(mut self) -> TempDir {
        self.stop_inner()
            .expect("the runtime thread is running")
            .expect("clean stop");
        let placeholder = tempfile::tempdir().expect("temporary dir");
        std::mem::replace(&mut self.data_dir, placeholder)
    }

    fn stop_inner(&mut self) -> Option<Result<(), Error>> {
        let thread = self.thread.take()?;
        let _ = self.stop.try_send(());
        Some(thread.join().expect("the runtime thread panicked"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !thread::panicking() {
            self.stop_inner();
        }
    }
}

/// A line-oriented test client with read timeouts.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        Client {
            reader: BufReader::new(stream),
            writer,
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send");
    }

    /// The next line without its CRLF, or `None` at the end of the stream.
    fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("read failed (a hang?): {e}"),
        }
    }

    fn expect(&mut self, want: &str) {
        assert_eq!(self.line().as_deref(), Some(want));
    }

    fn greeting(&mut self) {
        let line = self.line().expect("a greeting");
        assert!(line.starts_with("+OK "), "greeting: {line:?}");
    }
}

fn config() -> Config {
    let mut config = Config::default();
    // Out of the way unless a test wants pings.
    config.ws2017.ping_interval = Duration::from_secs(60);
    config.ws2017.ping_timeout = Duration::from_secs(60);
    config
}

#[test]
fn deadlines_wake_the_core_and_pings_arrive() {
    let mut config = config();
    config.ws2017.ping_interval = Duration::from_millis(50);
    let server = TestServer::start(config);
    let mut client = Client::connect(server.addr);
    client.greeting();
    let started = Instant::now();
    for _ in 0..3 {
        client.expect("cping");
        client.send("cpong");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "three 50 ms pings took {:?}",
        started.elapsed()
    );
    drop(client);
    server.stop().expect("clean stop");
}

#[test]
fn an_unanswered_ping_closes_the_connection() {
    let mut config = config();
    config.ws2017.ping_interval = Duration::from_millis(50);
    config.ws2017.ping_timeout = Duration::from_millis(200);
    let server = TestServer::start(config);
    let mut client = Client::connect(server.addr);
    client.greeting();
    let started = Instant::now();
    while let Some(line) = client.line() {
        assert_eq!(line, "cping");
        assert!(started.elapsed() < Duration::from_secs(3), "never closed");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "closed too early"
    );
    server.stop().expect("clean stop");
}

#[test]
fn a_goodbye_is_flushed_before_the_close_even_after_a_half_close() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.send("uname alice");
    client.send("cquit");
    client.writer.shutdown(Shutdown::Write).expect("half-close");
    client.greeting();
    client.expect("+OK uname you are alice");
    client.expect("+OK cquit 'terminating tasks and disconnecting'");
    assert_eq!(client.line(), None);
    server.stop().expect("clean stop");
}

/// A last line and the peer's close arriving together (often within one wake-up, so one
/// readiness report for both) still end the session: the server reads to the end of the
/// stream, answers and closes, and the others hear the user leave.
#[test]
fn a_close_arriving_with_the_last_line_is_seen() {
    let server = TestServer::start(config());
    let mut watcher = Client::connect(server.addr);
    watcher.greeting();
    watcher.send("uname watcher");
    watcher.expect("+OK uname you are watcher");
    for i in 0..20 {
        let mut client = Client::connect(server.addr);
        client.greeting();
        client.send(&format!("uname z{i}"));
        client.writer.shutdown(Shutdown::Write).expect("half-close");
        client.expect(&format!("+OK uname you are z{i}"));
        assert_eq!(client.line(), None, "round {i}: the stream ends");
        // The watcher hears the login and then the departure.
        let joined = watcher.line().expect("a login notice");
        assert!(joined.contains(&format!("z{i}")), "round {i}: {joined:?}");
        let left = watcher.line().expect("a departure notice");
        assert!(left.contains(&format!("z{i}")), "round {i}: {left:?}");
    }
    server.stop().expect("clean stop");
}

#[test]
fn a_reader_that_stops_reading_is_disconnected_and_the_others_carry_on() {
    let mut config = config();
    config.outbound_limit_bytes = 64 * 1024;
    // Enough messages to fill the kernel's buffers for `slow` (a few hundred KiB when
    // the server writes in large pieces), not only the default burst of 20.
    let plenty = switchboard_proto::RateLimit {
        per_minute: 1_000_000,
        burst: 10_000,
    };
    config.limits.message_per_conn = plenty;
    config.limits.message_per_ip = plenty;
    let server = TestServer::start(config);

    let mut slow = Client::connect(server.addr);
    slow.greeting();
    slow.send("uname slow");
    slow.expect("+OK uname you are slow");
    // From here on `slow` reads nothing until the end.

    let mut fast = Client::connect(server.addr);
    fast.greeting();
    fast.send("uname fast");
    fast.expect("+OK uname you are fast");
    let (lines, fast_lines) = mpsc::channel();
    let mut fast_reader = fast.reader;
    let reader = thread::spawn(move || loop {
        let mut line = String::new();
        match fast_reader.read_line(&mut line) {
            Ok(n) if n > 0 => {
                if lines.send(line.trim_end().to_owned()).is_err() {
                    return;
                }
            }
            _ => return,
        }
    });

    // Each message makes the server queue about 4 KiB for `slow`. Once the kernel's
    // buffers are full, what the server queued stops being written, passes the 64 KiB
    // limit, and the server drops `slow`, telling `fast` that it left. `fast` reads all
    // the while, so it must not be taken for a slow reader however fast it sends.
    let body = "x".repeat(4000);
    let message = format!("chatm fast slow '{body}'\r\n");
    let started = Instant::now();
    let mut dropped = false;
    'sending: for _ in 0..10_000 {
        fast.writer.write_all(message.as_bytes()).expect("send");
        while let Ok(line) = fast_lines.try_recv() {
            if line == "cquit slow" {
                dropped = true;
                break 'sending;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "slow was never dropped"
        );
    }
    if !dropped {
        dropped = fast_lines
            .recv_timeout(READ_TIMEOUT)
            .into_iter()
            .chain(fast_lines.try_iter())
            .any(|line| line == "cquit slow");
    }
    assert!(dropped, "slow was never dropped");

    // `fast` still works.
    fast.writer.write_all(b"cgetu\r\n").expect("send");
    let listed = loop {
        let line = fast_lines.recv_timeout(READ_TIMEOUT).expect("cgetu answer");
        if line.starts_with("+OK cgetu") {
            break line;
        }
    };
    assert_eq!(listed, "+OK cgetu fast");

    // `slow`'s socket was closed: what the kernel buffered ends, it does not hang.
    let mut buf = vec![0; 1 << 16];
    let mut total = 0usize;
    loop {
        match slow.reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("slow's connection was not closed: {e} after {total} bytes"),
        }
    }

    fast.writer.shutdown(Shutdown::Both).expect("close");
    reader.join().expect("reader thread");
    server.stop().expect("clean stop");
}

/// A connection that never stops sending (its socket always has more to read) does not
/// hold up the others: another client's request is answered while the flood goes on. The
/// driver reads connections in turn, and takes its poller's news of newly readable ones
/// however busy it is.
#[test]
fn a_client_that_never_stops_sending_does_not_hold_up_the_others() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let server = TestServer::start(config());
    let mut flooder = Client::connect(server.addr);
    flooder.greeting();
    flooder.send("uname flooder");
    flooder.expect("+OK uname you are flooder");
    let mut other = Client::connect(server.addr);
    other.greeting();
    other.send("uname other");
    other.expect("+OK uname you are other");

    // The flood: pongs (which need no answer) as fast as the socket takes them, for up
    // to 20 s.
    let flooding = Arc::new(AtomicBool::new(true));
    let mut flood_out = flooder.writer.try_clone().expect("clone");
    let flood = {
        let flooding = flooding.clone();
        thread::spawn(move || {
            let pongs = "cpong\r\n".repeat(4096);
            let started = Instant::now();
            while flooding.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(20) {
                if flood_out.write_all(pongs.as_bytes()).is_err() {
                    break;
                }
            }
            flooding.store(false, Ordering::SeqCst);
        })
    };
    // Let the flood fill the server's list of connections to read.
    thread::sleep(Duration::from_millis(500));
    assert!(flooding.load(Ordering::SeqCst), "the flood ended early");

    for _ in 0..5 {
        let asked = Instant::now();
        other.send("cping");
        other.expect("+OK cpong");
        assert!(
            flooding.load(Ordering::SeqCst),
            "answered only once the flood was over ({:?})",
            asked.elapsed()
        );
    }
    flooding.store(false, Ordering::SeqCst);
    flood.join().expect("flood thread");
    flooder.writer.shutdown(Shutdown::Both).expect("close");
    server.stop().expect("clean stop");
}

#[test]
fn shutdown_closes_connections_and_returns_ok() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.greeting();
    client.send("uname alice");
    client.expect("+OK uname you are alice");
    let addr = server.addr;
    let started = Instant::now();
    // The client closes when it sees the server close, so shutdown need not wait its grace.
    let closer = thread::spawn(move || {
        let bye = client.line();
        let end = client.line();
        drop(client);
        (bye, end)
    });
    server.stop().expect("clean stop");
    // Told in ws2017's way, then closed.
    assert_eq!(
        closer.join().expect("client thread"),
        (Some("-ERR 'the server is shutting down'".to_owned()), None)
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn binding_a_taken_address_names_it() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let err = Runtime::bind(
        config(),
        data_dir.path(),
        &[(Protocol::Ws2017, addr)],
        options(),
    )
    .expect_err("the address is taken");
    assert!(
        err.to_string().contains(&format!("ws2017 on {addr}")),
        "{err}"
    );
    match err {
        Error::Listen { source, .. } => assert_eq!(source.kind(), ErrorKind::AddrInUse),
        other => panic!("expected Error::Listen, got {other:?}"),
    }
}

#[test]
fn a_crowd_connecting_at_once_waits_in_the_backlog() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("address");
    // Bound, not yet running: nothing accepts, so every connection waits in the backlog.
    let runtime = Runtime::bind(
        config(),
        data_dir.path(),
        &[(Protocol::Ws2017, listen)],
        options(),
    )
    .expect("bind");
    let addr = runtime.local_addrs()[0].1;
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    // std's listeners queue 128; these wait in a backlog of at least 1024 (or what the
    // kernel allows), and none is dropped.
    let crowd = 600.min(somaxconn);
    let connected: Vec<TcpStream> = (0..crowd)
        .map(|i| {
            TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                .unwrap_or_else(|e| panic!("connection {i} of {crowd} was not queued: {e}"))
        })
        .collect();
    assert_eq!(connected.len(), crowd);
    drop(runtime);
}

#[test]
fn a_second_runtime_on_the_same_data_dir_is_refused() {
    let server = TestServer::start(config());
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let err = Runtime::bind(
        config(),
        server.data_dir.path(),
        &[(Protocol::Ws2017, listen)],
        options(),
    )
    .expect_err("the data dir is in use");
    assert!(
        matches!(err, Error::DataDir(LockError::Busy { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("in use"), "{err}");
    server.stop().expect("clean stop");
}

/// One admin command over the admin socket: its data lines and its final line.
#[cfg(unix)]
fn admin(data_dir: &Path, line: &str) -> (Vec<String>, String) {
    let path = switchboard_smol::admin_socket_path(data_dir);
    let mut stream = std::os::unix::net::UnixStream::connect(&path).expect("admin socket");
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("timeout");
    stream
        .write_all(format!("{line}\r\n").as_bytes())
        .expect("send");
    let mut data = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line.expect("an answer (a hang?)");
        if line.starts_with("ok ") || line.starts_with("err ") {
            return (data, line);
        }
        data.push(line);
    }
    panic!("the admin socket closed before the answer; data: {data:?}");
}

#[cfg(unix)]
#[test]
fn the_admin_socket_is_private_and_changes_reach_the_store() {
    use std::os::unix::fs::PermissionsExt;

    let server = TestServer::start(config());
    let socket = switchboard_smol::admin_socket_path(server.data_dir.path());
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");

    let (_, answer) = admin(server.data_dir.path(), "user add bob secret level=1");
    assert_eq!(answer, "ok account bob created");
    let (rows, answer) = admin(server.data_dir.path(), "user list");
    assert_eq!(answer, "ok 1 account");
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].starts_with("user bob level=1 banned=no"),
        "{rows:?}"
    );

    // A message for the offline account is acknowledged once it is committed.
    let mut alice = Client::connect(server.addr);
    alice.greeting();
    alice.send("uname alice");
    alice.expect("+OK uname you are alice");
    alice.send("chatm alice bob 'see you'");
    alice.expect("+OK chatm 'message stored'");
    drop(alice);

    let data_dir = server.stop_keeping_data();
    assert!(!socket.exists(), "the admin socket outlived the server");
    let state = Store::open(data_dir.path())
        .and_then(|store| store.load())
        .expect("load the store");
    assert!(state.accounts.values().any(|a| a.name.as_str() == "bob"));
    let bodies: Vec<&str> = state
        .offline
        .values()
        .flatten()
        .map(|m| m.body.as_str())
        .collect();
    assert_eq!(bodies, ["see you"]);

    // A restart on the same directory serves the same accounts.
    let server = TestServer::start_in(config(), data_dir);
    let (_, answer) = admin(server.data_dir.path(), "user list");
    assert_eq!(answer, "ok 1 account");
    server.stop().expect("clean stop");
}
