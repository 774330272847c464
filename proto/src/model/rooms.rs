//! Rooms: named places sessions are in, one at a time, with join and leave notices to the
//! members and kicks ruled by level.

use std::collections::BTreeMap;

use super::{Audience, Delivery, Event, Network, SessionId};

/// A room's name, as its protocol spells it; compared as given.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RoomName(pub(crate) String);

/// The sessions in a room, in the order they joined.
#[derive(Debug, Default)]
pub(super) struct Room {
    /// Join order, and the session.
    members: BTreeMap<u64, SessionId>,
    next: u64,
}

/// Why a kick was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KickError {
    /// One of the two sessions is gone, or they are not in the same room.
    NotHere,
    /// Only an operator (level 1 or more) may kick, and only someone of a lower level.
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
        entry.members.insert(entry.next, session);
        entry.next += 1;
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
            entry.members.retain(|_, s| *s != session);
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

    /// `by` kicks `target` out of the room both are in: `by` must be an operator of a
    /// higher level than `target`. The target gets [`Event::RoomKicked`], then leaves
    /// with the usual notice.
    pub(crate) fn kick_from_room(
        &mut self,
        by: SessionId,
        target: SessionId,
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
        if kicker.level == 0 || kicker.level <= kicked.level {
            return Err(KickError::Level);
        }
        let by_name = self.session_name(by).cloned().ok_or(KickError::NotHere)?;
        self.pending.push_back(Delivery {
            to: Audience::Session(target),
            event: Event::RoomKicked { room, by: by_name },
        });
        self.leave(target);
        Ok(())
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
            .flat_map(|r| r.members.values().copied())
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
