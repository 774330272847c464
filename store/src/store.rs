//! The store: opening the database, loading the durable state, committing changes.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::Backup;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use switchboard_proto::{
    Account, Change, MessageId, PasswordHash, State, StoredMessage, UserKey, UserName,
};

use crate::rekey;
use crate::schema;
use crate::StoreError;

/// The database's file name inside the data directory.
pub const DB_FILE_NAME: &str = "switchboard.db";

/// How long a statement waits for another connection's lock (a backup tool, an operator's
/// `sqlite3` shell) before failing with [`ErrorKind::Busy`](crate::ErrorKind::Busy).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pages copied per backup step; between steps the source is unlocked.
const BACKUP_PAGES_PER_STEP: i32 = 1024;

/// The durable store: one connection to `<data-dir>/switchboard.db`.
///
/// It mirrors [`State`]: after any sequence of successful [`Store::commit`]s,
/// [`Store::load`] returns exactly what applying the same changes in the same order to
/// `State::default()` with [`State::apply`] gives.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the store in `data_dir`, creating the directory and the database if needed and
    /// migrating the schema to this build's version. Refuses a database written by a newer
    /// schema version ([`StoreError::NewerSchema`]).
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DB_FILE_NAME);
        let mut conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        configure(&conn)?;
        schema::migrate(&mut conn)?;
        rekey::ensure(&mut conn)?;
        Ok(Store { conn, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads everything durable, from one consistent snapshot: accounts, IP bans, offline
    /// queues in the order their messages were queued, and the next message id.
    pub fn load(&self) -> Result<State, StoreError> {
        let load = |source| StoreError::Load { source };
        // A read transaction, so the tables are read from one snapshot.
        let tx = self.conn.unchecked_transaction().map_err(load)?;
        let mut state = State::default();

        let mut accounts = tx
            .prepare(
                "SELECT key, name, password, ims_password, email, gender, level, banned, \
                 created_ms FROM accounts ORDER BY id",
            )
            .map_err(load)?;
        let mut rows = accounts.query([]).map_err(load)?;
        while let Some(row) = rows.next().map_err(load)? {
            let (key, account) = read_account(row)?;
            state.accounts.insert(key, account);
        }

        let mut bans = tx.prepare("SELECT ip FROM ip_bans").map_err(load)?;
        let mut rows = bans.query([]).map_err(load)?;
        while let Some(row) = rows.next().map_err(load)? {
            let text: String = row.get(0).map_err(load)?;
            let ip = text.parse::<IpAddr>().map_err(|_| StoreError::Corrupt {
                detail: format!("ip_bans holds {text:?}, not an IP address"),
            })?;
            state.ip_bans.insert(ip);
        }

        let mut offline = tx
            .prepare(
                "SELECT seq, id, recipient_key, sender, recipient, body, sent_ms \
                 FROM offline_messages ORDER BY seq",
            )
            .map_err(load)?;
        let mut rows = offline.query([]).map_err(load)?;
        while let Some(row) = rows.next().map_err(load)? {
            let (key, message) = read_message(row)?;
            state.offline.entry(key).or_default().push_back(message);
        }

        let next: Option<i64> = tx
            .query_row(
                "SELECT value FROM counters WHERE name = 'next_message_id'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(load)?;
        let next = next.ok_or_else(|| StoreError::Corrupt {
            detail: "the next_message_id counter is missing".to_owned(),
        })?;
        state.next_message_id = from_db("next_message_id", next)?;
        Ok(state)
    }

    /// Applies `changes` in order, in one transaction, with exactly [`State::apply`]'s
    /// semantics (changes that no longer fit are ignored). Either the whole batch is stored
    /// (durably, even across power loss) or, on error, none of it is.
    pub fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        // IMMEDIATE takes the write lock up front, so the busy timeout applies to it
        // instead of failing mid-batch on a read-to-write upgrade.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(commit_error)?;
        for change in changes {
            apply(&tx, change)?;
        }
        // On any error above, dropping `tx` rolls the batch back; so does a failed COMMIT.
        tx.commit().map_err(commit_error)
    }

    /// Copies the whole database to `path` (a new or existing SQLite file, which is
    /// replaced) while the store stays open: a consistent snapshot as of the last commit.
    /// Commits wait until it is done, since they need `&mut self`.
    pub fn backup_to(&self, path: &Path) -> Result<(), StoreError> {
        let backup_error = |source| StoreError::Backup {
            path: path.to_owned(),
            source,
        };
        let mut destination = Connection::open(path).map_err(backup_error)?;
        let backup = Backup::new(&self.conn, &mut destination).map_err(backup_error)?;
        backup
            .run_to_completion(BACKUP_PAGES_PER_STEP, Duration::from_millis(10), None)
            .map_err(backup_error)?;
        drop(backup);
        destination
            .close()
            .map_err(|(_, source)| backup_error(source))
    }
}

/// Sets the connection up: busy timeout, WAL, full sync, foreign keys.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|source| StoreError::Configure {
            setting: "busy_timeout",
            source,
        })?;
    // WAL: readers (a backup) never block the writer, and a commit appends to one file.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|source| StoreError::Configure {
            setting: "journal_mode=WAL",
            source,
        })?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NotWal { mode });
    }
    // FULL, not NORMAL: in WAL mode NORMAL skips the fsync at each commit, so a commit
    // survives a process crash but can be lost on power loss or an OS crash. The server
    // tells clients "stored" once a commit returns, so every commit must reach the disk.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|source| StoreError::Configure {
            setting: "synchronous=FULL",
            source,
        })?;
    // For the tables later migrations add that reference others.
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|source| StoreError::Configure {
            setting: "foreign_keys=ON",
            source,
        })?;
    Ok(())
}

