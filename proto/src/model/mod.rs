//! The protocol-neutral network: who is online, on which connections, and the traffic
//! between them. It knows nothing of any wire protocol; each protocol translates its
//! requests into calls here and the resulting [`Event`]s back into its own messages.

mod receipts;
mod shares;
mod uncommitted;

pub use crate::names::{NameError, UserKey, UserName, MAX_NAME_CHARS};

use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::ids::{ConnId, Seq};
use crate::persist::{Account, Change, MessageId, MessageKind, State, StoredMessage};
use receipts::OwedReceipts;
use shares::MailboxShares;
pub(crate) use uncommitted::Item;
use uncommitted::Uncommitted;

/// One logged-in presence of a user on a connection. A connection holds at most one
/// session for most protocols; a jabberd router link holds many.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SessionId(u64);

impl SessionId {
    /// Its number, for protocols that show it (a test protocol's transcript).
    #[cfg(test)]
    pub(crate) fn number(self) -> u64 {
        self.0
    }

    /// Session `n`, for tests.
    #[cfg(test)]
    pub(crate) fn for_test(n: u64) -> SessionId {
        SessionId(n)
    }
}

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

/// A private message between two users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DirectMessage {
    pub(crate) from: UserName,
    pub(crate) to: UserName,
    pub(crate) body: String,
    pub(crate) kind: DirectKind,
}

/// How the sender's protocol framed a direct message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DirectKind {
    /// An ordinary private message.
    Chat,
    /// A whisper (ws2017 `chatw`); shown as such where the protocol has the notion.
    Whisper,
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

/// Why a direct message could not be delivered now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DirectError {
    /// Nobody of that name is online or registered.
    NoSuchUser,
    /// The recipient has an account but no session: the message can be stored with
    /// [`Network::offline_message`]. Holds the account's name.
    Offline(UserName),
    /// The recipient's offline queue is full.
    MailboxFull,
    /// The sender already holds its share of the recipient's offline queue.
    ShareUsed,
}

/// How a protocol's sessions behave in the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LoginKind {
    /// The name must not be online already (ws2017 nicks); otherwise the session joins
    /// the user's other sessions.
    pub(crate) exclusive: bool,
    /// The session answers delivered direct messages with receipts (ws2017 `chatr`);
    /// otherwise the sender is told of delivery at once.
    pub(crate) sends_receipts: bool,
}

/// The name is held by someone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NameTaken;

#[derive(Debug)]
struct OnlineUser {
    name: UserName,
    sessions: BTreeSet<SessionId>,
}

#[derive(Debug)]
struct SessionRecord {
    conn: ConnId,
    user: UserKey,
    /// Whether this session answers delivered direct messages with receipts.
    sends_receipts: bool,
}

/// The shared model of the network.
#[derive(Debug, Default)]
pub(crate) struct Network {
    /// Durable state, changed only through [`Network::apply`].
    state: State,
    /// A commit failed and has not yet succeeded.
    store_failing: bool,
    /// Items with changes not yet committed.
    uncommitted: Uncommitted,
    /// Offline messages per (recipient, sender), following `state`.
    shares: MailboxShares,
    users: BTreeMap<UserKey, OnlineUser>,
    sessions: BTreeMap<SessionId, SessionRecord>,
    /// Receipts still owed, per (sender, recipient): messages delivered to a session that
    /// sends receipts and not yet confirmed. Entries go when either user goes offline.
    owed_receipts: OwedReceipts,
    next_session: u64,
    pending: VecDeque<Delivery>,
    /// Direct messages relayed to online recipients.
    relayed: u64,
    #[cfg(feature = "planted-bugs")]
    pub(crate) planted_bug: Option<crate::config::PlantedBug>,
}

impl Network {
    /// A network with no one online, over the durable state the store loaded.
    pub(crate) fn new(state: State) -> Self {
        Network {
            shares: MailboxShares::of(&state),
            state,
            ..Network::default()
        }
    }

    /// Applies a durable change to memory; the caller queues it for the store as `seq`.
    pub(crate) fn apply(&mut self, change: &Change, seq: Seq) {
        self.shares.before(&self.state, change);
        self.state.apply(change);
        #[cfg(test)]
        debug_assert!(
            self.shares.matches(&self.state),
            "shares drifted at {change:?}"
        );
        self.uncommitted.add(change, seq);
    }

    /// Everything through `through` is committed; the store works.
    pub(crate) fn committed(&mut self, through: Seq) {
        self.uncommitted.committed(through);
        self.store_failing = false;
    }

    /// The commit a reply that depends on `item` must wait for, if one is pending.
    pub(crate) fn wait_for(&self, item: &Item) -> Option<Seq> {
        self.uncommitted.wait_for(item)
    }

    /// The commit a reply that depends on all durable state must wait for.
    pub(crate) fn wait_for_all(&self) -> Option<Seq> {
        self.uncommitted.wait_for_all()
    }

