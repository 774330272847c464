//! The jabberd sm against the core, the test playing jabberd2's router and c2s on the
//! link: the component login (DIGEST-MD5, restart, bind), reconnects, the session
//! protocol with its pitfalls, and stanzas to and from the other protocols.

use base64ct::{Base64, Encoding};

use super::link::HEADER;
use super::sasl;
use crate::tests::harness::{md5_hex, Harness};
use crate::{CloseReason, Config, ConnId, Input, Protocol};

const ROUTER: &str = "127.0.0.1:5347";
const COMP: &str = "http://jabberd.jabberstudio.org/ns/component/1.0";
const SESS: &str = "http://jabberd.jabberstudio.org/ns/session/1.0";
const ROUTER_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id='abc'>";
const FEATURES: &str = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>DIGEST-MD5</mechanism></mechanisms></stream:features>";
const CHALLENGE: &str = r#"realm="jabberd-router", nonce="jKVharTxTgGG4x3GI0G1Bw==", qop="auth", charset=utf-8, algorithm=md5-sess"#;

fn config() -> Config {
    let mut config = Config::default();
    config.jabberd.router = Some(ROUTER.parse().expect("address"));
    config.jabberd.secret = crate::Secret("secret".into());
    config
}

fn admin(h: &mut Harness, line: &str) -> String {
    let c = h.connect(Protocol::Admin);
    h.send(c, format!("{line}\r\n"));
    h.take(c)
}

/// The server with accounts alice, bob and carol (password `pw`), its link dialed.
fn dialed() -> (Harness, ConnId) {
    let mut h = Harness::new(config());
    for name in ["alice", "bob", "carol"] {
        admin(&mut h, &format!("user add {name} pw"));
    }
    dial(h)
}

/// `h`'s link, dialed at start.
fn dial(mut h: Harness) -> (Harness, ConnId) {
    h.advance(0);
    let dials = std::mem::take(&mut h.dials);
    assert_eq!(dials.len(), 1, "dialed at start: {dials:?}");
    assert_eq!(dials[0].1.to_string(), ROUTER);
    (h, dials[0].0)
}

/// The value of attribute `name` in `text` (the first).
fn attr<'a>(text: &'a str, name: &str) -> &'a str {
    let at = text
        .find(&format!(" {name}='"))
        .unwrap_or_else(|| panic!("no {name} in {text}"));
    let rest = &text[at + name.len() + 3..];
    &rest[..rest.find('\'').unwrap_or(rest.len())]
}

/// Plays the router through the login; returns the link's connection, bound.
fn linked() -> (Harness, ConnId) {
    let (h, link) = dialed();
    log_in(h, link)
}

fn log_in(mut h: Harness, link: ConnId) -> (Harness, ConnId) {
    h.input(Input::Connected { conn: link });
    assert_eq!(h.take(link), HEADER);
    h.send(link, format!("{ROUTER_HEADER}{FEATURES}"));
    assert_eq!(
        h.take(link),
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='DIGEST-MD5'/>"
    );
    let rspauth = answer_challenge(&mut h, link);
    let success = Base64::encode_string(format!("rspauth={rspauth}").as_bytes());
    h.send(
        link,
        format!("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{success}</success>"),
    );
    assert_eq!(h.take(link), HEADER, "the stream restarts");
    h.send(
        link,
        format!("{ROUTER_HEADER}<stream:features xmlns:stream='http://etherx.jabber.org/streams'></stream:features>"),
    );
    assert_eq!(
        h.take(link),
        format!("<bind xmlns='{COMP}' name='localhost'/>")
    );
    h.send(
        link,
        format!("<bind xmlns='{COMP}'></bind><presence xmlns='{COMP}' from='c2s'></presence>"),
    );
    assert!(h.server().shared().jabberd.is_bound());
    assert_eq!(h.take(link), "");
    (h, link)
}