/// Wraps an SQLite error during a commit.
fn commit_error(source: rusqlite::Error) -> StoreError {
    StoreError::Commit { source }
}

/// Applies one change inside the commit's transaction, as [`State::apply`] does in memory.
fn apply(tx: &Transaction<'_>, change: &Change) -> Result<(), StoreError> {
    match change {
        Change::AccountCreated(account) => {
            let created_ms = to_db("created_ms", account.created_ms)?;
            // State::apply replaces the whole account under its key; an upsert does the
            // same and keeps the row's id.
            tx.prepare_cached(
                "INSERT INTO accounts \
                 (key, name, password, ims_password, email, gender, level, banned, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name, \
                 password = excluded.password, ims_password = excluded.ims_password, \
                 email = excluded.email, gender = excluded.gender, level = excluded.level, \
                 banned = excluded.banned, created_ms = excluded.created_ms",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    account.name.key().as_str(),
                    account.name.as_str(),
                    account.password.0,
                    account.ims_password.0,
                    account.email,
                    account.gender,
                    account.level,
                    account.banned,
                    created_ms,
                ])
            })
            .map_err(commit_error)?;
        }
        Change::AccountDeleted { name } => {
            let key = name.key();
            tx.prepare_cached("DELETE FROM accounts WHERE key = ?1")
                .and_then(|mut statement| statement.execute([key.as_str()]))
                .map_err(commit_error)?;
            tx.prepare_cached("DELETE FROM offline_messages WHERE recipient_key = ?1")
                .and_then(|mut statement| statement.execute([key.as_str()]))
                .map_err(commit_error)?;
        }
        Change::PasswordChanged {
            name,
            password,
            ims_password,
        } => {
            tx.prepare_cached(
                "UPDATE accounts SET password = ?2, ims_password = ?3 WHERE key = ?1",
            )
            .and_then(|mut statement| {
                statement.execute(params![name.key().as_str(), password.0, ims_password.0])
            })
            .map_err(commit_error)?;
        }
        Change::UserBanned { name, banned } => {
            tx.prepare_cached("UPDATE accounts SET banned = ?2 WHERE key = ?1")
                .and_then(|mut statement| statement.execute(params![name.key().as_str(), banned]))
                .map_err(commit_error)?;
        }
        Change::IpBanned(ip) => {
            tx.prepare_cached("INSERT INTO ip_bans (ip) VALUES (?1) ON CONFLICT (ip) DO NOTHING")
                .and_then(|mut statement| statement.execute([ip.to_string()]))
                .map_err(commit_error)?;
        }
        Change::IpUnbanned(ip) => {
            tx.prepare_cached("DELETE FROM ip_bans WHERE ip = ?1")
                .and_then(|mut statement| statement.execute([ip.to_string()]))
                .map_err(commit_error)?;
        }
        Change::OfflineQueued(message) => {
            // The id must leave room for id + 1, the next id.
            let id = i64::try_from(message.id.0)
                .ok()
                .filter(|id| *id < i64::MAX)
                .ok_or(StoreError::OutOfRange {
                    what: "message id",
                    value: message.id.0,
                })?;
            let sent_ms = to_db("sent_ms", message.sent_ms)?;
            let next: Option<i64> = tx
                .prepare_cached("SELECT value FROM counters WHERE name = 'next_message_id'")
                .and_then(|mut statement| statement.query_row([], |row| row.get(0)).optional())
                .map_err(commit_error)?;
            let Some(next) = next else {
                return Err(StoreError::Corrupt {
                    detail: "the next_message_id counter is missing".to_owned(),
                });
            };
            // Ids only increase: one below the counter was queued already (a batch retried
            // after a commit that reported failure but reached the disk).
            if id < next {
                return Ok(());
            }
            tx.prepare_cached("UPDATE counters SET value = ?1 WHERE name = 'next_message_id'")
                .and_then(|mut statement| statement.execute([id + 1]))
                .map_err(commit_error)?;
            tx.prepare_cached(
                "INSERT INTO offline_messages \
                 (id, recipient_key, sender, recipient, body, sent_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    id,
                    message.to.key().as_str(),
                    message.from.as_str(),
                    message.to.as_str(),
                    message.body,
                    sent_ms,
                ])
            })
            .map_err(commit_error)?;
        }
        Change::OfflineDelivered { to, through } => {
            let key = to.key();
            // Stored ids are below i64::MAX, so clamping keeps `id > through` exact.
            let through = i64::try_from(through.0).unwrap_or(i64::MAX);
            // State::apply pops from the front of the queue while the front's id is at
            // most `through`: everything queued before the first later id goes.
            let stop: Option<i64> = tx
                .prepare_cached(
                    "SELECT MIN(seq) FROM offline_messages WHERE recipient_key = ?1 AND id > ?2",
                )
                .and_then(|mut statement| {
                    statement.query_row(params![key.as_str(), through], |row| row.get(0))
                })
                .map_err(commit_error)?;
            match stop {
                Some(stop) => tx
                    .prepare_cached(
                        "DELETE FROM offline_messages WHERE recipient_key = ?1 AND seq < ?2",
                    )
                    .and_then(|mut statement| statement.execute(params![key.as_str(), stop])),
                None => tx
                    .prepare_cached("DELETE FROM offline_messages WHERE recipient_key = ?1")
                    .and_then(|mut statement| statement.execute([key.as_str()])),
            }
            .map_err(commit_error)?;
        }
    }
    Ok(())
}

