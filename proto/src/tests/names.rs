//! The name rule (docs/names.md) as peers meet it over ws2017 and the admin socket: names
//! that look alike, differ only in invisible characters or in composition are one name.

use crate::tests::harness::Harness;
use crate::{Config, ConnId, Protocol};

/// Connects a ws2017 client and reads its greeting.
fn client(h: &mut Harness) -> ConnId {
    let c = h.connect(Protocol::Ws2017);
    assert!(h.take(c).starts_with("+OK"));
    c
}

/// Asks for `name` and returns the reply.
fn uname(h: &mut Harness, c: ConnId, name: &str) -> String {
    h.send(c, format!("uname '{name}'\r\n"));
    h.take(c)
}

/// A client that took `name`; every other client's announcement is drained.
fn named(h: &mut Harness, name: &str, others: &[ConnId]) -> ConnId {
    let c = client(h);
    let reply = uname(h, c, name);
    assert!(reply.starts_with("+OK uname"), "{name:?}: {reply:?}");
    for &o in others {
        h.take(o);
    }
    c
}

/// The names `cgetu` lists to `c`.
fn online(h: &mut Harness, c: ConnId) -> String {
    h.send(c, "cgetu\r\n");
    h.take(c)
}

#[test]
fn look_alike_names_are_taken_while_the_original_is_online() {
    let mut h = Harness::new(Config::default());
    let alice = named(&mut h, "alice", &[]);
    let jose = named(&mut h, "Jos\u{e9}", &[alice]);
    let c = client(&mut h);
    for look_alike in [
        "\u{430}lice",  // Cyrillic а
        "\u{410}LICE",  // Cyrillic А, other case
        "Jose\u{301}",  // decomposed é
        "JOS\u{c9}",    // composed É, other case
        "\u{ff41}lice", // fullwidth ａ
    ] {
        let reply = uname(&mut h, c, look_alike);
        assert!(reply.starts_with("-ERR uname"), "{look_alike:?}: {reply:?}");
        assert!(!reply.contains("invalid"), "{look_alike:?}: {reply:?}");
    }
    assert_eq!(h.take(alice), "");
    assert_eq!(h.take(jose), "");
    let list = online(&mut h, alice);
    assert_eq!(list.matches("lice").count(), 1, "{list:?}");
}

#[test]
fn invisible_and_direction_characters_are_refused() {
    let mut h = Harness::new(Config::default());
    let ab = named(&mut h, "ab", &[]);
    let c = client(&mut h);
    for bad in ["a\u{200b}b", "\u{200d}", "\u{feff}ab", "ab\u{202e}", "a:b"] {
        assert_eq!(
            uname(&mut h, c, bad),
            "-ERR uname 'username contains invalid characters'\r\n",
            "{bad:?}"
        );
    }
    assert_eq!(h.take(ab), "");
    // Only `ab` is online.
    let list = online(&mut h, ab);
    assert_eq!(
        list.split_whitespace().skip(2).collect::<Vec<_>>(),
        ["ab"],
        "{list:?}"
    );
}

#[test]
fn system_is_reserved() {
    let mut h = Harness::new(Config::default());
    let c = client(&mut h);
    for reserved in ["System", "system", "\u{405}ystem"] {
        assert_eq!(
            uname(&mut h, c, reserved),
            "-ERR uname 'username is reserved'\r\n",
            "{reserved:?}"
        );
    }
}

#[test]
fn a_sender_or_recipient_spelled_another_way_is_still_oneself() {
    let mut h = Harness::new(Config::default());
    let jose = named(&mut h, "Jos\u{e9}", &[]);
    let bob = named(&mut h, "bob", &[jose]);
    // The sender named in decomposed form, other case: José's own name.
    h.send(jose, "chatm 'JOSE\u{301}' bob 'hola'\r\n");
    assert!(h.take(jose).starts_with("+OK chatm"));
    let relayed = h.take(bob);
    assert!(relayed.contains("hola"), "{relayed:?}");
    // Bob's receipt names José in yet another spelling; it reaches José.
    h.send(bob, "chatr 'jose\u{301}' BOB\r\n");
    assert_eq!(h.take(bob), "");
    assert!(h.take(jose).starts_with("chatr"));
    // A look-alike of bob's name is bob too, as the receipt's recipient.
    h.send(jose, "chatm 'Jos\u{e9}' bob 'again'\r\n");
    h.take(jose);
    h.take(bob);
    h.send(bob, "chatr Jos\u{e9} b\u{43e}b\r\n");
    assert_eq!(h.take(bob), "");
    assert!(h.take(jose).starts_with("chatr"));
}

/// Sends one admin line on a fresh admin connection and returns the answer.
fn admin(h: &mut Harness, line: &str) -> String {
    let c = h.connect(Protocol::Admin);
    h.send(c, format!("{line}\r\n"));
    h.take(c)
}

#[test]
fn accounts_follow_the_same_rule() {
    let mut h = Harness::new(Config::default());
    assert_eq!(
        admin(&mut h, "user add alice pw"),
        "ok account alice created\r\n"
    );
    // Cyrillic а, percent-encoded as the admin protocol's fields are.
    assert_eq!(
        admin(&mut h, "user add %D0%B0lice pw"),
        "err account \u{430}lice exists\r\n"
    );
    assert_eq!(
        admin(&mut h, "user add System pw"),
        "err \"System\": username is reserved\r\n"
    );
    assert_eq!(
        admin(&mut h, "user add a%E2%80%8Bb pw"),
        "err \"a\\u{200b}b\": username contains invalid characters\r\n"
    );
    // The account's look-alike is taken on ws2017 too.
    let c = client(&mut h);
    assert!(uname(&mut h, c, "\u{430}LICE").starts_with("-ERR uname"));
}
