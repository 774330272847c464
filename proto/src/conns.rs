//! The one table of open connections: a record per connection with everything the
//! server keeps for it (where it comes from, its protocol state, what it has sent and not
//! had written, its rate buckets, its timer). A connection enters the table when it is
//! accepted and leaves it when it is torn down, both in [`Server`](crate::Server), so no
//! part of the server can keep a connection the others forgot.

use std::collections::HashMap;

use crate::ids::{ConnId, Protocol};
use crate::io::Peer;
use crate::limits::ConnLimits;
use crate::outbox::Link;
use crate::protocol::Endpoint;
use crate::time::Instant;

/// A connection's place in the [`Table`]: stable while it is open, reused after.
pub(crate) type Slot = usize;

/// One open connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: ConnId,
    pub(crate) peer: Peer,
    /// The protocol it speaks.
    pub(crate) protocol: Protocol,
    /// Its protocol state; `None` only while the server has lent it to a call, or
    /// before its protocol opened it. Each variant boxes its session: lending it out moves
    /// two words, not the largest protocol's state, once per recipient of every
    /// broadcast, and an idle connection holds only its own protocol's state.
    pub(crate) endpoint: Option<Endpoint>,
    /// What the outbox knows of its transport.
    pub(crate) link: Link,
    /// Its admission and rate buckets.
    pub(crate) limits: ConnLimits,
    /// When its timer is armed for, if it is.
    pub(crate) timer: Option<Instant>,
    /// The session whose mailbox it is handing out, paused until the runtime has
    /// written more of what it was handed ([`Cx::drain_mailbox`](crate::cx::Cx::drain_mailbox)).
    pub(crate) drain: Option<crate::model::SessionId>,
    /// Friend requests of that drain already handed out on this connection (a drain may
    /// pause among them too; they stay pending, so they are counted, not removed).
    pub(crate) requests_handed: usize,
}

/// Every open connection, by slot, with an index by id. Looked up on every input and
/// transmit: slots are vector positions, and the index a hash map with the deterministic
/// Fx hasher (ids are the server's, not a peer's, so no flooding of one bucket); it is never iterated to produce output (the server keeps the
/// connections' order by id for that).
#[derive(Debug, Default)]
pub(crate) struct Table {
    slots: Vec<Option<Conn>>,
    free: Vec<Slot>,
    by_id: HashMap<ConnId, Slot, rustc_hash::FxBuildHasher>,
}

impl Table {
    /// The slot of an open connection.
    pub(crate) fn slot(&self, id: ConnId) -> Option<Slot> {
        self.by_id.get(&id).copied()
    }

    /// An open connection, by id.
    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn> {
        self.at(self.slot(id)?)
    }

    /// An open connection, by id.
    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let slot = self.slot(id)?;
        self.at_mut(slot)
    }

    /// The connection in `slot`.
    pub(crate) fn at(&self, slot: Slot) -> Option<&Conn> {
        self.slots.get(slot)?.as_ref()
    }

    /// The connection in `slot`.
    pub(crate) fn at_mut(&mut self, slot: Slot) -> Option<&mut Conn> {
        self.slots.get_mut(slot)?.as_mut()
    }

    /// Every open connection, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.slots.iter().flatten()
    }

    /// Open connections.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Adds a connection whose id is not in the table.
    pub(crate) fn insert(&mut self, conn: Conn) -> Slot {
        let id = conn.id;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(conn);
                slot
            }
            None => {
                self.slots.push(Some(conn));
                self.slots.len() - 1
            }
        };
        self.by_id.insert(id, slot);
        slot
    }

    /// Removes a connection.
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let slot = self.by_id.remove(&id)?;
        self.free.push(slot);
        self.slots[slot].take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(id: u64) -> Conn {
        Conn {
            id: ConnId(id),
            peer: Peer::Local,
            protocol: Protocol::Admin,
            endpoint: None,
            link: Link::default(),
            limits: ConnLimits::default(),
            timer: None,
            drain: None,
            requests_handed: 0,
        }
    }

    #[test]
    fn slots_are_reused_and_ids_find_their_connection() {
        let mut t = Table::default();
        let a = t.insert(conn(1));
        let b = t.insert(conn(2));
        assert_ne!(a, b);
        assert_eq!(t.remove(ConnId(1)).map(|c| c.id), Some(ConnId(1)));
        assert!(t.get(ConnId(1)).is_none());
        assert!(t.remove(ConnId(1)).is_none());
        let c = t.insert(conn(3));
        assert_eq!(c, a, "the freed slot");
        assert_eq!(t.get(ConnId(3)).map(|c| c.id), Some(ConnId(3)));
        assert_eq!(t.get(ConnId(2)).map(|c| c.id), Some(ConnId(2)));
        assert_eq!(t.len(), 2);
        assert_eq!(t.iter().count(), 2);
    }
}
