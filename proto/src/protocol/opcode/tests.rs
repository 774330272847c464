//! opcode behaviour over the network model, request by request (seed and PROTOCOLS.md).

use crate::tests::harness::{md5_hex, Harness, WALL_ORIGIN_MS};
use crate::{Config, ConnId, Protocol};

fn harness() -> Harness {
    Harness::new(Config::default())
}

fn client(h: &mut Harness) -> ConnId {
    let c = h.connect(Protocol::Opcode);
    assert_eq!(h.take(c), "", "no greeting");
    c
}

fn ask(h: &mut Harness, c: ConnId, line: &str) -> String {
    h.send(c, format!("{line}\r\n"));
    h.take(c)
}

/// Registers `name` (password `pw`) and logs in on a new connection.
fn user(h: &mut Harness, name: &str) -> ConnId {
    let c = client(h);
    assert_eq!(ask(h, c, &format!("117 {name} pw")), "222 400\r\n");
    assert_eq!(
        ask(h, c, &format!("110 {name} pw")),
        format!("212 400 {name}\r\n")
    );
    c
}

/// Makes `a` and `b` contacts.
fn contacts(h: &mut Harness, a: (ConnId, &str), b: (ConnId, &str)) {
    assert_eq!(ask(h, a.0, &format!("121 {}", b.1)), "232 400\r\n");
    assert_eq!(h.take(b.0), format!("233 {}\r\n", a.1));
    assert_eq!(ask(h, b.0, &format!("121 {}", a.1)), "232 400\r\n");
    assert_eq!(h.take(a.0), format!("233 {}\r\n", b.1));
}

#[test]
fn register_rules_and_taken_names() {
    let mut h = harness();
    let c = client(&mut h);
    assert_eq!(ask(&mut h, c, "117 a%2Fb pw"), "222 401\r\n");
    assert_eq!(ask(&mut h, c, "117 System pw"), "222 401\r\n");
    assert_eq!(ask(&mut h, c, "117 hans "), "222 402\r\n");
    assert_eq!(ask(&mut h, c, "117 hans a%0Ab"), "222 402\r\n");
    assert_eq!(ask(&mut h, c, "117 hans pw h%40x.de m"), "222 400\r\n");
    assert_eq!(ask(&mut h, c, "117 HANS pw"), "222 403\r\n");
    let account = h.server().state().accounts.values().next().cloned();
    let account = account.expect("registered");
    assert_eq!(account.email.as_deref(), Some("h@x.de"));
    assert_eq!(account.gender.as_deref(), Some("m"));
    assert_ne!(account.password.0, "pw", "hashed, never in clear");
    // A name a ws2017 user holds online is taken too.
    let ws = h.connect(Protocol::Ws2017);
    h.send(ws, "uname grete\r\n");
    h.take(ws);
    assert_eq!(ask(&mut h, c, "117 grete pw"), "222 403\r\n");
}

#[test]
fn registering_waits_for_the_commit() {
    let mut h = harness();
    h.auto_commit = false;
    let c = client(&mut h);
    assert_eq!(ask(&mut h, c, "117 hans pw"), "", "held until committed");
    h.commit();
    assert_eq!(h.take(c), "222 400\r\n");
}

#[test]
fn login_codes() {
    let mut h = harness();
    let c = client(&mut h);
    assert_eq!(ask(&mut h, c, "110 hans pw"), "212 406 hans\r\n", "unknown");
    assert_eq!(ask(&mut h, c, "117 hans pw"), "222 400\r\n");
    assert_eq!(ask(&mut h, c, "110 hans wrong"), "212 406 hans\r\n");
    assert_eq!(
        ask(&mut h, c, "100 HANS pw"),
        "212 400 hans\r\n",
        "alias 100"
    );
    assert_eq!(ask(&mut h, c, "110 hans pw"), "212 404 hans\r\n");
    assert_eq!(ask(&mut h, c, "117 other pw"), "222 404\r\n");
    let d = client(&mut h);
    assert_eq!(ask(&mut h, d, "110 hans pw"), "212 405 hans\r\n");
    assert_eq!(ask(&mut h, c, "111"), "213 400\r\n");
    assert_eq!(ask(&mut h, c, "111"), "213 407\r\n");
    assert_eq!(ask(&mut h, d, "110 hans pw"), "212 400 hans\r\n");
    // Closing the connection logs out too.
    h.peer_close(d);
    assert_eq!(ask(&mut h, c, "110 hans pw"), "212 400 hans\r\n");
}

