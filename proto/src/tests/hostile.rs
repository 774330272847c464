//! Hostile peers (issue 15): the login timeout and the failed-login lockout on every
//! protocol that has them, each refusal checked with another client going on unharmed.

use super::harness::{md5_hex, Harness};
use crate::{CloseReason, Config, ConnId, Protocol};

/// Accounts alice, bob and carol (password `pw`), made through the admin socket.
fn harness(config: Config) -> Harness {
    let mut h = Harness::new(config);
    let admin = h.connect(Protocol::Admin);
    for name in ["alice", "bob", "carol"] {
        h.send(admin, format!("user add {name} pw\r\n"));
        assert_eq!(h.take(admin), format!("ok account {name} created\r\n"));
    }
    h
}

fn arsc_connect(user: &str, password: &str) -> String {
    format!(
        "<arscrequest><type>connect</type><user>{user}</user><password>{password}</password><room>lounge</room></arscrequest>"
    )
}

fn ims_login(user: &str, password: &str) -> String {
    format!("<LOGIN user=\"{user}\" pass=\"{}\"/>", md5_hex(password))
}

/// Logs `user` in with password `pw` on a new connection of `protocol` from `ip`.
fn logged_in(h: &mut Harness, protocol: Protocol, user: &str, ip: [u8; 4]) -> ConnId {
    let c = h.connect_from(protocol, ip);
    let (request, ok) = match protocol {
        Protocol::Ws2017 => (format!("uname {user}\r\n"), "+OK uname".to_owned()),
        Protocol::Arsc => (arsc_connect(user, "pw"), "<status>ok</status>".to_owned()),
        Protocol::Ims => (
            ims_login(user, "pw"),
            format!("user=\"{user}\" result=\"1\""),
        ),
        _ => (format!("110 {user} pw\n"), format!("212 400 {user}")),
    };
    h.send(c, request);
    let out = h.take(c);
    assert!(out.contains(&ok), "{protocol:?} login of {user}: {out}");
    c
}

/// A request that every logged-in client of `protocol` gets an answer to, and that answer.
fn probe(protocol: Protocol) -> (&'static str, &'static str) {
    match protocol {
        Protocol::Ws2017 => ("cping\r\n", "+OK cpong"),
        Protocol::Arsc => ("<arscrequest><type>bogus</type></arscrequest>", "bogus"),
        Protocol::Ims => ("<ALIVE/>", "<ALIVE/>"),
        _ => ("112\n", "214 "),
    }
}

/// A connection that never logs in is closed `login_timeout` after it opened, with the
/// protocol's goodbye where it has one; one that logged in is not, on every protocol.
#[test]
fn connections_that_never_log_in_are_closed_at_the_login_timeout() {
    let goodbyes = [
        (Protocol::Ws2017, "-ERR 'no uname in time, goodbye'\r\n"),
        (Protocol::Arsc, "No connect in time, goodbye."),
        (Protocol::Ims, ""),
        (Protocol::Opcode, ""),
    ];
    for (protocol, goodbye) in goodbyes {
        let mut config = Config::default();
        config.limits.login_timeout = core::time::Duration::from_secs(10);
        let mut h = harness(config);
        // ws2017 names are nicks: a registered name is not one.
        let name = if protocol == Protocol::Ws2017 {
            "dora"
        } else {
            "alice"
        };
        let user = logged_in(&mut h, protocol, name, [10, 0, 0, 1]);
        let idle = h.connect_from(protocol, [10, 0, 0, 2]);
        h.take(idle);
        // Talking without logging in does not keep it (an ims ALIVE every few seconds).
        for _ in 0..4 {
            h.advance(2_400);
            h.send(idle, probe(protocol).0);
            h.send(user, probe(protocol).0);
        }
        assert_eq!(h.closed(idle), None, "{protocol:?}: closed too early");
        h.take(idle);
        h.advance(500);
        assert_eq!(
            h.closed(idle),
            Some(CloseReason::LoginTimeout),
            "{protocol:?}"
        );
        assert!(h.take(idle).contains(goodbye), "{protocol:?}");
        // The client that logged in is served on.
        h.take(user);
        h.send(user, probe(protocol).0);
        let answer = h.take(user);
        assert!(answer.contains(probe(protocol).1), "{protocol:?}: {answer}");
        h.advance(3_000);
        h.send(user, probe(protocol).0);
        assert_eq!(h.closed(user), None, "{protocol:?}");
    }
}

