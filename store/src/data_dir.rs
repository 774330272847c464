//! The data directory and the lock that makes one process its only user.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use crate::{Store, StoreError};

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
    /// The directory does not exist (admin commands never create one).
    #[error(
        "data directory {path} does not exist; check the path, or start the server once with \
         `switchboard serve --data-dir {path}` to create it"
    )]
    Missing {
        /// The directory.
        path: PathBuf,
    },
    /// The directory exists but holds no store (admin commands never create one).
    #[error(transparent)]
    NoStore(StoreError),
    /// The path is not a directory, or it cannot be examined.
    #[error("cannot use {path} as the data directory")]
    NotADir {
        /// The path.
        path: PathBuf,
        /// The OS error (`NotADirectory` when it is a file).
        #[source]
        source: io::Error,
    },
    /// Other local users can write to the directory: they could replace the database or
    /// the admin socket. Refused, as sshd's StrictModes does.
    #[error(
        "data directory {path} is writable by {who} (mode {mode:03o}): another local user could \
         replace the database or the admin socket; run `chmod 700 {path}`"
    )]
    Writable {
        /// The directory.
        path: PathBuf,
        /// `group`, `others` or `group and others`.
        who: &'static str,
        /// Its permission bits.
        mode: u32,
    },
    /// The directory belongs to another user, who could replace its files.
    #[error(
        "data directory {path} is owned by uid {owner}, not by this user (uid {uid}); run \
         switchboard as the directory's owner (e.g. `sudo -u <owner> switchboard ...`) or \
         `chown` the directory"
    )]
    Owner {
        /// The directory.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// This process's effective uid.
        uid: u32,
    },
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
    /// Whether [`DataDir::lock`] created the directory.
    created: bool,
    /// Holding the open file holds the lock.
    _lock: File,
}

impl DataDir {
    /// Creates `path` if needed (mode 0700 on Unix: the store holds password hashes),
    /// checks that no other user can write to it ([`check`]) and takes its lock without
    /// waiting. This is what `serve` does.
    ///
    /// # Errors
    /// [`LockError::Busy`] when another process holds it; [`LockError::Writable`] or
    /// [`LockError::Owner`] when another user could write to it; the others when the
    /// directory or the lock file cannot be created or locked.
    pub fn lock(path: &Path) -> Result<DataDir, LockError> {
        let created = match fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_dir(path).map_err(|source| LockError::CreateDir {
                    path: path.to_owned(),
                    source,
                })?;
                true
            }
            _ => false,
        };
        check(path)?;
        DataDir::take(path, created)
    }

    /// Takes the lock of an existing data directory that holds a store, after the checks
    /// of [`check`]; creates nothing but the lock file. This is what admin commands do.
    ///
    /// # Errors
    /// [`LockError::Missing`] when the directory does not exist, [`LockError::NoStore`]
    /// when it holds no store, and those of [`DataDir::lock`].
    pub fn lock_existing(path: &Path) -> Result<DataDir, LockError> {
        check(path)?;
        if !Store::exists_in(path) {
            return Err(LockError::NoStore(StoreError::NoStore {
                dir: path.to_owned(),
            }));
        }
        DataDir::take(path, false)
    }

    fn take(path: &Path, created: bool) -> Result<DataDir, LockError> {
        let lock = path.join(LOCK_FILE_NAME);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&lock).map_err(|source| LockError::Open {
            path: lock.clone(),
            source,
        })?;
        match file.try_lock() {
            Ok(()) => Ok(DataDir {
                path: path.to_owned(),
                created,
                _lock: file,
            }),
            Err(TryLockError::WouldBlock) => Err(LockError::Busy {
                dir: path.to_owned(),
                lock,
            }),
            Err(TryLockError::Error(source)) => Err(LockError::Lock { path: lock, source }),
        }
    }

    /// Whether [`DataDir::lock`] created the directory (it did not exist).
    pub fn created(&self) -> bool {
        self.created
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

    /// Opens the store in it, refusing to create one (see [`Store::open_existing`]).
    ///
    /// # Errors
    /// The store's, when there is none or it cannot be opened or migrated.
    pub fn open_existing_store(&self) -> Result<Store, StoreError> {
        Store::open_existing(&self.path)
    }
}

