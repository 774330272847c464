//! The world around the server that the player stands in for: a store that commits
//! [`Change`]s (and can be told to lag, fail or lose its batch in a crash), and the
//! effects the server hands out, run at once by a fake, deterministic password hasher.

use switchboard_proto::{Change, Effect, EffectResult, MessageKind, PasswordHash, Seq, State};

use crate::escape::escape;

/// The error a failing store reports.
pub(crate) const STORE_ERROR: &str = "disk full";

/// A store model: the committed [`State`] and the batch of changes persisted since.
#[derive(Debug, Default)]
pub(crate) struct Store {
    /// Everything committed; what a restarted server loads.
    pub(crate) committed: State,
    /// Changes the server persisted that are not committed yet, in order.
    pub(crate) batch: Vec<(Seq, Change)>,
    /// `!hold-commits`: no commit is attempted until `!commit`.
    pub(crate) holding: bool,
    /// `!store-fail`: every commit attempt fails until `!store-ok`.
    pub(crate) failing: bool,
    /// The batch's length when its last commit failed, so a failing store reports a
    /// batch once, and again only when it grew.
    failed_len: Option<usize>,
}

/// What a commit attempt did.
pub(crate) enum Attempt {
    /// The batch is committed, through this sequence number; one `db:` line per change.
    Committed { through: Seq, lines: Vec<String> },
    /// The commit failed; the batch stays. The `db:` line that says so.
    Failed { line: String },
}

impl Store {
    /// Whether the store would try to commit now without being told to: it keeps up
    /// unless held, and retries a failed batch only once it changed.
    pub(crate) fn wants_to_commit(&self) -> bool {
        let reported = self.failing && self.failed_len == Some(self.batch.len());
        !self.holding && !self.batch.is_empty() && !reported
    }

    /// Tries to commit the batch (which must not be empty).
    pub(crate) fn attempt(&mut self) -> Attempt {
        let first = self.batch.first().map_or(0, |(seq, _)| seq.0);
        let last = self.batch.last().map_or(0, |(seq, _)| seq.0);
        if self.failing {
            self.failed_len = Some(self.batch.len());
            let range = if first == last {
                format!("#{first}")
            } else {
                format!("#{first}..#{last}")
            };
            return Attempt::Failed {
                line: format!("commit of {range} failed: {STORE_ERROR}"),
            };
        }
        self.failed_len = None;
        let mut lines = Vec::with_capacity(self.batch.len());
        for (seq, change) in self.batch.drain(..) {
            lines.push(format!("#{} {}", seq.0, describe(&change)));
            self.committed.apply(&change);
        }
        Attempt::Committed {
            through: Seq(last),
            lines,
        }
    }

    /// A crash: the uncommitted batch is lost (one `db:` line per change), and the store
    /// comes back healthy and keeping up.
    pub(crate) fn crash(&mut self) -> Vec<String> {
        self.holding = false;
        self.failing = false;
        self.failed_len = None;
        (self.batch.drain(..))
            .map(|(seq, change)| format!("#{} lost: {}", seq.0, describe(&change)))
            .collect()
    }

    /// The committed state with the batch applied: what the server's own view of the
    /// durable state must be once its outputs are drained.
    pub(crate) fn expected(&self) -> State {
        let mut state = self.committed.clone();
        for (_, change) in &self.batch {
            state.apply(change);
        }
        state
    }
}

/// A change as a `db:` line shows it: short, readable, no password hashes.
pub(crate) fn describe(change: &Change) -> String {
    match change {
        Change::AccountCreated(account) => {
            let mut text = format!("account created {}", account.name);
            if account.level > 0 {
                text.push_str(&format!(" level={}", account.level));
            }
            if account.banned {
                text.push_str(" banned");
            }
            text
        }
        Change::AccountDeleted { name } => format!("account deleted {name}"),
        Change::PasswordChanged { name, .. } => format!("password changed {name}"),
        Change::UserBanned { name, banned: true } => format!("user banned {name}"),
        Change::UserBanned {
            name,
            banned: false,
        } => format!("user unbanned {name}"),
        Change::IpBanned(ip) => format!("ip banned {ip}"),
        Change::IpUnbanned(ip) => format!("ip unbanned {ip}"),
        Change::OfflineQueued(message) => {
            let mut text = format!(
                "offline queued {} -> {} \"{}\" (message {})",
                message.from,
                message.to,
                escape(message.body.as_bytes()),
                message.id.0
            );
            // Direct messages, the only kind ws2017 stores, keep their recorded lines.
            if message.kind != MessageKind::Direct {
                text.push_str(&format!(" kind={:?}", message.kind));
            }
            text
        }
        Change::OfflineDelivered { to, through } => {
            format!("offline delivered to {to} through message {}", through.0)
        }
        Change::LevelChanged { name, level } => format!("level changed {name} {level}"),
        Change::FriendRequested { from, to, .. } => format!("friend requested {from} -> {to}"),
        Change::FriendRequestDropped { from, to } => {
            format!("friend request dropped {from} -> {to}")
        }
        Change::FriendshipMade { a, b, .. } => format!("friendship made {a} {b}"),
        Change::FriendshipEnded { a, b } => format!("friendship ended {a} {b}"),
        Change::ChatCreated { id, members, .. } => {
            let members: Vec<&str> = members.iter().map(|m| m.as_str()).collect();
            format!("chat created {} {}", id.0, members.join(" "))
        }
        Change::ChatDeleted { id } => format!("chat deleted {}", id.0),
        Change::MediaStored {
            id, chat, bytes, ..
        } => format!(
            "media stored {} in chat {} ({} bytes)",
            id.0,
            chat.0,
            bytes.0.len()
        ),
    }
}

