//! What an arsc `userlist` costs the core in a room of N members (default 1000, the
//! default `arsc.max_room_members`), nothing changing between requests: `cargo run
//! --release -p switchboard-bench --example userlist [N]`. The order is kept while the
//! room stands still (docs/performance-log.md, "Unmetered requests at a bounded cost").

use bytes::Bytes;
use switchboard_bench::core::{count_arg, drain, us_per_call};
use switchboard_bench::core_arsc::crowd_in;
use switchboard_proto::ConnId;

fn main() {
    let n = count_arg(1000);
    let mut crowd = match crowd_in(n, |_| "lounge".to_owned()) {
        Ok(crowd) => crowd,
        Err(e) => {
            eprintln!("userlist: {e}");
            std::process::exit(1);
        }
    };
    let mut request = b"<arscrequest><type>userlist</type><sid>".to_vec();
    request.extend_from_slice(&crowd.sids[0]);
    request.extend_from_slice(b"</sid></arscrequest>\n");
    let request = Bytes::from(request);
    let now = crowd.now;
    let us = us_per_call(200, || {
        crowd.pump.received(now, ConnId(0), request.clone());
        drain(&mut crowd.pump, now);
    });
    println!("{n} in the room: {us:.1} us per userlist");
}
