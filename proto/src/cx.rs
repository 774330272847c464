//! What a protocol session may touch while it handles an input: the clock, the network
//! model, its own timers and the output queue.

use bytes::Bytes;

use crate::config::Config;
use crate::ids::ConnId;
use crate::io::CloseReason;
use crate::model::Network;
use crate::outbox::Outbox;
use crate::time::{Instant, Now};
use crate::timers::{TimerKind, Timers};

/// The context lent to a session for one input, bound to its connection.
pub(crate) struct Cx<'a> {
    pub(crate) now: Now,
    pub(crate) conn: ConnId,
    pub(crate) config: &'a Config,
    pub(crate) net: &'a mut Network,
    pub(crate) timers: &'a mut Timers,
    pub(crate) out: &'a mut Outbox,
}

impl Cx<'_> {
    /// Sends bytes to this connection.
    pub(crate) fn send(&mut self, bytes: Bytes) {
        self.out.transmit(self.conn, bytes);
    }

    /// Closes this connection once the current input is handled; bytes sent before stay
    /// queued ahead of the close.
    pub(crate) fn close(&mut self, reason: CloseReason) {
        self.out.close(self.conn, Some(reason));
    }

    /// Whether this connection is still open (not closing).
    pub(crate) fn is_open(&self) -> bool {
        self.out.is_open(self.conn)
    }

    pub(crate) fn set_timer(&mut self, kind: TimerKind, at: Instant) {
        self.timers.set(self.conn, kind, at);
    }

    pub(crate) fn cancel_timer(&mut self, kind: TimerKind) {
        self.timers.cancel(self.conn, kind);
    }
}
