//! The store: opening the database, loading the durable state, committing changes.

use std::fs;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::backup::Backup;
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use switchboard_proto::{
    Account, Change, MediaId, MessageId, PasswordHash, State, StoredMessage, UserKey, UserName,
};

use crate::data_dir::create_dir;
use crate::mailboxes::Mailboxes;
use crate::rekey;
use crate::relations;
use crate::schema;
use crate::StoreError;

/// The database's file name inside the data directory.
pub const DB_FILE_NAME: &str = "switchboard.db";

/// The marker's file name inside the data directory. It is written once the database is
/// created (or first opened by a build that knows markers), and says the directory holds a
/// store: a data directory with a marker and no database lost its database, which is
/// refused instead of silently starting an empty network.
pub const MARKER_FILE_NAME: &str = "switchboard.marker";

/// SQLite's `PRAGMA application_id` of a Switchboard database: `SWBD` in ASCII. Another
/// program's SQLite file put in the data directory is refused.
pub const APPLICATION_ID: i32 = 0x5357_4244;

/// The name a new database is built under before it is moved into place, so a crash during
/// creation never leaves a partial `switchboard.db`.
const NEW_DB_FILE_NAME: &str = ".switchboard.db.new";

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
    /// Where each mailbox's rows are (see [`Mailboxes`]); `None` until read, and again
    /// after a failed commit. A mutex only so [`Store::load`], which reads every row
    /// anyway, can fill it through `&self`; commits reach it through `&mut self`.
    mailboxes: Mutex<Option<Mailboxes>>,
}

/// Whether [`Store::open`] may create a store in a data directory that holds none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Create {
    IfAbsent,
    Never,
}

