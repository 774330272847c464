//! The standalone opcode loop (`run_opcode`): virtual opcode clients against the real
//! core, randomised valid scripts with some misbehaviour keep every opcode invariant, and
//! a planted bug is caught.
//!
//! opcode clients run in the main world too (`tests/opcode.rs`); this loop stays for what
//! the main world's clients do not do: registering accounts (117) and deleting chats
//! (114), in a network of opcode users only.

use switchboard_proto::{Config, PlantedBug};
use switchboard_sim::{run_opcode, run_opcode_with};

#[test]
fn opcode_clients_keep_the_invariants() {
    let mut total = switchboard_sim::OpcodeReport::default();
    for seed in 0..12 {
        let report = run_opcode(seed, 6, 3_000).unwrap_or_else(|v| panic!("seed {seed}: {v}"));
        total.acked += report.acked;
        total.delivered += report.delivered;
        total.media_fetched += report.media_fetched;
        total.misbehaved += report.misbehaved;
    }
    eprintln!("{total:?}");
    // The runs did what they are for.
    assert!(total.acked > 500, "{total:?}");
    assert!(total.delivered > 500, "{total:?}");
    assert!(total.media_fetched > 20, "{total:?}");
    assert!(total.misbehaved > 100, "{total:?}");
}

#[test]
fn the_same_seed_is_the_same_run() {
    assert_eq!(run_opcode(5, 5, 2_000), run_opcode(5, 5, 2_000));
}

#[test]
fn a_dropped_message_is_caught() {
    let config = Config {
        planted_bug: Some(PlantedBug::DropRelayedMessage),
        ..Config::default()
    };
    let caught = (0..20).find_map(|seed| run_opcode_with(seed, 6, 3_000, config.clone()).err());
    let violation = caught.expect("some seed catches the dropped message");
    assert_eq!(violation.invariant, "opcode_acknowledged_messages_arrive");
}
