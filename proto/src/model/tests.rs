//! The model's own rules, driven without any protocol.

use super::*;
use crate::ids::ConnId;
use crate::persist::Account;
use crate::secret::PasswordHash;

pub(super) fn name(s: &str) -> UserName {
    UserName::parse(s).expect("valid name")
}

pub(super) const NICK: LoginKind = LoginKind {
    identity: Identity::Nick,
    exclusive: true,
    caps: Capabilities { receipts: true },
};

pub(super) const ACCOUNT: LoginKind = LoginKind {
    identity: Identity::Account,
    exclusive: false,
    caps: Capabilities { receipts: false },
};

pub(super) const GUEST: LoginKind = LoginKind {
    identity: Identity::Guest,
    exclusive: false,
    caps: Capabilities { receipts: false },
};

pub(super) fn account(n: &str, level: u8) -> Change {
    Change::AccountCreated(Account {
        name: name(n),
        password: PasswordHash("h".into()),
        ims_password: PasswordHash("i".into()),
        email: None,
        gender: None,
        level,
        banned: false,
        created_ms: 0,
    })
}

/// A network with these changes applied and committed, its event queue emptied.
pub(super) fn network(changes: &[Change]) -> Network {
    let mut net = Network::default();
    for (i, change) in changes.iter().enumerate() {
        net.apply(change, Seq(i as u64 + 1));
    }
    net.committed(Seq(changes.len() as u64));
    drain(&mut net);
    net
}

pub(super) fn drain(net: &mut Network) -> Vec<Delivery> {
    std::iter::from_fn(|| net.poll_delivery()).collect()
}

#[test]
fn each_protocol_chooses_its_kind_of_login() {
    let mut net = network(&[account("alice", 0)]);
    // A nick may not take a registered name, nor one that is online.
    assert_eq!(
        net.login(&name("Alice"), ConnId(1), NICK),
        Err(LoginError::NameTaken)
    );
    // Nor may a guest.
    assert_eq!(
        net.login(&name("alice"), ConnId(1), GUEST),
        Err(LoginError::NameTaken)
    );
    // An account login needs the account.
    assert_eq!(
        net.login(&name("bob"), ConnId(1), ACCOUNT),
        Err(LoginError::NoAccount)
    );
    assert!(net.login(&name("alice"), ConnId(1), ACCOUNT).is_ok());
    let carol = net
        .login(&name("carol"), ConnId(2), NICK)
        .expect("free nick");
    assert_eq!(
        net.login(&name("CAROL"), ConnId(3), NICK),
        Err(LoginError::NameTaken)
    );
    // Several guests may share a free name, not a nick's.
    assert_eq!(
        net.login(&name("carol"), ConnId(3), GUEST)
            .map(|s| s != carol),
        Ok(true),
        "a non-exclusive guest joins the online user"
    );
    assert_eq!(net.session(carol).map(|s| s.status), Some(Status::Online));
}

#[test]
fn a_banned_account_gets_no_session() {
    let mut net = network(&[
        account("alice", 0),
        Change::UserBanned {
            name: name("alice"),
            banned: true,
        },
    ]);
    assert_eq!(
        net.login(&name("alice"), ConnId(1), ACCOUNT),
        Err(LoginError::Banned)
    );
}

#[test]
fn one_user_many_sessions_online_once_offline_with_the_last() {
    let mut net = network(&[account("alice", 0)]);
    let a = net
        .login(&name("alice"), ConnId(1), ACCOUNT)
        .expect("login");
    let b = net
        .login(&name("alice"), ConnId(2), ACCOUNT)
        .expect("login");
    let online: Vec<_> = drain(&mut net).into_iter().map(|d| d.event).collect();
    assert_eq!(
        online,
        [Event::UserOnline {
            name: name("alice")
        }]
    );
    assert_eq!(
        net.sessions_of(&name("alice").key()).collect::<Vec<_>>(),
        [a, b]
    );
    net.logout(a);
    assert!(drain(&mut net).is_empty(), "still online through b");
    assert!(net.is_online(&name("alice").key()));
    net.logout(b);
    let offline: Vec<_> = drain(&mut net).into_iter().map(|d| d.event).collect();
    assert_eq!(
        offline,
        [Event::UserOffline {
            name: name("alice")
        }]
    );
}

#[test]
fn sessions_carry_the_accounts_level_and_follow_its_changes() {
    let mut net = network(&[account("op", 2), account("user", 0)]);
    let op = net.login(&name("op"), ConnId(1), ACCOUNT).expect("login");
    let user = net.login(&name("user"), ConnId(2), ACCOUNT).expect("login");
    let guest = net.login(&name("guest"), ConnId(3), GUEST).expect("login");
    assert_eq!(net.session(op).map(|s| s.level), Some(2));
    assert_eq!(net.session(guest).map(|s| s.level), Some(0));
    let promote = Change::LevelChanged {
        name: name("user"),
        level: 1,
    };
    net.apply(&promote, Seq(10));
    assert_eq!(net.session(user).map(|s| s.level), Some(1));
    assert_eq!(
        net.session(user).map(|s| s.caps),
        Some(Capabilities { receipts: false })
    );
}

