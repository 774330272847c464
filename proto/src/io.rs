//! The server's one door in ([`Input`]) and one door out ([`Output`]).

use bytes::Bytes;
use core::net::SocketAddr;

use crate::ids::{ConnId, Protocol};

/// Something that happened outside the core, fed to [`Server::handle`](crate::Server::handle).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A connection was accepted on the listener of `protocol`.
    Accepted {
        /// The runtime's id for the connection; must not have been used before.
        conn: ConnId,
        /// The protocol of the listener it arrived on.
        protocol: Protocol,
        /// The peer's address, for logs and IP bans.
        peer: SocketAddr,
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
        }
    }
}
