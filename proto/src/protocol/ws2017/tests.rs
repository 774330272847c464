//! ws2017 behaviour, rule by rule (seed and PROTOCOLS.md).

use core::time::Duration;

use bytes::BytesMut;

use super::codec::{encode, parse, Command, ParseError, Reply};
use crate::tests::harness::Harness;
use crate::{CloseReason, Config, ConnId, Protocol};

const GREETING: &str = "+OK switchboard ws2017 ready\r\n";

/// The default limits without a chat-message rate, for tests that flood one recipient
/// to reach its outbound limit.
fn unmetered_messages() -> crate::Limits {
    let unmetered = crate::RateLimit {
        per_minute: u32::MAX,
        burst: u32::MAX,
    };
    crate::Limits {
        message_per_conn: unmetered,
        message_per_ip: unmetered,
        ..crate::Limits::default()
    }
}

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
    assert_eq!(h.take(c), format!("+OK uname you are {name}\r\n"));
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
    assert_eq!(h.take(c), "+OK uname you are alice\r\n");
    h.send(c, "CGETU\r\n");
    assert_eq!(h.take(c), "+OK cgetu alice\r\n");
}

#[test]
fn bare_lf_is_accepted_and_replies_end_with_crlf() {
    let mut h = harness();
    let c = client(&mut h);
    h.send(c, "uname alice\ncgetu\n");
    assert_eq!(h.take(c), "+OK uname you are alice\r\n+OK cgetu alice\r\n");
}

#[test]
fn a_taken_name_gets_the_first_free_suggestion() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let alice2 = named(&mut h, "alice2", &[alice]);
    let c = client(&mut h);
    h.send(c, "uname alice\r\n");
    assert_eq!(h.take(c), "-ERR uname suggested alice3\r\n");
    // Names clash regardless of case; the suggestion keeps the case asked for.
    h.send(c, "uname ALICE\r\n");
    assert_eq!(h.take(c), "-ERR uname suggested ALICE3\r\n");
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
    assert_eq!(
        h.take(c),
        format!("-ERR uname suggested {}2\r\n", "x".repeat(31))
    );
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
    assert_eq!(h.take(alice), "+OK uname you are carol\r\n");
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
    assert_eq!(h.take(alice), "+OK uname you are Alice\r\n");
    assert_eq!(h.take(bob), "+OK nuser alice Alice\r\n");
    h.send(alice, "uname BOB\r\n");
    assert_eq!(h.take(alice), "-ERR uname suggested BOB2\r\n");
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
fn control_characters_in_a_relayed_message_become_spaces() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    // C0 (a tab, an escape), DEL and C1 (U+0085), each where an 8-byte scan puts it.
    h.send(alice, "chatm alice bob 'a\tb\x1b[31mred\x7f \u{85}end'\r\n");
    assert_eq!(h.take(alice), "+OK chatm 'message relayed'\r\n");
    assert_eq!(h.take(bob), "chatm alice bob 'a b [31mred   end'\r\n");
    // U+00C2 itself (0xC3 0x82) and U+00A0 (0xC2 0xA0) are not controls: kept.
    h.send(alice, "chatm alice bob 'Â\u{a0}ok'\r\n");
    assert_eq!(h.take(bob), "chatm alice bob 'Â\u{a0}ok'\r\n");
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
    // No `+OK chatw` line: the original client knows no such answer and shows an error.
    // The echo is the sender's confirmation.
    h.send(alice, "chatw alice bob 'psst'\r\n");
    assert_eq!(h.take(alice), "chatw alice bob 'psst'\r\n");
    assert_eq!(h.take(bob), "chatw alice bob 'psst'\r\n");
    assert_eq!(h.take(carol), "");
    // To oneself: one copy only.
    h.send(alice, "chatw alice alice 'me'\r\n");
    assert_eq!(h.take(alice), "chatw alice alice 'me'\r\n");
    // Errors still name the command.
    h.send(alice, "chatw alice nobody 'hello?'\r\n");
    assert_eq!(
        h.take(alice),
        "-ERR chatw 'recipient name nobody does not exist'\r\n"
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
        // An unclosed quote around the message is malformed too, not relayed.
        ("chatm alice alice 'unterminated", "chatm"),
        ("chatw alice alice 'unterminated", "chatw"),
        ("chatm alice alice '", "chatm"),
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
    h.send(alice, b"  ChatM alice alice '\xff'\r\n".to_vec());
    assert_eq!(
        h.take(alice),
        "-ERR 'chatm is not a properly formatted command'\r\n"
    );
    assert_eq!(h.closed(alice), None);
    // Nothing malformed was relayed.
    h.send(alice, "cgetu\r\n");
    assert_eq!(h.take(alice), "+OK cgetu alice\r\n");
}

