//! ws2017 behaviour, rule by rule (seed and PROTOCOLS.md).

use core::time::Duration;

use bytes::BytesMut;

use super::codec::{encode, parse, Command, ParseError, Reply};
use crate::tests::harness::Harness;
use crate::{CloseReason, Config, ConnId, Protocol};

const GREETING: &str = "+OK switchboard ws2017 ready\r\n";

fn harness() -> Harness {
    Harness::new(Config::default())
}

/// Connects a client and reads its greeting.
fn client(h: &mut Harness) -> ConnId {
    let c = h.connect(Protocol::Ws2017);
    assert_eq!(h.take(c), GREETING);
    c
}

/// Connects a client and names it, draining the others' `nuser`.
fn named(h: &mut Harness, name: &str, others: &[ConnId]) -> ConnId {
    let c = client(h);
    h.send(c, format!("uname {name}\r\n"));
    assert_eq!(h.take(c), format!("+OK uname 'you are' {name}\r\n"));
    for &o in others {
        assert_eq!(h.take(o), format!("nuser {name}\r\n"));
    }
    c
}

#[test]
fn greeting_on_connect() {
    let mut h = harness();
    let c = h.connect(Protocol::Ws2017);
    assert_eq!(h.take(c), GREETING);
}

#[test]
fn first_uname_is_confirmed_and_broadcast_to_every_other_client() {
    let mut h = harness();
    let unnamed = client(&mut h);
    let alice = named(&mut h, "alice", &[unnamed]);
    let _bob = named(&mut h, "bob", &[unnamed, alice]);
}

#[test]
fn keywords_are_case_insensitive_and_names_may_be_quoted() {
    let mut h = harness();
    let c = client(&mut h);
    h.send(c, "UnAmE 'alice'\r\n");
    assert_eq!(h.take(c), "+OK uname 'you are' alice\r\n");
    h.send(c, "CGETU\r\n");
    assert_eq!(h.take(c), "+OK cgetu alice\r\n");
}

#[test]
fn bare_lf_is_accepted_and_replies_end_with_crlf() {
    let mut h = harness();
    let c = client(&mut h);
    h.send(c, "uname alice\ncgetu\n");
    assert_eq!(
        h.take(c),
        "+OK uname 'you are' alice\r\n+OK cgetu alice\r\n"
    );
}

#[test]
fn a_taken_name_gets_the_first_free_suggestion() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let alice2 = named(&mut h, "alice2", &[alice]);
    let c = client(&mut h);
    h.send(c, "uname alice\r\n");
    assert_eq!(h.take(c), "-ERR uname alice3\r\n");
    // Names clash regardless of case; the suggestion keeps the case asked for.
    h.send(c, "uname ALICE\r\n");
    assert_eq!(h.take(c), "-ERR uname ALICE3\r\n");
    // Nothing was announced.
    assert_eq!(h.take(alice), "");
    assert_eq!(h.take(alice2), "");
}

#[test]
fn a_suggestion_for_a_full_length_name_stays_within_the_limit() {
    let mut h = harness();
    let long = "x".repeat(32);
    let first = named(&mut h, &long, &[]);
    let c = client(&mut h);
    h.send(c, format!("uname {long}\r\n"));
    assert_eq!(h.take(c), format!("-ERR uname {}2\r\n", "x".repeat(31)));
    assert_eq!(h.take(first), "");
}

#[test]
fn invalid_names_are_refused_with_the_reason() {
    let mut h = harness();
    let c = client(&mut h);
    h.send(c, "uname 'a b'\r\n");
    assert_eq!(
        h.take(c),
        "-ERR uname 'username contains invalid characters'\r\n"
    );
    h.send(c, format!("uname {}\r\n", "x".repeat(33)));
    assert_eq!(h.take(c), "-ERR uname 'username is too long'\r\n");
    h.send(c, "uname ''\r\n");
    assert_eq!(h.take(c), "-ERR uname 'username is empty'\r\n");
    h.send(c, "uname a@b\r\n");
    assert_eq!(
        h.take(c),
        "-ERR uname 'username contains invalid characters'\r\n"
    );
}

#[test]
fn renaming_is_confirmed_announced_and_frees_the_old_name() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    h.send(alice, "uname carol\r\n");
    assert_eq!(h.take(alice), "+OK uname carol\r\n");
    assert_eq!(h.take(bob), "+OK nuser alice carol\r\n");
    let again = named(&mut h, "alice", &[alice, bob]);
    h.send(again, "cgetu\r\n");
    assert_eq!(h.take(again), "+OK cgetu alice bob carol\r\n");
}

