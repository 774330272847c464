//! What can go wrong in the store, with the underlying cause kept as the error's source.

use std::io;
use std::path::PathBuf;

use rusqlite::ErrorCode;

/// A store operation failed. The `Display` text says what the store was doing; the cause
/// (SQLite's or the OS's error) is the [`source`](std::error::Error::source), so a log line
/// that prints the source chain names both once. [`StoreError::kind`] classifies the cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The database file could not be opened or created.
    #[error("cannot open database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The data directory holds no store: no database and no marker (a typo in the path,
    /// say). Only `serve` creates a store; admin commands refuse.
    #[error(
        "{dir} holds no Switchboard store (no {db} and no {marker}); check the path, or start \
         the server once with `switchboard serve --data-dir {dir}` to create one",
        db = crate::DB_FILE_NAME,
        marker = crate::MARKER_FILE_NAME
    )]
    NoStore {
        /// The data directory.
        dir: PathBuf,
    },
    /// The data directory was initialised (its marker is there) but its database is gone.
    #[error(
        "database {path} is missing, but {marker} says this data directory holds a store; \
         restore the database from a backup (to start an empty network on purpose, remove \
         {marker} too)"
    )]
    Missing {
        /// The database file.
        path: PathBuf,
        /// The marker file.
        marker: PathBuf,
    },
    /// The database file is empty (0 bytes): truncated, or replaced. Never a store this
    /// build made: it creates a database whole, under another name, before moving it in.
    #[error(
        "database {path} is empty (0 bytes); it was truncated or replaced: restore it from a \
         backup"
    )]
    Empty {
        /// The database file.
        path: PathBuf,
    },
    /// The database file is an SQLite database, but not one of Switchboard's.
    #[error("{path} is not a Switchboard database: {detail}")]
    Foreign {
        /// The database file.
        path: PathBuf,
        /// Why (its `application_id`, or no schema).
        detail: String,
    },
    /// A file of the store could not be examined, created or written (the database's
    /// metadata, the marker, a file mode).
    #[error("cannot {action} {path}")]
    File {
        /// What was being done: `read`, `create`, `write`, `restrict the mode of`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A connection setting (a pragma) could not be applied.
    #[error("cannot set {setting} on database {path}")]
    Configure {
        /// The setting, e.g. `journal_mode=WAL`.
        setting: &'static str,
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite refused WAL mode (for example on a file system without shared memory).
    #[error("database {path} refused WAL mode (journal_mode is {mode})")]
    NotWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported instead.
        mode: String,
    },
    /// The database was written by a newer build of Switchboard; opening it could lose data.
    #[error(
        "database {path} has schema version {found}, newer than this build supports \
         ({supported}); run a newer Switchboard or restore a backup"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The database's `user_version`.
        found: i64,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A schema migration failed; the database stays at the version before it.
    #[error("migration of database {path} to schema version {version} failed")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The version the failed migration leads to.
        version: u32,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Reading the durable state failed.
    #[error("cannot load the durable state from database {path}")]
    Load {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A commit failed and was rolled back: none of its changes are stored.
    #[error("commit to database {path} failed, nothing of the batch was stored")]
    Commit {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// An online backup failed.
    #[error("backup to {path} failed")]
    Backup {
        /// The backup's destination.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database holds something that cannot be part of a `State` (an invalid name, a key
    /// that does not match its name, a negative timestamp).
    #[error("database {path} content is invalid: {detail}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong, and where.
        detail: String,
    },
    /// A change carries a number SQLite cannot hold (integers are signed 64-bit there); the
    /// commit was rolled back. The core never produces these: ids count up from 0 and
    /// timestamps are Unix milliseconds.
    #[error("{what} {value} does not fit in the database")]
    OutOfRange {
        /// Which field.
        what: &'static str,
        /// Its value.
        value: u64,
    },
}

/// The class of a [`StoreError`]'s cause, for deciding what to do and what to tell the
/// operator: retrying helps with [`ErrorKind::Busy`] and perhaps [`ErrorKind::DiskFull`],
/// not with the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The disk (or the database's size limit) is full.
    DiskFull,
    /// An I/O error from the OS, or the file or directory cannot be opened or created.
    Io,
    /// Another connection holds a lock longer than the busy timeout.
    Busy,
    /// The database or its directory is read-only.
    ReadOnly,
    /// The file is not a database, is damaged, or holds content that cannot be loaded.
    Corrupt,
    /// The database comes from a newer schema version.
    NewerSchema,
    /// A change carries a value the database cannot hold.
    OutOfRange,
    /// The data directory holds no store, or an initialised one lost its database.
    NoStore,
    /// Anything else (a bug, out of memory, a failed constraint).
    Other,
}

impl StoreError {
    /// Classifies the cause.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::CreateDir { source, .. } => match source.kind() {
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                    ErrorKind::ReadOnly
                }
                io::ErrorKind::StorageFull => ErrorKind::DiskFull,
                _ => ErrorKind::Io,
            },
            StoreError::File { source, .. } => match source.kind() {
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                    ErrorKind::ReadOnly
                }
                io::ErrorKind::StorageFull => ErrorKind::DiskFull,
                _ => ErrorKind::Io,
            },
            StoreError::NoStore { .. } | StoreError::Missing { .. } => ErrorKind::NoStore,
            StoreError::Empty { .. } | StoreError::Foreign { .. } => ErrorKind::Corrupt,
            StoreError::Open { source, .. }
            | StoreError::Configure { source, .. }
            | StoreError::Migrate { source, .. }
            | StoreError::Load { source, .. }
            | StoreError::Commit { source, .. }
            | StoreError::Backup { source, .. } => sqlite_kind(source),
            StoreError::NotWal { .. } => ErrorKind::Io,
            StoreError::NewerSchema { .. } => ErrorKind::NewerSchema,
            StoreError::Corrupt { .. } => ErrorKind::Corrupt,
            StoreError::OutOfRange { .. } => ErrorKind::OutOfRange,
        }
    }
}

/// Classifies one of SQLite's errors.
fn sqlite_kind(error: &rusqlite::Error) -> ErrorKind {
    match error {
        rusqlite::Error::SqliteFailure(e, _) => match e.code {
            ErrorCode::DiskFull => ErrorKind::DiskFull,
            ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::NoLargeFileSupport
            | ErrorCode::FileLockingProtocolFailed => ErrorKind::Io,
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ErrorKind::Busy,
            ErrorCode::ReadOnly | ErrorCode::PermissionDenied => ErrorKind::ReadOnly,
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => ErrorKind::Corrupt,
            _ => ErrorKind::Other,
        },
        // A column that does not convert to its Rust type: the content is not what this
        // build wrote.
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::Utf8Error(..) => ErrorKind::Corrupt,
        _ => ErrorKind::Other,
    }
}
