//! Sessions apart from connections, through the test-only probe protocol: a session's
//! timer and its events follow it from connection to connection, and reach its protocol
//! while it has none (an arsc session between connections); one connection carries
//! several sessions (a jabberd router link).

use super::harness::Harness;
use crate::{Config, Protocol};

fn held(h: &Harness) -> Vec<String> {
    h.server().shared().probe.held.clone()
}

#[test]
fn a_session_timer_follows_its_session_and_fires_without_a_connection() {
    let mut h = Harness::new(Config::default());
    let first = h.connect(Protocol::Probe);
    h.send(first, "login alice 100\n");
    assert_eq!(h.take(first), "ok 0\n");
    // The connection goes; the session and its timer stay.
    h.peer_close(first);
    h.advance(150);
    assert_eq!(
        held(&h),
        ["tick 0"],
        "fired with no connection, to the protocol"
    );
    // Another connection takes the session up; its timer now rings there.
    let second = h.connect(Protocol::Probe);
    h.send(second, "take 0\npoke 0 hi\n");
    assert_eq!(h.take(second), "ok 0\nok\nmsg 0 hi\n");
    h.send(second, "login bob 50\n");
    assert_eq!(h.take(second), "ok 1\n");
    h.advance(60);
    assert_eq!(
        h.take(second),
        "tick 1\n",
        "bob's timer, not alice's (fired before)"
    );
    // Ending a session disarms its timer.
    h.send(second, "login carol 50\nend 2\n");
    assert_eq!(h.take(second), "ok 2\nok\n");
    h.advance(60);
    assert_eq!(h.take(second), "");
    assert_eq!(held(&h), ["tick 0"]);
}

#[test]
fn events_for_a_session_go_where_it_is_when_they_are_handed_out() {
    let mut h = Harness::new(Config::default());
    let link = h.connect(Protocol::Probe);
    // One connection, two sessions of two users (a router link).
    h.send(link, "login alice\nlogin bob\n");
    assert_eq!(h.take(link), "ok 0\nok 1\n");
    let other = h.connect(Protocol::Probe);
    h.send(other, "poke 1 hello\n");
    assert_eq!(h.take(other), "ok\n", "not to the connection that poked");
    assert_eq!(h.take(link), "msg 1 hello\n");
    // Without a connection, the protocol holds the events, in order.
    h.peer_close(link);
    h.send(other, "poke 0 one\npoke 1 two\n");
    assert_eq!(h.take(other), "ok\nok\n");
    assert_eq!(held(&h), ["msg 0 one", "msg 1 two"]);
    // Taken up again: the events come to the new connection.
    h.send(other, "take 0\npoke 0 three\n");
    assert_eq!(h.take(other), "ok 0\nok\nmsg 0 three\n");
    // An ended session gets nothing.
    h.send(other, "end 1\npoke 1 four\n");
    assert_eq!(h.take(other), "ok\nerr session\n");
    assert_eq!(held(&h).len(), 2);
}

/// A broadcast (a login, a logout, a rename) walks only the connections whose protocol
/// shows it: ws2017's. Handing it to every other connection only to be dropped made each
/// login cost a step per connection of every protocol (ims logins spent a third of their
/// CPU there at 10,000 clients); a connection gone leaves the walk with it.
#[test]
fn broadcasts_walk_only_the_connections_that_show_them() {
    let mut h = Harness::new(Config::default());
    let a = h.connect(Protocol::Ws2017);
    let others = [
        Protocol::Ims,
        Protocol::Arsc,
        Protocol::Opcode,
        Protocol::Probe,
    ]
    .map(|p| h.connect(p));
    let c = h.connect(Protocol::Ws2017);
    assert_eq!(h.server().lobby(), [a, c]);
    for conn in [a, c] {
        h.take(conn);
    }
    h.send(a, "uname alice\r\n");
    assert_eq!(
        h.take(c),
        "nuser alice\r\n",
        "the other ws2017 client hears of it"
    );
    for conn in others {
        h.take(conn);
    }
    h.peer_close(a);
    assert_eq!(h.server().lobby(), [c]);
    assert_eq!(h.take(c), "cquit alice\r\n");
    h.peer_close(others[0]);
    assert_eq!(h.server().lobby(), [c]);
}
