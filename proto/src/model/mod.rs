//! The protocol-neutral network: who is online, on which connections, and the traffic
//! between them. It knows nothing of any wire protocol; each protocol translates its
//! requests into calls here and the resulting [`Event`]s back into its own messages.

// The model offers what every protocol needs; until all are built, some of it is used
// only by its own tests.
#![cfg_attr(not(test), allow(dead_code))]

mod body;
mod counters;
mod delivery;
mod events;
mod friends;
mod identity;
mod mailbox;
mod media;
mod presence;
mod receipts;
mod rooms;
mod sessions;
mod shares;
#[cfg(test)]
mod tests;
mod uncommitted;

pub use crate::names::{NameError, UserKey, UserName, MAX_NAME_CHARS};

use std::collections::{BTreeMap, VecDeque};

use crate::ids::Seq;
use crate::persist::{Change, State};
use mailbox::InFlight;
use media::MediaTotals;
use receipts::OwedReceipts;
use sessions::{OnlineUser, SessionRecord};
use shares::MailboxShares;

pub(crate) use body::Body;
pub use counters::Counters;
pub(crate) use delivery::{
    DirectKind, DirectMessage, MailboxLimits, Outcome, Outgoing, Route, Undeliverable,
};
pub(crate) use events::{Audience, Delivery, Event, OutputCount, RoomPost};
pub use events::{KickReason, NetworkEvent, Refusal};
pub(crate) use presence::Shown;
pub(crate) use rooms::{KickRule, RoomName, RoomSay};
// For the protocols with rooms and rosters to come.
pub(crate) use identity::{Capabilities, Identity, LoginError, LoginKind};
pub(crate) use mailbox::Drain;
pub(crate) use sessions::SessionId;
#[allow(unused_imports)]
pub(crate) use {friends::FriendError, presence::PresenceAudience, rooms::KickError};
// For the protocols that show statuses.
#[allow(unused_imports)]
pub(crate) use sessions::Status;
pub(crate) use uncommitted::Item;
use uncommitted::Uncommitted;

/// The shared model of the network.
#[derive(Debug, Default)]
pub(crate) struct Network {
    /// Durable state, changed only through [`Network::apply`].
    state: State,
    /// A commit failed and has not yet succeeded.
    store_failing: bool,
    /// Items with changes not yet committed.
    uncommitted: Uncommitted,
    /// Offline messages per (recipient, sender) of the mailboxes asked about, following
    /// `state`.
    shares: MailboxShares,
    /// Stored media bytes per sender, following `state`.
    media_totals: MediaTotals,
    /// Rooms with members.
    rooms: BTreeMap<RoomName, rooms::Room>,
    /// Stored messages handed to connections and not yet written.
    in_flight: InFlight,
    /// Online users by key, looked up twice for every message (its route and its
    /// relay): a hash map of the names peers choose, seeded per server (an ordered map's
    /// key comparisons were 13 % of the core's instructions per message). Never iterated
    /// for output without sorting.
    users: crate::hashing::PeerMap<UserKey, OnlineUser>,
    /// Looked up several times per message by ids the server assigns: a hash map with
    /// the compiler's hasher. Never iterated for output without sorting.
    sessions: rustc_hash::FxHashMap<SessionId, SessionRecord>,
    /// Receipts still owed, per (sender, recipient): messages delivered to a session that
    /// sends receipts and not yet confirmed. Entries go when either user goes offline.
    owed_receipts: OwedReceipts,
    next_session: u64,
    /// Moves on with every login, logout, rename and status change: whatever
    /// [`Network::online_names`] lists may have changed. A protocol that keeps a listing
    /// encoded keeps it while this stands still.
    lobby_version: u64,
    /// Moves on with every account created or deleted: the accounts a listing of them
    /// names may have changed.
    accounts_version: u64,
    /// The id the next user to come online gets ([`sessions::UserId`]).
    next_user: u64,
    pending: VecDeque<Delivery>,
    /// With [`Network::record_events`]: what happened, for the driver to read.
    journal: Option<Journal>,
    /// Direct messages relayed to online recipients.
    relayed: u64,
    /// Logins, open sessions and messages by protocol, for metrics.
    counters: Counters,
    #[cfg(feature = "planted-bugs")]
    pub(crate) planted_bug: Option<crate::config::PlantedBug>,
}

impl Network {
    /// A network with no one online, over the durable state the store loaded.
    pub(crate) fn new(state: State, hasher: crate::hashing::Seeded) -> Self {
        Network {
            users: crate::hashing::peer_map(hasher.clone()),
            shares: MailboxShares::new(hasher.clone()),
            media_totals: MediaTotals::of(&state, hasher),
            state,
            ..Network::default()
        }
    }

    /// Applies a durable change to memory; the caller queues it for the store as `seq`.
    pub(crate) fn apply(&mut self, change: &Change, seq: Seq) {
        self.shares.before(&self.state, change);
        let recount = self.media_totals.before(&self.state, change);
        self.state.apply(change);
        if recount {
            self.media_totals = MediaTotals::of(&self.state, self.media_totals.hasher());
        }
        #[cfg(test)]
        debug_assert!(
            self.shares.matches(&self.state),
            "shares drifted at {change:?}"
        );
        #[cfg(test)]
        debug_assert!(
            self.media_totals.matches(&self.state),
            "media totals drifted at {change:?}"
        );
        self.uncommitted.add(change, seq);
        if let Change::AccountCreated(_) | Change::AccountDeleted { .. } = change {
            self.accounts_version += 1;
        }
        if let Change::LevelChanged { name, level } = change {
            self.level_changed(name.key_ref(), *level);
        }
    }

