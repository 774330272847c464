//! What a room post costs per recipient: `c` arsc clients in one room, `s` of them post
//! `m` times each; every post reaches all `c` members. Times `Server::handle` for the
//! posts plus draining their outputs, as a runtime does.
//!
//! Run: `cargo bench -p switchboard-proto --bench arsc_room` (add `-- C S M`, default
//! `1000 10 200`).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant as Clock;

use bytes::Bytes;
use switchboard_proto::{
    Config, ConnId, Input, Instant, Limits, Now, Output, Protocol, Server, State,
};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (c, s, m) = match args[..] {
        [c, s, m, ..] => (c, s, m),
        _ => (1000, 10, 200),
    };
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
    let mut sids = Vec::new();
    for i in 0..c {
        let ip = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let peer: SocketAddr = (ip, 40_000).into();
        let conn = ConnId(i as u64);
        let protocol = Protocol::Arsc;
        server.handle(
            now,
            Input::Accepted {
                conn,
                protocol,
                peer: peer.into(),
            },
        );
        let connect = format!(
            "<arscrequest><type>connect</type><user>u{i}</user><room>bench</room></arscrequest>"
        );
        server.handle(
            now,
            Input::Received {
                conn,
                bytes: Bytes::from(connect),
            },
        );
        while let Some(output) = server.poll_output() {
            if let Output::Transmit {
                conn: to, bytes, ..
            } = output
            {
                let text = String::from_utf8_lossy(&bytes);
                if let Some(rest) =
                    text.strip_prefix("<arscrespond><type>connect</type><status>ok</status><sid>")
                {
                    if to == conn {
                        sids.push(rest[..32].to_owned());
                    }
                }
            }
        }
    }
    assert_eq!(sids.len(), c, "every client connected");
    let mut deliveries = 0u64;
    let start = Clock::now();
    for n in 0..m {
        for (i, sid) in sids.iter().enumerate().take(s) {
            let post = format!("<arscrequest><type>post</type><sid>{sid}</sid><content>message {n} from {i}</content></arscrequest>");
            let conn = ConnId(i as u64);
            server.handle(
                now,
                Input::Received {
                    conn,
                    bytes: Bytes::from(post),
                },
            );
            while let Some(output) = server.poll_output() {
                if let Output::Transmit { bytes, .. } = output {
                    if bytes.starts_with(b"<arscmessage>") {
                        deliveries += 1;
                    }
                    black_box(bytes);
                }
            }
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(deliveries, (c * s * m) as u64);
    println!(
        "arsc room fan-out C={c} S={s} M={m}: {deliveries} deliveries in {:.1} ms, {:.1} ns per delivery",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / deliveries as f64
    );
}