/// Sends the lab's challenge, checks the response the way the router does, and returns
/// the rspauth the router would prove itself with.
fn answer_challenge(h: &mut Harness, link: ConnId) -> String {
    let challenge = Base64::encode_string(CHALLENGE.as_bytes());
    h.send(
        link,
        format!("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{challenge}</challenge>"),
    );
    let got = h.take(link);
    let b64 = got
        .strip_prefix("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>")
        .and_then(|r| r.strip_suffix("</response>"))
        .unwrap_or_else(|| panic!("a response: {got}"));
    let text = String::from_utf8(Base64::decode_vec(b64).expect("base64")).expect("utf-8");
    let fields = sasl::fields(&text).expect("fields");
    let get = |k: &str| {
        (fields.iter().find(|(key, _)| key == k))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k} in {text}"))
    };
    assert_eq!(get("username"), "jabberd");
    assert_eq!(get("realm"), "jabberd-router");
    assert_eq!(get("qop"), "auth");
    let (cnonce, uri) = (get("cnonce"), get("digest-uri"));
    let expected = sasl::answer(CHALLENGE, "jabberd", "secret", &cnonce, &uri).expect("ok");
    assert_eq!(text, expected.response, "the response proves the secret");
    expected.rspauth
}

/// A `start` for `jid` from c2s client `c2s_id`; returns our reply.
fn start(h: &mut Harness, link: ConnId, c2s_id: &str, jid: &str) -> String {
    h.send(
        link,
        format!("<route xmlns='{COMP}' to='localhost' from='c2s'><sc:session xmlns:sc='{SESS}' sc:c2s='{c2s_id}' action='start' target='{jid}' id='6ec8'></sc:session></route>"),
    );
    h.take(link)
}

/// A started session: its `sc:sm`.
fn started(h: &mut Harness, link: ConnId, c2s_id: &str, jid: &str) -> String {
    let got = start(h, link, c2s_id, jid);
    let first = got.split("</route>").next().unwrap_or("");
    assert!(first.contains("action='started'"), "{got}");
    attr(first, "sc:sm").to_owned()
}

/// A stanza from a session, as c2s wraps it.
fn stanza(h: &mut Harness, link: ConnId, c2s_id: &str, sm: &str, stanza: &str) -> String {
    let (open, rest) = stanza.split_at(stanza.find([' ', '>', '/']).expect("a tag"));
    let wrapped = format!(
        "{open} xmlns='jabber:client' xmlns:sc='{SESS}' sc:c2s='{c2s_id}' sc:sm='{sm}'{rest}"
    );
    h.send(
        link,
        format!("<route xmlns='{COMP}' to='localhost' from='c2s'>{wrapped}</route>"),
    );
    h.take(link)
}

fn ims(h: &mut Harness, name: &str) -> ConnId {
    let c = h.connect(Protocol::Ims);
    h.send(
        c,
        format!("<LOGIN user=\"{name}\" pass=\"{}\"/>", md5_hex("pw")),
    );
    assert!(
        h.take(c).contains("result=\"1\""),
        "{name} logs in over ims"
    );
    c
}

#[test]
fn the_component_login_is_digest_md5_restart_and_bind() {
    let (h, _) = linked();
    assert_eq!(h.server().shared().jabberd.session_count(), 0);
}

#[test]
fn the_link_survives_any_chunking() {
    let (mut h, link) = dialed();
    h.input(Input::Connected { conn: link });
    h.take(link);
    for b in format!("{ROUTER_HEADER} {FEATURES}").bytes() {
        h.send(link, vec![b]);
    }
    assert!(h.take(link).contains("mechanism='DIGEST-MD5'"));
}

#[test]
fn a_wrong_rspauth_or_a_refusal_closes_the_link_and_it_is_dialed_again_with_backoff() {
    let (mut h, link) = dialed();
    h.input(Input::Connected { conn: link });
    h.take(link);
    h.send(link, format!("{ROUTER_HEADER}{FEATURES}"));
    h.take(link);
    answer_challenge(&mut h, link);
    let forged = Base64::encode_string(b"rspauth=00000000000000000000000000000000");
    h.send(
        link,
        format!("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{forged}</success>"),
    );
    assert_eq!(h.closed(link), Some(CloseReason::ProtocolError));
    assert_eq!(
        h.take(link),
        "",
        "no restart for a router that cannot prove the secret"
    );
    h.advance(499);
    assert!(h.dials.is_empty(), "not before the backoff");
    h.advance(1);
    let again = std::mem::take(&mut h.dials);
    assert_eq!(again.len(), 1, "dialed again after 500 ms");
    let second = again[0].0;
    h.input(Input::Connected { conn: second });
    h.take(second);
    h.send(second, format!("{ROUTER_HEADER}{FEATURES}"));
    h.take(second);
    answer_challenge(&mut h, second);
    h.send(
        second,
        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text>Error authenticating user</text></failure>",
    );
    assert_eq!(h.closed(second), Some(CloseReason::ProtocolError));
    h.advance(999);
    assert!(h.dials.is_empty(), "the backoff doubled");
    h.advance(1);
    assert_eq!(std::mem::take(&mut h.dials).len(), 1);
}

