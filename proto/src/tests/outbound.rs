//! Outbound connections, through the test-only probe protocol's link: the server asks
//! for a connection with `Output::Connect`, hears `Input::Connected` or
//! `Input::ConnectFailed`, treats a connected link like an accepted connection, and
//! decides itself when to try again (a backoff from the `now` it is given).

use super::harness::Harness;
use crate::{Config, ConnId, Input, Protocol};

const ROUTER: &str = "10.0.0.9:5347";

/// The connection the server asked for since the last call, if one.
fn dialed(h: &mut Harness) -> Option<ConnId> {
    let dials = std::mem::take(&mut h.dials);
    assert!(dials.len() <= 1, "{dials:?}");
    dials.first().map(|&(conn, addr)| {
        assert_eq!(addr.to_string(), ROUTER);
        assert!(conn.is_outbound(), "{conn} is in the server's own range");
        conn
    })
}

fn held(h: &Harness) -> Vec<String> {
    h.server().shared().probe.held.clone()
}

#[test]
fn a_link_is_dialed_retried_with_backoff_and_then_used_like_any_connection() {
    let mut h = Harness::new(Config::default());
    let admin = h.connect(Protocol::Probe);
    h.send(admin, format!("dial {ROUTER}\n"));
    assert_eq!(h.take(admin), "ok\n");
    let first = dialed(&mut h).expect("dialed at once");
    h.input(Input::ConnectFailed {
        conn: first,
        error: "refused".into(),
    });
    // Tried again after 100 ms, then 200 ms: each try a new id.
    h.advance(99);
    assert_eq!(dialed(&mut h), None);
    h.advance(1);
    let second = dialed(&mut h).expect("after 100 ms");
    assert_ne!(second, first);
    h.input(Input::ConnectFailed {
        conn: second,
        error: "refused".into(),
    });
    h.advance(199);
    assert_eq!(dialed(&mut h), None);
    h.advance(1);
    let third = dialed(&mut h).expect("after 200 more");
    // A late report for a spent id changes nothing.
    h.input(Input::Connected { conn: first });
    assert_eq!(h.take(first), "");
    h.input(Input::Connected { conn: third });
    assert_eq!(h.take(third), "hello\n");
    // Up, it is a connection like any other: requests in, replies out, the server's
    // own id in every output.
    h.send(third, "login alice\n");
    assert_eq!(h.take(third), "ok 0\n");
    assert_eq!(h.server().stats().connections, 2);
    assert_eq!(
        held(&h),
        [
            "dial at 0",
            "failed: refused",
            "dial at 100",
            "failed: refused",
            "dial at 300",
            "up at 300"
        ]
    );
    // Lost: dialed again after the first backoff (the failures before were forgiven).
    h.peer_close(third);
    h.advance(100);
    let fourth = dialed(&mut h).expect("redialed after a loss");
    assert!(fourth > third);
    assert_eq!(held(&h)[6..], ["down at 300", "dial at 400"]);
}

#[test]
fn the_server_never_takes_a_runtime_id_in_its_own_range() {
    let mut h = Harness::new(Config::default());
    let peer = core::net::SocketAddr::from(([10, 0, 0, 1], 4000));
    h.input(Input::Accepted {
        conn: ConnId::OUTBOUND,
        protocol: Protocol::Ws2017,
        peer: peer.into(),
    });
    assert_eq!(
        h.take(ConnId::OUTBOUND),
        "",
        "refused: the id is the server's"
    );
    assert_eq!(h.server().stats().connections, 0);
}
