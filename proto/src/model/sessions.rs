//! Sessions: one logged-in presence of a user, on a connection or held by its protocol.

use super::NetworkEvent;
use super::{
    Audience, Capabilities, Delivery, Event, KickReason, LoginError, LoginKind, Network, RoomName,
    Shown, UserKey, UserName,
};
use crate::ids::{ConnId, Protocol};

/// One logged-in presence of a user on a connection. A connection holds one
/// session, or several when it is a link carrying many users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SessionId(u64);

impl SessionId {
    /// Its number, for protocols that show it (a test protocol's transcript).
    #[cfg(test)]
    pub(crate) fn number(self) -> u64 {
        self.0
    }

    /// Session `n`, for tests.
    #[cfg(test)]
    pub(crate) fn for_test(n: u64) -> SessionId {
        SessionId(n)
    }
}

/// An online user, numbered while it is online: what the model's per-message indexes
/// are keyed by, so they compare integers, not names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct UserId(u64);

impl UserId {
    /// User `n`, for tests.
    #[cfg(test)]
    pub(crate) fn for_test(n: u64) -> UserId {
        UserId(n)
    }
}

/// A user's sessions, in id order. Most users have one (a few where a protocol lets a
/// user in more than once): held in place, an online user allocates nothing for them, and
/// a message to it follows no pointer to find them.
#[derive(Clone, Debug, Default)]
pub(super) struct SessionSet(smallvec::SmallVec<[SessionId; 2]>);

impl SessionSet {
    /// Adds `session`; false if it was there.
    pub(super) fn insert(&mut self, session: SessionId) -> bool {
        match self.0.binary_search(&session) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, session);
                true
            }
        }
    }

    /// Removes `session`; false if it was not there.
    pub(super) fn remove(&mut self, session: &SessionId) -> bool {
        match self.0.binary_search(session) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In id order.
    pub(super) fn iter(&self) -> std::slice::Iter<'_, SessionId> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a SessionSet {
    type Item = &'a SessionId;
    type IntoIter = std::slice::Iter<'a, SessionId>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[derive(Debug)]
pub(super) struct OnlineUser {
    pub(super) id: UserId,
    pub(super) name: UserName,
    pub(super) sessions: SessionSet,
    /// How many of its sessions have a mailbox drain paused for room on their
    /// connection ([`Network::pause_drain`]); while any has, direct messages to the user
    /// are stored, so they arrive after what was stored before them.
    pub(super) drains_paused: u32,
    /// How many of its sessions are told of delivery (`Capabilities::told_of_delivery`):
    /// while none is, a message it sends queues no receipt and its sessions are not
    /// looked through for one.
    pub(super) told: u32,
}

/// How a user shows to others, per session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Status {
    /// Present and available.
    #[default]
    Online,
    /// Present, away from the keyboard.
    Away,
    /// Present, not to be disturbed.
    Busy,
    /// Present, but shown as offline to everyone but the user.
    Invisible,
}

/// What a protocol may read about a live session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionView<'a> {
    /// The user's name, as it is online.
    pub(crate) name: &'a UserName,
    /// How the session shows to others.
    pub(crate) status: Status,
    /// 0 for a user, 1 or more for an operator; an account's level, followed live.
    pub(crate) level: u8,
    /// What the session can do.
    pub(crate) caps: Capabilities,
}

#[derive(Debug)]
pub(super) struct SessionRecord {
    pub(super) conn: ConnId,
    pub(super) user: UserKey,
    /// The user's name as it is online (its [`OnlineUser::name`]), and its id: a sender's
    /// are read here on every message without a lookup by name.
    pub(super) name: UserName,
    pub(super) uid: UserId,
    pub(super) status: Status,
    pub(super) level: u8,
    pub(super) caps: Capabilities,
    pub(super) protocol: Protocol,
    /// The room it is in.
    pub(super) room: Option<RoomName>,
    /// Whether handing its mailbox out waits for room on its connection.
    pub(super) drain_paused: bool,
}

