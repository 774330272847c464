//! How many of each account's offline messages each sender holds, kept in step with the
//! durable state so a sender's share is known without walking the mailbox.

use super::UserKey;
use crate::persist::{Change, State, StoredMessage};

/// Keyed by account names, which peers choose: seeded per server.
type Map<K, V> = crate::hashing::PeerMap<K, V>;

/// Offline messages per recipient, then per sender.
#[derive(Debug, Default)]
pub(super) struct MailboxShares {
    held: Map<UserKey, Map<UserKey, usize>>,
    hasher: crate::hashing::Seeded,
}

impl MailboxShares {
    /// The shares of the mailboxes in `state`, in maps hashing with `hasher`.
    pub(super) fn of(state: &State, hasher: crate::hashing::Seeded) -> Self {
        let mut shares = MailboxShares {
            held: crate::hashing::peer_map(hasher.clone()),
            hasher,
        };
        for message in state.offline.values().flatten() {
            shares.add(message);
        }
        shares
    }

    /// Messages for `to` from `from` held now.
    pub(super) fn held(&self, to: &UserKey, from: &UserKey) -> usize {
        (self.held.get(to))
            .and_then(|senders| senders.get(from))
            .copied()
            .unwrap_or(0)
    }

    /// Follows `change`, which is about to be applied to `state` (the state before it):
    /// it touches only the messages the change adds or removes.
    pub(super) fn before(&mut self, state: &State, change: &Change) {
        match change {
            // The same test as State::apply: a replayed message is not added twice.
            Change::OfflineQueued(message) if message.id.0 >= state.next_message_id => {
                self.add(message);
            }
            Change::OfflineDelivered { to, through } => {
                let queue = state.offline.get(to.key_ref()).into_iter().flatten();
                for message in queue.take_while(|m| m.id <= *through) {
                    self.remove(message);
                }
            }
            Change::AccountDeleted { name } => {
                for message in state.offline.get(name.key_ref()).into_iter().flatten() {
                    self.remove(message);
                }
            }
            _ => {}
        }
    }

    fn add(&mut self, message: &StoredMessage) {
        let hasher = &self.hasher;
        let senders = (self.held.entry(message.to.key()))
            .or_insert_with(|| crate::hashing::peer_map(hasher.clone()));
        *senders.entry(message.from.key()).or_default() += 1;
    }

    fn remove(&mut self, message: &StoredMessage) {
        let to = message.to.key();
        let Some(senders) = self.held.get_mut(&to) else {
            return;
        };
        let from = message.from.key();
        if let Some(n) = senders.get_mut(&from) {
            *n -= 1;
            if *n == 0 {
                senders.remove(&from);
            }
        }
        if senders.is_empty() {
            self.held.remove(&to);
        }
    }

    /// Whether the counts match a walk of `state` (for tests).
    #[cfg(test)]
    pub(super) fn matches(&self, state: &State) -> bool {
        MailboxShares::of(state, self.hasher.clone()).held == self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::{MessageId, MessageKind};
    use crate::UserName;

    fn name(s: &str) -> UserName {
        UserName::parse(s).expect("valid name")
    }

    fn queued(id: u64, from: &str, to: &str) -> Change {
        Change::OfflineQueued(StoredMessage {
            id: MessageId(id),
            from: name(from),
            to: name(to),
            body: String::new(),
            sent_ms: 0,
            kind: MessageKind::Direct,
        })
    }

    #[test]
    fn shares_follow_every_change_to_the_mailboxes() {
        let mut state = State::default();
        let mut shares = MailboxShares::default();
        let mut apply = |change: Change| {
            shares.before(&state, &change);
            state.apply(&change);
            assert!(shares.matches(&state), "after {change:?}");
            (
                shares.held(&name("bob").key(), &name("alice").key()),
                shares.held.len(),
            )
        };
        apply(queued(0, "alice", "bob"));
        apply(queued(1, "alice", "bob"));
        apply(queued(2, "carol", "bob"));
        // A replayed message is not counted twice.
        assert_eq!(apply(queued(1, "alice", "bob")).0, 2);
        apply(queued(3, "Alice", "dave"));
        let delivered = Change::OfflineDelivered {
            to: name("bob"),
            through: MessageId(0),
        };
        assert_eq!(apply(delivered).0, 1);
        let delivered = Change::OfflineDelivered {
            to: name("BOB"),
            through: MessageId(2),
        };
        assert_eq!(apply(delivered), (0, 1), "only dave's mailbox is left");
        assert_eq!(apply(Change::AccountDeleted { name: name("dave") }), (0, 0));
    }
}
