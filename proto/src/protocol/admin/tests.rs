//! The admin protocol against the core: every command, its durability and its effects on
//! live sessions.

use crate::tests::harness::Harness;
use crate::{AdminCommand, AdminParseError, CloseReason, Config, ConnId, Protocol, UserName};

fn admin(h: &mut Harness, line: &str) -> String {
    let c = h.connect(Protocol::Admin);
    h.send(c, format!("{line}\r\n"));
    h.take(c)
}

fn ws(h: &mut Harness, name: &str) -> ConnId {
    let c = h.connect(Protocol::Ws2017);
    h.send(c, format!("uname {name}\r\n"));
    h.take(c);
    c
}

#[test]
fn user_add_hashes_persists_and_answers_after_the_commit() {
    let mut h = Harness::new(Config::default());
    h.auto_commit = false;
    let c = h.connect(Protocol::Admin);
    h.send(
        c,
        "user add Alice s3cret%20pw level=2 email=a%40example.org gender=f\r\n",
    );
    // Persisted, not yet committed: no answer.
    assert_eq!(h.take(c), "");
    assert_eq!(h.uncommitted().len(), 1);
    assert!(h.store.accounts.is_empty());
    h.commit();
    assert_eq!(h.take(c), "ok account Alice created\r\n");
    let account = h
        .store
        .account(&UserName::parse("alice").unwrap().key())
        .unwrap();
    assert_eq!(account.name.as_str(), "Alice");
    assert_eq!(account.password.0, "test$s3cret pw");
    assert_eq!(
        account.ims_password.0,
        format!("test${}", crate::tests::harness::md5_hex("s3cret pw"))
    );
    assert_eq!((account.level, account.banned), (2, false));
    assert_eq!(account.email.as_deref(), Some("a@example.org"));
    assert_eq!(account.gender.as_deref(), Some("f"));
    assert_eq!(account.created_ms, crate::tests::harness::WALL_ORIGIN_MS);
}

#[test]
fn user_add_refuses_duplicates_and_bad_input() {
    let mut h = Harness::new(Config::default());
    assert_eq!(
        admin(&mut h, "user add bob pw"),
        "ok account bob created\r\n"
    );
    assert_eq!(
        admin(&mut h, "user add BOB pw"),
        "err account BOB exists\r\n"
    );
    assert_eq!(
        admin(&mut h, "user add a%20b pw"),
        "err \"a b\": username contains invalid characters\r\n"
    );
    assert_eq!(
        admin(&mut h, "user add carol"),
        "err the password is empty\r\n"
    );
    assert_eq!(
        admin(&mut h, "user add carol pw level=300"),
        "err level must be 0-255\r\n"
    );
    assert_eq!(
        admin(&mut h, "user add carol pw colour=red"),
        "err unknown option; use level=, email=, gender=\r\n"
    );
    assert_eq!(admin(&mut h, "frobnicate"), "err unknown command\r\n");
    assert_eq!(h.store.accounts.len(), 1);
}

#[test]
fn user_list_shows_every_account() {
    let mut h = Harness::new(Config::default());
    admin(&mut h, "user add bob pw email=b%20b%40x");
    admin(&mut h, "user add alice pw level=1");
    assert_eq!(
        admin(&mut h, "user list"),
        "user alice level=1 banned=no created=1700000000000 email= gender=\r\n\
         user bob level=0 banned=no created=1700000000000 email=b%20b@x gender=\r\n\
         ok 2 accounts\r\n"
    );
}

#[test]
fn user_passwd_and_del() {
    let mut h = Harness::new(Config::default());
    admin(&mut h, "user add bob old");
    assert_eq!(
        admin(&mut h, "user passwd BOB new"),
        "ok password of bob changed\r\n"
    );
    let key = UserName::parse("bob").unwrap().key();
    assert_eq!(h.store.account(&key).unwrap().password.0, "test$new");
    assert_eq!(
        admin(&mut h, "user passwd carol x"),
        "err no account carol\r\n"
    );
    assert_eq!(admin(&mut h, "user del bob"), "ok account bob deleted\r\n");
    assert!(h.store.accounts.is_empty());
    assert_eq!(admin(&mut h, "user del bob"), "err no account bob\r\n");
}

