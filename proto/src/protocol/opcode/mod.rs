//! opcode: the numeric line protocol of the HAW chat table (`seeds/opcode.txt`).
//!
//! One request per line, `OPCODE field field ...`, `Str` fields percent-encoded; accounts,
//! contacts (the shared friendships), two-member chats, messages with media. See
//! `docs/protocols/opcode.md`.

// The codec is used by the session (next); until then, by its tests.
#[allow(dead_code)]
pub(crate) mod codec;
