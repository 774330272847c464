//! The invariants can fail: with a known bug planted in the core (switchboard-proto's
//! `planted-bugs` feature), a short sweep finds a failing seed, the failure names the
//! invariant that caught it, the printed replay command (run in a fresh process, and
//! parsed here) fails the same way at the same step, and the same seed without the bug
//! runs clean.

use std::process::Command;

use switchboard_proto::{Config, PlantedBug};
use switchboard_sim::{run_seed, Failure, Outcome, Overrides, Plant};

fn drop_relayed(c: &mut Config) {
    c.planted_bug = Some(PlantedBug::DropRelayedMessage);
}

fn unpersisted_account(c: &mut Config) {
    c.planted_bug = Some(PlantedBug::UnpersistedAccount);
}

fn early_listing(c: &mut Config) {
    c.planted_bug = Some(PlantedBug::EarlyListing);
}

/// Sweeps seeds until the planted bug is caught; returns the failing run.
fn caught(plant: Plant) -> Outcome {
    let overrides = Overrides {
        max_clients: Some(16),
        max_virtual_secs: Some(60),
        plant: Some(plant),
        ..Overrides::default()
    };
    for seed in 0..50 {
        let outcome = run_seed(seed, &overrides);
        if outcome.failure.is_some() {
            return outcome;
        }
    }
    panic!("no seed in 0..50 caught {}", plant.name);
}

/// The simulator's binary, for replays in a fresh process.
const SIM: &str = env!("CARGO_BIN_EXE_switchboard-sim");

/// The command a report prints, split into cargo's part and the binary's arguments.
fn printed_command(failure: &Failure) -> Vec<String> {
    let (cargo, args) = failure
        .replay
        .split_once(" -- ")
        .unwrap_or_else(|| panic!("no `--` in the replay: {:?}", failure.replay));
    assert_eq!(
        cargo, "cargo run -p switchboard-sim --release --features planted-bugs",
        "the replay does not run the simulator with the planted bugs"
    );
    args.split_whitespace().map(str::to_owned).collect()
}

/// Reads `--seed`, `--clients`, `--virtual-secs` and `--plant` from printed arguments,
/// knowing nothing of how the report wrote them.
fn parse_printed(args: &[String], plant: Plant) -> (u64, Overrides) {
    let mut seed = None;
    let mut overrides = Overrides::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| panic!("{flag} without a value"));
        match flag.as_str() {
            "--seed" => seed = value.parse().ok(),
            "--clients" => overrides.clients = value.parse().ok(),
            "--clients-ims" => overrides.clients_ims = value.parse().ok(),
            "--clients-arsc" => overrides.clients_arsc = value.parse().ok(),
            "--clients-opcode" => overrides.clients_opcode = value.parse().ok(),
            "--virtual-secs" => overrides.virtual_secs = value.parse().ok(),
            "--plant" => {
                assert_eq!(value, plant.name);
                overrides.plant = Some(plant);
            }
            other => panic!("the replay has an unexpected flag {other}"),
        }
    }
    (seed.expect("the replay names a seed"), overrides)
}

/// Replays a failing run from the command its report prints: in a fresh process, as
/// printed, and in this one from the printed arguments; both must fail the same way at
/// the same step. Then the same seed without the bug must be clean.
fn replays(outcome: &Outcome, plant: Plant) {
    let failure = outcome.failure.as_ref().expect("a failure");
    let args = printed_command(failure);

    let output = Command::new(SIM)
        .args(&args)
        .output()
        .expect("run the switchboard-sim binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "the replay fails:\n{stdout}");
    // The fresh process drew every option the same, not only the printed ones.
    assert!(
        stdout.starts_with(&failure.options),
        "the replay ran with other options:\n{stdout}\nfirst:\n{}",
        failure.options
    );
    let lines: Vec<&str> = stdout.lines().collect();
    // The last line with `prefix` (the report's closing lines repeat its first).
    let at = |prefix: &str| {
        lines
            .iter()
            .rev()
            .find(|l| l.starts_with(prefix))
            .copied()
            .unwrap_or_else(|| panic!("no {prefix:?} line in the replay:\n{stdout}"))
    };
    assert_eq!(
        at("invariant violated: "),
        format!("invariant violated: {}", failure.violation.invariant)
    );
    assert!(
        lines.contains(&failure.violation.detail.lines().next().unwrap_or("")),
        "the replay saw something else:\n{stdout}\nfirst:\n{failure}"
    );
    assert_eq!(
        at(&format!("seed={} step={} at=", failure.seed, failure.step)),
        format!(
            "seed={} step={} at={}",
            failure.seed, failure.step, failure.at
        )
    );
    assert_eq!(
        at(&format!(
            "seed={} step={} invariant=",
            failure.seed, failure.step
        )),
        format!(
            "seed={} step={} invariant={}",
            failure.seed, failure.step, failure.violation.invariant
        )
    );
    assert_eq!(at("replay: "), format!("replay: {}", failure.replay));

    let (seed, printed) = parse_printed(&args, plant);
    let again = run_seed(seed, &printed);
    let again_failure = again.failure.expect("the replay fails too");
    assert!(
        again_failure.same_as(failure),
        "the replay failed differently:\n{again_failure}\nfirst:\n{failure}"
    );
    assert!(!failure.trace.is_empty(), "the report carries the trace");
    let clean = Overrides {
        plant: None,
        ..printed
    };
    if let Some(f) = run_seed(seed, &clean).failure {
        panic!("the seed fails without the bug too:\n{f}");
    }
}

#[test]
fn a_relayed_message_dropped_by_the_core_is_caught_and_replays() {
    let plant = Plant {
        name: "drop-relayed",
        apply: drop_relayed,
    };
    let outcome = caught(plant);
    let failure = outcome.failure.as_ref().unwrap();
    assert_eq!(
        failure.violation.invariant, "relayed_messages_are_delivered",
        "{failure}"
    );
    replays(&outcome, plant);
}

#[test]
fn an_acknowledged_account_left_out_of_its_batch_is_caught_and_replays() {
    let plant = Plant {
        name: "unpersisted-account",
        apply: unpersisted_account,
    };
    let outcome = caught(plant);
    let failure = outcome.failure.as_ref().unwrap();
    assert!(
        [
            "acknowledgements_wait_on_their_change",
            "acknowledged_changes_are_committed",
            "acknowledged_changes_survive_restarts"
        ]
        .contains(&failure.violation.invariant),
        "{failure}"
    );
    replays(&outcome, plant);
}

#[test]
fn a_listing_answered_before_its_changes_commit_is_caught_and_replays() {
    let plant = Plant {
        name: "early-listing",
        apply: early_listing,
    };
    let outcome = caught(plant);
    let failure = outcome.failure.as_ref().unwrap();
    assert_eq!(
        failure.violation.invariant, "listings_wait_for_every_change",
        "{failure}"
    );
    replays(&outcome, plant);
}
