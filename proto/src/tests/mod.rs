//! Shared test support for the protocol tests.

mod events;
pub(crate) mod fixtures;
pub(crate) mod harness;
mod hostile;
mod idle_input;
mod limits;
mod mailbox;
mod names;
mod outbound;
mod release;
mod reload;
mod sessions;
mod shutdown;
mod slow_reader;
