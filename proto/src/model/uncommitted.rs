//! Which durable items have changes not yet committed, so a reply that depends on one
//! waits for exactly that commit and no other.

use core::net::IpAddr;
use std::collections::BTreeMap;

use super::UserKey;
use crate::ids::Seq;
use crate::persist::{Change, ChatId};

/// A piece of durable state a reply can depend on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Item {
    /// Whether an account exists, and its fields.
    Account(UserKey),
    /// Whether an address is banned.
    Ip(IpAddr),
    /// An account's offline messages.
    Mailbox(UserKey),
    /// An account's friendships and the friend requests to and from it.
    Friends(UserKey),
    /// A chat, its members and its media.
    Chat(ChatId),
}

impl Item {
    fn of(change: &Change) -> Vec<Item> {
        match change {
            Change::AccountCreated(account) => vec![Item::Account(account.name.key())],
            Change::AccountDeleted { name } => {
                // The chats it leaves are not known here; nothing waits on a chat yet.
                vec![
                    Item::Account(name.key()),
                    Item::Mailbox(name.key()),
                    Item::Friends(name.key()),
                ]
            }
            Change::PasswordChanged { name, .. }
            | Change::UserBanned { name, .. }
            | Change::LevelChanged { name, .. } => vec![Item::Account(name.key())],
            Change::IpBanned(ip) | Change::IpUnbanned(ip) => vec![Item::Ip(*ip)],
            Change::OfflineQueued(message) => vec![Item::Mailbox(message.to.key())],
            Change::OfflineDelivered { to, .. } => vec![Item::Mailbox(to.key())],
            Change::FriendRequested { from: a, to: b, .. }
            | Change::FriendRequestDropped { from: a, to: b }
            | Change::FriendshipMade { a, b, .. }
            | Change::FriendshipEnded { a, b } => {
                vec![Item::Friends(a.key()), Item::Friends(b.key())]
            }
            Change::ChatCreated { id, .. } | Change::ChatDeleted { id } => vec![Item::Chat(*id)],
            Change::MediaStored { chat, .. } => vec![Item::Chat(*chat)],
        }
    }
}

/// The last uncommitted change of each item.
#[derive(Debug, Default)]
pub(crate) struct Uncommitted {
    by_item: BTreeMap<Item, Seq>,
    by_seq: BTreeMap<Seq, Vec<Item>>,
}

impl Uncommitted {
    /// `change`, persisted as `seq`, is not committed yet.
    pub(crate) fn add(&mut self, change: &Change, seq: Seq) {
        let items = Item::of(change);
        for item in &items {
            self.by_item.insert(item.clone(), seq);
        }
        self.by_seq.insert(seq, items);
    }

    /// Everything through `through` is committed.
    pub(crate) fn committed(&mut self, through: Seq) {
        while let Some(entry) = self.by_seq.first_entry() {
            if *entry.key() > through {
                break;
            }
            for item in entry.remove() {
                if self.by_item.get(&item).is_some_and(|&seq| seq <= through) {
                    self.by_item.remove(&item);
                }
            }
        }
    }

    /// The commit a reply about `item` must wait for, if any.
    pub(crate) fn wait_for(&self, item: &Item) -> Option<Seq> {
        self.by_item.get(item).copied()
    }

    /// The commit a reply about everything must wait for: the last change's.
    pub(crate) fn wait_for_all(&self) -> Option<Seq> {
        self.by_seq.last_key_value().map(|(&seq, _)| seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserName;

    #[test]
    fn an_item_waits_for_its_last_change_until_committed() {
        let bob = UserName::parse("bob").unwrap();
        let mut u = Uncommitted::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        u.add(&Change::IpBanned(ip), Seq(1));
        u.add(&Change::AccountDeleted { name: bob.clone() }, Seq(2));
        u.add(&Change::IpUnbanned(ip), Seq(3));
        assert_eq!(u.wait_for(&Item::Ip(ip)), Some(Seq(3)));
        assert_eq!(u.wait_for(&Item::Mailbox(bob.key())), Some(Seq(2)));
        assert_eq!(u.wait_for_all(), Some(Seq(3)));
        u.committed(Seq(2));
        assert_eq!(u.wait_for(&Item::Ip(ip)), Some(Seq(3)));
        assert_eq!(u.wait_for(&Item::Account(bob.key())), None);
        u.committed(Seq(3));
        assert_eq!(u.wait_for(&Item::Ip(ip)), None);
        assert_eq!(u.wait_for_all(), None);
    }
}
