//! What a ws2017 login storm costs the core: N connections accepted at once (default
//! 1000), then each sends its `uname`, the logins handed out in batches of 256 as a
//! runtime reads them, every login announced to every connection: `cargo run --release
//! -p switchboard-bench --example storm [N]`. Under `valgrind --tool=callgrind
//! --toggle-collect='storm::logins'` the instructions per announcement are a figure the
//! machine's load does not move.

use std::hint::black_box;

use bytes::Bytes;
use switchboard_bench::core::{count_arg, drain_with, peer, unlimited};
use switchboard_proto::{ConnId, Instant, Now, Protocol, Pump, Server, State};

/// Logins handed to the core before its transmits are taken, as a runtime's turn does.
const BATCH: u64 = 256;

fn main() {
    let n = count_arg(1000);
    let mut pump = Pump::new(Server::new(unlimited(), State::default()));
    let now = Now::at(Instant::ZERO, 1_700_000_000_000);
    for i in 0..n {
        pump.accepted(now, ConnId(i), Protocol::Ws2017, peer(i));
    }
    drain_with(&mut pump, now, |_, bytes| {
        black_box(bytes);
    });
    let unames: Vec<Bytes> = (0..n)
        .map(|i| Bytes::from(format!("uname s{i}\r\n")))
        .collect();
    let started = std::time::Instant::now();
    let (bytes, transmits) = logins(&mut pump, now, &unames);
    let took = started.elapsed();
    // Each login: its answer, and its announcement to every other connection.
    let lines = n * n;
    println!(
        "{n} logins at once: {:.1} ms, {:.1} ns per announced line, {transmits} transmits, {bytes} bytes",
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e9 / lines as f64,
    );
}

/// Feeds every `uname`, draining after each batch; returns the bytes and transmits.
#[inline(never)]
fn logins(pump: &mut Pump, now: Now, unames: &[Bytes]) -> (usize, usize) {
    let mut bytes = 0;
    let mut transmits = 0;
    for (i, uname) in unames.iter().enumerate() {
        pump.received(now, ConnId(i as u64), uname.clone());
        if (i as u64 + 1).is_multiple_of(BATCH) || i + 1 == unames.len() {
            pump.begin_batch();
            transmits += drain_with(pump, now, |_, b| bytes += b.len());
        }
    }
    (bytes, transmits)
}
