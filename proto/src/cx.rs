//! What a protocol session may touch while it handles an input: the clock, the network
//! model, its own timers and the output queue.

use core::net::{IpAddr, SocketAddr};
use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

use crate::config::Config;
use crate::conns::{Slot, Table};
use crate::effect::Effect;
use crate::ids::Protocol;
use crate::ids::{ConnId, EffectId, Seq};
use crate::io::{CloseReason, Peer};
use crate::limits::{Cost, Limiter, Refusal};
use crate::model::{
    Audience, Event, Item, KickReason, Network, Outcome, Outgoing, Route, SessionId,
};
use crate::names::UserName;
use crate::outbox::Outbox;
use crate::persist::{Change, FriendRequest, StoredMessage};
use crate::time::{Instant, Now};
use crate::timers::Timers;

/// The context lent to a session for one input, bound to its connection.
pub(crate) struct Cx<'a> {
    pub(crate) now: Now,
    pub(crate) conn: ConnId,
    pub(crate) peer: Peer,
    /// The connection's place in `conns`.
    pub(crate) slot: Slot,
    /// The protocol it speaks.
    pub(crate) protocol: Protocol,
    pub(crate) config: &'a Config,
    pub(crate) net: &'a mut Network,
    pub(crate) conns: &'a mut Table,
    pub(crate) homes: &'a mut Homes,
    pub(crate) dialing: &'a mut Dialing,
    pub(crate) timers: &'a mut Timers,
    pub(crate) out: &'a mut Outbox,
    pub(crate) limits: &'a mut Limiter,
    /// The server's random generator (arsc sids).
    pub(crate) rng: &'a mut crate::rng::Rng,
}

/// Where each session of a protocol that told the server is: on which connection, or
/// on none (its protocol holds it, as arsc holds a session between connections). Events
/// addressed to a session ([`Audience::Session`](crate::model::Audience)) go there.
pub(crate) type Homes = BTreeMap<SessionId, Home>;

/// The outbound connections asked for ([`Output::Connect`](crate::Output::Connect)) and
/// not yet reported connected or failed, and the next id to give one.
#[derive(Debug, Default)]
pub(crate) struct Dialing {
    pending: BTreeMap<ConnId, Dial>,
    next: u64,
}

/// An outbound connection asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dial {
    /// The protocol that asked for it, and that will speak on it.
    pub(crate) protocol: Protocol,
    /// Where to.
    pub(crate) addr: SocketAddr,
}

impl Dialing {
    /// Takes the dial of `conn`, reported connected or failed.
    pub(crate) fn remove(&mut self, conn: &ConnId) -> Option<Dial> {
        self.pending.remove(conn)
    }
}

/// Where a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Home {
    /// The protocol that holds the session.
    pub(crate) protocol: Protocol,
    /// The connection its events go to, if it has one now.
    pub(crate) conn: Option<ConnId>,
}

/// The context lent to a protocol for work not bound to one connection: a session's
/// timer, an event for a session that has no connection, or a connection's handler
/// reaching across connections (an arsc `post` on a fresh connection writes to the
/// connection that logged in). Everything it sends names its connection.
#[allow(dead_code)]
pub(crate) struct Px<'a> {
    pub(crate) now: Now,
    pub(crate) config: &'a Config,
    pub(crate) net: &'a mut Network,
    pub(crate) conns: &'a mut Table,
    pub(crate) homes: &'a mut Homes,
    pub(crate) dialing: &'a mut Dialing,
    pub(crate) timers: &'a mut Timers,
    pub(crate) out: &'a mut Outbox,
}

