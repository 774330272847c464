//! The database schema and its migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied. On open, every migration
//! past it runs in its own transaction, which also raises `user_version`, so a crash leaves
//! the database at one version or the next, never between. A database whose version is
//! newer than [`SCHEMA_VERSION`] is refused: this build does not know what it holds.
//!
//! To add a table, append a migration to [`MIGRATIONS`]; never edit one that has shipped.
//! Tables are `STRICT` so SQLite enforces the column types, and counters that must outlive
//! deleted rows live in `counters`. Versions 2 and 3 are described on their migrations.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// The migrations, in order: entry `i` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // Version 1: accounts, IP bans, offline messages, the next message id.
    r#"
    -- Counters that must survive deletions, by name.
    CREATE TABLE counters (
        name  TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL CHECK (value >= 0)
    ) STRICT, WITHOUT ROWID;
    -- The id the next offline message gets (State::next_message_id).
    INSERT INTO counters (name, value) VALUES ('next_message_id', 0);

    -- Registered accounts. `id` is a stable row id for later tables to reference; an
    -- account re-created under the same key is updated in place and keeps it.
    CREATE TABLE accounts (
        id           INTEGER PRIMARY KEY,
        key          TEXT NOT NULL UNIQUE,   -- the folded name (UserName::key)
        name         TEXT NOT NULL,          -- the name as registered
        password     TEXT NOT NULL,          -- argon2id PHC string of the password
        ims_password TEXT NOT NULL,          -- argon2id PHC string of its MD5 hex
        email        TEXT,
        gender       TEXT,
        level        INTEGER NOT NULL CHECK (level BETWEEN 0 AND 255),
        banned       INTEGER NOT NULL CHECK (banned IN (0, 1)),
        created_ms   INTEGER NOT NULL CHECK (created_ms >= 0)
    ) STRICT;

    -- Banned IP addresses, in Rust's canonical text form (`IpAddr`'s Display).
    CREATE TABLE ip_bans (
        ip TEXT PRIMARY KEY NOT NULL
    ) STRICT, WITHOUT ROWID;

    -- Offline messages. `seq` is the queue order (the order they were queued, as in
    -- State's VecDeque); `id` is the MessageId the server gave them.
    CREATE TABLE offline_messages (
        seq           INTEGER PRIMARY KEY,
        id            INTEGER NOT NULL CHECK (id >= 0),
        recipient_key TEXT NOT NULL,          -- the recipient's folded name
        sender        TEXT NOT NULL,          -- the sender's name
        recipient     TEXT NOT NULL,          -- the recipient's name as addressed
        body          TEXT NOT NULL,
        sent_ms       INTEGER NOT NULL CHECK (sent_ms >= 0)
    ) STRICT;
    CREATE INDEX offline_messages_by_recipient ON offline_messages (recipient_key, seq);
    "#,
    // Version 2: what the protocols after ws2017 keep (issue 8, durable model v2): message
    // kinds, friendships and friend requests, opcode chats and their members, media with
    // the bytes in a table of their own, and the counters of the new ids. Rows that name an
    // account reference `accounts.id` (which survives a re-creation under the same key and
    // a rekey), so they never hold a key that could drift. Every such reference cascades on
    // delete, as a second line behind the store's explicit deletes.
    r#"
    -- The kind of each stored message (MessageKind); every v1 message is a direct one.
    -- `chat_id` and `media_id` are set for kind 'chat' only, and are not references: the
    -- message outlives a deleted chat.
    ALTER TABLE offline_messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'direct'
        CHECK (kind IN ('direct', 'whisper', 'chat', 'friend_accepted'));
    ALTER TABLE offline_messages ADD COLUMN chat_id INTEGER CHECK (chat_id >= 0);
    ALTER TABLE offline_messages ADD COLUMN media_id INTEGER CHECK (media_id >= 0);

    -- The ids the next chat and media item get (State::next_chat_id, next_media_id).
    INSERT INTO counters (name, value) VALUES ('next_chat_id', 0), ('next_media_id', 0);

    -- Mutual friendships, one row per pair, the lower account id first.
    CREATE TABLE friendships (
        low      INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        high     INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        since_ms INTEGER NOT NULL CHECK (since_ms >= 0),
        PRIMARY KEY (low, high),
        CHECK (low < high)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX friendships_by_high ON friendships (high);

    -- Pending friend requests; `seq` is the order they were made.
    CREATE TABLE friend_requests (
        seq       INTEGER PRIMARY KEY,
        requester INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        recipient INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        since_ms  INTEGER NOT NULL CHECK (since_ms >= 0),
        UNIQUE (requester, recipient),
        CHECK (requester <> recipient)
    ) STRICT;
    CREATE INDEX friend_requests_by_recipient ON friend_requests (recipient, seq);

    -- Opcode chats (ChatId) and their members.
    CREATE TABLE chats (
        id         INTEGER PRIMARY KEY CHECK (id >= 0),
        created_ms INTEGER NOT NULL CHECK (created_ms >= 0)
    ) STRICT;
    CREATE TABLE chat_members (
        chat    INTEGER NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
        account INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        PRIMARY KEY (chat, account)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX chat_members_by_account ON chat_members (account);

    -- Media metadata (State::media) and, apart, the bytes, which State never holds.
    CREATE TABLE media (
        id         INTEGER PRIMARY KEY CHECK (id >= 0),
        chat       INTEGER NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
        size       INTEGER NOT NULL CHECK (size >= 0),
        created_ms INTEGER NOT NULL CHECK (created_ms >= 0)
    ) STRICT;
    CREATE INDEX media_by_chat ON media (chat);
    CREATE TABLE media_blobs (
        media INTEGER PRIMARY KEY REFERENCES media (id) ON DELETE CASCADE,
        bytes BLOB NOT NULL
    ) STRICT;
    "#,
    // Version 3: who sent each media item (issue 15), for the total of stored media per
    // user (`opcode.max_media_bytes_per_user`). Items stored before it have no sender and
    // count towards no one's total; the sender of a deleted account becomes NULL, and its
    // items stay with their chat.
    r#"
    ALTER TABLE media ADD COLUMN sender INTEGER REFERENCES accounts (id) ON DELETE SET NULL;
    CREATE INDEX media_by_sender ON media (sender);
    "#,
    // Version 4: no index of offline messages by recipient. Storing a message for one of
    // many mailboxes wrote into that mailbox's part of the index, a page per mailbox per
    // batch, so commits slowed as rows accumulated; the table itself only grows at its end.
    // The store finds a mailbox's rows in its own record of them (`mailboxes.rs`).
    r#"
    DROP INDEX offline_messages_by_recipient;
    "#,
];

/// The schema version this build writes and reads: the number of [`MIGRATIONS`].
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The database's `user_version`.
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Brings the schema up to [`SCHEMA_VERSION`], one transaction per migration, or refuses a
/// database from a newer version without writing to it.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found = version(conn).map_err(|source| StoreError::Migrate {
        path: path.to_owned(),
        version: SCHEMA_VERSION,
        source,
    })?;
    let Ok(applied) = usize::try_from(found) else {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("negative schema version {found}"),
        });
    };
    if applied > MIGRATIONS.len() {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let target = index as u32 + 1;
        let step = |conn: &mut Connection| -> rusqlite::Result<Option<i64>> {
            // IMMEDIATE takes the write lock before reading the version again, so two
            // processes opening the same new file cannot both run one migration.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current = version(&tx)?;
            if current > SCHEMA_VERSION as i64 {
                return Ok(Some(current));
            }
            if current < target as i64 {
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", target)?;
                tx.commit()?;
            }
            Ok(None)
        };
        match step(conn) {
            Ok(None) => {}
            Ok(Some(found)) => {
                return Err(StoreError::NewerSchema {
                    path: path.to_owned(),
                    found,
                    supported: SCHEMA_VERSION,
                })
            }
            Err(source) => {
                return Err(StoreError::Migrate {
                    path: path.to_owned(),
                    version: target,
                    source,
                })
            }
        }
    }
    Ok(())
}
