//! The event queue: events ordered by `(Instant, seq)`, where `seq` counts insertions, so
//! events at the same millisecond come out in the order they were scheduled. Virtual time
//! jumps from one event to the next; there are no ticks.
//!
//! Most events are due within a few hundred milliseconds (network deliveries, commits),
//! so they go to a timing wheel of one bucket per millisecond: O(1) to schedule and to
//! take, the order within a bucket being insertion order. Events past the wheel's
//! horizon wait in a heap and move into the wheel, in order, as time reaches them.

use core::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use switchboard_proto::Instant;

/// Milliseconds the wheel covers: the network's delays (at most 40 ms in the benchmark)
/// and the store's; later events wait in the heap. Small, so that the buckets' first
/// slots, where every push lands, stay in the cache: with 10,000 clients everything else
/// an event touches is cold, and 4096 buckets were a sixth of the time in `push`, 512
/// still a tenth (64: 0.97x the benchmark's time of 512).
const WHEEL: u64 = 64;

struct Entry<E> {
    at: u64,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed, so the max-heap pops the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Future events of a simulation.
pub(crate) struct EventQueue<E> {
    /// The millisecond being taken from; never goes back.
    cursor: u64,
    /// Bucket `ms % WHEEL` holds the events of `ms`, for `cursor <= ms < cursor + WHEEL`.
    wheel: Vec<VecDeque<E>>,
    in_wheel: usize,
    /// Events at `cursor + WHEEL` or later.
    far: BinaryHeap<Entry<E>>,
    seq: u64,
    /// The earliest event's time, when known.
    next: Option<u64>,
}

impl<E> EventQueue<E> {
    pub(crate) fn new() -> Self {
        EventQueue {
            cursor: 0,
            wheel: (0..WHEEL).map(|_| VecDeque::new()).collect(),
            in_wheel: 0,
            far: BinaryHeap::new(),
            seq: 0,
            next: None,
        }
    }

    /// Schedules `event` at `at` (an instant already passed means now).
    pub(crate) fn push(&mut self, at: Instant, event: E) {
        let at = at.as_millis().max(self.cursor);
        if at < self.cursor + WHEEL {
            self.wheel[(at % WHEEL) as usize].push_back(event);
            self.in_wheel += 1;
        } else {
            self.seq += 1;
            self.far.push(Entry {
                at,
                seq: self.seq,
                event,
            });
        }
        if self.next.is_some_and(|n| at < n) {
            self.next = Some(at);
        }
    }

    /// When the earliest event is due.
    pub(crate) fn next_at(&mut self) -> Option<Instant> {
        if self.next.is_none() {
            self.next = if self.in_wheel > 0 {
                (self.cursor..self.cursor + WHEEL)
                    .find(|ms| !self.wheel[(ms % WHEEL) as usize].is_empty())
            } else {
                self.far.peek().map(|e| e.at)
            };
        }
        self.next.map(Instant::from_millis)
    }

    /// The event [`pop`](Self::pop) will return `n` events from now (0: next), if it is
    /// due at the same millisecond as the last one taken (the common case: a look ahead
    /// that costs nothing, for the caller to fetch what those events will touch).
    pub(crate) fn peek_now(&self, n: usize) -> Option<&E> {
        self.wheel[(self.cursor % WHEEL) as usize].get(n)
    }

    /// Removes the earliest event.
    pub(crate) fn pop(&mut self) -> Option<(Instant, E)> {
        let at = self.next_at()?.as_millis();
        if at > self.cursor {
            self.cursor = at;
            while self.far.peek().is_some_and(|e| e.at < at + WHEEL) {
                if let Some(e) = self.far.pop() {
                    self.wheel[(e.at % WHEEL) as usize].push_back(e.event);
                    self.in_wheel += 1;
                }
            }
        }
        let bucket = &mut self.wheel[(at % WHEEL) as usize];
        let event = bucket.pop_front()?;
        if bucket.is_empty() {
            // Back to the start of its buffer: a bucket's ring would otherwise wander
            // through all the capacity it ever grew to (the first minute's broadcasts
            // leave thousands of slots), and every fourth push would miss the cache.
            bucket.clear();
            self.next = None;
        }
        self.in_wheel -= 1;
        Some((Instant::from_millis(at), event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::choices::{Choices, SimRng};

    #[test]
    fn earliest_first_and_ties_in_insertion_order() {
        let mut q = EventQueue::new();
        let t = Instant::from_millis;
        q.push(t(5), "c");
        q.push(t(1), "a");
        q.push(t(5), "d");
        q.push(t(1), "b");
        assert_eq!(q.next_at(), Some(t(1)));
        let order: Vec<_> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
        assert_eq!(q.next_at(), None);
    }

    /// The wheel and the heap together give exactly a sorted-by-(time, insertion) order,
    /// with events scheduled while others are taken, near and far.
    #[test]
    fn the_wheel_orders_like_a_heap() {
        let mut rng = SimRng::new(3);
        let mut q = EventQueue::new();
        let mut reference = Vec::new();
        let mut now = 0;
        let mut n = 0u64;
        let mut popped = Vec::new();
        for _ in 0..20_000 {
            if rng.ratio(3, 5) {
                let ahead = if rng.ratio(1, 10) {
                    rng.below(3 * WHEEL)
                } else {
                    rng.below(300)
                };
                let at = now + ahead;
                q.push(Instant::from_millis(at), n);
                reference.push((at, n));
                n += 1;
            } else if let Some((at, e)) = q.pop() {
                now = at.as_millis();
                popped.push((now, e));
            }
        }
        while let Some((at, e)) = q.pop() {
            popped.push((at.as_millis(), e));
        }
        reference.sort();
        let mut got = popped.clone();
        got.sort();
        assert_eq!(got, reference, "every event comes out once");
        assert!(
            popped.windows(2).all(|w| w[0] <= w[1]),
            "in (time, insertion) order"
        );
    }
}
