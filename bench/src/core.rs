//! The core alone, in memory: a pump with a crowd of logged-in ws2017 clients, and the
//! drain a runtime does. Shared by the `core_direct` criterion benchmark and the
//! `switchboard-bench core` instruction-count run (for callgrind: noise-free figures on a
//! busy machine).

use std::hint::black_box;
use std::net::SocketAddr;

use bytes::Bytes;
use switchboard_proto::{
    Action, Config, ConnId, Instant, Limits, Now, Peer, Protocol, Pump, Server, State,
};

/// A pump with `clients` logged-in ws2017 clients `u0`, `u1`, ... (pairs talk to each
/// other), limits out of the way, every output of the logins drained.
pub fn crowd(clients: u64) -> (Pump, Now) {
    let config = Config {
        outbound_limit_bytes: usize::MAX,
        limits: Limits {
            max_connections: usize::MAX,
            max_connections_per_ip: usize::MAX,
            outbound_budget_bytes: usize::MAX,
            ..Limits::default()
        },
        ..Config::default()
    };
    let mut pump = Pump::new(Server::new(config, State::default()));
    let now = Now::at(Instant::ZERO, 1_700_000_000_000);
    for i in 0..clients {
        let ip = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let peer: SocketAddr = (ip, 40_000).into();
        pump.accepted(now, ConnId(i), Protocol::Ws2017, Peer::Net(peer));
        pump.received(now, ConnId(i), Bytes::from(format!("uname u{i}\r\n")));
        drain(&mut pump, now);
    }
    (pump, now)
}

/// Does what a runtime does with every action: reports transmits written at once.
/// Returns how many transmits there were.
pub fn drain(pump: &mut Pump, now: Now) -> usize {
    let mut transmits = 0;
    while let Some(action) = pump.poll_action() {
        if let Action::Transmit { conn, bytes } = action {
            transmits += 1;
            let n = bytes.len();
            black_box(bytes);
            pump.written(now, conn, n);
        }
    }
    transmits
}

/// One read per client of `per_read` chat lines, each from `u{i}` to its partner.
pub fn reads(clients: u64, per_read: usize) -> Vec<Bytes> {
    (0..clients)
        .map(|i| {
            let mut s = String::new();
            for k in 0..per_read {
                s.push_str(&format!(
                    "chatm u{i} u{} 'message {k} from u{i}'\r\n",
                    i ^ 1
                ));
            }
            Bytes::from(s)
        })
        .collect()
}

/// Feeds every read once and drains after each; returns the transmits.
pub fn round(pump: &mut Pump, now: Now, reads: &[Bytes]) -> usize {
    let mut transmits = 0;
    for (i, bytes) in reads.iter().enumerate() {
        pump.received(now, ConnId(i as u64), bytes.clone());
        transmits += drain(pump, now);
    }
    transmits
}
