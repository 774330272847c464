//! `ws2017_decoder`: see `switchboard_sim::fuzz::Target::Ws2017Decoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sim::fuzz::{run, Target};

fuzz_target!(|data: &[u8]| {
    if let Err(problem) = run(Target::Ws2017Decoder, data) {
        panic!("{problem}");
    }
});