/// The router must prove it knows the secret: in `<success>`, or in a second challenge
/// (RFC 2831) answered by an empty response before an empty `<success>`. A router that
/// never proves it, or proves it wrongly, is dropped.
#[test]
fn the_routers_proof_is_required_in_success_or_a_second_challenge() {
    let challenged = || {
        let (mut h, link) = dialed();
        h.input(Input::Connected { conn: link });
        h.take(link);
        h.send(link, format!("{ROUTER_HEADER}{FEATURES}"));
        h.take(link);
        let rspauth = answer_challenge(&mut h, link);
        (h, link, rspauth)
    };
    let challenge = |proof: &str| {
        let proof = Base64::encode_string(format!("rspauth={proof}").as_bytes());
        format!("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{proof}</challenge>")
    };
    let empty_success = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
    let (mut h, link, rspauth) = challenged();
    h.send(link, challenge(&rspauth));
    assert_eq!(
        h.take(link),
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
    );
    h.send(link, empty_success);
    assert_eq!(h.take(link), HEADER, "the stream restarts");
    assert_eq!(h.closed(link), None);
    // No proof at all.
    let (mut h, link, _) = challenged();
    h.send(link, empty_success);
    assert_eq!(h.closed(link), Some(CloseReason::ProtocolError));
    // A wrong one in the second challenge.
    let (mut h, link, _) = challenged();
    h.send(link, challenge("00000000000000000000000000000000"));
    assert_eq!(h.closed(link), Some(CloseReason::ProtocolError));
}

#[test]
fn a_failed_dial_is_retried_and_a_refused_bind_closes() {
    let (mut h, link) = dialed();
    h.input(Input::ConnectFailed {
        conn: link,
        error: "refused".into(),
    });
    h.advance(500);
    let next = std::mem::take(&mut h.dials);
    assert_eq!(next.len(), 1);
    let link = next[0].0;
    h.input(Input::Connected { conn: link });
    h.take(link);
    h.send(link, format!("{ROUTER_HEADER}{FEATURES}"));
    h.take(link);
    let rspauth = answer_challenge(&mut h, link);
    let success = Base64::encode_string(format!("rspauth={rspauth}").as_bytes());
    h.send(
        link,
        format!("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{success}</success>{ROUTER_HEADER}<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>"),
    );
    assert!(h.take(link).ends_with("name='localhost'/>"));
    h.send(link, format!("<bind xmlns='{COMP}' error='409'/>"));
    assert_eq!(h.closed(link), Some(CloseReason::ProtocolError));
    assert!(!h.server().shared().jabberd.is_bound());
}

#[test]
fn start_answers_started_with_a_fresh_short_sm_id() {
    let (mut h, link) = linked();
    let got = start(&mut h, link, "8", "alice@localhost/r1");
    assert!(
        got.starts_with(&format!("<route xmlns='{COMP}' to='c2s' from='localhost'><sc:session xmlns:sc='{SESS}' sc:c2s='8' sc:sm='")),
        "{got}"
    );
    assert!(
        got.ends_with("' action='started' target='alice@localhost/r1' id='6ec8'/></route>"),
        "{got}"
    );
    let a = attr(&got, "sc:sm").to_owned();
    assert_eq!(a.len(), 40, "c2s keeps at most 40 bytes");
    let b = started(&mut h, link, "9", "alice@localhost/r2");
    assert_ne!(a, b, "each session its own id");
    assert_eq!(h.server().shared().jabberd.session_count(), 2);
}