#[test]
fn everything_but_login_and_register_needs_a_login() {
    let mut h = harness();
    let c = client(&mut h);
    for (line, answer) in [
        ("111", "213 407"),
        ("112", "211"),
        ("113 x", "217 407"),
        ("114 1", "218 407"),
        ("115 1 hi", "219 407"),
        ("118", "223 407"),
        ("119 1", "227 407"),
        ("120", "228 407"),
        ("121 x", "232 407"),
    ] {
        assert_eq!(ask(&mut h, c, line), format!("{answer}\r\n"), "{line}");
    }
}

#[test]
fn unknown_invalid_and_not_utf8() {
    let mut h = harness();
    let c = client(&mut h);
    assert_eq!(ask(&mut h, c, "116"), "210\r\n");
    assert_eq!(ask(&mut h, c, "hello"), "210\r\n");
    assert_eq!(ask(&mut h, c, "110 a"), "211\r\n");
    h.send(c, b"110 \xC3\x28 pw\r\n".to_vec());
    assert_eq!(h.take(c), "211\r\n");
    h.send(c, b"\r\n\n".to_vec());
    assert_eq!(h.take(c), "", "empty lines are ignored");
    let long = format!("121 {}\r\n", "x".repeat(70 * 1024));
    h.send(c, long);
    assert_eq!(h.take(c), "211\r\n");
    assert_eq!(ask(&mut h, c, "111"), "213 407\r\n", "still in step");
}

#[test]
fn contacts_request_confirm_and_list() {
    let mut h = harness();
    let hans = user(&mut h, "hans");
    let grete = user(&mut h, "grete");
    assert_eq!(ask(&mut h, hans, "121 nobody"), "232 410\r\n");
    assert_eq!(ask(&mut h, hans, "121 hans"), "232 410\r\n");
    assert_eq!(ask(&mut h, hans, "121 grete"), "232 400\r\n");
    assert_eq!(h.take(grete), "233 hans\r\n");
    assert_eq!(ask(&mut h, hans, "121 grete"), "232 400\r\n");
    assert_eq!(h.take(grete), "", "a repeated request pushes nothing");
    assert_eq!(ask(&mut h, hans, "118"), "223 400\r\n224 0\r\n226\r\n");
    assert_eq!(ask(&mut h, grete, "121 HANS"), "232 400\r\n");
    assert_eq!(h.take(hans), "233 grete\r\n");
    assert_eq!(
        ask(&mut h, hans, "118"),
        format!("223 400\r\n224 1\r\n225 grete {WALL_ORIGIN_MS}\r\n226\r\n")
    );
    assert_eq!(ask(&mut h, grete, "121 hans"), "232 400\r\n");
    assert_eq!(h.take(hans), "", "already contacts: no push");
    assert_eq!(
        ask(&mut h, hans, "120"),
        "228 400\r\n229 2\r\n230 grete\r\n230 hans\r\n231\r\n"
    );
}

#[test]
fn a_contact_request_waits_for_an_offline_user_until_answered() {
    let mut h = harness();
    let hans = user(&mut h, "hans");
    let grete = user(&mut h, "grete");
    assert_eq!(ask(&mut h, grete, "111"), "213 400\r\n");
    assert_eq!(ask(&mut h, hans, "121 grete"), "232 400\r\n");
    assert_eq!(
        ask(&mut h, grete, "110 grete pw"),
        "212 400 grete\r\n233 hans\r\n"
    );
    assert_eq!(ask(&mut h, grete, "111"), "213 400\r\n");
    assert_eq!(
        ask(&mut h, grete, "110 grete pw"),
        "212 400 grete\r\n233 hans\r\n",
        "again until answered"
    );
    // hans logs out; grete's answer is stored for him.
    assert_eq!(ask(&mut h, hans, "111"), "213 400\r\n");
    assert_eq!(ask(&mut h, grete, "121 hans"), "232 400\r\n");
    assert_eq!(
        ask(&mut h, hans, "110 hans pw"),
        "212 400 hans\r\n233 grete\r\n"
    );
    assert_eq!(ask(&mut h, hans, "111"), "213 400\r\n");
    assert_eq!(ask(&mut h, hans, "110 hans pw"), "212 400 hans\r\n", "once");
}

