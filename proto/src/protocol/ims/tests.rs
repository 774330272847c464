//! The ims session against the core: echoes, logins, messages live and stored (across
//! protocols), statuses, friends with invites, the ALIVE deadline and kicks.

use crate::tests::harness::{md5_hex, Harness};
use crate::{CloseReason, Config, ConnId, Protocol, UserName};

fn admin(h: &mut Harness, line: &str) -> String {
    let c = h.connect(Protocol::Admin);
    h.send(c, format!("{line}\r\n"));
    h.take(c)
}

/// A harness with accounts alice, bob and carol (password `pw` for each).
fn accounts() -> Harness {
    accounts_with(Config::default())
}

fn accounts_with(config: Config) -> Harness {
    let mut h = Harness::new(config);
    for name in ["alice", "bob", "carol"] {
        assert_eq!(
            admin(&mut h, &format!("user add {name} pw")),
            format!("ok account {name} created\r\n")
        );
    }
    h
}

fn login_doc(name: &str) -> String {
    format!("<LOGIN user=\"{name}\" pass=\"{}\"/>", md5_hex("pw"))
}

/// A connection logged in as `name`, its output so far taken.
fn ims(h: &mut Harness, name: &str) -> ConnId {
    let c = h.connect(Protocol::Ims);
    let doc = login_doc(name);
    h.send(c, doc.clone());
    assert_eq!(
        h.take(c),
        format!("{doc}\n<LOGIN user=\"{name}\" result=\"1\"/>\n"),
        "{name} logs in"
    );
    c
}

/// Sends `doc` and returns what came back, the echo checked and removed.
fn ask(h: &mut Harness, c: ConnId, doc: &str) -> String {
    h.send(c, doc);
    let got = h.take(c);
    let rest = got.strip_prefix(&format!("{doc}\n"));
    rest.unwrap_or_else(|| panic!("no echo of {doc} first: {got:?}"))
        .to_owned()
}

fn name(s: &str) -> UserName {
    UserName::parse(s).expect("valid name")
}

#[test]
fn before_login_only_the_echo_comes_back() {
    let mut h = accounts();
    let c = h.connect(Protocol::Ims);
    assert_eq!(h.take(c), "", "ims has no greeting");
    for doc in [
        "<MESSAGE from=\"alice\" to=\"bob\">hi</MESSAGE>",
        "<STATUS user=\"alice\" type=\"list\"/>",
        "<FRIEND user=\"alice\" type=\"request\"/>",
        "<LOGOUT user=\"alice\"/>",
        "<ALIVE/>",
        "<WHATEVER/>",
    ] {
        assert_eq!(ask(&mut h, c, doc), "", "{doc}");
    }
    assert_eq!(h.closed(c), None);
    assert!(h.store.offline.is_empty());
}

/// The echo is the document and the server's terminator, whatever ended it on input
/// (a newline, CR LF, NUL, nothing, or the next document), with either terminator.
#[test]
fn the_echo_ends_with_the_servers_terminator() {
    use crate::config::ImsTerminator;
    let input = "<ALIVE/>\n<ALIVE/>\r\n<ALIVE/>\0<ALIVE/><ALIVE/> \n<ALIVE/>";
    for (term, end) in [(ImsTerminator::Newline, "\n"), (ImsTerminator::Nul, "\0")] {
        let mut config = Config::default();
        config.ims.terminator = term;
        let mut h = accounts_with(config);
        let c = h.connect(Protocol::Ims);
        h.send(c, input);
        assert_eq!(h.take(c), format!("<ALIVE/>{end}").repeat(6), "{term:?}");
        // Logged in, a message's echo and its answer, split before the newline.
        let doc = login_doc("alice");
        h.send(c, format!("{doc}\n"));
        h.take(c);
        h.send(c, "<MESSAGE from=\"alice\" to=\"bob\">x</MESSAGE>");
        h.send(c, "\n<MESSAGE from=\"alice\" to=\"bob\">y</MESSAGE>\n");
        assert_eq!(
            h.take(c),
            format!(
                "<MESSAGE from=\"alice\" to=\"bob\">x</MESSAGE>{end}<MESSAGE result=\"-1\"/>{end}\
                 <MESSAGE from=\"alice\" to=\"bob\">y</MESSAGE>{end}<MESSAGE result=\"-1\"/>{end}"
            ),
            "{term:?}"
        );
    }
}

