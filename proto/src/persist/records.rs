//! The records durable state is made of. Which protocol creates each, and with which seed
//! command, is said on the type; none is protocol-specific in meaning.

use core::fmt;
use std::collections::BTreeSet;

use bytes::Bytes;

use crate::names::{UserKey, UserName};
use crate::secret::PasswordHash;

/// A registered account: one login for ARSC, IMS, opcode and jabberd (ws2017 names are
/// taken by it, having no password). Created by the admin `user add` and opcode 117
/// RegisterAccount.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The name, in the case it was registered with.
    pub name: UserName,
    /// argon2id hash of the password.
    pub password: PasswordHash,
    /// argon2id hash of the lowercase hex MD5 of the password, which IMS clients send.
    pub ims_password: PasswordHash,
    /// Email address, if given (opcode 117's Email).
    pub email: Option<String>,
    /// Gender, as the user gave it, if given (opcode 117's Gender).
    pub gender: Option<String>,
    /// 0 for a user; 1 or more for an operator (arsc's `<level>`, `/kick` and `/msgops`).
    /// Changed by [`Change::LevelChanged`](super::Change::LevelChanged).
    pub level: u8,
    /// A banned account gets no session (arsc "Access is temporarily denied.", IMS LOGIN
    /// result 2).
    pub banned: bool,
    /// When it was created, in Unix milliseconds.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::ms))]
    pub created_ms: u64,
}

/// Identifies a stored message; increases across the store's lifetime (counter
/// `next_message_id`), so a message delivered twice after a crash carries the same id.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(#[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::id))] pub u64);

/// Identifies an opcode chat (the seed's `ChatID:Long`); increases across the store's
/// lifetime (counter `next_chat_id`) and is never reused, even after the chat is deleted.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChatId(
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::chat_id))] pub u64,
);

/// Identifies a stored media item (opcode's `MediaID:Long`); increases across the store's
/// lifetime (counter `next_media_id`) and is never reused.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MediaId(
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::media_id))] pub u64,
);

/// What a stored message is, so the protocol the recipient logs in with next can render it.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MessageKind {
    /// A direct message: ws2017 `chatm`, IMS `MESSAGE`, an XMPP `<message type='chat'>`.
    /// Every message stored before schema v2 is one.
    #[default]
    Direct,
    /// A whisper: arsc `/msg NAME text` (and `/whisper`), ws2017 `chatw`. Shown as arsc type
    /// `whisper`; other protocols show it as a direct message.
    Whisper,
    /// A message to an opcode chat (115 MessageSend) for a member who was offline; shown as
    /// `220 ChatID TimeStamp Message [MediaID]`. The chat or media may be gone by the time it
    /// is delivered (a deleted chat); the message is still delivered.
    Chat {
        /// The chat it was sent to.
        chat: ChatId,
        /// The media sent with it, if any.
        media: Option<MediaId>,
    },
    /// The sender accepted the recipient's friend request while the recipient was offline
    /// (opcode's `233 Requester` pushed for the answer that makes a contact mutual, XMPP
    /// `presence type='subscribed'`). The body is empty.
    FriendAccepted,
}

/// A message kept for a recipient who was offline, delivered at the next login over any
/// protocol, in the order queued.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its id.
    pub id: MessageId,
    /// The sender.
    pub from: UserName,
    /// The recipient, an account.
    pub to: UserName,
    /// The text.
    pub body: String,
    /// When it was sent, in Unix milliseconds (opcode's TimeStamp).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::ms))]
    pub sent_ms: u64,
    /// What it is.
    pub kind: MessageKind,
}

/// One side of a mutual friendship: IMS friends (FRIEND accept), opcode contacts (the second
/// 121 RequestConfirmContact), an XMPP roster item with subscription `both`. Kept in
/// [`State::friends`](super::State::friends) under both accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Friendship {
    /// When it became mutual, in Unix milliseconds (opcode's `225 Name ContactSince`).
    pub since_ms: u64,
}

/// A pending friend request: IMS `FRIEND type="add"` (shown as `FRIEND type="invite"`), the
/// first opcode 121 RequestConfirmContact (`233 Requester`), an XMPP `presence
/// type='subscribe'`. Kept under its recipient in
/// [`State::friend_requests`](super::State::friend_requests) until answered or dropped, and
/// handed to the recipient at every login until then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FriendRequest {
    /// Who asked, an account.
    pub from: UserKey,
    /// When, in Unix milliseconds.
    pub since_ms: u64,
}

/// An opcode chat (113 ChatCreate): two contacts, listed by 112 RequestChatList. A member
/// whose account is deleted leaves it; a chat with one member left is one whose other
/// member's account is gone (115 answers 410); a chat with none is deleted with its media.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chat {
    /// The members, accounts.
    pub members: BTreeSet<UserKey>,
    /// When it was created, in Unix milliseconds.
    pub created_ms: u64,
}

/// A media item's metadata (opcode 115 MessageSend with Media). The bytes are not in
/// [`State`](super::State): the store keeps them in a table of their own, read on demand
/// (119 RequestMedia); only the chat's members may fetch them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    /// The chat it was sent to.
    pub chat: ChatId,
    /// The account that sent it, whose total of stored media it counts towards; `None`
    /// when that account was deleted since, or the item was stored before senders were
    /// kept (schema version 3).
    pub sender: Option<UserKey>,
    /// Its size in bytes.
    pub size: u64,
    /// When it was stored, in Unix milliseconds.
    pub created_ms: u64,
}

/// Bytes on their way to the store (a media item). Its `Debug` shows the length only, so a
/// change in a log does not carry a megabyte.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob(pub Bytes);

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for Blob {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Blob(Bytes::from(Vec::<u8>::arbitrary(u)?)))
    }
}