#[test]
fn a_failed_start_carries_an_sm_id_and_failed() {
    let (mut h, link) = linked();
    for jid in [
        "nobody@localhost/r1",
        "alice@elsewhere/r1",
        "alice@localhost",
        "@localhost/r",
    ] {
        let got = start(&mut h, link, "8", jid);
        assert_eq!(
            got,
            format!("<route xmlns='{COMP}' to='c2s' from='localhost'><sc:session xmlns:sc='{SESS}' sc:c2s='8' sc:sm='0' action='start' target='{jid}' id='6ec8' sc:failed='1'/></route>"),
        );
    }
    admin(&mut h, "ban user bob");
    let got = start(&mut h, link, "8", "bob@localhost/r1");
    assert!(
        got.contains("sc:failed='1'") && got.contains("sc:sm='0'"),
        "banned: {got}"
    );
    assert_eq!(h.server().shared().jabberd.session_count(), 0);
}

#[test]
fn the_same_full_jid_replaces_the_old_session() {
    let (mut h, link) = linked();
    let old = started(&mut h, link, "8", "alice@localhost/r1");
    let got = start(&mut h, link, "9", "alice@localhost/r1");
    let replaced = format!("<route xmlns='{COMP}' to='c2s' from='localhost'><sc:session xmlns:sc='{SESS}' sc:c2s='8' sc:sm='{old}' action='replaced'/></route>");
    assert!(got.starts_with(&replaced), "{got}");
    assert!(got[replaced.len()..].contains("sc:c2s='9'"), "{got}");
    assert!(got.contains("action='started'"));
    assert_eq!(h.server().shared().jabberd.session_count(), 1);
    // Another resource is another session.
    started(&mut h, link, "10", "alice@localhost/r2");
    assert_eq!(h.server().shared().jabberd.session_count(), 2);
}

#[test]
fn end_ends_and_a_stale_stanza_gets_ended_never_failed() {
    let (mut h, link) = linked();
    let sm = started(&mut h, link, "11", "carol@localhost/x");
    h.send(
        link,
        format!("<route xmlns='{COMP}' to='localhost' from='c2s'><sc:session xmlns:sc='{SESS}' sc:c2s='11' sc:sm='{sm}' action='end'></sc:session></route>"),
    );
    assert_eq!(
        h.take(link),
        format!("<route xmlns='{COMP}' to='c2s' from='localhost'><sc:session xmlns:sc='{SESS}' sc:c2s='11' sc:sm='{sm}' action='ended'/></route>")
    );
    assert_eq!(h.server().shared().jabberd.session_count(), 0);
    let got = stanza(
        &mut h,
        link,
        "11",
        &sm,
        "<message to='alice@localhost'><body>x</body></message>",
    );
    assert_eq!(
        got,
        format!("<route xmlns='{COMP}' to='c2s' from='localhost'><sc:session xmlns:sc='{SESS}' sc:c2s='11' sc:sm='{sm}' action='ended'/></route>")
    );
    assert!(!got.contains("failed"));
    // c2s answers that `ended` with an `end` when it has not bound the session either
    // (it was unbound meanwhile): answered once, then not again, or the two would
    // trade `end` and `ended` for good.
    let end = format!("<route xmlns='{COMP}' to='localhost' from='c2s'><sc:session xmlns:sc='{SESS}' sc:c2s='11' sc:sm='{sm}' action='end'></sc:session></route>");
    h.send(link, end.clone());
    assert!(h.take(link).contains("action='ended'"));
    h.send(link, end);
    assert_eq!(h.take(link), "");
}