impl Store {
    /// Opens the store in `data_dir`, creating the directory (mode 0700 on Unix) and a new
    /// database if the directory holds no store, and migrating the schema to this build's
    /// version. This is what `serve` does.
    ///
    /// Refuses, naming the file: a data directory whose marker says it holds a store but
    /// whose database is gone ([`StoreError::Missing`]); an empty (0-byte) database
    /// ([`StoreError::Empty`]); another program's SQLite file ([`StoreError::Foreign`]); a
    /// database written by a newer schema version ([`StoreError::NewerSchema`]).
    ///
    /// The database, its WAL and shared-memory files and the marker are readable and
    /// writable by the owner only (0600) on Unix.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(data_dir, Create::IfAbsent)
    }

    /// Opens the store in `data_dir` as [`Store::open`] does, but never creates one: a
    /// directory that does not exist or holds no store is refused with
    /// [`StoreError::NoStore`]. This is what admin commands do.
    pub fn open_existing(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(data_dir, Create::Never)
    }

    /// Whether `data_dir` holds a store: its database or its marker is there.
    pub fn exists_in(data_dir: &Path) -> bool {
        [DB_FILE_NAME, MARKER_FILE_NAME]
            .iter()
            .any(|name| fs::symlink_metadata(data_dir.join(name)).is_ok())
    }

    fn open_with(data_dir: &Path, create: Create) -> Result<Store, StoreError> {
        let path = data_dir.join(DB_FILE_NAME);
        let marker = data_dir.join(MARKER_FILE_NAME);
        let marked = exists(&marker)?;
        match fs::metadata(&path) {
            Ok(meta) if meta.len() == 0 => return Err(StoreError::Empty { path }),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if marked {
                    return Err(StoreError::Missing { path, marker });
                }
                if create == Create::Never {
                    return Err(StoreError::NoStore {
                        dir: data_dir.to_owned(),
                    });
                }
                create_dir(data_dir).map_err(|source| StoreError::CreateDir {
                    path: data_dir.to_owned(),
                    source,
                })?;
                create_database(data_dir, &path)?;
            }
            Err(source) => {
                return Err(StoreError::File {
                    action: "read",
                    path,
                    source,
                })
            }
        }
        // No CREATE flag: the file was just found, and must not be made anew if it vanished.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn =
            Connection::open_with_flags(&path, flags).map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|source| StoreError::Configure {
                setting: "busy_timeout",
                path: path.clone(),
                source,
            })?;
        check_identity(&conn, &path)?;
        configure(&conn, &path)?;
        schema::migrate(&mut conn, &path)?;
        rekey::ensure(&mut conn, &path)?;
        if !marked {
            write_marker(&marker)?;
        }
        restrict_files(&path)?;
        Ok(Store {
            conn,
            path,
            mailboxes: Mutex::new(None),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads everything durable, from one consistent snapshot: accounts, IP bans, offline
    /// queues in the order their messages were queued, and the next message id.
    pub fn load(&self) -> Result<State, StoreError> {
        let path = self.path.as_path();
        let load = |source| StoreError::Load {
            path: path.to_owned(),
            source,
        };
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
            let (key, account) = read_account(row, path)?;
            state.accounts.insert(key, account);
        }

        let mut bans = tx.prepare("SELECT ip FROM ip_bans").map_err(load)?;
        let mut rows = bans.query([]).map_err(load)?;
        while let Some(row) = rows.next().map_err(load)? {
            let text: String = row.get(0).map_err(load)?;
            let ip = text.parse::<IpAddr>().map_err(|_| StoreError::Corrupt {
                path: path.to_owned(),
                detail: format!("ip_bans holds {text:?}, not an IP address"),
            })?;
            state.ip_bans.insert(ip);
        }

        let mut offline = tx
            .prepare(
                "SELECT seq, id, recipient_key, sender, recipient, body, sent_ms, kind, chat_id, \
                 media_id FROM offline_messages ORDER BY seq",
            )
            .map_err(load)?;
        let mut rows = offline.query([]).map_err(load)?;
        let mut mailboxes = Mailboxes::default();
        while let Some(row) = rows.next().map_err(load)? {
            let (seq, key, message) = read_message(row, path)?;
            let id = i64::try_from(message.id.0).unwrap_or(i64::MAX);
            mailboxes.queued(key.as_str(), seq, id);
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
            path: path.to_owned(),
            detail: "the next_message_id counter is missing".to_owned(),
        })?;
        state.next_message_id = from_db(path, "next_message_id", next)?;
        relations::load(&tx, path, &mut state)?;
        // Read from the same snapshot as the state, so the first commit need not read the
        // table again.
        *self
            .mailboxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(mailboxes);
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
        let path = self.path.as_path();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| commit_error(path, source))?;
        let slot = self
            .mailboxes
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Taken out for the attempt: put back only once the batch is committed, so a
        // batch that fails leaves it unknown, to be read again from the table.
        let mut batch = Batch {
            mailboxes: slot.take(),
            next_message_id: None,
            seqs: Vec::new(),
        };
        for change in changes {
            apply(&tx, path, change, &mut batch)?;
        }
        batch.finish(&tx, path)?;
        // On any error above, dropping `tx` rolls the batch back; so does a failed COMMIT.
        tx.commit().map_err(|source| commit_error(path, source))?;
        *slot = batch.mailboxes;
        Ok(())
    }

    /// The bytes of a media item ([`Change::MediaStored`]), which [`Store::load`] leaves out
    /// of the [`State`]; `None` if no such media is stored. For the effect that answers
    /// opcode's 119 RequestMedia.
    pub fn media(&self, id: MediaId) -> Result<Option<Vec<u8>>, StoreError> {
        relations::media_bytes(&self.conn, &self.path, id)
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

/// Whether `path` exists (as anything, a dangling link too).
fn exists(path: &Path) -> Result<bool, StoreError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StoreError::File {
            action: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Opens `path` for writing, creating it (mode 0600 on Unix) or truncating it.
fn create_private(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Builds a new database under a temporary name (mode 0600, its `application_id` set,
/// migrated), then moves it to `path` in one rename: `path` is either absent or whole.
fn create_database(data_dir: &Path, path: &Path) -> Result<(), StoreError> {
    let temporary = data_dir.join(NEW_DB_FILE_NAME);
    let file_error = |action, source| StoreError::File {
        action,
        path: temporary.clone(),
        source,
    };
    for leftover in [NEW_DB_FILE_NAME, ".switchboard.db.new-journal"] {
        match fs::remove_file(data_dir.join(leftover)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(file_error("remove", e));
            }
            _ => {}
        }
    }
    create_private(&temporary).map_err(|e| file_error("create", e))?;
    let open_error = |source| StoreError::Open {
        path: temporary.clone(),
        source,
    };
    let mut conn = Connection::open(&temporary).map_err(open_error)?;
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(|source| StoreError::Configure {
            setting: "application_id",
            path: temporary.clone(),
            source,
        })?;
    schema::migrate(&mut conn, &temporary)?;
    conn.close().map_err(|(_, source)| open_error(source))?;
    fs::rename(&temporary, path).map_err(|e| file_error("rename", e))?;
    sync_dir(data_dir).map_err(|source| StoreError::File {
        action: "sync",
        path: data_dir.to_owned(),
        source,
    })
}

/// Makes a rename or a new file in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Refuses a database that is not Switchboard's: another `application_id`, or none and no
/// schema. A database of a build before the `application_id` (none, but a schema) is
/// adopted: it gets the id.
fn check_identity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let read = |pragma: &'static str| -> Result<i64, StoreError> {
        conn.pragma_query_value(None, pragma, |row| row.get(0))
            .map_err(|source| StoreError::Configure {
                setting: pragma,
                path: path.to_owned(),
                source,
            })
    };
    let id = read("application_id")?;
    if id == i64::from(APPLICATION_ID) {
        return Ok(());
    }
    if id != 0 {
        return Err(StoreError::Foreign {
            path: path.to_owned(),
            detail: format!(
                "its SQLite application_id is {id:#x}, not {APPLICATION_ID:#x}; another \
                 program's file is in the data directory"
            ),
        });
    }
    if schema::version(conn).map_err(|source| StoreError::Configure {
        setting: "user_version",
        path: path.to_owned(),
        source,
    })? == 0
    {
        return Err(StoreError::Foreign {
            path: path.to_owned(),
            detail: "an SQLite file without Switchboard's application_id or schema".to_owned(),
        });
    }
    // Written before application_id existed; a newer schema is refused by the migration
    // without a write, so leave that file alone.
    if schema::version(conn).unwrap_or(0) <= i64::from(schema::SCHEMA_VERSION) {
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(|source| StoreError::Configure {
                setting: "application_id",
                path: path.to_owned(),
                source,
            })?;
    }
    Ok(())
}

/// Writes the marker that says the data directory holds a store (mode 0600).
fn write_marker(marker: &Path) -> Result<(), StoreError> {
    let write = || -> io::Result<()> {
        let mut file = create_private(marker)?;
        writeln!(
            file,
            "This directory holds a Switchboard store ({DB_FILE_NAME}, schema version {}).\n\
             Switchboard refuses to start here without {DB_FILE_NAME}: restore it from a backup.",
            schema::SCHEMA_VERSION
        )?;
        file.sync_all()?;
        if let Some(dir) = marker.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    };
    write().map_err(|source| StoreError::File {
        action: "write",
        path: marker.to_owned(),
        source,
    })
}

/// Makes the database and its WAL and shared-memory files readable and writable by the
/// owner only, for files made by an older build or copied in with a looser mode. (SQLite
/// gives the WAL and shared-memory files the database's mode when it creates them.)
fn restrict_files(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut files = vec![path.to_owned()];
        for suffix in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            files.push(PathBuf::from(name));
        }
        for file in files {
            let mode = match fs::metadata(&file) {
                Ok(meta) => meta.permissions().mode(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(StoreError::File {
                        action: "read",
                        path: file,
                        source,
                    })
                }
            };
            if mode & 0o077 != 0 {
                fs::set_permissions(&file, fs::Permissions::from_mode(mode & 0o700)).map_err(
                    |source| StoreError::File {
                        action: "restrict the mode of",
                        path: file.clone(),
                        source,
                    },
                )?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Sets the connection up: WAL, full sync, foreign keys.
fn configure(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    // WAL: readers (a backup) never block the writer, and a commit appends to one file.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|source| StoreError::Configure {
            setting: "journal_mode=WAL",
            path: path.to_owned(),
            source,
        })?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NotWal {
            path: path.to_owned(),
            mode,
        });
    }
    // FULL, not NORMAL: in WAL mode NORMAL skips the fsync at each commit, so a commit
    // survives a process crash but can be lost on power loss or an OS crash. The server
    // tells clients "stored" once a commit returns, so every commit must reach the disk.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|source| StoreError::Configure {
            setting: "synchronous=FULL",
            path: path.to_owned(),
            source,
        })?;
    // For the tables later migrations add that reference others.
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|source| StoreError::Configure {
            setting: "foreign_keys=ON",
            path: path.to_owned(),
            source,
        })?;
    Ok(())
}

