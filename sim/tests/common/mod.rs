//! What the protocol tests of the main simulated world share: the seeds to run, taken
//! from the environment, and the counters of a clean run of them all.

use switchboard_sim::{run_seed, Counters, Overrides};

/// A number from the environment variable `name`, or `default`.
fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `SWITCHBOARD_SIM_RUNS` seeds (default 24) from `SWITCHBOARD_SIM_SEED` (default 1)
/// with `overrides`; panics with the first failure, else returns the counters of all.
pub fn run_seeds_from_env(overrides: &Overrides) -> Counters {
    let base = env("SWITCHBOARD_SIM_SEED", 1);
    let runs = env("SWITCHBOARD_SIM_RUNS", 24);
    let mut total = Counters::default();
    for seed in base..base + runs {
        let outcome = run_seed(seed, overrides);
        if let Some(failure) = outcome.failure {
            panic!("{failure}");
        }
        total.add(&outcome.counters);
    }
    total
}