/// A keyword that is no command gets the same answer whatever follows it: text, more
/// words, or bytes that are not UTF-8 (in the arguments or in the keyword itself).
#[test]
fn an_unknown_keyword_is_unknown_whatever_follows_it() {
    let mut h = harness();
    let alice = named(&mut h, "alice", &[]);
    let lines: [&[u8]; 7] = [
        b"hello \xff",
        b"hello \xff\xfe 'x'",
        b"\xff\xfe garbage",
        b"hell\xff",
        b"\xff",
        b"+OK \xff",
        b"  xyzzy\t\xc3",
    ];
    for line in lines {
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\n");
        h.send(alice, bytes);
        assert_eq!(
            h.take(alice),
            "-ERR 'entered command does not exist'\r\n",
            "{line:?}"
        );
    }
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
        assert!(h.server().stats().max_inbound_bytes <= 65);
    }
    h.send(alice, "'\r\ncgetu\r\n");
    assert_eq!(h.take(alice), "+OK cgetu alice\r\n");
}

#[test]
fn a_client_that_stops_reading_is_closed_once_its_queue_passes_the_limit() {
    let mut h = Harness::new(Config {
        outbound_limit_bytes: 4096,
        limits: unmetered_messages(),
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
        assert!(h.server().stats().max_unwritten_bytes <= 4096 + 512);
    }
    assert_eq!(h.closed(bob), Some(CloseReason::SlowReader));
    h.take(alice);
    h.send(alice, "cgetu\r\n");
    assert!(h.take(alice).ends_with("+OK cgetu alice\r\n"));
}

/// Bytes count against a connection's outbound limit until the runtime reports them
/// written, and each report frees exactly what it reports: a client that reads gets
/// far more than the limit through, every message intact and in order.
#[test]
fn written_reports_free_room_in_the_outbound_queue() {
    const LIMIT: usize = 4096;
    // The relayed line reads as sent.
    const SENT: &str = "chatm alice bob 'a message that bob reads'\r\n";
    const RELAYED: &str = SENT;
    const ACK: &str = "+OK chatm 'message relayed'\r\n";
    let mut h = Harness::new(Config {
        outbound_limit_bytes: LIMIT,
        limits: unmetered_messages(),
        ..Config::default()
    });
    let alice = named(&mut h, "alice", &[]);
    let bob = named(&mut h, "bob", &[alice]);
    // Clients that read: every line is reported written as it goes, nothing stays queued.
    for n in 0..500 {
        h.send(alice, SENT);
        assert_eq!(h.take(alice), ACK, "message {n}");
        assert_eq!(h.take(bob), RELAYED, "message {n}");
        assert_eq!(h.server().stats().max_unwritten_bytes, 0, "message {n}");
    }
    assert!(
        500 * RELAYED.len() > 4 * LIMIT,
        "the traffic passes the limit"
    );
    assert_eq!((h.closed(alice), h.closed(bob)), (None, None));

    // Nothing reported: what was sent counts, per connection, until reported.
    h.auto_written = false;
    for _ in 0..3 {
        h.send(alice, SENT);
    }
    assert_eq!(h.take(alice), ACK.repeat(3));
    assert_eq!(h.take(bob), RELAYED.repeat(3));
    assert_eq!(h.server().stats().max_unwritten_bytes, 3 * RELAYED.len());
    h.written(bob, 3 * RELAYED.len() - 10);
    assert_eq!(h.server().stats().max_unwritten_bytes, 3 * ACK.len());
    h.written(alice, 3 * ACK.len());
    assert_eq!(h.server().stats().max_unwritten_bytes, 10);
    h.written(bob, 10);
    assert_eq!(h.server().stats().max_unwritten_bytes, 0);
    // Room reported free is room to use: bob reads again and nobody was closed.
    h.auto_written = true;
    h.send(alice, SENT);
    assert_eq!(h.take(bob), RELAYED);
    assert_eq!((h.closed(alice), h.closed(bob)), (None, None));
}

/// One client's input: several commands in a stream, quoted arguments, CRLF and bare LF,
/// blank lines, errors, a reply held for a commit, and a last line that arrives partial
/// and is completed by a later read ([`STREAM_TAIL`]).
const STREAM: &[u8] = b"uname alice\r\ncgetu\nchatm alice bob 'hi there, bob'\r\n\
CHATW 'alice' bob 'it's me'\n\r\n  \nbogus \xff\r\nchatm alice alice 'unterminated\r\n\
chatm alice acct 'for later'\r\nuname 'ally'\ncping\r\nchatm ally bob 'part";
const STREAM_TAIL: &[u8] = b"ial, then whole'\r\ncgetu\r\n";

/// Delivers `reads` to a new client (bob and the account `acct` exist already) and
/// returns what the client and bob received.
fn play_reads(reads: &[&[u8]]) -> (String, String) {
    let mut h = harness();
    register(&mut h, "acct");
    let bob = named(&mut h, "bob", &[]);
    let c = h.connect(Protocol::Ws2017);
    for read in reads.iter().filter(|r| !r.is_empty()) {
        h.send(c, read.to_vec());
    }
    assert_eq!(h.closed(c), None);
    (h.take(c), h.take(bob))
}

/// However the stream is cut into reads (at any one point, at two points, into single
/// bytes), the output is that of whole delivery: a codec must neither lose nor
/// duplicate nor reorder a partial line that shares a read with complete ones.
#[test]
fn every_split_of_a_multi_command_stream_gives_the_output_of_whole_delivery() {
    let whole = play_reads(&[STREAM, STREAM_TAIL]);
    assert_eq!(
        whole.0,
        [
            GREETING,
            "+OK uname you are alice\r\n",
            "+OK cgetu alice bob\r\n",
            "+OK chatm 'message relayed'\r\n",
            "chatw alice bob 'it's me'\r\n",
            "-ERR 'entered command does not exist'\r\n",
            "-ERR 'chatm is not a properly formatted command'\r\n",
            "+OK chatm 'message stored'\r\n",
            "+OK uname you are ally\r\n",
            "+OK cpong\r\n",
            "+OK chatm 'message relayed'\r\n",
            "+OK cgetu ally bob\r\n",
        ]
        .concat()
    );
    assert_eq!(
        whole.1,
        "nuser alice\r\nchatm alice bob 'hi there, bob'\r\nchatw alice bob 'it's me'\r\n\
         +OK nuser alice ally\r\nchatm ally bob 'partial, then whole'\r\n"
    );
    let all = [STREAM, STREAM_TAIL].concat();
    assert_eq!(play_reads(&[&all]), whole, "in one read");
    for i in 0..=STREAM.len() {
        let (a, b) = STREAM.split_at(i);
        assert_eq!(play_reads(&[a, b, STREAM_TAIL]), whole, "stream cut at {i}");
    }
    // Three reads: the first cut anywhere, the second every fifth byte after it (every
    // pair would be 27,000 runs for little more).
    for i in 0..=all.len() {
        for j in (i..=all.len()).step_by(5) {
            let reads = [&all[..i], &all[i..j], &all[j..]];
            assert_eq!(play_reads(&reads), whole, "cut at {i} and {j}");
        }
    }
    let bytes: Vec<&[u8]> = all.chunks(1).collect();
    assert_eq!(play_reads(&bytes), whole, "byte by byte");
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
    fn ok(line: &str) -> Result<Command<'_>, ParseError> {
        parse(line.as_bytes())
    }
    assert_eq!(ok("uname bob"), Ok(Command::Uname { name: "bob" }));
    assert_eq!(ok("  uname   'bob'  "), Ok(Command::Uname { name: "bob" }));
    assert_eq!(ok("+ok CPONG"), Ok(Command::Cpong));
    assert_eq!(
        ok("chatm a b 'x' 'y'"),
        Ok(Command::Chat {
            whisper: false,
            sender: "a",
            recipient: "b",
            message: "x' 'y"
        })
    );
    assert_eq!(
        ok("chatw 'a' 'b' ''"),
        Ok(Command::Chat {
            whisper: true,
            sender: "a",
            recipient: "b",
            message: ""
        })
    );
    assert_eq!(
        ok("chatm a b 'unterminated"),
        Err(ParseError::Malformed {
            keyword: "chatm".into()
        })
    );
    assert_eq!(parse(b"hello \xff"), Err(ParseError::Unknown));
    assert_eq!(
        parse(b"CPING \xff"),
        Err(ParseError::Malformed {
            keyword: "cping".into()
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

/// A whisper gets no `+OK` line, stored or not: for an account that is offline, the
/// echo is the acknowledgement, and it waits until the message is committed.
#[test]
fn a_whisper_for_an_offline_account_is_echoed_only_once_committed() {
    let mut h = harness();
    register(&mut h, "bob");
    let alice = named(&mut h, "alice", &[]);
    h.auto_commit = false;
    h.send(alice, "chatw alice bob 'psst'\r\ncgetu\r\n");
    assert_eq!(h.take(alice), "");
    assert!(h.store.offline.is_empty());
    h.commit();
    assert_eq!(
        h.take(alice),
        "chatw alice bob 'psst'\r\n+OK cgetu alice\r\n"
    );
    assert_eq!(h.store.offline.values().next().map(|q| q.len()), Some(1));
}

#[test]
fn while_the_store_fails_messages_for_offline_accounts_are_refused_but_chat_goes_on() {
    let mut h = harness();
    register(&mut h, "bob");
    let alice = named(&mut h, "alice", &[]);
    let carol = named(&mut h, "carol", &[alice]);
    let dan = named(&mut h, "dan", &[alice, carol]);
    h.auto_commit = false;
    // Dan's message is the batch whose commit fails (and is retried).
    h.send(dan, "chatm dan bob 'first'\r\n");
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
    // Only dan's message waits to be stored; alice's refused one added nothing.
    assert_eq!(h.uncommitted().len(), 1);
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
        Reply::Relayed,
    ] {
        let mut out = BytesMut::new();
        encode(&reply, &mut out);
        assert_eq!(constant(&reply), Some(&out[..]), "{reply:?}");
    }
}

/// An administrator's IP ban closes the connections from the address as banned, not
/// kicked: the runtime logs the close reason (`reason="banned"`).
#[test]
fn an_ip_ban_closes_as_banned_and_a_kick_as_kicked() {
    let mut h = harness();
    let mallory = h.connect_from(Protocol::Ws2017, [10, 0, 0, 7]);
    assert_eq!(h.take(mallory), GREETING);
    h.send(mallory, "uname mallory\r\n");
    assert_eq!(h.take(mallory), "+OK uname you are mallory\r\n");
    let alice = named(&mut h, "alice", &[mallory]);
    let bob = named(&mut h, "bob", &[mallory, alice]);
    let admin = h.connect(Protocol::Admin);
    h.send(admin, "ban ip 10.0.0.7\r\n");
    assert_eq!(h.take(admin), "ok 10.0.0.7 banned, 1 connection closed\r\n");
    assert_eq!(
        h.take(mallory),
        "+OK cquit 'banned by an administrator'\r\n"
    );
    assert_eq!(h.closed(mallory), Some(CloseReason::Banned));
    h.send(admin, "kick alice\r\n");
    assert_eq!(h.take(admin), "ok alice kicked, 1 session closed\r\n");
    assert_eq!(
        h.take(alice),
        "cquit mallory\r\n+OK cquit 'kicked by an administrator'\r\n"
    );
    assert_eq!(h.closed(alice), Some(CloseReason::Kicked));
    assert_eq!(h.take(bob), "cquit mallory\r\ncquit alice\r\n");
    assert_eq!(h.closed(bob), None);
}

/// A taken name is suggested with `2`, `3`, ... appended up to a bound, then with a
/// random 9-digit number: however many of its numbered variants peers hold, a `uname`
/// (which takes no token when the name is taken) costs a bounded search, and the name
/// suggested is free.
#[test]
fn a_taken_name_is_suggested_at_a_bounded_cost() {
    // 103 clients of one address, 102 of them logging in.
    let unmetered = crate::RateLimit {
        per_minute: u32::MAX,
        burst: u32::MAX,
    };
    let limits = crate::Limits {
        max_connections_per_ip: 1000,
        broadcast_per_conn: unmetered,
        broadcast_per_ip: unmetered,
        ..crate::Limits::default()
    };
    let mut h = Harness::new(Config {
        limits,
        ..Config::default()
    });
    let mut held = vec![named(&mut h, "x", &[])];
    for n in 2..=101 {
        let next = named(&mut h, &format!("x{n}"), &held);
        held.push(next);
    }
    let c = client(&mut h);
    h.send(c, "uname x\r\n");
    let reply = h.take(c);
    let suffix = (reply.strip_prefix("-ERR uname suggested x"))
        .and_then(|r| r.strip_suffix("\r\n"))
        .unwrap_or_else(|| panic!("{reply:?}"));
    assert!(
        suffix.len() == 9 && suffix.bytes().all(|b| b.is_ascii_digit()),
        "{reply:?}"
    );
    h.send(c, format!("uname x{suffix}\r\n"));
    assert_eq!(h.take(c), format!("+OK uname you are x{suffix}\r\n"));
    // With a free numbered variant, that one, as the original suggested (a rename of
    // this client's now).
    h.peer_close(held[50]);
    assert_eq!(h.take(c), "cquit x51\r\n");
    h.send(c, "uname x\r\n");
    assert_eq!(h.take(c), "-ERR uname suggested x51\r\n");
}
