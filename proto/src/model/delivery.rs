//! Direct messages between users, whatever protocol each is on.

use std::collections::VecDeque;

use super::sessions::{OnlineUser, SessionRecord};
use super::{Audience, Body, Delivery, Event, Network, NetworkEvent, SessionId, UserKey, UserName};
use crate::ids::Seq;
use crate::persist::{Change, ChatId, MediaId};

/// A private message between two users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DirectMessage {
    pub(crate) from: UserName,
    pub(crate) to: UserName,
    /// Held in place when short, else shared by every session it is handed to.
    pub(crate) body: Body,
    pub(crate) kind: DirectKind,
}

/// How the sender's protocol framed a direct message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DirectKind {
    /// An ordinary private message.
    Chat,
    /// A whisper; shown as such where the protocol has the notion.
    Whisper,
    /// A message in a two-member chat, with the media sent with it; kept as
    /// [`MessageKind::Chat`](crate::persist::MessageKind::Chat) for an offline recipient.
    /// Protocols without chats show it as an ordinary private message.
    InChat {
        /// The chat.
        chat: ChatId,
        /// The media sent with it, if any.
        media: Option<MediaId>,
    },
}

/// Why a direct message was refused; nothing was delivered or stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Undeliverable {
    /// Nobody of that name is online or registered (or the sender's session is gone).
    NoSuchUser,
    /// The recipient's mailbox holds its cap of messages. Holds the account's name.
    MailboxFull(UserName),
    /// The sender already holds its share of the recipient's mailbox, which others may
    /// still fill. Holds the account's name.
    ShareUsed(UserName),
    /// The recipient is offline and the store is failing: no new durable work is taken
    /// until a commit succeeds. Holds the account's name.
    StoreFailing(UserName),
}

/// Where a direct message would go now, decided by [`Network::route_direct`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// To the recipient's live sessions; holds its name as it is online.
    Live(UserName),
    /// Into the recipient's mailbox; holds the account's name.
    Mailbox(UserName),
}

/// What became of a direct message: the one answer every protocol translates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Handed to every live session of the recipient (the name as it is online, which
    /// [`Route::Live`] held, moved into the delivery: a protocol that shows it takes a
    /// copy from the route first).
    Delivered,
    /// Stored in the mailbox of the offline account `to` by the change persisted as
    /// `seq`: an acknowledgement must wait for that commit.
    Stored { seq: Seq, to: UserName },
    /// Refused, and why.
    Refused(Undeliverable),
}

/// A direct message as a protocol hands it to [`Network::deliver_routed`], with the
/// route that names its recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outgoing {
    /// The sender's session.
    pub(crate) from: SessionId,
    pub(crate) body: Body,
    pub(crate) kind: DirectKind,
    /// When it was sent, in Unix milliseconds (kept with a stored message).
    pub(crate) sent_ms: u64,
}

/// The limits of every account's mailbox (`Config::offline_cap`, `offline_share`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MailboxLimits {
    /// Messages one mailbox holds at most.
    pub(crate) cap: usize,
    /// Messages of one sender one mailbox holds at most.
    pub(crate) share: usize,
}

impl Network {
    /// Where a direct message from `from` to `to` would go now, or why it would be
    /// refused, in this order: the recipient online gets it live; else it needs an
    /// account, a working store, room in the mailbox (`cap`) and in the sender's share
    /// of it. Nothing changes: a protocol asks this to run its own gates (rates, room
    /// for the reply) before [`Network::deliver_direct`], which asks it again.
    pub(crate) fn route_direct(
        &self,
        from: SessionId,
        to: &UserName,
        limits: MailboxLimits,
    ) -> Result<Route, Undeliverable> {
        let Some(sender) = self.sessions.get(&from).map(|r| &r.user) else {
            return Err(Undeliverable::NoSuchUser);
        };
        let key = to.key_ref();
        if let Some(user) = self.users.get(key) {
            // A user whose mailbox is still being handed out gets the message behind it.
            if user.drains_paused == 0 {
                return Ok(Route::Live(user.name.clone()));
            }
        }
        let Some(account) = self.state.account(key) else {
            return Err(Undeliverable::NoSuchUser);
        };
        let name = account.name.clone();
        if self.store_failing {
            return Err(Undeliverable::StoreFailing(name));
        }
        let stored = self.state.offline.get(key).map_or(0, |q| q.len());
        if stored >= limits.cap {
            return Err(Undeliverable::MailboxFull(name));
        }
        // A sender holds at most what the whole mailbox holds: only a mailbox that holds
        // a share's worth is counted by sender (see `shares.rs`).
        if stored >= limits.share && self.shares.held(&self.state, key, sender) >= limits.share {
            return Err(Undeliverable::ShareUsed(name));
        }
        Ok(Route::Mailbox(name))
    }

