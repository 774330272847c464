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
    /// A connection setting (a pragma) could not be applied.
    #[error("cannot set {setting} on the database")]
    Configure {
        /// The setting, e.g. `journal_mode=WAL`.
        setting: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite refused WAL mode (for example on a file system without shared memory).
    #[error("database refused WAL mode (journal_mode is {mode})")]
    NotWal {
        /// The journal mode SQLite reported instead.
        mode: String,
    },
    /// The database was written by a newer build of Switchboard; opening it could lose data.
    #[error(
        "database schema version {found} is newer than this build supports ({supported}); \
         run a newer Switchboard or restore a backup"
    )]
    NewerSchema {
        /// The database's `user_version`.
        found: i64,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A schema migration failed; the database stays at the version before it.
    #[error("migration to schema version {version} failed")]
    Migrate {
        /// The version the failed migration leads to.
        version: u32,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Reading the durable state failed.
    #[error("cannot load the durable state")]
    Load {
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A commit failed and was rolled back: none of its changes are stored.
    #[error("commit failed, nothing of the batch was stored")]
    Commit {
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
    #[error("database content is invalid: {detail}")]
    Corrupt {
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
            StoreError::Open { source, .. }
            | StoreError::Configure { source, .. }
            | StoreError::Migrate { source, .. }
            | StoreError::Load { source }
            | StoreError::Commit { source }
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
