//! The slow-reader rule: a request takes effect only if its connection has room for the
//! reply under the outbound limit (and the budget of all connections). Without room the
//! connection is closed as a slow reader before the request does anything, so a client
//! that never saw its acknowledgement has nothing to resend twice.

use super::harness::Harness;
use crate::{CloseReason, Config, ConnId, Limits, Protocol};

const GREETING: &str = "+OK switchboard ws2017 ready\r\n";
const STORED_ACK: usize = "+OK chatm 'message stored'\r\n".len();

fn named(h: &mut Harness, name: &str, ip: [u8; 4]) -> ConnId {
    let c = h.connect_from(Protocol::Ws2017, ip);
    assert_eq!(h.take(c), GREETING);
    h.send(c, format!("uname {name}\r\n"));
    assert_eq!(h.take(c), format!("+OK uname you are {name}\r\n"));
    c
}

fn register(h: &mut Harness, name: &str) {
    let admin = h.connect(Protocol::Admin);
    h.send(admin, format!("user add {name} pw\r\n"));
    assert_eq!(h.take(admin), format!("ok account {name} created\r\n"));
}

/// Relays messages from `talker` (named `from`) to the stalled `to` (named `to_name`)
/// until `to` has between `lo` and `hi` bytes free under `limit`. `to`'s queue must be
/// the largest.
fn fill(
    h: &mut Harness,
    (talker, from): (ConnId, &str),
    (to, to_name): (ConnId, &str),
    limit: usize,
    (lo, hi): (usize, usize),
) {
    // `chatm FROM TO 'BODY'\r\n`: the body is what is left after the framing.
    let framing = 10 + from.len() + to_name.len();
    assert!(hi > lo + framing && hi - framing > lo);
    loop {
        let free = limit - h.server().stats().max_unwritten_bytes;
        if free < hi {
            assert!(free >= lo, "{free} bytes free");
            break;
        }
        let body = free.saturating_sub(framing + (lo + hi) / 2).clamp(1, 1000);
        h.send(
            talker,
            format!("chatm {from} {to_name} '{}'\r\n", "x".repeat(body)),
        );
        assert_eq!(h.closed(to), None, "filled past the limit");
    }
    h.take(talker);
    h.take(to);
}

fn stored(h: &Harness) -> usize {
    let server: usize = (h.server().state().offline.values()).map(|q| q.len()).sum();
    let store: usize = h.store.offline.values().map(|q| q.len()).sum();
    assert_eq!(server, store, "the server and the store agree");
    server
}

#[test]
fn a_message_whose_stored_ack_would_overflow_is_not_stored_and_a_resend_stores_it_once() {
    const LIMIT: usize = 4096;
    let mut h = Harness::new(Config {
        outbound_limit_bytes: LIMIT,
        ..Config::default()
    });
    register(&mut h, "bob");
    let alice = named(&mut h, "alice", [10, 0, 0, 1]);
    let carol = named(&mut h, "carol", [10, 0, 0, 2]);
    h.take(alice);
    h.stalled.insert(alice);
    fill(
        &mut h,
        (carol, "carol"),
        (alice, "alice"),
        LIMIT,
        (0, STORED_ACK),
    );
    h.send(alice, "chatm alice bob 'hello'\r\n");
    assert_eq!(h.closed(alice), Some(CloseReason::SlowReader));
    assert_eq!(stored(&h), 0, "closed before the message took effect");
    // The client never saw `message stored`: it reconnects and sends again.
    let alice = named(&mut h, "alice", [10, 0, 0, 1]);
    h.send(alice, "chatm alice bob 'hello'\r\n");
    assert_eq!(h.take(alice), "+OK chatm 'message stored'\r\n");
    assert_eq!(stored(&h), 1, "stored once");
}

#[test]
fn a_message_whose_relayed_ack_would_overflow_is_not_relayed() {
    const LIMIT: usize = 4096;
    let mut h = Harness::new(Config {
        outbound_limit_bytes: LIMIT,
        ..Config::default()
    });
    let alice = named(&mut h, "alice", [10, 0, 0, 1]);
    let bob = named(&mut h, "bob", [10, 0, 0, 2]);
    let carol = named(&mut h, "carol", [10, 0, 0, 3]);
    h.take(alice);
    h.take(bob);
    h.stalled.insert(alice);
    fill(
        &mut h,
        (carol, "carol"),
        (alice, "alice"),
        LIMIT,
        (0, STORED_ACK),
    );
    h.send(alice, "chatm alice bob 'hello'\r\n");
    assert_eq!(h.closed(alice), Some(CloseReason::SlowReader));
    assert_eq!(h.take(bob), "cquit alice\r\n", "bob never got the message");
}

#[test]
fn a_login_whose_reply_would_overflow_is_not_announced() {
    const LIMIT: usize = 1024;
    let mut h = Harness::new(Config {
        outbound_limit_bytes: LIMIT,
        ..Config::default()
    });
    let bob = named(&mut h, "bob", [10, 0, 0, 2]);
    let c = h.connect_from(Protocol::Ws2017, [10, 0, 0, 1]);
    h.stalled.insert(c);
    // Unknown commands fill the unnamed connection's queue with errors.
    let error = "-ERR 'entered command does not exist'\r\n".len();
    let n = LIMIT / error;
    h.send(c, "bogus\r\n".repeat(n));
    assert_eq!(h.closed(c), None);
    assert!(LIMIT - h.server().stats().max_unwritten_bytes < "+OK uname you are alice\r\n".len());
    h.send(c, "uname alice\r\n");
    assert_eq!(h.closed(c), Some(CloseReason::SlowReader));
    assert_eq!(
        h.take(bob),
        "",
        "nobody heard of a login that did not happen"
    );
}

#[test]
fn near_the_budget_the_largest_queues_are_shed_before_a_request_takes_effect() {
    const BUDGET: usize = 4096;
    let mut h = Harness::new(Config {
        outbound_limit_bytes: 1 << 20,
        limits: Limits {
            outbound_budget_bytes: BUDGET,
            ..Limits::default()
        },
        ..Config::default()
    });
    register(&mut h, "bob");
    let alice = named(&mut h, "alice", [10, 0, 0, 1]);
    let carol = named(&mut h, "carol", [10, 0, 0, 2]);
    h.take(alice);
    h.stalled.insert(alice);
    // Alice's queue alone fills the budget to within less than the echo of a whisper
    // (but leaves room for carol's acks while it fills).
    let whisper = format!("chatw alice bob '{}'\r\n", "w".repeat(100));
    let relayed = "+OK chatm 'message relayed'\r\n".len();
    fill(
        &mut h,
        (carol, "carol"),
        (alice, "alice"),
        BUDGET,
        (relayed, whisper.len()),
    );
    assert_eq!(
        h.server().stats().unwritten_bytes,
        h.server().stats().max_unwritten_bytes
    );
    h.send(alice, whisper);
    assert_eq!(h.closed(alice), Some(CloseReason::SlowReader));
    assert_eq!(stored(&h), 0, "shed before the message took effect");
    assert_eq!(h.closed(carol), None);
}
