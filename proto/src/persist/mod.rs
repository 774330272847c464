//! Durable state: what the store loads at start ([`State`]) and the changes the server
//! asks it to commit ([`Change`]). [`State::apply`] is the one way durable state changes,
//! in the server's memory and in every store that mirrors it.

use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::names::{UserKey, UserName};
pub use crate::secret::PasswordHash;

/// A registered account.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The name, in the case it was registered with.
    pub name: UserName,
    /// argon2id hash of the password.
    pub password: PasswordHash,
    /// argon2id hash of the lowercase hex MD5 of the password, which IMS clients send.
    pub ims_password: PasswordHash,
    /// Email address, if given.
    pub email: Option<String>,
    /// Gender, as the user gave it, if given.
    pub gender: Option<String>,
    /// 0 for a user; 1 or more for an operator.
    pub level: u8,
    /// A banned account gets no session.
    pub banned: bool,
    /// When it was created, in Unix milliseconds.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::ms))]
    pub created_ms: u64,
}

/// Identifies a stored offline message; increases across the store's lifetime.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(#[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::id))] pub u64);

/// A direct message kept for a recipient who was offline.
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
    /// When it was sent, in Unix milliseconds.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::ms))]
    pub sent_ms: u64,
}

/// One durable mutation. Each leaves the server as an `Output::Persist` and is
/// applied with [`State::apply`].
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new account.
    AccountCreated(Account),
    /// An account and its offline messages are gone.
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
}

/// Everything durable: accounts, bans and offline messages. The store loads it for
/// `Server::new`; the server keeps it current by applying its own changes.
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
}

impl State {
    /// Applies one change. Changes that no longer fit (a deleted account's password, say)
    /// are ignored, so replaying a log is always safe.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::AccountCreated(account) => {
                self.accounts.insert(account.name.key(), account.clone());
            }
            Change::AccountDeleted { name } => {
                self.accounts.remove(&name.key());
                self.offline.remove(&name.key());
            }
            Change::PasswordChanged {
                name,
                password,
                ims_password,
            } => {
                if let Some(account) = self.accounts.get_mut(&name.key()) {
                    account.password = password.clone();
                    account.ims_password = ims_password.clone();
                }
            }
            Change::UserBanned { name, banned } => {
                if let Some(account) = self.accounts.get_mut(&name.key()) {
                    account.banned = *banned;
                }
            }
            Change::IpBanned(ip) => {
                self.ip_bans.insert(*ip);
            }
            Change::IpUnbanned(ip) => {
                self.ip_bans.remove(ip);
            }
            // Ids only increase, so one below the counter was queued already: replaying a
            // batch that did reach the disk adds nothing twice.
            Change::OfflineQueued(message) if message.id.0 < self.next_message_id => {}
            Change::OfflineQueued(message) => {
                self.next_message_id = message.id.0.saturating_add(1);
                self.offline
                    .entry(message.to.key())
                    .or_default()
                    .push_back(message.clone());
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
        }
    }

    /// The account of a name, if registered.
    pub fn account(&self, key: &UserKey) -> Option<&Account> {
        self.accounts.get(key)
    }
}
