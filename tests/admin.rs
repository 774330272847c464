//! The admin subcommands of the real binary, against a stopped server (straight on the
//! store) and against a running one (through its admin socket).

#![cfg(unix)]

mod common;

use std::fs::OpenOptions;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{admin, Client, Switchboard};
use switchboard_store::credentials;
use switchboard_store::Store;

/// The password hash of `name` in the store verifies `password`.
fn password_is(data_dir: &Path, name: &str, password: &str) -> bool {
    let state = Store::open(data_dir)
        .and_then(|store| store.load())
        .expect("load the store");
    let account = state
        .accounts
        .values()
        .find(|a| a.name.as_str() == name)
        .unwrap_or_else(|| panic!("no account {name} in the store"));
    credentials::verify(&account.password, password).expect("a valid hash")
}

/// The account lines of `user list` without their creation times.
fn accounts(data_dir: &Path) -> Vec<String> {
    let run = admin(data_dir, &["user", "list"], None);
    run.ok()
        .into_iter()
        .map(|line| {
            line.split(' ')
                .filter(|field| !field.starts_with("created="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The same account and ban commands give the same answers whether a server runs or not.
fn accounts_and_bans(data_dir: &Path) {
    assert_eq!(
        admin(
            data_dir,
            &["user", "add", "alice", "--password", "pw1"],
            None
        )
        .ok(),
        ["account alice created"]
    );
    let run = admin(
        data_dir,
        &[
            "user",
            "add",
            "Bob",
            "--password-stdin",
            "--level",
            "2",
            "--email",
            "bob@example.org",
            "--gender",
            "m",
        ],
        Some("s3cret word\n"),
    );
    assert_eq!(run.ok(), ["account Bob created"]);
    assert_eq!(
        admin(data_dir, &["user", "add", "alice", "--password", "x"], None).refused(),
        ["account alice exists"]
    );
    assert_eq!(
        accounts(data_dir),
        [
            "user alice level=0 banned=no email= gender=",
            "user Bob level=2 banned=no email=bob@example.org gender=m",
            "2 accounts",
        ]
    );
    assert!(password_is(data_dir, "Bob", "s3cret word"));

    // passwd from the flag, from --password-stdin, and from a bare stdin line.
    let run = admin(
        data_dir,
        &["user", "passwd", "alice", "--password", "pw2"],
        None,
    );
    assert_eq!(run.ok(), ["password of alice changed"]);
    assert!(password_is(data_dir, "alice", "pw2"));
    let run = admin(
        data_dir,
        &["user", "passwd", "alice", "--password-stdin"],
        Some("pw3\r\n"),
    );
    assert_eq!(run.ok(), ["password of alice changed"]);
    assert!(password_is(data_dir, "alice", "pw3"));
    let run = admin(data_dir, &["user", "passwd", "ALICE"], Some("pw4\n"));
    assert_eq!(run.ok(), ["password of alice changed"]);
    assert!(password_is(data_dir, "alice", "pw4"));
    let run = admin(
        data_dir,
        &["user", "passwd", "carol", "--password", "x"],
        None,
    );
    assert_eq!(run.refused(), ["no account carol"]);

    // Bans.
    assert_eq!(
        admin(data_dir, &["ban", "ip", "10.1.2.3"], None).ok(),
        ["10.1.2.3 banned"]
    );
    assert_eq!(
        admin(data_dir, &["ban", "ip", "2001:db8::1"], None).ok(),
        ["2001:db8::1 banned"]
    );
    assert_eq!(
        admin(data_dir, &["ban", "user", "bob"], None).ok(),
        ["Bob banned"]
    );
    assert_eq!(
        admin(data_dir, &["ban", "list"], None).ok(),
        ["ip 10.1.2.3", "ip 2001:db8::1", "user Bob", "bans listed"]
    );
    assert_eq!(
        admin(data_dir, &["unban", "ip", "10.1.2.3"], None).ok(),
        ["10.1.2.3 not banned"]
    );
    assert_eq!(
        admin(data_dir, &["unban", "user", "Bob"], None).ok(),
        ["Bob not banned"]
    );
    assert_eq!(
        admin(data_dir, &["ban", "list"], None).ok(),
        ["ip 2001:db8::1", "bans listed"]
    );
    assert_eq!(
        admin(data_dir, &["ban", "user", "nobody"], None).refused(),
        ["no account nobody"]
    );

    // Nobody is online under an account.
    assert_eq!(
        admin(data_dir, &["kick", "alice"], None).refused(),
        ["alice is not online"]
    );

    assert_eq!(
        admin(data_dir, &["user", "del", "alice"], None).ok(),
        ["account alice deleted"]
    );
    assert_eq!(
        admin(data_dir, &["user", "del", "alice"], None).refused(),
        ["no account alice"]
    );
    assert_eq!(
        accounts(data_dir),
        [
            "user Bob level=2 banned=no email=bob@example.org gender=m",
            "1 account"
        ]
    );
}

#[test]
fn admin_commands_work_on_a_stopped_server() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    accounts_and_bans(&data_dir);
    assert!(
        !data_dir.join("admin.sock").exists(),
        "an admin command made a socket"
    );

    // Usage errors exit with 2 and change nothing.
    let run = admin(&data_dir, &["user", "add", "dave"], None);
    assert_eq!(run.status, Some(2), "{run:?}");
    let run = admin(&data_dir, &["user", "passwd", "Bob"], Some(""));
    assert_eq!(run.status, Some(2), "{run:?}");
    assert!(run.stderr.contains("no password"), "{run:?}");
    let run = admin(&data_dir, &["ban", "ip", "not-an-address"], None);
    assert_eq!(run.status, Some(2), "{run:?}");

    // What was done offline is what a server starts with.
    let mut server = Switchboard::start(&data_dir);
    let lines = admin(&data_dir, &["ban", "list"], None);
    assert_eq!(lines.ok(), ["ip 2001:db8::1", "bans listed"]);
    assert!(server.stop().success());
}

#[test]
fn admin_commands_work_on_a_running_server() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    let mut server = Switchboard::start(&data_dir);

    // The same commands, through the socket.
    accounts_and_bans(&data_dir);

    // Kick a live ws2017 user: it is told in its protocol's manner and closed.
    let carol = Client::login(&server, "carol");
    let dave = Client::login(&server, "dave");
    carol.expect("nuser dave");
    assert_eq!(
        admin(&data_dir, &["kick", "CAROL"], None).ok(),
        ["carol kicked, 1 session closed"]
    );
    carol.expect("+OK cquit 'kicked by an administrator'");
    carol.expect_closed();
    dave.expect("cquit carol");

    // Ban loopback: live connections are closed, new ones refused.
    let erin = Client::login(&server, "erin");
    dave.expect("nuser erin");
    assert_eq!(
        admin(&data_dir, &["ban", "ip", "127.0.0.1"], None).ok(),
        ["127.0.0.1 banned, 2 connections closed"]
    );
    for client in [&dave, &erin] {
        client.expect("+OK cquit 'banned by an administrator'");
        client.expect_closed();
    }
    let refused = server.connect("frank");
    refused.expect("-ERR 'your IP address is banned'");
    refused.expect_closed();
    assert_eq!(
        admin(&data_dir, &["unban", "ip", "127.0.0.1"], None).ok(),
        ["127.0.0.1 not banned"]
    );
    let frank = Client::login(&server, "frank");

    // A second server on the same data dir is refused, and the first one goes on.
    let second = common::Switchboard::command(&data_dir, &Default::default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run a second server");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("is in use by another switchboard process"),
        "{stderr}"
    );
    frank.send("cgetu");
    frank.expect("+OK cgetu frank");
    server.assert_running();

    // Admin connections are not logged at info.
    assert_eq!(server.log_count("local connection"), 0);
    assert_eq!(server.log_count("admin"), 1, "only the socket's own line");

    drop(frank);
    assert!(server.stop().success());
    // The running server's changes are in the store.
    assert_eq!(
        accounts(&data_dir),
        [
            "user Bob level=2 banned=no email=bob@example.org gender=m",
            "1 account"
        ]
    );
}

#[test]
fn a_locked_data_dir_without_an_admin_socket_is_reported() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.path().join("switchboard.lock"))
        .expect("lock file");
    lock.try_lock().expect("take the lock");
    let started = Instant::now();
    let run = admin(dir.path(), &["user", "list"], None);
    assert_eq!(run.status, Some(1), "{run:?}");
    assert!(run.stderr.contains("has no admin socket"), "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