/// `name` (registered by [`user`]) logged in over ims on a new connection.
fn ims_user(h: &mut Harness, name: &str) -> ConnId {
    let c = h.connect(Protocol::Ims);
    h.send(
        c,
        format!("<LOGIN user=\"{name}\" pass=\"{}\"/>", md5_hex("pw")),
    );
    assert!(
        h.take(c).ends_with("result=\"1\"/>\n"),
        "{name} logs in on ims"
    );
    c
}

#[test]
fn an_acceptance_over_ims_reaches_the_opcode_user_live_or_at_its_next_login() {
    let mut h = harness();
    let hans = user(&mut h, "hans");
    for name in ["zed", "kai"] {
        let c = user(&mut h, name);
        assert_eq!(ask(&mut h, c, "111"), "213 400\r\n");
    }
    let zed = ims_user(&mut h, "zed");
    let kai = ims_user(&mut h, "kai");
    // Online: the accept is the answer that makes them contacts.
    assert_eq!(ask(&mut h, hans, "121 zed"), "232 400\r\n");
    assert!(h
        .take(zed)
        .contains("<FRIEND type=\"invite\" to=\"zed\" from=\"hans\"/>"));
    h.send(zed, "<FRIEND user=\"zed\" type=\"accept\" other=\"hans\"/>");
    assert!(h
        .take(zed)
        .ends_with("<FRIEND type=\"accept\" result=\"1\"/>\n"));
    assert_eq!(h.take(hans), "233 zed\r\n");
    // Offline: an ims add of someone who asked makes them contacts too, told at login.
    assert_eq!(ask(&mut h, hans, "121 kai"), "232 400\r\n");
    h.take(kai);
    assert_eq!(ask(&mut h, hans, "111"), "213 400\r\n");
    h.send(kai, "<FRIEND user=\"kai\" type=\"add\" friend=\"hans\"/>");
    assert!(h
        .take(kai)
        .ends_with("<FRIEND type=\"add\" result=\"1\"/>\n"));
    assert_eq!(
        ask(&mut h, hans, "110 hans pw"),
        "212 400 hans\r\n233 kai\r\n"
    );
    let listed = ask(&mut h, hans, "118");
    assert!(
        listed.contains(" zed ") && listed.contains(" kai "),
        "{listed:?}"
    );
}

#[test]
fn chats_create_list_delete() {
    let mut h = harness();
    let hans = user(&mut h, "hans");
    let grete = user(&mut h, "grete");
    let otto = user(&mut h, "otto");
    assert_eq!(ask(&mut h, hans, "113 nobody"), "217 410\r\n");
    assert_eq!(ask(&mut h, hans, "113 grete"), "217 411\r\n");
    contacts(&mut h, (hans, "hans"), (grete, "grete"));
    assert_eq!(ask(&mut h, hans, "113 grete"), "217 400\r\n");
    assert_eq!(
        ask(&mut h, grete, "113 hans"),
        "217 400\r\n",
        "no second chat"
    );
    assert_eq!(h.server().state().chats.len(), 1);
    assert_eq!(
        ask(&mut h, hans, "112"),
        "214 1\r\n215 0 hans grete\r\n216\r\n"
    );
    assert_eq!(
        ask(&mut h, grete, "112"),
        "214 1\r\n215 0 grete hans\r\n216\r\n"
    );
    assert_eq!(ask(&mut h, otto, "112"), "214 0\r\n216\r\n");
    assert_eq!(ask(&mut h, otto, "114 0"), "218 409\r\n");
    assert_eq!(ask(&mut h, otto, "114 7"), "218 408\r\n");
    assert_eq!(ask(&mut h, hans, "114 0"), "218 400\r\n");
    assert_eq!(ask(&mut h, grete, "112"), "214 0\r\n216\r\n");
    assert_eq!(ask(&mut h, grete, "115 0 hi"), "219 408\r\n");
}

#[test]
fn messages_reach_both_members_and_an_offline_one_exactly_once() {
    let mut h = harness();
    let hans = user(&mut h, "hans");
    let grete = user(&mut h, "grete");
    let otto = user(&mut h, "otto");
    contacts(&mut h, (hans, "hans"), (grete, "grete"));
    assert_eq!(ask(&mut h, hans, "113 grete"), "217 400\r\n");
    let t = WALL_ORIGIN_MS;
    assert_eq!(
        ask(&mut h, hans, "115 0 hallo%20grete"),
        format!("219 400\r\n220 0 {t} hallo%20grete\r\n")
    );
    assert_eq!(h.take(grete), format!("220 0 {t} hallo%20grete\r\n"));
    assert_eq!(ask(&mut h, otto, "115 0 hi"), "219 409\r\n");
    assert_eq!(ask(&mut h, hans, "115 9 hi"), "219 408\r\n");
    // grete goes; two messages wait for her, then come once, in order.
    assert_eq!(ask(&mut h, grete, "111"), "213 400\r\n");
    assert_eq!(
        ask(&mut h, hans, "115 0 eins"),
        format!("219 400\r\n220 0 {t} eins\r\n")
    );
    ask(&mut h, hans, "115 0 zwei");
    assert_eq!(
        ask(&mut h, grete, "110 grete pw"),
        format!("212 400 grete\r\n220 0 {t} eins\r\n220 0 {t} zwei\r\n")
    );
    assert_eq!(ask(&mut h, grete, "111"), "213 400\r\n");
    assert_eq!(ask(&mut h, grete, "110 grete pw"), "212 400 grete\r\n");
}

