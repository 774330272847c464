//! A seed is a run: running it twice gives the same inputs and outputs at every step,
//! and a difference is reported at the first step where it appears.

use switchboard_sim::{check_determinism, ByteTape, Choices, Overrides, Sim, SimRng, Tape};

fn small() -> Overrides {
    Overrides {
        max_clients: Some(12),
        max_virtual_secs: Some(40),
        ..Overrides::default()
    }
}

#[test]
fn every_step_is_the_same_twice() {
    for seed in [1, 2, 3, 1_000_003] {
        let outcome = check_determinism(seed, &small());
        if let Some(f) = outcome.failure {
            panic!("{f}");
        }
    }
}

#[test]
fn a_divergence_is_named_at_its_first_step() {
    let mut first = Sim::new(9, &small());
    first.record_trail();
    let outcome = first.run();
    assert!(outcome.failure.is_none());
    let mut trail = first.take_trail();
    assert!(trail.len() > 500);
    trail[321] ^= 1;
    let mut second = Sim::new(9, &small());
    second.expect_trail(trail);
    let failure = second.run().failure.expect("the doctored trail diverges");
    assert_eq!(failure.violation.invariant, "runs_are_deterministic");
    assert_eq!(failure.step, 321);
}

/// A fuzzer's bytes drive a whole run: any byte string is a valid run, and the same
/// bytes are the same run.
#[test]
fn byte_tapes_drive_whole_runs() {
    let mut rng = SimRng::new(77);
    for len in [0usize, 64, 4096, 65_536] {
        let bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        let a = Sim::with_source(Tape::new(bytes.clone()), len as u64, &small()).run();
        if let Some(f) = &a.failure {
            panic!("tape of {len} bytes:\n{f}");
        }
        let b = Sim::with_source(Tape::new(bytes), len as u64, &small()).run();
        assert_eq!(a.hash, b.hash);
    }
    let mut tape = ByteTape::new(vec![0xff; 8]);
    assert_eq!(tape.next_u64(), u64::MAX);
}

/// The simulator's binary, run in fresh processes: a run must not depend on anything a
/// process draws for itself (std's `RandomState`, addresses, thread ids).
const SIM: &str = env!("CARGO_BIN_EXE_switchboard-sim");

/// Runs the binary with `args`; returns its stdout and whether it exited 0.
fn in_process_of_its_own(args: &[&str]) -> (String, bool) {
    let output = std::process::Command::new(SIM)
        .args(args)
        .output()
        .expect("run the switchboard-sim binary");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (stdout, output.status.success())
}

/// The `hash=` of the summary line (`seed=N ok steps=... hash=H ...`) a run prints.
fn printed_hash(stdout: &str) -> u64 {
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("seed=") && l.contains(" steps="))
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"));
    let hex = summary
        .split_whitespace()
        .find_map(|word| word.strip_prefix("hash="))
        .unwrap_or_else(|| panic!("no hash in {summary:?}"));
    u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("hash {hex:?}"))
}

const SEED_ARGS: [&str; 6] = ["--seed", "21", "--clients", "10", "--virtual-secs", "30"];

fn seed_overrides() -> Overrides {
    Overrides {
        clients: Some(10),
        virtual_secs: Some(30),
        ..Overrides::default()
    }
}

/// The same seed in two fresh processes, and in this one, ends with the same hash.
#[test]
fn a_seed_ends_with_the_same_hash_in_separate_processes() {
    let (first, ok) = in_process_of_its_own(&SEED_ARGS);
    assert!(ok, "{first}");
    let (second, ok) = in_process_of_its_own(&SEED_ARGS);
    assert!(ok, "{second}");
    assert_eq!(printed_hash(&first), printed_hash(&second));
    let here = switchboard_sim::run_seed(21, &seed_overrides());
    assert_eq!(printed_hash(&first), here.hash);
}

/// A broadcast order drawn once per process (a planted bug) passes the in-process
/// run-twice check, and two processes catch it.
#[test]
fn an_order_drawn_once_per_process_is_caught_across_processes() {
    use switchboard_proto::{Config, PlantedBug};
    fn plant(c: &mut Config) {
        c.planted_bug = Some(PlantedBug::ProcessRandomBroadcastOrder);
    }
    let overrides = Overrides {
        plant: Some(switchboard_sim::Plant {
            name: "random-broadcast-order",
            apply: plant,
        }),
        ..seed_overrides()
    };
    let outcome = check_determinism(21, &overrides);
    assert!(
        outcome.failure.is_none(),
        "the in-process check cannot see it: {:?}",
        outcome.failure
    );
    let args: Vec<&str> = SEED_ARGS
        .iter()
        .copied()
        .chain(["--plant", "random-broadcast-order"])
        .collect();
    let (first, _) = in_process_of_its_own(&args);
    let (second, _) = in_process_of_its_own(&args);
    assert_ne!(
        printed_hash(&first),
        printed_hash(&second),
        "two processes agreed on an order each drew for itself"
    );
}
