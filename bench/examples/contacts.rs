//! What an opcode `120` (every account, "contacts") costs the core with N accounts
//! (default 2000, each logged in), nothing changing between requests: `cargo run
//! --release -p switchboard-bench --example contacts [N]`. The answer is kept encoded
//! while no account comes or goes (docs/performance-log.md, "Unmetered requests at a
//! bounded cost").

use bytes::Bytes;
use switchboard_bench::core::{count_arg, drain, us_per_call};
use switchboard_bench::core_opcode::crowd;
use switchboard_proto::ConnId;

fn main() {
    let n = count_arg(2000);
    let mut crowd = crowd(n);
    let us = us_per_call(200, || {
        (crowd.pump).received(crowd.now, ConnId(0), Bytes::from_static(b"120\r\n"));
        drain(&mut crowd.pump, crowd.now);
    });
    println!("{n} accounts: {us:.1} us per contacts listing");
}
