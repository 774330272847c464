//! What an opcode `120` (every account, "contacts") costs the core with N accounts
//! (default 2000, each logged in), nothing changing between requests: `cargo run
//! --release -p switchboard-bench --example contacts [N]`. The answer is kept encoded
//! while no account comes or goes (docs/performance.md, "Unmetered requests at a
//! bounded cost").

use bytes::Bytes;
use switchboard_bench::core::drain;
use switchboard_bench::core_opcode::crowd;
use switchboard_proto::ConnId;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut crowd = crowd(n);
    let rounds = 200;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        (crowd.pump).received(crowd.now, ConnId(0), Bytes::from_static(b"120\r\n"));
        drain(&mut crowd.pump, crowd.now);
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!("{n} accounts: {us:.1} us per contacts listing");
}
