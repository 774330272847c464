//! The data directory and the lock that makes one process its only user.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use switchboard_store::{Store, StoreError};

/// The lock file's name inside the data directory. A serving process (or an admin
/// command working on the store directly) holds an exclusive lock on it for its lifetime;
/// the OS releases it when the process ends, however it ends.
pub const LOCK_FILE_NAME: &str = "switchboard.lock";

/// The admin socket's name inside the data directory (a Unix socket, mode 0600), on which
/// a running server takes `switchboard user ...`, `ban ...` and `kick ...` commands.
pub const ADMIN_SOCKET_NAME: &str = "admin.sock";

/// The admin socket of the data directory `dir`.
pub fn admin_socket_path(dir: &Path) -> PathBuf {
    dir.join(ADMIN_SOCKET_NAME)
}

/// Why the data directory could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The directory could not be created.
    #[error("cannot create data directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The lock file could not be opened or created.
    #[error("cannot open lock file {path}")]
    Open {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another process holds the lock: a server is running on this directory, or an
    /// admin command is working on its store.
    #[error("data directory {dir} is in use by another switchboard process (it holds {lock})")]
    Busy {
        /// The directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// Locking failed for another reason (a file system without locks, say).
    #[error("cannot lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// A data directory this process holds the exclusive lock of, until it is dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    /// Holding the open file holds the lock.
    _lock: File,
}

impl DataDir {
    /// Creates `path` if needed (mode 0700 on Unix: the store holds password hashes) and
    /// takes its lock without waiting.
    ///
    /// # Errors
    /// [`LockError::Busy`] when another process holds it; the others when the directory
    /// or the lock file cannot be created or locked.
    pub fn lock(path: &Path) -> Result<DataDir, LockError> {
        create_dir(path).map_err(|source| LockError::CreateDir {
            path: path.to_owned(),
            source,
        })?;
        let lock = path.join(LOCK_FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(|source| LockError::Open {
                path: lock.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(DataDir {
                path: path.to_owned(),
                _lock: file,
            }),
            Err(TryLockError::WouldBlock) => Err(LockError::Busy {
                dir: path.to_owned(),
                lock,
            }),
            Err(TryLockError::Error(source)) => Err(LockError::Lock { path: lock, source }),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its admin socket.
    pub fn admin_socket(&self) -> PathBuf {
        admin_socket_path(&self.path)
    }

    /// Opens the store in it (see [`Store::open`]).
    ///
    /// # Errors
    /// The store's, when the database cannot be opened or migrated.
    pub fn open_store(&self) -> Result<Store, StoreError> {
        Store::open(&self.path)
    }
}

/// Creates `path` and its missing parents, readable by the owner only on Unix.
fn create_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("temporary dir");
        let path = dir.path().join("data");
        let first = DataDir::lock(&path).expect("first lock");
        assert!(path.join(LOCK_FILE_NAME).is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("data dir").permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "mode {mode:o}");
        }
        match DataDir::lock(&path) {
            Err(LockError::Busy { dir, .. }) => assert_eq!(dir, path),
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(first);
        DataDir::lock(&path).expect("lock after the first was dropped");
    }
}
