//! The store mirrors `State::apply`: for any sequence of changes, committed in any split
//! into batches, `load()` equals applying the same changes to `State::default()`, and it
//! stays so after reopening.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use switchboard_proto::{
    Account, Change, MessageId, MessageKind, PasswordHash, State, StoredMessage, UserName,
};
use switchboard_store::Store;

fn name(s: &str) -> UserName {
    UserName::parse(s).expect("test names are valid")
}

fn account(n: &str, tag: u64) -> Account {
    Account {
        name: name(n),
        password: PasswordHash(format!("$argon2id$pw{tag}")),
        ims_password: PasswordHash(format!("$argon2id$ims{tag}")),
        email: tag.is_multiple_of(2).then(|| format!("{n}@example.org")),
        gender: tag.is_multiple_of(3).then(|| "f".to_owned()),
        level: (tag % 4) as u8,
        banned: tag.is_multiple_of(5),
        created_ms: 1_700_000_000_000 + tag,
    }
}

fn created(n: &str, tag: u64) -> Change {
    Change::AccountCreated(account(n, tag))
}

fn queued(id: u64, from: &str, to: &str, body: &str) -> Change {
    Change::OfflineQueued(StoredMessage {
        id: MessageId(id),
        from: name(from),
        to: name(to),
        body: body.to_owned(),
        sent_ms: 1_700_000_000_000 + id,
        kind: MessageKind::Direct,
    })
}

fn delivered(to: &str, through: u64) -> Change {
    Change::OfflineDelivered {
        to: name(to),
        through: MessageId(through),
    }
}

fn deleted(n: &str) -> Change {
    Change::AccountDeleted { name: name(n) }
}

fn expected(changes: &[Change]) -> State {
    let mut state = State::default();
    for change in changes {
        state.apply(change);
    }
    state
}

/// Commits `changes` to a fresh store in batches of `split` sizes (cycled), checking the
/// loaded state after every batch and after reopening.
fn check_split(changes: &[Change], split: &[usize]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path()).expect("open");
    let mut done = 0;
    for size in split.iter().cycle() {
        if done == changes.len() {
            break;
        }
        let end = (done + size.max(&1)).min(changes.len());
        store.commit(&changes[done..end]).expect("commit");
        done = end;
        assert_eq!(
            store.load().expect("load"),
            expected(&changes[..done]),
            "after {done} changes, batches {split:?}"
        );
    }
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        store.load().expect("load"),
        expected(changes),
        "after reopening"
    );
}

fn check_all_splits(changes: &[Change]) {
    for split in [&[1][..], &[2], &[3, 1], &[7, 2, 5], &[usize::MAX]] {
        check_split(changes, split);
    }
}

