//! The core alone: direct messages between logged-in ws2017 clients routed through the
//! `Pump` in memory (no sockets, no runtime), every output drained and reported written
//! as a runtime would. The target: at least 2 M routed messages a second per core.
//!
//! Run: `cargo bench -p switchboard-bench --bench core_direct`.

use std::hint::black_box;
use std::net::SocketAddr;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchboard_proto::{
    Action, Config, ConnId, Instant, Limits, Now, Peer, Protocol, Pump, Server, State,
};

/// A pump with `clients` logged-in ws2017 clients `u0`, `u1`, ... (pairs talk to each
/// other), limits out of the way, every output of the logins drained.
fn crowd(clients: u64) -> (Pump, Now) {
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
fn drain(pump: &mut Pump, now: Now) -> usize {
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

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("core_direct");
    for &(clients, per_read) in &[(2000u64, 1usize), (2000, 8)] {
        let (mut pump, now) = crowd(clients);
        // One read's worth of chat lines per client, sender u{i} to its partner u{i^1}.
        let reads: Vec<Bytes> = (0..clients)
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
            .collect();
        group.throughput(Throughput::Elements(clients * per_read as u64));
        group.bench_function(
            BenchmarkId::new(format!("{clients}_clients"), format!("{per_read}_per_read")),
            |b| {
                b.iter(|| {
                    let mut transmits = 0;
                    for (i, bytes) in reads.iter().enumerate() {
                        pump.received(now, ConnId(i as u64), bytes.clone());
                        transmits += drain(&mut pump, now);
                    }
                    transmits
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