    /// [`Network::route_direct`] for the recipient a peer named by `s` (a message's
    /// recipient, on every message): an online user `s` finds by its text, without
    /// parsing, in one lookup; else `s` parsed and routed. A refusal of a name is recorded
    /// ([`Network::refused_direct`]); `s` that is no name is refused as no such user.
    pub(crate) fn route_as_sent(
        &mut self,
        from: SessionId,
        s: &str,
        limits: MailboxLimits,
    ) -> Result<Route, Undeliverable> {
        let mut buf = [0; crate::names::MAX_NAME_CHARS];
        let online = UserKey::fold_ascii(s, &mut buf).and_then(|key| self.users.get(key));
        // As `route_direct` answers for that user's name; anything else is left to it.
        if let Some(user) = online.filter(|u| u.drains_paused == 0) {
            if self.sessions.contains_key(&from) {
                return Ok(Route::Live(user.name.clone()));
            }
        }
        let to = match online {
            Some(user) => user.name.clone(),
            None => UserName::parse(s).map_err(|_| Undeliverable::NoSuchUser)?,
        };
        let route = self.route_direct(from, &to, limits);
        if let Err(why) = &route {
            self.refused_direct(from, &to, why);
        }
        route
    }

    /// Delivers a direct message to `to`, from any protocol to any protocol: routes it
    /// ([`Network::route_direct`]) and hands it to [`Network::deliver_routed`], or refuses
    /// it with nothing changed ([`Outcome::Refused`]).
    pub(crate) fn deliver_direct(
        &mut self,
        to: &UserName,
        message: Outgoing,
        limits: MailboxLimits,
        persist: impl FnOnce(&Change) -> Seq,
    ) -> Outcome {
        match self.route_direct(message.from, to, limits) {
            Ok(route) => self.deliver_routed(message, route, persist),
            Err(why) => {
                self.refused_direct(message.from, to, &why);
                Outcome::Refused(why)
            }
        }
    }

    /// Delivers a direct message on the route [`Network::route_direct`] just gave for it
    /// (nothing changed since, so a protocol that asked first to run its gates does not
    /// route twice): the one place the rule lives. Live sessions of the recipient get it
    /// at once ([`Outcome::Delivered`], and the sender hears of delivery now or by
    /// receipt); an offline account gets it in its mailbox through `persist`, which
    /// queues the change for the store and returns its sequence number
    /// ([`Outcome::Stored`]; the model applies the change).
    pub(crate) fn deliver_routed(
        &mut self,
        message: Outgoing,
        route: Route,
        persist: impl FnOnce(&Change) -> Seq,
    ) -> Outcome {
        let from = message.from;
        let (why, to) = match route {
            Route::Live(to) => {
                // The body and the recipient's name as online move into the delivery: a
                // message costs no reference counts it does not need.
                match self.relay(from, to, message.body, message.kind) {
                    Ok(()) => return Outcome::Delivered,
                    Err(to) => (Undeliverable::NoSuchUser, to),
                }
            }
            Route::Mailbox(to) => {
                let Some(change) = self.mailbox_change(&message, &to) else {
                    return Outcome::Refused(Undeliverable::NoSuchUser);
                };
                let seq = persist(&change);
                self.apply(&change, seq);
                if let Some(source) = self.sessions.get(&from).map(|r| r.protocol) {
                    self.counters.stored(source);
                }
                let id = match &change {
                    Change::OfflineQueued(stored) => Some(stored.id),
                    _ => None,
                };
                self.record_message(|net| {
                    Some(NetworkEvent::DirectStored {
                        from: net.session_name(from)?.clone(),
                        to: to.clone(),
                        id: id?,
                        seq,
                    })
                });
                return Outcome::Stored { seq, to };
            }
        };
        self.refused_direct(from, &to, &why);
        Outcome::Refused(why)
    }

    /// A protocol refuses a direct message on the answer of [`Network::route_direct`],
    /// without calling [`Network::deliver_direct`]: recorded as that would record it.
    pub(crate) fn refused_direct(&mut self, from: SessionId, to: &UserName, why: &Undeliverable) {
        self.record_message(|net| {
            Some(NetworkEvent::DirectRefused {
                from: net.session_name(from).cloned(),
                to: to.clone(),
                reason: why.into(),
            })
        });
    }

