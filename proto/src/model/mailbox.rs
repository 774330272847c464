//! Each account's mailbox: the messages stored for it while it has no session.

use std::collections::BTreeMap;

use super::{DirectKind, Network, NetworkEvent, Outgoing, SessionId, UserKey, UserName};
use crate::ids::ConnId;
use crate::persist::{Change, FriendRequest, MessageId, MessageKind, StoredMessage};

/// What a session is handed at login, in order: its stored messages oldest first, then
/// the friend requests waiting for it in the order made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Drain {
    /// Stored messages not already handed to a connection that may still write them.
    pub(crate) messages: Vec<StoredMessage>,
    /// Pending friend requests to the user; they stay pending until answered.
    pub(crate) requests: Vec<FriendRequest>,
}

/// Stored messages handed to connections whose bytes are not yet reported written.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    /// Per connection, in the order handed: the offset its bytes end at, the mailbox
    /// and the message.
    by_conn: BTreeMap<ConnId, Vec<(u64, UserKey, MessageId)>>,
    /// Per mailbox, the last message handed and not yet removed.
    by_user: BTreeMap<UserKey, MessageId>,
}

impl Network {
    /// The change that stores `message` in the mailbox of the offline account `to`
    /// (named as registered), under the next message id; `None` if the sender's session
    /// is gone. The limits were checked by [`Network::route_direct`].
    pub(super) fn mailbox_change(&self, message: &Outgoing, to: &UserName) -> Option<Change> {
        let from = self.session_name(message.from)?;
        Some(Change::OfflineQueued(StoredMessage {
            id: MessageId(self.state.next_message_id),
            from: from.clone(),
            to: to.clone(),
            body: message.body.to_string(),
            sent_ms: message.sent_ms,
            kind: match message.kind {
                DirectKind::Chat | DirectKind::Whisper => MessageKind::Direct,
                DirectKind::InChat { chat, media } => MessageKind::Chat { chat, media },
            },
        }))
    }

    /// The change that tells the offline account `to` (named as registered), at its next
    /// login, that `from` accepted its friend request: a stored message of kind
    /// [`MessageKind::FriendAccepted`] under the next message id, with an empty body; `None`
    /// when its mailbox holds `cap` items (the friendship itself is made either way and
    /// shows in the contact list).
    pub(crate) fn acceptance_change(
        &self,
        from: &UserName,
        to: &UserName,
        now_ms: u64,
        cap: usize,
    ) -> Option<Change> {
        let held = self.state.offline.get(to.key_ref()).map_or(0, |q| q.len());
        if held >= cap {
            return None;
        }
        Some(Change::OfflineQueued(StoredMessage {
            id: MessageId(self.state.next_message_id),
            from: from.clone(),
            to: to.clone(),
            body: String::new(),
            sent_ms: now_ms,
            kind: MessageKind::FriendAccepted,
        }))
    }

    /// Hands the mailbox of the user of `session` to it: the one call every protocol
    /// makes at login ([`Cx::drain_mailbox`](crate::cx::Cx::drain_mailbox) sends each
    /// item and reports it with [`Network::handed`]). Messages already handed to another
    /// connection, and not yet known lost with it, are left out.
    pub(crate) fn drain_mailbox(&self, session: SessionId) -> Drain {
        let Some(key) = self.sessions.get(&session).map(|r| &r.user) else {
            return Drain {
                messages: Vec::new(),
                requests: Vec::new(),
            };
        };
        let after = self.in_flight.by_user.get(key);
        let messages = (self.state.offline.get(key).into_iter().flatten())
            .filter(|m| after.is_none_or(|after| m.id > *after))
            .cloned()
            .collect();
        let requests = self
            .state
            .friend_requests
            .get(key)
            .cloned()
            .unwrap_or_default();
        Drain { messages, requests }
    }