#[test]
fn renaming_to_the_same_name_is_an_error_but_a_change_of_case_is_a_rename() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    h.send(alice, "uname alice\r\n");
    assert_eq!(h.take(alice), "-ERR uname 'same username entered'\r\n");
    h.send(alice, "uname Alice\r\n");
    assert_eq!(h.take(alice), "+OK uname Alice\r\n");
    assert_eq!(h.take(bob), "+OK nuser alice Alice\r\n");
    h.send(alice, "uname BOB\r\n");
    assert_eq!(h.take(alice), "-ERR uname BOB2\r\n");
    assert_eq!(h.take(bob), "");
}

#[test]
fn cgetu_lists_every_online_user_including_oneself() {
    let mut h = harness();
    let carol = named(&mut h, "carol", &[]);
    let alice = named(&mut h, "Alice", &[carol]);
    let _unnamed = client(&mut h);
    let bob = named(&mut h, "bob", &[carol, alice]);
    for c in [carol, alice, bob] {
        h.send(c, "cgetu\r\n");
        assert_eq!(h.take(c), "+OK cgetu Alice bob carol\r\n");
    }
}

#[test]
fn cgetg_answers_no_games() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    h.send(alice, "cgetg\r\n");
    assert_eq!(h.take(alice), "+OK cgetg\r\n");
}

#[test]
fn chatm_is_relayed_and_its_receipt_goes_back_to_the_sender() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    let carol = named(&mut h, "carol", &[alice, bob]);
    h.send(alice, "chatm 'alice' 'bob' 'hello there, bob'\r\n");
    assert_eq!(h.take(alice), "+OK chatm 'message relayed'\r\n");
    assert_eq!(h.take(bob), "chatm alice bob 'hello there, bob'\r\n");
    h.send(bob, "chatr alice bob\r\n");
    assert_eq!(h.take(bob), "");
    assert_eq!(h.take(alice), "chatr alice bob\r\n");
    // Nobody else sees any of it.
    assert_eq!(h.take(carol), "");
    // A second receipt for the same message is owed to nobody and dropped.
    h.send(bob, "chatr alice bob\r\n");
    assert_eq!(h.take(alice), "");
    assert_eq!(h.take(bob), "");
}

#[test]
fn chatm_accepts_unquoted_names_and_a_message_with_quotes_inside() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    h.send(alice, "chatm alice BOB 'it's fine'\r\n");
    assert_eq!(h.take(alice), "+OK chatm 'message relayed'\r\n");
    assert_eq!(h.take(bob), "chatm alice bob 'it's fine'\r\n");
    h.send(alice, "chatm alice bob unquoted words\r\n");
    assert_eq!(h.take(bob), "chatm alice bob 'unquoted words'\r\n");
}

#[test]
fn chatm_to_oneself_is_delivered_to_oneself() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    h.send(alice, "chatm 'alice' 'alice' 'note to self'\r\n");
    assert_eq!(
        h.take(alice),
        "+OK chatm 'message relayed'\r\nchatm alice alice 'note to self'\r\n"
    );
    h.send(alice, "chatr alice alice\r\n");
    assert_eq!(h.take(alice), "chatr alice alice\r\n");
    assert_eq!(h.take(bob), "");
}

#[test]
fn chatm_errors_name_the_command() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    h.send(alice, "chatm 'bob' 'alice' 'forged'\r\n");
    assert_eq!(
        h.take(alice),
        "-ERR chatm 'sender name bob is not yours'\r\n"
    );
    h.send(alice, "chatm 'alice' 'nobody' 'hello?'\r\n");
    assert_eq!(
        h.take(alice),
        "-ERR chatm 'recipient name nobody does not exist'\r\n"
    );
    h.send(alice, "chatm 'alice' 'no body' 'hello?'\r\n");
    assert_eq!(
        h.take(alice),
        "-ERR chatm 'recipient name no body does not exist'\r\n"
    );
    assert_eq!(h.take(bob), "");
}

#[test]
fn chatr_errors_name_the_command() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    h.send(bob, "chatr alice carol\r\n");
    assert_eq!(
        h.take(bob),
        "-ERR chatr 'recipient name carol is not yours'\r\n"
    );
    h.send(bob, "chatr nobody bob\r\n");
    assert_eq!(
        h.take(bob),
        "-ERR chatr 'sender name nobody does not exist'\r\n"
    );
    assert_eq!(h.take(alice), "");
}

