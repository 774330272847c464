//! Durable state: what the store loads at start ([`State`]) and the changes the server
//! asks it to commit ([`Change`]). [`State::apply`] is the one way durable state changes,
//! in the server's memory and in every store that mirrors it.
//!
//! Everything that refers to a user by account (friendships, friend requests, chat
//! members) needs the account to exist when the change is applied, and goes when the account
//! is deleted ([`Change::AccountDeleted`] cascades). Ids (messages, chats, media) come from
//! counters in [`State`] that only increase: a change carrying an id below its counter was
//! applied already and is skipped, so replaying a batch is safe.

mod records;

use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::names::{UserKey, UserName};
pub use crate::secret::PasswordHash;
pub use records::{
    Account, Blob, Chat, ChatId, FriendRequest, Friendship, Media, MediaId, MessageId, MessageKind,
    StoredMessage,
};

/// One durable mutation. Each leaves the server as an `Output::Persist` and is
/// applied with [`State::apply`].
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new account.
    AccountCreated(Account),
    /// An account is gone, and with it everything that names it as an account: its offline
    /// messages, friendships, friend requests to and from it, its chat memberships (a chat
    /// left without members goes too, with its media).
    AccountDeleted {
        /// The account's name.
        name: UserName,
    },
    /// New password hashes for an account.
    PasswordChanged {
        /// The account's name.
        name: UserName,
        /// Hash of the password.
        password: PasswordHash,
        /// Hash of the password's MD5 hex.
        ims_password: PasswordHash,
    },
    /// An account is banned or unbanned.
    UserBanned {
        /// The account's name.
        name: UserName,
        /// Banned or not.
        banned: bool,
    },
    /// An account's level changes (arsc operators: 0 user, 1 or more operator).
    LevelChanged {
        /// The account's name.
        name: UserName,
        /// The new level.
        level: u8,
    },
    /// An IP address is banned.
    IpBanned(#[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::ip))] IpAddr),
    /// An IP address is no longer banned.
    IpUnbanned(#[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::ip))] IpAddr),
    /// A message is queued for an offline recipient.
    OfflineQueued(StoredMessage),
    /// The recipient's offline messages up to and including `through` were delivered.
    OfflineDelivered {
        /// The recipient.
        to: UserName,
        /// The last delivered message.
        through: MessageId,
    },
    /// `from` asks `to` to be friends (IMS FRIEND add, opcode 121, XMPP subscribe). Ignored
    /// unless both are distinct accounts, not friends yet, with no such request pending (a
    /// repeated request keeps the first one's time and place).
    FriendRequested {
        /// Who asks.
        from: UserName,
        /// Who is asked.
        to: UserName,
        /// When, in Unix milliseconds.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::ms))]
        since_ms: u64,
    },
    /// A pending request from `from` to `to` is dropped: denied (IMS FRIEND deny, XMPP
    /// unsubscribed) or withdrawn (XMPP unsubscribe).
    FriendRequestDropped {
        /// Who asked.
        from: UserName,
        /// Who was asked.
        to: UserName,
    },
    /// `a` and `b` are friends (IMS FRIEND accept, opcode 121 answered, XMPP subscribed):
    /// pending requests between them, either way, are settled. Ignored unless both are
    /// distinct accounts; an existing friendship keeps its time.
    FriendshipMade {
        /// One friend.
        a: UserName,
        /// The other.
        b: UserName,
        /// When it became mutual, in Unix milliseconds.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::ms))]
        since_ms: u64,
    },
    /// `a` and `b` are no longer friends (IMS FRIEND delete, XMPP roster remove).
    FriendshipEnded {
        /// One friend.
        a: UserName,
        /// The other.
        b: UserName,
    },
    /// An opcode chat is created (113 ChatCreate). The id counter moves past `id` in any
    /// case; the chat itself is created only if it has members and every one is an account.
    ChatCreated {
        /// Its id, from [`State::next_chat_id`].
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::new_chat))]
        id: ChatId,
        /// The members (opcode: the creator and the contact); repeats count once.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::members))]
        members: Vec<UserName>,
        /// When, in Unix milliseconds.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::ms))]
        created_ms: u64,
    },
    /// An opcode chat is deleted (114 ChatDelete), with its media. Messages already queued
    /// for it stay in their recipients' mailboxes.
    ChatDeleted {
        /// The chat.
        id: ChatId,
    },
    /// A media item is stored for a chat (115 MessageSend with Media). `State` keeps its
    /// metadata only; the store keeps the bytes. The id counter moves past `id` in any case;
    /// the media is kept only if the chat exists. Its bytes count towards the sender's
    /// total if the sender is an account.
    MediaStored {
        /// Its id, from [`State::next_media_id`].
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::new_media))]
        id: MediaId,
        /// The chat it was sent to.
        chat: ChatId,
        /// Who sent it (a member of the chat).
        sender: UserName,
        /// When, in Unix milliseconds.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::ms))]
        created_ms: u64,
        /// The bytes.
        bytes: Blob,
    },
}

