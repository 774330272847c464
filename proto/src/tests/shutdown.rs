//! `Input::Shutdown`: each client is told in its protocol's way, after the
//! acknowledgements still waiting on a commit, and closed; admin connections stay.

use super::harness::{md5_hex, Harness};
use crate::{CloseReason, Config, Input, Protocol};

fn admin(h: &mut Harness, line: &str) -> String {
    let c = h.connect(Protocol::Admin);
    h.send(c, format!("{line}\r\n"));
    h.take(c)
}

#[test]
fn every_protocol_says_goodbye_its_way_and_closes() {
    let mut h = Harness::new(Config::default());
    assert_eq!(
        admin(&mut h, "user add carol pw"),
        "ok account carol created\r\n"
    );
    let ws = h.connect(Protocol::Ws2017);
    h.send(ws, "uname alice\r\n");
    let ws_anonymous = h.connect(Protocol::Ws2017);
    let ims = h.connect(Protocol::Ims);
    h.send(
        ims,
        format!("<LOGIN user=\"carol\" pass=\"{}\"/>", md5_hex("pw")),
    );
    let ims_anonymous = h.connect(Protocol::Ims);
    let arsc = h.connect(Protocol::Arsc);
    h.send(
        arsc,
        "<arscrequest><type>connect</type><user>guest</user><room>lounge</room></arscrequest>",
    );
    let opcode = h.connect(Protocol::Opcode);
    let admin_conn = h.connect(Protocol::Admin);
    for c in [ws, ws_anonymous, ims, ims_anonymous, arsc, opcode] {
        h.take(c);
    }
    h.input(Input::Shutdown);
    assert_eq!(h.take(ws), "-ERR 'the server is shutting down'\r\n");
    assert_eq!(
        h.take(ws_anonymous),
        "-ERR 'the server is shutting down'\r\n"
    );
    assert_eq!(h.take(ims), "<LOGOUT user=\"carol\" result=\"1\"/>\n");
    assert_eq!(h.take(ims_anonymous), "");
    let arsc_bye = h.take(arsc);
    assert!(
        arsc_bye.contains("<type>system</type>")
            && arsc_bye.contains("<content>The server is shutting down.</content>"),
        "{arsc_bye}"
    );
    assert_eq!(h.take(opcode), "");
    for c in [ws, ws_anonymous, ims, ims_anonymous, arsc, opcode] {
        assert_eq!(h.closed(c), Some(CloseReason::Shutdown), "{c}");
    }
    assert_eq!(h.closed(admin_conn), None, "admin connections stay");
}

#[test]
fn an_acknowledgement_waiting_on_a_commit_goes_out_before_the_goodbye() {
    let mut h = Harness::new(Config::default());
    assert_eq!(
        admin(&mut h, "user add carol pw"),
        "ok account carol created\r\n"
    );
    h.auto_commit = false;
    let ws = h.connect(Protocol::Ws2017);
    h.send(ws, "uname alice\r\n");
    h.take(ws);
    h.send(ws, "chatm alice carol 'see you'\r\n");
    assert_eq!(h.take(ws), "", "the ack waits for its commit");
    h.input(Input::Shutdown);
    assert_eq!(h.take(ws), "", "and so does the goodbye behind it");
    assert_eq!(h.closed(ws), None);
    h.commit();
    assert_eq!(
        h.take(ws),
        "+OK chatm 'message stored'\r\n-ERR 'the server is shutting down'\r\n"
    );
    assert_eq!(h.closed(ws), Some(CloseReason::Shutdown));
}