#[test]
fn login_results() {
    let mut h = accounts();
    let c = h.connect(Protocol::Ims);
    let wrong = format!("<LOGIN user=\"alice\" pass=\"{}\"/>", md5_hex("nope"));
    assert_eq!(
        ask(&mut h, c, &wrong),
        "<LOGIN user=\"alice\" result=\"0\"/>\n"
    );
    let clear = "<LOGIN user=\"alice\" pass=\"pw\"/>";
    assert_eq!(
        ask(&mut h, c, clear),
        "<LOGIN user=\"alice\" result=\"0\"/>\n"
    );
    let nobody = format!("<LOGIN user=\"dave\" pass=\"{}\"/>", md5_hex("pw"));
    assert_eq!(
        ask(&mut h, c, &nobody),
        "<LOGIN user=\"dave\" result=\"0\"/>\n"
    );
    // Upper-case hex and another spelling of the name are fine; the reply names the
    // user as the client wrote it.
    let upper = format!(
        "<login USER='ALICE' Pass='{}'/>",
        md5_hex("pw").to_uppercase()
    );
    assert_eq!(
        ask(&mut h, c, &upper),
        "<LOGIN user=\"ALICE\" result=\"1\"/>\n"
    );
    // A second LOGIN on a logged-in connection changes nothing.
    assert_eq!(
        ask(&mut h, c, &login_doc("bob")),
        "<LOGIN user=\"bob\" result=\"0\"/>\n"
    );
    // Banned: 2, once the password checks out.
    assert_eq!(admin(&mut h, "ban user bob"), "ok bob banned\r\n");
    let d = h.connect(Protocol::Ims);
    assert_eq!(
        ask(&mut h, d, &login_doc("bob")),
        "<LOGIN user=\"bob\" result=\"2\"/>\n"
    );
    // A second session of a user is allowed.
    ims(&mut h, "alice");
}

/// Documents sent right behind a LOGIN wait for its answer, so a client need not wait
/// for the password check before its first MESSAGE.
#[test]
fn documents_behind_a_login_wait_for_it() {
    let mut h = accounts();
    let c = h.connect(Protocol::Ims);
    let login = login_doc("alice");
    let message = "<MESSAGE from=\"alice\" to=\"alice\">me</MESSAGE>";
    h.send(c, format!("{login}\n{message}\0<ALIVE/>"));
    assert_eq!(
        h.take(c),
        format!(
            "{login}\n<LOGIN user=\"alice\" result=\"1\"/>\n{message}\n\
             <MESSAGE result=\"1\"/>\n<ALIVE/>\n<MESSAGE from=\"alice\" to=\"alice\">me</MESSAGE>\n"
        )
    );
}

#[test]
fn logout_checks_the_owner_then_nothing_more() {
    let mut h = accounts();
    let c = ims(&mut h, "alice");
    assert_eq!(
        ask(&mut h, c, "<LOGOUT user=\"bob\"/>"),
        "<LOGOUT user=\"bob\" result=\"0\"/>\n"
    );
    assert_eq!(h.closed(c), None, "no log out occurs");
    assert!(h.server().stats().online_users == 1);
    h.send(c, "<LOGOUT user=\"Alice\"/><ALIVE/><LOGIN/>");
    assert_eq!(
        h.take(c),
        "<LOGOUT user=\"Alice\"/>\n<LOGOUT user=\"Alice\" result=\"1\"/>\n"
    );
    assert_eq!(h.closed(c), Some(CloseReason::Quit));
    assert_eq!(h.server().stats().online_users, 0);
}

#[test]
fn messages_live_unknown_and_not_from_the_owner() {
    let mut h = accounts();
    let a = ims(&mut h, "alice");
    let b = ims(&mut h, "bob");
    assert_eq!(
        ask(
            &mut h,
            a,
            "<MESSAGE from=\"alice\" to=\"BOB\">hi &amp; bye</MESSAGE>"
        ),
        "<MESSAGE result=\"1\"/>\n"
    );
    assert_eq!(
        h.take(b),
        "<MESSAGE from=\"alice\" to=\"bob\">hi &amp; bye</MESSAGE>\n"
    );
    assert_eq!(
        ask(
            &mut h,
            a,
            "<MESSAGE from=\"bob\" to=\"bob\">forged</MESSAGE>"
        ),
        "<MESSAGE result=\"0\"/>\n"
    );
    assert_eq!(
        ask(
            &mut h,
            a,
            "<MESSAGE from=\"alice\" to=\"nobody\">x</MESSAGE>"
        ),
        "<MESSAGE result=\"0\"/>\n"
    );
    assert_eq!(
        ask(
            &mut h,
            a,
            "<MESSAGE from=\"alice\" to=\"a&lt;b\">x</MESSAGE>"
        ),
        "<MESSAGE result=\"0\"/>\n"
    );
    assert_eq!(h.take(b), "", "bob got neither");
}

