//! Receipts owed between users: direct messages delivered to a session that answers with
//! receipts, not yet confirmed.

use rustc_hash::{FxHashMap, FxHashSet};

use super::sessions::UserId;

/// Counts of owed receipts per (sender, recipient), with each user's counterparts, so a
/// user going offline drops its entries without a scan. Keyed by the online users' ids,
/// which the server assigns (hash maps with the compiler's hasher): one message costs a
/// hash of two integers. Never iterated to produce output.
#[derive(Debug, Default)]
pub(crate) struct OwedReceipts {
    by_sender: FxHashMap<(UserId, UserId), u32>,
    /// Every user in an entry of `by_sender`, with the users on the other side of its
    /// entries.
    peers: FxHashMap<UserId, FxHashSet<UserId>>,
}

impl OwedReceipts {
    /// One more message from `sender` awaits a receipt from `recipient`.
    pub(crate) fn owe(&mut self, sender: UserId, recipient: UserId) {
        let owed = self.by_sender.entry((sender, recipient)).or_insert(0);
        if *owed == 0 {
            self.peers.entry(sender).or_default().insert(recipient);
            self.peers.entry(recipient).or_default().insert(sender);
        }
        *owed = owed.saturating_add(1);
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
            if !self.by_sender.contains_key(&(recipient, sender)) {
                self.unlink(sender, recipient);
                self.unlink(recipient, sender);
            }
        }
        true
    }

    /// `a` and `b` owe each other nothing any more.
    fn unlink(&mut self, a: UserId, b: UserId) {
        if let Some(set) = self.peers.get_mut(&a) {
            set.remove(&b);
            if set.is_empty() {
                self.peers.remove(&a);
            }
        }
    }

    /// Forgets every receipt to or from `user`.
    pub(crate) fn forget(&mut self, user: UserId) {
        let Some(peers) = self.peers.remove(&user) else {
            return;
        };
        for peer in peers {
            self.by_sender.remove(&(user, peer));
            self.by_sender.remove(&(peer, user));
            self.unlink(peer, user);
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
        assert!(r.peers.is_empty(), "{:?}", r.peers);
        // Settling both ways leaves no index behind either.
        r.owe(a, b);
        r.owe(b, a);
        assert!(r.settle(a, b));
        assert!(r.peers.contains_key(&a), "b still owes a receipt to a");
        assert!(r.settle(b, a));
        assert!(r.peers.is_empty(), "{:?}", r.peers);
    }
}
