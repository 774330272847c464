//! Friendships and pending friend requests between accounts: contacts, rosters and
//! subscriptions are all this one relation. The rules decide the change; the protocol
//! persists it and answers in its own words.

use super::{Audience, Delivery, Event, Network, UserKey, UserName};
use crate::persist::{Change, FriendRequest};

/// Why a friend request or answer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FriendError {
    /// One of the two has no account (or they are the same).
    NoSuchUser,
    /// They are friends already.
    AlreadyFriends,
    /// The same request is pending already.
    AlreadyAsked,
    /// No request from that user is pending.
    NotAsked,
    /// They are not friends.
    NotFriends,
}

impl Network {
    /// The friends of `key`, in key order.
    pub(crate) fn friends_of(&self, key: &UserKey) -> impl Iterator<Item = &UserKey> {
        self.state
            .friends
            .get(key)
            .into_iter()
            .flat_map(|f| f.keys())
    }

    /// Whether `a` and `b` are friends.
    pub(crate) fn are_friends(&self, a: &UserKey, b: &UserKey) -> bool {
        self.state.are_friends(a, b)
    }

    /// The friend requests waiting for `key`, in the order made.
    pub(crate) fn requests_to(&self, key: &UserKey) -> &[FriendRequest] {
        self.state
            .friend_requests
            .get(key)
            .map_or(&[], Vec::as_slice)
    }

    /// The change `from` asking `to` to be friends makes: a pending request, or the
    /// friendship itself when `to` had already asked `from`.
    pub(crate) fn ask_friend(
        &self,
        from: &UserName,
        to: &UserName,
        now_ms: u64,
    ) -> Result<Change, FriendError> {
        let (a, b) = self.two_accounts(from, to)?;
        if self.requests_to(&b).iter().any(|r| r.from == a) {
            return Err(FriendError::AlreadyAsked);
        }
        if self.requests_to(&a).iter().any(|r| r.from == b) {
            return self.answer_friend(from, to, true, now_ms);
        }
        Ok(Change::FriendRequested {
            from: from.clone(),
            to: to.clone(),
            since_ms: now_ms,
        })
    }

    /// The change `me` answering the pending request of `asker` makes.
    pub(crate) fn answer_friend(
        &self,
        me: &UserName,
        asker: &UserName,
        accept: bool,
        now_ms: u64,
    ) -> Result<Change, FriendError> {
        let (mine, theirs) = self.two_accounts(me, asker)?;
        if !self.requests_to(&mine).iter().any(|r| r.from == theirs) {
            return Err(FriendError::NotAsked);
        }
        Ok(match accept {
            true => Change::FriendshipMade {
                a: asker.clone(),
                b: me.clone(),
                since_ms: now_ms,
            },
            false => Change::FriendRequestDropped {
                from: asker.clone(),
                to: me.clone(),
            },
        })
    }

    /// The change `me` ending its friendship with `friend` makes.
    pub(crate) fn end_friendship(
        &self,
        me: &UserName,
        friend: &UserName,
    ) -> Result<Change, FriendError> {
        let (a, b) = (me.key(), friend.key());
        if a == b || self.state.account(&a).is_none() || self.state.account(&b).is_none() {
            return Err(FriendError::NoSuchUser);
        }
        if !self.state.are_friends(&a, &b) {
            return Err(FriendError::NotFriends);
        }
        Ok(Change::FriendshipEnded {
            a: me.clone(),
            b: friend.clone(),
        })
    }

    /// Tells every live session of `to` that `from` asked to be friends, or (with
    /// `accepted`) accepted `to`'s request ([`Event::FriendNews`]); a protocol shows it
    /// once the change is committed.
    pub(crate) fn tell_friend(&mut self, from: &UserName, to: &UserName, accepted: bool) {
        let Some(user) = self.users.get(to.key_ref()) else {
            return;
        };
        let name = user.name.clone();
        for &session in &user.sessions {
            if let Some(rec) = self.sessions.get(&session) {
                self.pending.push_back(Delivery {
                    to: Audience::Conn(rec.conn),
                    event: Event::FriendNews {
                        session,
                        from: from.clone(),
                        to: name.clone(),
                        accepted,
                    },
                });
            }
        }
    }

    fn two_accounts(&self, a: &UserName, b: &UserName) -> Result<(UserKey, UserKey), FriendError> {
        let (a, b) = (a.key(), b.key());
        if a == b || self.state.account(&a).is_none() || self.state.account(&b).is_none() {
            return Err(FriendError::NoSuchUser);
        }
        if self.state.are_friends(&a, &b) {
            return Err(FriendError::AlreadyFriends);
        }
        Ok((a, b))
    }
}