#[test]
fn create_and_delete_are_answered() {
    let (mut h, link) = linked();
    h.send(
        link,
        format!("<route xmlns='{COMP}' to='localhost' from='c2s'><sc:session xmlns:sc='{SESS}' sc:c2s='8' action='create' target='alice@localhost' id='ad70'></sc:session></route>"),
    );
    assert_eq!(
        h.take(link),
        format!("<route xmlns='{COMP}' to='c2s' from='localhost'><sc:session xmlns:sc='{SESS}' sc:c2s='8' action='created' target='alice@localhost' id='ad70'/></route>")
    );
    h.send(
        link,
        format!("<route xmlns='{COMP}' to='localhost' from='c2s'><sc:session xmlns:sc='{SESS}' sc:c2s='8' action='create' target='nobody@localhost' id='ad71'></sc:session></route>"),
    );
    let got = h.take(link);
    assert!(
        got.contains("sc:sm='0' action='create'") && got.contains("sc:failed='1'"),
        "{got}"
    );
    let one = started(&mut h, link, "9", "bob@localhost/home");
    let two = started(&mut h, link, "10", "bob@localhost/work");
    h.send(
        link,
        format!("<route xmlns='{COMP}' to='localhost' from='c2s'><sc:session xmlns:sc='{SESS}' sc:c2s='9' sc:sm='{one}' action='delete' target='bob@localhost'></sc:session></route>"),
    );
    let got = h.take(link);
    assert!(
        got.contains(&format!("sc:sm='{one}' action='ended'")),
        "{got}"
    );
    assert!(
        got.contains(&format!("sc:sm='{two}' action='ended'")),
        "{got}"
    );
    assert!(
        got.ends_with(&format!(
            "sc:c2s='9' sc:sm='{one}' action='deleted' target='bob@localhost'/></route>"
        )),
        "{got}"
    );
    assert_eq!(h.server().shared().jabberd.session_count(), 0);
}

#[test]
fn messages_go_both_ways_with_ims_and_stanzas_carry_the_session_ids() {
    let (mut h, link) = linked();
    let bob = ims(&mut h, "bob");
    let sm = started(&mut h, link, "8", "alice@localhost/r1");
    let got = stanza(
        &mut h,
        link,
        "8",
        &sm,
        "<message to='bob@localhost' type='chat'><body>hi &amp; bye</body></message>",
    );
    assert_eq!(got, "", "XMPP acknowledges nothing");
    assert_eq!(
        h.take(bob),
        "<MESSAGE from=\"alice\" to=\"bob\">hi &amp; bye</MESSAGE>\n"
    );
    h.send(bob, "<MESSAGE from=\"bob\" to=\"alice\">back</MESSAGE>");
    assert_eq!(
        h.take(link),
        format!("<route xmlns='{COMP}' to='c2s' from='localhost'><message xmlns='jabber:client' xmlns:sm='{SESS}' sm:c2s='8' sm:sm='{sm}' from='bob@localhost' to='alice@localhost/r1' type='chat'><body>back</body></message></route>")
    );
    // To nobody: an error stanza, not sc:failed.
    let got = stanza(
        &mut h,
        link,
        "8",
        &sm,
        "<message to='nobody@localhost' id='m1'><body>x</body></message>",
    );
    assert!(got.contains("type='error' id='m1'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"), "{got}");
    assert!(!got.contains("failed"));
    // With no `to`: addressed to the sender's bare JID, which the error comes from.
    let got = stanza(
        &mut h,
        link,
        "8",
        &sm,
        "<message id='nt'><body>x</body></message>",
    );
    assert!(
        got.contains("from='alice@localhost' to='alice@localhost/r1' type='error' id='nt'"),
        "{got}"
    );
}

#[test]
fn an_offline_message_is_handed_at_the_next_xmpp_login_once() {
    let (mut h, link) = linked();
    let bob = ims(&mut h, "bob");
    h.send(
        bob,
        "<MESSAGE from=\"bob\" to=\"carol\">while you were out</MESSAGE>",
    );
    assert!(
        h.take(bob).ends_with("<MESSAGE result=\"-1\"/>\n"),
        "stored"
    );
    let got = start(&mut h, link, "8", "carol@localhost/r");
    let sm = attr(&got, "sc:sm").to_owned();
    assert!(got.contains("action='started'"));
    let message = format!("<message xmlns='jabber:client' xmlns:sm='{SESS}' sm:c2s='8' sm:sm='{sm}' from='bob@localhost' to='carol@localhost/r' type='chat'><body>while you were out</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2023-11-14T22:13:20Z'/></message>");
    assert!(got.ends_with(&format!("{message}</route>")), "{got}");
    assert!(
        h.server().state().offline.values().all(|q| q.is_empty()),
        "removed once written"
    );
    let again = start(&mut h, link, "9", "carol@localhost/other");
    assert!(
        !again.contains("while you were out"),
        "exactly once: {again}"
    );
}