/// Wraps an SQLite error during a commit.
fn commit_error(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Commit {
        path: path.to_owned(),
        source,
    }
}

/// What one commit keeps between its changes.
struct Batch {
    /// Where each mailbox's rows are, once read (see [`Mailboxes`]).
    mailboxes: Option<Mailboxes>,
    /// The `next_message_id` counter once read, and whether the batch moved it: written
    /// back once at the end ([`Batch::finish`]) instead of at every message.
    next_message_id: Option<(i64, bool)>,
    /// Rows to delete, reused between changes.
    seqs: Vec<i64>,
}

impl Batch {
    /// The mailboxes, read from the table if not known.
    fn mailboxes(
        &mut self,
        tx: &Transaction<'_>,
        path: &Path,
    ) -> Result<&mut Mailboxes, StoreError> {
        match &mut self.mailboxes {
            Some(mailboxes) => Ok(mailboxes),
            empty => {
                let read = Mailboxes::read(tx).map_err(|source| commit_error(path, source))?;
                Ok(empty.insert(read))
            }
        }
    }

    /// Takes message id `id` as `State::apply` does: false if it is below the counter (a
    /// replay), else moves the counter past it.
    fn take_message_id(
        &mut self,
        tx: &Transaction<'_>,
        path: &Path,
        id: i64,
    ) -> Result<bool, StoreError> {
        let (next, moved) = match &mut self.next_message_id {
            Some(counter) => counter,
            empty => {
                let next = relations::counter(tx, "next_message_id")
                    .map_err(|source| commit_error(path, source))?
                    .ok_or_else(|| StoreError::Corrupt {
                        path: path.to_owned(),
                        detail: "the next_message_id counter is missing".to_owned(),
                    })?;
                empty.insert((next, false))
            }
        };
        if id < *next {
            return Ok(false);
        }
        *next = id + 1;
        *moved = true;
        Ok(true)
    }

