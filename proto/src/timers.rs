//! One deadline per connection, ordered so the next one is found in O(log n). A session
//! keeps what is due in its own state and re-arms its single timer for the earliest.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, DefaultHasher};

use crate::ids::ConnId;
use crate::time::Instant;

/// Every armed connection timer.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    queue: BTreeSet<(Instant, ConnId)>,
    /// Looked up, never iterated: a hash map with std's fixed-key (deterministic) hasher.
    armed: HashMap<ConnId, Instant, BuildHasherDefault<DefaultHasher>>,
}

impl Timers {
    /// Arms (or re-arms) the timer of `conn` for `at`.
    pub(crate) fn set(&mut self, conn: ConnId, at: Instant) {
        match self.armed.insert(conn, at) {
            Some(old) if old == at => return,
            Some(old) => {
                self.queue.remove(&(old, conn));
            }
            None => {}
        }
        self.queue.insert((at, conn));
    }

    /// Disarms the timer of `conn`, if armed.
    pub(crate) fn cancel(&mut self, conn: ConnId) {
        if let Some(at) = self.armed.remove(&conn) {
            self.queue.remove(&(at, conn));
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.queue.first().map(|&(at, _)| at)
    }

    /// Removes and returns a connection whose timer is due at `now`, earliest first.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<ConnId> {
        let &(at, conn) = self.queue.first()?;
        if at > now {
            return None;
        }
        self.queue.pop_first();
        self.armed.remove(&conn);
        Some(conn)
    }

    /// Number of armed timers.
    pub(crate) fn len(&self) -> usize {
        self.armed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_timers_come_out_in_deadline_order_and_rearming_replaces() {
        let mut t = Timers::default();
        let (a, b, c) = (ConnId(1), ConnId(2), ConnId(3));
        t.set(a, Instant::from_millis(30));
        t.set(b, Instant::from_millis(10));
        t.set(c, Instant::from_millis(20));
        t.set(b, Instant::from_millis(40));
        assert_eq!(t.next(), Some(Instant::from_millis(20)));
        assert_eq!(t.pop_due(Instant::from_millis(5)), None);
        assert_eq!(t.pop_due(Instant::from_millis(35)), Some(c));
        assert_eq!(t.pop_due(Instant::from_millis(35)), Some(a));
        assert_eq!(t.pop_due(Instant::from_millis(35)), None);
        t.cancel(b);
        assert_eq!((t.next(), t.len()), (None, 0));
    }
}
