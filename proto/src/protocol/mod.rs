//! The wire protocols. Each is a module with a codec (framing, parsing, encoding) and a
//! session (the per-connection state machine over the shared network model).

pub(crate) mod admin;
pub(crate) mod ws2017;

use bytes::Bytes;

use crate::cx::Cx;
use crate::effect::EffectResult;
use crate::ids::{EffectId, Protocol};
use crate::model::Event;

/// A broadcast event as each protocol encodes it, indexed by [`Protocol::index`]: filled
/// by the first connection of that protocol to get it, so thousands of recipients cost
/// one encoding. A protocol that encodes per recipient leaves its entry empty.
#[derive(Debug, Default)]
pub(crate) struct Encoded([Option<Bytes>; Protocol::ALL.len()]);

impl Encoded {
    /// The encoding of `protocol`, if one of its connections made it already.
    pub(crate) fn of(&mut self, protocol: Protocol) -> &mut Option<Bytes> {
        &mut self.0[protocol.index()]
    }
}

/// The protocol state of one connection.
#[derive(Debug)]
pub(crate) enum Endpoint {
    Ws2017(ws2017::Session),
    Admin(admin::Session),
}

impl Endpoint {
    /// A new connection of `protocol`: sends its greeting and arms its timers.
    pub(crate) fn open(protocol: Protocol, cx: &mut Cx<'_>) -> Endpoint {
        match protocol {
            Protocol::Ws2017 => Endpoint::Ws2017(ws2017::Session::open(cx)),
            Protocol::Admin => Endpoint::Admin(admin::Session::open()),
        }
    }

    pub(crate) fn on_bytes(&mut self, cx: &mut Cx<'_>, bytes: &Bytes) {
        match self {
            Endpoint::Ws2017(s) => s.on_bytes(cx, bytes),
            Endpoint::Admin(s) => s.on_bytes(cx, bytes),
        }
    }

    /// A network event for this connection; `encoded` carries what other connections
    /// of the same protocol already encoded for a broadcast.
    pub(crate) fn on_event(&mut self, cx: &mut Cx<'_>, event: &Event, encoded: &mut Encoded) {
        match self {
            Endpoint::Ws2017(s) => s.on_event(cx, event, encoded.of(Protocol::Ws2017)),
            Endpoint::Admin(s) => s.on_event(cx, event),
        }
    }

    /// The connection's timer is due.
    pub(crate) fn on_timer(&mut self, cx: &mut Cx<'_>) {
        match self {
            Endpoint::Ws2017(s) => s.on_timer(cx),
            Endpoint::Admin(_) => {}
        }
    }

    pub(crate) fn on_effect(&mut self, cx: &mut Cx<'_>, id: EffectId, result: EffectResult) {
        match self {
            Endpoint::Ws2017(_) => {}
            Endpoint::Admin(s) => s.on_effect(cx, id, result),
        }
    }

    /// The connection is gone: release everything it held in the network.
    pub(crate) fn on_close(&mut self, cx: &mut Cx<'_>) {
        match self {
            Endpoint::Ws2017(s) => s.on_close(cx),
            Endpoint::Admin(_) => {}
        }
    }

    /// Bytes buffered from the peer and not yet framed.
    pub(crate) fn buffered(&self) -> usize {
        match self {
            Endpoint::Ws2017(s) => s.buffered(),
            Endpoint::Admin(s) => s.buffered(),
        }
    }
}
