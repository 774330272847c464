//! Identifiers that cross the core's boundary. None is ever reused.

use core::fmt;

/// A transport connection, assigned by the runtime (or simulator) when it accepts one,
/// or by the server when it asks for one ([`Output::Connect`](crate::Output::Connect));
/// never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl ConnId {
    /// The first id the server gives its own outbound connections; the ids a runtime
    /// gives accepted connections stay below it.
    pub const OUTBOUND: ConnId = ConnId(1 << 63);

    /// Whether the server chose this id, for a connection it asked for.
    pub const fn is_outbound(self) -> bool {
        self.0 >= Self::OUTBOUND.0
    }
}

/// An effect the server asked for, assigned by the server; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EffectId(pub u64);

/// The sequence number of a durable change; increases by one per change, from 1 at
/// each start of the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(pub u64);

/// The wire protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// The POP3-like line protocol of the 2017 lobby (`uname`, `chatm`, `cping`).
    Ws2017,
    /// The line protocol of the admin socket (`switchboard user add`, `kick`, ...).
    Admin,
    /// The XML protocol of ARSC's socket server (`<arscrequest>`: rooms, whispers).
    Arsc,
    /// The XML instant-messaging protocol (`<LOGIN>`, `<MESSAGE>`, `<FRIEND>`, `<ALIVE/>`).
    Ims,
    /// The numeric line protocol of the HAW chat table (`110 name password`, `115 chat text`).
    Opcode,
    /// jabberd2's router component protocol, carrying the sm-c2s session protocol and
    /// XMPP stanzas: Switchboard as the session manager behind a jabberd2 c2s.
    Jabberd,
    /// A protocol for the core's own tests, whose sessions live apart from connections.
    #[cfg(test)]
    Probe,
}

impl Protocol {
    /// Every protocol, in [`index`](Self::index) order.
    #[cfg(not(test))]
    pub const ALL: [Protocol; 6] = [
        Protocol::Ws2017,
        Protocol::Admin,
        Protocol::Arsc,
        Protocol::Ims,
        Protocol::Opcode,
        Protocol::Jabberd,
    ];
    /// Every protocol, in [`index`](Self::index) order (with the test protocol).
    #[cfg(test)]
    pub const ALL: [Protocol; 7] = [
        Protocol::Ws2017,
        Protocol::Admin,
        Protocol::Arsc,
        Protocol::Ims,
        Protocol::Opcode,
        Protocol::Jabberd,
        Protocol::Probe,
    ];

    /// The protocol's position in [`ALL`](Self::ALL), for tables indexed by protocol.
    pub const fn index(self) -> usize {
        match self {
            Protocol::Ws2017 => 0,
            Protocol::Admin => 1,
            Protocol::Arsc => 2,
            Protocol::Ims => 3,
            Protocol::Opcode => 4,
            Protocol::Jabberd => 5,
            #[cfg(test)]
            Protocol::Probe => 6,
        }
    }

    /// The protocol's name as used in configuration, logs and transcripts.
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Ws2017 => "ws2017",
            Protocol::Admin => "admin",
            Protocol::Arsc => "arsc",
            Protocol::Ims => "ims",
            Protocol::Opcode => "opcode",
            Protocol::Jabberd => "jabberd",
            #[cfg(test)]
            Protocol::Probe => "probe",
        }
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables indexed by protocol (the shared encodings of a broadcast) rely on it: two
    /// protocols at one index would send one protocol's bytes to the other's clients.
    #[test]
    fn every_protocol_has_its_own_index() {
        for (i, protocol) in Protocol::ALL.iter().enumerate() {
            assert_eq!(protocol.index(), i, "{protocol}");
        }
    }
}