fn cases() -> Vec<(&'static str, Vec<Change>)> {
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    vec![
        ("one account", vec![created("Alice", 0)]),
        (
            "re-creating replaces the account and keeps its queue",
            vec![
                created("alice", 1),
                queued(0, "bob", "Alice", "hi"),
                created("ALICE", 2),
            ],
        ),
        (
            "deleting removes the account's queue only",
            vec![
                created("bob", 3),
                queued(0, "alice", "bob", "one"),
                queued(1, "alice", "carol", "no account"),
                queued(2, "alice", "BOB", "two"),
                deleted("Bob"),
            ],
        ),
        (
            "changes to a missing account are ignored",
            vec![
                Change::PasswordChanged {
                    name: name("ghost"),
                    password: PasswordHash("x".into()),
                    ims_password: PasswordHash("y".into()),
                },
                Change::UserBanned {
                    name: name("ghost"),
                    banned: true,
                },
                deleted("ghost"),
                delivered("ghost", 10),
            ],
        ),
        (
            "password change and bans",
            vec![
                created("Dave", 7),
                Change::PasswordChanged {
                    name: name("dave"),
                    password: PasswordHash("new".into()),
                    ims_password: PasswordHash("new-ims".into()),
                },
                Change::UserBanned {
                    name: name("DAVE"),
                    banned: true,
                },
                Change::UserBanned {
                    name: name("dave"),
                    banned: false,
                },
            ],
        ),
        (
            "ip bans",
            vec![
                Change::IpBanned(v4),
                Change::IpBanned(v4),
                Change::IpBanned(v6),
                Change::IpBanned(mapped),
                Change::IpUnbanned(v4),
                Change::IpUnbanned(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ],
        ),
        (
            "delivery: partial, beyond, none, then all",
            vec![
                created("erin", 1),
                queued(0, "a", "erin", "0"),
                queued(1, "a", "erin", "1"),
                queued(2, "a", "Erin", "2"),
                delivered("erin", 0),
                delivered("ERIN", 0),
                queued(3, "a", "erin", "3"),
                delivered("erin", 2),
                delivered("frank", 100),
                delivered("erin", u64::MAX),
            ],
        ),
        (
            "queue order is the order queued, even with ids out of order",
            vec![
                queued(5, "a", "gus", "five"),
                queued(3, "a", "gus", "three"),
                queued(7, "a", "gus", "seven"),
                delivered("gus", 4),
                delivered("gus", 5),
            ],
        ),
        (
            "duplicate ids",
            vec![
                queued(1, "a", "hal", "x"),
                queued(1, "b", "hal", "y"),
                queued(1, "c", "ivy", "z"),
                delivered("hal", 1),
            ],
        ),
        (
            "the next id never goes down",
            vec![
                queued(10, "a", "jo", "ten"),
                queued(2, "a", "jo", "two"),
                deleted("jo"),
                queued(4, "a", "kim", "four"),
            ],
        ),
        (
            "delete then re-create",
            vec![
                created("Lee", 1),
                queued(0, "a", "lee", "old"),
                deleted("LEE"),
                created("lee", 2),
                queued(1, "a", "Lee", "new"),
            ],
        ),
        (
            "unicode names fold to one key",
            vec![
                created("Émile", 1),
                queued(0, "Zoë", "ÉMILE", "ça va?"),
                created("émile", 2),
            ],
        ),
        (
            "awkward bodies",
            vec![
                queued(0, "a", "mo", ""),
                queued(1, "a", "mo", "nul\0inside"),
                queued(2, "a", "mo", "'); DROP TABLE accounts; --"),
                queued(3, "a", "mo", &"long ".repeat(20_000)),
            ],
        ),
        (
            "largest values the database holds",
            vec![
                Change::AccountCreated(Account {
                    created_ms: i64::MAX as u64,
                    level: u8::MAX,
                    ..account("max", 0)
                }),
                Change::OfflineQueued(StoredMessage {
                    id: MessageId(i64::MAX as u64 - 1),
                    from: name("max"),
                    to: name("max"),
                    body: "last".into(),
                    sent_ms: i64::MAX as u64,
                    kind: MessageKind::Direct,
                }),
                delivered("max", i64::MAX as u64 + 5),
            ],
        ),
    ]
}

#[test]
fn table_of_cases_round_trips() {
    for (label, changes) in cases() {
        eprintln!("case: {label}");
        check_all_splits(&changes);
    }
}

#[test]
fn all_cases_in_one_sequence_round_trip() {
    let changes: Vec<Change> = cases().into_iter().flat_map(|(_, c)| c).collect();
    check_all_splits(&changes);
}

/// splitmix64: a tiny seeded generator, enough to vary the sequences reproducibly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn generate(seed: u64, len: usize) -> Vec<Change> {
    const NAMES: &[&str] = &[
        "alice", "Alice", "ALICE", "bob", "Bob", "carol", "dave", "Émile", "émile",
    ];
    let ips = [
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 9)),
    ];
    let mut rng = Rng(seed);
    let mut next_id = 0u64;
    let mut changes = Vec::with_capacity(len);
    for tag in 0..len as u64 {
        let n = *rng.pick(NAMES);
        let change = match rng.below(10) {
            0 => created(n, tag),
            1 => deleted(n),
            2 => Change::PasswordChanged {
                name: name(n),
                password: PasswordHash(format!("p{tag}")),
                ims_password: PasswordHash(format!("i{tag}")),
            },
            3 => Change::UserBanned {
                name: name(n),
                banned: rng.below(2) == 0,
            },
            4 => Change::IpBanned(*rng.pick(&ips)),
            5 => Change::IpUnbanned(*rng.pick(&ips)),
            6 => {
                // Usually the server's next id; now and then an old or repeated one.
                let through = rng.below(next_id as usize + 2) as u64;
                delivered(n, through)
            }
            _ => {
                let id = if rng.below(3) == 0 {
                    rng.below(next_id as usize + 1) as u64
                } else {
                    next_id
                };
                next_id = next_id.max(id + 1);
                let from = *rng.pick(NAMES);
                queued(id, from, n, &format!("message {tag}"))
            }
        };
        changes.push(change);
    }
    changes
}

#[test]
fn generated_sequences_round_trip() {
    for seed in [1, 2, 3, 0x5eed] {
        let changes = generate(seed, 120);
        check_all_splits(&changes);
        let mut rng = Rng(seed ^ 0xabcd);
        let random_split: Vec<usize> = (0..8).map(|_| 1 + rng.below(20)).collect();
        check_split(&changes, &random_split);
    }
}

