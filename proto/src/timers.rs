//! One deadline per connection, ordered so the next one is found in O(log n). A session
//! keeps what is due in its own state and re-arms its single timer for the earliest.

use std::collections::BTreeSet;

use crate::conns::Conn;
use crate::ids::ConnId;
use crate::time::Instant;

/// Every armed connection timer, ordered by deadline; each connection's own deadline is
/// kept in its record of the connection table.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    queue: BTreeSet<(Instant, ConnId)>,
}

impl Timers {
    /// Arms (or re-arms) the timer of `conn` for `at`.
    pub(crate) fn set(&mut self, conn: &mut Conn, at: Instant) {
        match conn.timer.replace(at) {
            Some(old) if old == at => return,
            Some(old) => {
                self.queue.remove(&(old, conn.id));
            }
            None => {}
        }
        self.queue.insert((at, conn.id));
    }

    /// Disarms the timer of `conn`, if armed.
    pub(crate) fn cancel(&mut self, conn: &mut Conn) {
        if let Some(at) = conn.timer.take() {
            self.queue.remove(&(at, conn.id));
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.queue.first().map(|&(at, _)| at)
    }

    /// Removes and returns a connection whose timer is due at `now`, earliest first; the
    /// caller disarms it in the connection's record.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<ConnId> {
        let &(at, conn) = self.queue.first()?;
        if at > now {
            return None;
        }
        self.queue.pop_first();
        Some(conn)
    }

    /// Number of armed timers.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conns::Table;
    use crate::io::Peer;

    #[test]
    fn due_timers_come_out_in_deadline_order_and_rearming_replaces() {
        let mut table = Table::default();
        for id in 1..=3 {
            table.insert(Conn {
                id: ConnId(id),
                peer: Peer::Local,
                endpoint: None,
                link: Default::default(),
                limits: Default::default(),
                timer: None,
            });
        }
        let mut t = Timers::default();
        let (a, b, c) = (ConnId(1), ConnId(2), ConnId(3));
        let mut set = |t: &mut Timers, id, ms| {
            if let Some(conn) = table.get_mut(id) {
                t.set(conn, Instant::from_millis(ms));
            }
        };
        set(&mut t, a, 30);
        set(&mut t, b, 10);
        set(&mut t, c, 20);
        set(&mut t, b, 40);
        assert_eq!(t.next(), Some(Instant::from_millis(20)));
        assert_eq!(t.len(), 3);
        assert_eq!(t.pop_due(Instant::from_millis(5)), None);
        assert_eq!(t.pop_due(Instant::from_millis(35)), Some(c));
        assert_eq!(t.pop_due(Instant::from_millis(35)), Some(a));
        assert_eq!(t.pop_due(Instant::from_millis(35)), None);
        if let Some(conn) = table.get_mut(b) {
            t.cancel(conn);
            assert_eq!(conn.timer, None);
        }
        assert_eq!((t.next(), t.len()), (None, 0));
    }
}
