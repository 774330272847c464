//! The limits on what one peer may make the server do, through ws2017: request rates,
//! the mailbox share, connection caps and the outbound budget of all connections.

use bytes::Bytes;

use super::harness::Harness;
use crate::{
    CloseReason, Config, ConnId, Input, Instant, Limits, Now, Output, Protocol, RateLimit, Server,
    State,
};

const GREETING: &str = "+OK switchboard ws2017 ready\r\n";
const SLOW_DOWN: &str = "-ERR uname 'too many requests, slow down'\r\n";

fn rate(per_minute: u32, burst: u32) -> RateLimit {
    RateLimit { per_minute, burst }
}

/// Connects a client from `ip` and names it; the reply's wording is the codec's business.
fn named_from(h: &mut Harness, name: &str, ip: [u8; 4]) -> ConnId {
    let c = h.connect_from(Protocol::Ws2017, ip);
    assert_eq!(h.take(c), GREETING);
    h.send(c, format!("uname {name}\r\n"));
    let reply = h.take(c);
    assert!(reply.starts_with("+OK uname "), "{name}: {reply}");
    assert!(!reply.contains('\n') || reply.ends_with("\r\n") && reply.lines().count() == 1);
    c
}

fn register(h: &mut Harness, name: &str) {
    let admin = h.connect(Protocol::Admin);
    h.send(admin, format!("user add {name} pw\r\n"));
    assert_eq!(h.take(admin), format!("ok account {name} created\r\n"));
}

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.starts_with(needle)).count()
}

#[test]
fn a_rename_flood_reaches_the_others_only_at_the_allowed_rate() {
    let mut h = Harness::new(Config::default());
    let bob = named_from(&mut h, "bob", [10, 0, 0, 2]);
    let mallory = named_from(&mut h, "mallory", [10, 0, 0, 1]);
    h.take(bob);
    let flood: String = (0..1000).map(|i| format!("uname m{i}\r\n")).collect();
    h.send(mallory, flood);
    let burst = Limits::default().broadcast_per_conn.burst as usize;
    // The first login took a token: bob hears of burst - 1 renames, not of 1000.
    assert_eq!(count(&h.take(bob), "+OK nuser "), burst - 1);
    let answers = h.take(mallory);
    assert_eq!(count(&answers, "+OK uname "), burst - 1);
    assert_eq!(count(&answers, SLOW_DOWN.trim_end()), 1000 - (burst - 1));
    assert_eq!(h.closed(mallory), None, "a refusal does not disconnect");
    // A token a second comes back: after a second, one rename goes through.
    h.advance(1000);
    h.take(bob);
    h.take(mallory);
    h.send(mallory, "uname again\r\nuname again2\r\n");
    assert!(h.take(mallory).ends_with(SLOW_DOWN));
    assert_eq!(h.take(bob), format!("+OK nuser m{} again\r\n", burst - 2));
}

#[test]
fn connections_of_one_address_share_its_rate() {
    let mut h = Harness::new(Config {
        limits: Limits {
            broadcast_per_conn: rate(60, 10),
            broadcast_per_ip: rate(60, 15),
            ..Limits::default()
        },
        ..Config::default()
    });
    let bob = named_from(&mut h, "bob", [10, 0, 0, 2]);
    let flooders: Vec<ConnId> = (0..5)
        .map(|i| {
            let c = h.connect_from(Protocol::Ws2017, [10, 0, 0, 1]);
            h.take(c);
            h.send(c, format!("uname f{i}\r\n"));
            c
        })
        .collect();
    for (i, &c) in flooders.iter().enumerate() {
        let flood: String = (0..10).map(|j| format!("uname f{i}x{j}\r\n")).collect();
        h.send(c, flood);
    }
    let heard = h.take(bob);
    // 15 tokens for the address: 5 logins and 10 renames, over five connections.
    assert_eq!(count(&heard, "nuser "), 5);
    assert_eq!(count(&heard, "+OK nuser "), 10);
    // Another address is not affected.
    let carol = named_from(&mut h, "carol", [10, 0, 0, 3]);
    h.send(carol, "uname caroline\r\n");
    assert!(h.take(carol).starts_with("+OK uname "));
}