    /// Deletes the rows in `self.seqs` and empties it.
    fn delete_rows(&mut self, tx: &Transaction<'_>, path: &Path) -> Result<(), StoreError> {
        if self.seqs.is_empty() {
            return Ok(());
        }
        let mut statement = tx
            .prepare_cached("DELETE FROM offline_messages WHERE seq = ?1")
            .map_err(|source| commit_error(path, source))?;
        for seq in self.seqs.drain(..) {
            statement
                .execute([seq])
                .map_err(|source| commit_error(path, source))?;
        }
        Ok(())
    }

    /// Writes what the batch kept in memory: the message id counter.
    fn finish(&mut self, tx: &Transaction<'_>, path: &Path) -> Result<(), StoreError> {
        if let Some((next, true)) = self.next_message_id {
            tx.prepare_cached("UPDATE counters SET value = ?1 WHERE name = 'next_message_id'")
                .and_then(|mut statement| statement.execute([next]))
                .map_err(|source| commit_error(path, source))?;
        }
        Ok(())
    }
}

/// Applies one change inside the commit's transaction, as [`State::apply`] does in memory.
fn apply(
    tx: &Transaction<'_>,
    path: &Path,
    change: &Change,
    batch: &mut Batch,
) -> Result<(), StoreError> {
    let commit_error = |source| commit_error(path, source);
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
            relations::account_deleted(tx, path, name)?;
            let key = name.key();
            tx.prepare_cached("DELETE FROM accounts WHERE key = ?1")
                .and_then(|mut statement| statement.execute([key.as_str()]))
                .map_err(commit_error)?;
            let mut seqs = std::mem::take(&mut batch.seqs);
            batch.mailboxes(tx, path)?.take_all(key.as_str(), &mut seqs);
            batch.seqs = seqs;
            batch.delete_rows(tx, path)?;
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
        Change::LevelChanged { name, level } => {
            tx.prepare_cached("UPDATE accounts SET level = ?2 WHERE key = ?1")
                .and_then(|mut statement| statement.execute(params![name.key().as_str(), level]))
                .map_err(commit_error)?;
        }
        Change::FriendRequested { from, to, since_ms } => {
            relations::friend_requested(tx, path, from, to, *since_ms)?;
        }
        Change::FriendRequestDropped { from, to } => {
            relations::friend_request_dropped(tx, path, from, to)?;
        }
        Change::FriendshipMade { a, b, since_ms } => {
            relations::friendship_made(tx, path, a, b, *since_ms)?;
        }
        Change::FriendshipEnded { a, b } => relations::friendship_ended(tx, path, a, b)?,
        Change::ChatCreated {
            id,
            members,
            created_ms,
        } => relations::chat_created(tx, path, *id, members, *created_ms)?,
        Change::ChatDeleted { id } => relations::chat_deleted(tx, path, *id)?,
        Change::MediaStored {
            id,
            chat,
            sender,
            created_ms,
            bytes,
        } => relations::media_stored(tx, path, *id, *chat, sender, *created_ms, &bytes.0)?,
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
            let id = relations::id_to_db("message id", message.id.0)?;
            let sent_ms = to_db("sent_ms", message.sent_ms)?;
            let (kind, chat_id, media_id) = relations::kind_to_db(message.kind)?;
            // Ids only increase: one below the counter was queued already (a batch retried
            // after a commit that reported failure but reached the disk).
            if !batch.take_message_id(tx, path, id)? {
                return Ok(());
            }
            let key = message.to.key();
            tx.prepare_cached(
                "INSERT INTO offline_messages \
                 (id, recipient_key, sender, recipient, body, sent_ms, kind, chat_id, media_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    id,
                    key.as_str(),
                    message.from.as_str(),
                    message.to.as_str(),
                    message.body,
                    sent_ms,
                    kind,
                    chat_id,
                    media_id,
                ])
            })
            .map_err(commit_error)?;
            let seq = tx.last_insert_rowid();
            batch.mailboxes(tx, path)?.queued(key.as_str(), seq, id);
        }
        Change::OfflineDelivered { to, through } => {
            let key = to.key();
            // Stored ids are below i64::MAX, so clamping keeps `id <= through` exact.
            let through = i64::try_from(through.0).unwrap_or(i64::MAX);
            // State::apply pops from the front of the queue while the front's id is at
            // most `through`: everything queued before the first later id goes.
            let mut seqs = std::mem::take(&mut batch.seqs);
            batch
                .mailboxes(tx, path)?
                .take_through(key.as_str(), through, &mut seqs);
            batch.seqs = seqs;
            batch.delete_rows(tx, path)?;
        }
    }
    Ok(())
}

