//! What a ws2017 `cgetu` costs the core with N users online (default 5000), nothing else
//! changing between requests: `cargo run --release -p switchboard-bench --example listing
//! [N]`. The answer is kept encoded while the lobby stands still (docs/performance-log.md,
//! "Unmetered requests at a bounded cost").

use bytes::Bytes;
use switchboard_bench::core::{count_arg, crowd, drain, us_per_call};
use switchboard_proto::ConnId;

fn main() {
    let n = count_arg(5000);
    let (mut pump, now) = crowd(n);
    let us = us_per_call(200, || {
        pump.received(now, ConnId(0), Bytes::from_static(b"cgetu\r\n"));
        drain(&mut pump, now);
    });
    println!("{n} online: {us:.1} us per cgetu");
}
