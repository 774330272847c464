//! Rooms: named places sessions are in, one at a time, with join and leave notices to the
//! members and kicks ruled by level.

use std::sync::Arc;

use super::{Audience, Delivery, Event, Network, RoomPost, SessionId, UserName};

/// A room's name, as its protocol spells it; compared as given. Shared: every notice to a
/// room's members carries it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RoomName(pub(crate) Arc<str>);

/// The sessions in a room, in the order they joined.
#[derive(Debug, Default)]
pub(super) struct Room {
    /// In the order they joined: a vector, since most rooms are small (a room of one
    /// member took a 192-byte tree node) and a leave walks the members anyway.
    members: Vec<SessionId>,
    /// The members in name order, kept from one listing to the next until a member
    /// joins, leaves or is renamed: a listing of a full room sorted a thousand names.
    by_name: Option<Vec<SessionId>>,
}

/// Who may kick whom, by level; each protocol chooses its rule. Either way only an
/// operator (level 1 or more) kicks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KickRule {
    /// Only someone of a lower level than the kicker.
    Above,
    /// Anyone whose level is not higher than the kicker's.
    NotBelow,
}

impl Room {
    /// A member was renamed: its place in name order is sorted again at the next listing.
    pub(super) fn renamed_member(&mut self) {
        self.by_name = None;
    }
}

/// What a member says to a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoomSay {
    /// Ordinary text, to every member.
    Text,
    /// An action (the speaker does something), to every member.
    Action,
    /// Text for the room's operators (level 1 or more) only, the speaker included if
    /// it is one.
    ToOperators,
}

/// Why a kick was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KickError {
    /// One of the two sessions is gone, or they are not in the same room.
    NotHere,
    /// Only an operator (level 1 or more) may kick, and only whom the rule allows.
    Level,
}

impl Network {
    /// Moves `session` into `room` (out of the one it is in, with a leave notice there);
    /// the members already there get [`Event::RoomJoined`].
    pub(crate) fn join(&mut self, session: SessionId, room: &RoomName) {
        if self.room_of(session) == Some(room) {
            return;
        }
        self.leave(session);
        let Some(name) = self.session_name(session).cloned() else {
            return;
        };
        self.notify_room(
            room,
            |_| true,
            Event::RoomJoined {
                room: room.clone(),
                name,
            },
        );
        let entry = self.rooms.entry(room.clone()).or_default();
        entry.members.push(session);
        entry.by_name = None;
        if let Some(rec) = self.sessions.get_mut(&session) {
            rec.room = Some(room.clone());
        }
    }

    /// Takes `session` out of its room, if it is in one; the members left get
    /// [`Event::RoomLeft`]. An empty room is gone.
    pub(crate) fn leave(&mut self, session: SessionId) {
        let Some(room) = self.sessions.get_mut(&session).and_then(|r| r.room.take()) else {
            return;
        };
        if let Some(entry) = self.rooms.get_mut(&room) {
            entry.members.retain(|s| *s != session);
            entry.by_name = None;
            if entry.members.is_empty() {
                self.rooms.remove(&room);
            }
        }
        if let Some(name) = self.session_name(session).cloned() {
            self.notify_room(
                &room,
                |_| true,
                Event::RoomLeft {
                    room: room.clone(),
                    name,
                },
            );
        }
    }

