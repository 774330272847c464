//! admin: the line protocol of the local admin socket, which turns `switchboard user ...`,
//! `ban ...` and `kick ...` into inputs of the running server (or of a server the CLI
//! starts on the store itself when none runs). See `docs/operations.md`.
//!
//! A request is one line of space-separated, percent-encoded fields. The answer is zero
//! or more data lines, then one `ok <text>` or `err <text>` line.

mod codec;
mod session;
#[cfg(test)]
mod tests;

pub use codec::{AdminCommand, AdminParseError};
pub(crate) use session::Session;