impl Network {
    /// A live session as its protocol may read it.
    pub(crate) fn session(&self, session: SessionId) -> Option<SessionView<'_>> {
        let rec = self.sessions.get(&session)?;
        let user = self.users.get(&rec.user)?;
        Some(SessionView {
            name: &user.name,
            status: rec.status,
            level: rec.level,
            caps: rec.caps,
        })
    }

    /// The live sessions of a user, in the order they logged in.
    pub(crate) fn sessions_of(&self, key: &UserKey) -> impl Iterator<Item = SessionId> + '_ {
        self.users
            .get(key)
            .into_iter()
            .flat_map(|u| u.sessions.iter().copied())
    }

    /// Sets how a session shows to others; when that changes how its user shows
    /// ([`Network::shown`]), its friends' sessions and the other members of its room
    /// get [`Event::Presence`].
    pub(crate) fn set_status(&mut self, session: SessionId, status: Status) {
        self.lobby_version += 1;
        let Some(key) = self.sessions.get(&session).map(|r| r.user.clone()) else {
            return;
        };
        let before = self.shown(&key);
        let Some(rec) = self.sessions.get_mut(&session) else {
            return;
        };
        rec.status = status;
        let conn = rec.conn;
        let after = self.shown(&key);
        if let (true, Some(name)) = (before != after, self.online_name(&key).cloned()) {
            self.lobby_changed(conn, &name, before, after);
            self.presence_changed(&name, &key, after);
        }
    }

    /// The lobby (everyone) sees a user come and go as it turns visible or not: online
    /// with its first visible session, offline when none is left.
    fn lobby_changed(&mut self, conn: ConnId, name: &UserName, before: Shown, after: Shown) {
        let name = name.clone();
        match (before, after) {
            (Shown::Offline, Shown::As(_)) => self.broadcast(conn, Event::UserOnline { name }),
            (Shown::As(_), Shown::Offline) => self.broadcast(conn, Event::UserOffline { name }),
            _ => {}
        }
    }

    /// Follows an account's level into its live sessions.
    pub(super) fn level_changed(&mut self, key: &UserKey, level: u8) {
        let Some(user) = self.users.get(key) else {
            return;
        };
        for session in &user.sessions {
            if let Some(rec) = self.sessions.get_mut(session) {
                rec.level = level;
            }
        }
    }

    /// Opens a session for `name` on `conn`, if `kind` admits it: an exclusive login
    /// fails when the name is online, an account login without an account or for a
    /// banned one, a guest or nick login for a registered name (and a nick for an online
    /// one). The session starts [`Status::Online`] at the account's level (0 without).
    pub(crate) fn login(
        &mut self,
        name: &UserName,
        conn: ConnId,
        kind: LoginKind,
    ) -> Result<SessionId, LoginError> {
        let key = name.key();
        let level = self.admit(&key, kind)?;
        self.lobby_version += 1;
        let session = SessionId(self.next_session);
        self.next_session += 1;
        let before = self.shown(&key);
        let next_user = &mut self.next_user;
        let user = self.users.entry(key.clone()).or_insert_with(|| {
            *next_user += 1;
            OnlineUser {
                id: UserId(*next_user),
                name: name.clone(),
                sessions: SessionSet::default(),
                drains_paused: 0,
                told: 0,
            }
        });
        user.sessions.insert(session);
        user.told += u32::from(kind.caps.told_of_delivery);
        let (online_name, uid) = (user.name.clone(), user.id);
        self.sessions.insert(
            session,
            SessionRecord {
                conn,
                user: key.clone(),
                name: online_name,
                uid,
                status: Status::Online,
                level,
                caps: kind.caps,
                protocol: kind.protocol,
                room: None,
                drain_paused: false,
            },
        );
        self.counters.logged_in(kind.protocol);
        self.record(|_| {
            Some(NetworkEvent::LoggedIn {
                name: name.clone(),
                protocol: kind.protocol,
                session: session.0,
                conn,
            })
        });
        // A session starts Online: the lobby, friends and rooms hear of it unless the user
        // already showed (its other sessions visible).
        let after = self.shown(&key);
        if before != after {
            self.lobby_changed(conn, name, before, after);
            self.presence_changed(name, &key, after);
        }
        Ok(session)
    }

    /// Ends a session; the user goes offline with its last one.
    pub(crate) fn logout(&mut self, session: SessionId) {
        self.lobby_version += 1;
        self.leave(session);
        let Some(key) = self.sessions.get(&session).map(|r| r.user.clone()) else {
            return;
        };
        let before = self.shown(&key);
        let Some(rec) = self.sessions.remove(&session) else {
            return;
        };
        if rec.drain_paused {
            self.drain_unpaused(&rec.user);
        }
        let Some(user) = self.users.get_mut(&rec.user) else {
            return;
        };
        user.sessions.remove(&session);
        user.told = user
            .told
            .saturating_sub(u32::from(rec.caps.told_of_delivery));
        let name = user.name.clone();
        let last = user.sessions.is_empty();
        self.counters.logged_out(rec.protocol);
        self.record(|_| {
            Some(NetworkEvent::LoggedOut {
                name: name.clone(),
                protocol: rec.protocol,
                session: session.0,
                conn: rec.conn,
            })
        });
        if last {
            if let Some(user) = self.users.remove(&rec.user) {
                self.owed_receipts.forget(user.id);
            }
        }
        let after = self.shown(&key);
        if before != after {
            self.lobby_changed(rec.conn, &name, before, after);
            self.presence_changed(&name, &key, after);
        }
    }

    /// Renames the user behind `session`, which must be its only session. Returns the
    /// old name.
    pub(crate) fn rename(
        &mut self,
        session: SessionId,
        new: &UserName,
    ) -> Result<UserName, LoginError> {
        let new_key = new.key();
        let Some(rec) = self.sessions.get_mut(&session) else {
            return Err(LoginError::NameTaken);
        };
        let old_key = rec.user.clone();
        if new_key != old_key && self.users.contains_key(&new_key) {
            return Err(LoginError::NameTaken);
        }
        let conn = rec.conn;
        let Some(mut user) = self.users.remove(&old_key) else {
            return Err(LoginError::NameTaken);
        };
        self.lobby_version += 1;
        for s in &user.sessions {
            if let Some(rec) = self.sessions.get_mut(s) {
                rec.user = new_key.clone();
                rec.name = new.clone();
                // A room's members in name order may have changed.
                if let Some(room) = rec.room.as_ref().and_then(|r| self.rooms.get_mut(r)) {
                    room.renamed_member();
                }
            }
        }
        let old = std::mem::replace(&mut user.name, new.clone());
        self.owed_receipts.forget(user.id);
        self.users.insert(new_key, user);
        self.record(|_| {
            Some(NetworkEvent::Renamed {
                old: old.clone(),
                new: new.clone(),
                session: session.0,
            })
        });
        self.broadcast(
            conn,
            Event::UserRenamed {
                old: old.clone(),
                new: new.clone(),
            },
        );
        Ok(old)
    }

    /// Whether the user of `key` has a live session speaking `protocol` (a protocol that
    /// allows one session per user on its own wire asks before a login).
    pub(crate) fn has_session_over(&self, key: &UserKey, protocol: Protocol) -> bool {
        self.sessions_of(key).any(|s| {
            self.sessions
                .get(&s)
                .is_some_and(|r| r.protocol == protocol)
        })
    }

    /// The name of the user behind a session.
    pub(crate) fn session_name(&self, session: SessionId) -> Option<&UserName> {
        self.sessions.get(&session).map(|r| &r.name)
    }

    /// Kicks every session of a user; returns how many there were.
    pub(crate) fn kick_user(&mut self, key: &UserKey, reason: KickReason) -> usize {
        let Some(user) = self.users.get(key) else {
            return 0;
        };
        let (name, sessions) = (user.name.clone(), user.sessions.len());
        self.record(|_| {
            Some(NetworkEvent::Kicked {
                name: Some(name),
                conn: None,
                sessions,
                reason,
            })
        });
        let Some(user) = self.users.get(key) else {
            return 0;
        };
        for session in &user.sessions {
            if let Some(rec) = self.sessions.get(session) {
                self.pending.push_back(Delivery {
                    to: Audience::Conn(rec.conn),
                    event: Event::Kicked {
                        session: Some(*session),
                        reason,
                    },
                });
            }
        }
        user.sessions.len()
    }

    /// Kicks a whole connection (all its sessions) for `reason`.
    pub(crate) fn kick_conn(&mut self, conn: ConnId, reason: KickReason) {
        self.record(|net| {
            let mut on: Vec<(SessionId, &UserKey)> = (net.sessions.iter())
                .filter(|(_, r)| r.conn == conn)
                .map(|(s, r)| (*s, &r.user))
                .collect();
            on.sort_unstable_by_key(|(s, _)| *s);
            let on: Vec<&UserKey> = on.into_iter().map(|(_, k)| k).collect();
            let name = on.first().and_then(|k| net.users.get(*k));
            Some(NetworkEvent::Kicked {
                name: name.map(|u| u.name.clone()),
                conn: Some(conn),
                sessions: on.len(),
                reason,
            })
        });
        self.pending.push_back(Delivery {
            to: Audience::Conn(conn),
            event: Event::Kicked {
                session: None,
                reason,
            },
        });
    }
}

#[cfg(test)]
mod set_tests {
    use super::{SessionId, SessionSet};
    use std::collections::BTreeSet;

    /// A session set keeps what a `BTreeSet` keeps, in the same order, through any inserts
    /// and removes (past its two in place too).
    #[test]
    fn a_session_set_keeps_what_an_ordered_set_keeps() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut set, mut model) = (SessionSet::default(), BTreeSet::new());
        for _ in 0..5000 {
            let session = SessionId(next() % 9);
            let (got, want) = match next() % 3 {
                0 => (set.remove(&session), model.remove(&session)),
                _ => (set.insert(session), model.insert(session)),
            };
            assert_eq!(got, want);
            assert!(set.iter().eq(model.iter()));
            assert_eq!((set.len(), set.is_empty()), (model.len(), model.is_empty()));
        }
    }
}
