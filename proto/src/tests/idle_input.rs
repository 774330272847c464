//! A connection that goes quiet holds no memory for input: a request that arrived in
//! pieces was buffered until it was whole, and once it was handled the buffer goes too,
//! however large it had to be. Otherwise every peer that once sent the largest request in
//! pieces would keep that much for as long as it stayed connected.

use super::harness::Harness;
use crate::{Config, Protocol};

/// Sends `request` to a new connection of `protocol` in two pieces, the first `split`
/// bytes and the rest, then the first two bytes of another request, and checks that the
/// first piece was held and that those two bytes are held in a buffer of their own size,
/// not in what the whole request took. (A drained `BytesMut` reports no capacity while it
/// keeps its allocation, and takes it up again at the next bytes it is given.)
fn sent_in_pieces(protocol: Protocol, request: &str, split: usize) {
    let mut h = Harness::new(Config::default());
    let conn = h.connect(protocol);
    h.take(conn);
    h.send(conn, &request.as_bytes()[..split]);
    let held = h.server().input_capacity(conn).expect("a session");
    assert!(
        held >= split,
        "{protocol:?}: the first piece is held ({held})"
    );
    h.send(conn, &request.as_bytes()[split..]);
    assert!(
        !h.take(conn).is_empty(),
        "{protocol:?}: the request was answered"
    );
    h.send(conn, &request.as_bytes()[..2]);
    let held = h.server().input_capacity(conn).expect("a session");
    assert!(held < 64, "{protocol:?}: two bytes held in {held}");
}

#[test]
fn a_request_that_arrived_in_pieces_leaves_no_buffer_behind() {
    let long = "x".repeat(3000);
    sent_in_pieces(
        Protocol::Ws2017,
        &format!("uname {}\r\ncgetu\r\n", &long[..20]),
        9,
    );
    sent_in_pieces(Protocol::Ws2017, &format!("chatm a b '{long}'\r\n"), 2000);
    sent_in_pieces(
        Protocol::Admin,
        &format!("user list {}\r\n", &long[..500]),
        200,
    );
    sent_in_pieces(Protocol::Opcode, &format!("115 {long}\r\n"), 1500);
    sent_in_pieces(Protocol::Ims, &format!("<ALIVE what=\"{long}\"/>\n"), 1500);
    let connect =
        "<arscrequest><type>connect</type><name>guest1</name><room>r</room></arscrequest>";
    sent_in_pieces(Protocol::Arsc, connect, 30);
    let post = format!(
        "<arscrequest><type>post</type><sid>0</sid><content>{long}</content></arscrequest>"
    );
    sent_in_pieces(Protocol::Arsc, &post, 1500);
}