#[test]
fn chatw_is_relayed_and_echoed_to_the_sender() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    let carol = named(&mut h, "carol", &[alice, bob]);
    h.send(alice, "chatw alice bob 'psst'\r\n");
    assert_eq!(
        h.take(alice),
        "+OK chatw 'message relayed'\r\nchatw alice bob 'psst'\r\n"
    );
    assert_eq!(h.take(bob), "chatw alice bob 'psst'\r\n");
    assert_eq!(h.take(carol), "");
    // To oneself: one copy only.
    h.send(alice, "chatw alice alice 'me'\r\n");
    assert_eq!(
        h.take(alice),
        "+OK chatw 'message relayed'\r\nchatw alice alice 'me'\r\n"
    );
}

#[test]
fn a_client_cping_gets_cpong() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    h.send(alice, "cping\r\n");
    assert_eq!(h.take(alice), "+OK cpong\r\n");
}

#[test]
fn the_server_pings_every_interval_and_answered_pings_keep_the_connection() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    h.advance(1_999);
    assert_eq!(h.take(alice), "");
    h.advance(1);
    assert_eq!(h.take(alice), "cping\r\n");
    for _ in 0..20 {
        h.send(alice, "+OK cpong\r\n");
        h.advance(2_000);
        assert_eq!(h.take(alice), "cping\r\n");
        h.send(alice, "cpong\r\n");
    }
    assert_eq!(h.closed(alice), None);
}

#[test]
fn an_unanswered_ping_closes_the_connection_after_the_timeout() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    // bob answers, alice does not.
    for _ in 0..8 {
        h.advance(2_000);
        h.send(bob, "cpong\r\n");
    }
    // First ping at 2 s; 15 s later, at 17 s, alice is gone.
    h.advance(999);
    assert_eq!(h.closed(alice), None);
    h.advance(1);
    assert_eq!(h.closed(alice), Some(CloseReason::Timeout));
    assert_eq!(h.closed(bob), None);
    let seen = h.take(bob);
    assert!(seen.ends_with("cquit alice\r\n"), "{seen:?}");
    assert_eq!(seen.matches("cping\r\n").count(), 8);
    // The name is free again.
    let _again = named(&mut h, "alice", &[bob]);
}

#[test]
fn pings_start_before_a_name_is_set_and_may_be_answered_then() {
    let mut h = harness();
    let c = client(&mut h);
    h.advance(2_000);
    assert_eq!(h.take(c), "cping\r\n");
    h.send(c, "+OK cpong\r\n");
    assert_eq!(h.take(c), "");
    h.advance(30_000);
    assert_eq!(h.closed(c), Some(CloseReason::Timeout));
}

#[test]
fn the_ping_settings_are_configurable() {
    let mut config = Config::default();
    config.ws2017.ping_interval = Duration::from_millis(500);
    config.ws2017.ping_timeout = Duration::from_secs(1);
    let mut h = Harness::new(config);
    let c = client(&mut h);
    h.advance(500);
    assert_eq!(h.take(c), "cping\r\n");
    h.advance(999);
    assert_eq!(h.closed(c), None);
    h.advance(1);
    assert_eq!(h.closed(c), Some(CloseReason::Timeout));
}

#[test]
fn cquit_says_goodbye_closes_and_tells_the_others() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    h.send(alice, "cquit\r\ncgetu\r\n");
    assert_eq!(
        h.take(alice),
        "+OK cquit 'terminating tasks and disconnecting'\r\n"
    );
    assert_eq!(h.closed(alice), Some(CloseReason::Quit));
    assert_eq!(h.take(bob), "cquit alice\r\n");
    h.send(bob, "cgetu\r\n");
    assert_eq!(h.take(bob), "+OK cgetu bob\r\n");
}

#[test]
fn cquit_before_a_name_closes_without_a_leave_notice() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let c = client(&mut h);
    h.send(c, "cquit\r\n");
    assert_eq!(
        h.take(c),
        "+OK cquit 'terminating tasks and disconnecting'\r\n"
    );
    assert_eq!(h.closed(c), Some(CloseReason::Quit));
    assert_eq!(h.take(alice), "");
}

