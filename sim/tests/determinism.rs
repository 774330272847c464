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