#[test]
fn empty_commit_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path()).expect("open");
    store.commit(&[]).expect("empty commit");
    assert_eq!(store.load().expect("load"), State::default());
}

/// A batch whose commit reported failure although it reached the disk is retried by the
/// runtime: committing it again must add nothing twice.
#[test]
fn replaying_a_committed_batch_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path()).expect("open");
    let batch = vec![
        created("bob", 1),
        queued(0, "alice", "bob", "one"),
        queued(1, "alice", "bob", "two"),
        Change::IpBanned(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
    ];
    store.commit(&batch).expect("commit");
    store.commit(&batch).expect("replay");
    let mut replayed = State::default();
    batch.iter().chain(&batch).for_each(|c| replayed.apply(c));
    assert_eq!(replayed, expected(&batch), "State::apply is idempotent too");
    assert_eq!(store.load().expect("load"), expected(&batch));
}

/// Rows per recipient key in `offline_messages`, and the account keys, read with SQL of
/// the test's own: the expected values below are written out by hand, not taken from
/// `State::apply` (a mistake shared by the store and the core would pass a round trip).
fn rows(store: &Store) -> (Vec<(String, i64)>, Vec<String>) {
    let conn = rusqlite::Connection::open(store.path()).expect("open the database");
    let mut per_recipient = conn
        .prepare(
            "SELECT recipient_key, COUNT(*) FROM offline_messages \
             GROUP BY recipient_key ORDER BY recipient_key",
        )
        .expect("prepare");
    let messages = per_recipient
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let mut keys = conn
        .prepare("SELECT key FROM accounts ORDER BY key")
        .expect("prepare");
    let accounts = keys
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    (messages, accounts)
}

#[test]
fn deleting_an_account_deletes_its_offline_message_rows() {
    for same_batch in [false, true] {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut store = Store::open(dir.path()).expect("open");
        let mut changes = vec![
            created("bob", 1),
            created("carol", 2),
            queued(0, "ann", "bob", "one"),
            queued(1, "ann", "carol", "for carol"),
            queued(2, "ann", "BOB", "two, addressed in capitals"),
            queued(3, "dan", "bob", "three"),
        ];
        if !same_batch {
            store.commit(&changes).expect("commit");
            assert_eq!(
                rows(&store),
                (
                    vec![("bob".to_owned(), 3), ("carol".to_owned(), 1)],
                    vec!["bob".to_owned(), "carol".to_owned()]
                )
            );
            changes.clear();
        }
        changes.push(deleted("Bob"));
        store.commit(&changes).expect("commit the deletion");
        let left = (vec![("carol".to_owned(), 1)], vec!["carol".to_owned()]);
        assert_eq!(rows(&store), left, "same batch: {same_batch}");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(rows(&store), left, "after reopening");
    }
}

/// The name of a change's variant. The match has no wildcard: a new variant does not compile
/// here until it is named, and [`VARIANTS`] must then list it for the test below to pass.
fn variant(change: &Change) -> &'static str {
    match change {
        Change::AccountCreated(_) => "AccountCreated",
        Change::AccountDeleted { .. } => "AccountDeleted",
        Change::PasswordChanged { .. } => "PasswordChanged",
        Change::UserBanned { .. } => "UserBanned",
        Change::IpBanned(_) => "IpBanned",
        Change::IpUnbanned(_) => "IpUnbanned",
        Change::OfflineQueued(_) => "OfflineQueued",
        Change::OfflineDelivered { .. } => "OfflineDelivered",
        Change::LevelChanged { .. } => "LevelChanged",
        Change::FriendRequested { .. } => "FriendRequested",
        Change::FriendRequestDropped { .. } => "FriendRequestDropped",
        Change::FriendshipMade { .. } => "FriendshipMade",
        Change::FriendshipEnded { .. } => "FriendshipEnded",
        Change::ChatCreated { .. } => "ChatCreated",
        Change::ChatDeleted { .. } => "ChatDeleted",
        Change::MediaStored { .. } => "MediaStored",
    }
}

/// Every variant of [`Change`].
const VARIANTS: &[&str] = &[
    "AccountCreated",
    "AccountDeleted",
    "PasswordChanged",
    "UserBanned",
    "IpBanned",
    "IpUnbanned",
    "OfflineQueued",
    "OfflineDelivered",
    "LevelChanged",
    "FriendRequested",
    "FriendRequestDropped",
    "FriendshipMade",
    "FriendshipEnded",
    "ChatCreated",
    "ChatDeleted",
    "MediaStored",
];