    /// Everything through `through` is committed; the store works.
    pub(crate) fn committed(&mut self, through: Seq) {
        self.uncommitted.committed(through);
        self.store_failing = false;
    }

    /// The commit a reply that depends on `item` must wait for, if one is pending.
    pub(crate) fn wait_for(&self, item: &Item) -> Option<Seq> {
        self.uncommitted.wait_for(item)
    }

    /// The commit a reply that depends on all durable state must wait for.
    pub(crate) fn wait_for_all(&self) -> Option<Seq> {
        self.uncommitted.wait_for_all()
    }

    /// Logins, open sessions and messages by protocol since start.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The durable state.
    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    pub(crate) fn store_failing(&self) -> bool {
        self.store_failing
    }

    pub(crate) fn commit_failed(&mut self) {
        self.store_failing = true;
    }

    /// Queues `event` for `to`, after the events already queued.
    pub(crate) fn notify(&mut self, to: Audience, event: Event) {
        self.pending.push_back(Delivery { to, event });
    }

    /// From now on, keeps a [`NetworkEvent`] of everything that happens, for
    /// [`Network::poll_event`]; of each direct message too when `messages`
    /// (see [`NetworkEvent::is_per_message`]).
    pub(crate) fn record_events(&mut self, outputs: OutputCount, messages: bool) {
        let journal = self.journal.get_or_insert_with(|| Journal {
            events: VecDeque::new(),
            outputs,
            messages,
        });
        journal.messages |= messages;
    }

    /// The next recorded event, in the order they happened.
    pub(crate) fn poll_event(&mut self) -> Option<NetworkEvent> {
        Some(self.journal.as_mut()?.events.pop_front()?.1)
    }

    /// The next recorded event if it happened before the server queued its output number
    /// `output` (counted from 0).
    pub(crate) fn poll_event_before(&mut self, output: u64) -> Option<NetworkEvent> {
        let journal = self.journal.as_mut()?;
        match journal.events.front() {
            Some(&(at, _)) if at <= output => Some(journal.events.pop_front()?.1),
            _ => None,
        }
    }

    /// [`record`](Self::record) for an event of one direct message: built only when
    /// those are recorded too (the simulator's oracles read them; a runtime's log does
    /// not, and building them cost a few reference counts per message).
    pub(super) fn record_message(&mut self, make: impl FnOnce(&Self) -> Option<NetworkEvent>) {
        if self.records_messages() {
            self.record(make);
        }
    }

    /// Whether messages are recorded ([`Network::record_message`]).
    pub(super) fn records_messages(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.messages)
    }

    /// Records the event `make` builds, if events are recorded (built only then).
    pub(super) fn record(&mut self, make: impl FnOnce(&Self) -> Option<NetworkEvent>) {
        if self.journal.is_some() {
            let event = make(self);
            if let (Some(journal), Some(event)) = (self.journal.as_mut(), event) {
                let at = journal.outputs.get();
                journal.events.push_back((at, event));
            }
        }
    }

    /// The next event to hand out, in the order they happened.
    pub(crate) fn poll_delivery(&mut self) -> Option<Delivery> {
        self.pending.pop_front()
    }
}

#[cfg(test)]
mod words {
    /// The model is the protocols' common ground: its sources name no wire protocol, so
    /// a rule that belongs to one protocol cannot hide here.
    #[test]
    fn the_model_names_no_protocol() {
        let sources = [
            ("mod.rs", include_str!("mod.rs")),
            ("delivery.rs", include_str!("delivery.rs")),
            ("events.rs", include_str!("events.rs")),
            ("friends.rs", include_str!("friends.rs")),
            ("identity.rs", include_str!("identity.rs")),
            ("mailbox.rs", include_str!("mailbox.rs")),
            ("media.rs", include_str!("media.rs")),
            ("presence.rs", include_str!("presence.rs")),
            ("receipts.rs", include_str!("receipts.rs")),
            ("rooms.rs", include_str!("rooms.rs")),
            ("sessions.rs", include_str!("sessions.rs")),
            ("shares.rs", include_str!("shares.rs")),
            ("tests.rs", include_str!("tests.rs")),
            ("uncommitted.rs", include_str!("uncommitted.rs")),
        ];
        // Spelled in pieces so this list does not match itself.
        let banned = [
            ["ws", "2017"],
            ["ar", "sc"],
            ["i", "ms "],
            ["op", "code"],
            ["jab", "berd"],
            ["xm", "pp"],
            ["cha", "tm"],
            ["cha", "tw"],
            ["cha", "tr"],
            ["una", "me"],
            ["cq", "uit"],
            ["msg", "ops"],
        ];
        for (file, text) in sources {
            let text = text.to_lowercase();
            for word in banned {
                let word = word.concat();
                assert!(!text.contains(&word), "model/{file} mentions {word:?}");
            }
        }
    }
}

/// The recorded [`NetworkEvent`]s, each with the number of outputs the server had queued
/// when it happened.
#[derive(Debug)]
struct Journal {
    events: VecDeque<(u64, NetworkEvent)>,
    outputs: OutputCount,
    /// Whether the events of each direct message are kept too.
    messages: bool,
}
