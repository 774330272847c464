//! Giving the allocator's free pages back to the system after a burst.
//!
//! glibc keeps freed small blocks in its heap: a burst that queued a million transmits at
//! once (every login announced to everyone) left the server's RSS at its peak long after
//! the queues were written and freed. The runtimes note how much a turn queued and trim
//! once the burst is over, when nothing waits, at most once per [`MIN_GAP`]: under a
//! steady load every trim would hand back pages the next turn faults in again.

use std::time::{Duration, Instant};

/// Returns the free pages of the allocator's arenas to the system (glibc `malloc_trim`);
/// elsewhere a no-op.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's arenas to the kernel;
    // it touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Bytes of transmits queued by one batch of inputs from which a trim is due once the
/// driver is idle: a few hundred logins announced to a crowd, not a busy chat.
pub const BURST_BYTES: usize = 256 * 1024;

/// The least time between two trims. A trim held back by it happens at the next idle
/// wake-up (the runtimes wake at least every second to export their metrics).
pub const MIN_GAP: Duration = Duration::from_millis(250);

/// Whether a burst happened since the last trim.
#[derive(Debug, Default)]
pub struct AfterBurst {
    due: bool,
    last: Option<Instant>,
}

impl AfterBurst {
    /// One batch queued `bytes` of transmits (noted before they are written).
    pub fn queued(&mut self, bytes: usize) {
        self.due |= bytes >= BURST_BYTES;
    }

    /// Whether a trim is due (the caller then checks that nothing is waiting).
    pub fn due(&self) -> bool {
        self.due
    }

    /// Whether a trim is due and allowed at `now` (the last at least [`MIN_GAP`] before).
    pub fn ready(&self, now: Instant) -> bool {
        self.due && self.last.is_none_or(|last| now >= last + MIN_GAP)
    }

    /// Trims if due and the last trim is at least [`MIN_GAP`] before `now`. Call it when no
    /// input waits: the burst is over. Returns whether it trimmed.
    pub fn idle(&mut self, now: Instant) -> bool {
        if !self.ready(now) {
            return false;
        }
        self.due = false;
        self.last = Some(now);
        release_freed_memory();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_is_due_after_a_burst_only_and_at_most_once_a_gap() {
        let t0 = Instant::now();
        let mut burst = AfterBurst::default();
        burst.queued(BURST_BYTES - 1);
        assert!(!burst.due(), "a busy chat's batch is no burst");
        assert!(!burst.idle(t0));
        burst.queued(BURST_BYTES);
        assert!(burst.due());
        assert!(burst.idle(t0));
        assert!(
            !burst.due(),
            "trimmed once, then not again until the next burst"
        );
        burst.queued(BURST_BYTES);
        assert!(!burst.ready(t0 + MIN_GAP / 2));
        assert!(!burst.idle(t0 + MIN_GAP / 2), "too soon after the last");
        assert!(burst.due(), "still due: the next idle moment trims");
        assert!(burst.idle(t0 + MIN_GAP));
    }
}
