//! The world around the server that the player stands in for: a store that commits
//! [`Change`]s (and can be told to lag, fail or lose its batch in a crash), and the
//! effects the server hands out, run at once by a fake, deterministic password hasher.

use std::collections::BTreeMap;

use bytes::Bytes;
use switchboard_proto::{
    Batch, Change, Effect, EffectResult, MediaId, MessageKind, PasswordHash, Seq, State,
};

use crate::escape::escape;

/// The error a failing store reports.
pub(crate) const STORE_ERROR: &str = "disk full";

/// A store model: the committed [`State`], and how the store behaves when the player's
/// [`Pump`](switchboard_proto::Pump) asks it to commit a batch.
#[derive(Debug, Default)]
pub(crate) struct Store {
    /// Everything committed; what a restarted server loads.
    pub(crate) committed: State,
    /// The bytes of committed media, kept apart from `committed` as the real store does.
    blobs: BTreeMap<MediaId, Bytes>,
    /// `!hold-commits`: no commit is attempted until `!commit`.
    pub(crate) holding: bool,
    /// `!store-fail`: every commit attempt fails until `!store-ok`.
    pub(crate) failing: bool,
    /// The last change of the batch whose failure was reported, so the pump's retries of
    /// the same batch do not repeat the `db:` line.
    reported: Option<Seq>,
}

/// What a commit attempt did.
pub(crate) enum Attempt {
    /// The batch is committed; one `db:` line per change.
    Committed { lines: Vec<String> },
    /// The commit failed; the `db:` line that says so, the first time this batch failed.
    Failed { line: Option<String> },
}

impl Store {
    /// Tries to commit `batch`.
    pub(crate) fn attempt(&mut self, batch: &Batch) -> Attempt {
        if self.failing {
            if self.reported == Some(batch.through) {
                return Attempt::Failed { line: None };
            }
            self.reported = Some(batch.through);
            let first = batch.numbered().next().map_or(0, |(seq, _)| seq.0);
            let last = batch.through.0;
            let range = if first == last {
                format!("#{first}")
            } else {
                format!("#{first}..#{last}")
            };
            return Attempt::Failed {
                line: Some(format!("commit of {range} failed: {STORE_ERROR}")),
            };
        }
        self.reported = None;
        let mut lines = Vec::with_capacity(batch.changes.len());
        for (seq, change) in batch.numbered() {
            lines.push(format!("#{} {}", seq.0, describe(change)));
            self.committed.apply(change);
            if let Change::MediaStored { id, bytes, .. } = change {
                self.blobs.insert(*id, bytes.0.clone());
            }
        }
        let media = &self.committed.media;
        self.blobs.retain(|id, _| media.contains_key(id));
        Attempt::Committed { lines }
    }

    /// The bytes of committed media item `id`, as `Store::media` reads them.
    pub(crate) fn media(&self, id: MediaId) -> Option<Bytes> {
        self.blobs.get(&id).cloned()
    }

    /// A crash: the uncommitted changes are lost (one `db:` line per change), and the
    /// store comes back healthy and keeping up.
    pub(crate) fn crash<'a>(
        &mut self,
        uncommitted: impl Iterator<Item = (Seq, &'a Change)>,
    ) -> Vec<String> {
        self.holding = false;
        self.failing = false;
        self.reported = None;
        uncommitted
            .map(|(seq, change)| format!("#{} lost: {}", seq.0, describe(change)))
            .collect()
    }

    /// The committed state with the `uncommitted` changes applied: what the server's own
    /// view of the durable state must be once its outputs are drained.
    pub(crate) fn expected<'a>(
        &self,
        uncommitted: impl Iterator<Item = (Seq, &'a Change)>,
    ) -> State {
        let mut state = self.committed.clone();
        for (_, change) in uncommitted {
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
/// (`test$<password>`), like the core's own test harness. The ims hash is of the
/// password's MD5 hex, as the store's, so an ims LOGIN checks out.
pub(crate) fn run_effect(effect: &Effect) -> EffectResult {
    match effect {
        Effect::HashPassword { password } => EffectResult::Hashed {
            password: PasswordHash(format!("test${}", password.0)),
            ims_password: PasswordHash(format!("test${}", md5_hex(&password.0))),
        },
        Effect::VerifyPassword { hash, password } => {
            EffectResult::Verified(hash.0 == format!("test${}", password.0))
        }
        // Read from the store model by the player ([`Store::media`]).
        Effect::ReadMedia { .. } => EffectResult::Failed,
    }
}

/// The lowercase hex MD5 of `password`: what an ims client sends in its place.
fn md5_hex(password: &str) -> String {
    use md5::{Digest, Md5};
    let digest = Md5::digest(password.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
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

    fn batch(through: u64, names: &[&str]) -> Batch {
        Batch {
            through: Seq(through),
            changes: names.iter().map(|n| account(n)).collect(),
        }
    }

    #[test]
    fn a_failing_store_reports_each_batch_once() {
        let mut store = Store {
            failing: true,
            ..Store::default()
        };
        let first = batch(1, &["bob"]);
        assert!(
            matches!(store.attempt(&first), Attempt::Failed { line: Some(line) } if line == "commit of #1 failed: disk full")
        );
        assert!(
            matches!(store.attempt(&first), Attempt::Failed { line: None }),
            "a retry of the same batch is reported again"
        );
        store.failing = false;
        match store.attempt(&first) {
            Attempt::Committed { lines } => assert_eq!(lines, ["#1 account created bob"]),
            Attempt::Failed { .. } => panic!("the store is healthy"),
        }
        store.failing = true;
        assert!(
            matches!(store.attempt(&batch(3, &["carol", "dave"])), Attempt::Failed { line: Some(line) } if line.starts_with("commit of #2..#3 failed"))
        );
        assert_eq!(store.committed.accounts.len(), 1);
    }

    #[test]
    fn a_crash_loses_the_uncommitted_changes_only() {
        let mut store = Store::default();
        let _ = store.attempt(&batch(1, &["bob"]));
        store.holding = true;
        let held = batch(2, &["carol"]);
        assert_eq!(
            store.crash(held.numbered()),
            ["#2 lost: account created carol"]
        );
        assert_eq!(store.committed.accounts.len(), 1);
        assert!(!store.holding);
    }
}
