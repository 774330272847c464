//! Schema v1 -> v2 (issue 8) and v2 -> v3 (issue 15): a populated database written by an
//! older build upgrades with every row intact. Rows are read with the test's own SQL before and after, so the
//! check does not rest on the store's loader; the loader is checked too, by hand.

use std::path::Path;

use bytes::Bytes;
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use switchboard_proto::{
    Blob, Change, ChatId, MediaId, MessageId, MessageKind, UserKey, UserName, NAME_RULE_VERSION,
};
use switchboard_store::schema::{MIGRATIONS, SCHEMA_VERSION};
use switchboard_store::{Store, StoreError, DB_FILE_NAME};

/// `fixtures/v1-populated.db` was written by `Store::commit` at commit fe66d79 (schema
/// version 1), with `fixtures/make-v1-populated.rs`: five accounts (one deleted after a
/// message was queued for it, one with a changed password, one banned operator), three IP
/// bans (one lifted), seven offline messages (one delivered, one deleted with its account).
fn v1_database() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-populated.db"),
        dir.path().join(DB_FILE_NAME),
    )
    .expect("copy the fixture");
    dir
}

fn raw(dir: &Path) -> Connection {
    Connection::open(dir.join(DB_FILE_NAME)).expect("raw connection")
}

fn version(conn: &Connection) -> i64 {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("user_version")
}

/// A cell as text: SQLite's type and value.
fn cell(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(n) => format!("int {n}"),
        ValueRef::Real(x) => format!("real {x}"),
        ValueRef::Text(t) => format!("text {:?}", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("blob {b:?}"),
    }
}

/// Every v1 row, every v1 column, as text.
/// Every row of `table` (its `columns`, ordered by `order`), one line each, named by table.
fn rows_of(conn: &Connection, table: &str, columns: &str, order: &str) -> Vec<String> {
    let sql = format!("SELECT {columns} FROM {table} ORDER BY {order}");
    let mut statement = conn.prepare(&sql).expect("prepare");
    let width = statement.column_count();
    statement
        .query_map([], |row| {
            let cells: Vec<String> = (0..width)
                .map(|i| cell(row.get_ref(i).expect("cell")))
                .collect();
            Ok(format!("{table}: {}", cells.join(" | ")))
        })
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
}

fn v1_rows(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    for (table, columns, order) in [
        (
            "accounts",
            "id, key, name, password, ims_password, email, gender, level, banned, created_ms",
            "id",
        ),
        ("ip_bans", "ip", "ip"),
        (
            "offline_messages",
            "seq, id, recipient_key, sender, recipient, body, sent_ms",
            "seq",
        ),
        ("counters", "name, value", "name"),
    ] {
        out.extend(rows_of(conn, table, columns, order));
    }
    out
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |row| row.get(0)).expect(sql)
}

fn key(s: &str) -> UserKey {
    UserKey::of(s).expect("valid name")
}

