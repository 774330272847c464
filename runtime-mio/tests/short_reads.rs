//! Reads stop at a short read (the socket gave all it held) instead of reading again
//! only to hear `WouldBlock`: whatever arrives afterwards must still be read, since
//! edge-triggered readiness fires again on every arrival. A line split over two arrivals
//! and lines arriving one by one are all answered, and so is a burst longer than one read.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use switchboard_mio::{Options, Runtime, Shutdown};
use switchboard_proto::{Config, Protocol};
use switchboard_store::credentials::Cost;

#[test]
fn input_arriving_after_a_short_read_is_still_read() {
    let dir = tempfile::tempdir().expect("temporary dir");
    let options = Options {
        seed: Some(1),
        hash_cost: Cost::cheap(),
        shutdown_grace: Duration::from_secs(2),
        ..Options::default()
    };
    let listeners = [(Protocol::Ws2017, "127.0.0.1:0".parse().expect("addr"))];
    let runtime = Runtime::bind(
        Config::default(),
        &dir.path().join("data"),
        &listeners,
        options,
    )
    .expect("bind");
    let addr = runtime.local_addrs()[0].1;
    let (shutdown, trigger) = Shutdown::new().expect("self-pipe");
    let server = std::thread::spawn(move || runtime.run_until(shutdown));

    let mut client = TcpStream::connect(addr).expect("connect");
    client.set_nodelay(true).expect("nodelay");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut lines = BufReader::new(client.try_clone().expect("clone"));
    let mut line = String::new();
    lines.read_line(&mut line).expect("greeting");
    assert!(line.starts_with("+OK"), "{line:?}");
    client.write_all(b"uname a\r\n").expect("write");
    line.clear();
    lines.read_line(&mut line).expect("login");
    assert!(line.starts_with("+OK uname"), "{line:?}");

    // Half a line, read short; the rest later, on a new edge.
    client.write_all(b"cpi").expect("write");
    std::thread::sleep(Duration::from_millis(100));
    client.write_all(b"ng\r\n").expect("write");
    line.clear();
    lines
        .read_line(&mut line)
        .expect("the split line is answered");
    assert_eq!(line, "+OK cpong\r\n");

    // One line per arrival, each read short.
    for i in 0..20 {
        client.write_all(b"cping\r\n").expect("write");
        std::thread::sleep(Duration::from_millis(5));
        line.clear();
        lines.read_line(&mut line).expect("each line is answered");
        assert_eq!(line, "+OK cpong\r\n", "line {i}");
    }

    // More than one read's worth (64 KiB) at once: a full read is followed by another,
    // since no new edge would come for what is already there.
    let many = 12_000;
    client.write_all(&b"cping\r\n".repeat(many)).expect("write");
    for i in 0..many {
        line.clear();
        lines
            .read_line(&mut line)
            .expect("every line of the burst is answered");
        assert_eq!(line, "+OK cpong\r\n", "line {i} of the burst");
    }
    drop(lines);
    drop(client);

    // A last line and the peer's close arriving together: one edge for both, so the short
    // read must not end the reads (the close is read as the end of the stream, and the
    // server answers, closes and the client sees the end). Repeated, since the two only
    // sometimes arrive within one wake-up.
    for i in 0..20 {
        let mut client = TcpStream::connect(addr).expect("connect");
        client
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let mut lines = BufReader::new(client.try_clone().expect("clone"));
        let mut line = String::new();
        lines.read_line(&mut line).expect("greeting");
        client
            .write_all(format!("uname z{i}\r\n").as_bytes())
            .expect("write");
        client
            .shutdown(std::net::Shutdown::Write)
            .expect("half-close");
        line.clear();
        lines.read_line(&mut line).expect("answered");
        assert!(line.starts_with("+OK uname"), "round {i}: {line:?}");
        // Whatever else comes (a ping), the stream ends soon after.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        let ended = loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) => break true,
                Ok(_) if std::time::Instant::now() < deadline => {}
                _ => break false,
            }
        };
        assert!(ended, "round {i}: the server never saw the close");
    }
    trigger.fire();
    server.join().expect("no panic").expect("a clean stop");
}
