//! Where a connection comes from.

use core::net::{IpAddr, SocketAddr};

/// Where a connection comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A network peer.
    Net(SocketAddr),
    /// A local socket (the admin socket in the data dir).
    Local,
}

impl Peer {
    /// The peer's IP address, if it has one.
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            Peer::Net(addr) => Some(addr.ip()),
            Peer::Local => None,
        }
    }
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Self {
        Peer::Net(addr)
    }
}
