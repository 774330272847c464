//! The wire protocols. Each is a module with a codec (framing, parsing, encoding) and a
//! session (the per-connection state machine over the shared network model).

pub(crate) mod admin;
pub(crate) mod arsc;
pub(crate) mod ims;
pub(crate) mod jabberd;
pub(crate) mod opcode;
#[cfg(test)]
pub(crate) mod probe;
mod scan;
pub(crate) mod ws2017;

use bytes::Bytes;

use crate::cx::{Cx, Px};
use crate::effect::EffectResult;
use crate::ids::{ConnId, EffectId, Protocol};
use crate::model::{Event, SessionId};

/// A broadcast event as each protocol encodes it, indexed by [`Protocol::index`]: filled
/// by the first connection of that protocol to get it, so thousands of recipients cost
/// one encoding. A protocol that encodes per recipient leaves its entry empty. Shared by
/// the connections of a broadcast, and by consecutive deliveries of one event to
/// sessions (a room's post to each member), so an entry must not depend on the recipient.
#[derive(Debug, Default)]
pub(crate) struct Encoded([Option<Bytes>; Protocol::ALL.len()]);

impl Encoded {
    /// The encoding of `protocol`, if one of its connections made it already.
    pub(crate) fn of(&mut self, protocol: Protocol) -> &mut Option<Bytes> {
        &mut self.0[protocol.index()]
    }
}

/// An answer kept encoded with the version of what it shows (everyone online, every
/// account): asked again while that version stands still, it costs a reference count,
/// not a walk of everything it lists.
#[derive(Debug, Default)]
pub(crate) struct Kept(Option<(u64, Bytes)>);

impl Kept {
    /// The answer for `version`: the one kept if it is of that version, else `build`'s,
    /// kept from then on.
    pub(crate) fn get(&mut self, version: u64, build: impl FnOnce() -> Bytes) -> Bytes {
        match &self.0 {
            Some((at, bytes)) if *at == version => bytes.clone(),
            _ => {
                let bytes = build();
                self.0 = Some((version, bytes.clone()));
                bytes
            }
        }
    }
}

/// What each protocol keeps across its connections and sessions (arsc's table of sids,
/// jabberd's router link and the sessions it carries, the listings ws2017 and opcode
/// keep encoded), lent to the protocol's handlers beside their context. The admin
/// protocol and ims keep nothing beyond a connection.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// ws2017's `cgetu` answer, kept while the lobby stands still.
    pub(crate) ws2017: ws2017::Shared,
    /// opcode's list of every account, kept while no account comes or goes.
    pub(crate) opcode: opcode::Shared,
    /// arsc's sessions by sid.
    pub(crate) arsc: arsc::Shared,
    /// jabberd's router link and the XMPP sessions it carries.
    pub(crate) jabberd: jabberd::Shared,
    /// The test-only protocol that exercises sessions without connections.
    #[cfg(test)]
    pub(crate) probe: probe::Shared,
}

impl Shared {
    /// The timer of `session` of `protocol` is due.
    pub(crate) fn on_session_timer(
        &mut self,
        protocol: Protocol,
        session: SessionId,
        px: &mut Px<'_>,
    ) {
        match protocol {
            Protocol::Ws2017
            | Protocol::Admin
            | Protocol::Arsc
            | Protocol::Ims
            | Protocol::Opcode
            | Protocol::Jabberd => {
                let _ = (session, px);
            }
            #[cfg(test)]
            Protocol::Probe => self.probe.on_timer(px, session),
        }
    }

    /// The timer of `protocol` itself is due.
    pub(crate) fn on_protocol_timer(&mut self, protocol: Protocol, px: &mut Px<'_>) {
        match protocol {
            Protocol::Ws2017
            | Protocol::Admin
            | Protocol::Arsc
            | Protocol::Ims
            | Protocol::Opcode => {
                let _ = px;
            }
            Protocol::Jabberd => self.jabberd.on_protocol_timer(px),
            #[cfg(test)]
            Protocol::Probe => self.probe.on_protocol_timer(px),
        }
    }

