//! How many of each account's offline messages each sender holds, for the mailboxes whose
//! shares were asked for, kept in step with the durable state so a sender's share is known
//! without walking the mailbox again.
//!
//! Counted lazily: a share is asked for only when a mailbox holds at least a share's worth
//! ([`Network::route_direct`](super::Network::route_direct)), so most mailboxes are never
//! counted. A mailbox is walked once, at the first question about it, and followed from
//! then on until it empties. Keeping counts for every mailbox cost two hash lookups per
//! stored message that miss the cache once the state is large (7-9 % of the loop storing
//! 1 M messages to 1000 mailboxes).

use std::cell::RefCell;

use super::UserKey;
use crate::persist::{Change, State};

/// Keyed by account names, which peers choose: seeded per server.
type Map<K, V> = crate::hashing::PeerMap<K, V>;

/// Offline messages per recipient, then per sender, for the mailboxes counted so far.
#[derive(Debug, Default)]
pub(super) struct MailboxShares {
    /// A cache filled by [`MailboxShares::held`], which only reads the state: hence the
    /// cell. Only non-empty mailboxes have an entry.
    counted: RefCell<Map<UserKey, Map<UserKey, usize>>>,
    hasher: crate::hashing::Seeded,
}

impl MailboxShares {
    /// No mailbox counted yet, in maps hashing with `hasher`.
    pub(super) fn new(hasher: crate::hashing::Seeded) -> Self {
        MailboxShares {
            counted: RefCell::new(crate::hashing::peer_map(hasher.clone())),
            hasher,
        }
    }

    /// Messages for `to` from `from` held now in `state`.
    pub(super) fn held(&self, state: &State, to: &UserKey, from: &UserKey) -> usize {
        let mut counted = self.counted.borrow_mut();
        if let Some(senders) = counted.get(to) {
            return senders.get(from).copied().unwrap_or(0);
        }
        let Some(queue) = state.offline.get(to).filter(|q| !q.is_empty()) else {
            return 0;
        };
        let mut senders = crate::hashing::peer_map(self.hasher.clone());
        for message in queue {
            *senders.entry(message.from.key()).or_default() += 1;
        }
        let held = senders.get(from).copied().unwrap_or(0);
        counted.insert(to.clone(), senders);
        held
    }

    /// Follows `change`, which is about to be applied to `state` (the state before it):
    /// it touches only the counted mailboxes the change adds to or removes from.
    pub(super) fn before(&mut self, state: &State, change: &Change) {
        let counted = self.counted.get_mut();
        if counted.is_empty() {
            return;
        }
        match change {
            // The same test as State::apply: a replayed message is not added twice.
            Change::OfflineQueued(message) if message.id.0 >= state.next_message_id => {
                if let Some(senders) = counted.get_mut(message.to.key_ref()) {
                    *senders.entry(message.from.key()).or_default() += 1;
                }
            }
            Change::OfflineDelivered { to, through } => {
                let Some(senders) = counted.get_mut(to.key_ref()) else {
                    return;
                };
                let queue = state.offline.get(to.key_ref()).into_iter().flatten();
                for message in queue.take_while(|m| m.id <= *through) {
                    let from = message.from.key_ref();
                    if let Some(n) = senders.get_mut(from) {
                        *n -= 1;
                        if *n == 0 {
                            senders.remove(from);
                        }
                    }
                }
                if senders.is_empty() {
                    counted.remove(to.key_ref());
                }
            }
            Change::AccountDeleted { name } => {
                counted.remove(name.key_ref());
            }
            _ => {}
        }
    }

    /// Whether every counted mailbox matches a walk of `state` (for tests).
    #[cfg(test)]
    pub(super) fn matches(&self, state: &State) -> bool {
        self.counted.borrow().iter().all(|(to, senders)| {
            let mut walked: std::collections::BTreeMap<&UserKey, usize> = Default::default();
            for message in state.offline.get(to).into_iter().flatten() {
                *walked.entry(message.from.key_ref()).or_default() += 1;
            }
            !walked.is_empty()
                && walked.len() == senders.len()
                && walked.iter().all(|(from, n)| senders.get(*from) == Some(n))
        })
    }

    /// Mailboxes counted now (for tests).
    #[cfg(test)]
    pub(super) fn counted(&self) -> usize {
        self.counted.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::{MessageId, MessageKind, StoredMessage};
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
    fn shares_follow_every_change_to_the_counted_mailboxes() {
        let mut state = State::default();
        let mut shares = MailboxShares::default();
        let (bob, alice) = (name("bob").key(), name("alice").key());
        let mut apply = |change: Change, state: &mut State| {
            shares.before(state, &change);
            state.apply(&change);
            assert!(shares.matches(state), "after {change:?}");
            (shares.held(state, &bob, &alice), shares.counted())
        };
        apply(queued(0, "alice", "bob"), &mut state);
        apply(queued(1, "alice", "bob"), &mut state);
        // Counted from the first question (inside `apply`), followed from then on.
        assert_eq!(apply(queued(2, "carol", "bob"), &mut state), (2, 1));
        // A replayed message is not counted twice.
        assert_eq!(apply(queued(1, "alice", "bob"), &mut state), (2, 1));
        assert_eq!(apply(queued(3, "Alice", "bob"), &mut state), (3, 1));
        // Dave's mailbox is never asked about: not counted.
        assert_eq!(apply(queued(4, "Alice", "dave"), &mut state), (3, 1));
        let delivered = Change::OfflineDelivered {
            to: name("bob"),
            through: MessageId(0),
        };
        assert_eq!(apply(delivered, &mut state), (2, 1));
        let delivered = Change::OfflineDelivered {
            to: name("BOB"),
            through: MessageId(3),
        };
        assert_eq!(
            apply(delivered, &mut state),
            (0, 0),
            "an empty mailbox goes"
        );
        apply(queued(5, "alice", "bob"), &mut state);
        assert_eq!(
            apply(Change::AccountDeleted { name: name("bob") }, &mut state),
            (0, 0)
        );
        assert_eq!(state.offline.len(), 1, "only dave's mailbox is left");
    }
}