/// Converts a u64 field for SQLite, whose integers are i64.
fn to_db(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

/// Converts a stored integer back to a u64 field.
fn from_db(path: &Path, what: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        path: path.to_owned(),
        detail: format!("{what} is negative ({value})"),
    })
}

/// Parses a stored user name.
fn parse_name(path: &Path, what: &str, text: String) -> Result<UserName, StoreError> {
    UserName::parse(&text).map_err(|error| StoreError::Corrupt {
        path: path.to_owned(),
        detail: format!("{what} {text:?} is not a valid user name ({error:?})"),
    })
}

/// Checks that a stored key is the key of its name. Keys are derived when written (and
/// recomputed by [`rekey::ensure`] when the name rule changes); a mismatch means the file was
/// edited, or the Unicode tables behind the rule changed without raising its version.
fn check_key(
    path: &Path,
    what: &str,
    stored: &str,
    name: &UserName,
) -> Result<UserKey, StoreError> {
    let key = name.key();
    if key.as_str() == stored {
        Ok(key)
    } else {
        Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!(
                "{what} {:?} is stored under key {stored:?}, but its key is {:?}",
                name.as_str(),
                key.as_str()
            ),
        })
    }
}

/// Reads one row of `accounts`.
fn read_account(row: &Row<'_>, path: &Path) -> Result<(UserKey, Account), StoreError> {
    let load = |source| StoreError::Load {
        path: path.to_owned(),
        source,
    };
    let stored_key: String = row.get(0).map_err(load)?;
    let name = parse_name(path, "account", row.get(1).map_err(load)?)?;
    let key = check_key(path, "account", &stored_key, &name)?;
    let account = Account {
        name,
        password: PasswordHash(row.get(2).map_err(load)?),
        ims_password: PasswordHash(row.get(3).map_err(load)?),
        email: row.get(4).map_err(load)?,
        gender: row.get(5).map_err(load)?,
        level: row.get(6).map_err(load)?,
        banned: row.get(7).map_err(load)?,
        created_ms: from_db(path, "created_ms", row.get(8).map_err(load)?)?,
    };
    Ok((key, account))
}

