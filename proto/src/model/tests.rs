//! The model's own rules, driven without any protocol.

use super::*;
use crate::ids::{ConnId, Protocol};
use crate::persist::Account;
use crate::secret::PasswordHash;

pub(super) fn name(s: &str) -> UserName {
    UserName::parse(s).expect("valid name")
}

pub(super) const NICK: LoginKind = LoginKind {
    identity: Identity::Nick,
    exclusive: true,
    caps: Capabilities {
        receipts: true,
        told_of_delivery: true,
    },
    protocol: Protocol::Probe,
};

pub(super) const ACCOUNT: LoginKind = LoginKind {
    identity: Identity::Account,
    exclusive: false,
    caps: Capabilities {
        receipts: false,
        told_of_delivery: false,
    },
    protocol: Protocol::Probe,
};

pub(super) const GUEST: LoginKind = LoginKind {
    identity: Identity::Guest,
    exclusive: false,
    caps: Capabilities {
        receipts: false,
        told_of_delivery: false,
    },
    protocol: Protocol::Probe,
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
        Some(Capabilities {
            receipts: false,
            told_of_delivery: false,
        })
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

fn message(from: SessionId, body: &str) -> Outgoing {
    Outgoing {
        from,
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
    let outcome = net.deliver_direct(
        &name("BOB"),
        message(alice, "hi"),
        LIMITS,
        persist_into(&mut log),
    );
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
        &name("nobody"),
        message(alice, "x"),
        LIMITS,
        persist_into(&mut log),
    );
    assert_eq!(outcome, Outcome::Refused(Undeliverable::NoSuchUser));
    // Live, on a protocol that answers with receipts: delivered to the session.
    let bob = net.login(&name("bob"), ConnId(2), ACCOUNT).expect("login");
    let carol = net.login(&name("carol"), ConnId(3), NICK).expect("login");
    drain(&mut net);
    let outcome = net.deliver_direct(
        &name("carol"),
        message(bob, "yo"),
        LIMITS,
        persist_into(&mut log),
    );
    assert_eq!(outcome, Outcome::Delivered);
    let events: Vec<Event> = drain(&mut net).into_iter().map(|d| d.event).collect();
    assert!(
        matches!(&events[..], [Event::Direct { session, message }] if *session == carol && &*message.body == "yo" && message.to == name("carol")),
        "only the message; its receipt is owed: {events:?}"
    );
    assert!(net.receipt(carol, &name("bob")));
    assert_eq!(log.len(), 1, "nothing stored for the live");
}

#[test]
fn only_a_session_told_of_delivery_hears_its_message_was_delivered() {
    let mut net = network(&[account("bob", 0)]);
    let mut log = Vec::new();
    let ann = net.login(&name("ann"), ConnId(1), NICK).expect("login");
    let bob = net.login(&name("bob"), ConnId(2), ACCOUNT).expect("login");
    let cat = net.login(&name("cat"), ConnId(3), GUEST).expect("login");
    drain(&mut net);
    // To a session that sends no receipts: ann (told of delivery) hears of it at once.
    net.deliver_direct(
        &name("cat"),
        message(ann, "hi"),
        LIMITS,
        persist_into(&mut log),
    );
    let delivered = |net: &mut Network| -> Vec<SessionId> {
        (drain(net).into_iter())
            .filter_map(|d| match d.event {
                Event::Delivered { session, .. } => Some(session),
                _ => None,
            })
            .collect()
    };
    assert_eq!(delivered(&mut net), [ann]);
    // bob's protocol shows no delivery: it is not sent the event.
    net.deliver_direct(
        &name("cat"),
        message(bob, "hi"),
        LIMITS,
        persist_into(&mut log),
    );
    assert_eq!(delivered(&mut net), []);
    // bob on a second connection, over a protocol that is told: that session hears of
    // either session's message, and still does once the first is gone.
    let told = LoginKind {
        caps: Capabilities {
            receipts: false,
            told_of_delivery: true,
        },
        ..ACCOUNT
    };
    let bob2 = net.login(&name("bob"), ConnId(4), told).expect("login");
    drain(&mut net);
    net.deliver_direct(
        &name("cat"),
        message(bob, "hi"),
        LIMITS,
        persist_into(&mut log),
    );
    assert_eq!(delivered(&mut net), [bob2]);
    net.logout(bob);
    drain(&mut net);
    net.deliver_direct(
        &name("cat"),
        message(bob2, "hi"),
        LIMITS,
        persist_into(&mut log),
    );
    assert_eq!(delivered(&mut net), [bob2]);
    let _ = cat;
}

#[test]
fn the_mailbox_refuses_when_full_shared_out_or_the_store_fails() {
    let mut net = network(&[account("bob", 0)]);
    let mut log = Vec::new();
    let a = net.login(&name("a"), ConnId(1), GUEST).expect("login");
    let c = net.login(&name("c"), ConnId(2), GUEST).expect("login");
    for body in ["1", "2"] {
        let outcome = net.deliver_direct(
            &name("bob"),
            message(a, body),
            LIMITS,
            persist_into(&mut log),
        );
        assert!(matches!(outcome, Outcome::Stored { .. }), "{outcome:?}");
    }
    let outcome = net.deliver_direct(
        &name("bob"),
        message(a, "3"),
        LIMITS,
        persist_into(&mut log),
    );
    assert_eq!(
        outcome,
        Outcome::Refused(Undeliverable::ShareUsed(name("bob")))
    );
    net.commit_failed();
    let outcome = net.deliver_direct(
        &name("bob"),
        message(c, "3"),
        LIMITS,
        persist_into(&mut log),
    );
    assert_eq!(
        outcome,
        Outcome::Refused(Undeliverable::StoreFailing(name("bob")))
    );
    net.committed(Seq(103));
    let outcome = net.deliver_direct(
        &name("bob"),
        message(c, "3"),
        LIMITS,
        persist_into(&mut log),
    );
    assert!(matches!(outcome, Outcome::Stored { .. }), "{outcome:?}");
    let outcome = net.deliver_direct(
        &name("bob"),
        message(c, "4"),
        LIMITS,
        persist_into(&mut log),
    );
    assert_eq!(
        outcome,
        Outcome::Refused(Undeliverable::MailboxFull(name("bob")))
    );
    assert_eq!(log.len(), 3, "a refusal stores nothing");
}

/// The events queued, with the session each is for.
fn to_sessions(net: &mut Network) -> Vec<(SessionId, Event)> {
    (drain(net).into_iter())
        .filter_map(|d| match d.to {
            Audience::Session(s) => Some((s, d.event)),
            _ => None,
        })
        .collect()
}

#[test]
fn invisible_shows_as_offline_to_everyone_but_the_user_and_friends_are_told() {
    let mut net = network(&[
        account("alice", 0),
        account("bob", 0),
        account("carol", 0),
        Change::FriendshipMade {
            a: name("alice"),
            b: name("bob"),
            since_ms: 1,
        },
    ]);
    let a1 = net
        .login(&name("alice"), ConnId(1), ACCOUNT)
        .expect("login");
    let a2 = net
        .login(&name("alice"), ConnId(2), ACCOUNT)
        .expect("login");
    let bob = net.login(&name("bob"), ConnId(3), ACCOUNT).expect("login");
    net.login(&name("carol"), ConnId(4), ACCOUNT)
        .expect("login");
    drain(&mut net);
    let (alice, carol) = (name("alice").key(), name("carol").key());
    // One session away, the other online: she shows as the more available.
    net.set_status(a1, Status::Away);
    assert_eq!(net.shown(&alice), Shown::As(Status::Online));
    assert!(
        to_sessions(&mut net).is_empty(),
        "nothing changed for others"
    );
    net.set_status(a2, Status::Invisible);
    assert_eq!(net.shown(&alice), Shown::As(Status::Away));
    assert_eq!(
        to_sessions(&mut net),
        [(
            bob,
            Event::Presence {
                name: name("alice"),
                shown: Shown::As(Status::Away)
            }
        )],
        "her friend is told; carol, no friend, is not"
    );
    net.set_status(a1, Status::Invisible);
    assert_eq!(net.shown_to(&carol, &alice), Shown::Offline);
    assert_eq!(
        net.shown_to(&alice, &alice),
        Shown::As(Status::Invisible),
        "she sees herself"
    );
    assert_eq!(
        to_sessions(&mut net),
        [(
            bob,
            Event::Presence {
                name: name("alice"),
                shown: Shown::Offline
            }
        )]
    );
    // Audiences leave the user's own sessions out.
    assert_eq!(
        net.audience(&alice, &PresenceAudience::Everyone).len(),
        2,
        "bob and carol"
    );
    assert_eq!(net.audience(&alice, &PresenceAudience::Friends), [bob]);
}

#[test]
fn rooms_notify_their_members_and_kicks_follow_levels() {
    let mut net = network(&[
        account("op", 2),
        account("mod", 1),
        account("user", 0),
        account("peer", 1),
    ]);
    let room = RoomName("lobby".into());
    let op = net.login(&name("op"), ConnId(1), ACCOUNT).expect("login");
    let md = net.login(&name("mod"), ConnId(2), ACCOUNT).expect("login");
    let user = net.login(&name("user"), ConnId(3), ACCOUNT).expect("login");
    drain(&mut net);
    net.join(op, &room);
    net.join(user, &room);
    net.join(md, &room);
    let joined = |n: &str| Event::RoomJoined {
        room: room.clone(),
        name: name(n),
    };
    assert_eq!(
        to_sessions(&mut net),
        [
            (op, joined("user")),
            (op, joined("mod")),
            (user, joined("mod"))
        ],
        "the members already there, in join order"
    );
    assert_eq!(net.members(&room).collect::<Vec<_>>(), [op, user, md]);
    assert_eq!(
        net.audience(
            &name("user").key(),
            &PresenceAudience::RoomOperators(room.clone())
        ),
        [op, md]
    );
    // A user kicks nobody; an operator only a lower level.
    assert_eq!(
        net.kick_from_room(user, md, KickRule::Above),
        Err(KickError::Level)
    );
    assert_eq!(
        net.kick_from_room(md, op, KickRule::Above),
        Err(KickError::Level)
    );
    assert_eq!(net.kick_from_room(md, user, KickRule::Above), Ok(()));
    let left = |n: &str| Event::RoomLeft {
        room: room.clone(),
        name: name(n),
    };
    let kicked = |n: &str, by: &str| Event::MemberKicked {
        room: room.clone(),
        name: name(n),
        by: name(by),
    };
    assert_eq!(
        to_sessions(&mut net),
        [
            (
                user,
                Event::RoomKicked {
                    room: room.clone(),
                    by: name("mod")
                }
            ),
            (op, kicked("user", "mod")),
            (md, kicked("user", "mod")),
            (op, left("user")),
            (md, left("user"))
        ]
    );
    assert_eq!(net.room_of(user), None);
    assert_eq!(
        net.kick_from_room(op, user, KickRule::Above),
        Err(KickError::NotHere)
    );
    // Nor an operator of the same level.
    let peer = net.login(&name("peer"), ConnId(4), ACCOUNT).expect("login");
    net.join(peer, &room);
    assert_eq!(
        net.kick_from_room(md, peer, KickRule::Above),
        Err(KickError::Level)
    );
    // Under the other rule, an operator kicks its own level, still not a higher one.
    assert_eq!(
        net.kick_from_room(md, op, KickRule::NotBelow),
        Err(KickError::Level)
    );
    assert_eq!(net.kick_from_room(md, peer, KickRule::NotBelow), Ok(()));
    assert_eq!(net.room_of(peer), None);
    net.logout(peer);
    // Logging out leaves the room, with the notice.
    net.logout(md);
    assert!(to_sessions(&mut net).contains(&(op, left("mod"))));
    net.logout(op);
    assert_eq!(net.members(&room).count(), 0, "an empty room is gone");
}

#[test]
fn a_rooms_listing_is_in_name_order_through_joins_leaves_and_renames() {
    let mut net = network(&[account("op", 1)]);
    let room = RoomName("lobby".into());
    let listing = |net: &mut Network| -> Vec<(String, u8)> {
        (net.members_by_name(&room))
            .map(|(n, level)| (n.as_str().to_owned(), level))
            .collect()
    };
    let list = |names: &[(&str, u8)]| -> Vec<(String, u8)> {
        names.iter().map(|&(n, l)| (n.to_owned(), l)).collect()
    };
    let bob = net.login(&name("bob"), ConnId(1), NICK).expect("login");
    let alice = net.login(&name("Alice"), ConnId(2), NICK).expect("login");
    let op = net.login(&name("op"), ConnId(3), ACCOUNT).expect("login");
    assert_eq!(listing(&mut net), [], "nobody is in the room yet");
    for s in [bob, op, alice] {
        net.join(s, &room);
    }
    assert_eq!(
        listing(&mut net),
        list(&[("Alice", 0), ("bob", 0), ("op", 1)]),
        "case-insensitively, not in join order"
    );
    // Asked again with nothing changed: the same.
    assert_eq!(
        listing(&mut net),
        list(&[("Alice", 0), ("bob", 0), ("op", 1)])
    );
    let aaron = net.login(&name("aaron"), ConnId(4), NICK).expect("login");
    net.join(aaron, &room);
    assert_eq!(
        listing(&mut net),
        list(&[("aaron", 0), ("Alice", 0), ("bob", 0), ("op", 1)]),
        "a member who joined"
    );
    net.leave(bob);
    assert_eq!(
        listing(&mut net),
        list(&[("aaron", 0), ("Alice", 0), ("op", 1)]),
        "a member who left"
    );
    net.rename(op, &name("Abe")).expect("rename");
    assert_eq!(
        listing(&mut net),
        list(&[("aaron", 0), ("Abe", 1), ("Alice", 0)]),
        "a member renamed, in its new place"
    );
    net.logout(alice);
    net.logout(aaron);
    net.logout(op);
    assert_eq!(listing(&mut net), [], "an empty room is gone");
}

#[test]
fn friends_hear_of_a_login_and_a_logout_unless_invisible() {
    let mut net = network(&[
        account("alice", 0),
        account("bob", 0),
        Change::FriendshipMade {
            a: name("alice"),
            b: name("bob"),
            since_ms: 1,
        },
    ]);
    let bob = net.login(&name("bob"), ConnId(1), ACCOUNT).expect("login");
    drain(&mut net);
    let presence = |shown| {
        (
            bob,
            Event::Presence {
                name: name("alice"),
                shown,
            },
        )
    };
    let alice = net
        .login(&name("alice"), ConnId(2), ACCOUNT)
        .expect("login");
    assert_eq!(to_sessions(&mut net), [presence(Shown::As(Status::Online))]);
    net.set_status(alice, Status::Invisible);
    assert_eq!(to_sessions(&mut net), [presence(Shown::Offline)]);
    net.logout(alice);
    assert!(
        to_sessions(&mut net).is_empty(),
        "she already showed as offline"
    );
    let alice = net
        .login(&name("alice"), ConnId(3), ACCOUNT)
        .expect("login");
    net.logout(alice);
    assert_eq!(
        to_sessions(&mut net),
        [
            presence(Shown::As(Status::Online)),
            presence(Shown::Offline)
        ]
    );
}

#[test]
fn friend_requests_become_friendships_once_both_ask_or_one_accepts() {
    let mut net = network(&[account("alice", 0), account("bob", 0), account("carol", 0)]);
    let (alice, bob, carol) = (name("alice"), name("bob"), name("carol"));
    let mut seq = 10;
    let mut apply = |net: &mut Network, change: Change| {
        seq += 1;
        net.apply(&change, Seq(seq));
    };
    assert_eq!(
        net.ask_friend(&alice, &name("nobody"), 1),
        Err(FriendError::NoSuchUser)
    );
    let ask = net.ask_friend(&alice, &bob, 1).expect("a request");
    apply(&mut net, ask);
    assert_eq!(
        net.ask_friend(&alice, &bob, 2),
        Err(FriendError::AlreadyAsked)
    );
    assert_eq!(net.requests_to(bob.key_ref()).len(), 1);
    // Bob asking back is accepting.
    let back = net.ask_friend(&bob, &alice, 3).expect("a friendship");
    assert!(matches!(back, Change::FriendshipMade { .. }), "{back:?}");
    apply(&mut net, back);
    assert!(net.are_friends(alice.key_ref(), bob.key_ref()));
    assert!(net.requests_to(bob.key_ref()).is_empty());
    assert_eq!(
        net.ask_friend(&bob, &alice, 4),
        Err(FriendError::AlreadyFriends)
    );
    // An answer needs a request; a refusal drops it.
    assert_eq!(
        net.answer_friend(&carol, &alice, true, 5),
        Err(FriendError::NotAsked)
    );
    let ask = net.ask_friend(&carol, &alice, 5).expect("a request");
    apply(&mut net, ask);
    let no = net
        .answer_friend(&alice, &carol, false, 6)
        .expect("a refusal");
    apply(&mut net, no);
    assert!(net.requests_to(alice.key_ref()).is_empty());
    assert_eq!(
        net.friends_of(alice.key_ref()).collect::<Vec<_>>(),
        [bob.key_ref()]
    );
}

/// The lobby's view: what is told to everyone.
fn lobby(net: &mut Network) -> Vec<Event> {
    drain(net)
        .into_iter()
        .filter(|d| matches!(d.to, Audience::AllBut(_)))
        .map(|d| d.event)
        .collect()
}

#[test]
fn the_lobby_sees_an_invisible_user_as_gone_and_lists_only_visible_ones() {
    let mut net = network(&[account("alice", 0), account("bob", 0)]);
    let a1 = net
        .login(&name("alice"), ConnId(1), ACCOUNT)
        .expect("login");
    let a2 = net
        .login(&name("alice"), ConnId(2), ACCOUNT)
        .expect("login");
    net.login(&name("bob"), ConnId(3), ACCOUNT).expect("login");
    drain(&mut net);
    let online = |net: &Network| -> Vec<String> {
        net.online_names().map(|n| n.as_str().to_owned()).collect()
    };
    // One of her sessions invisible: she still shows.
    net.set_status(a1, Status::Invisible);
    assert_eq!(lobby(&mut net), []);
    assert_eq!(online(&net), ["alice", "bob"]);
    // Both: she leaves the lobby, and its list.
    net.set_status(a2, Status::Invisible);
    let gone = Event::UserOffline {
        name: name("alice"),
    };
    assert_eq!(lobby(&mut net), [gone]);
    assert_eq!(online(&net), ["bob"]);
    // Her invisible sessions ending tell nobody anything.
    net.logout(a2);
    assert_eq!(lobby(&mut net), []);
    // A new, visible session brings her back.
    let a3 = net
        .login(&name("alice"), ConnId(4), ACCOUNT)
        .expect("login");
    let back = Event::UserOnline {
        name: name("alice"),
    };
    assert_eq!(lobby(&mut net), [back]);
    assert_eq!(online(&net), ["alice", "bob"]);
    net.set_status(a3, Status::Away);
    assert_eq!(lobby(&mut net), [], "away is still there");
    net.logout(a3);
    net.logout(a1);
    assert_eq!(
        lobby(&mut net),
        [Event::UserOffline {
            name: name("alice")
        }],
        "gone once, with her last visible session"
    );
}

#[test]
fn a_room_hears_what_is_said_in_it_in_one_order_and_operators_their_own() {
    let mut net = network(&[account("op", 1), account("user", 0), account("far", 0)]);
    let (lobby, hall) = (RoomName("lobby".into()), RoomName("hall".into()));
    let op = net.login(&name("op"), ConnId(1), ACCOUNT).expect("login");
    let user = net.login(&name("user"), ConnId(2), ACCOUNT).expect("login");
    let far = net.login(&name("far"), ConnId(3), ACCOUNT).expect("login");
    net.join(op, &lobby);
    net.join(user, &lobby);
    net.join(far, &hall);
    drain(&mut net);
    let said = |from: &str, kind, body: &str| Event::RoomMessage {
        post: std::sync::Arc::new(RoomPost {
            room: lobby.clone(),
            from: name(from),
            kind,
            body: body.into(),
        }),
    };
    assert_eq!(
        net.say_in_room(user, RoomSay::Text, "hi"),
        Some(lobby.clone())
    );
    assert_eq!(
        net.say_in_room(op, RoomSay::Action, "waves"),
        Some(lobby.clone())
    );
    assert_eq!(
        net.say_in_room(user, RoomSay::ToOperators, "help"),
        Some(lobby.clone())
    );
    assert_eq!(
        to_sessions(&mut net),
        [
            (op, said("user", RoomSay::Text, "hi")),
            (user, said("user", RoomSay::Text, "hi")),
            (op, said("op", RoomSay::Action, "waves")),
            (user, said("op", RoomSay::Action, "waves")),
            (op, said("user", RoomSay::ToOperators, "help")),
        ],
        "the speaker hears itself; the other room nothing; operators only their own"
    );
    net.leave(far);
    assert_eq!(net.say_in_room(far, RoomSay::Text, "anyone?"), None);
}