// Until arsc and jabberd use all of it, parts are used by the probe protocol's tests only.
#[allow(dead_code)]
impl Px<'_> {
    /// Sends bytes to `conn`, if it is open.
    pub(crate) fn send_to(&mut self, conn: ConnId, bytes: Bytes) {
        if let Some(slot) = self.conns.slot(conn) {
            self.out.transmit(self.conns, slot, bytes, None);
        }
    }

    /// Sends bytes to `conn`, if it is open; with `after`, they reveal that durable
    /// change and leave once it is committed.
    pub(crate) fn send_to_after(&mut self, conn: ConnId, bytes: Bytes, after: Option<Seq>) {
        if let Some(slot) = self.conns.slot(conn) {
            self.out.transmit(self.conns, slot, bytes, after);
        }
    }

    /// Sends what `encode` appends to `conn`, if it is open, encoded straight into its
    /// queued transmit (no buffer of its own); with `after`, as [`Px::send_to_after`].
    pub(crate) fn send_to_with(
        &mut self,
        conn: ConnId,
        after: Option<Seq>,
        encode: impl FnOnce(&mut BytesMut),
    ) {
        if let Some(slot) = self.conns.slot(conn) {
            self.out.transmit_with(self.conns, slot, after, encode);
        }
    }

    /// Whether `conn` is open (not closing).
    pub(crate) fn is_open(&self, conn: ConnId) -> bool {
        (self.conns.get(conn)).is_some_and(|c| c.link.is_open())
    }

    /// Closes `conn` once the current input is handled.
    pub(crate) fn close(&mut self, conn: ConnId, reason: CloseReason) {
        if let Some(record) = self.conns.get_mut(conn) {
            self.out.close(record, Some(reason));
        }
    }

    /// Arms the timer of `session` of `protocol`, at least a millisecond from now (as a
    /// connection's), replacing the one armed before.
    pub(crate) fn set_session_timer(
        &mut self,
        protocol: Protocol,
        session: SessionId,
        at: Instant,
    ) {
        let earliest = self.now.mono + core::time::Duration::from_millis(1);
        self.timers.set_session(protocol, session, at.max(earliest));
    }

    /// Arms the timer of `protocol` itself (for work tied to no session, such as trying
    /// a link again), at least a millisecond from now, replacing the one armed before.
    pub(crate) fn set_protocol_timer(&mut self, protocol: Protocol, at: Instant) {
        let earliest = self.now.mono + core::time::Duration::from_millis(1);
        self.timers.set_protocol(protocol, at.max(earliest));
    }

    /// Asks the runtime for a connection to `addr` for `protocol`; returns its id. The
    /// protocol hears [`Endpoint::connected`](crate::protocol::Endpoint::connected) once
    /// it is up, or [`Shared::on_connect_failed`](crate::protocol::Shared::on_connect_failed),
    /// and decides itself when to try again.
    pub(crate) fn connect(&mut self, protocol: Protocol, addr: SocketAddr) -> ConnId {
        let conn = ConnId(ConnId::OUTBOUND.0 + self.dialing.next);
        self.dialing.next += 1;
        self.dialing.pending.insert(conn, Dial { protocol, addr });
        self.out.connect(conn, addr);
        conn
    }

    /// Disarms the timer of `session` of `protocol`.
    pub(crate) fn cancel_session_timer(&mut self, protocol: Protocol, session: SessionId) {
        self.timers.cancel_session(protocol, session);
    }

    /// Tells the server where `session` of `protocol` is now: on `conn`, or (with
    /// `None`) on no connection, its events then handed to the protocol itself.
    pub(crate) fn place(&mut self, protocol: Protocol, session: SessionId, conn: Option<ConnId>) {
        self.homes.insert(session, Home { protocol, conn });
    }

    /// Where `session` is, if its protocol placed it.
    pub(crate) fn home(&self, session: SessionId) -> Option<Home> {
        self.homes.get(&session).copied()
    }

    /// Forgets where `session` is (it ended), and disarms its timer.
    pub(crate) fn forget(&mut self, session: SessionId) {
        if let Some(home) = self.homes.remove(&session) {
            self.timers.cancel_session(home.protocol, session);
        }
    }

    /// Queues `event` for `session`, wherever it is when the event is handed out.
    pub(crate) fn notify(&mut self, session: SessionId, event: Event) {
        self.net.notify(Audience::Session(session), event);
    }
}