#[test]
fn a_session_keeps_the_status_it_sets() {
    let mut net = network(&[]);
    let a = net.login(&name("a"), ConnId(1), GUEST).expect("login");
    let b = net.login(&name("a"), ConnId(2), GUEST).expect("login");
    for status in [Status::Away, Status::Busy, Status::Invisible] {
        net.set_status(a, status);
        assert_eq!(net.session(a).map(|s| s.status), Some(status));
    }
    assert_eq!(net.session(b).map(|s| s.status), Some(Status::Online));
}

const LIMITS: MailboxLimits = MailboxLimits { cap: 3, share: 2 };

fn message(from: SessionId, to: &str, body: &str) -> Outgoing {
    Outgoing {
        from,
        to: name(to),
        body: body.into(),
        kind: DirectKind::Chat,
        sent_ms: 7,
    }
}

/// Persists as the server does: the next sequence number, and the change kept.
fn persist_into(log: &mut Vec<Change>) -> impl FnOnce(&Change) -> Seq + '_ {
    move |change| {
        log.push(change.clone());
        Seq(100 + log.len() as u64)
    }
}

#[test]
fn one_call_delivers_live_stores_for_the_offline_and_refuses_the_rest() {
    let mut net = network(&[account("bob", 0)]);
    let mut log = Vec::new();
    let alice = net.login(&name("alice"), ConnId(1), GUEST).expect("login");
    // Offline account: stored, applied to the model's state, under the next id.
    let outcome = net.deliver_direct(message(alice, "BOB", "hi"), LIMITS, persist_into(&mut log));
    assert_eq!(
        outcome,
        Outcome::Stored {
            seq: Seq(101),
            to: name("bob")
        }
    );
    let mailbox = &net.state().offline[&name("bob").key()];
    assert_eq!(mailbox.len(), 1);
    assert_eq!((mailbox[0].body.as_str(), mailbox[0].sent_ms), ("hi", 7));
    assert_eq!(log.len(), 1, "the change went to the store");
    // Nobody of that name: refused, nothing stored.
    let outcome = net.deliver_direct(
        message(alice, "nobody", "x"),
        LIMITS,
        persist_into(&mut log),
    );
    assert_eq!(outcome, Outcome::Refused(Undeliverable::NoSuchUser));
    // Live, on a protocol that answers with receipts: delivered to the session.
    let bob = net.login(&name("bob"), ConnId(2), ACCOUNT).expect("login");
    let carol = net.login(&name("carol"), ConnId(3), NICK).expect("login");
    drain(&mut net);
    let outcome = net.deliver_direct(message(bob, "carol", "yo"), LIMITS, persist_into(&mut log));
    assert_eq!(outcome, Outcome::Delivered(name("carol")));
    let events: Vec<Event> = drain(&mut net).into_iter().map(|d| d.event).collect();
    assert!(
        matches!(&events[..], [Event::Direct { session, message }] if *session == carol && message.body == "yo"),
        "only the message; its receipt is owed: {events:?}"
    );
    assert!(net.receipt(carol, &name("bob")));
    assert_eq!(log.len(), 1, "nothing stored for the live");
}

#[test]
fn the_mailbox_refuses_when_full_shared_out_or_the_store_fails() {
    let mut net = network(&[account("bob", 0)]);
    let mut log = Vec::new();
    let a = net.login(&name("a"), ConnId(1), GUEST).expect("login");
    let c = net.login(&name("c"), ConnId(2), GUEST).expect("login");
    for body in ["1", "2"] {
        let outcome = net.deliver_direct(message(a, "bob", body), LIMITS, persist_into(&mut log));
        assert!(matches!(outcome, Outcome::Stored { .. }), "{outcome:?}");
    }
    let outcome = net.deliver_direct(message(a, "bob", "3"), LIMITS, persist_into(&mut log));
    assert_eq!(
        outcome,
        Outcome::Refused(Undeliverable::ShareUsed(name("bob")))
    );
    net.commit_failed();
    let outcome = net.deliver_direct(message(c, "bob", "3"), LIMITS, persist_into(&mut log));
    assert_eq!(
        outcome,
        Outcome::Refused(Undeliverable::StoreFailing(name("bob")))
    );
    net.committed(Seq(103));
    let outcome = net.deliver_direct(message(c, "bob", "3"), LIMITS, persist_into(&mut log));
    assert!(matches!(outcome, Outcome::Stored { .. }), "{outcome:?}");
    let outcome = net.deliver_direct(message(c, "bob", "4"), LIMITS, persist_into(&mut log));
    assert_eq!(
        outcome,
        Outcome::Refused(Undeliverable::MailboxFull(name("bob")))
    );
    assert_eq!(log.len(), 3, "a refusal stores nothing");
}