#[test]
fn a_populated_v1_database_upgrades_with_every_row() {
    let dir = v1_database();
    let before = {
        let conn = raw(dir.path());
        assert_eq!(version(&conn), 1, "the fixture is a v1 database");
        v1_rows(&conn)
    };
    // What the fixture holds, counted by hand.
    let tally = |rows: &[String], table: &str| {
        rows.iter()
            .filter(|r| r.starts_with(&format!("{table}: ")))
            .count()
    };
    assert_eq!(tally(&before, "accounts"), 4);
    assert_eq!(tally(&before, "ip_bans"), 2);
    assert_eq!(tally(&before, "offline_messages"), 5);

    let store = Store::open(dir.path()).expect("open upgrades");
    let conn = raw(dir.path());
    assert_eq!(version(&conn), 4);
    assert_eq!(i64::from(SCHEMA_VERSION), 4);
    // Every v1 row, column for column; the counters table gained rows, lost none.
    let after = v1_rows(&conn);
    let new_counters: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
    assert_eq!(
        new_counters,
        vec![
            "counters: text \"next_chat_id\" | int 0",
            "counters: text \"next_media_id\" | int 0",
        ]
    );
    assert!(
        before.iter().all(|r| after.contains(r)),
        "{before:#?}\n{after:#?}"
    );
    // Every old message is a direct one, with no chat or media.
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM offline_messages \
             WHERE kind = 'direct' AND chat_id IS NULL AND media_id IS NULL"
        ),
        5
    );
    for table in [
        "friendships",
        "friend_requests",
        "chats",
        "chat_members",
        "media",
        "media_blobs",
    ] {
        assert_eq!(count(&conn, &format!("SELECT COUNT(*) FROM {table}")), 0);
    }

    // The loader sees the same, checked by hand.
    let state = store.load().expect("load");
    let names: Vec<(&str, u8, bool)> = state
        .accounts
        .values()
        .map(|a| (a.name.as_str(), a.level, a.banned))
        .collect();
    assert_eq!(
        names,
        vec![
            ("Alice", 0, false),
            ("Bob", 1, false),
            ("Dave", 0, false),
            ("Zoë", 2, true)
        ]
    );
    let alice = &state.accounts[&key("alice")];
    assert_eq!(alice.email.as_deref(), Some("alice@example.org"));
    assert_eq!(alice.gender.as_deref(), Some("f"));
    assert_eq!(alice.created_ms, 1_700_000_000_001);
    assert_eq!(
        state.accounts[&key("dave")].password.0,
        "$argon2id$v=19$changed"
    );
    let bans: Vec<String> = state.ip_bans.iter().map(|ip| ip.to_string()).collect();
    assert_eq!(bans, vec!["203.0.113.9", "2001:db8::1"]);
    let queue = |who: &str| -> Vec<(u64, &str, &str)> {
        state.offline[&key(who)]
            .iter()
            .map(|m| {
                assert_eq!(m.kind, MessageKind::Direct);
                (m.id.0, m.from.as_str(), m.body.as_str())
            })
            .collect()
    };
    assert_eq!(
        queue("alice"),
        vec![
            (0, "Bob", "first for alice"),
            (1, "Zoë", "second, addressed in lower case"),
            (6, "Bob", "third for alice"),
        ]
    );
    assert_eq!(queue("bob"), vec![(3, "Alice", "for bob, still queued")]);
    assert_eq!(
        queue("ZOË"),
        vec![(5, "Alice", "ünïcödé 'quotes' and\nnewline")]
    );
    assert_eq!(state.offline.len(), 3);
    assert_eq!(state.next_message_id, 7);
    assert_eq!((state.next_chat_id, state.next_media_id), (0, 0));

    // The upgraded file takes v2 changes, and reopening migrates nothing again.
    let mut store = store;
    let name = |s: &str| UserName::parse(s).expect("name");
    let v2 = [
        Change::FriendshipMade {
            a: name("alice"),
            b: name("bob"),
            since_ms: 5,
        },
        Change::ChatCreated {
            id: ChatId(0),
            members: vec![name("alice"), name("bob")],
            created_ms: 6,
        },
    ];
    store.commit(&v2).expect("commit v2 changes");
    drop(store);
    let mut expected = state;
    v2.iter().for_each(|c| expected.apply(c));
    let reopened = Store::open(dir.path()).expect("reopen");
    assert_eq!(version(&raw(dir.path())), 4);
    assert_eq!(reopened.load().expect("load"), expected);
}

/// A v2 migration that fails (here: a table named like one it creates, left by a tool)
/// leaves the file at version 1 with every row, and the open reports it.
#[test]
fn a_failed_upgrade_leaves_the_v1_database_whole() {
    let dir = v1_database();
    let before = {
        let conn = raw(dir.path());
        conn.execute_batch("CREATE TABLE chats (x)")
            .expect("in the way");
        v1_rows(&conn)
    };
    let error = Store::open(dir.path()).expect_err("the migration fails");
    assert!(
        matches!(error, StoreError::Migrate { version: 2, .. }),
        "{error:?}"
    );
    let conn = raw(dir.path());
    assert_eq!(version(&conn), 1);
    assert_eq!(v1_rows(&conn), before);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM pragma_table_info('offline_messages') WHERE name = 'kind'"
        ),
        0,
        "no column of v2 was left behind"
    );
}