#[test]
fn messages_stored_for_offline_accounts_and_live_chat_have_rate_limits_of_their_own() {
    let mut h = Harness::new(Config {
        offline_share_percent: 100,
        ..Config::default()
    });
    register(&mut h, "bob");
    let alice = named_from(&mut h, "alice", [10, 0, 0, 1]);
    let carol = named_from(&mut h, "carol", [10, 0, 0, 2]);
    let dave = named_from(&mut h, "dave", [10, 0, 0, 3]);
    h.take(alice);
    h.take(carol);
    let burst = Limits::default().durable_per_conn.burst as usize;
    let flood: String = (0..burst + 5)
        .map(|i| format!("chatm alice bob 'm{i}'\r\n"))
        .collect();
    h.send(alice, flood);
    let answers = h.take(alice);
    assert_eq!(count(&answers, "+OK chatm 'message stored'"), burst);
    assert_eq!(
        count(&answers, "-ERR chatm 'too many requests, slow down'"),
        5
    );
    assert_eq!(
        h.store.offline.values().map(|q| q.len()).sum::<usize>(),
        burst
    );
    // Live messages draw on the message buckets (the durable ones are spent): a flood to
    // one online user reaches it at the message rate, not until it is closed as a slow
    // reader.
    let burst = Limits::default().message_per_conn.burst as usize;
    let live: String = (0..100)
        .map(|i| format!("chatm alice carol 'm{i}'\r\nchatw alice carol 'w{i}'\r\n"))
        .collect();
    h.send(alice, live);
    let answers = h.take(alice);
    assert_eq!(
        count(&answers, "+OK chatm 'message relayed'") + count(&answers, "chatw alice carol"),
        burst
    );
    assert_eq!(
        count(&answers, "-ERR chatm 'too many requests, slow down'"),
        100 - burst / 2
    );
    assert_eq!(
        count(&answers, "-ERR chatw 'too many requests, slow down'"),
        100 - burst / 2
    );
    assert_eq!(count(&h.take(carol), "chat"), burst);
    assert_eq!(h.closed(carol), None);
    assert_eq!(h.closed(alice), None, "a refusal does not disconnect");
    // Others are not affected: dave's messages to carol go through.
    h.send(dave, "chatm dave carol 'hello'\r\n");
    assert_eq!(h.take(dave), "+OK chatm 'message relayed'\r\n");
    assert_eq!(h.take(carol), "chatm dave carol 'hello'\r\n");
    // A whisper to oneself reaches only one's own queue and is not charged.
    h.send(alice, "chatw alice alice 'me'\r\n");
    assert_eq!(h.take(alice), "chatw alice alice 'me'\r\n");
    // Two tokens a second come back.
    h.advance(500);
    h.send(alice, "chatm alice carol 'again'\r\n");
    assert_eq!(h.take(alice), "+OK chatm 'message relayed'\r\n");
}

#[test]
fn one_sender_fills_only_its_share_of_a_mailbox() {
    let mut h = Harness::new(Config {
        offline_cap: 20,
        offline_share_percent: 10,
        ..Config::default()
    });
    register(&mut h, "bob");
    let alice = named_from(&mut h, "alice", [10, 0, 0, 1]);
    let carol = named_from(&mut h, "carol", [10, 0, 0, 2]);
    h.take(alice);
    h.send(alice, "chatm alice bob 'a1'\r\nchatm alice bob 'a2'\r\n");
    assert_eq!(h.take(alice), "+OK chatm 'message stored'\r\n".repeat(2));
    h.send(alice, "chatm alice bob 'a3'\r\nchatw alice bob 'a4'\r\n");
    assert_eq!(
        h.take(alice),
        "-ERR chatm 'your share of the mailbox of bob is used up'\r\n\
         -ERR chatw 'your share of the mailbox of bob is used up'\r\n"
    );
    // Someone else still has room.
    h.send(carol, "chatm carol bob 'c1'\r\n");
    assert_eq!(h.take(carol), "+OK chatm 'message stored'\r\n");
    // The share is per sender name, kept across connections.
    h.peer_close(alice);
    let again = named_from(&mut h, "alice", [10, 0, 0, 1]);
    h.send(again, "chatm alice bob 'a5'\r\n");
    assert!(h
        .take(again)
        .contains("your share of the mailbox of bob is used up"));
    assert_eq!(h.store.offline.values().map(|q| q.len()).sum::<usize>(), 3);
}

