//! The name rule in the store (docs/names.md): a database written before the rule loads with
//! its keys recomputed; accounts the rule would merge or refuse stop the open, naming them,
//! without a write; a key that drifted from its name's is reported, never split.

use std::path::Path;

use rusqlite::{params, Connection};
use switchboard_proto::{UserKey, UserName, NAME_RULE_VERSION};
use switchboard_store::schema::{MIGRATIONS, SCHEMA_VERSION};
use switchboard_store::{ErrorKind, Store, DB_FILE_NAME};

fn raw(dir: &Path) -> Connection {
    Connection::open(dir.join(DB_FILE_NAME)).expect("raw connection")
}

fn key(s: &str) -> UserKey {
    UserKey::of(s).expect("valid name")
}

/// A database as the build before the name rule wrote it: the same schema, keys the
/// lowercase names, no `name_rule` counter.
fn legacy(dir: &Path, accounts: &[&str], messages: &[(&str, &str)]) {
    let conn = raw(dir);
    for sql in MIGRATIONS {
        conn.execute_batch(sql).expect("migration");
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .expect("version");
    for name in accounts {
        conn.execute(
            "INSERT INTO accounts (key, name, password, ims_password, level, banned, created_ms) \
             VALUES (?1, ?2, 'x', 'y', 0, 0, 1)",
            params![name.to_lowercase(), name],
        )
        .expect("account");
    }
    for (id, (from, to)) in messages.iter().enumerate() {
        conn.execute(
            "INSERT INTO offline_messages (id, recipient_key, sender, recipient, body, sent_ms) \
             VALUES (?1, ?2, ?3, ?4, 'hello', 2)",
            params![id as i64, to.to_lowercase(), from, to],
        )
        .expect("message");
    }
    conn.execute(
        "UPDATE counters SET value = ?1 WHERE name = 'next_message_id'",
        [messages.len() as i64],
    )
    .expect("counter");
}

fn rule(dir: &Path) -> Option<i64> {
    raw(dir)
        .query_row(
            "SELECT value FROM counters WHERE name = 'name_rule'",
            [],
            |row| row.get(0),
        )
        .ok()
}

#[test]
fn a_database_from_before_the_rule_loads_with_its_keys_recomputed() {
    let dir = tempfile::tempdir().expect("temp dir");
    // José stored decomposed; an anonymous sender with a zero-width space, which the rule
    // now refuses, left Alice a message; Bob got one addressed as `BOB`.
    legacy(
        dir.path(),
        &["Alice", "Jose\u{301}", "bob"],
        &[
            ("a\u{200b}b", "alice"),
            ("Mallory", "BOB"),
            ("Alice", "jose\u{301}"),
        ],
    );
    let store = Store::open(dir.path()).expect("open");
    assert_eq!(rule(dir.path()), Some(i64::from(NAME_RULE_VERSION)));
    let state = store.load().expect("load");
    // Every account, under its new key, its name in NFC.
    let jose = state.account(&key("JOS\u{c9}")).expect("José");
    assert_eq!(jose.name.as_str(), "Jos\u{e9}");
    assert!(state.account(&key("\u{430}lice")).is_some());
    assert_eq!(state.accounts.len(), 3);
    // Every message, in its recipient's queue, the sender as it was.
    let alice = &state.offline[&key("alice")];
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0].from.as_str(), "a\u{200b}b");
    assert_eq!(state.offline[&key("bob")][0].to.as_str(), "BOB");
    assert_eq!(state.offline[&key("jos\u{e9}")][0].to.as_str(), "jos\u{e9}");
    assert_eq!(state.next_message_id, 3);
    // Opening again changes nothing.
    drop(store);
    let again = Store::open(dir.path())
        .expect("reopen")
        .load()
        .expect("load");
    assert_eq!(again, state);
}