#[test]
fn presence_maps_to_the_shared_status_both_ways() {
    let (mut h, link) = linked();
    let bob = ims(&mut h, "bob");
    h.send(bob, "<FRIEND user=\"bob\" type=\"add\" friend=\"alice\"/>");
    h.take(bob);
    let sm = started(&mut h, link, "8", "alice@localhost/r1");
    // The invite waited in alice's mailbox: a subscription request.
    let got = stanza(
        &mut h,
        link,
        "8",
        &sm,
        "<presence to='bob@localhost' type='subscribed'/>",
    );
    assert_eq!(got, "");
    let got = stanza(
        &mut h,
        link,
        "8",
        &sm,
        "<presence><show>away</show></presence>",
    );
    assert!(
        got.contains(
            "from='alice@localhost/r1' to='alice@localhost/r1'><show>away</show></presence>"
        ),
        "own presence: {got}"
    );
    assert!(
        got.contains("from='bob@localhost' to='alice@localhost/r1'/>"),
        "bob shows online: {got}"
    );
    h.take(bob);
    h.send(bob, "<STATUS user=\"alice\" type=\"get\"/>");
    assert!(
        h.take(bob)
            .ends_with("<STATUS type=\"get\" result=\"1\"/>\n"),
        "ims sees alice away"
    );
    h.send(bob, "<STATUS user=\"bob\" type=\"set\" code=\"2\"/>");
    h.take(bob);
    assert!(
        h.take(link)
            .contains("from='bob@localhost' to='alice@localhost/r1'><show>dnd</show></presence>"),
        "alice sees bob busy"
    );
    stanza(&mut h, link, "8", &sm, "<presence type='unavailable'/>");
    h.send(bob, "<STATUS user=\"alice\" type=\"get\"/>");
    assert!(
        h.take(bob).ends_with("result=\"-1\"/>\n"),
        "unavailable shows offline"
    );
    // Available again: an initial presence again, with bob's presence as it is now.
    let got = stanza(&mut h, link, "8", &sm, "<presence/>");
    assert!(
        got.contains("from='bob@localhost' to='alice@localhost/r1'><show>dnd</show></presence>"),
        "bob's presence sent anew: {got}"
    );
}