    /// The durable state.
    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    pub(crate) fn store_failing(&self) -> bool {
        self.store_failing
    }

    pub(crate) fn commit_failed(&mut self) {
        self.store_failing = true;
    }

    /// The registered account of a name.
    pub(crate) fn account(&self, key: &UserKey) -> Option<&Account> {
        self.state.account(key)
    }

    /// Whether a name is in use: online, or registered to an account.
    pub(crate) fn name_taken(&self, key: &UserKey) -> bool {
        self.users.contains_key(key) || self.state.accounts.contains_key(key)
    }

    pub(crate) fn ip_banned(&self, ip: IpAddr) -> bool {
        self.state.ip_bans.contains(&ip)
    }

    /// Kicks every session of a user; returns how many there were.
    pub(crate) fn kick_user(&mut self, key: &UserKey, reason: KickReason) -> usize {
        let Some(user) = self.users.get(key) else {
            return 0;
        };
        for session in &user.sessions {
            if let Some(rec) = self.sessions.get(session) {
                self.pending.push_back(Delivery {
                    to: Audience::Conn(rec.conn),
                    event: Event::Kicked {
                        session: Some(*session),
                        reason,
                    },
                });
            }
        }
        user.sessions.len()
    }

    /// Kicks a whole connection (all its sessions) for `reason`.
    pub(crate) fn kick_conn(&mut self, conn: ConnId, reason: KickReason) {
        self.pending.push_back(Delivery {
            to: Audience::Conn(conn),
            event: Event::Kicked {
                session: None,
                reason,
            },
        });
    }

    /// Builds the change that stores a direct message from the user of `from` for the
    /// offline account `to`, unless its queue already holds `cap` messages, or `share`
    /// of them from this sender.
    pub(crate) fn offline_message(
        &self,
        from: SessionId,
        to: &UserName,
        body: String,
        sent_ms: u64,
        (cap, share): (usize, usize),
    ) -> Result<Change, DirectError> {
        let from = self.session_name(from).ok_or(DirectError::NoSuchUser)?;
        let key = to.key();
        if !self.state.accounts.contains_key(&key) {
            return Err(DirectError::NoSuchUser);
        }
        if self.state.offline.get(&key).map_or(0, |q| q.len()) >= cap {
            return Err(DirectError::MailboxFull);
        }
        if self.shares.held(&key, &from.key()) >= share {
            return Err(DirectError::ShareUsed);
        }
        Ok(Change::OfflineQueued(StoredMessage {
            id: MessageId(self.state.next_message_id),
            from: from.clone(),
            to: to.clone(),
            body,
            sent_ms,
            kind: MessageKind::Direct,
        }))
    }

    /// Whether anyone of this name is online.
    pub(crate) fn is_online(&self, key: &UserKey) -> bool {
        self.users.contains_key(key)
    }

    /// The name an online user goes by.
    pub(crate) fn online_name(&self, key: &UserKey) -> Option<&UserName> {
        self.users.get(key).map(|u| &u.name)
    }

    /// Online users' names, in key order.
    pub(crate) fn online_names(&self) -> impl Iterator<Item = &UserName> {
        self.users.values().map(|u| &u.name)
    }

    /// The name of the user behind a session.
    pub(crate) fn session_name(&self, session: SessionId) -> Option<&UserName> {
        let rec = self.sessions.get(&session)?;
        self.users.get(&rec.user).map(|u| &u.name)
    }

    /// Opens a session for `name` on `conn`; fails for an exclusive login when the name
    /// is already online.
    pub(crate) fn login(
        &mut self,
        name: &UserName,
        conn: ConnId,
        kind: LoginKind,
    ) -> Result<SessionId, NameTaken> {
        let key = name.key();
        if kind.exclusive && self.users.contains_key(&key) {
            return Err(NameTaken);
        }
        let session = SessionId(self.next_session);
        self.next_session += 1;
        self.sessions.insert(
            session,
            SessionRecord {
                conn,
                user: key.clone(),
                sends_receipts: kind.sends_receipts,
            },
        );
        let user = self.users.entry(key).or_insert_with(|| OnlineUser {
            name: name.clone(),
            sessions: BTreeSet::new(),
        });
        user.sessions.insert(session);
        if user.sessions.len() == 1 {
            self.broadcast(conn, Event::UserOnline { name: name.clone() });
        }
        Ok(session)
    }

    /// Ends a session; the user goes offline with its last one.
    pub(crate) fn logout(&mut self, session: SessionId) {
        let Some(rec) = self.sessions.remove(&session) else {
            return;
        };
        let Some(user) = self.users.get_mut(&rec.user) else {
            return;
        };
        user.sessions.remove(&session);
        if user.sessions.is_empty() {
            let name = user.name.clone();
            self.users.remove(&rec.user);
            self.owed_receipts.forget(&rec.user);
            self.broadcast(rec.conn, Event::UserOffline { name });
        }
    }

