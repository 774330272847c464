//! The core alone, in memory: a pump with a crowd of logged-in ws2017 clients, and the
//! drain a runtime does. Shared by the `core_direct` criterion benchmark and the
//! `switchboard-bench core` instruction-count run (for callgrind: noise-free figures on a
//! busy machine).

use std::hint::black_box;
use std::net::SocketAddr;

use bytes::Bytes;
use switchboard_proto::{
    Action, Config, ConnId, Instant, Limits, Now, Peer, Protocol, Pump, RateLimit, Server, State,
};
use switchboard_store::credentials::{run_effect_with, Cost};

/// A server's configuration with every limit and rate out of the way: what the core-alone
/// runs of every protocol measure under.
pub fn unlimited() -> Config {
    let unlimited = RateLimit {
        per_minute: u32::MAX,
        burst: u32::MAX,
    };
    Config {
        outbound_limit_bytes: usize::MAX,
        limits: Limits {
            max_connections: usize::MAX,
            max_connections_per_ip: usize::MAX,
            outbound_budget_bytes: usize::MAX,
            broadcast_per_conn: unlimited,
            broadcast_per_ip: unlimited,
            durable_per_conn: unlimited,
            durable_per_ip: unlimited,
            message_per_conn: unlimited,
            message_per_ip: unlimited,
            ..Limits::default()
        },
        ..Config::default()
    }
}

/// Client `i`'s address, `10.x.y.z:40000`: one address per client, so no per-address
/// limit is ever met.
pub fn peer(i: u64) -> Peer {
    let ip = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    Peer::Net(SocketAddr::from((ip, 40_000)))
}

/// A pump with `clients` logged-in ws2017 clients `u0`, `u1`, ... (pairs talk to each
/// other), limits out of the way, every output of the logins drained.
pub fn crowd(clients: u64) -> (Pump, Now) {
    let mut pump = Pump::new(Server::new(unlimited(), State::default()));
    let now = Now::at(Instant::ZERO, 1_700_000_000_000);
    for i in 0..clients {
        pump.accepted(now, ConnId(i), Protocol::Ws2017, peer(i));
        pump.received(now, ConnId(i), Bytes::from(format!("uname u{i}\r\n")));
        drain(&mut pump, now);
    }
    (pump, now)
}

/// Does what a runtime does with every action: reports transmits written at once, runs
/// effects (at the cheap hashing cost), finishes commits at once (a store that keeps up).
/// Returns how many transmits there were.
pub fn drain(pump: &mut Pump, now: Now) -> usize {
    drain_with(pump, now, |_, bytes| {
        black_box(bytes);
    })
}

/// [`drain`], handing each transmit's connection and bytes to `sent` first.
pub fn drain_with(pump: &mut Pump, now: Now, mut sent: impl FnMut(ConnId, &Bytes)) -> usize {
    let mut transmits = 0;
    while let Some(action) = pump.poll_action() {
        match action {
            Action::Transmit { conn, bytes } => {
                transmits += 1;
                sent(conn, &bytes);
                pump.written(now, conn, bytes.len());
            }
            Action::Effect { id, effect } => {
                let result = run_effect_with(&Cost::cheap(), &effect);
                pump.effect_done(now, id, result);
            }
            Action::Commit(_) => pump.commit_finished(now),
            Action::Close { .. } | Action::Connect { .. } => {}
        }
    }
    transmits
}

/// The first command-line argument as a count, or `default`: the size of a
/// `bench/examples` run.
pub fn count_arg(default: u64) -> u64 {
    (std::env::args().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Microseconds per call of `once`, over `rounds` calls timed together (the
/// `bench/examples` runs: one request fed and drained per call).
pub fn us_per_call(rounds: u32, mut once: impl FnMut()) -> f64 {
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        once();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds.max(1))
}

/// One read per client of `per_read` chat lines, each from `u{i}` to its partner.
pub fn reads(clients: u64, per_read: usize) -> Vec<Bytes> {
    reads_of(clients, per_read, |i, k| {
        format!("chatm u{i} u{} 'message {k} from u{i}'\r\n", i ^ 1)
    })
}

/// One read per client `i` of `per_read` messages, message `k` being `line(i, k)`.
pub fn reads_of(clients: u64, per_read: usize, line: impl Fn(u64, usize) -> String) -> Vec<Bytes> {
    (0..clients)
        .map(|i| Bytes::from((0..per_read).map(|k| line(i, k)).collect::<String>()))
        .collect()
}

/// Feeds every read once and drains after each; returns the transmits. Each protocol's
/// `round` is this under its own name, for callgrind's `--toggle-collect`.
#[inline(never)]
pub fn round(pump: &mut Pump, now: Now, reads: &[Bytes]) -> usize {
    let mut transmits = 0;
    for (i, bytes) in reads.iter().enumerate() {
        pump.received(now, ConnId(i as u64), bytes.clone());
        transmits += drain(pump, now);
    }
    transmits
}
