//! What the network tells the protocols, and to whom: typed events that protocols
//! encode, and that logs, metrics and the simulator's oracles can read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{DirectMessage, RoomName, RoomSay, SessionId, Shown, Undeliverable, UserName};
use crate::ids::{ConnId, Protocol, Seq};
use crate::persist::MessageId;

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
    /// `name` was kicked out of `room` by `by`; for the other members (a leave notice
    /// follows).
    MemberKicked {
        room: RoomName,
        name: UserName,
        by: UserName,
    },
    /// A member said something to a room; one post shared by every member's event.
    RoomMessage { post: Arc<RoomPost> },
    /// `from` asked the user `to` of `session` to be friends (`accepted` false), or
    /// accepted its request, which made them friends (`accepted` true). For sessions
    /// online when it happened; an offline user gets it from its mailbox at login.
    FriendNews {
        session: SessionId,
        from: UserName,
        to: UserName,
        accepted: bool,
    },
    /// An administrator removes this session (or, with `None`, the whole
    /// connection): close it in the protocol's manner.
    Kicked {
        session: Option<SessionId>,
        reason: KickReason,
    },
}

/// What a member said to a room: `from` said `body` in `room`, as `kind` tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoomPost {
    pub(crate) room: RoomName,
    pub(crate) from: UserName,
    pub(crate) kind: RoomSay,
    pub(crate) body: String,
}

/// Why a session is kicked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KickReason {
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
    /// Every connection but `except`, which caused the event, of the protocols that show
    /// the lobby ([`shows_lobby`](crate::protocol::shows_lobby)).
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

/// What happened in the network, as typed values for a driver's logs, metrics and
/// checks: read with [`Server::poll_event`](crate::Server::poll_event) (or
/// [`Pump::poll_event`](crate::Pump::poll_event)) once asked for with
/// [`Server::record_events`](crate::Server::record_events). Nothing is recorded until
/// then, so nothing piles up when nobody reads. Events come in the order they happened;
/// they say nothing about the wire (what each protocol wrote is in its bytes).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkEvent {
    /// A session of `name` started, speaking `protocol` on `conn`.
    LoggedIn {
        /// The user, as online.
        name: UserName,
        /// The protocol of the session.
        protocol: Protocol,
        /// The session's number, unique for the server's lifetime.
        session: u64,
        /// Its connection.
        conn: ConnId,
    },
    /// A session of `name` ended.
    LoggedOut {
        /// The user, as online.
        name: UserName,
        /// The protocol of the session.
        protocol: Protocol,
        /// The session's number.
        session: u64,
        /// Its connection.
        conn: ConnId,
    },
    /// An online user changed name.
    Renamed {
        /// The name before.
        old: UserName,
        /// The name now.
        new: UserName,
        /// The session that asked.
        session: u64,
    },
    /// A direct message was handed to every live session of `to`.
    DirectDelivered {
        /// The sender, as online.
        from: UserName,
        /// The recipient, as online.
        to: UserName,
    },
    /// A direct message was stored in the mailbox of the offline account `to` as
    /// message `id`, by the durable change `seq` (not yet committed when this is read).
    DirectStored {
        /// The sender, as online.
        from: UserName,
        /// The account, as registered.
        to: UserName,
        /// The stored message's id.
        id: MessageId,
        /// The change that stores it.
        seq: Seq,
    },
    /// A direct message was refused; nothing was delivered or stored.
    DirectRefused {
        /// The sender, as online (`None` if its session is gone).
        from: Option<UserName>,
        /// The recipient, as the sender named it.
        to: UserName,
        /// Why.
        reason: Refusal,
    },
    /// Stored message `id` of `to`'s mailbox was handed to a session at login on `conn`;
    /// it stays stored until its bytes are reported written there.
    StoredHandedOut {
        /// The account, as registered.
        to: UserName,
        /// The message.
        id: MessageId,
        /// The connection it was queued on.
        conn: ConnId,
    },
    /// Handing out `to`'s mailbox at a login paused for room on the connection: until
    /// [`NetworkEvent::MailboxResumed`], direct messages to `to` are stored behind it
    /// rather than delivered live, though `to` is online.
    MailboxPaused {
        /// The account, as registered.
        to: UserName,
    },
    /// `to`'s mailbox is handed out (or the session that paused is gone): direct messages
    /// to `to` are delivered live again.
    MailboxResumed {
        /// The account, as registered.
        to: UserName,
    },
    /// The stored messages of `to` through `through` were written to their recipient and
    /// are removed by a durable change.
    StoredRemoved {
        /// The account, as registered.
        to: UserName,
        /// The last message removed.
        through: MessageId,
    },
    /// A media item of `size` bytes was refused: its sender, `name` on `conn`, has
    /// `stored` bytes of media stored, and the item would take the total past `limit`.
    MediaRefused {
        /// The sender, as online.
        name: UserName,
        /// The connection it sent from.
        conn: ConnId,
        /// The item's size in bytes.
        size: u64,
        /// Bytes the sender has stored already.
        stored: u64,
        /// The limit of the total per user.
        limit: u64,
    },
    /// An administrator closed a user's sessions, or a whole connection.
    Kicked {
        /// The user (`None` when a connection was closed by its address).
        name: Option<UserName>,
        /// The connection (`None` when every session of the user was closed).
        conn: Option<ConnId>,
        /// How many sessions were closed (for a connection: 1).
        sessions: usize,
        /// Why.
        reason: KickReason,
    },
}

impl NetworkEvent {
    /// Whether it is about one direct message (delivered, stored, refused, handed out or
    /// removed from a mailbox): left out by
    /// [`Server::record_session_events`](crate::Server::record_session_events).
    pub fn is_per_message(&self) -> bool {
        matches!(
            self,
            NetworkEvent::DirectDelivered { .. }
                | NetworkEvent::DirectStored { .. }
                | NetworkEvent::DirectRefused { .. }
                | NetworkEvent::StoredHandedOut { .. }
                | NetworkEvent::StoredRemoved { .. }
        )
    }
}

/// Why a direct message was refused, in [`NetworkEvent::DirectRefused`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Nobody of that name is online or registered.
    NoSuchUser,
    /// The recipient's mailbox holds its cap of messages.
    MailboxFull,
    /// The sender already holds its share of the recipient's mailbox.
    ShareUsed,
    /// The recipient is offline and the store is failing.
    StoreFailing,
}

impl From<&Undeliverable> for Refusal {
    fn from(why: &Undeliverable) -> Refusal {
        match why {
            Undeliverable::NoSuchUser => Refusal::NoSuchUser,
            Undeliverable::MailboxFull(_) => Refusal::MailboxFull,
            Undeliverable::ShareUsed(_) => Refusal::ShareUsed,
            Undeliverable::StoreFailing(_) => Refusal::StoreFailing,
        }
    }
}

/// How many outputs the server has queued so far: kept by its outbox, read by the model
/// when it records a [`NetworkEvent`], so a driver can read events and outputs as one
/// stream in the order they happened (see [`Pump::with_tap`](crate::Pump::with_tap)).
/// Shared by the two halves of one server, on one thread; the atomic only makes the
/// server `Send`.
#[derive(Clone, Debug, Default)]
pub(crate) struct OutputCount(Arc<AtomicU64>);

impl OutputCount {
    /// Outputs queued so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// One more output queued. A load and a store, not a read-modify-write: only the
    /// server's own thread writes it, and a locked add cost its cycles on every output.
    pub(crate) fn bump(&self) {
        self.0
            .store(self.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}
