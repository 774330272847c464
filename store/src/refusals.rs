//! The log line of requests the core refused by a rate limit, shared by the runtimes: a
//! flood makes one line every [`WARNING_EVERY`], not one per request.

use std::time::{Duration, Instant};

use tracing::warn;

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
