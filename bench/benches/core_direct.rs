//! The core alone: direct messages between logged-in ws2017 clients routed through the
//! `Pump` in memory (no sockets, no runtime), every output drained and reported written
//! as a runtime would. The target: at least 2 M routed messages a second per core.
//!
//! Run: `cargo bench -p switchboard-bench --bench core_direct`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchboard_bench::core::{crowd, reads, round};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("core_direct");
    for &(clients, per_read) in &[(2000u64, 1usize), (2000, 8)] {
        let (mut pump, now) = crowd(clients);
        let reads = reads(clients, per_read);
        group.throughput(Throughput::Elements(clients * per_read as u64));
        group.bench_function(
            BenchmarkId::new(format!("{clients}_clients"), format!("{per_read}_per_read")),
            |b| b.iter(|| round(&mut pump, now, &reads)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