/// -1 only once the message is committed; delivered at the next login, in order, and
/// removed once written.
#[test]
fn an_offline_message_is_stored_before_minus_one_and_drained_at_login() {
    let mut h = accounts();
    let a = ims(&mut h, "alice");
    h.auto_commit = false;
    let first = "<MESSAGE from=\"alice\" to=\"bob\">one</MESSAGE>";
    h.send(a, first);
    assert_eq!(
        h.take(a),
        format!("{first}\n"),
        "the echo, not yet the result"
    );
    assert_eq!(h.uncommitted().len(), 1);
    h.commit();
    assert_eq!(h.take(a), "<MESSAGE result=\"-1\"/>\n");
    assert_eq!(h.store.offline[&name("bob").key()].len(), 1);
    h.auto_commit = true;
    ask(
        &mut h,
        a,
        "<MESSAGE from=\"alice\" to=\"bob\">two</MESSAGE>",
    );
    h.auto_written = false;
    let b = h.connect(Protocol::Ims);
    let doc = login_doc("bob");
    h.send(b, doc.clone());
    let handed = "<MESSAGE from=\"alice\" to=\"bob\">one</MESSAGE>\n\
                  <MESSAGE from=\"alice\" to=\"bob\">two</MESSAGE>\n";
    assert_eq!(
        h.take(b),
        format!("{doc}\n<LOGIN user=\"bob\" result=\"1\"/>\n{handed}")
    );
    assert_eq!(
        h.store.offline[&name("bob").key()].len(),
        2,
        "not written yet"
    );
    h.written(
        b,
        doc.len() + 1 + "<LOGIN user=\"bob\" result=\"1\"/>\n".len(),
    );
    assert_eq!(h.store.offline[&name("bob").key()].len(), 2);
    h.written(b, handed.len());
    assert!(!h.store.offline.contains_key(&name("bob").key()));
    // Exactly once: the next login gets nothing.
    h.auto_written = true;
    let again = ims(&mut h, "bob");
    assert_eq!(h.take(again), "");
}

#[test]
fn ws2017_and_ims_message_each_other() {
    let mut h = accounts();
    let b = ims(&mut h, "bob");
    let w = h.connect(Protocol::Ws2017);
    h.send(w, "uname walter\r\n");
    h.take(w);
    h.send(w, "chatm walter bob 'hello <bob>'\r\n");
    // ims sends no receipts: the ws2017 sender is told of delivery at once.
    assert_eq!(
        h.take(w),
        "+OK chatm 'message relayed'\r\nchatr walter bob\r\n"
    );
    assert_eq!(
        h.take(b),
        "<MESSAGE from=\"walter\" to=\"bob\">hello &lt;bob&gt;</MESSAGE>\n"
    );
    assert_eq!(
        ask(
            &mut h,
            b,
            "<MESSAGE from=\"bob\" to=\"walter\">hi walter</MESSAGE>"
        ),
        "<MESSAGE result=\"1\"/>\n"
    );
    assert_eq!(h.take(w), "chatm bob walter 'hi walter'\r\n");
    // A ws2017 message to an offline ims user is stored and drained over ims.
    h.send(w, "chatm walter carol 'later'\r\n");
    assert_eq!(h.take(w), "+OK chatm 'message stored'\r\n");
    let c = h.connect(Protocol::Ims);
    h.send(c, login_doc("carol"));
    assert!(h
        .take(c)
        .ends_with("<MESSAGE from=\"walter\" to=\"carol\">later</MESSAGE>\n"));
}