/// The original ws2017 client connects, and answers pings, while its user is still
/// typing a name: a connection that answers every ping waits for its `uname` past the
/// login timeout; once it stops answering, the ping timeout closes it.
#[test]
fn a_ws2017_connection_answering_pings_waits_for_its_name() {
    let mut config = Config::default();
    config.limits.login_timeout = core::time::Duration::from_secs(10);
    let mut h = harness(config);
    let typing = h.connect_from(Protocol::Ws2017, [10, 0, 0, 2]);
    let gone = h.connect_from(Protocol::Ws2017, [10, 0, 0, 3]);
    h.take(typing);
    // A minute of pings at the default 2 s, each answered.
    for _ in 0..30 {
        h.advance(2_000);
        assert!(h.take(typing).contains("cping"));
        h.send(typing, "cpong\r\n");
    }
    assert_eq!(h.closed(typing), None);
    assert_eq!(h.closed(gone), Some(CloseReason::LoginTimeout));
    h.send(typing, "uname dora\r\n");
    assert!(h.take(typing).contains("+OK uname you are dora"));
    // Named and silent from now on: the ping timeout (15 s) ends it.
    h.advance(20_000);
    assert_eq!(h.closed(typing), Some(CloseReason::Timeout));
}

/// An arsc connection that only posts for a session connected on another connection is
/// in use, not idle.
#[test]
fn an_arsc_connection_posting_with_a_known_sid_is_not_idle() {
    let mut config = Config::default();
    config.limits.login_timeout = core::time::Duration::from_secs(10);
    let mut h = harness(config);
    let first = h.connect(Protocol::Arsc);
    h.send(first, arsc_connect("alice", "pw"));
    let out = h.take(first);
    let sid = out
        .split_once("<sid>")
        .and_then(|(_, rest)| rest.split_once("</sid>"))
        .map(|(sid, _)| sid.to_owned())
        .expect("a sid");
    let poster = h.connect(Protocol::Arsc);
    h.send(
        poster,
        format!("<arscrequest><type>userlist</type><sid>{sid}</sid></arscrequest>"),
    );
    assert!(h.take(poster).contains("<status>ok</status>"));
    h.advance(11_000);
    assert_eq!(h.closed(poster), None);
    assert_eq!(h.closed(first), None);
}

/// Wrong passwords lock the account after `failed_logins_per_account` of them: its logins
/// are refused before any password check, even with the right password and from another
/// address, until `login_lockout` has passed; other accounts log in meanwhile. On every
/// protocol with passwords.
#[test]
fn failed_logins_lock_the_account_on_every_protocol_with_passwords() {
    for protocol in [Protocol::Arsc, Protocol::Ims, Protocol::Opcode] {
        let mut config = Config::default();
        config.limits.failed_logins_per_account = 3;
        let mut h = harness(config);
        let (attempt, wrong, refused): (fn(&str, &str) -> String, &str, &str) = match protocol {
            Protocol::Arsc => (
                arsc_connect,
                "Access denied! Are your credentials correct?",
                "Too many failed logins, try again later.",
            ),
            Protocol::Ims => (ims_login, "result=\"0\"", "result=\"0\""),
            _ => (
                |user, pw| format!("110 {user} {pw}\n"),
                "212 406 bob",
                "211",
            ),
        };
        let mallory = h.connect_from(protocol, [10, 0, 0, 66]);
        for _ in 0..3 {
            h.send(mallory, attempt("bob", "guess"));
            let out = h.take(mallory);
            assert!(out.contains(wrong), "{protocol:?}: {out}");
        }
        // Locked: the right password from another address is refused.
        let bob = h.connect_from(protocol, [10, 0, 0, 2]);
        h.send(bob, attempt("bob", "pw"));
        let out = h.take(bob);
        assert!(out.contains(refused), "{protocol:?}: {out}");
        assert!(h.server().rate_refusals() >= 1, "counted for the log line");
        // Another account logs in meanwhile.
        logged_in(&mut h, protocol, "carol", [10, 0, 0, 3]);
        // After the lockout, bob logs in (a protocol with an idle timeout keeps its
        // connection alive meanwhile).
        for _ in 0..30 {
            h.advance(10_000);
            if protocol == Protocol::Ims {
                h.send(bob, "<ALIVE/>");
            }
        }
        h.take(bob);
        if protocol != Protocol::Ims {
            h.peer_close(bob);
        }
        logged_in(&mut h, protocol, "bob", [10, 0, 0, 2]);
    }
}

