//! The invariants can fail: with a known bug planted in the core (switchboard-proto's
//! `planted-bugs` feature), a short sweep finds a failing seed, the failure names the
//! invariant that caught it, replaying the printed seed and options fails the same way
//! at the same step, and the same seed without the bug runs clean.

use switchboard_proto::{Config, PlantedBug};
use switchboard_sim::{run_seed, Outcome, Overrides, Plant};

fn drop_relayed(c: &mut Config) {
    c.planted_bug = Some(PlantedBug::DropRelayedMessage);
}

fn unpersisted_account(c: &mut Config) {
    c.planted_bug = Some(PlantedBug::UnpersistedAccount);
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

/// Replays a failing run from what its report prints, and checks the same seed is clean
/// without the bug.
fn replays(outcome: &Outcome, plant: Plant) {
    let failure = outcome.failure.as_ref().expect("a failure");
    let printed = Overrides {
        clients: Some(outcome.options.clients),
        virtual_secs: Some(outcome.options.virtual_secs),
        plant: Some(plant),
        ..Overrides::default()
    };
    let replay = format!(
        "cargo run -p switchboard-sim --release --features planted-bugs -- --seed {} --clients {} --virtual-secs {} --plant {}",
        failure.seed, outcome.options.clients, outcome.options.virtual_secs, plant.name
    );
    assert_eq!(failure.replay, replay);
    let again = run_seed(failure.seed, &printed);
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
    if let Some(f) = run_seed(failure.seed, &clean).failure {
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
