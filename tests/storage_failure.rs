//! The store fails under a running server: its file writes are made to fail for real by
//! lowering the process's file size limit (RLIMIT_FSIZE) to zero; the server ignores
//! SIGXFSZ itself, so writes fail with EFBIG instead of killing it. Then the limit is
//! lifted again.

#![cfg(target_os = "linux")]

mod common;

use std::thread;
use std::time::Duration;

use common::{admin, Client, ServerOptions, Switchboard};
use switchboard_store::Store;

/// Sets the soft and hard limit on the size of files `pid` may write.
fn set_file_size_limit(pid: i32, limit: libc::rlim_t) {
    let limit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit(2) reads `limit` and writes nothing (old limit pointer is null).
    let result = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
    assert_eq!(
        result,
        0,
        "prlimit failed: {}",
        std::io::Error::last_os_error()
    );
}

const STORED: &str = "+OK chatm 'message stored'";
const REFUSED: &str = "-ERR chatm 'message could not be stored, try again later'";

#[test]
fn a_failing_store_holds_acknowledgements_refuses_durable_work_and_recovers() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    admin(&data_dir, &["user", "add", "bob", "--password", "pw"], None).ok();
    let options = ServerOptions {
        ping_interval: Some("1"),
        log: Some(common::COMMIT_DEBUG_LOG),
        ..ServerOptions::default()
    };
    let mut server = Switchboard::start_with(&data_dir, options);

    let alice = Client::login(&server, "alice");
    let carol = Client::login(&server, "carol");
    alice.expect("nuser carol");
    let dave = Client::login(&server, "dave");
    alice.expect("nuser dave");
    carol.expect("nuser dave");
    let erin = Client::login(&server, "erin");
    for client in [&alice, &carol, &dave] {
        client.expect("nuser erin");
    }
    dave.send("chatm dave bob 'before'");
    dave.expect(STORED);

    // From now on every file write of the server fails.
    set_file_size_limit(server.pid(), 0);

    // The message is taken, but not acknowledged while its commit fails.
    dave.send("chatm dave bob 'held'");
    let failure = server.wait_for_log("refusing new durable requests");
    eprintln!("the failure as logged: {failure}");
    assert!(failure.contains("ERROR"), "{failure}");
    assert!(failure.contains("commit failed"), "{failure}");
    dave.expect_nothing(Duration::from_millis(200));

    // New durable work is refused with the protocol's error.
    erin.send("chatm erin bob 'refused'");
    erin.expect(REFUSED);
    let run = admin(&data_dir, &["ban", "ip", "10.9.9.9"], None);
    assert_eq!(
        run.refused(),
        ["the store is failing; nothing was changed, try again later"]
    );

    // What needs no durability goes on: live chat, listings, pings.
    alice.send("chatm alice carol 'still here?'");
    alice.expect("+OK chatm 'message relayed'");
    carol.expect("chatm alice carol 'still here?'");
    carol.send("cgetu");
    carol.expect("+OK cgetu alice carol dave erin");
    // A listing reveals every pending change, so it waits for the held commit.
    let dir_for_listing = data_dir.clone();
    let listing = thread::spawn(move || admin(&dir_for_listing, &["user", "list"], None));

    // The batch is retried, and the failure is logged once.
    server.wait_for_log("commit failed again");
    server.wait_for_log("commit failed again");
    assert_eq!(server.log_count("refusing new durable requests"), 1);
    dave.expect_nothing(Duration::from_millis(100));
    server.assert_running();

    assert!(
        !listing.is_finished(),
        "a listing got out before the commit"
    );

    // The disk works again: the held acknowledgement arrives by itself.
    set_file_size_limit(server.pid(), libc::RLIM_INFINITY);
    dave.expect(STORED);
    server.wait_for_log("the store works again");
    let listing = listing.join().expect("listing thread");
    assert_eq!(listing.ok().last(), Some(&"1 account"));
    erin.send("chatm erin bob 'again'");
    erin.expect(STORED);
    assert_eq!(
        admin(&data_dir, &["ban", "ip", "10.9.9.9"], None).ok(),
        ["10.9.9.9 banned"]
    );

    drop((alice, carol, dave, erin));
    assert!(server.stop().success());
    let state = Store::open(&data_dir)
        .and_then(|store| store.load())
        .expect("load the store");
    let stored: Vec<(&str, &str)> = state
        .offline
        .values()
        .flatten()
        .map(|m| (m.from.as_str(), m.body.as_str()))
        .collect();
    assert_eq!(
        stored,
        [("dave", "before"), ("dave", "held"), ("erin", "again")]
    );
    assert_eq!(state.ip_bans.len(), 1);
}

