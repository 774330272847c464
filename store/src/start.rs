//! What every runtime does at start, before it serves: choose the seed, take the data
//! directory's lock, load the store, bind the listeners and the metrics ([`prepare`]);
//! and the one error type of a runtime ([`RuntimeError`]). Std-only, so a runtime on any
//! event loop (smol, mio, threads) shares it instead of importing another runtime's crate.

use std::error::Error;
use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use switchboard_proto::{Config, Protocol, Seed, State};
use tracing::{error, info, warn};

use crate::data_dir::{DataDir, LockError};
use crate::fds;
use crate::metrics::Metrics;
use crate::options::Options;
use crate::{Store, StoreError};

/// Why a runtime could not start, or did not stop cleanly: the `Error` of every runtime
/// crate (each re-exports it). The `Display` text says what failed; the cause is the
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The operating system gave no randomness for the seed.
    #[error(transparent)]
    Seed(#[from] SeedError),
    /// The data directory could not be taken (another server holds it, say).
    #[error(transparent)]
    DataDir(#[from] LockError),
    /// The store could not be opened or loaded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A protocol listener could not be bound.
    #[error("cannot listen for {protocol} on {addr}")]
    Listen {
        /// Its protocol.
        protocol: Protocol,
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The admin socket could not be bound.
    #[error("cannot listen on the admin socket {path}")]
    AdminSocket {
        /// The socket's path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The metrics listener could not be bound.
    #[error("cannot serve metrics on {addr}")]
    Metrics {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Ctrl-C and SIGTERM cannot be watched.
    #[error("cannot watch for Ctrl-C and SIGTERM")]
    Signals(#[source] io::Error),
    /// The event loop failed (the OS refused to create or wait on it).
    #[error("the event loop failed")]
    Poll(#[source] io::Error),
    /// Not one thread of the effect pool (password hashes, media reads) could be started.
    #[error("cannot start the threads that check passwords")]
    Effects(#[source] io::Error),
    /// Shutdown gave up on changes the store did not commit within the grace period (it
    /// was failing). None of them was acknowledged to a client.
    #[error("stopped with {changes} changes not committed; none of them was acknowledged")]
    Uncommitted {
        /// How many.
        changes: usize,
    },
}

impl From<StartError> for RuntimeError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::DataDir(e) => RuntimeError::DataDir(e),
            StartError::Store(e) => RuntimeError::Store(e),
        }
    }
}

/// The end of a runtime's shutdown: `Ok` when everything the core asked to persist was
/// committed, else [`RuntimeError::Uncommitted`], logged.
///
/// # Errors
/// [`RuntimeError::Uncommitted`] when `uncommitted` is not 0.
pub fn stopped(uncommitted: usize) -> Result<(), RuntimeError> {
    if uncommitted == 0 {
        return Ok(());
    }
    error!(
        changes = uncommitted,
        "stopped with changes the store did not commit; none was acknowledged"
    );
    Err(RuntimeError::Uncommitted {
        changes: uncommitted,
    })
}

/// A protocol listener, bound and non-blocking, for a runtime to wrap in its event loop.
#[derive(Debug)]
pub struct BoundListener {
    /// The protocol its connections speak.
    pub protocol: Protocol,
    /// The socket, non-blocking, with the backlog of [`fds::backlog`].
    pub socket: TcpListener,
    /// The address actually bound (port 0 picks a free one).
    pub addr: SocketAddr,
}

/// Everything a runtime has before it serves (see [`prepare`]).
#[derive(Debug)]
pub struct Prepared<A> {
    /// The core's config, with the seed chosen.
    pub config: Config,
    /// The directory, locked until this is dropped: hold it until the last commit is done.
    pub data_dir: DataDir,
    /// The store, for the runtime's committer.
    pub store: Store,
    /// Everything durable, for [`Server::new`](switchboard_proto::Server::new).
    pub state: State,
    /// One listener per `(protocol, address)`, in the order given.
    pub listeners: Vec<BoundListener>,
    /// The runtime's admin socket, as its `bind_admin` made it.
    pub admin: A,
    /// How many client connections the descriptor limit leaves room for.
    pub capacity: fds::Capacity,
    /// The metrics, when [`Options::metrics`] serves them.
    pub metrics: Option<Metrics>,
}

/// A runtime's start: chooses the seed (logged only when given), raises the descriptor
/// limit, takes the lock of `data_dir` (creating it if needed), opens and loads the store
/// there, starts the metrics, binds one non-blocking listener per `(protocol, address)`
/// (logging `PROTOCOL listening on ADDRESS` with the address actually bound), binds the
/// admin socket with `bind_admin` (last: a start that fails after it would leave its file
/// behind) and works out the connection capacity.
///
/// # Errors
/// When another process holds the data directory, the store cannot be opened or loaded,
/// an address cannot be bound, or the OS has no randomness to give; and what
/// `bind_admin` returns.
pub fn prepare<A>(
    mut config: Config,
    data_dir: &Path,
    listeners: &[(Protocol, SocketAddr)],
    options: &Options,
    bind_admin: impl FnOnce(&DataDir) -> Result<A, RuntimeError>,
) -> Result<Prepared<A>, RuntimeError> {
    config.seed = choose_seed(options.seed)?;
    // Drawn bytes are not logged: whoever reads them could predict every session id
    // (an arsc sid is a login) and choose keys that collide in the server's maps.
    match config.seed.as_number() {
        Some(seed) => warn!(
            seed,
            "server seed given: session ids are predictable (tests only)"
        ),
        None => info!("server seed: 256 bits from the operating system"),
    }
    let limit = fds::raise_limit();
    let started = lock_and_load(data_dir)?;
    log_started(&started);
    let Started {
        data_dir,
        store,
        state,
        ..
    } = started;
    // The admin socket last: it is a file, left behind by a start that fails after it.
    let metrics = Metrics::start(options.metrics)
        .map_err(|(addr, source)| RuntimeError::Metrics { addr, source })?;
    let listeners = bind_listeners(listeners)?;
    let admin = bind_admin(&data_dir)?;
    let capacity = fds::client_capacity(limit, options.fd_reserve);
    fds::log_start(limit, &capacity, options.fd_reserve);
    Ok(Prepared {
        config,
        data_dir,
        store,
        state,
        listeners,
        admin,
        capacity,
        metrics,
    })
}

/// Binds one non-blocking listener per `(protocol, address)` with the backlog of
/// [`fds::backlog`], logging each with the address bound, and warns once when the kernel
/// caps that backlog lower.
///
/// # Errors
/// [`RuntimeError::Listen`] for the first address that cannot be bound.
pub fn bind_listeners(
    listeners: &[(Protocol, SocketAddr)],
) -> Result<Vec<BoundListener>, RuntimeError> {
    let (backlog, somaxconn) = fds::backlog();
    let bound = listeners
        .iter()
        .map(|&(protocol, addr)| {
            let context = |source| RuntimeError::Listen {
                protocol,
                addr,
                source,
            };
            let socket = TcpListener::bind(addr).map_err(context)?;
            fds::set_backlog(&socket, backlog).map_err(context)?;
            socket.set_nonblocking(true).map_err(context)?;
            let addr = socket.local_addr().map_err(context)?;
            info!(backlog, "{protocol} listening on {addr}");
            Ok(BoundListener {
                protocol,
                socket,
                addr,
            })
        })
        .collect::<Result<Vec<_>, RuntimeError>>()?;
    if somaxconn.is_some_and(|max| max < backlog) {
        warn!(
            backlog,
            somaxconn,
            "the kernel caps the listen backlog at net.core.somaxconn; raise it for \
             crowds that connect at once"
        );
    }
    Ok(bound)
}

/// The operating system gave no randomness for the seed.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw a seed from the operating system")]
pub struct SeedError(#[source] getrandom::Error);

/// The core's seed: the number `configured` if given (a reproducible run), else 256 bits
/// drawn from the operating system.
///
/// # Errors
/// [`SeedError`] when the OS has no randomness to give.
pub fn choose_seed(configured: Option<u64>) -> Result<Seed, SeedError> {
    match configured {
        Some(seed) => Ok(Seed::number(seed)),
        None => {
            let mut bytes = [0; 32];
            getrandom::fill(&mut bytes).map_err(SeedError)?;
            Ok(Seed::from_bytes(bytes))
        }
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
    /// Whether the store was created now (the directory held none).
    pub new_store: bool,
}

/// Takes the lock of `path` (creating it if needed, see [`DataDir::lock`]), opens the store
/// there and loads it.
///
/// # Errors
/// [`StartError::DataDir`] when the directory cannot be taken, [`StartError::Store`] when
/// the store cannot be opened or loaded.
pub fn lock_and_load(path: &Path) -> Result<Started, StartError> {
    let data_dir = DataDir::lock(path)?;
    let new_store = !Store::exists_in(data_dir.path());
    let store = data_dir.open_store()?;
    let state = store.load()?;
    Ok(Started {
        data_dir,
        store,
        state,
        new_store,
    })
}

/// Logs where the data directory is (created or opened) and what the store loaded: the
/// lines every runtime prints at start.
pub fn log_started(started: &Started) {
    let Started {
        data_dir,
        store,
        state,
        new_store,
    } = started;
    let absolute =
        std::path::absolute(data_dir.path()).unwrap_or_else(|_| data_dir.path().to_owned());
    match (data_dir.created(), new_store) {
        (true, _) => tracing::info!(path = %absolute.display(), "data directory created"),
        // An existing directory without a store: a first start in a directory made for
        // it, or a mistyped path; either way the operator should see it.
        (false, true) => tracing::warn!(
            path = %absolute.display(),
            "data directory opened; it held no store, so a new empty one was created in it (check the path if accounts were expected)"
        ),
        (false, false) => tracing::info!(path = %absolute.display(), "data directory opened"),
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
        assert_eq!(choose_seed(Some(7)).ok(), Some(Seed::number(7)));
        let a = choose_seed(None).expect("OS randomness");
        let b = choose_seed(None).expect("OS randomness");
        assert_eq!(a.as_number(), None, "a drawn seed is not a number");
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
