//! End to end: the binary's limit flags, over TCP on loopback.

mod common;

use common::{Client, ServerOptions, Switchboard};

#[test]
fn connections_past_the_per_address_cap_are_refused_and_the_close_is_logged() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let flags = ["--max-connections-per-ip", "2"];
    let data_dir = data_dir.path().join("data");
    let server = Switchboard::start_with_flags(&data_dir, ServerOptions::default(), &flags);
    let first = server.connect("first");
    first.greeting();
    let second = server.connect("second");
    second.greeting();
    let third = server.connect("third");
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

#[test]
fn the_rate_flags_reach_the_server() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let flags = ["--broadcast-rate-per-conn", "0/2"];
    let data_dir = data_dir.path().join("data");
    let server = Switchboard::start_with_flags(&data_dir, ServerOptions::default(), &flags);
    let alice = server.connect("alice");
    alice.greeting();
    for name in ["alice", "a1"] {
        alice.send(&format!("uname {name}"));
        assert!(alice.next().starts_with("+OK uname "));
    }
    alice.send("uname a2");
    alice.expect("-ERR uname 'too many requests, slow down'");
}

/// A client that sends many requests at once and reads every answer is never closed as a
/// slow reader: the runtimes handle many inputs before they write, but write before any
/// connection was sent a quarter of its outbound limit meanwhile.
#[test]
fn a_client_that_reads_its_answers_is_not_taken_for_a_slow_reader() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    // Four times what mio reads at once, whose answers are 1.6 times as long.
    let flags = ["--outbound-limit", "262144"];
    let data_dir = data_dir.path().join("data");
    let server = Switchboard::start_with_flags(&data_dir, ServerOptions::default(), &flags);
    let client = Client::login(&server, "busy");
    // 2 MiB of pings in one go: 3.1 MiB of answers, 12 times the limit, read all the
    // while by the client's reader thread.
    const PINGS: usize = 300_000;
    client.send_raw("cping\r\n".repeat(PINGS).as_bytes());
    for i in 0..PINGS {
        assert_eq!(client.next(), "+OK cpong", "answer {i}");
    }
    client.send("cgetu");
    client.expect("+OK cgetu busy");
}