/// Reads one row of `offline_messages`: its `seq`, its recipient's key and the message.
fn read_message(row: &Row<'_>, path: &Path) -> Result<(i64, UserKey, StoredMessage), StoreError> {
    let load = |source| StoreError::Load {
        path: path.to_owned(),
        source,
    };
    let seq: i64 = row.get(0).map_err(load)?;
    let id = from_db(path, "offline message id", row.get(1).map_err(load)?)?;
    let stored_key: String = row.get(2).map_err(load)?;
    // A sender stored before the name rule keeps the name it had (docs/names.md).
    let from: String = row.get(3).map_err(load)?;
    let from = UserName::parse_legacy(&from).map_err(|error| StoreError::Corrupt {
        path: path.to_owned(),
        detail: format!("sender {from:?} is not a valid user name ({error:?})"),
    })?;
    let to = parse_name(path, "recipient", row.get(4).map_err(load)?)?;
    let key = check_key(
        path,
        &format!("recipient of offline message {seq}"),
        &stored_key,
        &to,
    )?;
    let message = StoredMessage {
        id: MessageId(id),
        from,
        to,
        body: row.get(5).map_err(load)?,
        sent_ms: from_db(path, "sent_ms", row.get(6).map_err(load)?)?,
        kind: relations::kind_from_db(
            path,
            seq,
            &row.get::<_, String>(7).map_err(load)?,
            row.get(8).map_err(load)?,
            row.get(9).map_err(load)?,
        )?,
    };
    Ok((seq, key, message))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use switchboard_proto::{Change, MessageId, MessageKind, State, StoredMessage, UserName};

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
        disk_full_from_now(&store);
        let batch = [
            Change::IpBanned(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))),
            Change::OfflineQueued(StoredMessage {
                id: MessageId(0),
                from: UserName::parse("a").expect("name"),
                to: UserName::parse("b").expect("name"),
                body: "x".repeat(200_000),
                sent_ms: 0,
                kind: MessageKind::Direct,
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

    /// Lets the database grow no more: the next write that needs a page fails as on a full
    /// disk.
    fn disk_full_from_now(store: &Store) {
        let pages: i64 = store
            .conn
            .pragma_query_value(None, "page_count", |row| row.get(0))
            .expect("page_count");
        store
            .conn
            .pragma_update(None, "max_page_count", pages)
            .expect("limit");
    }

    fn queued(id: u64, to: &str, body: &str) -> Change {
        Change::OfflineQueued(StoredMessage {
            id: MessageId(id),
            from: UserName::parse("sender").expect("name"),
            to: UserName::parse(to).expect("name"),
            body: body.to_owned(),
            sent_ms: 0,
            kind: MessageKind::Direct,
        })
    }

    /// A batch that fails after it removed (in its transaction) a stored message leaves
    /// the message stored, and the store's record of the mailbox says so: the same removal
    /// retried removes it, and so does a later one.
    #[test]
    fn a_failed_batch_leaves_the_mailboxes_as_the_table_has_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("open");
        let first = [queued(0, "bob", "one"), queued(1, "bob", "two")];
        store.commit(&first).expect("commit");
        disk_full_from_now(&store);
        let delivered = Change::OfflineDelivered {
            to: UserName::parse("bob").expect("name"),
            through: MessageId(0),
        };
        let failing = [delivered.clone(), queued(2, "carol", &"x".repeat(200_000))];
        store.commit(&failing).expect_err("no room");
        let mut expected = State::default();
        first.iter().for_each(|change| expected.apply(change));
        assert_eq!(
            store.load().expect("load"),
            expected,
            "nothing of the batch"
        );

        // Without load() in between (which reads the record again anyway).
        let mut store = Store::open(dir.path()).expect("reopen");
        store.commit(&first).expect("replay");
        disk_full_from_now(&store);
        store.commit(&failing).expect_err("no room");
        store
            .conn
            .pragma_update(None, "max_page_count", 1_000_000)
            .expect("room again");
        store.commit(&[delivered]).expect("the removal again");
        expected.apply(&failing[0]);
        assert_eq!(store.load().expect("load"), expected, "one removed");
        assert_eq!(expected.offline.values().flatten().count(), 1);
    }

    /// Storing a message for one of many mailboxes writes where the table ends, not into
    /// a part of the file per mailbox: a batch of 1000 messages for 1000 mailboxes, on top
    /// of 20,000 stored ones, writes about as many pages as its bytes fill. (With the
    /// index by recipient that version 4 drops, every mailbox's part of the index took a
    /// page each time, written whole to the WAL, and commits slowed as messages
    /// accumulated.)
    #[test]
    fn a_batch_for_many_mailboxes_writes_a_few_pages() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(dir.path()).expect("open");
        let batch = |round: u64| -> Vec<Change> {
            (0..1000)
                .map(|i| queued(round * 1000 + i, &format!("acct{i}"), "t1733400000000.17"))
                .collect()
        };
        for round in 0..20 {
            store.commit(&batch(round)).expect("commit");
        }
        let frames = |store: &Store, mode: &str| -> i64 {
            store
                .conn
                .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
                    row.get(1)
                })
                .expect("checkpoint")
        };
        assert_eq!(frames(&store, "TRUNCATE"), 0, "the WAL is empty");
        store.commit(&batch(20)).expect("commit");
        let written = frames(&store, "PASSIVE");
        // 1000 rows of about 60 bytes: 15 pages of 4 KiB, and the pages above them.
        assert!(written <= 30, "{written} pages for 1000 messages");
    }
}