/// A version 2 database, as the v2 build's migrations make it, with rows written in its
/// schema: three accounts, two chats, three media items with their bytes, and an offline
/// chat message naming one of them.
fn v2_database() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let conn = raw(dir.path());
    for sql in &MIGRATIONS[..2] {
        conn.execute_batch(sql).expect("a v2 migration");
    }
    conn.pragma_update(None, "user_version", 2)
        .expect("version");
    conn.execute_batch(
        r#"
        INSERT INTO accounts (id, key, name, password, ims_password, level, banned, created_ms)
        VALUES (1, 'ann', 'Ann', '$argon2id$a', '$argon2id$b', 0, 0, 10),
               (2, 'ben', 'Ben', '$argon2id$c', '$argon2id$d', 0, 0, 11),
               (3, 'cy', 'Cy', '$argon2id$e', '$argon2id$f', 1, 0, 12);
        INSERT INTO chats (id, created_ms) VALUES (0, 20), (1, 21);
        INSERT INTO chat_members (chat, account) VALUES (0, 1), (0, 2), (1, 1), (1, 3);
        INSERT INTO media (id, chat, size, created_ms) VALUES (0, 0, 3, 30), (1, 0, 2, 31), (2, 1, 4, 32);
        INSERT INTO media_blobs (media, bytes) VALUES (0, x'000102'), (1, x'ffff'), (2, x'61626364');
        INSERT INTO offline_messages (id, recipient_key, sender, recipient, body, sent_ms, kind, chat_id, media_id)
        VALUES (0, 'ben', 'Ann', 'Ben', 'see', 40, 'chat', 0, 1);
        UPDATE counters SET value = 3 WHERE name = 'next_media_id';
        UPDATE counters SET value = 2 WHERE name = 'next_chat_id';
        UPDATE counters SET value = 1 WHERE name = 'next_message_id';
        "#,
    )
    .expect("v2 rows");
    // The name rule the v2 build wrote (its keys are this build's).
    conn.execute(
        "INSERT INTO counters (name, value) VALUES ('name_rule', ?1)",
        [i64::from(NAME_RULE_VERSION)],
    )
    .expect("name rule");
    dir
}

/// Every row of every v2 table, every v2 column, as text.
fn v2_rows(conn: &Connection) -> Vec<String> {
    let mut out = v1_rows(conn);
    for (table, columns, order) in [
        ("offline_messages", "seq, kind, chat_id, media_id", "seq"),
        ("chats", "id, created_ms", "id"),
        ("chat_members", "chat, account", "chat, account"),
        ("media", "id, chat, size, created_ms", "id"),
        ("media_blobs", "media, bytes", "media"),
    ] {
        out.extend(rows_of(conn, table, columns, order));
    }
    out
}

#[test]
fn a_populated_v2_database_upgrades_to_v3_with_every_row() {
    let dir = v2_database();
    let before = v2_rows(&raw(dir.path()));
    assert_eq!(
        before.iter().filter(|r| r.starts_with("media: ")).count(),
        3
    );

    let mut store = Store::open(dir.path()).expect("open upgrades");
    let conn = raw(dir.path());
    assert_eq!(version(&conn), 4);
    assert_eq!(v2_rows(&conn), before, "every v2 row, column for column");
    // The media made before v3 have no sender: they count towards no one's total.
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM media WHERE sender IS NULL"),
        3
    );
    let state = store.load().expect("load");
    assert_eq!(state.media.len(), 3);
    assert!(state.media.values().all(|m| m.sender.is_none()));
    assert_eq!(state.media[&MediaId(2)].size, 4);
    assert_eq!(state.next_media_id, 3);
    assert_eq!(
        store.media(MediaId(2)).expect("read"),
        Some(b"abcd".to_vec())
    );

    // A new item keeps its sender, through a reopen (which migrates nothing again).
    let new = Change::MediaStored {
        id: MediaId(3),
        chat: ChatId(1),
        sender: UserName::parse("cy").expect("name"),
        created_ms: 50,
        bytes: Blob(Bytes::from_static(b"new")),
    };
    store.commit(std::slice::from_ref(&new)).expect("commit");
    drop(store);
    let mut expected = state;
    expected.apply(&new);
    let reopened = Store::open(dir.path()).expect("reopen");
    assert_eq!(version(&raw(dir.path())), 4);
    let loaded = reopened.load().expect("load");
    assert_eq!(loaded.media[&MediaId(3)].sender, Some(key("cy")));
    assert_eq!(loaded, expected);
}

/// Version 4 drops the index of offline messages by recipient; an upgraded database's
/// mailboxes still lose exactly their delivered messages, and a deleted account's, found
/// without it (the store reads where each mailbox's rows are from the table).
#[test]
fn an_upgraded_database_finds_each_mailboxs_rows_without_the_index() {
    let dir = v1_database();
    let mut store = Store::open(dir.path()).expect("open upgrades");
    let conn = raw(dir.path());
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'offline_messages_by_recipient'"
        ),
        0
    );
    let changes = [
        Change::OfflineDelivered {
            to: UserName::parse("ALICE").expect("name"),
            through: MessageId(1),
        },
        Change::AccountDeleted {
            name: UserName::parse("zoë").expect("name"),
        },
    ];
    store.commit(&changes).expect("commit");
    let state = store.load().expect("load");
    let left: Vec<(String, u64)> = state
        .offline
        .iter()
        .flat_map(|(key, queue)| queue.iter().map(|m| (key.as_str().to_owned(), m.id.0)))
        .collect();
    assert_eq!(
        left,
        vec![("alice".to_owned(), 6), ("bob".to_owned(), 3)],
        "alice's first two and zoë's are gone"
    );
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM offline_messages"), 2);
}
