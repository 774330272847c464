//! What every runtime does at start, before it serves: choose the seed, take the data
//! directory's lock and load the store. Std-only, so a runtime on any event loop (smol,
//! mio, threads) shares it instead of importing another runtime's crate.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

use switchboard_proto::State;

use crate::data_dir::{DataDir, LockError};
use crate::{Store, StoreError};

/// The operating system gave no randomness for the seed.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw a seed from the operating system")]
pub struct SeedError(#[source] getrandom::Error);

/// The core's seed: `configured` if given, else one drawn from the operating system.
///
/// # Errors
/// [`SeedError`] when the OS has no randomness to give.
pub fn choose_seed(configured: Option<u64>) -> Result<u64, SeedError> {
    match configured {
        Some(seed) => Ok(seed),
        None => getrandom::u64().map_err(SeedError),
    }
}

/// Why a runtime could not take its data directory and load its store.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be taken (another server holds it, say).
    #[error(transparent)]
    DataDir(#[from] LockError),
    /// The store could not be opened or loaded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A data directory held, its store open and its durable state loaded: what a runtime
/// hands the core before serving.
#[derive(Debug)]
pub struct Started {
    /// The directory, locked until this is dropped: hold it until the last commit is done.
    pub data_dir: DataDir,
    /// The store, for the runtime's committer.
    pub store: Store,
    /// Everything durable, for [`Server::new`](switchboard_proto::Server::new).
    pub state: State,
}

/// Takes the lock of `path` (creating it if needed, see [`DataDir::lock`]), opens the store
/// there and loads it.
///
/// # Errors
/// [`StartError::DataDir`] when the directory cannot be taken, [`StartError::Store`] when
/// the store cannot be opened or loaded.
pub fn lock_and_load(path: &Path) -> Result<Started, StartError> {
    let data_dir = DataDir::lock(path)?;
    let store = data_dir.open_store()?;
    let state = store.load()?;
    Ok(Started {
        data_dir,
        store,
        state,
    })
}

/// Logs where the data directory is (created or opened) and what the store loaded: the
/// lines every runtime prints at start.
pub fn log_started(started: &Started) {
    let Started {
        data_dir,
        store,
        state,
    } = started;
    let absolute =
        std::path::absolute(data_dir.path()).unwrap_or_else(|_| data_dir.path().to_owned());
    if data_dir.created() {
        tracing::info!(path = %absolute.display(), "data directory created");
    } else {
        tracing::info!(path = %absolute.display(), "data directory opened");
    }
    tracing::info!(
        path = %store.path().display(),
        accounts = state.accounts.len(),
        offline_messages = state.offline.values().map(|q| q.len()).sum::<usize>(),
        ip_bans = state.ip_bans.len(),
        "store loaded"
    );
}

/// An error and its causes, `outer: inner: innermost`, for logs.
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_seed_is_kept_and_a_missing_one_is_drawn() {
        assert_eq!(choose_seed(Some(7)).ok(), Some(7));
        let a = choose_seed(None).expect("OS randomness");
        let b = choose_seed(None).expect("OS randomness");
        assert_ne!(a, b, "two draws gave the same seed");
    }

    #[test]
    fn start_locks_the_directory_and_loads_what_was_committed() {
        let dir = tempfile::tempdir().expect("temporary dir");
        let path = dir.path().join("data");
        let started = lock_and_load(&path).expect("first start");
        let mut store = started.store;
        store
            .commit(&[switchboard_proto::Change::IpBanned(
                std::net::Ipv4Addr::new(10, 0, 0, 1).into(),
            )])
            .expect("commit");
        assert!(matches!(
            lock_and_load(&path),
            Err(StartError::DataDir(LockError::Busy { .. }))
        ));
        drop(store);
        drop(started.data_dir);
        let again = lock_and_load(&path).expect("second start");
        assert_eq!(again.state.ip_bans.len(), 1);
    }
}