    /// `by` kicks `target` out of the room both are in: `by` must be an operator whose
    /// level `rule` allows over `target`'s. The target gets [`Event::RoomKicked`], the
    /// other members [`Event::MemberKicked`], then it leaves with the usual notice.
    pub(crate) fn kick_from_room(
        &mut self,
        by: SessionId,
        target: SessionId,
        rule: KickRule,
    ) -> Result<(), KickError> {
        let (Some(kicker), Some(kicked)) = (self.sessions.get(&by), self.sessions.get(&target))
        else {
            return Err(KickError::NotHere);
        };
        let Some(room) = kicker
            .room
            .clone()
            .filter(|r| kicked.room.as_ref() == Some(r))
        else {
            return Err(KickError::NotHere);
        };
        let allowed = match rule {
            KickRule::Above => kicker.level > kicked.level,
            KickRule::NotBelow => kicker.level >= kicked.level,
        };
        if kicker.level == 0 || !allowed {
            return Err(KickError::Level);
        }
        let by_name = self.session_name(by).cloned().ok_or(KickError::NotHere)?;
        let name = self
            .session_name(target)
            .cloned()
            .ok_or(KickError::NotHere)?;
        self.pending.push_back(Delivery {
            to: Audience::Session(target),
            event: Event::RoomKicked {
                room: room.clone(),
                by: by_name.clone(),
            },
        });
        let others: Vec<SessionId> = self.members(&room).filter(|s| *s != target).collect();
        for session in others {
            self.pending.push_back(Delivery {
                to: Audience::Session(session),
                event: Event::MemberKicked {
                    room: room.clone(),
                    name: name.clone(),
                    by: by_name.clone(),
                },
            });
        }
        self.leave(target);
        Ok(())
    }

    /// `session` says `body` to the room it is in: every member (for
    /// [`RoomSay::ToOperators`] each operator) gets [`Event::RoomMessage`], in join
    /// order, the speaker included. Every member sees a room's messages in the order
    /// they were said. Returns the room, or `None` when the session is in none.
    pub(crate) fn say_in_room(
        &mut self,
        session: SessionId,
        kind: RoomSay,
        body: &str,
    ) -> Option<RoomName> {
        let room = self.room_of(session)?.clone();
        let from = self.session_name(session)?.clone();
        let post = RoomPost {
            room: room.clone(),
            from,
            kind,
            body: body.to_owned(),
        };
        let event = Event::RoomMessage {
            post: Arc::new(post),
        };
        match kind {
            RoomSay::Text | RoomSay::Action => self.notify_room(&room, |_| true, event),
            RoomSay::ToOperators => self.notify_room(&room, |level| level >= 1, event),
        }
        Some(room)
    }

    /// Rooms with members.
    pub(crate) fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Sessions in `room`.
    pub(crate) fn room_size(&self, room: &RoomName) -> usize {
        self.rooms.get(room).map_or(0, |r| r.members.len())
    }

    /// The room a session is in.
    pub(crate) fn room_of(&self, session: SessionId) -> Option<&RoomName> {
        self.sessions.get(&session).and_then(|r| r.room.as_ref())
    }

    /// The sessions in a room, in the order they joined.
    pub(crate) fn members(&self, room: &RoomName) -> impl Iterator<Item = SessionId> + '_ {
        self.rooms
            .get(room)
            .into_iter()
            .flat_map(|r| r.members.iter().copied())
    }

    /// The members of `room` in name order (case-insensitively, then as written), with
    /// their names and levels: a room's listing. The order is kept until the room changes.
    pub(crate) fn members_by_name(
        &mut self,
        room: &RoomName,
    ) -> impl Iterator<Item = (&UserName, u8)> + '_ {
        if let Some(entry) = self.rooms.get_mut(room) {
            if entry.by_name.is_none() {
                let sessions = &self.sessions;
                let mut members: Vec<(String, &UserName, SessionId)> = (entry.members.iter())
                    .filter_map(|&s| {
                        sessions
                            .get(&s)
                            .map(|r| (r.name.as_str().to_lowercase(), &r.name, s))
                    })
                    .collect();
                members.sort_unstable_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
                entry.by_name = Some(members.into_iter().map(|(_, _, s)| s).collect());
            }
        }
        let sessions = &self.sessions;
        (self.rooms.get(room))
            .and_then(|r| r.by_name.as_deref())
            .unwrap_or_default()
            .iter()
            .filter_map(|s| sessions.get(s).map(|r| (&r.name, r.level)))
    }

    /// Queues `event` for each member of `room` that `pick` chooses, in join order.
    pub(super) fn notify_room(&mut self, room: &RoomName, pick: impl Fn(u8) -> bool, event: Event) {
        let members: Vec<SessionId> = (self.members(room))
            .filter(|s| self.sessions.get(s).is_some_and(|r| pick(r.level)))
            .collect();
        for session in members {
            self.pending.push_back(Delivery {
                to: Audience::Session(session),
                event: event.clone(),
            });
        }
    }
}
