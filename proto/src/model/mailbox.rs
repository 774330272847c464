//! Each account's mailbox: the messages stored for it while it has no session.

use super::{Network, Outgoing, UserName};
use crate::persist::{Change, MessageId, MessageKind, StoredMessage};

impl Network {
    /// The change that stores `message` in the mailbox of the offline account `to`
    /// (named as registered), under the next message id; `None` if the sender's session
    /// is gone. The limits were checked by [`Network::route_direct`].
    pub(super) fn mailbox_change(&self, message: &Outgoing, to: &UserName) -> Option<Change> {
        let from = self.session_name(message.from)?;
        Some(Change::OfflineQueued(StoredMessage {
            id: MessageId(self.state.next_message_id),
            from: from.clone(),
            to: to.clone(),
            body: message.body.clone(),
            sent_ms: message.sent_ms,
            kind: MessageKind::Direct,
        }))
    }
}
