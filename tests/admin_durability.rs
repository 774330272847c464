//! Changes made through the admin socket of a running server are durable when the command
//! says so: `user del` takes the account's offline messages with it, and a SIGKILL that
//! lands among admin commands takes back none that reported success. The database is read
//! with the test's own SQL, not through the store or the core.

#![cfg(unix)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{admin, offline_rows, open_db, Client, Switchboard, WriteLock, WAIT};
use switchboard_proto::PasswordHash;
use switchboard_store::credentials;

const STORED: &str = "+OK chatm 'message stored'";

#[test]
fn user_del_on_a_running_server_deletes_the_accounts_offline_messages() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    let mut server = Switchboard::start(&data_dir);
    for name in ["bob", "carol"] {
        admin(&data_dir, &["user", "add", name, "--password", "pw"], None).ok();
    }
    let ann = Client::join(&server, "ann");
    for (to, body) in [("bob", "one"), ("carol", "for carol"), ("BOB", "two")] {
        ann.send(&format!("chatm ann {to} '{body}'"));
        ann.expect(STORED);
    }
    let recipients = |dir: &Path| -> Vec<String> {
        offline_rows(dir)
            .into_iter()
            .map(|(_, to, body)| format!("{to}:{body}"))
            .collect()
    };
    assert_eq!(
        recipients(&data_dir),
        ["bob:one", "carol:for carol", "bob:two"]
    );

    let run = admin(&data_dir, &["user", "del", "Bob"], None);
    assert_eq!(run.ok(), ["account bob deleted"]);
    // The answer waited for the commit: the rows are gone now, with the server running.
    assert_eq!(recipients(&data_dir), ["carol:for carol"]);
    let accounts: i64 = open_db(&data_dir)
        .query_row("SELECT COUNT(*) FROM accounts WHERE key = 'bob'", [], |r| {
            r.get(0)
        })
        .expect("count accounts");
    assert_eq!(accounts, 0);

    drop(ann);
    assert!(server.stop().success());
    assert_eq!(recipients(&data_dir), ["carol:for carol"]);
}

/// One admin command of the script, and what it leaves in the database once it succeeded.
#[derive(Clone, Debug)]
enum Op {
    Add { name: String, password: String },
    Passwd { name: String, password: String },
    Del { name: String },
    BanUser { name: String },
    BanIp { ip: String },
}

impl Op {
    fn args(&self) -> Vec<&str> {
        match self {
            Op::Add { name, password } => vec!["user", "add", name, "--password", password],
            Op::Passwd { name, password } => {
                vec!["user", "passwd", name, "--password", password]
            }
            Op::Del { name } => vec!["user", "del", name],
            Op::BanUser { name } => vec!["ban", "user", name],
            Op::BanIp { ip } => vec!["ban", "ip", ip],
        }
    }
}

/// The script of round `round`: accounts `r<round>a<k>` are added, some of them banned,
/// some given a new password, some deleted; an address banned per step. Every command
/// succeeds on a working server.
fn script(round: usize) -> Vec<Op> {
    let name = |k: usize| format!("r{round}a{k}");
    let mut ops = Vec::new();
    for k in 0..200 {
        ops.push(Op::Add {
            name: name(k),
            password: format!("first{k}"),
        });
        if k % 3 == 2 {
            ops.push(Op::Passwd {
                name: name(k - 1),
                password: format!("second{}", k - 1),
            });
            ops.push(Op::Del { name: name(k - 2) });
        }
        if k % 4 == 3 {
            ops.push(Op::BanUser { name: name(k) });
        }
        ops.push(Op::BanIp {
            ip: format!("10.{round}.{}.{}", k / 200, k % 200 + 1),
        });
    }
    ops
}

/// What the database must hold for an account: absent, or present with this password
/// and ban. `None` where the command that would decide it was in flight at the kill.
#[derive(Clone, Debug, PartialEq)]
enum Must {
    Absent,
    Present {
        password: Option<String>,
        banned: Option<bool>,
    },
    Either,
}

/// Runs `ops` in order through the admin command until `stop` is set or one fails; returns
/// how many succeeded and whether the next one was started (and so may or may not have
/// taken effect).
fn run_script(data_dir: &Path, ops: &[Op], stop: &AtomicBool, done: &AtomicUsize) -> (usize, bool) {
    for (i, op) in ops.iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            return (i, false);
        }
        let run = admin(data_dir, &op.args(), None);
        if run.status != Some(0) {
            eprintln!("in flight at the kill: {op:?}: {run:?}");
            return (i, true);
        }
        done.store(i + 1, Ordering::SeqCst);
    }
    panic!("the script ran out before the kill");
}