#[test]
fn iqs_are_answered_or_service_unavailable() {
    let (mut h, link) = linked();
    let sm = started(&mut h, link, "8", "alice@localhost/r1");
    let head = format!("<route xmlns='{COMP}' to='c2s' from='localhost'><iq xmlns='jabber:client' xmlns:sm='{SESS}' sm:c2s='8' sm:sm='{sm}' from='localhost' to='alice@localhost/r1'");
    let got = stanza(
        &mut h,
        link,
        "8",
        &sm,
        "<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
    );
    assert_eq!(got, format!("{head} type='result' id='sess1'/></route>"));
    let got = stanza(
        &mut h,
        link,
        "8",
        &sm,
        "<iq type='get' id='ping1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    assert_eq!(got, format!("{head} type='result' id='ping1'/></route>"));
    let got = stanza(&mut h, link, "8", &sm, "<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    assert!(
        got.contains("<identity category='server' type='im'"),
        "{got}"
    );
    let got = stanza(
        &mut h,
        link,
        "8",
        &sm,
        "<iq type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>",
    );
    assert_eq!(got, format!("{head} type='error' id='v1'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq></route>"));
    assert_eq!(
        stanza(&mut h, link, "8", &sm, "<iq type='result' id='x'/>"),
        "",
        "results are not answered"
    );
    // The roster is the friends; a set asks, a remove ends.
    let got = stanza(
        &mut h,
        link,
        "8",
        &sm,
        "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
    );
    assert!(
        got.contains("<query xmlns='jabber:iq:roster'></query>"),
        "{got}"
    );
    let bob = ims(&mut h, "bob");
    let got = stanza(&mut h, link, "8", &sm, "<iq type='set' id='r2'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>");
    assert!(got.contains("type='result' id='r2'"), "{got}");
    assert!(
        h.take(bob)
            .contains("<FRIEND type=\"invite\" to=\"bob\" from=\"alice\"/>"),
        "bob is invited"
    );
    h.send(
        bob,
        "<FRIEND user=\"bob\" type=\"accept\" other=\"alice\"/>",
    );
    h.take(bob);
    let got = stanza(
        &mut h,
        link,
        "8",
        &sm,
        "<iq type='get' id='r3'><query xmlns='jabber:iq:roster'/></iq>",
    );
    assert!(
        got.contains("<item jid='bob@localhost' name='bob' subscription='both'/>"),
        "{got}"
    );
    stanza(&mut h, link, "8", &sm, "<iq type='set' id='r4'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>");
    let got = stanza(
        &mut h,
        link,
        "8",
        &sm,
        "<iq type='get' id='r5'><query xmlns='jabber:iq:roster'/></iq>",
    );
    assert!(!got.contains("bob@localhost"), "{got}");
}

#[test]
fn a_kick_ends_the_session_with_an_unsolicited_ended() {
    let (mut h, link) = linked();
    let sm = started(&mut h, link, "9", "alice@localhost/r1");
    assert!(admin(&mut h, "kick alice").starts_with("ok"));
    assert_eq!(
        h.take(link),
        format!("<route xmlns='{COMP}' to='c2s' from='localhost'><sc:session xmlns:sc='{SESS}' sc:c2s='9' sc:sm='{sm}' action='ended'/></route>")
    );
    assert_eq!(h.server().shared().jabberd.session_count(), 0);
    assert!(h.closed(link).is_none(), "the link stays");
}

#[test]
fn losing_the_link_or_the_c2s_ends_its_sessions() {
    let (mut h, link) = linked();
    let bob = ims(&mut h, "bob");
    started(&mut h, link, "8", "alice@localhost/r1");
    // Advertisements come once per bound name: a repeat changes nothing.
    h.send(link, format!("<presence xmlns='{COMP}' from='c2s'/>"));
    assert_eq!(h.server().shared().jabberd.session_count(), 1);
    h.send(
        link,
        format!("<presence xmlns='{COMP}' type='unavailable' from='c2s'/>"),
    );
    assert_eq!(h.server().shared().jabberd.session_count(), 0, "c2s gone");
    h.send(link, format!("<presence xmlns='{COMP}' from='c2s'/>"));
    started(&mut h, link, "8", "alice@localhost/r1");
    h.send(bob, "<MESSAGE from=\"bob\" to=\"alice\">live</MESSAGE>");
    assert!(h.take(bob).ends_with("<MESSAGE result=\"1\"/>\n"));
    h.peer_close(link);
    assert_eq!(h.server().shared().jabberd.session_count(), 0);
    h.send(bob, "<MESSAGE from=\"bob\" to=\"alice\">later</MESSAGE>");
    assert!(
        h.take(bob).ends_with("<MESSAGE result=\"-1\"/>\n"),
        "alice is offline now"
    );
    h.advance(500);
    assert_eq!(std::mem::take(&mut h.dials).len(), 1, "redialed");
}

#[test]
fn mailboxes_larger_than_the_window_drain_one_after_the_other_without_loss() {
    use crate::persist::{Account, Change, MessageId, MessageKind, State, StoredMessage};
    let mut config = config();
    config.outbound_limit_bytes = 8192;
    let mut state = State::default();
    let name = |s: &str| crate::UserName::parse(s).expect("name");
    for n in ["alice", "bob", "carol"] {
        state.apply(&Change::AccountCreated(Account {
            name: name(n),
            password: crate::PasswordHash("h".into()),
            ims_password: crate::PasswordHash("i".into()),
            email: None,
            gender: None,
            level: 0,
            banned: false,
            created_ms: 0,
        }));
    }
    let body = "x".repeat(300);
    for id in 0..40u64 {
        let to = if id % 2 == 0 { "carol" } else { "bob" };
        state.apply(&Change::OfflineQueued(StoredMessage {
            id: MessageId(id),
            from: name("alice"),
            to: name(to),
            body: format!("{to}{id} {body}"),
            sent_ms: 5,
            kind: MessageKind::Direct,
        }));
    }
    let (h, link) = dial(crate::tests::harness::Harness::with_state(config, state));
    let (mut h, link) = log_in(h, link);
    h.auto_written = false;
    let mut seen = String::new();
    let carol_started = start(&mut h, link, "8", "carol@localhost/r");
    let bob_started = start(&mut h, link, "9", "bob@localhost/r");
    assert!(bob_started.starts_with("<route") && bob_started.contains("action='started'"));
    assert!(
        !bob_started.contains("<message"),
        "bob waits behind carol: {bob_started}"
    );
    seen.push_str(&carol_started);
    seen.push_str(&bob_started);
    let mut written = seen.len();
    h.written(link, written);
    for _ in 0..100 {
        let more = h.take(link);
        if more.is_empty() {
            break;
        }
        written = more.len();
        seen.push_str(&more);
        h.written(link, written);
    }
    for id in 0..40u64 {
        let to = if id % 2 == 0 { "carol" } else { "bob" };
        assert_eq!(
            seen.matches(&format!(">{to}{id} ")).count(),
            1,
            "{to}{id} once"
        );
    }
    let last_carol = seen.rfind(">carol38 ").expect("carol's last");
    let first_bob = seen.find(">bob1 ").expect("bob's first");
    assert!(last_carol < first_bob, "one drain after the other");
    assert!(
        h.server().state().offline.values().all(|q| q.is_empty()),
        "all removed"
    );
}

#[test]
fn each_xmpp_session_is_held_to_the_per_connection_message_rate() {
    let (mut h, link) = linked();
    let _bob = ims(&mut h, "bob");
    let one = started(&mut h, link, "8", "alice@localhost/r1");
    let two = started(&mut h, link, "9", "alice@localhost/r2");
    let burst = crate::Config::default().limits.message_per_conn.burst;
    for n in 0..burst {
        let got = stanza(
            &mut h,
            link,
            "8",
            &one,
            &format!("<message to='bob@localhost' id='m{n}'><body>{n}</body></message>"),
        );
        assert_eq!(got, "", "message {n} within the burst");
    }
    let got = stanza(
        &mut h,
        link,
        "8",
        &one,
        "<message to='bob@localhost' id='over'><body>over</body></message>",
    );
    assert!(got.contains("type='error' id='over'><error type='wait'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"), "{got}");
    let got = stanza(
        &mut h,
        link,
        "9",
        &two,
        "<message to='bob@localhost' id='other'><body>x</body></message>",
    );
    assert_eq!(got, "", "another session has its own bucket");
    h.advance(1000);
    let got = stanza(
        &mut h,
        link,
        "8",
        &one,
        "<message to='bob@localhost' id='later'><body>x</body></message>",
    );
    assert_eq!(got, "", "refilled");
}

#[test]
fn a_session_keeps_the_jid_c2s_bound_and_the_account_its_spelling() {
    let (mut h, link) = linked();
    admin(&mut h, "user add Dora pw");
    let bob = ims(&mut h, "bob");
    let sm = started(&mut h, link, "8", "dora@localhost/r");
    h.send(bob, "<MESSAGE from=\"bob\" to=\"dora\">hi</MESSAGE>");
    assert!(
        h.take(link)
            .contains("from='bob@localhost' to='dora@localhost/r'"),
        "to the JID c2s bound"
    );
    stanza(
        &mut h,
        link,
        "8",
        &sm,
        "<message to='bob@localhost'><body>yo</body></message>",
    );
    assert!(h
        .take(bob)
        .contains("<MESSAGE from=\"Dora\" to=\"bob\">yo</MESSAGE>"));
    // A user registered as Carl is carl@localhost to XMPP, the case-mapped form c2s
    // binds every JID in, so a client sees one JID for it.
    admin(&mut h, "user add Carl pw");
    let carl = ims(&mut h, "Carl");
    h.take(link);
    h.send(carl, "<MESSAGE from=\"Carl\" to=\"dora\">hey</MESSAGE>");
    let got = h.take(link);
    assert!(
        got.contains("from='carl@localhost' to='dora@localhost/r'"),
        "{got}"
    );
}

#[test]
fn at_shutdown_the_stream_ends_and_the_link_is_not_dialed_again() {
    let (mut h, link) = linked();
    started(&mut h, link, "8", "alice@localhost/r1");
    h.input(Input::Shutdown);
    assert_eq!(h.take(link), "</stream:stream>");
    assert_eq!(h.closed(link), Some(CloseReason::Shutdown));
    assert_eq!(h.server().shared().jabberd.session_count(), 0);
    h.advance(60_000);
    assert!(h.dials.is_empty(), "no redial while stopping");
}