    /// Renames the user behind `session`, which must be its only session. Returns the
    /// old name.
    pub(crate) fn rename(
        &mut self,
        session: SessionId,
        new: &UserName,
    ) -> Result<UserName, NameTaken> {
        let new_key = new.key();
        let Some(rec) = self.sessions.get_mut(&session) else {
            return Err(NameTaken);
        };
        let old_key = rec.user.clone();
        if new_key != old_key && self.users.contains_key(&new_key) {
            return Err(NameTaken);
        }
        let conn = rec.conn;
        rec.user = new_key.clone();
        let Some(mut user) = self.users.remove(&old_key) else {
            return Err(NameTaken);
        };
        let old = std::mem::replace(&mut user.name, new.clone());
        self.users.insert(new_key, user);
        self.owed_receipts.forget(&old_key);
        self.broadcast(
            conn,
            Event::UserRenamed {
                old: old.clone(),
                new: new.clone(),
            },
        );
        Ok(old)
    }

    /// Sends a direct message from the user of `from` to every session of `to`; returns
    /// the recipient's name as it is online. Nothing is stored: for an offline account
    /// the error says so and the caller decides.
    pub(crate) fn send_direct(
        &mut self,
        from: SessionId,
        to: &UserName,
        body: &str,
        kind: DirectKind,
    ) -> Result<UserName, DirectError> {
        let to_key = to.key();
        let Some(sender_key) = self.sessions.get(&from).map(|r| r.user.clone()) else {
            return Err(DirectError::NoSuchUser);
        };
        let Some(recipient) = self.users.get(&to_key) else {
            return Err(match self.state.account(&to_key) {
                Some(account) => DirectError::Offline(account.name.clone()),
                None => DirectError::NoSuchUser,
            });
        };
        let Some(sender_name) = self.users.get(&sender_key).map(|u| u.name.clone()) else {
            return Err(DirectError::NoSuchUser);
        };
        let message = DirectMessage {
            from: sender_name,
            to: recipient.name.clone(),
            body: body.to_owned(),
            kind,
        };
        self.relayed += 1;
        #[cfg(feature = "planted-bugs")]
        if self.planted_bug == Some(crate::config::PlantedBug::DropRelayedMessage)
            && self.relayed.is_multiple_of(100)
        {
            return Ok(message.to);
        }
        let mut receipts_coming = false;
        for &session in &recipient.sessions {
            let Some(rec) = self.sessions.get(&session) else {
                continue;
            };
            receipts_coming |= rec.sends_receipts;
            self.pending.push_back(Delivery {
                to: Audience::Conn(rec.conn),
                event: Event::Direct {
                    session,
                    message: message.clone(),
                },
            });
        }
        if receipts_coming {
            self.owed_receipts.owe(sender_key, to_key);
        } else {
            self.deliver_receipt(&message.from.key(), &message.to);
        }
        Ok(message.to)
    }

    /// The user of `recipient` confirms a direct message from `sender`. Relayed to the
    /// sender only if a receipt is owed; returns whether it was.
    pub(crate) fn receipt(&mut self, recipient: SessionId, sender: &UserName) -> bool {
        let Some(rec) = self.sessions.get(&recipient) else {
            return false;
        };
        let (sender, recipient) = (sender.key(), rec.user.clone());
        if !self.owed_receipts.settle(&sender, &recipient) {
            return false;
        }
        let Some(to) = self.users.get(&recipient).map(|u| u.name.clone()) else {
            return false;
        };
        self.deliver_receipt(&sender, &to);
        true
    }

    /// Queues `event` for `to`, after the events already queued.
    pub(crate) fn notify(&mut self, to: Audience, event: Event) {
        self.pending.push_back(Delivery { to, event });
    }

    /// The next event to hand out, in the order they happened.
    pub(crate) fn poll_delivery(&mut self) -> Option<Delivery> {
        self.pending.pop_front()
    }

    /// Direct messages relayed to online recipients since start.
    pub(crate) fn relayed(&self) -> u64 {
        self.relayed
    }

    /// Number of online users.
    pub(crate) fn online_count(&self) -> usize {
        self.users.len()
    }

    fn deliver_receipt(&mut self, sender: &UserKey, to: &UserName) {
        let Some(user) = self.users.get(sender) else {
            return;
        };
        for &session in &user.sessions {
            if let Some(rec) = self.sessions.get(&session) {
                self.pending.push_back(Delivery {
                    to: Audience::Conn(rec.conn),
                    event: Event::Delivered {
                        session,
                        to: to.clone(),
                    },
                });
            }
        }
    }

    fn broadcast(&mut self, except: ConnId, event: Event) {
        self.pending.push_back(Delivery {
            to: Audience::AllBut(except),
            event,
        });
    }
}
