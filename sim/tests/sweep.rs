//! The short sweep `cargo test` runs: a few hundred seeds, every invariant after every
//! step, crashes and storage faults included. `SWITCHBOARD_SIM_SEED` moves the first
//! seed and `SWITCHBOARD_SIM_RUNS` sets how many seeds (default 300), for longer sweeps:
//!
//! ```text
//! SWITCHBOARD_SIM_SEED=5000 SWITCHBOARD_SIM_RUNS=2000 cargo test -p switchboard-sim --release --test sweep
//! ```
//!
//! A failure prints the seed, the step, the trace and the command that replays it.

use switchboard_sim::{run_seed, Counters, Failure, Overrides};

/// Four parts, so the test threads share the sweep.
const PARTS: u64 = 4;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The test budget: small populations, short safety phases.
fn overrides() -> Overrides {
    Overrides {
        max_clients: Some(24),
        max_virtual_secs: Some(120),
        ..Overrides::default()
    }
}

/// Runs part `part` of the sweep; returns what it exercised.
fn sweep_part(part: u64) -> Counters {
    let base = env("SWITCHBOARD_SIM_SEED", 0);
    let runs = env("SWITCHBOARD_SIM_RUNS", 300);
    let (from, to) = (base + runs * part / PARTS, base + runs * (part + 1) / PARTS);
    let mut counters = Counters::default();
    let mut failures: Vec<Failure> = Vec::new();
    for seed in from..to {
        let outcome = run_seed(seed, &overrides());
        counters.add(&outcome.counters);
        failures.extend(outcome.failure);
    }
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("{f}\n");
        }
        let seeds: Vec<String> = failures.iter().map(|f| f.seed.to_string()).collect();
        panic!("seeds {from}..{to}: failing seeds {}", seeds.join(" "));
    }
    counters
}

#[test]
fn sweep_part_1() {
    sweep_part(0);
}

#[test]
fn sweep_part_2() {
    sweep_part(1);
}

#[test]
fn sweep_part_3() {
    sweep_part(2);
}

/// The last part also proves the fault model and the rare branches are reached, so a
/// clean sweep means something: crashes (some in the middle of a commit whose batch
/// lands), restarts with offline messages stored, failing commits, cuts, stalls,
/// refused connections, ping timeouts, slow readers, kicks and IP bans, stored messages,
/// full mailboxes and failed effects.
#[test]
fn sweep_part_4_and_the_fault_model_is_exercised() {
    let c = sweep_part(3);
    let marks = [
        ("crashes", c.crashes),
        ("crashes whose commit landed", c.crash_landed),
        ("restarts with mail", c.restarts_with_mail),
        ("failed commits", c.commit_failures),
        ("cuts", c.cuts),
        ("stalls", c.stalls),
        ("refused connections", c.refused),
        ("ping timeouts", c.closes[1]),
        ("slow readers closed", c.closes[2]),
        ("kicks", c.closes[3]),
        ("banned addresses refused", c.closes[4]),
        ("messages relayed", c.relayed),
        ("messages stored", c.stored),
        ("full mailboxes", c.mailbox_full),
        ("failed effects", c.effects_failed),
        ("final-round messages", c.final_messages),
    ];
    for (what, n) in marks {
        assert!(n > 0, "the sweep never exercised {what}: {c:?}");
    }
}
