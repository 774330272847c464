//! The fuzz targets' logic (feature `fuzzing`), as plain functions: `fuzz/` (cargo-fuzz,
//! nightly) calls [`run`] from each target, and `tests/fuzz_corpus.rs` runs every file of
//! the checked-in corpus (`fuzz/corpus/<target>/`) through the same function on stable,
//! so `cargo test` exercises every target and every crash found stays fixed.
//!
//! Inputs are built with `arbitrary` from the fuzzer's bytes. A target returns `Err` with
//! what went wrong; the fuzz target panics with it, the corpus test names the file.

mod server;

use arbitrary::{Arbitrary, Unstructured};

pub use server::MAX_PIECE;

/// Every fuzz target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// ws2017's line framer and command parser: the same commands fed whole or in pieces.
    Ws2017Decoder,
    /// arsc's `<arscrequest>` decoder, whole or in pieces.
    ArscDecoder,
    /// ims's document framer and parser, whole or in pieces.
    ImsDecoder,
    /// opcode's line framer and request parser, whole or in pieces.
    OpcodeDecoder,
    /// The admin protocol's line framer and command parser, whole or in pieces.
    AdminDecoder,
    /// Admin commands written by the CLI parse back to themselves.
    AdminRoundTrip,
    /// opcode `Str` fields percent-encoded by the server decode back to their bytes.
    OpcodeRoundTrip,
    /// Text escaped into an arsc request reads back as itself.
    ArscRoundTrip,
    /// jabberd's router-link stream reader (header, depth-1 elements, end), whole or in
    /// pieces.
    JabberdDecoder,
    /// ws2017 `chatm`/`chatw` and `chatr` lines the server writes parse back, as client
    /// commands, to the same fields.
    Ws2017RoundTrip,
    /// An ims MESSAGE the server pushes frames and parses back to the same message.
    ImsRoundTrip,
    /// The whole server through its pump: connections on every protocol, bytes, closes,
    /// time, write reports, effect and commit outcomes and restarts, checked after each.
    Server,
}

impl Target {
    /// Every target, in the order the corpus test runs them.
    pub const ALL: [Target; 12] = [
        Target::Ws2017Decoder,
        Target::ArscDecoder,
        Target::ImsDecoder,
        Target::OpcodeDecoder,
        Target::AdminDecoder,
        Target::AdminRoundTrip,
        Target::OpcodeRoundTrip,
        Target::ArscRoundTrip,
        Target::JabberdDecoder,
        Target::Ws2017RoundTrip,
        Target::ImsRoundTrip,
        Target::Server,
    ];

    /// The target's name: its file under `fuzz/fuzz_targets/` and its corpus directory.
    pub const fn name(self) -> &'static str {
        match self {
            Target::Ws2017Decoder => "ws2017_decoder",
            Target::ArscDecoder => "arsc_decoder",
            Target::ImsDecoder => "ims_decoder",
            Target::OpcodeDecoder => "opcode_decoder",
            Target::AdminDecoder => "admin_decoder",
            Target::AdminRoundTrip => "admin_round_trip",
            Target::OpcodeRoundTrip => "opcode_round_trip",
            Target::ArscRoundTrip => "arsc_round_trip",
            Target::JabberdDecoder => "jabberd_decoder",
            Target::Ws2017RoundTrip => "ws2017_round_trip",
            Target::ImsRoundTrip => "ims_round_trip",
            Target::Server => "server",
        }
    }
}

/// Bytes for a decoder, with where to cut them and the frame limit to use.
#[derive(Arbitrary, Debug)]
struct Split {
    /// Even: a small limit (16 to 527 bytes), so long frames are common; odd: the default.
    limit: u16,
    /// Lengths of the pieces, in turn (each taken modulo 256).
    cuts: Vec<u8>,
    /// The stream.
    data: Vec<u8>,
}

impl Split {
    fn limit(&self, default: usize) -> usize {
        if self.limit.is_multiple_of(2) {
            16 + usize::from(self.limit / 2 % 512)
        } else {
            default
        }
    }

    fn cuts(&self) -> Vec<u16> {
        self.cuts.iter().map(|&c| u16::from(c)).collect()
    }
}

/// Runs `target` on the fuzzer's `data`. `Ok` for an input too short to build one.
pub fn run(target: Target, data: &[u8]) -> Result<(), String> {
    use switchboard_proto::fuzzing;
    let u = Unstructured::new(data);
    let defaults = switchboard_proto::Config::default();
    match target {
        Target::Server => return server::run(data),
        Target::AdminRoundTrip => {
            let Ok((which, fields)) = <(u8, Vec<String>)>::arbitrary_take_rest(u) else {
                return Ok(());
            };
            return fuzzing::admin_round_trip(which, &fields);
        }
        Target::OpcodeRoundTrip => return fuzzing::opcode_round_trip(data),
        Target::ArscRoundTrip => {
            let Ok(text) = <&str>::arbitrary_take_rest(u) else {
                return Ok(());
            };
            return fuzzing::arsc_round_trip(text);
        }
        Target::Ws2017RoundTrip => {
            let Ok((whisper, from, to, body)) = <(bool, &str, &str, &str)>::arbitrary_take_rest(u)
            else {
                return Ok(());
            };
            return fuzzing::ws2017_round_trip(whisper, from, to, body);
        }
        Target::ImsRoundTrip => {
            let Ok((nul, from, to, body)) = <(bool, &str, &str, &str)>::arbitrary_take_rest(u)
            else {
                return Ok(());
            };
            return fuzzing::ims_round_trip(from, to, body, nul);
        }
        _ => {}
    }
    let Ok(split) = Split::arbitrary_take_rest(u) else {
        return Ok(());
    };
    let (data, cuts) = (&split.data, split.cuts());
    match target {
        Target::Ws2017Decoder => {
            fuzzing::ws2017_decoder(data, &cuts, split.limit(defaults.ws2017.max_line_bytes))
        }
        Target::ArscDecoder => {
            fuzzing::arsc_decoder(data, &cuts, split.limit(defaults.arsc.max_request_bytes))
        }
        Target::ImsDecoder => {
            fuzzing::ims_decoder(data, &cuts, split.limit(defaults.ims.max_document_bytes))
        }
        Target::OpcodeDecoder => {
            fuzzing::opcode_decoder(data, &cuts, split.limit(defaults.opcode.max_line_bytes))
        }
        Target::AdminDecoder => fuzzing::admin_decoder(data, &cuts),
        Target::JabberdDecoder => {
            fuzzing::jabberd_decoder(data, &cuts, split.limit(defaults.jabberd.max_stanza_bytes))
        }
        _ => Ok(()),
    }
}
