//! End to end: the binary's limit flags, over TCP on loopback.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;

use common::{Client, BIN, WAIT};

/// The binary serving on a free port with `flags`; killed when dropped.
struct Served {
    child: Child,
    log: Receiver<String>,
    addr: SocketAddr,
}

impl Served {
    fn start(data_dir: &std::path::Path, flags: &[&str]) -> Served {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--ws2017",
                "127.0.0.1:0",
                "--seed",
                "1",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(flags)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the switchboard binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, log) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[switchboard] {line}");
                let _ = tx.send(line);
            }
        });
        let mut served = Served {
            child,
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = served.wait_for_log("ws2017 listening on ");
        served.addr = (line.split("ws2017 listening on ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        served
    }

    fn wait_for_log(&self, needle: &str) -> String {
        loop {
            match self.log.recv_timeout(WAIT) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?} within {WAIT:?}"),
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn connections_past_the_per_address_cap_are_refused_and_the_close_is_logged() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let flags = ["--max-connections-per-ip", "2"];
    let server = Served::start(&data_dir.path().join("data"), &flags);
    let first = Client::connect(server.addr, "first");
    first.greeting();
    let second = Client::connect(server.addr, "second");
    second.greeting();
    let third = Client::connect(server.addr, "third");
    third.expect("-ERR 'too many connections from your address'");
    third.expect_closed();
    let closed = server.wait_for_log("connection closed");
    assert!(
        closed.contains("reason=\"too many connections\""),
        "{closed}"
    );
    // A freed slot is taken again.
    drop(first);
    server.wait_for_log("reason=\"peer closed\"");
    let fourth = Client::connect(server.addr, "fourth");
    fourth.greeting();
}
