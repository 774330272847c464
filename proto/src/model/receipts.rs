//! Receipts owed between users: direct messages delivered to a session that answers with
//! receipts, not yet confirmed.

use std::collections::{BTreeMap, BTreeSet};

use super::sessions::UserId;

/// Counts of owed receipts per (sender, recipient), indexed both ways so a user going
/// offline drops its entries without a scan. Keyed by the online users' ids: one message
/// costs integer comparisons, not name comparisons.
#[derive(Debug, Default)]
pub(crate) struct OwedReceipts {
    by_sender: BTreeMap<(UserId, UserId), u32>,
    /// (recipient, sender) for every entry of `by_sender`.
    by_recipient: BTreeSet<(UserId, UserId)>,
}

impl OwedReceipts {
    /// One more message from `sender` awaits a receipt from `recipient`.
    pub(crate) fn owe(&mut self, sender: UserId, recipient: UserId) {
        if let Some(owed) = self.by_sender.get_mut(&(sender, recipient)) {
            *owed = owed.saturating_add(1);
            return;
        }
        self.by_sender.insert((sender, recipient), 1);
        self.by_recipient.insert((recipient, sender));
    }

    /// Takes one owed receipt, if any is owed.
    pub(crate) fn settle(&mut self, sender: UserId, recipient: UserId) -> bool {
        let pair = (sender, recipient);
        let Some(owed) = self.by_sender.get_mut(&pair) else {
            return false;
        };
        *owed -= 1;
        if *owed == 0 {
            self.by_sender.remove(&pair);
            self.by_recipient.remove(&(recipient, sender));
        }
        true
    }

    /// Forgets every receipt to or from `user`.
    pub(crate) fn forget(&mut self, user: UserId) {
        let as_sender: Vec<UserId> = (self.by_sender.range((user, UserId::MIN)..))
            .take_while(|((s, _), _)| *s == user)
            .map(|((_, r), _)| *r)
            .collect();
        for recipient in as_sender {
            self.by_recipient.remove(&(recipient, user));
            self.by_sender.remove(&(user, recipient));
        }
        let as_recipient: Vec<UserId> = (self.by_recipient.range((user, UserId::MIN)..))
            .take_while(|(r, _)| *r == user)
            .map(|(_, s)| *s)
            .collect();
        for sender in as_recipient {
            self.by_sender.remove(&(sender, user));
            self.by_recipient.remove(&(user, sender));
        }
    }

    /// Pairs with receipts owed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_sender.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owing_settling_and_forgetting() {
        let [a, b, c, ab] = [1, 2, 3, 4].map(UserId::for_test);
        let mut r = OwedReceipts::default();
        r.owe(a, b);
        r.owe(a, b);
        r.owe(b, a);
        r.owe(c, b);
        r.owe(ab, c);
        assert!(r.settle(a, b));
        assert!(r.settle(a, b));
        assert!(!r.settle(a, b));
        r.owe(a, b);
        r.forget(b);
        assert_eq!(r.len(), 1, "only ab -> c is left");
        assert!(!r.settle(c, b));
        assert!(r.settle(ab, c));
        assert_eq!(r.len(), 0);
        assert!(r.by_recipient.is_empty());
    }
}
