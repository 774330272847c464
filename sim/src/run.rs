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
/// differs. Returns the first run's outcome if both end the same way (same failure, or
/// both clean with the same steps, virtual time and hash); otherwise the second's, with
/// a `runs_are_deterministic` failure if it had none.
///
/// Both runs share one process, so this cannot see what differs only between processes
/// (an order drawn once per process, say): run the seed in two processes and compare
/// the printed hashes for that.
pub fn check_determinism(seed: u64, overrides: &Overrides) -> Outcome {
    let mut first = Sim::new(seed, overrides);
    first.record_trail();
    let a = first.run();
    let trail = first.take_trail();
    let mut second = Sim::new(seed, overrides);
    second.expect_trail(trail);
    let b = second.run();
    judge(a, b)
}

/// The verdict on two runs of one seed (see [`check_determinism`]).
fn judge(a: Outcome, mut b: Outcome) -> Outcome {
    let end = |o: &Outcome| (o.counters.steps, o.virtual_ms, o.hash);
    match (&a.failure, &b.failure) {
        (Some(fa), Some(fb)) if fa.same_as(fb) => a,
        (None, None) if end(&a) == end(&b) => a,
        (Some(_), Some(_)) | (None, Some(_)) => b,
        (Some(fa), None) => {
            let detail = format!(
                "the first run failed ({}) at step {}, the second ran clean",
                fa.violation.invariant, fa.step
            );
            b.failure = Some(divergence(&b, detail));
            b
        }
        (None, None) => {
            let detail = format!(
                "both runs passed but ended differently: steps, virtual ms and hash \
                 {:?} then {:?}",
                end(&a),
                end(&b)
            );
            b.failure = Some(divergence(&b, detail));
            b
        }
    }
}

/// A `runs_are_deterministic` failure at the end of run `o`.
fn divergence(o: &Outcome, detail: String) -> Failure {
    Failure {
        seed: o.seed,
        step: o.counters.steps,
        at: format!("{}ms", o.virtual_ms),
        violation: crate::report::Violation::new("runs_are_deterministic", detail),
        options: o.options.to_string(),
        trace: Vec::new(),
        replay: o.options.replay_command() + " --check-determinism",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Overrides {
        Overrides {
            clients: Some(4),
            virtual_secs: Some(10),
            ..Overrides::default()
        }
    }

    /// Two clean runs that end with different hashes are a failure, whatever their
    /// step-by-step trails said (a second run that stops early matches a prefix).
    #[test]
    fn two_clean_runs_with_different_ends_fail_the_check() {
        let a = Sim::new(3, &small()).run();
        let b = Sim::new(3, &small()).run();
        assert!(a.failure.is_none() && b.failure.is_none());
        assert!(judge(a.clone(), b).failure.is_none(), "same run, same end");

        let short = Sim::new(3, &small()).run_until(a.counters.steps / 2);
        assert!(short.failure.is_none());
        assert_ne!(short.hash, a.hash);
        let verdict = judge(a.clone(), short).failure.expect("a divergence");
        assert_eq!(verdict.violation.invariant, "runs_are_deterministic");
        assert_eq!(verdict.seed, 3);

        let mut other = a.clone();
        other.hash ^= 1;
        let verdict = judge(a.clone(), other).failure.expect("a divergence");
        assert_eq!(verdict.violation.invariant, "runs_are_deterministic");
        assert!(
            verdict.to_string().contains("--check-determinism"),
            "{verdict}"
        );
    }

    /// A first run that failed and a second that did not is a failure too.
    #[test]
    fn a_failure_that_does_not_come_back_fails_the_check() {
        let clean = Sim::new(3, &small()).run();
        let mut failed = clean.clone();
        failed.failure = Some(divergence(&clean, "planted".into()));
        let verdict = judge(failed, clean).failure.expect("a divergence");
        assert_eq!(verdict.violation.invariant, "runs_are_deterministic");
        assert!(verdict.violation.detail.contains("ran clean"), "{verdict}");
    }
}
