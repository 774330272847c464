//! ims clients in the main simulation: seeded worlds where ims and ws2017 clients talk to
//! each other through every fault (crashes with restart, storage failures, cuts, stalls),
//! with every invariant checked after every step. `SWITCHBOARD_SIM_SEED` moves the first
//! seed and `SWITCHBOARD_SIM_RUNS` sets how many (default 24).
//!
//! The checks were proven by hand against bugs planted in the ims session (the ims code is
//! not behind the `planted-bugs` feature): a -1 sent before its change commits is caught
//! by `acknowledgements_wait_on_their_change`, a missing ALIVE close by
//! `alive_timeouts_are_kept`, a login that does not drain the mailbox by
//! `liveness_expectations_met` (acknowledged mail never delivered), each in 100 seeds.

use switchboard_sim::{Overrides, Sim};

mod common;

fn overrides() -> Overrides {
    Overrides {
        clients_ims: Some(4),
        max_clients: Some(12),
        max_virtual_secs: Some(120),
        ..Overrides::default()
    }
}

#[test]
fn ims_and_ws2017_clients_hold_the_invariants_together() {
    let total = common::run_seeds_from_env(&overrides());
    // The runs reached what they are for: faults, mail stored and drained at a login,
    // silence dropped, and messages across the bridge both ways.
    assert!(total.crashes > 0, "{total:?}");
    assert!(total.ims_logins > 0, "{total:?}");
    assert!(total.ims_stored_reads > 0, "{total:?}");
    assert!(total.ims_alive_closes > 0, "{total:?}");
    assert!(total.ws2017_to_ims > 0, "{total:?}");
    assert!(total.ims_to_ws2017 > 0, "{total:?}");
}

#[test]
fn a_world_with_ims_clients_is_deterministic() {
    let run = |seed| {
        let outcome = Sim::new(seed, &overrides()).run();
        (outcome.hash, outcome.counters)
    };
    assert_eq!(run(42), run(42));
}
