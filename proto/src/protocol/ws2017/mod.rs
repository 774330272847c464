//! ws2017: the POP3-like lobby protocol of the 2017 game (`seeds/ws2017.txt`).
//!
//! CRLF (or bare LF) lines; `uname` to pick a name, then `cgetu`, `chatm`/`chatw`/`chatr`,
//! `cping`/`cpong` and `cquit`. See `docs/protocols/ws2017.md`.

mod codec;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod session;
#[cfg(test)]
mod tests;

pub(crate) use session::{lobby_news, Session, Shared};