#[test]
fn a_dropped_connection_frees_the_name_and_tells_the_others() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    h.peer_close(alice);
    // The peer is gone: no Close output is needed for it.
    assert_eq!(h.closed(alice), None);
    assert_eq!(h.take(bob), "cquit alice\r\n");
    let _again = named(&mut h, "alice", &[bob]);
    // Input for the dead connection is ignored.
    h.send(alice, "cgetu\r\n");
    assert_eq!(h.take(alice), "");
}

#[test]
fn unknown_commands_get_the_seeds_error_and_the_connection_keeps_working() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    for line in [
        "hello",
        "xyzzy 1 2 3",
        "newgm",
        "+OK something",
        "chat",
        "unames bob",
    ] {
        h.send(alice, format!("{line}\r\n"));
        assert_eq!(
            h.take(alice),
            "-ERR 'entered command does not exist'\r\n",
            "{line:?}"
        );
    }
    h.send(alice, "cgetu\r\n");
    assert_eq!(h.take(alice), "+OK cgetu alice\r\n");
}

#[test]
fn badly_formatted_commands_get_the_seeds_error() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let cases = [
        ("uname", "uname"),
        ("uname a b", "uname"),
        ("UNAME 'unclosed", "uname"),
        ("cgetu x", "cgetu"),
        ("cgetg x", "cgetg"),
        ("cping x", "cping"),
        ("cpong x", "cpong"),
        ("cquit now", "cquit"),
        ("chatm", "chatm"),
        ("chatm alice", "chatm"),
        ("chatm alice bob", "chatm"),
        ("chatw alice bob", "chatw"),
        ("chatm 'alice bob hi", "chatm"),
        ("chatr alice", "chatr"),
        ("chatr alice bob carol", "chatr"),
    ];
    for (line, keyword) in cases {
        h.send(alice, format!("{line}\r\n"));
        assert_eq!(
            h.take(alice),
            format!("-ERR '{keyword} is not a properly formatted command'\r\n"),
            "{line:?}"
        );
    }
    h.send(alice, b"uname \xff\xfe\r\n".to_vec());
    assert_eq!(
        h.take(alice),
        "-ERR 'uname is not a properly formatted command'\r\n"
    );
    assert_eq!(h.closed(alice), None);
}

#[test]
fn only_uname_and_cquit_are_allowed_before_a_name() {
    let mut h = harness();
    let c = client(&mut h);
    for keyword in ["cgetu", "cgetg", "cping"] {
        h.send(c, format!("{keyword}\r\n"));
        assert_eq!(
            h.take(c),
            format!("-ERR {keyword} 'not allowed before uname'\r\n")
        );
    }
    h.send(c, "chatm a b 'c'\r\nchatw a b 'c'\r\nchatr a b\r\n");
    assert_eq!(
        h.take(c),
        "-ERR chatm 'not allowed before uname'\r\n-ERR chatw 'not allowed before uname'\r\n-ERR chatr 'not allowed before uname'\r\n"
    );
}

#[test]
fn blank_lines_are_ignored() {
    let mut h = harness();
    let c = client(&mut h);
    h.send(c, "\r\n  \r\n\n");
    assert_eq!(h.take(c), "");
}

#[test]
fn a_line_over_the_limit_is_refused_without_buffering_it_and_the_next_line_works() {
    let mut config = Config::default();
    config.ws2017.max_line_bytes = 64;
    let mut h = Harness::new(config);
    let alice = named(&mut h, "alice", &[]);
    h.send(alice, format!("chatm alice alice '{}", "x".repeat(100)));
    assert_eq!(h.take(alice), "-ERR 'line is too long'\r\n");
    for _ in 0..100 {
        h.send(alice, "y".repeat(1000));
        assert!(h.server.stats().max_inbound_bytes <= 65);
    }
    h.send(alice, "'\r\ncgetu\r\n");
    assert_eq!(h.take(alice), "+OK cgetu alice\r\n");
}

#[test]
fn a_client_that_stops_reading_is_closed_once_its_queue_passes_the_limit() {
    let mut h = Harness::new(Config {
        outbound_limit_bytes: 4096,
        ..Config::default()
    });
    h.auto_written = false;
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    let mut sent = 0;
    while h.closed(bob).is_none() {
        h.send(
            alice,
            "chatm alice bob 'a message that bob will never read'\r\n",
        );
        sent += 1;
        assert!(sent < 200, "bob was never closed");
        assert!(h.server.stats().max_unwritten_bytes <= 4096 + 512);
    }
    assert_eq!(h.closed(bob), Some(CloseReason::SlowReader));
    h.take(alice);
    h.send(alice, "cgetu\r\n");
    assert!(h.take(alice).ends_with("+OK cgetu alice\r\n"));
}

