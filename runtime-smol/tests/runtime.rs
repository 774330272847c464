//! The runtime over real TCP on loopback: deadlines, closes, backpressure, shutdown.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use switchboard_proto::{Config, Protocol};
use switchboard_smol::{Options, Runtime};

/// How long any single read may take before the test fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A runtime on its own thread, stopped when dropped.
struct TestServer {
    addr: SocketAddr,
    stop: smol::channel::Sender<()>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl TestServer {
    fn start(config: Config) -> TestServer {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let options = Options {
            seed: Some(7),
            ..Options::default()
        };
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let runtime = Runtime::bind(config, &[(Protocol::Ws2017, listen)], options).expect("bind");
        assert_eq!(runtime.seed(), 7);
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
        }
    }

    /// Stops the server and returns what `run_until` returned.
    fn stop(mut self) -> io::Result<()> {
        self.stop_inner().expect("the runtime thread is running")
    }

    fn stop_inner(&mut self) -> Option<io::Result<()>> {
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
    client.expect("+OK uname 'you are' alice");
    client.expect("+OK cquit 'terminating tasks and disconnecting'");
    assert_eq!(client.line(), None);
    server.stop().expect("clean stop");
}

#[test]
fn a_reader_that_stops_reading_is_disconnected_and_the_others_carry_on() {
    let mut config = config();
    config.outbound_limit_bytes = 64 * 1024;
    let server = TestServer::start(config);

    let mut slow = Client::connect(server.addr);
    slow.greeting();
    slow.send("uname slow");
    slow.expect("+OK uname 'you are' slow");
    // From here on `slow` reads nothing until the end.

    let mut fast = Client::connect(server.addr);
    fast.greeting();
    fast.send("uname fast");
    fast.expect("+OK uname 'you are' fast");
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

#[test]
fn shutdown_closes_connections_and_returns_ok() {
    let server = TestServer::start(config());
    let mut client = Client::connect(server.addr);
    client.greeting();
    client.send("uname alice");
    client.expect("+OK uname 'you are' alice");
    let addr = server.addr;
    let started = Instant::now();
    // The client closes when it sees the server close, so shutdown need not wait its grace.
    let closer = thread::spawn(move || {
        let end = client.line();
        drop(client);
        end
    });
    server.stop().expect("clean stop");
    assert_eq!(closer.join().expect("client thread"), None);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn binding_a_taken_address_names_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let err = Runtime::bind(config(), &[(Protocol::Ws2017, addr)], Options::default())
        .expect_err("the address is taken");
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(
        err.to_string().contains(&format!("ws2017 on {addr}")),
        "{err}"
    );
}