/// Converts a u64 field for SQLite, whose integers are i64.
fn to_db(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

/// Converts a stored integer back to a u64 field.
fn from_db(what: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        detail: format!("{what} is negative ({value})"),
    })
}

/// Parses a stored user name.
fn parse_name(what: &str, text: String) -> Result<UserName, StoreError> {
    UserName::parse(&text).map_err(|error| StoreError::Corrupt {
        detail: format!("{what} {text:?} is not a valid user name ({error:?})"),
    })
}

/// Checks that a stored key is the key of its name. Keys are derived when written (and
/// recomputed by [`rekey::ensure`] when the name rule changes); a mismatch means the file was
/// edited, or the Unicode tables behind the rule changed without raising its version.
fn check_key(what: &str, stored: &str, name: &UserName) -> Result<UserKey, StoreError> {
    let key = name.key();
    if key.as_str() == stored {
        Ok(key)
    } else {
        Err(StoreError::Corrupt {
            detail: format!(
                "{what} {:?} is stored under key {stored:?}, but its key is {:?}",
                name.as_str(),
                key.as_str()
            ),
        })
    }
}

/// Reads one row of `accounts`.
fn read_account(row: &Row<'_>) -> Result<(UserKey, Account), StoreError> {
    let load = |source| StoreError::Load { source };
    let stored_key: String = row.get(0).map_err(load)?;
    let name = parse_name("account", row.get(1).map_err(load)?)?;
    let key = check_key("account", &stored_key, &name)?;
    let account = Account {
        name,
        password: PasswordHash(row.get(2).map_err(load)?),
        ims_password: PasswordHash(row.get(3).map_err(load)?),
        email: row.get(4).map_err(load)?,
        gender: row.get(5).map_err(load)?,
        level: row.get(6).map_err(load)?,
        banned: row.get(7).map_err(load)?,
        created_ms: from_db("created_ms", row.get(8).map_err(load)?)?,
    };
    Ok((key, account))
}

