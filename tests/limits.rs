//! End to end: the binary's limit flags, over TCP on loopback.

mod common;

use common::{Client, ServerOptions, Switchboard};

#[test]
fn connections_past_the_per_address_cap_are_refused_and_the_close_is_logged() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let options = ServerOptions {
        args: &["--max-connections-per-ip", "2"],
        ..ServerOptions::default()
    };
    let server = Switchboard::start_with(&data_dir.path().join("data"), options);
    let first = server.connect("first");
    first.greeting();
    let second = server.connect("second");
    second.greeting();
    let third = server.connect("third");
    third.expect("-ERR 'too many connections from your address'");
    third.expect_closed();
    server.wait_for_log("reason=\"too many connections\"");
    // A freed slot is taken again.
    drop(first);
    server.wait_for_log("reason=\"peer closed\"");
    let fourth = Client::connect(server.addr, "fourth");
    fourth.greeting();
}