#[test]
fn statuses_set_get_list_and_invisible() {
    let mut h = accounts();
    let a = ims(&mut h, "alice");
    let b = ims(&mut h, "bob");
    assert_eq!(
        ask(&mut h, a, "<STATUS user=\"alice\" type=\"list\"/>"),
        "<STATUSLIST><STATUS id=\"0\">Online</STATUS><STATUS id=\"1\">Away</STATUS>\
         <STATUS id=\"2\">Busy</STATUS><STATUS id=\"3\">Invisible</STATUS></STATUSLIST>\n"
    );
    let get = |h: &mut Harness, c, who: &str| {
        ask(h, c, &format!("<STATUS user=\"{who}\" type=\"get\"/>"))
    };
    assert_eq!(
        get(&mut h, a, "alice"),
        "<STATUS type=\"get\" result=\"0\"/>\n"
    );
    // Not a friend: unknown.
    assert_eq!(
        get(&mut h, a, "bob"),
        "<STATUS type=\"get\" result=\"-1\"/>\n"
    );
    assert_eq!(
        ask(&mut h, a, "<STATUS user=\"bob\" type=\"set\" code=\"1\"/>"),
        "<STATUS type=\"set\" result=\"0\"/>\n",
        "not the owner"
    );
    assert_eq!(
        ask(
            &mut h,
            a,
            "<STATUS user=\"alice\" type=\"set\" code=\"9\"/>"
        ),
        "<STATUS type=\"set\" result=\"0\"/>\n",
        "no such status"
    );
    make_friends(&mut h, a, b);
    assert_eq!(
        get(&mut h, b, "alice"),
        "<STATUS type=\"get\" result=\"0\"/>\n"
    );
    assert_eq!(
        ask(
            &mut h,
            a,
            "<STATUS user=\"alice\" type=\"SET\" code=\"2\"/>"
        ),
        "<STATUS type=\"set\" result=\"1\"/>\n"
    );
    assert_eq!(
        get(&mut h, b, "alice"),
        "<STATUS type=\"get\" result=\"2\"/>\n"
    );
    assert_eq!(
        ask(&mut h, b, "<FRIEND user=\"bob\" type=\"request\"/>"),
        "<FRIENDS><USER status=\"2\">alice</USER></FRIENDS>\n"
    );
    ask(
        &mut h,
        a,
        "<STATUS user=\"alice\" type=\"set\" code=\"3\"/>",
    );
    assert_eq!(
        get(&mut h, a, "alice"),
        "<STATUS type=\"get\" result=\"3\"/>\n"
    );
    assert_eq!(
        get(&mut h, b, "alice"),
        "<STATUS type=\"get\" result=\"-1\"/>\n"
    );
    assert_eq!(
        ask(&mut h, b, "<FRIEND user=\"bob\" type=\"request\"/>"),
        "<FRIENDS><USER status=\"-1\">alice</USER></FRIENDS>\n",
        "invisible shows as offline"
    );
    assert_eq!(h.take(b), "", "statuses are not pushed");
}

/// alice invites bob (online), bob accepts.
fn make_friends(h: &mut Harness, a: ConnId, b: ConnId) {
    assert_eq!(
        ask(h, a, "<FRIEND user=\"alice\" type=\"add\" friend=\"bob\"/>"),
        "<FRIEND type=\"add\" result=\"1\"/>\n"
    );
    assert_eq!(
        h.take(b),
        "<FRIEND type=\"invite\" to=\"bob\" from=\"alice\"/>\n"
    );
    assert_eq!(
        ask(
            h,
            b,
            "<FRIEND user=\"bob\" type=\"accept\" other=\"alice\"/>"
        ),
        "<FRIEND type=\"accept\" result=\"1\"/>\n"
    );
}

