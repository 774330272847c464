//! What the network tells the protocols, and to whom: typed events that protocols
//! encode, and that logs, metrics and the simulator's oracles can read.

use super::{DirectMessage, RoomName, SessionId, Shown, UserName};
use crate::ids::ConnId;

/// A user-visible notification from the network, addressed by a [`Delivery`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A user came online (its first session).
    UserOnline { name: UserName },
    /// A user went offline (its last session ended).
    UserOffline { name: UserName },
    /// An online user changed name.
    UserRenamed { old: UserName, new: UserName },
    /// A direct message for `session`.
    Direct {
        session: SessionId,
        message: DirectMessage,
    },
    /// A direct message from this session's user to `to` arrived.
    Delivered { session: SessionId, to: UserName },
    /// A user shows differently now to the session this is addressed to (a friend, a
    /// member of a room the user is in): a status, or offline (gone, or invisible).
    Presence { name: UserName, shown: Shown },
    /// `name` joined `room`; for the members already there.
    RoomJoined { room: RoomName, name: UserName },
    /// `name` left `room`; for the members still there.
    RoomLeft { room: RoomName, name: UserName },
    /// The session this is addressed to was kicked out of `room` by `by`.
    RoomKicked { room: RoomName, by: UserName },
    /// An administrator removes this session (or, with `None`, the whole
    /// connection): close it in the protocol's manner.
    Kicked {
        session: Option<SessionId>,
        reason: KickReason,
    },
}

/// Why a session is kicked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KickReason {
    /// `switchboard kick`.
    Kicked,
    /// The account or the address was banned.
    Banned,
    /// The account was deleted.
    AccountDeleted,
}

/// Who an [`Event`] goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Audience {
    /// Every connection but `except`, which caused the event.
    AllBut(ConnId),
    /// One connection.
    Conn(ConnId),
    /// One session, on whatever connection it is at now (or none: its protocol holds
    /// it), as the protocol told the server.
    #[cfg_attr(not(test), allow(dead_code))]
    Session(SessionId),
}

/// An event and its audience, queued by the network for the server to hand out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub(crate) to: Audience,
    pub(crate) event: Event,
}
