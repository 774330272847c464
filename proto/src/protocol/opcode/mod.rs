//! opcode: the numeric line protocol of the HAW chat table (`seeds/opcode.txt`).
//!
//! One request per line, `OPCODE field field ...`, `Str` fields percent-encoded; accounts,
//! contacts (the shared friendships), two-member chats, messages with media. See
//! `docs/protocols/opcode.md`.

pub(crate) mod codec;
mod session;
#[cfg(test)]
mod tests;

pub(crate) use session::{Session, Shared};
