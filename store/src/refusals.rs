//! The log lines of refusals, shared by the runtimes: requests the core refused by a rate
//! limit ([`RefusalLog`]) and connections closed at once past the descriptor capacity
//! ([`CapacityRefusals`]). A flood makes one line every [`WARNING_EVERY`], not one per
//! request.

use std::time::{Duration, Instant};

use switchboard_proto::Protocol;
use tracing::warn;

use crate::fds::Capacity;

/// At most one line per this long.
pub const WARNING_EVERY: Duration = Duration::from_secs(10);

/// The refusals already logged, and when.
#[derive(Debug, Default)]
pub struct RefusalLog {
    logged: u64,
    at: Option<Instant>,
}

impl RefusalLog {
    /// Given the core's running total of refusals (`Server::rate_refusals`), logs those
    /// since the last line, if any and if the last line is old enough.
    pub fn check(&mut self, total: u64) {
        if total > self.logged && self.at.is_none_or(|at| at.elapsed() >= WARNING_EVERY) {
            warn!(
                refused = total - self.logged,
                total,
                "requests refused by rate limits (logins, renames, chat messages, stored \
                 messages; raise the --*-rate-* flags if they are legitimate)"
            );
            self.logged = total;
            self.at = Some(Instant::now());
        }
    }
}

/// Connections accepted past the capacity the descriptor limit allows (and closed at once),
/// logged at most every [`WARNING_EVERY`] with how many since the last line.
#[derive(Debug, Default)]
pub struct CapacityRefusals {
    refused: u64,
    at: Option<Instant>,
}

impl CapacityRefusals {
    /// One more connection of `protocol` was refused, `capacity` being full.
    pub fn refused(&mut self, protocol: Protocol, capacity: &Capacity) {
        self.refused += 1;
        if self.at.is_none_or(|at| at.elapsed() >= WARNING_EVERY) {
            warn!(
                %protocol,
                open = capacity.open(),
                max = capacity.max(),
                refused = self.refused,
                "at the client connection limit the descriptor limit allows: \
                 closing new connections at once (raise `ulimit -n`)"
            );
            self.at = Some(Instant::now());
            self.refused = 0;
        }
    }
}