    /// The outbound connection `conn` that `protocol` asked for failed; the protocol
    /// decides whether and when to try again.
    pub(crate) fn on_connect_failed(
        &mut self,
        protocol: Protocol,
        conn: ConnId,
        error: &str,
        px: &mut Px<'_>,
    ) {
        match protocol {
            Protocol::Ws2017
            | Protocol::Admin
            | Protocol::Arsc
            | Protocol::Ims
            | Protocol::Opcode => {
                let _ = (conn, error, px);
            }
            Protocol::Jabberd => {
                let _ = error;
                self.jabberd.on_connect_failed(px, conn);
            }
            #[cfg(test)]
            Protocol::Probe => self.probe.on_connect_failed(px, conn, error),
        }
    }

    /// An event for `session` of `protocol`, which is on no connection now.
    pub(crate) fn on_session_event(
        &mut self,
        protocol: Protocol,
        session: SessionId,
        event: &Event,
        px: &mut Px<'_>,
    ) {
        match protocol {
            Protocol::Ws2017
            | Protocol::Admin
            | Protocol::Arsc
            | Protocol::Ims
            | Protocol::Opcode => {
                let _ = (session, event, px);
            }
            Protocol::Jabberd => self.jabberd.on_event(px, session, event),
            #[cfg(test)]
            Protocol::Probe => self.probe.on_event(px, session, event),
        }
    }
}

/// The protocol state of one connection.
#[derive(Debug)]
pub(crate) enum Endpoint {
    Ws2017(Box<ws2017::Session>),
    Arsc(Box<arsc::Session>),
    Admin(Box<admin::Session>),
    Ims(Box<ims::session::Session>),
    Opcode(Box<opcode::Session>),
    Jabberd(Box<jabberd::Link>),
    #[cfg(test)]
    Probe(Box<probe::Session>),
}

/// Whether connections of `protocol` show the lobby's broadcasts (users coming online,
/// going offline and renamed, to every connection: [`Audience::AllBut`]). ws2017 announces
/// them to every client; the others show presence to friends, to rooms or not at all, and
/// would only drop them: the server hands broadcasts to the connections of these
/// protocols alone, so that a login costs nothing per connection of the others.
///
/// [`Audience::AllBut`]: crate::model::Audience::AllBut
pub(crate) fn shows_lobby(protocol: Protocol) -> bool {
    match protocol {
        Protocol::Ws2017 => true,
        Protocol::Admin | Protocol::Arsc | Protocol::Ims | Protocol::Opcode | Protocol::Jabberd => {
            false
        }
        #[cfg(test)]
        Protocol::Probe => false,
    }
}

/// What every connection of `protocol` is sent for a lobby broadcast, when that is the
/// same for all of them whatever their state (ws2017 announces a login to every client,
/// named or not): encoded once into `encoded`, then appended to each connection's queue
/// without a visit to its session. `None` leaves the event to each connection's
/// [`Endpoint::on_event`].
#[inline]
pub(crate) fn lobby_news<'e>(
    protocol: Protocol,
    event: &Event,
    encoded: &'e mut Encoded,
) -> Option<&'e Bytes> {
    match protocol {
        Protocol::Ws2017 => ws2017::lobby_news(event, encoded.of(Protocol::Ws2017)),
        Protocol::Admin | Protocol::Arsc | Protocol::Ims | Protocol::Opcode | Protocol::Jabberd => {
            None
        }
        #[cfg(test)]
        Protocol::Probe => None,
    }
}

impl Endpoint {
    /// An outbound connection `protocol` asked for is up: the protocol's side of the
    /// link starts (jabberd opens its stream to the router).
    pub(crate) fn connected(protocol: Protocol, cx: &mut Cx<'_>, shared: &mut Shared) -> Endpoint {
        let _ = &shared;
        match protocol {
            // Neither asks for outbound connections; should one appear, it is closed.
            Protocol::Ws2017
            | Protocol::Admin
            | Protocol::Arsc
            | Protocol::Ims
            | Protocol::Opcode => {
                cx.close(crate::io::CloseReason::ProtocolError);
                Endpoint::Admin(Box::new(admin::Session::open()))
            }
            Protocol::Jabberd => {
                Endpoint::Jabberd(Box::new(jabberd::Link::connected(cx, &mut shared.jabberd)))
            }
            #[cfg(test)]
            Protocol::Probe => {
                Endpoint::Probe(Box::new(probe::Session::connected(cx, &mut shared.probe)))
            }
        }
    }