/// The size of the database's write-ahead log, where a commit's pages go first.
fn wal_size(data_dir: &std::path::Path) -> u64 {
    let mut wal = common::db_path(data_dir).into_os_string();
    wal.push("-wal");
    std::fs::metadata(&wal).map_or(0, |m| m.len())
}

/// Several acknowledgements on several connections wait through a failure, and each is
/// released exactly when its own change commits. The test shapes the batches: holding
/// SQLite's write lock, it lets ann's message start a commit alone (batch 1) while cid's
/// and dee's gather behind it (batch 2); then it lets the log grow by exactly one more
/// single-message commit, so batch 1 lands and batch 2 fails until the limit is lifted.
#[test]
fn held_acknowledgements_leave_exactly_with_their_own_batch_through_a_failure() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    admin(&data_dir, &["user", "add", "bob", "--password", "pw"], None).ok();
    let options = ServerOptions {
        ping_interval: Some("1"),
        log: Some(common::COMMIT_DEBUG_LOG),
        ..ServerOptions::default()
    };
    let mut server = Switchboard::start_with(&data_dir, options);
    let ann = Client::join(&server, "ann");
    let cid = Client::join(&server, "cid");
    let dee = Client::join(&server, "dee");
    ann.skip_until(|l| l == "nuser dee");
    cid.skip_until(|l| l == "nuser dee");

    // What one single-message commit adds to the log (the second of two, once it exists).
    ann.send("chatm ann bob 'a0'");
    ann.expect(STORED);
    let before = wal_size(&data_dir);
    ann.send("chatm ann bob 'a1'");
    ann.expect(STORED);
    let one_commit = wal_size(&data_dir) - before;
    assert!(one_commit > 0, "the commit did not grow the log");

    let lock = common::WriteLock::take(&data_dir);
    ann.send("chatm ann bob 'a2'");
    // ann's commit has started and waits for the lock; these gather behind it.
    thread::sleep(Duration::from_millis(100));
    cid.send("chatm cid bob 'c0'");
    dee.send("chatm dee bob 'd0'");
    dee.send("chatm dee bob 'd1'");
    for client in [&ann, &cid, &dee] {
        client.expect_nothing(Duration::from_millis(100));
    }
    // Room for exactly one more such commit, and half a page.
    let room = wal_size(&data_dir) + one_commit + 2048;
    set_file_size_limit(server.pid(), room);
    lock.release();

    // Batch 1 lands: ann's acknowledgement, and nothing for cid and dee, whose batch fails.
    ann.expect(STORED);
    server.wait_for_log("committed changes=1 through=3");
    server.wait_for_log("refusing new durable requests");
    server.wait_for_log("commit failed again");
    for client in [&ann, &cid, &dee] {
        client.expect_nothing(Duration::from_millis(100));
    }
    let bodies = |dir: &std::path::Path| -> Vec<String> {
        common::offline_rows(dir)
            .into_iter()
            .map(|(_, _, body)| body)
            .collect()
    };
    assert_eq!(bodies(&data_dir), ["a0", "a1", "a2"]);

    // Batch 2 lands: each of its acknowledgements, once.
    set_file_size_limit(server.pid(), libc::RLIM_INFINITY);
    cid.expect(STORED);
    dee.expect(STORED);
    dee.expect(STORED);
    server.wait_for_log("the store works again");
    server.wait_for_log("committed changes=3 through=6");
    assert_eq!(bodies(&data_dir), ["a0", "a1", "a2", "c0", "d0", "d1"]);
    for client in [&ann, &cid, &dee] {
        client.expect_nothing(Duration::from_millis(50));
    }
    drop((ann, cid, dee));
    assert!(server.stop().success());
}