/// Reads one row of `offline_messages`.
fn read_message(row: &Row<'_>) -> Result<(UserKey, StoredMessage), StoreError> {
    let load = |source| StoreError::Load { source };
    let seq: i64 = row.get(0).map_err(load)?;
    let id = from_db("offline message id", row.get(1).map_err(load)?)?;
    let stored_key: String = row.get(2).map_err(load)?;
    // A sender stored before the name rule keeps the name it had (docs/names.md).
    let from: String = row.get(3).map_err(load)?;
    let from = UserName::parse_legacy(&from).map_err(|error| StoreError::Corrupt {
        detail: format!("sender {from:?} is not a valid user name ({error:?})"),
    })?;
    let to = parse_name("recipient", row.get(4).map_err(load)?)?;
    let key = check_key(
        &format!("recipient of offline message {seq}"),
        &stored_key,
        &to,
    )?;
    let message = StoredMessage {
        id: MessageId(id),
        from,
        to,
        body: row.get(5).map_err(load)?,
        sent_ms: from_db("sent_ms", row.get(6).map_err(load)?)?,
    };
    Ok((key, message))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use switchboard_proto::{Change, MessageId, State, StoredMessage, UserName};

    use super::Store;
    use crate::ErrorKind;

    #[test]
    fn connection_is_wal_with_full_sync() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .expect("journal_mode");
        let synchronous: i64 = store
            .conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .expect("synchronous");
        let busy_ms: i64 = store
            .conn
            .pragma_query_value(None, "busy_timeout", |row| row.get(0))
            .expect("busy_timeout");
        assert_eq!(mode, "wal");
        assert_eq!(synchronous, 2, "FULL");
        assert!(busy_ms > 0);
    }

    /// A full disk (simulated with `max_page_count`) fails the commit with its cause, leaves
    /// nothing of the batch, and the same batch commits once there is room again.
    #[test]
    fn full_disk_rolls_back_and_retry_succeeds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("open");
        let pages: i64 = store
            .conn
            .pragma_query_value(None, "page_count", |row| row.get(0))
            .expect("page_count");
        store
            .conn
            .pragma_update(None, "max_page_count", pages)
            .expect("limit");
        let batch = [
            Change::IpBanned(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))),
            Change::OfflineQueued(StoredMessage {
                id: MessageId(0),
                from: UserName::parse("a").expect("name"),
                to: UserName::parse("b").expect("name"),
                body: "x".repeat(200_000),
                sent_ms: 0,
            }),
        ];
        let error = store.commit(&batch).expect_err("no room");
        assert_eq!(error.kind(), ErrorKind::DiskFull, "{error:?}");
        assert_eq!(store.load().expect("load"), State::default());

        store
            .conn
            .pragma_update(None, "max_page_count", 1_000_000)
            .expect("room again");
        store.commit(&batch).expect("retry");
        let mut expected = State::default();
        batch.iter().for_each(|change| expected.apply(change));
        assert_eq!(store.load().expect("load"), expected);
    }
}
