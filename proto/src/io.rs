//! The server's one door in ([`Input`]) and one door out ([`Output`]).

use core::net::SocketAddr;

use bytes::Bytes;

use crate::effect::{Effect, EffectResult};
use crate::ids::{ConnId, EffectId, Protocol, Seq};
pub use crate::peer::Peer;
use crate::persist::Change;

/// Something that happened outside the core, fed to [`Server::handle`](crate::Server::handle).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A connection was accepted on the listener of `protocol`.
    Accepted {
        /// The runtime's id for the connection; must not have been used before, and
        /// below [`ConnId::OUTBOUND`] (the ids from there on are the server's own, for
        /// the connections it asks for with [`Output::Connect`]).
        conn: ConnId,
        /// The protocol of the listener it arrived on.
        protocol: Protocol,
        /// Where it comes from, for IP bans.
        peer: Peer,
    },
    /// Bytes arrived on a connection, in order, split anywhere.
    Received {
        /// The connection.
        conn: ConnId,
        /// The bytes, exactly as read.
        bytes: Bytes,
    },
    /// `n` bytes of earlier transmits on `conn` were handed to the peer's socket. The
    /// server counts transmitted-but-unwritten bytes against `Config::outbound_limit_bytes`.
    Written {
        /// The connection.
        conn: ConnId,
        /// How many bytes were written.
        n: usize,
    },
    /// The peer closed the connection, or it failed; nothing more can be sent on it.
    PeerClosed {
        /// The connection.
        conn: ConnId,
    },
    /// The connection asked for with [`Output::Connect`] is established. From now on it
    /// is like an accepted connection: bytes arrive with [`Input::Received`], writes are
    /// reported with [`Input::Written`], its end with [`Input::PeerClosed`].
    ///
    /// Added with outbound connections; a runtime that never sees an `Output::Connect`
    /// never sends it.
    Connected {
        /// The id from [`Output::Connect`].
        conn: ConnId,
    },
    /// The connection asked for with [`Output::Connect`] could not be established (refused,
    /// unreachable, timed out). The id is spent; the server decides whether and when to
    /// try again, with a new `Output::Connect` and a new id.
    ConnectFailed {
        /// The id from [`Output::Connect`].
        conn: ConnId,
        /// The cause, for the server's own reporting.
        error: String,
    },
    /// An effect the server asked for finished.
    EffectDone {
        /// The id from [`Output::Effect`].
        id: EffectId,
        /// Its outcome.
        result: EffectResult,
    },
    /// Every change up to and including `through` is durably committed.
    Committed {
        /// The highest committed sequence number.
        through: Seq,
    },
    /// A commit failed; the runtime keeps retrying the same batch. Until a `Committed`
    /// arrives the server refuses new durable work with each protocol's error.
    CommitFailed {
        /// The cause, for the server's own reporting.
        error: String,
    },
    /// The server is stopping: every client connection is told so in its protocol's way
    /// (where it has one) and closed with [`CloseReason::Shutdown`]. Acknowledgements
    /// still waiting on a commit go out before the goodbye on their connection. The
    /// runtime stops accepting and reading first, then keeps committing and writing
    /// until the connections are closed or its grace runs out.
    Shutdown,
}

/// Something the core wants done, read from [`Server::poll_output`](crate::Server::poll_output)
/// in order.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `bytes` on `conn`, after everything transmitted on it before.
    Transmit {
        /// The connection.
        conn: ConnId,
        /// The bytes to write.
        bytes: Bytes,
        /// The bytes reveal a durable change: hold them (and everything after them on
        /// this connection, its `Close` included) until this sequence number is committed.
        after: Option<Seq>,
    },
    /// Commit this change durably, in order with the others. Changes may be batched into
    /// one transaction; report it with [`Input::Committed`] or [`Input::CommitFailed`].
    Persist {
        /// Its sequence number, one more than the previous change's.
        seq: Seq,
        /// The change (boxed: it is large and rare, and every output moves through
        /// the queue by value).
        change: Box<Change>,
    },
    /// Run this effect off the event loop and report [`Input::EffectDone`].
    Effect {
        /// Its id; never reused.
        id: EffectId,
        /// What to do.
        effect: Effect,
    },
    /// Open a TCP connection to `addr` as `conn` and report [`Input::Connected`] or
    /// [`Input::ConnectFailed`]; once connected, treat it like an accepted connection.
    /// The server picks `conn` at or above [`ConnId::OUTBOUND`], where a runtime's own
    /// ids never are. A protocol that keeps a link to another server (jabberd's router)
    /// asks for it; the server decides when to try again after a failure (its backoff
    /// runs on the `now` it is given), so a runtime never redials on its own.
    ///
    /// Added with outbound connections, after the other variants: no protocol asks for
    /// one yet, so a driver that cannot dial may answer `ConnectFailed` at once.
    Connect {
        /// The id the connection will have.
        conn: ConnId,
        /// Where to connect.
        addr: SocketAddr,
    },
    /// Close `conn`. The server has forgotten it: later inputs for it are ignored.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why, for logs; [`CloseReason::flush`] tells whether pending bytes should be
        /// written first.
        reason: CloseReason,
    },
}

/// Why the server closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client asked to leave (ws2017 `cquit`).
    Quit,
    /// The client did not answer in time (an unanswered ping, an idle timeout).
    Timeout,
    /// The client stopped reading and its outbound queue passed the limit.
    SlowReader,
    /// The client sent input the protocol cannot recover from.
    ProtocolError,
    /// An administrator kicked the user, banned it or its address, or deleted its account.
    Kicked,
    /// The peer's address is banned.
    Banned,
    /// The conversation is over (an admin command was answered).
    Done,
    /// The server already holds its most connections, in total or from the peer's
    /// address (`Limits::max_connections`, `Limits::max_connections_per_ip`).
    TooManyConnections,
    /// The server is stopping ([`Input::Shutdown`]).
    Shutdown,
    /// The connection did not log in within `Limits::login_timeout`.
    LoginTimeout,
}

impl CloseReason {
    /// Whether the runtime should write what is queued before closing: yes for a goodbye,
    /// no for a reader that stopped reading (waiting for it would be pointless).
    pub const fn flush(self) -> bool {
        !matches!(self, CloseReason::SlowReader)
    }

    /// A short name for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseReason::Quit => "quit",
            CloseReason::Timeout => "timeout",
            CloseReason::SlowReader => "slow reader",
            CloseReason::ProtocolError => "protocol error",
            CloseReason::Kicked => "kicked",
            CloseReason::Banned => "banned",
            CloseReason::Done => "done",
            CloseReason::TooManyConnections => "too many connections",
            CloseReason::Shutdown => "shutdown",
            CloseReason::LoginTimeout => "login timeout",
        }
    }
}
