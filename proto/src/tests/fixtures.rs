//! States the protocol tests start from.

use crate::persist::{Account, Change, MessageId, MessageKind, State, StoredMessage};
use crate::secret::PasswordHash;
use crate::UserName;

/// bob's account holds two messages from alice.
pub(crate) fn bob_with_mail() -> State {
    let mut state = State::default();
    for n in ["alice", "bob"] {
        state.apply(&Change::AccountCreated(Account {
            name: name(n),
            password: PasswordHash("h".into()),
            ims_password: PasswordHash("i".into()),
            email: None,
            gender: None,
            level: 0,
            banned: false,
            created_ms: 0,
        }));
    }
    for (id, body) in [(0, "one"), (1, "two")] {
        state.apply(&Change::OfflineQueued(StoredMessage {
            id: MessageId(id),
            from: name("alice"),
            to: name("bob"),
            body: body.into(),
            sent_ms: 5,
            kind: MessageKind::Direct,
        }));
    }
    state
}

fn name(s: &str) -> UserName {
    UserName::parse(s).expect("valid name")
}