#[test]
fn a_stored_message_is_acknowledged_only_once_committed() {
    let mut h = harness();
    let hans = user(&mut h, "hans");
    let grete = user(&mut h, "grete");
    contacts(&mut h, (hans, "hans"), (grete, "grete"));
    ask(&mut h, hans, "113 grete");
    ask(&mut h, grete, "111");
    h.auto_commit = false;
    assert_eq!(ask(&mut h, hans, "115 0 eins"), "");
    h.commit();
    assert!(h.take(hans).starts_with("219 400\r\n220 0 "));
}

#[test]
fn media_is_stored_fetched_by_members_only_and_limited() {
    let mut config = Config::default();
    config.opcode.max_media_bytes = 8;
    let mut h = Harness::new(config);
    let hans = user(&mut h, "hans");
    let grete = user(&mut h, "grete");
    let otto = user(&mut h, "otto");
    contacts(&mut h, (hans, "hans"), (grete, "grete"));
    ask(&mut h, hans, "113 grete");
    let t = WALL_ORIGIN_MS;
    assert_eq!(
        ask(&mut h, hans, "115 0 bild %00%FFa%20b"),
        format!("219 400\r\n220 0 {t} bild 0\r\n")
    );
    assert_eq!(h.take(grete), format!("220 0 {t} bild 0\r\n"));
    assert_eq!(ask(&mut h, grete, "119 0"), "227 400 %00%FFa%20b\r\n");
    assert_eq!(ask(&mut h, otto, "119 0"), "227 409\r\n");
    assert_eq!(ask(&mut h, grete, "119 5"), "227 412\r\n");
    assert_eq!(ask(&mut h, hans, "115 0 gross 123456789"), "211\r\n");
    assert_eq!(h.server().state().media.len(), 1, "nothing stored");
    // The bytes are in the store, not in the state.
    assert_eq!(
        h.server().state().media.values().next().map(|m| m.size),
        Some(5)
    );
    // A deleted chat takes its media with it.
    ask(&mut h, hans, "114 0");
    assert_eq!(ask(&mut h, grete, "119 0"), "227 412\r\n");
}

#[test]
fn requests_after_one_waiting_for_its_effect_keep_their_order() {
    let mut h = harness();
    let c = client(&mut h);
    h.send(c, "117 hans pw\r\n110 hans pw\r\n118\r\n");
    assert_eq!(
        h.take(c),
        "222 400\r\n212 400 hans\r\n223 400\r\n224 0\r\n226\r\n"
    );
}

#[test]
fn bridged_with_ws2017() {
    let mut h = harness();
    let hans = user(&mut h, "hans");
    let ws = h.connect(Protocol::Ws2017);
    h.send(ws, "uname willi\r\n");
    h.take(ws);
    h.take(hans);
    // willi (a nick) writes first: a chat for this login appears.
    h.send(ws, "chatm willi hans 'hallo hans'\r\n");
    assert_eq!(
        h.take(ws),
        "+OK chatm 'message relayed'\r\nchatr willi hans\r\n",
        "an opcode user sends no receipts: delivered at once"
    );
    let t = WALL_ORIGIN_MS;
    let chat = super::session::TRANSIENT_CHAT_BASE;
    assert_eq!(h.take(hans), format!("220 {chat} {t} hallo%20hans\r\n"));
    assert_eq!(
        ask(&mut h, hans, "112"),
        format!("214 1\r\n215 {chat} hans willi\r\n216\r\n")
    );
    assert_eq!(
        ask(&mut h, hans, &format!("115 {chat} hallo%20willi")),
        format!("219 400\r\n220 {chat} {t} hallo%20willi\r\n")
    );
    assert_eq!(h.take(ws), "chatm hans willi 'hallo willi'\r\n");
    // Media cannot go to a user without an account.
    assert_eq!(ask(&mut h, hans, &format!("115 {chat} x y")), "219 409\r\n");
    // willi leaves: the chat's other member is gone.
    h.send(ws, "cquit\r\n");
    assert_eq!(ask(&mut h, hans, &format!("115 {chat} da?")), "219 410\r\n");
}