#[test]
fn a_registered_name_is_taken_for_ws2017_and_suggestions_skip_it() {
    let mut h = Harness::new(Config::default());
    admin(&mut h, "user add bob pw");
    admin(&mut h, "user add bob2 pw");
    let c = h.connect(Protocol::Ws2017);
    h.take(c);
    h.send(c, "uname Bob\r\n");
    assert_eq!(h.take(c), "-ERR uname suggested Bob3\r\n");
    h.send(c, "uname carol\r\nuname bob\r\n");
    assert_eq!(
        h.take(c),
        "+OK uname you are carol\r\n-ERR uname suggested bob3\r\n"
    );
}

#[test]
fn kick_closes_the_session_in_the_protocols_manner() {
    let mut h = Harness::new(Config::default());
    let alice = ws(&mut h, "alice");
    let bob = ws(&mut h, "bob");
    h.take(alice);
    assert_eq!(
        admin(&mut h, "kick ALICE"),
        "ok alice kicked, 1 session closed\r\n"
    );
    assert_eq!(h.take(alice), "+OK cquit 'kicked by an administrator'\r\n");
    assert_eq!(h.closed(alice), Some(CloseReason::Kicked));
    assert_eq!(h.take(bob), "cquit alice\r\n");
    assert_eq!(admin(&mut h, "kick alice"), "err alice is not online\r\n");
}

#[test]
fn an_ip_ban_closes_connections_from_it_and_refuses_new_ones() {
    let mut h = Harness::new(Config::default());
    let banned = h.connect_from(Protocol::Ws2017, [10, 0, 0, 7]);
    h.send(banned, "uname mallory\r\n");
    let other = ws(&mut h, "alice");
    h.take(banned);
    assert_eq!(
        admin(&mut h, "ban ip 10.0.0.7"),
        "ok 10.0.0.7 banned, 1 connection closed\r\n"
    );
    assert_eq!(h.take(banned), "+OK cquit 'banned by an administrator'\r\n");
    assert_eq!(h.closed(banned), Some(CloseReason::Banned));
    assert_eq!(h.take(other), "cquit mallory\r\n");
    assert_eq!(h.closed(other), None);
    assert!(h.store.ip_bans.contains(&[10, 0, 0, 7].into()));
    let again = h.connect_from(Protocol::Ws2017, [10, 0, 0, 7]);
    assert_eq!(h.take(again), "-ERR 'your IP address is banned'\r\n");
    assert_eq!(h.closed(again), Some(CloseReason::Banned));
    assert_eq!(
        admin(&mut h, "ban list"),
        "ip 10.0.0.7\r\nok bans listed\r\n"
    );
    assert_eq!(
        admin(&mut h, "unban ip 10.0.0.7"),
        "ok 10.0.0.7 not banned\r\n"
    );
    assert!(h.store.ip_bans.is_empty());
    let welcome = h.connect_from(Protocol::Ws2017, [10, 0, 0, 7]);
    assert!(h.take(welcome).starts_with("+OK "));
}

#[test]
fn a_user_ban_is_durable_and_listed() {
    let mut h = Harness::new(Config::default());
    admin(&mut h, "user add bob pw");
    assert_eq!(admin(&mut h, "ban user bob"), "ok bob banned\r\n");
    let key = UserName::parse("bob").unwrap().key();
    assert!(h.store.account(&key).unwrap().banned);
    assert_eq!(admin(&mut h, "ban list"), "user bob\r\nok bans listed\r\n");
    assert_eq!(admin(&mut h, "unban user bob"), "ok bob not banned\r\n");
    assert!(!h.store.account(&key).unwrap().banned);
    assert_eq!(
        admin(&mut h, "ban user nobody"),
        "err no account nobody\r\n"
    );
}

