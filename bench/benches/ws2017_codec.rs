//! ws2017 parse throughput against a bare memchr line scan of the same bytes: how far the
//! codec (framing plus parsing into a `Command`) is from the cost of finding the lines.
//!
//! Run: `cargo bench -p switchboard-bench --bench ws2017_codec`.
//!
//! proto keeps its codec private, so its source files are compiled in here as they are
//! (`#[path]`): the benchmark measures exactly the code the server runs.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[allow(dead_code)]
#[path = "../../proto/src/frame/mod.rs"]
mod frame;

#[allow(dead_code)]
#[path = "../../proto/src/protocol/ws2017/codec.rs"]
mod codec;

#[allow(dead_code)]
#[path = "../../proto/src/protocol/scan.rs"]
mod scan;

/// Where the codec finds the byte scan it shares with the other protocols' encoders.
mod protocol {
    pub(crate) use super::scan;
}

/// Frames and parses every line of `input`, as the server's ws2017 session does;
/// returns how many were commands.
fn parse_all(input: &[u8]) -> usize {
    let mut buf = BytesMut::from(input);
    let mut framer = frame::lines::LineFramer::new(8192);
    let mut commands = 0;
    while let Some(line) = framer.next_line(&mut buf) {
        if let frame::lines::Line::Complete { len, consumed } = line {
            if codec::parse(&buf[..len]).is_ok() {
                commands += 1;
            }
            bytes::Buf::advance(&mut buf, consumed);
        }
    }
    commands
}

/// 64 KiB of what a busy client sends: chat lines of varied length, some pings and
/// receipts, CRLF endings.
fn traffic() -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0u32;
    while out.len() < 64 * 1024 {
        let line = match i % 8 {
            0 => format!("chatr user{} user{}\r\n", i % 97, i % 89),
            1 => "cpong\r\n".to_string(),
            _ => format!(
                "chatm user{} user{} 'message number {i} {}'\r\n",
                i % 97,
                i % 89,
                "x".repeat((i % 40) as usize)
            ),
        };
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    let input = traffic();
    let lines = memchr::memchr_iter(b'\n', &input).count();
    let mut group = c.benchmark_group("ws2017_parse");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("memchr_line_scan", |b| {
        b.iter(|| {
            let mut start = 0;
            let mut n = 0;
            for end in memchr::memchr_iter(b'\n', black_box(&input)) {
                n += end - start;
                start = end + 1;
            }
            black_box(n)
        })
    });
    group.bench_function("codec", |b| {
        b.iter(|| {
            let n = parse_all(black_box(&input));
            assert_eq!(n, lines);
            n
        })
    });
    group.bench_function("copy_into_bytesmut", |b| {
        b.iter(|| black_box(BytesMut::from(black_box(&input[..]))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
