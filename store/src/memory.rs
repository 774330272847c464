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

use bytes::{Bytes, BytesMut};

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

/// The smallest read copied into a kept buffer; a smaller one gets its own allocation,
/// which glibc serves from its per-size caches.
pub const POOLED_READ_BYTES: usize = 1024;

/// Most read buffers kept for reuse, per [`ReadBuffers`].
pub const SPARE_READ_BUFFERS: usize = 16;

/// Buffers for what reads bring, reused once the core lets go of the bytes. A read of a
/// busy connection brings kilobytes; copied into an allocation of its own and freed after
/// the core had read it, each made glibc consolidate its small free blocks (4.5 % of the
/// ims server at full speed, freeing the block next to the top of the heap).
#[derive(Debug)]
pub struct ReadBuffers {
    capacity: usize,
    spare: Vec<BytesMut>,
}

impl ReadBuffers {
    /// Buffers of `capacity` bytes: the most one read brings.
    pub fn new(capacity: usize) -> Self {
        ReadBuffers {
            capacity,
            spare: Vec::new(),
        }
    }

    /// `read`'s bytes, for the core: a small read in its own allocation, a larger one in a
    /// kept buffer (a new one if none is spare).
    pub fn bytes(&mut self, read: &[u8]) -> Bytes {
        if read.len() < POOLED_READ_BYTES || read.len() > self.capacity {
            return Bytes::copy_from_slice(read);
        }
        let mut buffer = self
            .spare
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(self.capacity));
        buffer.extend_from_slice(read);
        buffer.freeze()
    }

    /// Takes back `bytes` the core has let go of: their buffer is kept for the next read if
    /// nothing else holds it, it is one of ours, and fewer than [`SPARE_READ_BUFFERS`] are
    /// kept; else they are dropped as usual.
    pub fn recycle(&mut self, bytes: Bytes) {
        if self.spare.len() >= SPARE_READ_BUFFERS {
            return;
        }
        if let Ok(mut buffer) = bytes.try_into_mut() {
            if buffer.capacity() >= self.capacity {
                buffer.clear();
                self.spare.push(buffer);
            }
        }
    }

    /// Buffers kept for reuse.
    pub fn spare(&self) -> usize {
        self.spare.len()
    }
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
    fn a_large_read_reuses_a_buffer_the_core_let_go_of() {
        let mut buffers = ReadBuffers::new(16 * 1024);
        let large = vec![7u8; 4096];
        let first = buffers.bytes(&large);
        assert_eq!(&first[..], &large[..]);
        let at = first.as_ptr();
        let held = first.clone();
        buffers.recycle(first);
        assert_eq!(buffers.spare(), 0, "still held elsewhere: not reused");
        buffers.recycle(held);
        assert_eq!(buffers.spare(), 1);
        let second = buffers.bytes(&[1u8; 2000]);
        assert_eq!(second.as_ptr(), at, "the same memory");
        assert_eq!(&second[..], &[1u8; 2000][..], "holding only the new read");
        assert_eq!(buffers.spare(), 0);
        // Small reads and foreign bytes are not kept.
        let small = buffers.bytes(b"ping\r\n");
        buffers.recycle(small);
        buffers.recycle(Bytes::from(vec![0u8; 4096]));
        assert_eq!(buffers.spare(), 0);
        let many: Vec<Bytes> = (0..SPARE_READ_BUFFERS + 4)
            .map(|_| buffers.bytes(&large))
            .collect();
        for b in many {
            buffers.recycle(b);
        }
        assert_eq!(buffers.spare(), SPARE_READ_BUFFERS, "bounded");
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