/// Everything durable: accounts, bans, offline messages, friendships and requests, chats,
/// media metadata and the id counters. The store loads it for `Server::new`; the server
/// keeps it current by applying its own changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Accounts by folded name.
    pub accounts: BTreeMap<UserKey, Account>,
    /// Banned IP addresses.
    pub ip_bans: BTreeSet<IpAddr>,
    /// Offline messages per recipient, oldest first.
    pub offline: BTreeMap<UserKey, VecDeque<StoredMessage>>,
    /// The id the next offline message gets.
    pub next_message_id: u64,
    /// Friendships, under both friends: `friends[a][b]` exactly when `friends[b][a]`, with
    /// the same time. No empty inner maps. IMS FRIENDS, opcode 118, the XMPP roster.
    pub friends: BTreeMap<UserKey, BTreeMap<UserKey, Friendship>>,
    /// Pending friend requests per recipient, in the order made. No empty lists; at most one
    /// per pair and direction; never between friends.
    pub friend_requests: BTreeMap<UserKey, Vec<FriendRequest>>,
    /// Opcode chats (113 ChatCreate), each with at least one member.
    pub chats: BTreeMap<ChatId, Chat>,
    /// The id the next chat gets.
    pub next_chat_id: u64,
    /// Media metadata (opcode 115 with Media), each of an existing chat. The bytes are in
    /// the store only. Removed only with its chat (a chat delete, or the last member's
    /// account deleted).
    pub media: BTreeMap<MediaId, Media>,
    /// The id the next media item gets.
    pub next_media_id: u64,
}

