//! Running seeds: one, one twice (the determinism check), or a sweep over a range, on
//! several threads. Threads only run independent simulations side by side; inside one
//! simulation there is no thread, socket or clock.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::options::Overrides;
use crate::report::Failure;
use crate::sim::{Counters, Outcome, Sim};

/// Runs `seed` once.
pub fn run_seed(seed: u64, overrides: &Overrides) -> Outcome {
    Sim::new(seed, overrides).run()
}

/// Runs `seed` twice, comparing the rolling hash of every input and output after every
/// step; the second run stops with `runs_are_deterministic` at the first step whose hash
/// differs. Returns the second run's outcome (the first's, if both end the same way).
pub fn check_determinism(seed: u64, overrides: &Overrides) -> Outcome {
    let mut first = Sim::new(seed, overrides);
    first.record_trail();
    let a = first.run();
    let trail = first.take_trail();
    let mut second = Sim::new(seed, overrides);
    second.expect_trail(trail);
    let b = second.run();
    match (&a.failure, &b.failure) {
        (Some(fa), Some(fb)) if fa.same_as(fb) => a,
        (None, None) if a.hash == b.hash => a,
        _ => b,
    }
}

/// The result of a sweep.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Seeds run.
    pub runs: u64,
    /// Failures, by seed.
    pub failures: Vec<Failure>,
    /// Everything the runs exercised, added up.
    pub counters: Counters,
    /// Virtual milliseconds simulated, added up.
    pub virtual_ms: u64,
}

/// Runs every seed of `seeds` on `jobs` threads; `each` sees every outcome as it ends
/// (in completion order); the report lists failures by seed.
pub fn sweep(
    seeds: Range<u64>,
    overrides: &Overrides,
    jobs: usize,
    each: &(dyn Fn(&Outcome) + Sync),
) -> SweepReport {
    let next = AtomicU64::new(seeds.start);
    let report = Mutex::new(SweepReport::default());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    break;
                }
                let outcome = run_seed(seed, overrides);
                each(&outcome);
                let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
                r.runs += 1;
                r.virtual_ms += outcome.virtual_ms;
                r.counters.add(&outcome.counters);
                if let Some(f) = outcome.failure {
                    r.failures.push(f);
                }
            });
        }
    });
    let mut report = report.into_inner().unwrap_or_else(|e| e.into_inner());
    report.failures.sort_by_key(|f| f.seed);
    report
}
