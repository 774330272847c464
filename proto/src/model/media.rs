//! How many bytes of media each account has stored, kept in step with the durable state
//! so a new item can be checked against the per-user total without walking every item.
//!
//! An item counts towards its sender from the moment it is stored (uncommitted included:
//! the state is changed when the change is queued) until it is removed. Media is removed
//! only with its chat: when a member deletes the chat, or when the last member's account
//! is deleted. A deleted sender's items that stay in a chat count towards no one.

use super::{Network, NetworkEvent, SessionId, UserKey};
use crate::persist::{Change, State};

/// Keyed by account names, which peers choose: seeded per server.
type Map<K, V> = crate::hashing::PeerMap<K, V>;

/// Stored media bytes per sending account.
#[derive(Debug, Default)]
pub(super) struct MediaTotals {
    bytes: Map<UserKey, u64>,
    hasher: crate::hashing::Seeded,
}

impl MediaTotals {
    /// The totals of the media in `state`, in a map hashing with `hasher`.
    pub(super) fn of(state: &State, hasher: crate::hashing::Seeded) -> Self {
        let mut totals = MediaTotals {
            bytes: crate::hashing::peer_map(hasher.clone()),
            hasher,
        };
        for media in state.media.values() {
            if let Some(sender) = &media.sender {
                totals.add(sender, media.size);
            }
        }
        totals
    }

    /// The hasher its map was built with, for a recount.
    pub(super) fn hasher(&self) -> crate::hashing::Seeded {
        self.hasher.clone()
    }

    /// Bytes of media `user` has stored.
    pub(super) fn of_user(&self, user: &UserKey) -> u64 {
        self.bytes.get(user).copied().unwrap_or(0)
    }

    /// Follows `change`, which is about to be applied to `state` (the state before it).
    /// Returns whether the totals must be counted again after it (an account deletion,
    /// rare, whose cascade is [`State::apply`]'s to decide).
    pub(super) fn before(&mut self, state: &State, change: &Change) -> bool {
        match change {
            // The same test as State::apply: a replayed item is not added twice, and
            // an item for a chat that is gone is not kept.
            Change::MediaStored {
                id,
                chat,
                sender,
                bytes,
                ..
            } if id.0 >= state.next_media_id && state.chats.contains_key(chat) => {
                let sender = sender.key();
                if state.accounts.contains_key(&sender) {
                    self.add(&sender, bytes.0.len() as u64);
                }
                false
            }
            Change::ChatDeleted { id } => {
                for media in state.media.values().filter(|m| m.chat == *id) {
                    if let Some(sender) = &media.sender {
                        self.remove(sender, media.size);
                    }
                }
                false
            }
            Change::AccountDeleted { .. } => true,
            _ => false,
        }
    }

    fn add(&mut self, user: &UserKey, size: u64) {
        let total = self.bytes.entry(user.clone()).or_default();
        *total = total.saturating_add(size);
    }

    fn remove(&mut self, user: &UserKey, size: u64) {
        if let Some(total) = self.bytes.get_mut(user) {
            *total = total.saturating_sub(size);
            if *total == 0 {
                self.bytes.remove(user);
            }
        }
    }

    /// Whether the totals match a walk of `state` (for tests).
    #[cfg(test)]
    pub(super) fn matches(&self, state: &State) -> bool {
        MediaTotals::of(state, self.hasher.clone()).bytes == self.bytes
    }
}

/// Why a media item may not be stored: its sender's total would pass the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MediaTotalUsed {
    /// Bytes the sender has stored already.
    pub(crate) stored: u64,
    /// The limit of the total.
    pub(crate) limit: u64,
}

impl Network {
    /// Whether the user of `session` may store an item of `size` bytes, its total of
    /// stored media staying within `limit`. A refusal is recorded
    /// ([`NetworkEvent::MediaRefused`]); nothing changes either way.
    pub(crate) fn admit_media(
        &mut self,
        session: SessionId,
        size: u64,
        limit: u64,
    ) -> Result<(), MediaTotalUsed> {
        let Some(record) = self.sessions.get(&session) else {
            return Ok(());
        };
        let stored = self.media_totals.of_user(&record.user);
        if stored.saturating_add(size) <= limit {
            return Ok(());
        }
        let conn = record.conn;
        self.record(|net| {
            Some(NetworkEvent::MediaRefused {
                name: net.session_name(session)?.clone(),
                conn,
                size,
                stored,
                limit,
            })
        });
        Err(MediaTotalUsed { stored, limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::{Account, Blob, ChatId, MediaId, PasswordHash};
    use crate::UserName;
    use bytes::Bytes;

    fn name(s: &str) -> UserName {
        UserName::parse(s).expect("valid name")
    }

    fn account(s: &str) -> Change {
        Change::AccountCreated(Account {
            name: name(s),
            password: PasswordHash(String::new()),
            ims_password: PasswordHash(String::new()),
            email: None,
            gender: None,
            level: 0,
            banned: false,
            created_ms: 0,
        })
    }

    fn media(id: u64, chat: u64, sender: &str, size: usize) -> Change {
        Change::MediaStored {
            id: MediaId(id),
            chat: ChatId(chat),
            sender: name(sender),
            created_ms: 0,
            bytes: Blob(Bytes::from(vec![0; size])),
        }
    }

    fn chat(id: u64, a: &str, b: &str) -> Change {
        Change::ChatCreated {
            id: ChatId(id),
            members: vec![name(a), name(b)],
            created_ms: 0,
        }
    }

    #[test]
    fn totals_follow_every_change_to_the_media() {
        let mut state = State::default();
        let mut totals = MediaTotals::default();
        let mut apply = |change: Change| {
            if totals.before(&state, &change) {
                state.apply(&change);
                totals = MediaTotals::of(&state, Default::default());
            } else {
                state.apply(&change);
            }
            assert!(totals.matches(&state), "after {change:?}");
            (
                totals.of_user(&name("alice").key()),
                totals.of_user(&name("bob").key()),
            )
        };
        for who in ["alice", "bob", "carol"] {
            apply(account(who));
        }
        apply(chat(0, "alice", "bob"));
        apply(chat(1, "alice", "carol"));
        assert_eq!(apply(media(0, 0, "alice", 10)), (10, 0));
        assert_eq!(apply(media(1, 0, "Bob", 7)), (10, 7));
        assert_eq!(apply(media(2, 1, "ALICE", 5)), (15, 7));
        // A replayed item counts once; an item for a chat that is gone not at all.
        assert_eq!(apply(media(1, 0, "bob", 7)), (15, 7));
        assert_eq!(apply(media(3, 9, "bob", 100)), (15, 7));
        // A sender who is not an account counts towards no one.
        apply(media(4, 0, "nobody", 3));
        // Deleting a chat gives its media back to both senders.
        assert_eq!(apply(Change::ChatDeleted { id: ChatId(0) }), (5, 0));
        // A deleted account's total goes; its media in carol's chat stays, uncounted.
        assert_eq!(
            apply(Change::AccountDeleted {
                name: name("alice")
            }),
            (0, 0)
        );
        assert_eq!(state.media.len(), 1);
        assert_eq!(state.media[&MediaId(2)].sender, None);
    }
}
