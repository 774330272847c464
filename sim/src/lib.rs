//! Switchboard's deterministic simulator.
//!
//! One `u64` seed determines a whole run: the options (printed first), a population of
//! virtual clients of ws2017, ims, arsc and opcode (with standalone loops of arsc and
//! opcode clients besides, [`run_arsc`], [`run_opcode`]) and an administrator, a
//! virtual network that splits, delays, stalls and cuts connections, a virtual clock that
//! jumps from event to event, a store model that keeps only committed transactions, and
//! crashes and restarts of the real [`switchboard_proto::Server`]. After every step the
//! oracle checks the invariants (`src/invariants.rs`, one function each); a violation stops the run with the seed, the step, the
//! last few hundred records of the transcript and the command that replays it exactly.
//!
//! ```
//! use switchboard_sim::{Overrides, Sim};
//!
//! let overrides = Overrides { clients: Some(4), virtual_secs: Some(10), ..Overrides::default() };
//! let outcome = Sim::new(7, &overrides).run();
//! assert!(outcome.failure.is_none(), "{}", outcome.failure.unwrap());
//! // The same seed is the same run, to the last byte.
//! assert_eq!(Sim::new(7, &overrides).run().hash, outcome.hash);
//! ```
//!
//! See `docs/simulation.md` for running, reading a failure and replaying a seed.

#![warn(missing_docs)]

mod choices;
mod client;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod invariants;
mod net;
mod options;
mod oracle;
mod queue;
mod report;
mod run;
mod sim;
mod store;
mod trace;

pub use choices::{ByteTape, ChoiceSource, Choices, Purpose, Seeded, SimRng, Tape};
pub use client::arsc_loop::{run_arsc, ArscOptions, ArscReport};
pub use client::jabberd::{run as run_jabberd, run_with as run_jabberd_with, JabberdReport};
pub use client::opcode_loop::{run as run_opcode, run_with as run_opcode_with, OpcodeReport};
pub use options::{Overrides, Plant, SimOptions};
pub use report::{Failure, Violation};
pub use run::{check_determinism, run_seed, sweep, SweepReport};
pub use sim::{Counters, Outcome, Sim, WALL_ORIGIN_MS};
