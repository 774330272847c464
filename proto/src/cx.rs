//! What a protocol session may touch while it handles an input: the clock, the network
//! model, its own timers and the output queue.

use core::net::IpAddr;

use bytes::Bytes;

use crate::config::Config;
use crate::conns::{Slot, Table};
use crate::effect::Effect;
use crate::ids::{ConnId, EffectId, Seq};
use crate::io::{CloseReason, Peer};
use crate::limits::{Cost, Limiter, Refusal};
use crate::model::{Item, KickReason, Network};
use crate::outbox::Outbox;
use crate::persist::Change;
use crate::time::{Instant, Now};
use crate::timers::Timers;

/// The context lent to a session for one input, bound to its connection.
pub(crate) struct Cx<'a> {
    pub(crate) now: Now,
    pub(crate) conn: ConnId,
    pub(crate) peer: Peer,
    /// The connection's place in `conns`.
    pub(crate) slot: Slot,
    pub(crate) config: &'a Config,
    pub(crate) net: &'a mut Network,
    pub(crate) conns: &'a mut Table,
    pub(crate) timers: &'a mut Timers,
    pub(crate) out: &'a mut Outbox,
    pub(crate) limits: &'a mut Limiter,
}

impl Cx<'_> {
    /// Sends bytes to this connection.
    pub(crate) fn send(&mut self, bytes: Bytes) {
        self.out.transmit(self.conns, self.slot, bytes, None);
    }

    /// Sends bytes that reveal the durable change `seq`: they leave once it is committed.
    pub(crate) fn send_after(&mut self, bytes: Bytes, seq: Seq) {
        self.out.transmit(self.conns, self.slot, bytes, Some(seq));
    }

    /// Applies a durable change to the network's state and queues it for the store.
    /// The only way durable state changes.
    pub(crate) fn persist(&mut self, change: Change) -> Seq {
        #[cfg(feature = "planted-bugs")]
        if self.config.planted_bug == Some(crate::config::PlantedBug::UnpersistedAccount)
            && matches!(change, Change::AccountCreated(_))
        {
            self.net.apply(&change, Seq::default());
            return Seq::default();
        }
        let seq = self.out.next_seq();
        self.net.apply(&change, seq);
        self.out.persist(seq, change);
        seq
    }

    /// Sends bytes that depend on durable `item` (they say an account exists, or an
    /// address is banned): they wait for its pending change, if any, to be committed.
    pub(crate) fn send_about(&mut self, item: &Item, bytes: Bytes) {
        let after = self.net.wait_for(item);
        self.out.transmit(self.conns, self.slot, bytes, after);
    }

    /// Sends bytes that depend on all durable state (a listing): they wait until every
    /// change so far is committed.
    pub(crate) fn send_about_all(&mut self, bytes: Bytes) {
        let after = self.net.wait_for_all();
        #[cfg(feature = "planted-bugs")]
        let after = after
            .filter(|_| self.config.planted_bug != Some(crate::config::PlantedBug::EarlyListing));
        self.out.transmit(self.conns, self.slot, bytes, after);
    }

    /// Whether output of this connection is held behind an uncommitted change, so the
    /// peer cannot be hearing from the server (and its silence proves nothing).
    pub(crate) fn output_held(&self) -> bool {
        (self.conns.at(self.slot)).is_some_and(|c| self.out.held(&c.link))
    }

    /// Whether the store is accepting durable work; while a commit is failing, new
    /// durable requests get the protocol's error instead.
    pub(crate) fn store_ok(&self) -> bool {
        !self.net.store_failing()
    }

    /// Asks the runtime to run `effect`; the result comes back to this connection.
    pub(crate) fn effect(&mut self, effect: Effect) -> EffectId {
        self.out.effect(self.conn, effect)
    }

    /// Closes this connection once the current input is handled; bytes sent before stay
    /// queued ahead of the close.
    pub(crate) fn close(&mut self, reason: CloseReason) {
        if let Some(conn) = self.conns.at_mut(self.slot) {
            self.out.close(conn, Some(reason));
        }
    }

    /// Whether this connection has room for a reply of `len` bytes under its outbound
    /// limit (`Config::outbound_limit_bytes`) and the budget of all connections. Asked
    /// before a request takes effect, with the length of its reply: when there is no
    /// room the connection is closed as a slow reader and the request must be dropped
    /// unhandled, so a change never takes effect whose acknowledgement the close would
    /// then drop (the client would resend it after reconnecting).
    pub(crate) fn room_for(&mut self, len: usize) -> bool {
        self.out.room_for(self.conns, self.slot, len)
    }

    /// Whether this connection is still open (not closing).
    pub(crate) fn is_open(&self) -> bool {
        (self.conns.at(self.slot)).is_some_and(|c| c.link.is_open())
    }

    /// Whether this connection was admitted under the connection caps; a refused one
    /// gets its protocol's error and is closed with [`CloseReason::TooManyConnections`].
    pub(crate) fn admission(&self) -> Result<(), Refusal> {
        match self.conns.at(self.slot) {
            Some(conn) => conn.limits.admission(),
            None => Ok(()),
        }
    }

    /// Takes a token for a request of `cost` from this connection's and its address's
    /// buckets; when either is empty the request must be refused, undone.
    pub(crate) fn charge(&mut self, cost: Cost) -> Result<(), Refusal> {
        let Some(conn) = self.conns.at_mut(self.slot) else {
            return Ok(());
        };
        (self.limits).charge(&self.config.limits, &mut conn.limits, cost, self.now.mono)
    }

    /// Arms this connection's timer. It fires at least a millisecond from now, so a
    /// zero interval in the configuration cannot make `handle_timeout` spin.
    pub(crate) fn set_timer(&mut self, at: Instant) {
        let earliest = self.now.mono + core::time::Duration::from_millis(1);
        if let Some(conn) = self.conns.at_mut(self.slot) {
            self.timers.set(conn, at.max(earliest));
        }
    }

    /// Kicks every connection from `ip` (its protocol closes it as banned); returns how
    /// many there were.
    pub(crate) fn kick_ip(&mut self, ip: IpAddr) -> usize {
        let mut conns: Vec<ConnId> = (self.conns.iter())
            .filter(|c| c.peer.ip() == Some(ip))
            .map(|c| c.id)
            .collect();
        // In id order, as every walk over connections that produces output.
        conns.sort_unstable();
        for &conn in &conns {
            self.net.kick_conn(conn, KickReason::Banned);
        }
        conns.len()
    }
}
