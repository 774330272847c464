//! One deadline per connection and one per protocol session, ordered so the next one is
//! found in O(log n). A connection or session keeps what is due in its own state and
//! re-arms its single timer for the earliest.
//!
//! A session's timer is addressed by the session, not by a connection: an arsc session
//! outlives the connection it logged in on, and a jabberd router link carries many
//! sessions, each with its own deadlines. Its protocol handles it through its shared
//! state, wherever the session's connection is.

use std::collections::{BTreeMap, BTreeSet};

use crate::conns::{Conn, Slot};
use crate::ids::{ConnId, Protocol};
use crate::model::SessionId;
use crate::time::Instant;

/// What a due timer wakes. Ties in deadline go connections first, by id, then sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Wake {
    /// A connection's endpoint, with its place in the table (checked against its id: a
    /// place is reused once its connection closes), so that firing looks nothing up.
    Conn(ConnId, Slot),
    /// A session of a protocol, through the protocol's shared state.
    Session(Protocol, SessionId),
    /// A protocol itself, for work tied to no session (trying a link again).
    Protocol(Protocol),
}

/// Every armed timer, ordered by deadline. A connection's own deadline is kept in its
/// record of the connection table, a session's here.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// Connections' deadlines: the bulk (one per connection), kept apart so ordering them
    /// compares a connection id, not a [`Wake`].
    conns: BTreeSet<(Instant, ConnId, Slot)>,
    /// Sessions' and protocols' deadlines.
    queue: BTreeSet<(Instant, Wake)>,
    sessions: BTreeMap<(Protocol, SessionId), Instant>,
    protocols: BTreeMap<Protocol, Instant>,
}

impl Timers {
    /// Arms (or re-arms) the timer of `conn`, which is in `slot`, for `at`.
    pub(crate) fn set(&mut self, conn: &mut Conn, slot: Slot, at: Instant) {
        match conn.timer.replace(at) {
            Some(old) if old == at => return,
            Some(old) => {
                self.conns.remove(&(old, conn.id, slot));
            }
            None => {}
        }
        self.conns.insert((at, conn.id, slot));
    }

    /// Disarms the timer of `conn`, which is in `slot`, if armed.
    pub(crate) fn cancel(&mut self, conn: &mut Conn, slot: Slot) {
        if let Some(at) = conn.timer.take() {
            self.conns.remove(&(at, conn.id, slot));
        }
    }

    /// Arms (or re-arms) the timer of `session` of `protocol` for `at`.
    pub(crate) fn set_session(&mut self, protocol: Protocol, session: SessionId, at: Instant) {
        let wake = Wake::Session(protocol, session);
        match self.sessions.insert((protocol, session), at) {
            Some(old) if old == at => return,
            Some(old) => {
                self.queue.remove(&(old, wake));
            }
            None => {}
        }
        self.queue.insert((at, wake));
    }

    /// Arms (or re-arms) the timer of `protocol` itself for `at`.
    pub(crate) fn set_protocol(&mut self, protocol: Protocol, at: Instant) {
        let wake = Wake::Protocol(protocol);
        match self.protocols.insert(protocol, at) {
            Some(old) if old == at => return,
            Some(old) => {
                self.queue.remove(&(old, wake));
            }
            None => {}
        }
        self.queue.insert((at, wake));
    }

    /// Disarms the timer of `session` of `protocol`, if armed.
    pub(crate) fn cancel_session(&mut self, protocol: Protocol, session: SessionId) {
        if let Some(at) = self.sessions.remove(&(protocol, session)) {
            self.queue.remove(&(at, Wake::Session(protocol, session)));
        }
    }