    /// Handing out the mailbox of `session` stopped for room on its connection, to go on
    /// when the runtime has written what was handed ([`Network::drain_done`] when it is
    /// all out). Until then direct messages to its user are stored, not delivered live,
    /// so they reach it after the older ones, in order.
    pub(crate) fn pause_drain(&mut self, session: SessionId) {
        let Some(rec) = self.sessions.get_mut(&session) else {
            return;
        };
        if rec.drain_paused {
            return;
        }
        rec.drain_paused = true;
        let Some(user) = self.users.get_mut(&rec.user) else {
            return;
        };
        user.drains_paused += 1;
        if user.drains_paused == 1 {
            let to = user.name.clone();
            self.record(|_| Some(NetworkEvent::MailboxPaused { to }));
        }
    }

    /// The mailbox of `session` is handed out in full: live delivery resumes.
    pub(crate) fn drain_done(&mut self, session: SessionId) {
        let Some(rec) = self.sessions.get_mut(&session) else {
            return;
        };
        if rec.drain_paused {
            rec.drain_paused = false;
            let key = rec.user.clone();
            self.drain_unpaused(&key);
        }
    }

    /// One session of `key` no longer has its drain paused.
    pub(super) fn drain_unpaused(&mut self, key: &UserKey) {
        let Some(user) = self.users.get_mut(key) else {
            return;
        };
        user.drains_paused -= 1;
        if user.drains_paused == 0 {
            let to = user.name.clone();
            self.record(|_| Some(NetworkEvent::MailboxResumed { to }));
        }
    }

    /// Stored message `id` of `key`'s mailbox was queued on `conn`, its bytes ending at
    /// offset `end` of the connection's output.
    pub(crate) fn handed(&mut self, conn: ConnId, key: &UserKey, id: MessageId, end: u64) {
        self.record_message(|net| {
            Some(NetworkEvent::StoredHandedOut {
                to: net.state.account(key)?.name.clone(),
                id,
                conn,
            })
        });
        let entries = self.in_flight.by_conn.entry(conn).or_default();
        entries.push((end, key.clone(), id));
        let last = self.in_flight.by_user.entry(key.clone()).or_insert(id);
        *last = (*last).max(id);
    }

    /// The runtime has written `written` bytes of `conn` since it opened: the changes
    /// that remove the stored messages now written, one per mailbox, for the caller to
    /// persist. A message is removed only by such a change, after its bytes are written.
    pub(crate) fn conn_written(&mut self, conn: ConnId, written: u64) -> Vec<Change> {
        let Some(entries) = self.in_flight.by_conn.get_mut(&conn) else {
            return Vec::new();
        };
        let done = entries
            .iter()
            .take_while(|(end, ..)| *end <= written)
            .count();
        let mut through: BTreeMap<UserKey, MessageId> = BTreeMap::new();
        for (_, key, id) in entries.drain(..done) {
            let last = through.entry(key).or_insert(id);
            *last = (*last).max(id);
        }
        if entries.is_empty() {
            self.in_flight.by_conn.remove(&conn);
        }
        let mut changes = Vec::new();
        for (key, id) in through {
            if self
                .in_flight
                .by_user
                .get(&key)
                .is_some_and(|last| *last <= id)
            {
                self.in_flight.by_user.remove(&key);
            }
            if let Some(account) = self.state.account(&key) {
                changes.push(Change::OfflineDelivered {
                    to: account.name.clone(),
                    through: id,
                });
            }
        }
        for change in &changes {
            if let Change::OfflineDelivered { to, through } = change {
                let (to, through) = (to.clone(), *through);
                self.record_message(|_| Some(NetworkEvent::StoredRemoved { to, through }));
            }
        }
        changes
    }

    /// `conn` is gone: what it was handed and did not write stays in the mailboxes, to
    /// be handed again at the next login.
    pub(crate) fn conn_closed(&mut self, conn: ConnId) {
        let Some(entries) = self.in_flight.by_conn.remove(&conn) else {
            return;
        };
        for (_, key, _) in entries {
            let last = (self.in_flight.by_conn.values().flatten())
                .filter(|(_, k, _)| *k == key)
                .map(|(_, _, id)| *id)
                .max();
            match last {
                Some(id) => self.in_flight.by_user.insert(key, id),
                None => self.in_flight.by_user.remove(&key),
            };
        }
    }
}
