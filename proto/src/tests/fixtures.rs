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

/// Calls `check` with every text made of at most `depth` of `pieces` (the empty text
/// first); returns how many there were. For exhaustive comparisons of a fast scanner with
/// a plain reference.
pub(crate) fn every_text(pieces: &[&str], depth: usize, mut check: impl FnMut(&str)) -> usize {
    fn walk(
        pieces: &[&str],
        depth: usize,
        text: &mut String,
        check: &mut dyn FnMut(&str),
    ) -> usize {
        check(text);
        if depth == 0 {
            return 1;
        }
        let mut seen = 1;
        for piece in pieces {
            let len = text.len();
            text.push_str(piece);
            seen += walk(pieces, depth - 1, text, check);
            text.truncate(len);
        }
        seen
    }
    walk(pieces, depth, &mut String::new(), &mut check)
}