/// Checks that the data directory `path` exists, is a directory, belongs to this process's
/// effective user and cannot be written by its group or others: anyone who can write to it
/// can replace the database or the admin socket (as sshd's StrictModes checks a home
/// directory). Only the directory itself is checked, not its parents.
///
/// # Errors
/// [`LockError::Missing`], [`LockError::NotADir`], [`LockError::Owner`] or
/// [`LockError::Writable`].
pub fn check(path: &Path) -> Result<(), LockError> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(LockError::Missing {
                path: path.to_owned(),
            })
        }
        Err(source) => {
            return Err(LockError::NotADir {
                path: path.to_owned(),
                source,
            })
        }
    };
    if !meta.is_dir() {
        return Err(LockError::NotADir {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        if meta.uid() != uid {
            return Err(LockError::Owner {
                path: path.to_owned(),
                owner: meta.uid(),
                uid,
            });
        }
        let mode = meta.mode() & 0o7777;
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => Some("group and others"),
            (true, false) => Some("group"),
            (false, true) => Some("others"),
            (false, false) => None,
        };
        if let Some(who) = who {
            return Err(LockError::Writable {
                path: path.to_owned(),
                who,
                mode,
            });
        }
    }
    Ok(())
}

/// Creates `path` and its missing parents, readable by the owner only on Unix (the store
/// holds password hashes).
pub(crate) fn create_dir(path: &Path) -> io::Result<()> {
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
        assert!(first.created());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("data dir").permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "mode {mode:o}");
            let lock = fs::metadata(path.join(LOCK_FILE_NAME)).expect("lock file");
            assert_eq!(lock.permissions().mode() & 0o777, 0o600);
        }
        match DataDir::lock(&path) {
            Err(LockError::Busy { dir, .. }) => assert_eq!(dir, path),
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(first);
        let again = DataDir::lock(&path).expect("lock after the first was dropped");
        assert!(!again.created());
    }

    #[test]
    fn admin_locks_refuse_a_missing_directory_or_one_without_a_store() {
        let dir = tempfile::tempdir().expect("temporary dir");
        let typo = dir.path().join("some-typo");
        match DataDir::lock_existing(&typo) {
            Err(LockError::Missing { path }) => assert_eq!(path, typo),
            other => panic!("expected Missing, got {other:?}"),
        }
        assert!(!typo.exists(), "created {}", typo.display());
        match DataDir::lock_existing(dir.path()) {
            Err(e @ LockError::NoStore(_)) => {
                assert!(e.to_string().contains("holds no Switchboard store"), "{e}")
            }
            other => panic!("expected NoStore, got {other:?}"),
        }
        assert!(
            !dir.path().join(LOCK_FILE_NAME).exists(),
            "made a lock file"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temporary dir");
        let path = dir.path().join("data");
        for (mode, who) in [
            (0o777, "group and others"),
            (0o720, "group"),
            (0o703, "others"),
        ] {
            fs::create_dir_all(&path).expect("dir");
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
            for result in [DataDir::lock(&path), DataDir::lock_existing(&path)] {
                match result {
                    Err(e @ LockError::Writable { .. }) => {
                        let text = e.to_string();
                        assert!(text.contains(&format!("writable by {who}")), "{text}");
                        assert!(
                            text.contains(&format!("chmod 700 {}", path.display())),
                            "{text}"
                        );
                    }
                    other => panic!("mode {mode:o}: expected Writable, got {other:?}"),
                }
            }
        }
        // Sticky or setgid bits alone do not let others in.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o2700)).expect("chmod");
        DataDir::lock(&path).expect("a private directory");
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_of_another_user_is_refused() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("temporary dir");
        let path = dir.path().join("data");
        fs::create_dir(&path).expect("dir");
        // Only root can give a directory away.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to chown");
            return;
        }
        std::os::unix::fs::chown(&path, Some(65534), None).expect("chown");
        assert_eq!(fs::metadata(&path).expect("dir").uid(), 65534);
        match DataDir::lock(&path) {
            Err(e @ LockError::Owner { owner: 65534, .. }) => {
                assert!(e.to_string().contains("owned by uid 65534"), "{e}")
            }
            other => panic!("expected Owner, got {other:?}"),
        }
    }
}
