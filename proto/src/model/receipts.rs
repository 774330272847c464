//! Receipts owed between users: direct messages delivered to a session that answers with
//! receipts, not yet confirmed.

use std::collections::{BTreeMap, BTreeSet};

use super::UserKey;

/// Counts of owed receipts per (sender, recipient), indexed both ways so a user going
/// offline drops its entries without a scan.
#[derive(Debug, Default)]
pub(crate) struct OwedReceipts {
    by_sender: BTreeMap<(UserKey, UserKey), u32>,
    /// (recipient, sender) for every entry of `by_sender`.
    by_recipient: BTreeSet<(UserKey, UserKey)>,
}

impl OwedReceipts {
    /// One more message from `sender` awaits a receipt from `recipient`.
    pub(crate) fn owe(&mut self, sender: UserKey, recipient: UserKey) {
        self.by_recipient
            .insert((recipient.clone(), sender.clone()));
        let owed = self.by_sender.entry((sender, recipient)).or_insert(0);
        *owed = owed.saturating_add(1);
    }

    /// Takes one owed receipt, if any is owed.
    pub(crate) fn settle(&mut self, sender: &UserKey, recipient: &UserKey) -> bool {
        let pair = (sender.clone(), recipient.clone());
        let Some(owed) = self.by_sender.get_mut(&pair) else {
            return false;
        };
        *owed -= 1;
        if *owed == 0 {
            self.by_sender.remove(&pair);
            self.by_recipient.remove(&(pair.1, pair.0));
        }
        true
    }

    /// Forgets every receipt to or from `user`.
    pub(crate) fn forget(&mut self, user: &UserKey) {
        let as_sender: Vec<UserKey> = (self.by_sender.range(prefix(user)))
            .take_while(|((s, _), _)| s == user)
            .map(|((_, r), _)| r.clone())
            .collect();
        for recipient in as_sender {
            self.by_recipient.remove(&(recipient.clone(), user.clone()));
            self.by_sender.remove(&(user.clone(), recipient));
        }
        let as_recipient: Vec<UserKey> = (self.by_recipient.range(prefix(user)))
            .take_while(|(r, _)| r == user)
            .map(|(_, s)| s.clone())
            .collect();
        for sender in as_recipient {
            self.by_sender.remove(&(sender.clone(), user.clone()));
            self.by_recipient.remove(&(user.clone(), sender));
        }
    }

    /// Pairs with receipts owed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_sender.len()
    }
}

/// Every pair whose first key is `user`, and after.
fn prefix(user: &UserKey) -> std::ops::RangeFrom<(UserKey, UserKey)> {
    (user.clone(), UserKey::min())..
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserName;

    fn key(s: &str) -> UserKey {
        UserName::parse(s).unwrap().key()
    }

    #[test]
    fn owing_settling_and_forgetting() {
        let mut r = OwedReceipts::default();
        r.owe(key("a"), key("b"));
        r.owe(key("a"), key("b"));
        r.owe(key("b"), key("a"));
        r.owe(key("c"), key("b"));
        r.owe(key("ab"), key("c"));
        assert!(r.settle(&key("a"), &key("b")));
        assert!(r.settle(&key("a"), &key("b")));
        assert!(!r.settle(&key("a"), &key("b")));
        r.owe(key("a"), key("b"));
        r.forget(&key("b"));
        assert_eq!(r.len(), 1, "only ab -> c is left");
        assert!(!r.settle(&key("c"), &key("b")));
        assert!(r.settle(&key("ab"), &key("c")));
        assert_eq!(r.len(), 0);
        assert!(r.by_recipient.is_empty());
    }
}
