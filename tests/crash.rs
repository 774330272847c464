//! SIGKILL while clients create state: after a restart on the same data directory,
//! everything acknowledged is there, nothing is there twice, and no batch is half applied.

#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{admin, ServerOptions, Switchboard, UNLIMITED_STORES, WAIT};
use switchboard_store::Store;

/// Concurrent senders per round.
const CLIENTS: usize = 4;
/// Kill/restart cycles.
const ROUNDS: usize = 3;
/// Messages a sender may have sent and not yet seen acknowledged.
const WINDOW: usize = 16;
/// Messages a sender sends at most per round (the offline cap is 1000 per account).
const MOST: usize = 900;
/// Acknowledgements every sender must have seen before the kill, per round: early, midway
/// and late in the stream.
const ACKED_BEFORE_KILL: [usize; ROUNDS] = [25, 300, 600];

/// The account sender `client` of `round` leaves its messages for.
fn inbox(client: usize, round: usize) -> String {
    format!("inbox{client}r{round}")
}

/// The ws2017 name of sender `client` of `round`.
fn sender(client: usize, round: usize) -> String {
    format!("w{client}r{round}")
}

/// What one sender did.
#[derive(Clone, Copy, Debug, Default)]
struct Sent {
    sent: usize,
    acked: usize,
}

/// Sends `chatm <me> <to> 'm<k>'` for k = 0, 1, ... with up to [`WINDOW`] unacknowledged,
/// until the connection dies (the kill) or [`MOST`] are acknowledged. `acked` is updated as
/// acknowledgements arrive.
fn flood(addr: SocketAddr, me: String, to: String, acked: Arc<AtomicUsize>) -> Sent {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    let read = |reader: &mut BufReader<TcpStream>, line: &mut String| {
        line.clear();
        match reader.read_line(line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end().to_owned()),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!("{me}: no answer within {WAIT:?}")
            }
            Err(_) => None,
        }
    };
    stream
        .write_all(format!("uname {me}\r\n").as_bytes())
        .expect("send uname");
    let mut done = Sent::default();
    loop {
        let Some(line) = read(&mut reader, &mut line) else {
            return done;
        };
        // The confirmation's wording is not what this test is about.
        if line.starts_with("+OK uname") {
            break;
        }
    }
    loop {
        let mut burst = String::new();
        while done.sent - done.acked < WINDOW && done.sent < MOST {
            burst.push_str(&format!("chatm {me} {to} 'm{}'\r\n", done.sent));
            done.sent += 1;
        }
        if !burst.is_empty() && stream.write_all(burst.as_bytes()).is_err() {
            // The server is gone; the burst may or may not have left in part.
            return done;
        }
        if done.acked == MOST {
            return done;
        }
        let Some(line) = read(&mut reader, &mut line) else {
            return done;
        };
        match line.as_str() {
            "+OK chatm 'message stored'" => {
                done.acked += 1;
                acked.store(done.acked, Ordering::SeqCst);
            }
            "cping" => {
                if stream.write_all(b"cpong\r\n").is_err() {
                    return done;
                }
            }
            other if other.starts_with("nuser ") || other.starts_with("cquit ") => {}
            other => panic!("{me}: unexpected {other:?}"),
        }
    }
}

/// Checks the store against what every sender of rounds `..=last` did: for each, the
/// stored messages are `m0, m1, ...`, in order, each once, at least as many as were
/// acknowledged and no more than were sent.
fn check(data_dir: &Path, senders: &BTreeMap<(usize, usize), Sent>) {
    let state = Store::open(data_dir)
        .and_then(|store| store.load())
        .expect("load the store");
    for (&(client, round), done) in senders {
        let to = inbox(client, round);
        let me = sender(client, round);
        let stored: Vec<&str> = state
            .offline
            .values()
            .flatten()
            .filter(|m| m.to.as_str() == to)
            .map(|m| {
                assert_eq!(m.from.as_str(), me, "a message for {to} from someone else");
                m.body.as_str()
            })
            .collect();
        let expected: Vec<String> = (0..stored.len()).map(|k| format!("m{k}")).collect();
        assert_eq!(
            stored, expected,
            "{me}: the stored messages are not a prefix of what it sent"
        );
        assert!(
            stored.len() >= done.acked,
            "{me}: {} acknowledged, {} stored",
            done.acked,
            stored.len()
        );
        assert!(
            stored.len() <= done.sent,
            "{me}: {} sent, {} stored",
            done.sent,
            stored.len()
        );
        eprintln!(
            "{me}: sent {}, acknowledged {}, stored {}",
            done.sent,
            done.acked,
            stored.len()
        );
    }
}

#[test]
fn sigkill_loses_nothing_acknowledged_and_applies_no_batch_in_part() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    for round in 0..ROUNDS {
        for client in 0..CLIENTS {
            let name = inbox(client, round);
            admin(&data_dir, &["user", "add", &name, "--password", "pw"], None).ok();
        }
    }

    let mut senders = BTreeMap::new();
    for (round, &kill_at) in ACKED_BEFORE_KILL.iter().enumerate() {
        // Limits that stay out of the way: this floods one mailbox per sender from one
        // address as fast as the store commits, to test durability, not the limits.
        let mut server =
            Switchboard::start_with_flags(&data_dir, ServerOptions::default(), UNLIMITED_STORES);
        let counters: Vec<Arc<AtomicUsize>> = (0..CLIENTS)
            .map(|_| Arc::new(AtomicUsize::new(0)))
            .collect();
        let threads: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (addr, acked) = (server.addr, counters[client].clone());
                let (me, to) = (sender(client, round), inbox(client, round));
                thread::spawn(move || flood(addr, me, to, acked))
            })
            .collect();
        let started = Instant::now();
        while counters.iter().any(|c| c.load(Ordering::SeqCst) < kill_at) {
            assert!(started.elapsed() < WAIT, "the senders are too slow");
            thread::sleep(Duration::from_millis(1));
        }
        server.kill9();
        for (client, thread) in threads.into_iter().enumerate() {
            let done = thread.join().expect("sender thread");
            senders.insert((client, round), done);
        }
        check(&data_dir, &senders);
    }
    // Once more through a server: it starts on what the kills left, and stops cleanly.
    let mut server = Switchboard::start(&data_dir);
    assert!(server.stop().success());
    check(&data_dir, &senders);
    let unacked: usize = senders.values().map(|s| s.sent - s.acked).sum();
    eprintln!("messages sent but not acknowledged when the server died: {unacked}");
}