    /// A new connection of `protocol`: sends its greeting and arms its timers.
    pub(crate) fn open(protocol: Protocol, cx: &mut Cx<'_>) -> Endpoint {
        match protocol {
            Protocol::Ws2017 => Endpoint::Ws2017(Box::new(ws2017::Session::open(cx))),
            Protocol::Admin => Endpoint::Admin(Box::new(admin::Session::open())),
            Protocol::Arsc => Endpoint::Arsc(Box::new(arsc::Session::open(cx))),
            Protocol::Ims => Endpoint::Ims(Box::new(ims::session::Session::open(cx))),
            Protocol::Opcode => Endpoint::Opcode(Box::new(opcode::Session::open(cx))),
            Protocol::Jabberd => Endpoint::Jabberd(Box::new(jabberd::Link::refused(cx))),
            #[cfg(test)]
            Protocol::Probe => Endpoint::Probe(Box::default()),
        }
    }

    pub(crate) fn on_bytes(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, bytes: &Bytes) {
        let _ = &shared;
        match self {
            Endpoint::Ws2017(s) => s.on_bytes(cx, &mut shared.ws2017, bytes),
            Endpoint::Admin(s) => s.on_bytes(cx, bytes),
            Endpoint::Arsc(s) => s.on_bytes(cx, &mut shared.arsc, bytes),
            Endpoint::Ims(s) => s.on_bytes(cx, bytes),
            Endpoint::Opcode(s) => s.on_bytes(cx, &mut shared.opcode, bytes),
            Endpoint::Jabberd(s) => s.on_bytes(cx, &mut shared.jabberd, bytes),
            #[cfg(test)]
            Endpoint::Probe(s) => s.on_bytes(cx, &mut shared.probe, bytes),
        }
    }

    /// A network event for this connection; `encoded` carries what other connections
    /// of the same protocol already encoded for a broadcast. `shared` serves a link
    /// whose sessions live in its protocol's shared state (jabberd).
    #[inline]
    pub(crate) fn on_event(
        &mut self,
        cx: &mut Cx<'_>,
        shared: &mut Shared,
        event: &Event,
        encoded: &mut Encoded,
    ) {
        match self {
            Endpoint::Jabberd(_) => shared.jabberd.on_conn_event(cx, event),
            Endpoint::Ws2017(s) => s.on_event(cx, event, encoded.of(Protocol::Ws2017)),
            Endpoint::Admin(s) => s.on_event(cx, event),
            Endpoint::Arsc(s) => s.on_event(cx, event, encoded.of(Protocol::Arsc)),
            Endpoint::Ims(s) => s.on_event(cx, event),
            Endpoint::Opcode(s) => s.on_event(cx, event),
            #[cfg(test)]
            Endpoint::Probe(s) => s.on_conn_event(cx, event),
        }
    }

    /// The connection's timer is due.
    #[inline]
    pub(crate) fn on_timer(&mut self, cx: &mut Cx<'_>) {
        match self {
            Endpoint::Ws2017(s) => s.on_timer(cx),
            Endpoint::Ims(s) => s.on_timer(cx),
            Endpoint::Arsc(s) => s.on_timer(cx),
            Endpoint::Opcode(s) => s.on_timer(cx),
            Endpoint::Admin(_) | Endpoint::Jabberd(_) => {}
            #[cfg(test)]
            Endpoint::Probe(_) => {}
        }
    }

