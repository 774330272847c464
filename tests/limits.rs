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
