//! opcode clients in the main simulation, weighted up: seeded worlds where opcode clients
//! make contacts with users of every protocol, open chats, send messages with and without
//! media to ims, arsc and opcode users and to ws2017 nicks that wrote to them, and are
//! written to, through every fault (crashes with restart, storage failures, cuts, stalls),
//! with every invariant checked after every step: a `220` reaches only its chat's members,
//! every acknowledged message is delivered exactly once (a stored one at the next login on
//! any protocol), media comes back as sent. `SWITCHBOARD_SIM_SEED` moves the first seed and
//! `SWITCHBOARD_SIM_RUNS` sets how many (default 24). A planted bug is caught.

use switchboard_proto::{Config, PlantedBug};
use switchboard_sim::{run_seed, Overrides, Plant, Sim};

mod common;

fn overrides() -> Overrides {
    Overrides {
        clients_opcode: Some(4),
        clients_ims: Some(1),
        clients_arsc: Some(1),
        max_clients: Some(8),
        max_virtual_secs: Some(90),
        ..Overrides::default()
    }
}

/// ws2017, ims, arsc, opcode: the rows and columns of `Counters::routes`.
const OPCODE: usize = 3;

#[test]
fn opcode_clients_hold_the_invariants_in_the_main_world() {
    let total = common::run_seeds_from_env(&overrides());
    // The runs reached what they are for: faults, logins, messages read from the store at
    // a login, and direct messages between opcode and every protocol, both ways.
    assert!(total.crashes > 0, "{total:?}");
    assert!(total.opcode_logins > 50, "{total:?}");
    assert!(total.login_stored_reads > 0, "{total:?}");
    for other in 0..4 {
        assert!(
            total.routes[OPCODE][other] > 0,
            "opcode to {other}: {total:?}"
        );
        assert!(
            total.routes[other][OPCODE] > 0,
            "{other} to opcode: {total:?}"
        );
    }
}

#[test]
fn a_world_with_opcode_clients_is_deterministic() {
    let run = |seed| {
        let outcome = Sim::new(seed, &overrides()).run();
        (outcome.hash, outcome.counters)
    };
    assert_eq!(run(5), run(5));
}

fn drop_relayed(c: &mut Config) {
    c.planted_bug = Some(PlantedBug::DropRelayedMessage);
}

/// `PlantedBug::DropRelayedMessage` (every 100th live message acknowledged and never
/// delivered), in a world of opcode clients only, is caught by
/// `relayed_messages_are_delivered`: an opcode `219 400` the model delivered live must
/// reach the other member in the same step.
#[test]
fn a_dropped_message_is_caught() {
    let only_opcode = Overrides {
        clients: Some(0),
        clients_ims: Some(0),
        clients_arsc: Some(0),
        clients_opcode: Some(4),
        max_virtual_secs: Some(90),
        ..Overrides::default()
    };
    let plant = Plant {
        name: "drop-relayed",
        apply: drop_relayed,
    };
    let planted = Overrides {
        plant: Some(plant),
        ..only_opcode
    };
    let (seed, failure) = (0..300)
        .find_map(|seed| run_seed(seed, &planted).failure.map(|f| (seed, f)))
        .expect("some seed in 0..300 catches the dropped message");
    assert_eq!(
        failure.violation.invariant, "relayed_messages_are_delivered",
        "{failure}"
    );
    let clean = run_seed(seed, &only_opcode);
    assert!(clean.failure.is_none(), "seed {seed} fails without the bug");
}
