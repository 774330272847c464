//! Direct messages between users, whatever protocol each is on.

use super::{Audience, Delivery, Event, Network, SessionId, UserKey, UserName};

/// A private message between two users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DirectMessage {
    pub(crate) from: UserName,
    pub(crate) to: UserName,
    pub(crate) body: String,
    pub(crate) kind: DirectKind,
}

/// How the sender's protocol framed a direct message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DirectKind {
    /// An ordinary private message.
    Chat,
    /// A whisper; shown as such where the protocol has the notion.
    Whisper,
}

/// Why a direct message could not be delivered now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DirectError {
    /// Nobody of that name is online or registered.
    NoSuchUser,
    /// The recipient has an account but no session: the message can be stored with
    /// [`Network::offline_message`]. Holds the account's name.
    Offline(UserName),
    /// The recipient's offline queue is full.
    MailboxFull,
    /// The sender already holds its share of the recipient's offline queue.
    ShareUsed,
}

impl Network {
    /// Sends a direct message from the user of `from` to every session of `to`; returns
    /// the recipient's name as it is online. Nothing is stored: for an offline account
    /// the error says so and the caller decides.
    pub(crate) fn send_direct(
        &mut self,
        from: SessionId,
        to: &UserName,
        body: &str,
        kind: DirectKind,
    ) -> Result<UserName, DirectError> {
        let to_key = to.key();
        let Some(sender_key) = self.sessions.get(&from).map(|r| r.user.clone()) else {
            return Err(DirectError::NoSuchUser);
        };
        let Some(recipient) = self.users.get(&to_key) else {
            return Err(match self.state.account(&to_key) {
                Some(account) => DirectError::Offline(account.name.clone()),
                None => DirectError::NoSuchUser,
            });
        };
        let Some(sender_name) = self.users.get(&sender_key).map(|u| u.name.clone()) else {
            return Err(DirectError::NoSuchUser);
        };
        let message = DirectMessage {
            from: sender_name,
            to: recipient.name.clone(),
            body: body.to_owned(),
            kind,
        };
        self.relayed += 1;
        #[cfg(feature = "planted-bugs")]
        if self.planted_bug == Some(crate::config::PlantedBug::DropRelayedMessage)
            && self.relayed.is_multiple_of(100)
        {
            return Ok(message.to);
        }
        let mut receipts_coming = false;
        for &session in &recipient.sessions {
            let Some(rec) = self.sessions.get(&session) else {
                continue;
            };
            receipts_coming |= rec.caps.receipts;
            self.pending.push_back(Delivery {
                to: Audience::Conn(rec.conn),
                event: Event::Direct {
                    session,
                    message: message.clone(),
                },
            });
        }
        if receipts_coming {
            self.owed_receipts.owe(sender_key, to_key);
        } else {
            self.deliver_receipt(&message.from.key(), &message.to);
        }
        Ok(message.to)
    }

    /// The user of `recipient` confirms a direct message from `sender`. Relayed to the
    /// sender only if a receipt is owed; returns whether it was.
    pub(crate) fn receipt(&mut self, recipient: SessionId, sender: &UserName) -> bool {
        let Some(rec) = self.sessions.get(&recipient) else {
            return false;
        };
        let (sender, recipient) = (sender.key(), rec.user.clone());
        if !self.owed_receipts.settle(&sender, &recipient) {
            return false;
        }
        let Some(to) = self.users.get(&recipient).map(|u| u.name.clone()) else {
            return false;
        };
        self.deliver_receipt(&sender, &to);
        true
    }

    /// Direct messages relayed to online recipients since start.
    pub(crate) fn relayed(&self) -> u64 {
        self.relayed
    }

    pub(super) fn deliver_receipt(&mut self, sender: &UserKey, to: &UserName) {
        let Some(user) = self.users.get(sender) else {
            return;
        };
        for &session in &user.sessions {
            if let Some(rec) = self.sessions.get(&session) {
                self.pending.push_back(Delivery {
                    to: Audience::Conn(rec.conn),
                    event: Event::Delivered {
                        session,
                        to: to.clone(),
                    },
                });
            }
        }
    }
}
