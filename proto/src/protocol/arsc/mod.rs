//! arsc: the XML protocol of ARSC 3.0's socket server (`seeds/arsc.txt`).
//!
//! `<arscrequest>` documents (`connect`, `post`, `userlist`) answered by `<arscrespond>`,
//! and `<arscmessage>`s pushed to the connection that connected. See `docs/protocols/arsc.md`.

mod codec;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod session;
#[cfg(test)]
mod tests;

pub(crate) use session::{Session, Shared};
