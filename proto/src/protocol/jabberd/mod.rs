//! jabberd: Switchboard as the session manager (sm) behind a jabberd2 router and c2s
//! (`shared/specs/jabberd2-sm-c2s.md`, docs/protocols/jabberd.md). The server keeps one
//! outbound link to the router: a stream whose outer element never closes, SASL
//! DIGEST-MD5, a stream restart, `bind` of the served domain; then `route`s carry the
//! sm-c2s session protocol and the XMPP stanzas of every client of c2s. Each XMPP
//! session is a session of the shared model, held by this protocol (on no connection of
//! its own), so its user is as reachable from every other protocol as any.
//!
//! The link is dialed when the server starts and again, after a backoff that doubles
//! from `JabberdConfig::reconnect_min` to `reconnect_max`, whenever it fails or drops;
//! every XMPP session ends with it (c2s closes its clients when the sm's domain goes).

#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod link;
mod sasl;
mod sm;
#[cfg(test)]
mod tests;
pub(crate) mod xml;

pub(crate) use link::Link;
pub(crate) use sm::Shared;
