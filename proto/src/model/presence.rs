//! Who is online, and to whom it shows: presence with audiences. Invisible shows as
//! offline to everyone but the user.

use std::collections::BTreeSet;

use super::{Audience, Delivery, Event, Network, RoomName, SessionId, Status, UserKey, UserName};
use crate::ids::ConnId;

/// How a user shows to others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shown {
    /// No session, or every session invisible.
    Offline,
    /// The most available status of its visible sessions (never `Invisible`).
    As(Status),
}

/// Who sees a user's presence; each protocol names its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PresenceAudience {
    /// Every online user (a lobby).
    Everyone,
    /// The user's friends (contacts, a roster).
    Friends,
    /// The members of a room.
    Room(RoomName),
    /// The operators (level 1 or more) among the members of a room.
    RoomOperators(RoomName),
}

impl Network {
    /// Whether anyone of this name is online.
    pub(crate) fn is_online(&self, key: &UserKey) -> bool {
        self.users.contains_key(key)
    }

    /// The name an online user goes by.
    pub(crate) fn online_name(&self, key: &UserKey) -> Option<&UserName> {
        self.users.get(key).map(|u| &u.name)
    }

    /// The names of the users who show as online (not every session invisible), in key
    /// order: the lobby's list.
    pub(crate) fn online_names(&self) -> impl Iterator<Item = &UserName> {
        let mut shown: Vec<(&UserKey, &UserName)> = (self.users.iter())
            .filter(|(key, _)| self.shown(key) != Shown::Offline)
            .map(|(key, u)| (key, &u.name))
            .collect();
        shown.sort_unstable_by(|a, b| a.0.cmp(b.0));
        shown.into_iter().map(|(_, name)| name)
    }

    /// The lobby's version ([`Network::online_names`] lists the same names in the same
    /// order while it stands still).
    pub(crate) fn lobby_version(&self) -> u64 {
        self.lobby_version
    }

    /// The accounts' version (a listing of every account names the same ones while it
    /// stands still).
    pub(crate) fn accounts_version(&self) -> u64 {
        self.accounts_version
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

    /// How the user `key` shows to others.
    pub(crate) fn shown(&self, key: &UserKey) -> Shown {
        (self.sessions_of(key))
            .filter_map(|s| self.sessions.get(&s).map(|r| r.status))
            .filter(|status| *status != Status::Invisible)
            .min()
            .map_or(Shown::Offline, Shown::As)
    }

    /// How the user `key` shows to `viewer`: as to anyone else, but a user sees its own
    /// sessions even when invisible.
    pub(crate) fn shown_to(&self, viewer: &UserKey, key: &UserKey) -> Shown {
        if viewer == key {
            let own = self.sessions_of(key).filter_map(|s| self.sessions.get(&s));
            return own
                .map(|r| r.status)
                .min()
                .map_or(Shown::Offline, Shown::As);
        }
        self.shown(key)
    }

    /// The sessions that see the presence of `key` through `audience`, in order, the
    /// user's own left out.
    pub(crate) fn audience(&self, key: &UserKey, audience: &PresenceAudience) -> Vec<SessionId> {
        let others = |s: &SessionId| self.sessions.get(s).is_some_and(|r| r.user != *key);
        match audience {
            PresenceAudience::Everyone => {
                let mut all: Vec<SessionId> =
                    self.sessions.keys().copied().filter(others).collect();
                all.sort_unstable();
                all
            }
            PresenceAudience::Friends => {
                let friends = self
                    .state
                    .friends
                    .get(key)
                    .into_iter()
                    .flat_map(|f| f.keys());
                friends.flat_map(|f| self.sessions_of(f)).collect()
            }
            PresenceAudience::Room(room) => self.members(room).filter(others).collect(),
            PresenceAudience::RoomOperators(room) => (self.members(room))
                .filter(others)
                .filter(|s| self.sessions.get(s).is_some_and(|r| r.level > 0))
                .collect(),
        }
    }

    /// The user `key` shows as `shown` now: its friends' sessions and the other members
    /// of the rooms its sessions are in are told, each once.
    pub(super) fn presence_changed(&mut self, name: &UserName, key: &UserKey, shown: Shown) {
        let mut told = BTreeSet::new();
        let mut audiences = vec![PresenceAudience::Friends];
        let rooms: BTreeSet<RoomName> = (self.sessions_of(key))
            .filter_map(|s| self.room_of(s).cloned())
            .collect();
        audiences.extend(rooms.into_iter().map(PresenceAudience::Room));
        for audience in &audiences {
            for session in self.audience(key, audience) {
                if told.insert(session) {
                    self.pending.push_back(Delivery {
                        to: Audience::Session(session),
                        event: Event::Presence {
                            name: name.clone(),
                            shown,
                        },
                    });
                }
            }
        }
    }
}