#[test]
fn stored_direct_messages_from_another_protocol_arrive_in_a_chat_made_for_them() {
    // bob's mailbox holds two direct messages from alice (sent over another protocol).
    let mut state = crate::tests::fixtures::bob_with_mail();
    for account in state.accounts.values_mut() {
        account.password = crate::PasswordHash("test$pw".into());
    }
    let mut h = Harness::with_state(Config::default(), state);
    h.auto_commit = false;
    let bob = client(&mut h);
    assert_eq!(
        ask(&mut h, bob, "110 bob pw"),
        "",
        "held for the chat's commit"
    );
    h.commit();
    assert_eq!(h.take(bob), "212 400 bob\r\n220 0 5 one\r\n220 0 5 two\r\n");
    assert_eq!(
        ask(&mut h, bob, "112"),
        "214 1\r\n215 0 bob alice\r\n216\r\n"
    );
    // Removed once written: not again.
    h.commit();
    assert_eq!(ask(&mut h, bob, "111"), "213 400\r\n");
    assert_eq!(ask(&mut h, bob, "110 bob pw"), "212 400 bob\r\n");
}

#[test]
fn login_attempts_are_rationed() {
    let mut config = Config::default();
    config.limits.broadcast_per_conn.burst = 2;
    let mut h = Harness::new(config);
    let c = client(&mut h);
    assert_eq!(ask(&mut h, c, "117 hans pw"), "222 400\r\n");
    assert_eq!(ask(&mut h, c, "110 hans a"), "212 406 hans\r\n");
    assert_eq!(ask(&mut h, c, "110 hans b"), "212 406 hans\r\n");
    assert_eq!(
        ask(&mut h, c, "110 hans pw"),
        "211\r\n",
        "no password check"
    );
}

#[test]
fn input_piling_up_behind_a_waiting_request_closes_the_connection() {
    let mut config = Config::default();
    config.opcode.max_line_bytes = 16;
    config.opcode.max_media_bytes = 16;
    let mut h = Harness::new(config);
    h.auto_commit = false;
    let c = client(&mut h);
    h.send(c, "117 hans pw\r\n");
    h.commit();
    assert_eq!(h.take(c), "222 400\r\n");
    // The login waits for its password check; what arrives meanwhile is kept, up to a
    // line with the largest media (3 x 16 + 1024) and one more line (16).
    let mut burst = b"110 hans pw\r\n".to_vec();
    burst.extend(std::iter::repeat_n(b'x', 1087));
    h.send(c, burst);
    assert_eq!(
        h.take(c),
        "212 400 hans\r\n211\r\n",
        "the long line is skipped"
    );
    assert_eq!(h.closed(c), None);
    // One byte more, behind a registration's password hash: closed.
    let d = client(&mut h);
    let mut burst = b"117 grete pw\r\n".to_vec();
    burst.extend(std::iter::repeat_n(b'x', 1088));
    h.send(d, burst);
    assert_eq!(h.closed(d), Some(crate::CloseReason::ProtocolError));
}

