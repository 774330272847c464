//! Giving the allocator's free pages back to the system after a burst.
//!
//! glibc keeps freed small blocks in its heap: a burst that queued a million transmits at
//! once (every login announced to everyone) left the server's RSS at its peak long after
//! the queues were written and freed. The runtimes note how much each batch of inputs
//! queued, and trim once the bursts have stopped for [`QUIET`], when nothing waits. Under
//! a steady load whose batches are as large, nothing is trimmed: every trim would hand
//! back pages the next turn faults in again (4 % of the server's CPU at full speed).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

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

    /// When a trim that is due may happen, if one is: a runtime wakes then, so the memory
    /// goes back [`QUIET`] after the last burst, not at its next wake-up.
    pub fn ready_at(&self) -> Option<Instant> {
        self.last.map(|last| last + QUIET)
    }

    /// Whether a trim is due and the bursts stopped at least [`QUIET`] before `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.ready_at().is_some_and(|at| now >= at)
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

/// Most emptied write queues kept for reuse, per thread.
pub const SPARE_QUEUES: usize = 64;

/// The largest queue kept for reuse, in entries (a larger one was a burst's).
pub const SPARE_QUEUE_ENTRIES: usize = 1024;

thread_local! {
    /// Emptied write queues of this thread's connections. A busy connection's queue
    /// empties at every write and refills at the next batch; dropped and grown again each
    /// time (to 64-128 entries, a few KiB), it made glibc consolidate its small free blocks
    /// at every regrowth. An idle connection still holds no queue.
    static SPARES: RefCell<Vec<VecDeque<Bytes>>> = const { RefCell::new(Vec::new()) };
}

/// A write queue for a connection whose queue is empty and holds no buffer: a spare one
/// if this thread has one, else a new (unallocated) one.
pub fn spare_queue() -> VecDeque<Bytes> {
    SPARES.with(|s| s.borrow_mut().pop()).unwrap_or_default()
}

/// Takes back `queue` once it is empty: kept for [`spare_queue`] if it is not too large and
/// fewer than [`SPARE_QUEUES`] are kept, else freed. A queue with anything in it is left
/// alone (`false`).
pub fn return_queue(queue: &mut VecDeque<Bytes>) -> bool {
    if !queue.is_empty() {
        return false;
    }
    let queue = std::mem::take(queue);
    if queue.capacity() == 0 || queue.capacity() > SPARE_QUEUE_ENTRIES {
        return true;
    }
    SPARES.with(|s| {
        let mut spares = s.borrow_mut();
        if spares.len() < SPARE_QUEUES {
            spares.push(queue);
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_queue_is_reused_and_the_spares_are_bounded() {
        let mut queue: VecDeque<Bytes> = VecDeque::with_capacity(100);
        queue.push_back(Bytes::from_static(b"x"));
        assert!(!return_queue(&mut queue), "not empty: left alone");
        assert_eq!(queue.len(), 1);
        queue.clear();
        assert!(return_queue(&mut queue));
        assert_eq!(queue.capacity(), 0, "the connection holds no buffer");
        assert!(spare_queue().capacity() >= 100, "the spare comes back");
        assert_eq!(spare_queue().capacity(), 0, "one spare, taken");
        for _ in 0..SPARE_QUEUES + 10 {
            let mut q: VecDeque<Bytes> = VecDeque::with_capacity(8);
            return_queue(&mut q);
        }
        let kept = std::iter::from_fn(|| Some(spare_queue()))
            .take_while(|q| q.capacity() > 0)
            .count();
        assert_eq!(kept, SPARE_QUEUES);
        let mut huge: VecDeque<Bytes> = VecDeque::with_capacity(SPARE_QUEUE_ENTRIES * 2);
        return_queue(&mut huge);
        assert_eq!(spare_queue().capacity(), 0, "a burst's queue is freed");
    }

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
