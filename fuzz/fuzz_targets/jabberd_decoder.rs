//! `jabberd_decoder`: see `switchboard_sim::fuzz::Target::JabberdDecoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sim::fuzz::{run, Target};

fuzz_target!(|data: &[u8]| {
    if let Err(problem) = run(Target::JabberdDecoder, data) {
        panic!("{problem}");
    }
});