#[test]
fn friends_add_accept_deny_delete_and_request() {
    let mut h = accounts();
    let a = ims(&mut h, "alice");
    let b = ims(&mut h, "bob");
    let req = "<FRIEND user=\"alice\" type=\"request\"/>";
    assert_eq!(ask(&mut h, a, req), "<FRIENDS></FRIENDS>\n");
    // The invite is pushed once the request is committed, as is the answer.
    h.auto_commit = false;
    let add = "<FRIEND user=\"alice\" type=\"add\" friend=\"BOB\"/>";
    h.send(a, add);
    assert_eq!(h.take(a), format!("{add}\n"));
    assert_eq!(h.take(b), "");
    h.commit();
    h.auto_commit = true;
    assert_eq!(h.take(a), "<FRIEND type=\"add\" result=\"1\"/>\n");
    assert_eq!(
        h.take(b),
        "<FRIEND type=\"invite\" to=\"bob\" from=\"alice\"/>\n"
    );
    assert_eq!(
        ask(&mut h, a, add),
        "<FRIEND type=\"add\" result=\"0\"/>\n",
        "already asked"
    );
    assert_eq!(
        ask(
            &mut h,
            b,
            "<FRIEND user=\"bob\" type=\"accept\" other=\"carol\"/>"
        ),
        "<FRIEND type=\"accept\" result=\"0\"/>\n",
        "carol never asked"
    );
    assert_eq!(
        ask(
            &mut h,
            b,
            "<FRIEND user=\"bob\" type=\"accept\" other=\"alice\"/>"
        ),
        "<FRIEND type=\"accept\" result=\"1\"/>\n"
    );
    assert!(h
        .store
        .are_friends(&name("alice").key(), &name("bob").key()));
    assert_eq!(
        ask(&mut h, a, req),
        "<FRIENDS><USER status=\"0\">bob</USER></FRIENDS>\n"
    );
    // Carol (offline) is invited: she hears of it at her next login, and denies.
    assert_eq!(
        ask(
            &mut h,
            a,
            "<FRIEND user=\"alice\" type=\"add\" friend=\"carol\"/>"
        ),
        "<FRIEND type=\"add\" result=\"1\"/>\n"
    );
    let c = h.connect(Protocol::Ims);
    h.send(c, login_doc("carol"));
    assert!(h
        .take(c)
        .ends_with("<LOGIN user=\"carol\" result=\"1\"/>\n<FRIEND type=\"invite\" to=\"carol\" from=\"alice\"/>\n"));
    assert_eq!(
        ask(
            &mut h,
            c,
            "<FRIEND user=\"carol\" type=\"deny\" other=\"alice\"/>"
        ),
        "<FRIEND type=\"deny\" result=\"1\"/>\n"
    );
    assert!(h.store.friend_requests.is_empty());
    // Not the owner, or an unknown user: 0 (and an empty list).
    assert_eq!(
        ask(
            &mut h,
            a,
            "<FRIEND user=\"bob\" type=\"delete\" friend=\"bob\"/>"
        ),
        "<FRIEND type=\"delete\" result=\"0\"/>\n"
    );
    assert_eq!(
        ask(&mut h, a, "<FRIEND user=\"bob\" type=\"request\"/>"),
        "<FRIENDS></FRIENDS>\n"
    );
    assert_eq!(
        ask(
            &mut h,
            a,
            "<FRIEND user=\"alice\" type=\"add\" friend=\"nobody\"/>"
        ),
        "<FRIEND type=\"add\" result=\"0\"/>\n"
    );
    assert_eq!(
        ask(
            &mut h,
            a,
            "<FRIEND user=\"alice\" type=\"delete\" friend=\"bob\"/>"
        ),
        "<FRIEND type=\"delete\" result=\"1\"/>\n"
    );
    assert_eq!(
        ask(&mut h, b, "<FRIEND user=\"bob\" type=\"request\"/>"),
        "<FRIENDS></FRIENDS>\n"
    );
    assert_eq!(
        ask(
            &mut h,
            a,
            "<FRIEND user=\"alice\" type=\"delete\" friend=\"bob\"/>"
        ),
        "<FRIEND type=\"delete\" result=\"0\"/>\n",
        "no longer friends"
    );
}

#[test]
fn a_stored_invite_names_its_sender_as_registered() {
    let mut h = accounts();
    assert_eq!(
        admin(&mut h, "user add Eve pw"),
        "ok account Eve created\r\n"
    );
    let e = ims(&mut h, "Eve");
    assert_eq!(
        ask(
            &mut h,
            e,
            "<FRIEND user=\"Eve\" type=\"add\" friend=\"carol\"/>"
        ),
        "<FRIEND type=\"add\" result=\"1\"/>\n"
    );
    // Carol was offline: the invite waited, and names Eve as a live one would.
    let c = h.connect(Protocol::Ims);
    h.send(c, login_doc("carol"));
    let got = h.take(c);
    assert!(
        got.ends_with(
            "<LOGIN user=\"carol\" result=\"1\"/>\n<FRIEND type=\"invite\" to=\"carol\" from=\"Eve\"/>\n"
        ),
        "{got:?}"
    );
}

#[test]
fn no_document_for_the_alive_timeout_closes_the_connection() {
    let mut h = accounts();
    let a = ims(&mut h, "alice");
    let idle = h.connect(Protocol::Ims);
    // ALIVE every 10 s keeps alice on; the idle connection goes at 15 s.
    for _ in 0..3 {
        h.advance(10_000);
        assert_eq!(ask(&mut h, a, "<ALIVE/>"), "");
    }
    assert_eq!(h.closed(idle), Some(CloseReason::Timeout));
    assert_eq!(h.closed(a), None);
    // A partial document is not a document: the deadline still counts from the last
    // complete one.
    h.advance(5_000);
    h.send(a, "<ALI");
    h.advance(9_999);
    assert_eq!(h.closed(a), None);
    h.advance(1);
    assert_eq!(h.closed(a), Some(CloseReason::Timeout));
    assert_eq!(h.server().stats().online_users, 0);
}

#[test]
fn an_administrators_kick_logs_out_and_closes() {
    let mut h = accounts();
    let a = ims(&mut h, "alice");
    let guest = h.connect(Protocol::Ims);
    assert_eq!(
        admin(&mut h, "kick alice"),
        "ok alice kicked, 1 session closed\r\n"
    );
    assert_eq!(h.take(a), "<LOGOUT user=\"alice\" result=\"1\"/>\n");
    assert_eq!(h.closed(a), Some(CloseReason::Kicked));
    assert_eq!(h.closed(guest), None);
}