#[test]
fn media_stored_per_user_is_limited_in_total() {
    let mut config = Config::default();
    config.opcode.max_media_bytes = 8;
    config.opcode.max_media_bytes_per_user = 10;
    let mut h = Harness::new(config.clone());
    h.record_events();
    let hans = user(&mut h, "hans");
    let grete = user(&mut h, "grete");
    let otto = user(&mut h, "otto");
    contacts(&mut h, (hans, "hans"), (grete, "grete"));
    contacts(&mut h, (otto, "otto"), (grete, "grete"));
    ask(&mut h, hans, "113 grete");
    h.take(grete);
    ask(&mut h, otto, "113 grete");
    h.take(grete);
    let t = WALL_ORIGIN_MS;
    // hans stores 6 and then 4 bytes: exactly his total.
    assert_eq!(
        ask(&mut h, hans, "115 0 a 123456"),
        format!("219 400\r\n220 0 {t} a 0\r\n")
    );
    assert_eq!(
        ask(&mut h, hans, "115 0 b 1234"),
        format!("219 400\r\n220 0 {t} b 1\r\n")
    );
    h.take(grete);
    h.events();
    // One byte more is refused: 211, nothing stored, nothing reaches grete.
    assert_eq!(ask(&mut h, hans, "115 0 c 1"), "211\r\n");
    assert_eq!(h.take(grete), "");
    assert_eq!(h.server().state().media.len(), 2, "nothing stored");
    assert_eq!(h.server().state().next_media_id, 2, "no id taken");
    let refused: Vec<_> = (h.events().into_iter())
        .filter(|e| matches!(e, crate::NetworkEvent::MediaRefused { .. }))
        .collect();
    assert_eq!(
        refused,
        vec![crate::NetworkEvent::MediaRefused {
            name: crate::UserName::parse("hans").expect("name"),
            conn: hans,
            size: 1,
            stored: 10,
            limit: 10,
        }]
    );
    // Other users are unaffected: otto stores 8 bytes in his own chat with grete, and
    // grete 8 in the chat with hans.
    assert_eq!(
        ask(&mut h, otto, "115 1 d 12345678"),
        format!("219 400\r\n220 1 {t} d 2\r\n")
    );
    assert_eq!(h.take(grete), format!("220 1 {t} d 2\r\n"));
    assert_eq!(
        ask(&mut h, grete, "115 0 e 12345678"),
        format!("219 400\r\n220 0 {t} e 3\r\n")
    );
    h.take(grete);
    h.take(hans);
    // The totals are counted again from the durable state at a restart.
    let mut again = Harness::with_state(config, h.server().state().clone());
    let hans2 = client(&mut again);
    ask(&mut again, hans2, "110 hans pw");
    assert_eq!(ask(&mut again, hans2, "115 0 c 1"), "211\r\n");
    // Deleting the chat removes its media, and hans may store again.
    assert_eq!(ask(&mut h, hans, "114 0"), "218 400\r\n");
    ask(&mut h, hans, "113 grete");
    h.take(grete);
    assert!(
        ask(&mut h, hans, "115 2 f 12345678").starts_with("219 400\r\n"),
        "room again"
    );
}

/// Lines give the same replies however the reads cut them: whole, cut once anywhere,
/// byte by byte (lines are read where they arrive, and only an unfinished one is kept).
#[test]
fn any_split_of_a_line_stream_gives_the_same_output() {
    let stream = "117 hans pw\r\n110 hans pw\n118\r\n\r\n999 x\r\n121 grete\r\n116\r\n";
    let play = |reads: &[&[u8]]| -> String {
        let mut h = harness();
        user(&mut h, "grete");
        let c = client(&mut h);
        for read in reads {
            h.send(c, read.to_vec());
        }
        h.take(c)
    };
    let all = stream.as_bytes();
    let whole = play(&[all]);
    assert!(
        whole.starts_with("222 400\r\n212 400 hans\r\n"),
        "{whole:?}"
    );
    assert!(
        whole.contains("210"),
        "the unknown opcode is answered: {whole:?}"
    );
    for i in 0..=all.len() {
        assert_eq!(play(&[&all[..i], &all[i..]]), whole, "cut at {i}");
    }
    let bytes: Vec<&[u8]> = all.chunks(1).collect();
    assert_eq!(play(&bytes), whole, "byte by byte");
}

/// The `120` answer is kept encoded while no account comes or goes: one registered or
/// deleted shows in the next one.
#[test]
fn the_account_listing_follows_registrations_and_deletions() {
    let mut h = harness();
    let hans = user(&mut h, "hans");
    let listing = |names: &[&str]| {
        let lines: String = names.iter().map(|n| format!("230 {n}\r\n")).collect();
        format!("228 400\r\n229 {}\r\n{lines}231\r\n", names.len())
    };
    assert_eq!(ask(&mut h, hans, "120"), listing(&["hans"]));
    assert_eq!(ask(&mut h, hans, "120"), listing(&["hans"]), "unchanged");
    let grete = user(&mut h, "grete");
    assert_eq!(ask(&mut h, hans, "120"), listing(&["grete", "hans"]));
    assert_eq!(ask(&mut h, grete, "120"), listing(&["grete", "hans"]));
    let admin = h.connect(Protocol::Admin);
    h.take(admin);
    h.send(admin, "user del grete\r\n");
    assert!(h.take(admin).starts_with("ok account grete deleted"));
    assert_eq!(ask(&mut h, hans, "120"), listing(&["hans"]), "deleted");
}
