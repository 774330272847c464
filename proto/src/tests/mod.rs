//! Shared test support for the protocol tests.

mod events;
mod fixtures;
pub(crate) mod harness;
mod limits;
mod mailbox;
mod names;
mod outbound;
mod release;
mod sessions;
mod slow_reader;