#[test]
fn accounts_the_rule_would_merge_or_refuse_stop_the_open_untouched() {
    for (label, accounts, named) in [
        (
            "look-alikes",
            &["alice", "\u{430}lice"][..],
            &["\"alice\"", "\"\u{430}lice\""][..],
        ),
        ("composition", &["Jos\u{e9}", "Jose\u{301}"], &["Jos"]),
        ("colon", &["a:b"], &["\"a:b\""]),
        ("reserved", &["System"], &["\"System\""]),
        ("invisible", &["a\u{200b}b"], &["a\\u{200b}b"]),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        legacy(dir.path(), accounts, &[]);
        let error = Store::open(dir.path()).expect_err(label);
        assert_eq!(error.kind(), ErrorKind::Corrupt, "{label}: {error:?}");
        let text = format!("{error}");
        for name in named {
            assert!(text.contains(name), "{label}: {text}");
        }
        // Nothing was written: the old build can still open it and delete the account.
        assert_eq!(rule(dir.path()), None, "{label}");
        let keys: Vec<String> = raw(dir.path())
            .prepare("SELECT key FROM accounts ORDER BY id")
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
            .expect("keys");
        let old: Vec<String> = accounts.iter().map(|a| a.to_lowercase()).collect();
        assert_eq!(keys, old, "{label}");
    }
}

#[test]
fn a_key_that_drifted_from_its_name_is_reported_not_split() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    // What a build with another folding would have stored for Cyrillic `аlice`: its lowercase.
    raw(dir.path())
        .execute(
            "INSERT INTO accounts (key, name, password, ims_password, level, banned, created_ms) \
             VALUES (?1, ?1, 'x', 'y', 0, 0, 1)",
            ["\u{430}lice"],
        )
        .expect("insert");
    let error = store.load().expect_err("drift");
    assert_eq!(error.kind(), ErrorKind::Corrupt, "{error:?}");
    assert!(format!("{error}").contains("\"alice\""), "{error}");
    // Reopening does not recompute keys the current rule already wrote.
    drop(store);
    let error = Store::open(dir.path())
        .expect("open")
        .load()
        .expect_err("still drift");
    assert_eq!(error.kind(), ErrorKind::Corrupt);
}

#[test]
fn a_stored_sender_the_rule_refuses_is_delivered_as_it_was() {
    let dir = tempfile::tempdir().expect("temp dir");
    legacy(dir.path(), &["alice"], &[("x:y", "alice")]);
    let state = Store::open(dir.path()).expect("open").load().expect("load");
    let from = &state.offline[&key("alice")][0].from;
    assert_eq!(from.as_str(), "x:y");
    assert!(UserName::parse("x:y").is_err());
}

/// `fixtures/before-name-rule.db` was written by the build before the name rule (commit
/// 84c9bba): `user add Alice`, `user add Jose`+U+0301 (decomposed), `user add bob`, then over
/// ws2017 a message stored for each from `a`+U+200B+`b`, `Mallory` and `x:y`.
#[test]
fn a_database_written_by_the_previous_build_loads() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/before-name-rule.db"),
        dir.path().join(DB_FILE_NAME),
    )
    .expect("copy the fixture");
    assert_eq!(rule(dir.path()), None);
    let state = Store::open(dir.path()).expect("open").load().expect("load");
    assert_eq!(rule(dir.path()), Some(i64::from(NAME_RULE_VERSION)));
    let names: Vec<&str> = state.accounts.values().map(|a| a.name.as_str()).collect();
    assert_eq!(names.len(), 3);
    for (asked, kept) in [
        ("ALICE", "Alice"),
        ("jos\u{e9}", "Jos\u{e9}"),
        ("B\u{43e}B", "bob"),
    ] {
        let account = state.account(&key(asked)).expect(asked);
        assert_eq!(account.name.as_str(), kept);
        assert!(account.password.0.starts_with("$argon2id$"));
    }
    let senders: Vec<(&str, &str)> = state
        .offline
        .values()
        .flatten()
        .map(|m| (m.from.as_str(), m.body.as_str()))
        .collect();
    assert_eq!(senders.len(), 3, "{senders:?}");
    for (key_of, from, body) in [
        ("alice", "a\u{200b}b", "from an invisible name"),
        ("bob", "Mallory", "to bob as BOB"),
        ("Jose\u{301}", "x:y", "to jose decomposed"),
    ] {
        let queue = &state.offline[&key(key_of)];
        assert_eq!(queue.len(), 1);
        assert_eq!(
            (queue[0].from.as_str(), queue[0].body.as_str()),
            (from, body)
        );
    }
    assert_eq!(state.next_message_id, 3);
}