/// The accounts and bans `ops[..succeeded]` leave, with `ops[succeeded]` possibly applied.
fn expected(
    ops: &[Op],
    succeeded: usize,
    in_flight: bool,
) -> (BTreeMap<String, Must>, BTreeMap<String, bool>) {
    let mut accounts: BTreeMap<String, Must> = BTreeMap::new();
    let mut ips: BTreeMap<String, bool> = BTreeMap::new();
    let maybe = if in_flight { ops.get(succeeded) } else { None };
    let sure = ops[..succeeded].iter().map(|op| (op, true));
    for (op, sure) in sure.chain(maybe.map(|op| (op, false))) {
        match op {
            Op::Add { name, password } => {
                let must = Must::Present {
                    password: Some(password.clone()),
                    banned: Some(false),
                };
                accounts.insert(name.clone(), if sure { must } else { Must::Either });
            }
            Op::Passwd { name, password } => {
                if let Some(Must::Present { password: p, .. }) = accounts.get_mut(name) {
                    *p = sure.then(|| password.clone());
                }
            }
            Op::Del { name } => {
                accounts.insert(name.clone(), if sure { Must::Absent } else { Must::Either });
            }
            Op::BanUser { name } => {
                if let Some(Must::Present { banned, .. }) = accounts.get_mut(name) {
                    *banned = if sure { Some(true) } else { None };
                }
            }
            Op::BanIp { ip } => {
                ips.insert(ip.clone(), sure);
            }
        }
    }
    (accounts, ips)
}

/// Checks the database against what the successful commands promised.
fn check(
    data_dir: &Path,
    round: usize,
    accounts: &BTreeMap<String, Must>,
    ips: &BTreeMap<String, bool>,
) {
    let db = open_db(data_dir);
    let mut statement = db
        .prepare("SELECT name, password, banned FROM accounts")
        .expect("query accounts");
    let rows: BTreeMap<String, (String, bool)> = statement
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .expect("read accounts")
        .collect::<Result<_, _>>()
        .expect("account rows");
    let prefix = format!("r{round}a");
    for (name, must) in accounts {
        let row = rows.get(name);
        match (must, row) {
            (Must::Either, _) | (Must::Absent, None) => {}
            (Must::Absent, Some(_)) => panic!("{name} was deleted, and is back"),
            (Must::Present { .. }, None) => panic!("{name} was acknowledged, and is gone"),
            (Must::Present { password, banned }, Some((hash, is_banned))) => {
                if let Some(password) = password {
                    let ok = credentials::verify(&PasswordHash(hash.clone()), password)
                        .expect("verify the stored hash");
                    assert!(
                        ok,
                        "{name}: the password acknowledged last is not the stored one"
                    );
                }
                if let Some(banned) = banned {
                    assert_eq!(is_banned, banned, "{name}: banned");
                }
            }
        }
    }
    for name in rows.keys().filter(|n| n.starts_with(&prefix)) {
        assert!(accounts.contains_key(name), "{name} exists, never added");
    }
    let mut statement = db.prepare("SELECT ip FROM ip_bans").expect("query bans");
    let banned: BTreeSet<String> = statement
        .query_map([], |r| r.get(0))
        .expect("read bans")
        .collect::<Result<_, _>>()
        .expect("ban rows");
    for (ip, sure) in ips {
        assert!(
            !sure || banned.contains(ip),
            "the ban of {ip} was acknowledged, and is gone"
        );
    }
    let prefix = format!("10.{round}.");
    for ip in banned.iter().filter(|ip| ip.starts_with(&prefix)) {
        assert!(ips.contains_key(ip), "{ip} is banned, never asked");
    }
}

/// Admin commands run one after another against a running server; SIGKILL lands among
/// them (after a different number of successes each round, at a different moment within
/// a command, once with the commits held up); after a restart every command that reported
/// success is there, and nothing no command asked for.
#[test]
fn sigkill_among_admin_commands_takes_back_none_that_succeeded() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    // (successes before the kill, then milliseconds, and whether the database's write lock
    // is held meanwhile: commits wait, so a command answered before its commit would
    // report success and then be lost).
    let rounds = [
        (6, 0u64, false),
        (13, 3, false),
        (21, 9, false),
        (9, 150, true),
    ];
    for (round, (kill_after, extra_ms, hold)) in rounds.into_iter().enumerate() {
        let mut server = Switchboard::start(&data_dir);
        let ops = script(round);
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let runner = {
            let (data_dir, ops, stop, done) =
                (data_dir.clone(), ops.clone(), stop.clone(), done.clone());
            thread::spawn(move || run_script(&data_dir, &ops, &stop, &done))
        };
        let started = Instant::now();
        while done.load(Ordering::SeqCst) < kill_after {
            assert!(
                started.elapsed() < WAIT * 4,
                "the admin commands are too slow"
            );
            thread::sleep(Duration::from_millis(1));
        }
        let lock = hold.then(|| WriteLock::take(&data_dir));
        thread::sleep(Duration::from_millis(extra_ms));
        stop.store(true, Ordering::SeqCst);
        server.kill9();
        drop(lock);
        let (succeeded, in_flight) = runner.join().expect("admin thread");
        eprintln!("round {round}: {succeeded} commands succeeded before the kill");
        let (accounts, ips) = expected(&ops, succeeded, in_flight);
        // The restarted server opens what the kill left, and it holds every success.
        let mut server = Switchboard::start(&data_dir);
        check(&data_dir, round, &accounts, &ips);
        assert!(server.stop().success());
    }
}
