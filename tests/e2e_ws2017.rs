//! End to end: the real `switchboard` binary, three ws2017 clients over TCP on loopback.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{admin, Client, ServerOptions, Switchboard};

#[test]
fn three_clients_chat_rename_misbehave_time_out_and_quit() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let mut server = Switchboard::start(&data_dir.path().join("data"));
    assert!(server.data_dir.is_dir(), "--data-dir was not created");

    let alice = Client::login(&server, "alice");
    let bob = Client::login(&server, "bob");
    alice.expect("nuser bob");
    let carol = Client::login(&server, "carol");
    alice.expect("nuser carol");
    bob.expect("nuser carol");

    alice.send("cgetu");
    alice.expect("+OK cgetu alice bob carol");

    // A direct message, and bob's receipt relayed back to alice.
    alice.send("chatm alice bob 'hello bob'");
    alice.expect("+OK chatm 'message relayed'");
    bob.expect("chatm alice bob 'hello bob'");
    bob.send("chatr alice bob");
    alice.expect("chatr alice bob");

    // A rename is seen by the others.
    bob.send("uname robert");
    bob.expect("+OK uname you are robert");
    alice.expect("+OK nuser bob robert");
    carol.expect("+OK nuser bob robert");

    // Garbage gets an error, and the connection keeps working.
    alice.send("hello world");
    alice.expect("-ERR 'entered command does not exist'");
    alice.send("chatm alice");
    alice.expect("-ERR 'chatm is not a properly formatted command'");
    alice.send_raw(b"\xff\xfe garbage\r\n");
    alice.expect("-ERR 'entered command does not exist'");
    alice.send("CGETU");
    alice.expect("+OK cgetu alice carol robert");

    // carol stops answering pings: she is dropped and the others are told.
    carol.answer_pings.store(false, Ordering::SeqCst);
    carol.expect_closed();
    alice.expect("cquit carol");
    bob.expect("cquit carol");
    server.wait_for_log("reason=\"timeout\"");

    // robert quits.
    bob.send("cquit");
    bob.expect("+OK cquit 'terminating tasks and disconnecting'");
    bob.expect_closed();
    alice.expect("cquit robert");

    alice.send("cgetu");
    alice.expect("+OK cgetu alice");
    server.assert_running();
}

#[cfg(unix)]
#[test]
fn sigint_shuts_down_cleanly() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let mut server = Switchboard::start(data_dir.path());
    let client = Client::login(&server, "alice");

    server.signal(libc::SIGINT);

    // Told, then closed.
    client.expect("-ERR 'the server is shutting down'");
    client.expect_closed();
    drop(client);
    let status = server.wait_for_exit();
    assert!(status.success(), "exit status {status:?}");
    assert!(TcpStream::connect(server.addr).is_err(), "still accepting");
    assert!(
        !data_dir.path().join("admin.sock").exists(),
        "the admin socket outlived the server"
    );
}

/// An IP ban closes the client's connection with the reason `banned` in the log, on that
/// connection's own line (not `kicked`, as a plain kick is).
#[test]
fn an_ip_ban_close_is_logged_as_banned() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let server = Switchboard::start(&data_dir.path().join("data"));
    let mallory = Client::login(&server, "mallory");
    let opened = server.wait_for_log("connection opened");
    let conn = opened
        .split_whitespace()
        .find(|field| field.starts_with("conn="))
        .unwrap_or_else(|| panic!("no conn= in {opened:?}"))
        .to_owned();
    let run = admin(&server.data_dir, &["ban", "ip", "127.0.0.1"], None);
    assert_eq!(
        run.ok(),
        ["127.0.0.1 banned, 1 connection closed"],
        "{run:?}"
    );
    mallory.expect("+OK cquit 'banned by an administrator'");
    mallory.expect_closed();
    let closed = server.wait_for_log("connection closed");
    let fields: Vec<&str> = closed.split_whitespace().collect();
    assert!(fields.contains(&conn.as_str()), "{closed:?} is not {conn}");
    assert!(fields.contains(&"reason=\"banned\""), "{closed:?}");
}

/// A crowd that connected while the server could not take it (stopped here, as a busy
/// server is) waits in the listen backlog, and one readiness reports all of it: the
/// server takes it in shares between its reads of the others, and greets every one
/// without a later connection to remind it of the rest.
#[test]
fn a_crowd_waiting_in_the_backlog_is_greeted_every_one() {
    // Several turns' worth (a listener gives 128 a turn on mio), within the listen
    // backlog: past it, a connect to the stopped server would wait for good.
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(128);
    let crowd_size = 600.min(somaxconn.saturating_sub(8));
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let flags = ["--max-connections-per-ip", "1000"];
    let server = Switchboard::start_with_flags(
        &data_dir.path().join("data"),
        ServerOptions::default(),
        &flags,
    );
    server.signal(libc::SIGSTOP);
    let crowd: Vec<TcpStream> = (0..crowd_size)
        .map(|_| TcpStream::connect(server.addr).expect("connect into the backlog"))
        .collect();
    server.signal(libc::SIGCONT);
    for (i, mut client) in crowd.into_iter().enumerate() {
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut greeting = [0; 4];
        if let Err(e) = client.read_exact(&mut greeting) {
            panic!("client {i} of {crowd_size} was not greeted: {e}");
        }
        assert_eq!(&greeting, b"+OK ", "client {i}");
    }
}