/// An address that guesses the passwords of many accounts is locked after
/// `failed_logins_per_ip` failures, for any account; other addresses are not.
#[test]
fn failed_logins_lock_the_address() {
    let mut config = Config::default();
    config.limits.failed_logins_per_ip = 4;
    let mut h = harness(config);
    let mallory = h.connect_from(Protocol::Ims, [10, 0, 0, 66]);
    for user in ["alice", "bob", "carol", "alice"] {
        h.send(mallory, ims_login(user, "guess"));
        assert!(h.take(mallory).contains("result=\"0\""));
    }
    let again = h.connect_from(Protocol::Ims, [10, 0, 0, 66]);
    h.send(again, ims_login("bob", "pw"));
    assert!(h
        .take(again)
        .ends_with("<LOGIN user=\"bob\" result=\"0\"/>\n"));
    logged_in(&mut h, Protocol::Ims, "bob", [10, 0, 0, 2]);
}

/// Connects guest `user` into `room` over arsc: its connection, and its sid or the error.
fn arsc_join(h: &mut Harness, user: &str, room: &str) -> (ConnId, Result<String, String>) {
    let c = h.connect(Protocol::Arsc);
    h.send(
        c,
        format!(
            "<arscrequest><type>connect</type><user>{user}</user><room>{room}</room></arscrequest>"
        ),
    );
    let out = h.take(c);
    let sid = out
        .split_once("<sid>")
        .and_then(|(_, rest)| rest.split_once("</sid>"))
        .map(|(sid, _)| sid.to_owned());
    (c, sid.ok_or(out))
}

fn arsc_post(sid: &str, content: &str) -> String {
    format!(
        "<arscrequest><type>post</type><sid>{sid}</sid><content>{content}</content></arscrequest>"
    )
}

/// arsc rooms are bounded in number (`arsc.max_rooms`) and size (`arsc.max_room_members`):
/// a connect or `/room` past either is refused with the reason, and the members of the
/// full room go on talking.
#[test]
fn arsc_rooms_and_their_members_are_bounded() {
    let mut config = Config::default();
    config.arsc.max_rooms = 2;
    config.arsc.max_room_members = 2;
    let mut h = harness(config);
    let (ann, ann_sid) = arsc_join(&mut h, "ann", "lounge");
    let (ben, ben_sid) = arsc_join(&mut h, "ben", "lounge");
    let (ann_sid, ben_sid) = (ann_sid.expect("ann in"), ben_sid.expect("ben in"));
    let (_, full) = arsc_join(&mut h, "cid", "lounge");
    assert!(full
        .expect_err("lounge is full")
        .contains("This room is full!"));
    let (_, den) = arsc_join(&mut h, "dan", "den");
    den.expect("a second room");
    let (_, third) = arsc_join(&mut h, "eve", "attic");
    let third = third.expect_err("no third room");
    assert!(third.contains("No more rooms can be opened, try an existing one!"));
    // A move is refused the same way; ann stays in the lounge.
    h.take(ann);
    h.take(ben);
    h.send(ann, arsc_post(&ann_sid, "/room attic"));
    assert!(h.take(ann).contains("No more rooms can be opened"));
    h.send(ann, arsc_post(&ann_sid, "/room den"));
    assert!(h.take(ann).contains("ann enters the room den"));
    assert!(h.take(ben).contains("ann leaves"));
    // The room's members are unaffected: ben is heard, and a place freed is taken.
    let (_, cid) = arsc_join(&mut h, "cid", "lounge");
    cid.expect("room for cid now");
    h.send(ben, arsc_post(&ben_sid, "hello"));
    assert!(h.take(ben).contains("hello"));
}