/// `Change`'s derived `Arbitrary` (feature `arbitrary` of the core) drives the round trip:
/// a variant added to `Change` is generated here with no edit to this file, so forgetting it
/// in the store's apply or loader (or mirroring `State::apply` wrongly) fails this test.
#[test]
fn arbitrary_sequences_round_trip() {
    use arbitrary::{Arbitrary, Unstructured};
    use std::collections::BTreeMap;

    const SEQUENCES: u64 = 100;
    const LEN: usize = 100;
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut rng = Rng(0x0a2b_17ca);
    for sequence in 0..SEQUENCES {
        let bytes: Vec<u8> = (0..8192).map(|_| rng.next() as u8).collect();
        let mut input = Unstructured::new(&bytes);
        let mut changes = Vec::with_capacity(LEN);
        while changes.len() < LEN {
            match Change::arbitrary(&mut input) {
                Ok(change) => changes.push(change),
                Err(_) => break,
            }
        }
        let mut state = State::default();
        for change in &changes {
            let before = state.clone();
            state.apply(change);
            if let Err(broken) = invariants(&state) {
                panic!("sequence {sequence}: after {change:?}: {broken}");
            }
            // Counted only when it changed something besides an id counter: a variant whose
            // every instance is ignored (no account, a replayed id) would test nothing.
            let rest = |s: &State| State {
                next_message_id: 0,
                next_chat_id: 0,
                next_media_id: 0,
                ..s.clone()
            };
            if rest(&state) != rest(&before) {
                *seen.entry(variant(change)).or_default() += 1;
            }
            if let Change::AccountDeleted { name } = change {
                let key = name.key();
                let social = before.friends.contains_key(&key)
                    || before
                        .friend_requests
                        .values()
                        .flatten()
                        .any(|r| r.from == key)
                    || before.chats.values().any(|c| c.members.contains(&key));
                if social {
                    *seen
                        .entry("AccountDeleted with friends, requests or chats")
                        .or_default() += 1;
                }
            }
        }
        eprintln!("sequence {sequence}: {} changes", changes.len());
        let split: Vec<usize> = (0..6).map(|_| 1 + rng.below(16)).collect();
        check_split(&changes, &split);
    }
    let names: Vec<&str> = seen.keys().copied().collect();
    let mut all = VARIANTS.to_vec();
    all.push("AccountDeleted with friends, requests or chats");
    all.sort_unstable();
    assert_eq!(names, all, "every variant, and only those, took effect");
    eprintln!("changes that took effect: {seen:?}");
    for (name, count) in &seen {
        assert!(*count >= 2, "{name} took effect only {count} times");
    }
}

/// What `State`'s docs promise of the v2 fields, after any sequence of changes: friendships
/// under both friends with one time, no empty maps or lists, requests only between distinct
/// accounts that are not friends and at most one per pair and direction, chats with members
/// that are accounts, media of existing chats, every id below its counter.
fn invariants(state: &State) -> Result<(), String> {
    for (a, friends) in &state.friends {
        if friends.is_empty() || !state.accounts.contains_key(a) {
            return Err(format!("friends of {a:?}: empty or not an account"));
        }
        for (b, friendship) in friends {
            if a == b || state.friends.get(b).and_then(|f| f.get(a)) != Some(friendship) {
                return Err(format!("friendship {a:?} {b:?} is not mutual"));
            }
        }
    }
    for (to, pending) in &state.friend_requests {
        if pending.is_empty() || !state.accounts.contains_key(to) {
            return Err(format!("requests to {to:?}: empty or not an account"));
        }
        for (i, request) in pending.iter().enumerate() {
            let from = &request.from;
            if from == to || !state.accounts.contains_key(from) || state.are_friends(from, to) {
                return Err(format!("request {from:?} -> {to:?} should not be pending"));
            }
            if pending[..i].iter().any(|r| r.from == *from) {
                return Err(format!("request {from:?} -> {to:?} is pending twice"));
            }
        }
    }
    for (id, chat) in &state.chats {
        if id.0 >= state.next_chat_id
            || chat.members.is_empty()
            || !chat.members.iter().all(|m| state.accounts.contains_key(m))
        {
            return Err(format!("chat {id:?}: {chat:?}"));
        }
    }
    for (id, media) in &state.media {
        if id.0 >= state.next_media_id || !state.chats.contains_key(&media.chat) {
            return Err(format!("media {id:?}: {media:?}"));
        }
    }
    for queue in state.offline.values() {
        if queue.is_empty() || queue.iter().any(|m| m.id.0 >= state.next_message_id) {
            return Err(format!("offline queue {queue:?}"));
        }
    }
    Ok(())
}
