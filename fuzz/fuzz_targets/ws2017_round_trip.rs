//! `ws2017_round_trip`: see `switchboard_sim::fuzz::Target::Ws2017RoundTrip`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sim::fuzz::{run, Target};

fuzz_target!(|data: &[u8]| {
    if let Err(problem) = run(Target::Ws2017RoundTrip, data) {
        panic!("{problem}");
    }
});