    /// When the timer of `session` of `protocol` is armed for, if it is.
    #[cfg(test)]
    pub(crate) fn session_deadline(
        &self,
        protocol: Protocol,
        session: SessionId,
    ) -> Option<Instant> {
        self.sessions.get(&(protocol, session)).copied()
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        let conn = self.conns.first().map(|&(at, ..)| at);
        let other = self.queue.first().map(|&(at, _)| at);
        match (conn, other) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes and returns what a timer due at `now` wakes, earliest first. For a
    /// connection the caller disarms it in the connection's record.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Wake> {
        let conn = self.conns.first().copied().filter(|&(at, ..)| at <= now);
        let other = self.queue.first().copied().filter(|&(at, _)| at <= now);
        // Ties go to the connection, as the order of `Wake` says.
        let conn_first = match (conn, other) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((a, ..)), Some((b, _))) => a <= b,
        };
        if conn_first {
            let (_, id, slot) = self.conns.pop_first()?;
            return Some(Wake::Conn(id, slot));
        }
        let (_, wake) = self.queue.pop_first()?;
        match wake {
            Wake::Conn(..) => {}
            Wake::Session(protocol, session) => {
                self.sessions.remove(&(protocol, session));
            }
            Wake::Protocol(protocol) => {
                self.protocols.remove(&protocol);
            }
        }
        Some(wake)
    }

    /// Number of armed timers.
    pub(crate) fn len(&self) -> usize {
        self.conns.len() + self.queue.len()
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
                protocol: Protocol::Admin,
                endpoint: None,
                link: Default::default(),
                limits: Default::default(),
                timer: None,
                drain: None,
                requests_handed: 0,
            });
        }
        let mut t = Timers::default();
        let (a, b, c) = (ConnId(1), ConnId(2), ConnId(3));
        let mut set = |t: &mut Timers, id, ms| {
            let slot = table.slot(id).expect("open");
            if let Some(conn) = table.get_mut(id) {
                t.set(conn, slot, Instant::from_millis(ms));
            }
        };
        set(&mut t, a, 30);
        set(&mut t, b, 10);
        set(&mut t, c, 20);
        set(&mut t, b, 40);
        assert_eq!(t.next(), Some(Instant::from_millis(20)));
        assert_eq!(t.len(), 3);
        assert_eq!(t.pop_due(Instant::from_millis(5)), None);
        let slot = |id| table.slot(id).expect("open");
        assert_eq!(
            t.pop_due(Instant::from_millis(35)),
            Some(Wake::Conn(c, slot(c)))
        );
        assert_eq!(
            t.pop_due(Instant::from_millis(35)),
            Some(Wake::Conn(a, slot(a)))
        );
        assert_eq!(t.pop_due(Instant::from_millis(35)), None);
        let b_slot = slot(b);
        if let Some(conn) = table.get_mut(b) {
            t.cancel(conn, b_slot);
            assert_eq!(conn.timer, None);
        }
        assert_eq!((t.next(), t.len()), (None, 0));
    }

    #[test]
    fn session_timers_are_kept_apart_from_connection_timers_and_by_protocol() {
        let mut table = Table::default();
        table.insert(Conn {
            id: ConnId(7),
            peer: Peer::Local,
            protocol: Protocol::Admin,
            endpoint: None,
            link: Default::default(),
            limits: Default::default(),
            timer: None,
            drain: None,
            requests_handed: 0,
        });
        let mut t = Timers::default();
        let s = SessionId::for_test(7);
        let at = Instant::from_millis;
        let slot = table.slot(ConnId(7)).expect("open");
        if let Some(conn) = table.get_mut(ConnId(7)) {
            t.set(conn, slot, at(10));
        }
        // A session of the same number as the connection, in two protocols: three timers.
        t.set_session(Protocol::Ws2017, s, at(10));
        t.set_session(Protocol::Admin, s, at(5));
        assert_eq!(t.len(), 3);
        // Re-arming a session replaces its deadline; cancelling one protocol's session
        // leaves the other's.
        t.set_session(Protocol::Ws2017, s, at(20));
        assert_eq!(t.session_deadline(Protocol::Ws2017, s), Some(at(20)));
        assert_eq!(t.len(), 3);
        assert_eq!(t.pop_due(at(30)), Some(Wake::Session(Protocol::Admin, s)));
        assert_eq!(t.pop_due(at(30)), Some(Wake::Conn(ConnId(7), slot)));
        assert_eq!(t.pop_due(at(30)), Some(Wake::Session(Protocol::Ws2017, s)));
        assert_eq!(
            t.session_deadline(Protocol::Ws2017, s),
            None,
            "fired is disarmed"
        );
        t.set_session(Protocol::Ws2017, s, at(40));
        t.cancel_session(Protocol::Ws2017, s);
        assert_eq!((t.next(), t.len()), (None, 0));
    }
}