#[test]
fn written_reports_free_room_in_the_outbound_queue() {
    let mut h = Harness::new(Config {
        outbound_limit_bytes: 4096,
        ..Config::default()
    });
    // Clients that read: the same traffic never trips the limit.
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    for _ in 0..500 {
        h.send(alice, "chatm alice bob 'a message that bob reads'\r\n");
    }
    assert_eq!(h.closed(bob), None);
}

/// Plays a conversation of three clients once with whole lines and once a byte at a
/// time, and expects the same bytes out.
#[test]
fn any_split_of_the_input_gives_the_same_output() {
    let script: &[(usize, &str)] = &[
        (0, "uname alice\r\n"),
        (1, "UNAME 'bob'\n"),
        (2, "uname alice\r\n"),
        (2, "uname carol\r\n"),
        (0, "chatm 'alice' 'bob' 'hi bob'\r\n"),
        (1, "chatr alice bob\r\n"),
        (1, "chatw bob carol 'psst'\r\n"),
        (2, "garbage in\r\n"),
        (2, "chatm\r\n"),
        (0, "cgetu\r\n"),
        (1, "uname robert\r\n"),
        (0, "cquit\r\n"),
        (2, "cgetu\r\n"),
    ];
    let run = |bytewise: bool| -> Vec<String> {
        let mut h = harness();
        let clients: Vec<ConnId> = (0..3).map(|_| h.connect(Protocol::Ws2017)).collect();
        for &(who, line) in script {
            if bytewise {
                for b in line.bytes() {
                    h.send(clients[who], vec![b]);
                }
            } else {
                h.send(clients[who], line);
            }
        }
        clients.iter().map(|&c| h.take(c)).collect()
    };
    let whole = run(false);
    assert!(whole[2].contains("chatw bob carol 'psst'"), "{whole:?}");
    assert_eq!(run(true), whole);
}

#[test]
fn parse_table() {
    let ok = |line: &str| parse(line.as_bytes());
    assert_eq!(ok("uname bob"), Ok(Command::Uname { name: "bob".into() }));
    assert_eq!(
        ok("  uname   'bob'  "),
        Ok(Command::Uname { name: "bob".into() })
    );
    assert_eq!(ok("+ok CPONG"), Ok(Command::Cpong));
    assert_eq!(
        ok("chatm a b 'x' 'y'"),
        Ok(Command::Chat {
            whisper: false,
            sender: "a".into(),
            recipient: "b".into(),
            message: "x' 'y".into()
        })
    );
    assert_eq!(
        ok("chatw 'a' 'b' ''"),
        Ok(Command::Chat {
            whisper: true,
            sender: "a".into(),
            recipient: "b".into(),
            message: String::new()
        })
    );
    assert_eq!(ok(""), Err(ParseError::Empty));
    assert_eq!(ok("nope"), Err(ParseError::Unknown));
    assert_eq!(
        ok("\u{1}bad\u{7f} x"),
        Err(ParseError::Unknown),
        "an unknown keyword, even with control characters"
    );
}

#[test]
fn replies_are_always_one_crlf_line() {
    let mut out = BytesMut::new();
    let reply = Reply::Chat {
        whisper: false,
        from: "ims_user",
        to: "bob",
        body: "two\r\nlines\tand\u{0}nul",
    };
    encode(&reply, &mut out);
    assert_eq!(&out[..], b"chatm ims_user bob 'two  lines and nul'\r\n");
}

/// Registers `name` through the admin protocol.
fn register(h: &mut Harness, name: &str) {
    let admin = h.connect(Protocol::Admin);
    h.send(admin, format!("user add {name} pw\r\n"));
    assert_eq!(h.take(admin), format!("ok account {name} created\r\n"));
}