#[test]
fn a_share_is_counted_from_the_loaded_state_and_freed_with_the_account() {
    let mut h = Harness::new(Config {
        offline_cap: 10,
        offline_share_percent: 10,
        ..Config::default()
    });
    register(&mut h, "bob");
    let alice = named_from(&mut h, "alice", [10, 0, 0, 1]);
    h.send(alice, "chatm alice bob 'a1'\r\n");
    assert_eq!(h.take(alice), "+OK chatm 'message stored'\r\n");
    // A restart loads the mailbox: the share is still used.
    let state = h.store.clone();
    let mut h = Harness::with_state(h.server().config().clone(), state);
    let alice = named_from(&mut h, "alice", [10, 0, 0, 1]);
    h.send(alice, "chatm alice bob 'a2'\r\n");
    assert!(h
        .take(alice)
        .contains("your share of the mailbox of bob is used up"));
    // Deleting and recreating the account empties the mailbox and the share.
    let admin = h.connect(Protocol::Admin);
    h.send(admin, "user del bob\r\n");
    h.take(admin);
    register(&mut h, "bob");
    h.send(alice, "chatm alice bob 'a3'\r\n");
    assert_eq!(h.take(alice), "+OK chatm 'message stored'\r\n");
}

#[test]
fn connections_past_the_caps_are_refused_with_a_reason() {
    let mut h = Harness::new(Config {
        limits: Limits {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..Limits::default()
        },
        ..Config::default()
    });
    let a1 = h.connect_from(Protocol::Ws2017, [10, 0, 0, 1]);
    let _a2 = h.connect_from(Protocol::Ws2017, [10, 0, 0, 1]);
    let a3 = h.connect_from(Protocol::Ws2017, [10, 0, 0, 1]);
    assert_eq!(h.take(a1), GREETING);
    assert_eq!(
        h.take(a3),
        "-ERR 'too many connections from your address'\r\n"
    );
    assert_eq!(h.closed(a3), Some(CloseReason::TooManyConnections));
    let b1 = h.connect_from(Protocol::Ws2017, [10, 0, 0, 2]);
    assert_eq!(h.take(b1), GREETING);
    let c1 = h.connect_from(Protocol::Ws2017, [10, 0, 0, 3]);
    assert_eq!(
        h.take(c1),
        "-ERR 'too many connections, try again later'\r\n"
    );
    assert_eq!(h.closed(c1), Some(CloseReason::TooManyConnections));
    // A refused connection is never named or announced.
    h.send(c1, "uname ghost\r\n");
    assert_eq!(h.take(b1), "");
    // The admin socket is always let in.
    let admin = h.connect(Protocol::Admin);
    h.send(admin, "user list\r\n");
    assert!(h.take(admin).starts_with("ok"));
    // A slot freed is a slot to take.
    h.peer_close(a1);
    let a4 = h.connect_from(Protocol::Ws2017, [10, 0, 0, 1]);
    assert_eq!(h.take(a4), GREETING);
    assert_eq!(h.server().stats().connections, 4, "three and the admin");
}