/// A stand-in for the runtime's argon2 hasher: instant, deterministic, and recognisable
/// (`test$<password>`), like the core's own test harness.
pub(crate) fn run_effect(effect: &Effect) -> EffectResult {
    match effect {
        Effect::HashPassword { password } => EffectResult::Hashed {
            password: PasswordHash(format!("test${}", password.0)),
            ims_password: PasswordHash(format!("test-ims${}", password.0)),
        },
        Effect::VerifyPassword { hash, password } => {
            EffectResult::Verified(hash.0 == format!("test${}", password.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_proto::{Account, MessageId, StoredMessage, UserName};

    fn name(s: &str) -> UserName {
        UserName::parse(s).unwrap()
    }

    fn account(s: &str) -> Change {
        Change::AccountCreated(Account {
            name: name(s),
            password: PasswordHash("test$pw".into()),
            ims_password: PasswordHash("test-ims$pw".into()),
            email: None,
            gender: None,
            level: 0,
            banned: false,
            created_ms: 0,
        })
    }

    #[test]
    fn changes_read_short_and_hide_hashes() {
        assert_eq!(describe(&account("bob")), "account created bob");
        let message = Change::OfflineQueued(StoredMessage {
            id: MessageId(4),
            from: name("alice"),
            to: name("bob"),
            body: "hi \"bob\"\t".into(),
            sent_ms: 0,
            kind: MessageKind::Direct,
        });
        assert_eq!(
            describe(&message),
            "offline queued alice -> bob \"hi \"bob\"\\x09\" (message 4)"
        );
        let passwd = Change::PasswordChanged {
            name: name("bob"),
            password: PasswordHash("test$secret".into()),
            ims_password: PasswordHash("test-ims$secret".into()),
        };
        assert_eq!(describe(&passwd), "password changed bob");
        let whisper = Change::OfflineQueued(StoredMessage {
            id: MessageId(5),
            from: name("alice"),
            to: name("bob"),
            body: "psst".into(),
            sent_ms: 0,
            kind: MessageKind::Whisper,
        });
        assert_eq!(
            describe(&whisper),
            "offline queued alice -> bob \"psst\" (message 5) kind=Whisper"
        );
        assert_eq!(
            describe(&Change::FriendshipMade {
                a: name("alice"),
                b: name("bob"),
                since_ms: 1
            }),
            "friendship made alice bob"
        );
        assert_eq!(
            describe(&Change::IpBanned([10, 0, 0, 7].into())),
            "ip banned 10.0.0.7"
        );
    }

    #[test]
    fn a_failing_store_keeps_its_batch_and_reports_it_once() {
        let mut store = Store::default();
        store.batch.push((Seq(1), account("bob")));
        store.failing = true;
        assert!(store.wants_to_commit());
        assert!(
            matches!(store.attempt(), Attempt::Failed { line } if line == "commit of #1 failed: disk full")
        );
        assert!(!store.wants_to_commit(), "no retry until the batch changes");
        store.batch.push((Seq(2), account("carol")));
        assert!(
            matches!(store.attempt(), Attempt::Failed { line } if line.starts_with("commit of #1..#2 failed"))
        );
        store.failing = false;
        match store.attempt() {
            Attempt::Committed { through, lines } => {
                assert_eq!(through, Seq(2));
                assert_eq!(
                    lines,
                    ["#1 account created bob", "#2 account created carol"]
                );
            }
            Attempt::Failed { .. } => panic!("the store is healthy"),
        }
        assert_eq!(store.committed.accounts.len(), 2);
        assert!(store.batch.is_empty());
    }

    #[test]
    fn a_crash_loses_the_batch_only() {
        let mut store = Store::default();
        store.batch.push((Seq(1), account("bob")));
        let _ = store.attempt();
        store.holding = true;
        store.batch.push((Seq(2), account("carol")));
        assert!(!store.wants_to_commit());
        assert_eq!(store.crash(), ["#2 lost: account created carol"]);
        assert_eq!(store.committed.accounts.len(), 1);
        assert!(!store.holding);
    }
}
