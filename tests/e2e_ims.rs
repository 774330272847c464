//! End to end: the real `switchboard` binary and ims clients over TCP on loopback,
//! with a ws2017 client beside them.

mod common;

use std::time::Duration;

use common::ims::ImsClient;
use common::{admin, offline_rows, Client, ServerOptions, Switchboard};

/// Accounts alice, bob and carol (password `pw`) in `data_dir`.
fn accounts(data_dir: &std::path::Path) {
    for name in ["alice", "bob", "carol"] {
        admin(data_dir, &["user", "add", name, "--password", "pw"], None).ok();
    }
}

#[test]
fn log_in_message_live_set_statuses_make_friends_and_log_out() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    accounts(&data_dir);
    let mut server = Switchboard::start(&data_dir);

    // A wrong password, then the right one.
    let alice = ImsClient::connect(server.ims_addr, "alice");
    let wrong = ImsClient::login_doc("alice", "nope");
    alice.ask(&wrong);
    alice.expect("<LOGIN user=\"alice\" result=\"0\"/>");
    alice.ask(&ImsClient::login_doc("alice", "pw"));
    alice.expect("<LOGIN user=\"alice\" result=\"1\"/>");
    let bob = ImsClient::login(&server, "bob", "pw");

    // A live message, split across writes.
    alice.send("<MESSAGE from=\"alice\" ");
    std::thread::sleep(Duration::from_millis(50));
    alice.send("to=\"bob\">hi &lt;bob&gt;</MESSAGE>\0");
    alice.expect("<MESSAGE from=\"alice\" to=\"bob\">hi &lt;bob&gt;</MESSAGE>");
    alice.expect("<MESSAGE result=\"1\"/>");
    bob.expect("<MESSAGE from=\"alice\" to=\"bob\">hi &lt;bob&gt;</MESSAGE>");

    // Friends, with the invite pushed to bob.
    alice.ask("<FRIEND user=\"alice\" type=\"add\" friend=\"bob\"/>");
    alice.expect("<FRIEND type=\"add\" result=\"1\"/>");
    bob.expect("<FRIEND type=\"invite\" to=\"bob\" from=\"alice\"/>");
    bob.ask("<FRIEND user=\"bob\" type=\"accept\" other=\"alice\"/>");
    bob.expect("<FRIEND type=\"accept\" result=\"1\"/>");

    // alice goes Busy; bob sees it in his list.
    alice.ask("<STATUS user=\"alice\" type=\"set\" code=\"2\"/>");
    alice.expect("<STATUS type=\"set\" result=\"1\"/>");
    bob.ask("<FRIEND user=\"bob\" type=\"request\"/>");
    bob.expect("<FRIENDS><USER status=\"2\">alice</USER></FRIENDS>");

    // Garbage is skipped unanswered; the connection goes on.
    alice.send("garbage </x> <a></b>");
    alice.ask("<ALIVE/>");

    // LOGOUT by another name is refused; by the owner it ends the connection.
    alice.ask("<LOGOUT user=\"bob\"/>");
    alice.expect("<LOGOUT user=\"bob\" result=\"0\"/>");
    alice.ask("<LOGOUT user=\"alice\"/>");
    alice.expect("<LOGOUT user=\"alice\" result=\"1\"/>");
    alice.expect_closed_within(common::WAIT);
    bob.ask("<FRIEND user=\"bob\" type=\"request\"/>");
    bob.expect("<FRIENDS><USER status=\"-1\">alice</USER></FRIENDS>");
    assert!(server.stop().success());
}

/// A message for an offline account is stored before its -1, survives a restart, and
/// is delivered at the next login, once.
#[test]
fn an_offline_message_survives_a_restart_and_is_delivered_at_login() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    accounts(&data_dir);
    let mut server = Switchboard::start(&data_dir);
    let alice = ImsClient::login(&server, "alice", "pw");
    alice.ask("<MESSAGE from=\"alice\" to=\"carol\">first</MESSAGE>");
    alice.expect("<MESSAGE result=\"-1\"/>");
    // A ws2017 user leaves one too.
    let walter = Client::login(&server, "walter");
    walter.send("chatm walter carol 'second'");
    walter.expect("+OK chatm 'message stored'");
    // The -1 means it is on disk: kill the server without a chance to flush.
    #[cfg(unix)]
    server.kill9();
    #[cfg(not(unix))]
    assert!(server.stop().success());
    let rows = offline_rows(&data_dir);
    assert_eq!(rows.len(), 2, "{rows:?}");

    let mut server = Switchboard::start(&data_dir);
    let carol = ImsClient::login(&server, "carol", "pw");
    carol.expect("<MESSAGE from=\"alice\" to=\"carol\">first</MESSAGE>");
    carol.expect("<MESSAGE from=\"walter\" to=\"carol\">second</MESSAGE>");
    carol.ask("<ALIVE/>");
    // Removed once written: wait for the removal to commit, then log in again.
    let deadline = std::time::Instant::now() + common::WAIT;
    while !offline_rows(&data_dir).is_empty() {
        assert!(std::time::Instant::now() < deadline, "never removed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let again = ImsClient::login(&server, "carol", "pw");
    again.ask("<ALIVE/>");
    again.expect_nothing(Duration::from_millis(200));
    assert!(server.stop().success());
}

#[test]
fn ws2017_and_ims_users_message_each_other() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    accounts(&data_dir);
    let mut server = Switchboard::start(&data_dir);
    let bob = ImsClient::login(&server, "bob", "pw");
    let walter = Client::login(&server, "walter");
    walter.send("chatm walter bob 'hello bob'");
    walter.expect("+OK chatm 'message relayed'");
    walter.expect("chatr walter bob");
    bob.expect("<MESSAGE from=\"walter\" to=\"bob\">hello bob</MESSAGE>");
    bob.ask("<MESSAGE from=\"bob\" to=\"walter\">hi walter</MESSAGE>");
    bob.expect("<MESSAGE result=\"1\"/>");
    walter.expect("chatm bob walter 'hi walter'");
    assert!(server.stop().success());
}

#[test]
fn silence_closes_alive_keeps_open_and_a_kick_logs_out() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    accounts(&data_dir);
    let mut server = Switchboard::start_with_flags(
        &data_dir,
        ServerOptions::default(),
        &["--ims-alive-timeout", "1"],
    );
    let alice = ImsClient::login(&server, "alice", "pw");
    let bob = ImsClient::login(&server, "bob", "pw");
    // alice sends ALIVE every quarter second; bob says nothing and is dropped after 1 s.
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(250));
        alice.ask("<ALIVE/>");
    }
    bob.expect_closed_within(common::WAIT);
    server.wait_for_log("reason=\"timeout\"");
    // The administrator kicks alice.
    let kick = admin(&data_dir, &["kick", "alice"], None);
    kick.ok();
    alice.expect("<LOGOUT user=\"alice\" result=\"1\"/>");
    alice.expect_closed_within(common::WAIT);
    assert!(server.stop().success());
}
