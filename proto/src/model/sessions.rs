//! Sessions: one logged-in presence of a user, on a connection or held by its protocol.

use std::collections::BTreeSet;

use super::{
    Audience, Delivery, Event, KickReason, LoginKind, NameTaken, Network, UserKey, UserName,
};
use crate::ids::ConnId;

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

#[derive(Debug)]
pub(super) struct OnlineUser {
    pub(super) name: UserName,
    pub(super) sessions: BTreeSet<SessionId>,
}

#[derive(Debug)]
pub(super) struct SessionRecord {
    pub(super) conn: ConnId,
    pub(super) user: UserKey,
    /// Whether this session answers delivered direct messages with receipts.
    pub(super) sends_receipts: bool,
}

impl Network {
    /// Opens a session for `name` on `conn`; fails for an exclusive login when the name
    /// is already online.
    pub(crate) fn login(
        &mut self,
        name: &UserName,
        conn: ConnId,
        kind: LoginKind,
    ) -> Result<SessionId, NameTaken> {
        let key = name.key();
        if kind.exclusive && self.users.contains_key(&key) {
            return Err(NameTaken);
        }
        let session = SessionId(self.next_session);
        self.next_session += 1;
        self.sessions.insert(
            session,
            SessionRecord {
                conn,
                user: key.clone(),
                sends_receipts: kind.sends_receipts,
            },
        );
        let user = self.users.entry(key).or_insert_with(|| OnlineUser {
            name: name.clone(),
            sessions: BTreeSet::new(),
        });
        user.sessions.insert(session);
        if user.sessions.len() == 1 {
            self.broadcast(conn, Event::UserOnline { name: name.clone() });
        }
        Ok(session)
    }

    /// Ends a session; the user goes offline with its last one.
    pub(crate) fn logout(&mut self, session: SessionId) {
        let Some(rec) = self.sessions.remove(&session) else {
            return;
        };
        let Some(user) = self.users.get_mut(&rec.user) else {
            return;
        };
        user.sessions.remove(&session);
        if user.sessions.is_empty() {
            let name = user.name.clone();
            self.users.remove(&rec.user);
            self.owed_receipts.forget(&rec.user);
            self.broadcast(rec.conn, Event::UserOffline { name });
        }
    }

    /// Renames the user behind `session`, which must be its only session. Returns the
    /// old name.
    pub(crate) fn rename(
        &mut self,
        session: SessionId,
        new: &UserName,
    ) -> Result<UserName, NameTaken> {
        let new_key = new.key();
        let Some(rec) = self.sessions.get_mut(&session) else {
            return Err(NameTaken);
        };
        let old_key = rec.user.clone();
        if new_key != old_key && self.users.contains_key(&new_key) {
            return Err(NameTaken);
        }
        let conn = rec.conn;
        rec.user = new_key.clone();
        let Some(mut user) = self.users.remove(&old_key) else {
            return Err(NameTaken);
        };
        let old = std::mem::replace(&mut user.name, new.clone());
        self.users.insert(new_key, user);
        self.owed_receipts.forget(&old_key);
        self.broadcast(
            conn,
            Event::UserRenamed {
                old: old.clone(),
                new: new.clone(),
            },
        );
        Ok(old)
    }

    /// The name of the user behind a session.
    pub(crate) fn session_name(&self, session: SessionId) -> Option<&UserName> {
        let rec = self.sessions.get(&session)?;
        self.users.get(&rec.user).map(|u| &u.name)
    }

    /// Kicks every session of a user; returns how many there were.
    pub(crate) fn kick_user(&mut self, key: &UserKey, reason: KickReason) -> usize {
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
        self.pending.push_back(Delivery {
            to: Audience::Conn(conn),
            event: Event::Kicked {
                session: None,
                reason,
            },
        });
    }
}
