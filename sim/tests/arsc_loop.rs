//! The standalone arsc loop (`run_arsc`): virtual arsc clients against the real core,
//! randomised valid scripts with some misbehaviour, checked for this protocol's
//! invariants (no whisper reaches a third user; a room's members see its posts in one
//! order; acknowledged posts reach their posters; every request is answered once, where
//! it was asked). A planted bug is caught.
//!
//! arsc clients run in the main world too (`tests/arsc.rs`); this loop stays for what
//! the main world's clients do not do: operators' `/kick` and `/msgops`, guests, and
//! posts on a fresh connection per post, as the original clients made them.

use switchboard_proto::{Config, PlantedBug};
use switchboard_sim::{run_arsc, ArscOptions};

#[test]
fn arsc_clients_keep_the_invariants_over_many_seeds() {
    let mut total = switchboard_sim::ArscReport::default();
    for seed in 0..40 {
        let report = run_arsc(seed, ArscOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        total.connects += report.connects;
        total.posts += report.posts;
        total.whispers += report.whispers;
        total.kicks += report.kicks;
        total.misbehaved += report.misbehaved;
    }
    // The scripts really exercise what the invariants are about.
    assert!(total.connects > 200, "{total:?}");
    assert!(total.posts > 1000, "{total:?}");
    assert!(total.whispers > 100, "{total:?}");
    assert!(total.kicks > 5, "{total:?}");
    assert!(total.misbehaved > 100, "{total:?}");
}

#[test]
fn a_seed_is_the_same_run() {
    let a = run_arsc(7, ArscOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let b = run_arsc(7, ArscOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a, b);
}

fn whisper_to_room(c: &mut Config) {
    c.planted_bug = Some(PlantedBug::WhisperToRoom);
}

#[test]
fn a_whisper_leaking_to_the_room_is_caught() {
    let options = ArscOptions {
        plant: Some(whisper_to_room),
        ..ArscOptions::default()
    };
    let failure = (0..20)
        .find_map(|seed| run_arsc(seed, options).err())
        .expect("some seed catches the leak");
    assert!(failure.contains("reached"), "{failure}");
}