/// arsc sids cannot be guessed: a sid of the right shape that is no session's, a
/// victim's sid with one digit changed, an empty one, and a sid whose session ended are
/// all refused as not known, and nothing reaches the victim's room. Sids are 128 random
/// bits: distinct, with no order to them.
#[test]
fn arsc_sids_cannot_be_guessed_or_reused() {
    let mut h = harness(Config::default());
    let (alice, alice_sid) = arsc_join(&mut h, "alice-g", "lounge");
    let (bob, bob_sid) = arsc_join(&mut h, "bob-g", "lounge");
    let (alice_sid, bob_sid) = (alice_sid.expect("alice in"), bob_sid.expect("bob in"));
    let (mallory, _) = arsc_join(&mut h, "mallory", "attic");
    h.take(alice);
    h.take(bob);
    let mut near = alice_sid.clone().into_bytes();
    near[31] = if near[31] == b'0' { b'1' } else { b'0' };
    let near = String::from_utf8(near).expect("hex");
    for sid in ["00000000000000000000000000000000", near.as_str(), ""] {
        h.send(mallory, arsc_post(sid, "I am alice"));
        let out = h.take(mallory);
        assert!(out.contains("This session is not known"), "{sid}: {out}");
    }
    assert_eq!(h.take(alice), "");
    assert_eq!(h.take(bob), "", "nothing reached the room");
    // A session's sid dies with it.
    h.peer_close(alice);
    h.take(bob);
    h.send(mallory, arsc_post(&alice_sid, "I am alice"));
    assert!(h.take(mallory).contains("This session is not known"));
    assert_eq!(h.take(bob), "");
    // The victim's own session goes on.
    h.send(bob, arsc_post(&bob_sid, "still here"));
    assert!(h.take(bob).contains("still here"));
    // Sids of many sessions: all distinct, and consecutive ones share no long prefix.
    let sids: Vec<String> = (0..50)
        .map(|i| arsc_join(&mut h, &format!("g{i}"), "hall").1.expect("in"))
        .collect();
    let distinct: std::collections::BTreeSet<&String> = sids.iter().collect();
    assert_eq!(distinct.len(), sids.len());
    for pair in sids.windows(2) {
        let common = pair[0]
            .bytes()
            .zip(pair[1].bytes())
            .take_while(|(a, b)| a == b);
        assert!(common.count() < 8, "{pair:?}");
    }
}

/// An ims client logged in as mallory cannot speak for alice: a MESSAGE, a STATUS, a
/// FRIEND request and a LOGOUT naming alice are refused, and neither alice nor bob hears
/// of them; alice stays online.
#[test]
fn ims_attributes_naming_another_user_are_refused() {
    let mut h = harness(Config::default());
    let mallory_ip = [10, 0, 0, 66];
    let admin = h.connect(Protocol::Admin);
    h.send(admin, "user add mallory pw\r\n");
    h.take(admin);
    let alice = logged_in(&mut h, Protocol::Ims, "alice", [10, 0, 0, 1]);
    let bob = logged_in(&mut h, Protocol::Ims, "bob", [10, 0, 0, 2]);
    let mallory = logged_in(&mut h, Protocol::Ims, "mallory", mallory_ip);
    h.take(alice);
    h.take(bob);
    let spoofs = [
        "<MESSAGE from=\"alice\" to=\"bob\">send me your password</MESSAGE>",
        "<MESSAGE from=\"ALICE\" to=\"bob\">send me your password</MESSAGE>",
        "<STATUS user=\"alice\" type=\"set\" code=\"Invisible\"/>",
        "<FRIEND user=\"alice\" friend=\"bob\" type=\"add\"/>",
        "<FRIEND user=\"alice\" other=\"bob\" type=\"accept\"/>",
        "<LOGOUT user=\"alice\"/>",
    ];
    for spoof in spoofs {
        h.send(mallory, spoof);
        let out = h.take(mallory);
        assert!(out.contains("result=\"0\""), "{spoof}: {out}");
        assert_eq!(h.take(alice), "", "{spoof}");
        assert_eq!(h.take(bob), "", "{spoof}");
        assert_eq!(h.closed(alice), None, "{spoof}");
    }
    // alice is still alice, online: bob reaches her.
    h.send(bob, "<MESSAGE from=\"bob\" to=\"alice\">hi</MESSAGE>");
    assert!(h.take(bob).contains("<MESSAGE result=\"1\"/>"));
    assert!(h
        .take(alice)
        .contains("<MESSAGE from=\"bob\" to=\"alice\">hi</MESSAGE>"));
}

