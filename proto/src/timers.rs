//! Per-connection deadlines, ordered so the next one is found in O(log n).

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::ConnId;
use crate::time::Instant;

/// What a connection's timer is for. A connection has at most one timer of each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKind {
    /// Time to send the next keepalive ping.
    Ping,
    /// A ping went unanswered for too long.
    PingDeadline,
}

/// All armed timers of all connections.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    queue: BTreeSet<(Instant, ConnId, TimerKind)>,
    armed: BTreeMap<(ConnId, TimerKind), Instant>,
}

impl Timers {
    /// Arms (or re-arms) `kind` of `conn` for `at`.
    pub(crate) fn set(&mut self, conn: ConnId, kind: TimerKind, at: Instant) {
        if let Some(old) = self.armed.insert((conn, kind), at) {
            self.queue.remove(&(old, conn, kind));
        }
        self.queue.insert((at, conn, kind));
    }

    /// Disarms `kind` of `conn`, if armed.
    pub(crate) fn cancel(&mut self, conn: ConnId, kind: TimerKind) {
        if let Some(at) = self.armed.remove(&(conn, kind)) {
            self.queue.remove(&(at, conn, kind));
        }
    }

    /// Disarms every timer of `conn`.
    pub(crate) fn cancel_all(&mut self, conn: ConnId) {
        for kind in [TimerKind::Ping, TimerKind::PingDeadline] {
            self.cancel(conn, kind);
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.queue.first().map(|&(at, _, _)| at)
    }

    /// Removes and returns a timer that is due at `now`, earliest first.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(ConnId, TimerKind)> {
        let &(at, conn, kind) = self.queue.first()?;
        if at > now {
            return None;
        }
        self.queue.pop_first();
        self.armed.remove(&(conn, kind));
        Some((conn, kind))
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
        let (a, b) = (ConnId(1), ConnId(2));
        t.set(a, TimerKind::Ping, Instant::from_millis(30));
        t.set(b, TimerKind::Ping, Instant::from_millis(10));
        t.set(a, TimerKind::PingDeadline, Instant::from_millis(20));
        t.set(b, TimerKind::Ping, Instant::from_millis(40));
        assert_eq!(t.next(), Some(Instant::from_millis(20)));
        assert_eq!(t.pop_due(Instant::from_millis(5)), None);
        assert_eq!(
            t.pop_due(Instant::from_millis(35)),
            Some((a, TimerKind::PingDeadline))
        );
        assert_eq!(
            t.pop_due(Instant::from_millis(35)),
            Some((a, TimerKind::Ping))
        );
        assert_eq!(t.pop_due(Instant::from_millis(35)), None);
        t.cancel_all(b);
        assert_eq!((t.next(), t.len()), (None, 0));
    }
}