#[test]
fn while_the_store_fails_durable_commands_are_refused_and_nothing_changes() {
    let mut h = Harness::new(Config::default());
    h.auto_commit = false;
    let c = h.connect(Protocol::Admin);
    h.send(c, "user add bob pw\r\n");
    h.fail_commit();
    assert_eq!(
        h.take(c),
        "",
        "the first change waits for the retried batch"
    );
    // Another connection: its answers are not held behind the first one's.
    let d = h.connect(Protocol::Admin);
    h.send(d, "user add carol pw\r\nban ip 10.1.1.1\r\nkick nobody\r\n");
    assert_eq!(
        h.take(d),
        "err the store is failing; nothing was changed, try again later\r\n\
         err the store is failing; nothing was changed, try again later\r\n\
         err nobody is not online\r\n"
    );
    assert_eq!(h.uncommitted().len(), 1);
    // The retried batch succeeds: the first answer goes out and durable work resumes.
    h.commit();
    assert_eq!(h.take(c), "ok account bob created\r\n");
    h.send(d, "user add carol pw\r\n");
    h.commit();
    assert_eq!(h.take(d), "ok account carol created\r\n");
    assert_eq!(h.store.accounts.len(), 2);
}

#[test]
fn commands_queued_behind_a_hash_run_in_order() {
    let mut h = Harness::new(Config::default());
    let c = h.connect(Protocol::Admin);
    h.send(c, "user add bob pw\r\nuser list\r\nuser del bob\r\n");
    assert_eq!(
        h.take(c),
        "ok account bob created\r\n\
         user bob level=0 banned=no created=1700000000000 email= gender=\r\n\
         ok 1 account\r\n\
         ok account bob deleted\r\n"
    );
}

#[test]
fn empty_passwords_are_refused_however_they_are_written() {
    let mut h = Harness::new(Config::default());
    for command in [
        AdminCommand::UserAdd {
            name: "bob".into(),
            password: String::new(),
            level: 1,
            email: Some("b@example.org".into()),
            gender: None,
        },
        AdminCommand::UserAdd {
            name: "bob".into(),
            password: String::new(),
            level: 0,
            email: None,
            gender: None,
        },
    ] {
        let line = command.to_line();
        assert_eq!(AdminCommand::parse(&line), Ok(command), "{line:?}");
        assert_eq!(
            admin(&mut h, &line),
            "err the password is empty\r\n",
            "{line:?}"
        );
    }
    assert_eq!(
        admin(&mut h, "user add bob"),
        "err the password is empty\r\n"
    );
    assert!(h.store.accounts.is_empty(), "no account was made");
    assert_eq!(
        admin(&mut h, "user add bob pw"),
        "ok account bob created\r\n"
    );
    let passwd = AdminCommand::UserPasswd {
        name: "bob".into(),
        password: String::new(),
    };
    let line = passwd.to_line();
    assert_eq!(AdminCommand::parse(&line), Ok(passwd), "{line:?}");
    assert_eq!(admin(&mut h, &line), "err the password is empty\r\n");
    let key = UserName::parse("bob").unwrap().key();
    assert_eq!(h.store.account(&key).unwrap().password.0, "test$pw");
}

#[test]
fn listings_count_in_the_right_number() {
    let mut h = Harness::new(Config::default());
    assert_eq!(admin(&mut h, "user list"), "ok 0 accounts\r\n");
    admin(&mut h, "user add bob pw");
    assert!(admin(&mut h, "user list").ends_with("\r\nok 1 account\r\n"));
    admin(&mut h, "user add amy pw");
    assert!(admin(&mut h, "user list").ends_with("\r\nok 2 accounts\r\n"));
}

