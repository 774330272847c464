//! What one broadcast costs per recipient: `n` ws2017 connections, and `k` of them log in
//! one after another, each login announced (`nuser <name>`) to every other connection.
//! Times `Server::handle` for the `uname` plus draining its outputs, as a runtime does.
//!
//! Run: `cargo bench -p switchboard-proto --bench broadcast` (add `-- 1000 10000` for
//! other crowd sizes).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant as Clock;

use bytes::Bytes;
use switchboard_proto::{
    Config, ConnId, Input, Instant, Limits, Now, Output, Protocol, Server, State,
};

fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000]
    } else {
        sizes
    };
    for n in sizes {
        let (deliveries, elapsed) = run(n, 200);
        let ns = elapsed.as_nanos() as f64 / deliveries as f64;
        println!(
            "{n} connections: {deliveries} deliveries in {:.1} ms, {ns:.1} ns per recipient",
            elapsed.as_secs_f64() * 1e3
        );
    }
}

/// `k` logins among `n` connections: (deliveries, time spent in them).
fn run(n: u64, k: u64) -> (u64, std::time::Duration) {
    // Limits out of the way: this measures the broadcast path, not the limiter's refusals.
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
    let mut server = Server::new(config, State::default());
    let now = Now::at(Instant::ZERO, 0);
    for i in 0..n {
        let ip = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let peer: SocketAddr = (ip, 40_000).into();
        let input = Input::Accepted {
            conn: ConnId(i),
            protocol: Protocol::Ws2017,
            peer: peer.into(),
        };
        server.handle(now, input);
    }
    while server.poll_output().is_some() {}
    let mut deliveries = 0;
    let start = Clock::now();
    for i in 0..k {
        let bytes = Bytes::from(format!("uname user{i}\r\n"));
        server.handle(
            now,
            Input::Received {
                conn: ConnId(i),
                bytes,
            },
        );
        while let Some(output) = server.poll_output() {
            if let Output::Transmit { conn, bytes, .. } = output {
                if conn != ConnId(i) {
                    deliveries += 1;
                }
                black_box(bytes);
            }
        }
    }
    (deliveries, start.elapsed())
}