impl State {
    /// Applies one change. Changes that no longer fit (a deleted account's password, say)
    /// are ignored, so replaying a log is always safe.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::AccountCreated(account) => {
                self.accounts.insert(account.name.key(), account.clone());
            }
            Change::AccountDeleted { name } => self.delete_account(name.key_ref()),
            Change::PasswordChanged {
                name,
                password,
                ims_password,
            } => {
                if let Some(account) = self.accounts.get_mut(name.key_ref()) {
                    account.password = password.clone();
                    account.ims_password = ims_password.clone();
                }
            }
            Change::UserBanned { name, banned } => {
                if let Some(account) = self.accounts.get_mut(name.key_ref()) {
                    account.banned = *banned;
                }
            }
            Change::LevelChanged { name, level } => {
                if let Some(account) = self.accounts.get_mut(name.key_ref()) {
                    account.level = *level;
                }
            }
            Change::IpBanned(ip) => {
                self.ip_bans.insert(*ip);
            }
            Change::IpUnbanned(ip) => {
                self.ip_bans.remove(ip);
            }
            Change::OfflineQueued(message) => {
                if take_id(&mut self.next_message_id, message.id.0) {
                    self.offline
                        .entry(message.to.key())
                        .or_default()
                        .push_back(message.clone());
                }
            }
            Change::OfflineDelivered { to, through } => {
                let key = to.key();
                if let Some(queue) = self.offline.get_mut(&key) {
                    while queue.front().is_some_and(|m| m.id <= *through) {
                        queue.pop_front();
                    }
                    if queue.is_empty() {
                        self.offline.remove(&key);
                    }
                }
            }
            Change::FriendRequested { from, to, since_ms } => {
                let (from, to) = (from.key(), to.key());
                if from == to
                    || !self.accounts.contains_key(&from)
                    || !self.accounts.contains_key(&to)
                    || self.are_friends(&from, &to)
                {
                    return;
                }
                let pending = self.friend_requests.entry(to).or_default();
                if !pending.iter().any(|r| r.from == from) {
                    pending.push(FriendRequest {
                        from,
                        since_ms: *since_ms,
                    });
                }
            }
            Change::FriendRequestDropped { from, to } => {
                self.drop_request(from.key_ref(), to.key_ref());
            }
            Change::FriendshipMade { a, b, since_ms } => {
                let (a, b) = (a.key(), b.key());
                if a == b || !self.accounts.contains_key(&a) || !self.accounts.contains_key(&b) {
                    return;
                }
                self.drop_request(&a, &b);
                self.drop_request(&b, &a);
                if self.are_friends(&a, &b) {
                    return;
                }
                let friendship = Friendship {
                    since_ms: *since_ms,
                };
                self.friends
                    .entry(a.clone())
                    .or_default()
                    .insert(b.clone(), friendship);
                self.friends.entry(b).or_default().insert(a, friendship);
            }
            Change::FriendshipEnded { a, b } => {
                let (a, b) = (a.key(), b.key());
                self.unfriend(&a, &b);
                self.unfriend(&b, &a);
            }
            Change::ChatCreated {
                id,
                members,
                created_ms,
            } => {
                if !take_id(&mut self.next_chat_id, id.0) {
                    return;
                }
                let members: BTreeSet<UserKey> = members.iter().map(UserName::key).collect();
                if members.is_empty() || !members.iter().all(|m| self.accounts.contains_key(m)) {
                    return;
                }
                self.chats.insert(
                    *id,
                    Chat {
                        members,
                        created_ms: *created_ms,
                    },
                );
            }
            Change::ChatDeleted { id } => self.delete_chat(*id),
            Change::MediaStored {
                id,
                chat,
                sender,
                created_ms,
                bytes,
            } => {
                if take_id(&mut self.next_media_id, id.0) && self.chats.contains_key(chat) {
                    let sender = sender.key();
                    let sender = self.accounts.contains_key(&sender).then_some(sender);
                    self.media.insert(
                        *id,
                        Media {
                            chat: *chat,
                            sender,
                            size: bytes.0.len() as u64,
                            created_ms: *created_ms,
                        },
                    );
                }
            }
        }
    }

    /// The account of a name, if registered.
    pub fn account(&self, key: &UserKey) -> Option<&Account> {
        self.accounts.get(key)
    }

    /// How `key` is shown to others: its account's name as registered (names keep their
    /// case), or the key itself once no account holds it.
    pub fn shown_name<'a>(&'a self, key: &'a UserKey) -> &'a str {
        self.account(key).map_or(key.as_str(), |a| a.name.as_str())
    }

    /// Whether two accounts are friends.
    pub fn are_friends(&self, a: &UserKey, b: &UserKey) -> bool {
        self.friends.get(a).is_some_and(|f| f.contains_key(b))
    }

    /// The account and everything that names it as an account.
    fn delete_account(&mut self, key: &UserKey) {
        self.accounts.remove(key);
        self.offline.remove(key);
        for friend in self
            .friends
            .remove(key)
            .into_iter()
            .flat_map(|f| f.into_keys())
        {
            self.unfriend(&friend, key);
        }
        self.friend_requests.remove(key);
        self.friend_requests.retain(|_, pending| {
            pending.retain(|r| r.from != *key);
            !pending.is_empty()
        });
        let mut emptied = Vec::new();
        for (id, chat) in &mut self.chats {
            if chat.members.remove(key) && chat.members.is_empty() {
                emptied.push(*id);
            }
        }
        for id in emptied {
            self.delete_chat(id);
        }
        // Media it sent to chats that remain stays, counted to no one.
        for media in self.media.values_mut() {
            if media.sender.as_ref() == Some(key) {
                media.sender = None;
            }
        }
    }

    /// A chat and its media.
    fn delete_chat(&mut self, id: ChatId) {
        self.chats.remove(&id);
        self.media.retain(|_, media| media.chat != id);
    }

    /// Removes `b` from `a`'s friends (one direction).
    fn unfriend(&mut self, a: &UserKey, b: &UserKey) {
        if let Some(friends) = self.friends.get_mut(a) {
            friends.remove(b);
            if friends.is_empty() {
                self.friends.remove(a);
            }
        }
    }

    /// Removes the pending request from `from` to `to`, if any.
    fn drop_request(&mut self, from: &UserKey, to: &UserKey) {
        if let Some(pending) = self.friend_requests.get_mut(to) {
            pending.retain(|r| r.from != *from);
            if pending.is_empty() {
                self.friend_requests.remove(to);
            }
        }
    }
}

/// Takes `id` from a counter: true if it is new (at or above the counter, which then moves
/// past it), false if it was taken before (the change is a replay).
fn take_id(next: &mut u64, id: u64) -> bool {
    if id < *next {
        return false;
    }
    *next = id.saturating_add(1);
    true
}