#[test]
fn commands_round_trip_through_their_line_form() {
    let commands = [
        AdminCommand::UserAdd {
            name: "bob".into(),
            password: "p w%=x".into(),
            level: 3,
            email: Some("b@x y".into()),
            gender: None,
        },
        AdminCommand::UserDel { name: "bob".into() },
        AdminCommand::UserList,
        AdminCommand::UserPasswd {
            name: "bob".into(),
            password: "\r\n".into(),
        },
        AdminCommand::BanIp("::1".parse().unwrap()),
        AdminCommand::UnbanIp("10.0.0.1".parse().unwrap()),
        AdminCommand::BanUser { name: "bob".into() },
        AdminCommand::UnbanUser { name: "bob".into() },
        AdminCommand::BanList,
        AdminCommand::Kick { name: "bob".into() },
        AdminCommand::UserExists { name: "b b".into() },
        AdminCommand::UserCheck {
            name: "bob".into(),
            password: "p w%=x".into(),
        },
    ];
    for command in commands {
        let line = command.to_line();
        assert!(!line.contains(['\r', '\n']), "{line:?}");
        assert_eq!(AdminCommand::parse(&line), Ok(command), "{line:?}");
    }
    assert_eq!(
        AdminCommand::parse("ban ip nope"),
        Err(AdminParseError::Malformed("not an IP address"))
    );
}

#[test]
fn replies_that_reveal_an_uncommitted_change_wait_for_it_and_others_do_not() {
    let mut h = Harness::new(Config::default());
    h.auto_commit = false;
    let first = h.connect(Protocol::Admin);
    h.send(first, "user add bob pw\r\n");
    // Another administrator: listing, or adding bob again, would reveal the pending
    // account; kicking someone who is not online reveals nothing durable.
    let second = h.connect(Protocol::Admin);
    h.send(second, "user list\r\n");
    let third = h.connect(Protocol::Admin);
    h.send(third, "user add BOB pw\r\n");
    let fourth = h.connect(Protocol::Admin);
    h.send(fourth, "kick nobody\r\n");
    assert_eq!(h.take(fourth), "err nobody is not online\r\n");
    // A ws2017 client asking for the pending name waits too; one asking for a free name
    // does not.
    let guest = h.connect(Protocol::Ws2017);
    h.take(guest);
    h.send(guest, "uname bob\r\n");
    let other = h.connect(Protocol::Ws2017);
    h.take(other);
    h.send(other, "uname carol\r\n");
    assert_eq!(h.take(other), "+OK uname you are carol\r\n");
    for c in [first, second, third, guest] {
        assert_eq!(h.take(c), "", "{c} must wait for the commit");
    }
    h.commit();
    assert_eq!(h.take(first), "ok account bob created\r\n");
    assert!(h.take(second).ends_with("ok 1 account\r\n"));
    assert_eq!(h.take(third), "err account BOB exists\r\n");
    // Behind the refusal, in order: the news that carol joined meanwhile.
    assert_eq!(
        h.take(guest),
        "-ERR uname suggested bob2\r\nnuser carol\r\n"
    );
}

#[test]
fn an_account_cannot_take_a_name_a_guest_is_using() {
    let mut h = Harness::new(Config::default());
    let _bob = ws(&mut h, "Bob");
    assert_eq!(
        admin(&mut h, "user add bob pw"),
        "err Bob is online without an account; kick them first\r\n"
    );
    assert!(h.store.accounts.is_empty());
}

#[test]
fn user_exists_answers_by_the_name_rules() {
    let mut h = Harness::new(Config::default());
    admin(&mut h, "user add Alice pw");
    assert_eq!(
        admin(&mut h, "user exists ALICE"),
        "ok account Alice exists\r\n"
    );
    assert_eq!(admin(&mut h, "user exists bob"), "err no account bob\r\n");
    assert_eq!(
        admin(&mut h, "user exists a%20b"),
        "err \"a b\": username contains invalid characters\r\n"
    );
    assert_eq!(
        admin(&mut h, "user exists"),
        "err wrong number of fields\r\n"
    );
}