impl Cx<'_> {
    /// The protocol-wide context, for work beyond this connection.
    pub(crate) fn px(&mut self) -> Px<'_> {
        Px {
            now: self.now,
            config: self.config,
            net: self.net,
            conns: self.conns,
            homes: self.homes,
            dialing: self.dialing,
            timers: self.timers,
            out: self.out,
        }
    }

    /// Places `session` on this connection: events addressed to it come here.
    pub(crate) fn place_here(&mut self, session: SessionId) {
        let (protocol, conn) = (self.protocol, Some(self.conn));
        self.homes.insert(session, Home { protocol, conn });
    }

    /// Sends bytes to this connection.
    pub(crate) fn send(&mut self, bytes: Bytes) {
        self.out.transmit(self.conns, self.slot, bytes, None);
    }

    /// Sends bytes shared by many recipients (a broadcast's one encoding) to this
    /// connection: copied into its queued transmit, no reference count taken, when they
    /// join one.
    pub(crate) fn send_shared(&mut self, bytes: &Bytes) {
        self.out.transmit_shared(self.conns, self.slot, bytes, None);
    }

    /// Sends what `encode` appends, encoded straight into this connection's queued
    /// transmit: no buffer of its own per reply. `encode` only appends.
    pub(crate) fn send_with(&mut self, encode: impl FnOnce(&mut BytesMut)) {
        self.out.transmit_with(self.conns, self.slot, None, encode);
    }

    /// Sends the `len` bytes `encode` appends, held until `after` is committed if given:
    /// a short reply encoded straight into this connection's queued transmit (no buffer
    /// of its own), a long one into bytes of exactly its length.
    pub(crate) fn send_encoded(
        &mut self,
        after: Option<Seq>,
        len: usize,
        encode: impl FnOnce(&mut BytesMut),
    ) {
        (self.out).transmit_encoded(self.conns, self.slot, after, len, encode);
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

    /// Persists `change`, a change `me` made to its friendship with `other`, and tells
    /// `other` of it whatever protocol it speaks: a request, or the answer that makes the
    /// friendship, goes to its live sessions; an acceptance also waits in its mailbox
    /// while it is offline (unless the mailbox is full: the friendship shows in its
    /// contacts either way). Returns what a reply to `me` waits for.
    pub(crate) fn persist_friends(
        &mut self,
        me: &UserName,
        other: &UserName,
        change: Change,
    ) -> Seq {
        let news = match &change {
            Change::FriendRequested { .. } => Some(false),
            Change::FriendshipMade { .. } => Some(true),
            _ => None,
        };
        let mut seq = self.persist(change);
        if news == Some(true) && !self.net.is_online(other.key_ref()) {
            let cap = self.config.offline_cap;
            if let Some(stored) = self.net.acceptance_change(me, other, self.now.wall_ms, cap) {
                seq = self.persist(stored);
            }
        }
        if let Some(accepted) = news {
            self.net.tell_friend(me, other, accepted);
        }
        seq
    }

    /// Delivers a direct message on the route [`Network::route_direct`] just gave for it
    /// (a protocol asks the route first to run its gates), through
    /// [`Network::deliver_routed`], which stores it through this connection's output when
    /// the recipient is offline.
    pub(crate) fn deliver_routed(&mut self, message: Outgoing, route: Route) -> Outcome {
        let out = &mut self.out;
        self.net.deliver_routed(message, route, |change| {
            let seq = out.next_seq();
            out.persist(seq, change.clone());
            seq
        })
    }

    /// Hands the mailbox of `session` ([`Network::drain_mailbox`]) to this connection,
    /// each item as `encode` writes it, in order, and none before `after` is committed.
    /// Each stored message is removed by a change the server persists once the runtime
    /// reports its bytes written here (`Input::Written`); if the connection is lost
    /// first, or the server crashes before that change is committed, the message stays
    /// and is handed again, with its id.
    ///
    /// A mailbox may hold more than a connection may have unwritten: messages are handed
    /// while the connection's unwritten bytes stay within half its outbound limit, then
    /// the drain pauses ([`Network::pause_drain`]: new messages to the user are stored
    /// behind the old ones) and the protocol's endpoint is asked to call this again
    /// (`Endpoint::on_drain`) once the runtime has written down to a quarter. Friend
    /// requests follow the last message. Returns whether the mailbox is all handed out.
    pub(crate) fn drain_mailbox(
        &mut self,
        session: SessionId,
        after: Option<Seq>,
        mut encode: impl FnMut(Handout<'_>) -> Bytes,
    ) -> bool {
        let Some(key) = self.net.session(session).map(|s| s.name.key()) else {
            return true;
        };
        let window = self.config.outbound_limit_bytes / 2;
        let drain = self.net.drain_mailbox(session);
        let mailbox = Item::Mailbox(key.clone());
        for message in &drain.messages {
            let bytes = encode(Handout::Message(message));
            let Some(unwritten) = (self.conns.at(self.slot))
                .filter(|c| c.link.is_open())
                .map(|c| c.link.unwritten())
            else {
                return false;
            };
            // At least one message goes out on an idle connection, however long.
            if unwritten > 0 && unwritten + bytes.len() > window {
                self.net.pause_drain(session);
                if let Some(conn) = self.conns.at_mut(self.slot) {
                    conn.drain = Some(session);
                }
                return false;
            }
            let wait = self.net.wait_for(&mailbox).max(after);
            self.out.transmit(self.conns, self.slot, bytes, wait);
            let Some(end) = (self.conns.at(self.slot))
                .filter(|c| c.link.is_open())
                .map(|c| c.link.sent())
            else {
                // Closed (a slow reader): nothing more is handed; the rest stays stored.
                return false;
            };
            self.net.handed(self.conn, &key, message.id, end);
        }
        self.net.drain_done(session);
        // Friend requests go out in the same windows (a login with many of them pending
        // must not overrun the connection's outbound limit and be closed as a slow
        // reader at every login: they stay pending until answered). A drain resumed
        // among them skips those already handed on this connection.
        let resumed = (self.conns.at(self.slot)).filter(|c| c.drain == Some(session));
        let skip = resumed.map_or(0, |c| c.requests_handed);
        let friends = Item::Friends(key);
        for (handed, request) in drain.requests.iter().enumerate().skip(skip) {
            let from = self.net.state().shown_name(&request.from);
            let bytes = encode(Handout::FriendRequest { request, from });
            let Some(unwritten) = (self.conns.at(self.slot))
                .filter(|c| c.link.is_open())
                .map(|c| c.link.unwritten())
            else {
                return false;
            };
            if unwritten > 0 && unwritten + bytes.len() > window {
                if let Some(conn) = self.conns.at_mut(self.slot) {
                    conn.drain = Some(session);
                    conn.requests_handed = handed;
                }
                return false;
            }
            let wait = self.net.wait_for(&friends).max(after);
            self.out.transmit(self.conns, self.slot, bytes, wait);
        }
        if let Some(conn) = self.conns.at_mut(self.slot) {
            conn.drain = None;
            conn.requests_handed = 0;
        }
        true
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

    /// Takes a token for a request of `cost` from the buckets of the connection `conn`
    /// (and its address) rather than this one's: for a protocol whose requests name a
    /// session that may be used from any connection (arsc's sid), so that opening more
    /// connections gives a user no more tokens. A connection no longer open is charged
    /// nothing, as in [`Cx::charge`].
    pub(crate) fn charge_for(&mut self, conn: ConnId, cost: Cost) -> Result<(), Refusal> {
        let Some(conn) = self.conns.get_mut(conn) else {
            return Ok(());
        };
        (self.limits).charge(&self.config.limits, &mut conn.limits, cost, self.now.mono)
    }

    /// Arms this connection's timer. It fires at least a millisecond from now, so a
    /// zero interval in the configuration cannot make `handle_timeout` spin.
    pub(crate) fn set_timer(&mut self, at: Instant) {
        let earliest = self.now.mono + core::time::Duration::from_millis(1);
        if let Some(conn) = self.conns.at_mut(self.slot) {
            self.timers.set(conn, self.slot, at.max(earliest));
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

/// One item of a mailbox handed to a session at login.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Handout<'a> {
    /// A stored message.
    Message(&'a StoredMessage),
    /// A pending friend request to the user, and its sender's name as registered.
    FriendRequest {
        request: &'a FriendRequest,
        from: &'a str,
    },
}
