//! Giving the allocator's free pages back to the system after a burst.
//!
//! glibc keeps freed small blocks in its heap: a burst that queued a million transmits at
//! once (every login announced to everyone) left the server's RSS at its peak long after
//! the queues were written and freed. The runtimes note how much each batch of inputs
//! queued, and trim once the bursts have stopped for [`QUIET`], when nothing waits. Under
//! a steady load whose batches are as large, nothing is trimmed: every trim would hand
//! back pages the next turn faults in again (4 % of the server's CPU at full speed).

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

/// Bytes of transmits queued by one batch of inputs that make it a burst: a few dozen
/// logins announced to a crowd.
pub const BURST_BYTES: usize = 256 * 1024;

/// How long after the last burst the trim waits. A trim waiting for it happens at the
/// next idle wake-up (the runtimes wake at least every second to export their metrics).
pub const QUIET: Duration = Duration::from_millis(100);

/// Whether a burst happened since the last trim, and when the last one was.
#[derive(Debug, Default)]
pub struct AfterBurst {
    last: Option<Instant>,
}

impl AfterBurst {
    /// One batch queued `bytes` of transmits (noted before they are written).
    pub fn queued(&mut self, bytes: usize) {
        if bytes >= BURST_BYTES {
            self.queued_at(bytes, Instant::now());
        }
    }

    /// [`queued`](Self::queued) at `now`.
    pub fn queued_at(&mut self, bytes: usize, now: Instant) {
        if bytes >= BURST_BYTES {
            self.last = Some(now);
        }
    }

    /// Whether a burst happened since the last trim.
    pub fn due(&self) -> bool {
        self.last.is_some()
    }

    /// Whether a trim is due and the bursts stopped at least [`QUIET`] before `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.last.is_some_and(|last| now >= last + QUIET)
    }

    /// Trims if [`ready`](Self::ready). Call it when no input waits. Returns whether it
    /// trimmed.
    pub fn idle(&mut self, now: Instant) -> bool {
        if !self.ready(now) {
            return false;
        }
        self.last = None;
        release_freed_memory();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_waits_for_the_bursts_to_stop_and_comes_once() {
        let t0 = Instant::now();
        let mut burst = AfterBurst::default();
        burst.queued_at(BURST_BYTES - 1, t0);
        assert!(!burst.due(), "a busy chat's batch is no burst");
        assert!(!burst.idle(t0 + QUIET));
        burst.queued_at(BURST_BYTES, t0);
        assert!(burst.due());
        assert!(!burst.idle(t0 + QUIET / 2), "the burst may go on");
        // Another burst: the quiet starts again.
        burst.queued_at(BURST_BYTES, t0 + QUIET / 2);
        assert!(!burst.ready(t0 + QUIET));
        assert!(burst.idle(t0 + QUIET / 2 + QUIET));
        assert!(
            !burst.due(),
            "trimmed once, then not again until the next burst"
        );
        assert!(!burst.idle(t0 + QUIET * 10));
    }
}