#[test]
fn user_check_verifies_the_password_and_refuses_banned_accounts() {
    let mut h = Harness::new(Config::default());
    admin(&mut h, "user add Alice s3cret%20pw");
    assert_eq!(
        admin(&mut h, "user check alice s3cret%20pw"),
        "ok password of Alice matches\r\n"
    );
    assert_eq!(
        admin(&mut h, "user check alice s3cret"),
        "err wrong password for Alice\r\n"
    );
    assert_eq!(
        admin(&mut h, "user check alice"),
        "err wrong password for Alice\r\n"
    );
    assert_eq!(admin(&mut h, "user check bob pw"), "err no account bob\r\n");
    admin(&mut h, "ban user alice");
    assert_eq!(
        admin(&mut h, "user check alice s3cret%20pw"),
        "err Alice is banned\r\n"
    );
}

#[test]
fn failed_checks_lock_the_account_out_until_the_lockout_ends() {
    let mut config = Config::default();
    config.limits.failed_logins_per_account = 3;
    let lockout = config.limits.login_lockout.as_millis() as u64;
    let mut h = Harness::new(config);
    admin(&mut h, "user add alice right");
    admin(&mut h, "user add bob right");
    for _ in 0..3 {
        assert_eq!(
            admin(&mut h, "user check alice wrong"),
            "err wrong password for alice\r\n"
        );
    }
    // Locked out: even the right password is refused, on a new connection too.
    let throttled = "err too many failed logins for alice; try again later\r\n";
    assert_eq!(admin(&mut h, "user check alice right"), throttled);
    assert_eq!(admin(&mut h, "user check ALICE wrong"), throttled);
    // Another account is not held up.
    for _ in 0..5 {
        assert_eq!(
            admin(&mut h, "user check bob right"),
            "ok password of bob matches\r\n"
        );
    }
    h.advance(lockout - 1);
    assert_eq!(admin(&mut h, "user check alice right"), throttled);
    h.advance(1);
    assert_eq!(
        admin(&mut h, "user check alice right"),
        "ok password of alice matches\r\n"
    );
    // A success ends the run: three more failures are needed to lock it again.
    for _ in 0..2 {
        assert_eq!(
            admin(&mut h, "user check alice wrong"),
            "err wrong password for alice\r\n"
        );
    }
    assert_eq!(
        admin(&mut h, "user check alice right"),
        "ok password of alice matches\r\n"
    );
}

#[test]
fn status_reports_version_runtime_uptime_and_who_is_online_per_protocol() {
    let config = Config {
        version: "9.8.7".into(),
        runtime: "mio".into(),
        ..Config::default()
    };
    let mut h = Harness::new(config);
    ws(&mut h, "alice");
    ws(&mut h, "bob");
    h.connect(Protocol::Ims);
    h.advance(9_500);
    let status = admin(&mut h, "status");
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines[..2], ["version 9.8.7", "runtime mio"], "{status}");
    assert_eq!(lines[2], "uptime 9", "{status}");
    assert!(
        lines.contains(&"protocol ws2017 connections=2 sessions=2"),
        "{status}"
    );
    assert!(
        lines.contains(&"protocol ims connections=1 sessions=0"),
        "{status}"
    );
    assert!(
        lines.contains(&"protocol admin connections=1 sessions=0"),
        "{status}"
    );
    assert!(lines.contains(&"users online=2"), "{status}");
    assert_eq!(lines.last(), Some(&"ok status"));
    assert_eq!(AdminCommand::parse("status"), Ok(AdminCommand::Status));
    assert_eq!(AdminCommand::Status.to_line(), "status");
    assert_eq!(
        AdminCommand::parse("status now"),
        Err(AdminParseError::Malformed("wrong number of fields"))
    );
}