#[test]
fn a_message_for_an_offline_account_is_stored_and_acknowledged_only_once_committed() {
    let mut h = harness();
    register(&mut h, "Bob");
    let alice = named(&mut h, "alice", &[]);
    h.auto_commit = false;
    h.send(alice, "chatm alice bob 'see you later'\r\ncgetu\r\n");
    // The acknowledgement, and everything after it, waits for the commit.
    assert_eq!(h.take(alice), "");
    assert!(h.store.offline.is_empty());
    h.commit();
    assert_eq!(
        h.take(alice),
        "+OK chatm 'message stored'\r\n+OK cgetu alice\r\n"
    );
    let queue = h.store.offline.values().next().expect("stored");
    assert_eq!(queue.len(), 1);
    assert_eq!(
        (queue[0].from.as_str(), queue[0].to.as_str()),
        ("alice", "Bob")
    );
    assert_eq!(queue[0].body, "see you later");
}

#[test]
fn a_whisper_for_an_offline_account_is_stored_and_echoed() {
    let mut h = harness();
    register(&mut h, "bob");
    let alice = named(&mut h, "alice", &[]);
    h.send(alice, "chatw alice bob 'psst'\r\n");
    assert_eq!(
        h.take(alice),
        "+OK chatw 'message stored'\r\nchatw alice bob 'psst'\r\n"
    );
}

#[test]
fn while_the_store_fails_messages_for_offline_accounts_are_refused_but_chat_goes_on() {
    let mut h = harness();
    register(&mut h, "bob");
    let alice = named(&mut h, "alice", &[]);
    let carol = named(&mut h, "carol", &[alice]);
    h.auto_commit = false;
    h.fail_commit();
    h.send(alice, "chatm alice bob 'hello?'\r\n");
    assert_eq!(
        h.take(alice),
        "-ERR chatm 'message could not be stored, try again later'\r\n"
    );
    h.send(alice, "chatm alice carol 'live chat still works'\r\n");
    assert_eq!(h.take(alice), "+OK chatm 'message relayed'\r\n");
    assert_eq!(
        h.take(carol),
        "chatm alice carol 'live chat still works'\r\n"
    );
    assert!(h.uncommitted.is_empty());
}

#[test]
fn a_full_mailbox_is_reported_to_the_sender() {
    let mut h = Harness::new(Config {
        offline_cap: 2,
        offline_share_percent: 100,
        ..Config::default()
    });
    register(&mut h, "bob");
    let alice = named(&mut h, "alice", &[]);
    for _ in 0..2 {
        h.send(alice, "chatm alice bob 'x'\r\n");
        assert_eq!(h.take(alice), "+OK chatm 'message stored'\r\n");
    }
    h.send(alice, "chatm alice bob 'x'\r\n");
    assert_eq!(h.take(alice), "-ERR chatm 'the mailbox of bob is full'\r\n");
    assert_eq!(h.store.offline.values().next().map(|q| q.len()), Some(2));
}

#[test]
fn a_zero_ping_interval_does_not_spin() {
    let mut config = Config::default();
    config.ws2017.ping_interval = Duration::ZERO;
    config.ws2017.ping_timeout = Duration::ZERO;
    let mut h = Harness::new(config);
    let c = client(&mut h);
    h.advance(5);
    assert!(h.take(c).starts_with("cping\r\n"));
    assert_eq!(h.closed(c), Some(CloseReason::Timeout));
}

#[test]
fn a_client_whose_output_waits_for_a_commit_is_not_timed_out_meanwhile() {
    let mut h = harness();
    register(&mut h, "bob");
    let alice = named(&mut h, "alice", &[]);
    h.auto_commit = false;
    h.send(alice, "chatm alice bob 'stored later'\r\n");
    // The commit takes a minute: alice hears nothing (her pings queue behind the ack),
    // so her silence is no reason to drop her.
    h.advance(60_000);
    assert_eq!(h.closed(alice), None);
    assert_eq!(h.take(alice), "");
    h.commit();
    let heard = h.take(alice);
    assert!(
        heard.starts_with("+OK chatm 'message stored'\r\ncping\r\n"),
        "{heard:?}"
    );
    // Once she hears again, unanswered pings count as before.
    h.advance(15_001);
    assert_eq!(h.closed(alice), Some(CloseReason::Timeout));
}

#[test]
fn constant_replies_match_their_encoding() {
    use super::codec::constant;
    for reply in [
        Reply::Ping,
        Reply::Pong,
        Reply::Games,
        Reply::Bye,
        Reply::Relayed { whisper: false },
        Reply::Relayed { whisper: true },
    ] {
        let mut out = BytesMut::new();
        encode(&reply, &mut out);
        assert_eq!(constant(&reply), Some(&out[..]), "{reply:?}");
    }
}
