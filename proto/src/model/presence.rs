//! Who is online, as the protocols list them.

use super::{Audience, Delivery, Event, Network, UserKey, UserName};
use crate::ids::ConnId;

impl Network {
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

    /// Number of online users.
    pub(crate) fn online_count(&self) -> usize {
        self.users.len()
    }

    pub(super) fn broadcast(&mut self, except: ConnId, event: Event) {
        self.pending.push_back(Delivery {
            to: Audience::AllBut(except),
            event,
        });
    }
}