/// opcode chats are their members' only: mallory, who is in none, cannot post to, read
/// the media of, or delete the chat of alice and bob by its id; they hear nothing of it
/// and the chat and its message are intact.
#[test]
fn opcode_chats_of_others_are_refused_by_id() {
    let mut h = harness(Config::default());
    let admin = h.connect(Protocol::Admin);
    h.send(admin, "user add mallory pw\r\n");
    h.take(admin);
    let alice = logged_in(&mut h, Protocol::Opcode, "alice", [10, 0, 0, 1]);
    let bob = logged_in(&mut h, Protocol::Opcode, "bob", [10, 0, 0, 2]);
    let mallory = logged_in(&mut h, Protocol::Opcode, "mallory", [10, 0, 0, 66]);
    let ask = |h: &mut Harness, c: ConnId, line: &str| {
        h.send(c, format!("{line}\r\n"));
        h.take(c)
    };
    ask(&mut h, alice, "121 bob");
    ask(&mut h, bob, "121 alice");
    h.take(alice);
    assert_eq!(ask(&mut h, alice, "113 bob"), "217 400\r\n");
    assert!(ask(&mut h, alice, "115 0 secret %00%01").starts_with("219 400"));
    h.take(bob);
    for (spoof, refused) in [
        ("115 0 from%20alice", "219 409"),
        ("119 0", "227 409"),
        ("114 0", "218 409"),
    ] {
        let out = ask(&mut h, mallory, spoof);
        assert_eq!(out, format!("{refused}\r\n"), "{spoof}");
        assert_eq!(h.take(alice), "", "{spoof}");
        assert_eq!(h.take(bob), "", "{spoof}");
    }
    assert_eq!(
        ask(&mut h, mallory, "112"),
        "214 0\r\n216\r\n",
        "no chats listed"
    );
    assert_eq!(h.server().state().chats.len(), 1, "the chat is intact");
    assert_eq!(h.server().state().media.len(), 1, "its media too");
}

/// The offline cap holds for every kind of stored item: an opcode friend acceptance for
/// an offline asker whose mailbox is full makes the friendship but stores no notice past
/// the cap; a mailbox with room gets the notice.
#[test]
fn a_friend_acceptance_notice_respects_the_offline_cap() {
    use crate::persist::{Account, Change, MessageId, MessageKind, State, StoredMessage};
    use crate::{PasswordHash, UserName};
    let name = |n: &str| UserName::parse(n).expect("a name");
    let mut state = State::default();
    for n in ["alice", "bob", "carol"] {
        state.apply(&Change::AccountCreated(Account {
            name: name(n),
            password: PasswordHash("test$pw".into()),
            ims_password: PasswordHash(format!("test${}", md5_hex("pw"))),
            email: None,
            gender: None,
            level: 0,
            banned: false,
            created_ms: 0,
        }));
    }
    for (i, asker) in ["alice", "carol"].into_iter().enumerate() {
        state.apply(&Change::FriendRequested {
            from: name(asker),
            to: name("bob"),
            since_ms: i as u64,
        });
    }
    // alice's mailbox is full (cap 2); carol's is empty.
    for id in 0..2 {
        state.apply(&Change::OfflineQueued(StoredMessage {
            id: MessageId(id),
            from: name("carol"),
            to: name("alice"),
            body: "hi".into(),
            sent_ms: 0,
            kind: MessageKind::Direct,
        }));
    }
    let config = Config {
        offline_cap: 2,
        ..Config::default()
    };
    let mut h = Harness::with_state(config, state);
    let bob = logged_in(&mut h, Protocol::Opcode, "bob", [10, 0, 0, 2]);
    h.take(bob);
    for asker in ["alice", "carol"] {
        h.send(bob, format!("121 {asker}\r\n"));
        assert_eq!(h.take(bob), "232 400\r\n", "{asker}");
    }
    let state = h.server().state();
    let held = |n: &str| state.offline.get(&name(n).key()).map_or(0, |q| q.len());
    assert_eq!(held("alice"), 2, "no notice past the cap");
    assert_eq!(held("carol"), 1, "a notice where there is room");
    assert!(state.are_friends(&name("bob").key(), &name("alice").key()));
    assert!(state.are_friends(&name("bob").key(), &name("carol").key()));
}
