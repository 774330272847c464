//! Running counts of what the network did, by protocol, for a runtime's metrics: read
//! with [`Server::counters`](crate::Server::counters) as plain data (the core exports
//! nothing itself). Counting is a few additions per login or message; nothing grows.

use crate::ids::Protocol;

/// How many protocols the tables are indexed by ([`Protocol::index`]).
const P: usize = Protocol::ALL.len();

/// Counts since start, by protocol ([`Protocol::index`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Sessions started (logins), by protocol.
    pub logins: [u64; P],
    /// Sessions open now, by protocol.
    pub sessions: [u64; P],
    /// Direct messages handed to a live session: `[from][to]` by the sender's and the
    /// recipient session's protocols (one per recipient session).
    pub routed: [[u64; P]; P],
    /// Direct messages stored for an offline account, by the sender's protocol.
    pub stored: [u64; P],
}

impl Counters {
    pub(super) fn logged_in(&mut self, protocol: Protocol) {
        self.logins[protocol.index()] += 1;
        self.sessions[protocol.index()] += 1;
    }

    pub(super) fn logged_out(&mut self, protocol: Protocol) {
        let open = &mut self.sessions[protocol.index()];
        *open = open.saturating_sub(1);
    }

    pub(super) fn routed(&mut self, from: Protocol, to: Protocol) {
        self.routed[from.index()][to.index()] += 1;
    }

    pub(super) fn stored(&mut self, from: Protocol) {
        self.stored[from.index()] += 1;
    }
}
