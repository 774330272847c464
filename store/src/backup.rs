//! `switchboard backup FILE`: a consistent copy of the store, taken beside a running
//! server (or a stopped one) with SQLite's online backup API.
//!
//! The copy reads the database through its own read-only connection, in one read
//! transaction: in WAL mode that sees one committed state and never blocks the server's
//! commits. The result is one self-contained database file (no WAL), written under a
//! temporary name, checked, synced and renamed into place, mode 0600.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::store::{APPLICATION_ID, DB_FILE_NAME};

/// What a backup copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copied {
    /// The file written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The accounts it holds.
    pub accounts: u64,
}

/// Why a backup was not made. Nothing is left at the destination.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The destination exists: a backup never overwrites.
    #[error("{0} exists; a backup never overwrites a file (remove it, or choose another name)")]
    Exists(PathBuf),
    /// The data directory holds no database.
    #[error("no database at {0}")]
    NoDatabase(PathBuf),
    /// The database is not Switchboard's.
    #[error("{0} is not a Switchboard database (application_id {1:#x})")]
    NotOurs(PathBuf, i64),
    /// SQLite failed while copying or checking.
    #[error("backup of {from} to {to} failed")]
    Sqlite {
        /// The database.
        from: PathBuf,
        /// The destination.
        to: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The copy did not pass SQLite's integrity check.
    #[error("the copy {0} failed SQLite's integrity check: {1}")]
    Corrupt(PathBuf, String),
    /// A file operation failed.
    #[error("backup to {path} failed")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Copies the database of `data_dir` to `to`, consistently, whether or not a server runs.
///
/// # Errors
/// See [`BackupError`]; on any error the destination is not created.
pub fn backup(data_dir: &Path, to: &Path) -> Result<Copied, BackupError> {
    let from = data_dir.join(DB_FILE_NAME);
    if to.exists() {
        return Err(BackupError::Exists(to.to_owned()));
    }
    if !from.is_file() {
        return Err(BackupError::NoDatabase(from));
    }
    let sqlite = |source| BackupError::Sqlite {
        from: from.clone(),
        to: to.to_owned(),
        source,
    };
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Io { path, source }
    };
    // A read-only connection: it cannot change the store, and in WAL mode its read
    // transaction does not hold up the server's commits.
    let source = Connection::open_with_flags(
        &from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    source
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite)?;
    let id: i64 = source
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sqlite)?;
    if id != i64::from(APPLICATION_ID) {
        return Err(BackupError::NotOurs(from, id));
    }
    let partial = partial_name(to);
    let _ = fs::remove_file(&partial);
    let result = (|| {
        let mut dest = Connection::open(&partial).map_err(sqlite)?;
        restrict(&partial).map_err(io(&partial))?;
        {
            let backup = rusqlite::backup::Backup::new(&source, &mut dest).map_err(sqlite)?;
            // All pages in one step (-1): one read transaction, one consistent state.
            // Busy or locked (a checkpoint at that instant): try again shortly.
            use rusqlite::backup::StepResult;
            let mut tries = 0;
            loop {
                match backup.step(-1).map_err(sqlite)? {
                    StepResult::Done => break,
                    StepResult::More | StepResult::Busy | StepResult::Locked if tries < 100 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    _ => {
                        return Err(sqlite(rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                            Some("the database stayed busy for 5 s".into()),
                        )))
                    }
                }
            }
        }
        // A self-contained file: no WAL beside it.
        dest.pragma_update(None, "journal_mode", "DELETE")
            .map_err(sqlite)?;
        let check: String = dest
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(sqlite)?;
        if check != "ok" {
            return Err(BackupError::Corrupt(to.to_owned(), check));
        }
        let accounts: i64 = dest
            .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
            .map_err(sqlite)?;
        let accounts = u64::try_from(accounts).unwrap_or(0);
        drop(dest);
        fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(io(&partial))?;
        fs::rename(&partial, to).map_err(io(to))?;
        if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename is durable once the directory is.
            let _ = fs::File::open(dir).and_then(|d| d.sync_all());
        }
        let bytes = fs::metadata(to).map_err(io(to))?.len();
        Ok(Copied {
            path: to.to_owned(),
            bytes,
            accounts,
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

/// `FILE.partial`, beside it.
fn partial_name(to: &Path) -> PathBuf {
    let mut name = to.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Mode 0600: the copy holds password hashes.
fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
