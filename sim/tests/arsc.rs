//! arsc clients in the main simulation, weighted up: seeded worlds where arsc clients
//! post in rooms and whisper to users of every protocol (ws2017, ims, opcode and each
//! other), and are whispered to, through every fault (crashes with restart, storage
//! failures, cuts, stalls), with every invariant checked after every step: no whisper
//! reaches a third user or a room, a room's members see its posts in one order, an
//! acknowledged `/msg` to an offline account is committed and handed out once at its next
//! login on any protocol. `SWITCHBOARD_SIM_SEED` moves the first seed and
//! `SWITCHBOARD_SIM_RUNS` sets how many (default 24). A planted bug is caught.

use switchboard_proto::{Config, PlantedBug};
use switchboard_sim::{run_seed, Overrides, Plant, Sim};

mod common;

fn overrides() -> Overrides {
    Overrides {
        clients_arsc: Some(4),
        clients_ims: Some(1),
        clients_opcode: Some(1),
        max_clients: Some(8),
        max_virtual_secs: Some(90),
        ..Overrides::default()
    }
}

/// ws2017, ims, arsc, opcode: the rows and columns of `Counters::routes`.
const ARSC: usize = 2;

#[test]
fn arsc_clients_hold_the_invariants_in_the_main_world() {
    let total = common::run_seeds_from_env(&overrides());
    // The runs reached what they are for: faults, logins, whispers read from the store at
    // a login, and direct messages between arsc and every protocol, both ways.
    assert!(total.crashes > 0, "{total:?}");
    assert!(total.arsc_logins > 50, "{total:?}");
    assert!(total.login_stored_reads > 0, "{total:?}");
    for other in 0..4 {
        assert!(total.routes[ARSC][other] > 0, "arsc to {other}: {total:?}");
        assert!(total.routes[other][ARSC] > 0, "{other} to arsc: {total:?}");
    }
}

#[test]
fn a_world_with_arsc_clients_is_deterministic() {
    let run = |seed| {
        let outcome = Sim::new(seed, &overrides()).run();
        (outcome.hash, outcome.counters)
    };
    assert_eq!(run(7), run(7));
}

fn whisper_to_room(c: &mut Config) {
    c.planted_bug = Some(PlantedBug::WhisperToRoom);
}

/// `PlantedBug::WhisperToRoom` (a `/msg` is also said in the sender's room) is caught by
/// `whispers_stay_out_of_rooms`, and the same seed without it is clean.
#[test]
fn a_whisper_leaking_to_the_room_is_caught() {
    let plant = Plant {
        name: "whisper-to-room",
        apply: whisper_to_room,
    };
    let planted = Overrides {
        plant: Some(plant),
        ..overrides()
    };
    let (seed, failure) = (0..300)
        .find_map(|seed| run_seed(seed, &planted).failure.map(|f| (seed, f)))
        .expect("some seed in 0..300 catches the leak");
    assert_eq!(
        failure.violation.invariant, "whispers_stay_out_of_rooms",
        "{failure}"
    );
    let clean = run_seed(seed, &overrides());
    assert!(clean.failure.is_none(), "seed {seed} fails without the bug");
}