#[test]
fn malformed_input_is_skipped_without_an_answer() {
    let mut h = accounts();
    let a = ims(&mut h, "alice");
    h.send(
        a,
        "junk </x> <a></b> <MESSAGE from=\"alice\" to=\"alice\">&bogus;</MESSAGE> <ALIVE/>",
    );
    assert_eq!(h.take(a), "<ALIVE/>\n");
    // Unescaped markup in a message leaves an element open: the message ends at its own
    // end tag and is refused, and what follows is read (it was swallowed to the
    // timeout). So is `<ALIVE/ >`, not XML but no longer an element left open.
    h.send(
        a,
        "<MESSAGE from=\"alice\" to=\"bob\">line<br>two</MESSAGE><ALIVE/ ><ALIVE/>",
    );
    assert_eq!(h.take(a), "<ALIVE/>\n");
    assert_eq!(h.closed(a), None);
}

/// A ban of the address closes its ims connections (a logged-in one hears LOGOUT first)
/// and refuses new ones; deleting an account logs its sessions out.
#[test]
fn bans_and_deleted_accounts_close_ims_connections() {
    let mut h = accounts();
    let a = h.connect_from(Protocol::Ims, [10, 0, 0, 7]);
    let doc = login_doc("alice");
    h.send(a, doc.clone());
    h.take(a);
    let guest = h.connect_from(Protocol::Ims, [10, 0, 0, 7]);
    let b = ims(&mut h, "bob");
    assert!(admin(&mut h, "ban ip 10.0.0.7").starts_with("ok "));
    assert_eq!(h.take(a), "<LOGOUT user=\"alice\" result=\"1\"/>\n");
    assert_eq!(h.closed(a), Some(CloseReason::Banned));
    assert_eq!(h.take(guest), "");
    assert_eq!(h.closed(guest), Some(CloseReason::Banned));
    let again = h.connect_from(Protocol::Ims, [10, 0, 0, 7]);
    assert_eq!(h.closed(again), Some(CloseReason::Banned));
    assert_eq!(h.take(again), "", "ims has no greeting to refuse with");
    assert_eq!(
        admin(&mut h, "user del bob"),
        "ok account bob deleted, 1 session closed\r\n"
    );
    assert_eq!(h.take(b), "<LOGOUT user=\"bob\" result=\"1\"/>\n");
    assert_eq!(h.closed(b), Some(CloseReason::Kicked));
}

/// LOGIN attempts draw on the connection's broadcast bucket (a login is told to
/// everyone and costs a password check): past its burst even the right password gets 0.
/// Past the connection caps a connection is closed without a word.
#[test]
fn login_attempts_and_connections_are_limited() {
    // Without the failed-login lockout (tested in `tests::hostile`), which would lock
    // alice after five of these guesses.
    let mut config = Config::default();
    config.limits.failed_logins_per_account = u32::MAX;
    let mut h = accounts_with(config);
    let burst = Config::default().limits.broadcast_per_conn.burst;
    let c = h.connect(Protocol::Ims);
    let wrong = format!("<LOGIN user=\"alice\" pass=\"{}\"/>", md5_hex("guess"));
    for _ in 0..burst {
        assert_eq!(
            ask(&mut h, c, &wrong),
            "<LOGIN user=\"alice\" result=\"0\"/>\n"
        );
    }
    assert_eq!(
        ask(&mut h, c, &login_doc("alice")),
        "<LOGIN user=\"alice\" result=\"0\"/>\n",
        "no token left"
    );
    // Refilled at 60 a minute (and within the ALIVE timeout).
    h.advance(2_000);
    assert_eq!(
        ask(&mut h, c, &login_doc("alice")),
        "<LOGIN user=\"alice\" result=\"1\"/>\n"
    );

    let mut config = Config::default();
    config.limits.max_connections = 1;
    let mut h = Harness::new(config);
    let first = h.connect(Protocol::Ims);
    let second = h.connect(Protocol::Ims);
    assert_eq!(h.closed(first), None);
    assert_eq!(h.closed(second), Some(CloseReason::TooManyConnections));
    assert_eq!(h.take(second), "");
}

/// While a LOGIN's password is checked, the documents behind it wait unframed, up to four
/// documents' worth of bytes; a client flooding past that is closed.
#[test]
fn input_waiting_behind_a_login_is_bounded() {
    let mut config = Config::default();
    config.ims.max_document_bytes = 100;
    let mut h = Harness::new(config);
    assert!(admin(&mut h, "user add alice pw").starts_with("ok"));
    let c = h.connect(Protocol::Ims);
    h.send(
        c,
        format!("{}{}", login_doc("alice"), "<ALIVE/>".repeat(40)),
    );
    assert_eq!(h.closed(c), None, "320 bytes wait");
    let d = h.connect(Protocol::Ims);
    h.send(
        d,
        format!("{}{}", login_doc("alice"), "<ALIVE/>".repeat(60)),
    );
    assert_eq!(
        h.closed(d),
        Some(CloseReason::ProtocolError),
        "480 bytes do not"
    );
}