    /// Sends a direct message from the user of `from` to every session of the online
    /// user `to` (its name as online, from [`Route::Live`], moved into the delivery), and
    /// records it; gives `to` back if either is gone.
    fn relay(
        &mut self,
        from: SessionId,
        to: UserName,
        body: Body,
        kind: DirectKind,
    ) -> Result<(), UserName> {
        let Some((sender_name, sender_id, source)) =
            (self.sessions.get(&from)).map(|r| (r.name.clone(), r.uid, r.protocol))
        else {
            return Err(to);
        };
        // A copy of the name only for the journal, when it records messages.
        let recorded = self.records_messages().then(|| to.clone());
        let Some(recipient) = self.users.get(to.key_ref()) else {
            return Err(to);
        };
        self.relayed += 1;
        #[cfg(feature = "planted-bugs")]
        if self.planted_bug == Some(crate::config::PlantedBug::DropRelayedMessage)
            && self.relayed.is_multiple_of(100)
        {
            // Recorded as delivered, as the real one is: only its sessions miss it.
            self.record_delivered(from, recorded);
            return Ok(());
        }
        let mut message = Some(DirectMessage {
            from: sender_name,
            to,
            body,
            kind,
        });
        let last = recipient.sessions.len().saturating_sub(1);
        let mut receipts_coming = false;
        for (i, &session) in recipient.sessions.iter().enumerate() {
            let Some(rec) = self.sessions.get(&session) else {
                continue;
            };
            // Each session but the last gets a copy; the last the message itself.
            let copy = match i == last {
                true => message.take(),
                false => message.clone(),
            };
            let Some(copy) = copy else { continue };
            self.counters.routed(source, rec.protocol);
            receipts_coming |= rec.caps.receipts;
            self.pending.push_back(Delivery {
                to: Audience::Conn(rec.conn),
                event: Event::Direct {
                    session,
                    message: copy,
                },
            });
        }
        if receipts_coming {
            self.owed_receipts.owe(sender_id, recipient.id);
        } else if let Some(sender) = self.sessions.get(&from) {
            // The sender's key is lent, not cloned: no reference count per message; the
            // recipient is named as its record names it (as `to` did).
            queue_receipt(
                &self.users,
                &self.sessions,
                &mut self.pending,
                &sender.user,
                &recipient.name,
            );
        }
        self.record_delivered(from, recorded);
        Ok(())
    }

    /// Records a message from `from` delivered to `to` (given only while messages are
    /// recorded).
    fn record_delivered(&mut self, from: SessionId, to: Option<UserName>) {
        if let Some(to) = to {
            self.record_message(|net| {
                Some(NetworkEvent::DirectDelivered {
                    from: net.session_name(from)?.clone(),
                    to,
                })
            });
        }
    }

    /// The user of `recipient` confirms a direct message from `sender`. Relayed to the
    /// sender only if a receipt is owed; returns whether it was.
    pub(crate) fn receipt(&mut self, recipient: SessionId, sender: &UserName) -> bool {
        let Some(rec) = self.sessions.get(&recipient) else {
            return false;
        };
        let (Some(sending), Some(receiving)) =
            (self.users.get(sender.key_ref()), self.users.get(&rec.user))
        else {
            return false;
        };
        if !self.owed_receipts.settle(sending.id, receiving.id) {
            return false;
        }
        let to = &receiving.name;
        queue_receipt(
            &self.users,
            &self.sessions,
            &mut self.pending,
            sender.key_ref(),
            to,
        );
        true
    }

    /// Direct messages relayed to online recipients since start.
    pub(crate) fn relayed(&self) -> u64 {
        self.relayed
    }
}

/// Tells every session of the online user `sender` that is told of delivery that its
/// message reached `to`. Over the network's parts, so that a caller may lend the sender's
/// key from a session record.
fn queue_receipt(
    users: &crate::hashing::PeerMap<UserKey, OnlineUser>,
    sessions: &rustc_hash::FxHashMap<SessionId, SessionRecord>,
    pending: &mut VecDeque<Delivery>,
    sender: &UserKey,
    to: &UserName,
) {
    let Some(user) = users.get(sender).filter(|u| u.told > 0) else {
        return;
    };
    for &session in &user.sessions {
        let told = sessions.get(&session).filter(|r| r.caps.told_of_delivery);
        if let Some(rec) = told {
            pending.push_back(Delivery {
                to: Audience::Conn(rec.conn),
                event: Event::Delivered {
                    session,
                    to: to.clone(),
                },
            });
        }
    }
}
