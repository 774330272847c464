//! The network's typed events ([`NetworkEvent`]): what a driver's logs, metrics and the
//! simulator's oracles read instead of re-parsing a protocol's bytes. Off until asked
//! for; once on, each login, rename, direct message's fate, mailbox hand-out and
//! removal, and kick is recorded, in order.

use super::fixtures;
use super::harness::Harness;
use crate::persist::MessageId;
use crate::{Config, ConnId, KickReason, NetworkEvent, Protocol, Refusal, Seq, UserName};

fn name(s: &str) -> UserName {
    UserName::parse(s).expect("valid name")
}

fn login(h: &mut Harness, who: &str) -> ConnId {
    let c = h.connect(Protocol::Ws2017);
    h.send(c, format!("uname {who}\r\n"));
    h.take(c);
    c
}

#[test]
fn nothing_is_recorded_unless_asked_for() {
    let mut h = Harness::new(Config::default());
    login(&mut h, "alice");
    assert_eq!(h.events(), []);
    h.record_events();
    login(&mut h, "bob");
    assert_eq!(h.events().len(), 1);
}

#[test]
fn session_events_leave_out_each_direct_message_and_nothing_else() {
    let script = |h: &mut Harness| {
        let admin = h.connect(Protocol::Admin);
        h.send(admin, "user add Carol pw\r\n");
        h.take(admin);
        let alice = login(h, "alice");
        login(h, "bob");
        h.send(alice, "chatm alice bob 'hi'\r\n");
        h.send(alice, "chatm alice carol 'later'\r\n");
        h.send(alice, "chatm alice nobody 'hello?'\r\n");
        h.send(alice, "cquit\r\n");
        h.commit();
        let carol = h.connect(Protocol::Probe);
        h.send(carol, "account Carol\n");
        h.take(carol);
        h.commit();
        h.events()
    };
    let mut all = Harness::new(Config::default());
    all.record_events();
    let all = script(&mut all);
    let mut some = Harness::new(Config::default());
    some.record_session_events();
    let some = script(&mut some);
    let per_message = all.iter().filter(|e| e.is_per_message()).count();
    assert!(
        per_message >= 4,
        "delivered, stored, refused, handed out: {all:?}"
    );
    let expected: Vec<NetworkEvent> = all.into_iter().filter(|e| !e.is_per_message()).collect();
    assert!(expected.len() >= 4, "logins and a logout: {expected:?}");
    assert!(some.iter().all(|e| !e.is_per_message()));
    assert_eq!(some, expected);
}

#[test]
fn logins_renames_and_each_direct_messages_fate_are_recorded_in_order() {
    let mut h = Harness::new(Config::default());
    h.record_events();
    let admin = h.connect(Protocol::Admin);
    h.send(admin, "user add Carol pw\r\n");
    h.take(admin);
    let alice = login(&mut h, "alice");
    let bob = login(&mut h, "bob");
    h.send(bob, "uname robert\r\n");
    h.send(alice, "chatm alice robert 'hi'\r\n");
    h.send(alice, "chatm alice carol 'later'\r\n");
    h.send(alice, "chatm alice nobody 'hello?'\r\n");
    h.send(bob, "cquit\r\n");
    let ws = Protocol::Ws2017;
    assert_eq!(
        h.events(),
        [
            NetworkEvent::LoggedIn {
                name: name("alice"),
                protocol: ws,
                session: 0,
                conn: alice,
            },
            NetworkEvent::LoggedIn {
                name: name("bob"),
                protocol: ws,
                session: 1,
                conn: bob,
            },
            NetworkEvent::Renamed {
                old: name("bob"),
                new: name("robert"),
                session: 1,
            },
            NetworkEvent::DirectDelivered {
                from: name("alice"),
                to: name("robert"),
            },
            NetworkEvent::DirectStored {
                from: name("alice"),
                to: name("Carol"),
                id: MessageId(0),
                seq: Seq(2),
            },
            NetworkEvent::DirectRefused {
                from: Some(name("alice")),
                to: name("nobody"),
                reason: Refusal::NoSuchUser,
            },
            NetworkEvent::LoggedOut {
                name: name("robert"),
                protocol: ws,
                session: 1,
                conn: bob,
            },
        ]
    );
}

#[test]
fn kicks_and_bans_are_recorded_with_their_reason() {
    let mut h = Harness::new(Config::default());
    let mallory = h.connect_from(Protocol::Ws2017, [10, 0, 0, 7]);
    h.send(mallory, "uname mallory\r\n");
    login(&mut h, "alice");
    h.record_events();
    let admin = h.connect(Protocol::Admin);
    h.send(admin, "ban ip 10.0.0.7\r\n");
    h.send(admin, "kick alice\r\n");
    let kicks: Vec<_> = (h.events().into_iter())
        .filter(|e| matches!(e, NetworkEvent::Kicked { .. }))
        .collect();
    assert_eq!(
        kicks,
        [
            NetworkEvent::Kicked {
                name: Some(name("mallory")),
                conn: Some(mallory),
                sessions: 1,
                reason: KickReason::Banned,
            },
            NetworkEvent::Kicked {
                name: Some(name("alice")),
                conn: None,
                sessions: 1,
                reason: KickReason::Kicked,
            },
        ]
    );
}

#[test]
fn stored_messages_are_recorded_when_handed_out_and_when_removed_once_written() {
    let mut h = Harness::with_state(Config::default(), fixtures::bob_with_mail());
    h.record_events();
    h.auto_written = false;
    let c = h.connect(Protocol::Probe);
    h.send(c, "account bob\n");
    let handed: Vec<_> = (h.events().into_iter())
        .filter(|e| matches!(e, NetworkEvent::StoredHandedOut { .. }))
        .collect();
    let out = |id| NetworkEvent::StoredHandedOut {
        to: name("bob"),
        id: MessageId(id),
        conn: c,
    };
    assert_eq!(handed, [out(0), out(1)]);
    h.written(c, "mail 0 alice one\n".len());
    assert_eq!(
        h.events(),
        [NetworkEvent::StoredRemoved {
            to: name("bob"),
            through: MessageId(0),
        }]
    );
}

#[test]
fn counters_follow_logins_and_messages_by_protocol() {
    let mut h = Harness::new(Config::default());
    let admin = h.connect(Protocol::Admin);
    h.send(admin, "user add Carol pw\r\n");
    h.take(admin);
    h.commit();
    let alice = login(&mut h, "alice");
    let bob = login(&mut h, "bob");
    h.send(alice, "chatm alice bob 'hi'\r\n");
    h.send(alice, "chatm alice bob 'again'\r\n");
    h.send(alice, "chatm alice carol 'later'\r\n");
    h.send(bob, "cquit\r\n");
    let ws = Protocol::Ws2017.index();
    let counters = h.server().counters().clone();
    assert_eq!(counters.logins[ws], 2);
    assert_eq!(counters.sessions[ws], 1, "bob left");
    assert_eq!(counters.routed[ws][ws], 2);
    assert_eq!(counters.stored[ws], 1);
    assert_eq!(counters.logins[Protocol::Admin.index()], 0);
}