/// An ims message may hold line breaks (`&#10;`); relayed to ws2017 it stays one line, so
/// it cannot forge lines of the ws2017 stream.
#[test]
fn line_breaks_from_ims_stay_inside_one_ws2017_line() {
    let mut h = accounts();
    let b = ims(&mut h, "bob");
    let w = h.connect(Protocol::Ws2017);
    h.send(w, "uname walter\r\n");
    h.take(w);
    // `&#0;` is no XML character: the document is malformed, skipped unanswered.
    h.send(b, "<MESSAGE from=\"bob\" to=\"walter\">x&#0;</MESSAGE>");
    assert_eq!(h.take(b), "");
    assert_eq!(
        ask(
            &mut h,
            b,
            "<MESSAGE from=\"bob\" to=\"walter\">a'&#13;&#10;+OK uname you are bob</MESSAGE>"
        ),
        "<MESSAGE result=\"1\"/>\n"
    );
    assert_eq!(
        h.take(w),
        "chatm bob walter 'a'  +OK uname you are bob'\r\n"
    );
}

/// MESSAGE to an online user draws on the message rate (a stored one on the durable
/// rate): past the burst the answer is 0 and nothing reaches the recipient; it refills.
#[test]
fn live_messages_are_rate_limited() {
    let mut h = accounts();
    let burst = Config::default().limits.message_per_conn.burst as usize;
    let a = ims(&mut h, "alice");
    let b = ims(&mut h, "bob");
    let c = ims(&mut h, "carol");
    let doc = |i: usize| format!("<MESSAGE from=\"alice\" to=\"bob\">m{i}</MESSAGE>");
    let flood: String = (0..burst + 10).map(doc).collect();
    h.send(a, flood);
    let answers = h.take(a);
    let count = |r: &str| answers.lines().filter(|l| *l == r).count();
    assert_eq!(count("<MESSAGE result=\"1\"/>"), burst);
    assert_eq!(count("<MESSAGE result=\"0\"/>"), 10);
    assert_eq!(h.take(b).lines().count(), burst, "bob gets the burst only");
    // Two a second come back.
    h.advance(500);
    assert_eq!(ask(&mut h, a, &doc(99)), "<MESSAGE result=\"1\"/>\n");
    assert_eq!(ask(&mut h, a, &doc(100)), "<MESSAGE result=\"0\"/>\n");
    // Carol is not affected.
    assert_eq!(
        ask(&mut h, c, "<MESSAGE from=\"carol\" to=\"bob\">hi</MESSAGE>"),
        "<MESSAGE result=\"1\"/>\n"
    );
}

/// A mailbox larger than the connection may have unwritten is handed out in windows as
/// the runtime writes: nothing closes the connection as a slow reader, every message
/// arrives once and in order, and a message sent meanwhile waits behind the old ones.
#[test]
fn a_mailbox_larger_than_the_outbound_limit_is_handed_out_as_it_is_written() {
    let mut h = Harness::new(Config {
        outbound_limit_bytes: 4096,
        ..Config::default()
    });
    for name in ["alice", "bob"] {
        admin(&mut h, &format!("user add {name} pw"));
    }
    let a = ims(&mut h, "alice");
    let body = |i: usize| format!("{i:03}{}", "x".repeat(200));
    let mut expected = String::new();
    for i in 0..40 {
        h.advance(1000); // within the durable rate
        let doc = format!("<MESSAGE from=\"alice\" to=\"bob\">{}</MESSAGE>", body(i));
        assert_eq!(ask(&mut h, a, &doc), "<MESSAGE result=\"-1\"/>\n");
        expected.push_str(&format!("{doc}\n"));
    }
    h.auto_written = false;
    let b = h.connect(Protocol::Ims);
    let login = login_doc("bob");
    h.send(b, login.clone());
    let mut got = h.take(b);
    let head = format!("{login}\n<LOGIN user=\"bob\" result=\"1\"/>\n");
    assert!(got.starts_with(&head), "{got:?}");
    assert!(
        got.len() <= 4096,
        "at most the limit unwritten: {}",
        got.len()
    );
    assert!(got.len() < head.len() + expected.len(), "the rest waits");
    // Sent while the mailbox is still being handed out: stored behind it.
    h.advance(1000);
    let late = format!("<MESSAGE from=\"alice\" to=\"bob\">{}</MESSAGE>", body(40));
    assert_eq!(ask(&mut h, a, &late), "<MESSAGE result=\"-1\"/>\n");
    expected.push_str(&format!("{late}\n"));
    let mut pending = got.len();
    let mut rounds = 0;
    while got.len() < head.len() + expected.len() {
        rounds += 1;
        assert!(rounds < 100, "the drain stalled after {} bytes", got.len());
        h.written(b, pending);
        let more = h.take(b);
        assert!(more.len() <= 4096);
        pending = more.len();
        got.push_str(&more);
    }
    assert_eq!(h.closed(b), None, "not closed as a slow reader");
    assert_eq!(got, format!("{head}{expected}"), "each once, in order");
    h.written(b, pending);
    assert!(!h.store.offline.contains_key(&name("bob").key()));
    // Handed out in full: live delivery again.
    h.auto_written = true;
    let doc = "<MESSAGE from=\"alice\" to=\"bob\">now</MESSAGE>";
    assert_eq!(ask(&mut h, a, doc), "<MESSAGE result=\"1\"/>\n");
    assert_eq!(h.take(b), format!("{doc}\n"));
}

