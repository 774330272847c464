//! A virtual jabberd2 router and c2s with XMPP clients against the real core: randomised
//! sessions, messages, kicks and lost links keep every jabberd invariant, and a planted
//! bug is caught.

use switchboard_proto::{Config, PlantedBug};
use switchboard_sim::{run_jabberd, run_jabberd_with, JabberdReport};

#[test]
fn a_virtual_c2s_keeps_the_invariants() {
    let mut total = JabberdReport::default();
    for seed in 0..12 {
        let r = run_jabberd(seed, 5, 3_000).unwrap_or_else(|v| panic!("seed {seed}: {v}"));
        total.started += r.started;
        total.failed_starts += r.failed_starts;
        total.replaced += r.replaced;
        total.delivered += r.delivered;
        total.stored += r.stored;
        total.link_drops += r.link_drops;
        total.kicked += r.kicked;
    }
    eprintln!("{total:?}");
    // The runs did what they are for.
    assert!(total.started > 300, "{total:?}");
    assert!(total.failed_starts > 20, "{total:?}");
    assert!(total.replaced > 20, "{total:?}");
    assert!(total.delivered > 500, "{total:?}");
    assert!(total.stored > 50, "{total:?}");
    assert!(total.link_drops > 10, "{total:?}");
    assert!(total.kicked > 10, "{total:?}");
}

#[test]
fn the_same_seed_is_the_same_run() {
    assert_eq!(run_jabberd(5, 5, 2_000), run_jabberd(5, 5, 2_000));
}

#[test]
fn a_dropped_message_is_caught() {
    let config = Config {
        planted_bug: Some(PlantedBug::DropRelayedMessage),
        ..Config::default()
    };
    let caught = (0..20).find_map(|seed| run_jabberd_with(seed, 5, 3_000, config.clone()).err());
    let violation = caught.expect("some seed catches the dropped message");
    assert_eq!(violation.invariant, "jabberd_live_messages_arrive");
}
