//! `Pump::reconfigure`: new limits apply to the next connection and request while the
//! server runs; nothing already admitted is closed.

use super::harness::Harness;
use crate::{CloseReason, Config, Limits, Protocol};

#[test]
fn new_limits_apply_to_the_next_connection_and_keep_the_open_ones() {
    let mut h = Harness::new(Config::default());
    let first = h.connect_from(Protocol::Ws2017, [10, 0, 0, 1]);
    let second = h.connect_from(Protocol::Ws2017, [10, 0, 0, 1]);
    h.take(first);
    h.take(second);
    h.reconfigure(
        Limits {
            max_connections_per_ip: 1,
            ..Limits::default()
        },
        50,
    );
    assert_eq!(h.server().config().limits.max_connections_per_ip, 1);
    assert_eq!(h.server().config().offline_share_percent, 50);
    let third = h.connect_from(Protocol::Ws2017, [10, 0, 0, 1]);
    assert_eq!(
        h.take(third),
        "-ERR 'too many connections from your address'\r\n"
    );
    assert_eq!(h.closed(third), Some(CloseReason::TooManyConnections));
    assert_eq!(h.closed(first), None, "admitted connections stay");
    assert_eq!(h.closed(second), None);
    h.send(first, "uname alice\r\n");
    assert!(h.take(first).starts_with("+OK uname"), "and keep working");
}
