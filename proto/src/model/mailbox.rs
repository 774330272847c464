//! Each account's offline messages: what is stored for it while it has no session.

use super::{DirectError, Network, SessionId, UserName};
use crate::persist::{Change, MessageId, MessageKind, StoredMessage};

impl Network {
    /// Builds the change that stores a direct message from the user of `from` for the
    /// offline account `to`, unless its queue already holds `cap` messages, or `share`
    /// of them from this sender.
    pub(crate) fn offline_message(
        &self,
        from: SessionId,
        to: &UserName,
        body: String,
        sent_ms: u64,
        (cap, share): (usize, usize),
    ) -> Result<Change, DirectError> {
        let from = self.session_name(from).ok_or(DirectError::NoSuchUser)?;
        let key = to.key();
        if !self.state.accounts.contains_key(&key) {
            return Err(DirectError::NoSuchUser);
        }
        if self.state.offline.get(&key).map_or(0, |q| q.len()) >= cap {
            return Err(DirectError::MailboxFull);
        }
        if self.shares.held(&key, &from.key()) >= share {
            return Err(DirectError::ShareUsed);
        }
        Ok(Change::OfflineQueued(StoredMessage {
            id: MessageId(self.state.next_message_id),
            from: from.clone(),
            to: to.clone(),
            body,
            sent_ms,
            kind: MessageKind::Direct,
        }))
    }
}
