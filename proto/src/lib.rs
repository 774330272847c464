//! The sans-I/O core of Switchboard: every protocol and the network that joins them.
//!
//! A [`Server`] is a pure state machine. The runtime (or the simulator, or a test) feeds it
//! [`Input`]s with the current [`Now`], and drains [`Output`]s: bytes to send, connections
//! to close. It never touches a socket, a clock, a file or a thread, so the same inputs give
//! the same outputs, byte for byte. The call protocol is on [`Server`].
//!
//! ```
//! use switchboard_proto::{Config, ConnId, Input, Instant, Now, Output, Protocol, Server, State};
//! use std::net::SocketAddr;
//!
//! let mut server = Server::new(Config::default(), State::default());
//! let now = Now::at(Instant::ZERO, 1_700_000_000_000);
//! let conn = ConnId(1);
//! let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
//! server.handle(now, Input::Accepted { conn, protocol: Protocol::Ws2017, peer: peer.into() });
//! server.handle(now, Input::Received { conn, bytes: "uname alice\r\n".into() });
//! let mut sent = Vec::new();
//! while let Some(output) = server.poll_output() {
//!     if let Output::Transmit { bytes, .. } = output {
//!         sent.extend_from_slice(&bytes);
//!     }
//! }
//! assert!(sent.ends_with(b"+OK uname you are alice\r\n"));
//! ```

#![warn(missing_docs)]

#[cfg(feature = "arbitrary")]
mod arb;
mod config;
mod conns;
mod cx;
mod effect;
mod frame;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod gate;
mod hashing;
mod ids;
mod io;
mod limits;
mod logins;
mod model;
mod names;
mod outbox;
pub use outbox::BATCH_BYTES;
mod peer;
mod persist;
mod protocol;
mod pump;
mod rng;
mod secret;
mod server;
mod time;
mod timers;

#[cfg(test)]
mod tests;

#[cfg(feature = "planted-bugs")]
pub use config::PlantedBug;
pub use config::{
    ArscConfig, Config, ImsConfig, ImsTerminator, JabberdConfig, Limits, OpcodeConfig, RateLimit,
    Ws2017Config,
};
pub use effect::{Effect, EffectResult};
pub use gate::CommitGate;
pub use ids::{ConnId, EffectId, Protocol, Seq};
pub use io::{CloseReason, Input, Output};
pub use model::{Counters, KickReason, NetworkEvent, Refusal};
pub use names::{NameError, UserKey, UserName, MAX_NAME_CHARS, NAME_RULE_VERSION};
pub use peer::Peer;
pub use persist::{
    Account, Blob, Change, Chat, ChatId, FriendRequest, Friendship, Media, MediaId, MessageId,
    MessageKind, State, StoredMessage,
};
pub use protocol::admin::{AdminCommand, AdminParseError};
pub use pump::{Action, Batch, Emitted, Pump, FIRST_RETRY, MAX_RETRY};
pub use rng::Seed;
pub use secret::{PasswordHash, Secret};
pub use server::{Server, Stats};
pub use time::{Instant, Now};
