//! What a ws2017 `uname` for a taken name costs the core when many of its numbered
//! variants are taken too: N users `u0`..`u<N-1>` online (default 5000), then `uname u1`
//! from another client 100 times (`u12`, `u13`, ... `u1101` are all taken):
//! `cargo run --release -p switchboard-bench --example suggest [N]`.

use bytes::Bytes;
use switchboard_bench::core::{count_arg, crowd, drain, drain_with, us_per_call};
use switchboard_proto::{ConnId, Peer, Protocol};

fn main() {
    let n = count_arg(5000);
    let (mut pump, now) = crowd(n);
    let me = ConnId(n + 1);
    let peer = Peer::Net(([10, 200, 0, 1], 1).into());
    pump.accepted(now, me, Protocol::Ws2017, peer);
    drain(&mut pump, now);
    let mut last = Bytes::new();
    let us = us_per_call(100, || {
        pump.received(now, me, Bytes::from_static(b"uname u1\r\n"));
        drain_with(&mut pump, now, |_, bytes| last = bytes.clone());
    });
    let reply = String::from_utf8_lossy(&last);
    println!(
        "{n} online: {us:.1} us per taken uname ({})",
        reply.trim_end()
    );
}
