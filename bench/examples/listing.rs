//! What a ws2017 `cgetu` costs the core with N users online (default 5000), nothing else
//! changing between requests: `cargo run --release -p switchboard-bench --example listing
//! [N]`. The answer is kept encoded while the lobby stands still (docs/performance.md,
//! "Unmetered requests at a bounded cost").

use bytes::Bytes;
use switchboard_bench::core::{crowd, drain};
use switchboard_proto::ConnId;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let (mut pump, now) = crowd(n);
    let rounds = 200;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        pump.received(now, ConnId(0), Bytes::from_static(b"cgetu\r\n"));
        drain(&mut pump, now);
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!("{n} online: {us:.1} us per cgetu");
}