#[test]
fn the_outbound_budget_of_all_connections_holds_under_a_flood() {
    const BUDGET: usize = 256 << 10;
    let mut h = Harness::new(Config {
        outbound_limit_bytes: 64 << 10,
        limits: Limits {
            outbound_budget_bytes: BUDGET,
            ..Limits::default()
        },
        ..Config::default()
    });
    let normal = named_from(&mut h, "normal", [192, 168, 0, 1]);
    // 200 clients from 200 addresses, none of them reading, each logs in and renames
    // as often as its bucket allows: every one is broadcast to all the others.
    let crowd: Vec<ConnId> = (0..200u32)
        .map(|i| {
            let c = h.connect_from(Protocol::Ws2017, [10, 0, (i / 256) as u8, i as u8]);
            h.stalled.insert(c);
            c
        })
        .collect();
    let mut most = 0;
    for (i, &c) in crowd.iter().enumerate() {
        let flood: String = (0..10).map(|j| format!("uname c{i}r{j}\r\n")).collect();
        h.send(c, flood);
        most = most.max(h.server().stats().unwritten_bytes);
        assert!(most <= BUDGET, "{most} bytes unwritten, budget {BUDGET}");
        h.send(normal, "cping\r\n");
        assert!(h.take(normal).ends_with("+OK cpong\r\n"));
    }
    assert!(most > BUDGET / 2, "the flood reached the budget ({most})");
    let shed = (crowd.iter())
        .filter(|&&c| h.closed(c) == Some(CloseReason::SlowReader))
        .count();
    assert!(shed > 0 && shed < crowd.len(), "{shed} closed");
    assert_eq!(h.closed(normal), None);
}

#[test]
fn the_largest_queues_are_closed_first() {
    let mut h = Harness::new(Config {
        outbound_limit_bytes: 1 << 20,
        limits: Limits {
            outbound_budget_bytes: 4096,
            ..Limits::default()
        },
        ..Config::default()
    });
    // The smaller queue is the older connection: age is no excuse.
    let small = named_from(&mut h, "small", [10, 0, 0, 2]);
    let big = named_from(&mut h, "big", [10, 0, 0, 1]);
    let talker = named_from(&mut h, "talker", [10, 0, 0, 3]);
    h.stalled.insert(big);
    h.stalled.insert(small);
    h.send(
        talker,
        format!("chatm talker big '{}'\r\n", "x".repeat(3000)),
    );
    h.send(
        talker,
        format!("chatm talker small '{}'\r\n", "y".repeat(500)),
    );
    h.send(
        talker,
        format!("chatm talker small '{}'\r\n", "y".repeat(1000)),
    );
    assert_eq!(h.closed(big), Some(CloseReason::SlowReader));
    assert_eq!(h.closed(small), None);
    assert_eq!(h.closed(talker), None);
}

/// The claim the docs make of broadcasts: one encoding, shared by every recipient.
#[test]
fn a_broadcast_is_one_shared_encoding() {
    let mut server = Server::new(Config::default(), State::default());
    let now = Now::at(Instant::ZERO, 0);
    for i in 1..=4u64 {
        let peer = core::net::SocketAddr::from(([10, 0, 0, i as u8], 4000));
        let protocol = Protocol::Ws2017;
        let conn = ConnId(i);
        server.handle(
            now,
            Input::Accepted {
                conn,
                protocol,
                peer: peer.into(),
            },
        );
    }
    while server.poll_output().is_some() {}
    let bytes = Bytes::from_static(b"uname alice\r\n");
    server.handle(
        now,
        Input::Received {
            conn: ConnId(1),
            bytes,
        },
    );
    let mut shared = Vec::new();
    while let Some(output) = server.poll_output() {
        if let Output::Transmit { conn, bytes, .. } = output {
            if conn != ConnId(1) {
                assert_eq!(&bytes[..], b"nuser alice\r\n");
                shared.push(bytes.as_ptr());
            }
        }
    }
    assert_eq!(shared.len(), 3);
    assert!(shared.windows(2).all(|w| w[0] == w[1]), "{shared:?}");
}