    pub(crate) fn on_effect(
        &mut self,
        cx: &mut Cx<'_>,
        shared: &mut Shared,
        id: EffectId,
        result: EffectResult,
    ) {
        match self {
            Endpoint::Ws2017(_) => {}
            Endpoint::Admin(s) => s.on_effect(cx, id, result),
            Endpoint::Arsc(s) => s.on_effect(cx, &mut shared.arsc, id, result),
            Endpoint::Ims(s) => s.on_effect(cx, id, result),
            Endpoint::Opcode(s) => s.on_effect(cx, &mut shared.opcode, id, result),
            Endpoint::Jabberd(_) => {}
            #[cfg(test)]
            Endpoint::Probe(_) => {}
        }
    }

    /// The runtime has written enough of this connection's output for the paused
    /// mailbox drain of `session` to go on ([`Cx::drain_mailbox`]).
    pub(crate) fn on_drain(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, session: SessionId) {
        match self {
            Endpoint::Jabberd(_) => shared.jabberd.on_drain(cx, session),
            Endpoint::Arsc(s) => s.drain_mailbox(cx, session),
            Endpoint::Ims(s) => s.drain_mailbox(cx, session),
            Endpoint::Opcode(s) => s.drain_mailbox(cx, session),
            Endpoint::Ws2017(_) | Endpoint::Admin(_) => {}
            #[cfg(test)]
            Endpoint::Probe(s) => s.drain_mailbox(cx, session),
        }
    }

    /// The server is stopping: say goodbye in the protocol's way, where it has one, and
    /// close. Admin connections stay until their answers are out (the runtime closes
    /// them last).
    pub(crate) fn on_shutdown(&mut self, cx: &mut Cx<'_>) {
        match self {
            Endpoint::Ws2017(s) => s.on_shutdown(cx),
            Endpoint::Arsc(s) => s.on_shutdown(cx),
            Endpoint::Ims(s) => s.on_shutdown(cx),
            // opcode has no message a server sends unasked to say it leaves (213 answers
            // a client's Logout): the close says it.
            Endpoint::Opcode(_) => cx.close(crate::io::CloseReason::Shutdown),
            Endpoint::Jabberd(s) => s.on_shutdown(cx),
            Endpoint::Admin(_) => {}
            #[cfg(test)]
            Endpoint::Probe(_) => cx.close(crate::io::CloseReason::Shutdown),
        }
    }

    /// The connection is gone: release everything it held in the network.
    pub(crate) fn on_close(&mut self, cx: &mut Cx<'_>, shared: &mut Shared) {
        let _ = &shared;
        match self {
            Endpoint::Ws2017(s) => s.on_close(cx),
            Endpoint::Ims(s) => s.on_close(cx),
            Endpoint::Opcode(s) => s.on_close(cx),
            Endpoint::Admin(_) => {}
            Endpoint::Arsc(s) => s.on_close(cx, &mut shared.arsc),
            Endpoint::Jabberd(s) => s.on_close(cx, &mut shared.jabberd),
            #[cfg(test)]
            Endpoint::Probe(s) => s.on_close(cx, &mut shared.probe),
        }
    }

    /// The memory held for input not yet framed, used or not (`None` for the protocols
    /// whose reader keeps its own).
    #[cfg(test)]
    pub(crate) fn input_capacity(&self) -> Option<usize> {
        match self {
            Endpoint::Ws2017(s) => Some(s.input_capacity()),
            Endpoint::Admin(s) => Some(s.input_capacity()),
            Endpoint::Arsc(s) => Some(s.input_capacity()),
            Endpoint::Ims(s) => Some(s.input_capacity()),
            Endpoint::Opcode(s) => Some(s.input_capacity()),
            Endpoint::Jabberd(_) | Endpoint::Probe(_) => None,
        }
    }

    /// Bytes buffered from the peer and not yet framed.
    pub(crate) fn buffered(&self) -> usize {
        match self {
            Endpoint::Ws2017(s) => s.buffered(),
            Endpoint::Admin(s) => s.buffered(),
            Endpoint::Arsc(s) => s.buffered(),
            Endpoint::Ims(s) => s.buffered(),
            Endpoint::Opcode(s) => s.buffered(),
            Endpoint::Jabberd(s) => s.buffered(),
            #[cfg(test)]
            Endpoint::Probe(_) => 0,
        }
    }
}