/// A stream of documents gives the same replies however the reads cut it: whole, cut
/// once anywhere, byte by byte (documents are framed where they arrive, and only an
/// unfinished one is kept, so every cut crosses that boundary).
#[test]
fn any_split_of_a_document_stream_gives_the_same_output() {
    let stream = "<MESSAGE from=\"alice\" to=\"bob\">one &amp; two</MESSAGE>\n\
                  <STATUS type=\"set\">1</STATUS>\r\n\0\
                  <ALIVE/>  <MESSAGE from=\"alice\" to=\"carol\">three</MESSAGE>\
                  <FRIEND type=\"request\" user=\"bob\"/>\n";
    let play = |reads: &[&[u8]]| -> (String, String) {
        let mut h = accounts();
        let alice = ims(&mut h, "alice");
        let bob = ims(&mut h, "bob");
        for read in reads {
            h.send(alice, read.to_vec());
        }
        (h.take(alice), h.take(bob))
    };
    let all = stream.as_bytes();
    let whole = play(&[all]);
    assert!(whole.1.contains("one &amp; two"), "{whole:?}");
    assert!(whole.0.contains("<FRIEND type=\"request\""), "{whole:?}");
    for i in 0..=all.len() {
        assert_eq!(play(&[&all[..i], &all[i..]]), whole, "cut at {i}");
    }
    let bytes: Vec<&[u8]> = all.chunks(1).collect();
    assert_eq!(play(&bytes), whole, "byte by byte");
}

/// ws2017's `cgetu` answer is kept encoded while the lobby stands still: every login,
/// logout, rename and status change (an ims user turning invisible and back) shows in the
/// next one.
#[test]
fn a_ws2017_listing_follows_every_change_of_the_lobby() {
    let mut h = accounts();
    let listing = |h: &mut Harness, c: ConnId| {
        h.take(c);
        h.send(c, "cgetu\r\n");
        h.take(c)
    };
    let ws2017 = |h: &mut Harness, name: &str| {
        let c = h.connect(Protocol::Ws2017);
        h.send(c, format!("uname {name}\r\n"));
        assert!(h
            .take(c)
            .ends_with(&format!("+OK uname you are {name}\r\n")));
        c
    };
    let w = ws2017(&mut h, "walter");
    assert_eq!(listing(&mut h, w), "+OK cgetu walter\r\n");
    assert_eq!(listing(&mut h, w), "+OK cgetu walter\r\n", "unchanged");
    let a = ims(&mut h, "alice");
    assert_eq!(listing(&mut h, w), "+OK cgetu alice walter\r\n");
    let set = |code| format!("<STATUS user=\"alice\" type=\"set\" code=\"{code}\"/>");
    ask(&mut h, a, &set(3));
    assert_eq!(listing(&mut h, w), "+OK cgetu walter\r\n", "invisible");
    ask(&mut h, a, &set(0));
    assert_eq!(listing(&mut h, w), "+OK cgetu alice walter\r\n", "visible");
    let z = ws2017(&mut h, "zoe");
    assert_eq!(listing(&mut h, w), "+OK cgetu alice walter zoe\r\n");
    h.send(z, "uname ann\r\n");
    assert_eq!(
        listing(&mut h, w),
        "+OK cgetu alice ann walter\r\n",
        "renamed"
    );
    h.peer_close(a);
    assert_eq!(listing(&mut h, w), "+OK cgetu ann walter\r\n", "logged out");
}
