//! Drives Switchboard's sans-I/O core ([`switchboard_proto::Server`]) over smol.
//!
//! This crate holds no protocol logic. It accepts connections, moves bytes between sockets
//! and the core, tells the core what the sockets did, and wakes it at its deadlines:
//!
//! - One driver task owns the `Server` and runs its drive loop: wait for an event, the
//!   core's [`poll_timeout`](switchboard_proto::Server::poll_timeout) or shutdown; feed it;
//!   drain [`poll_output`](switchboard_proto::Server::poll_output).
//! - One listener task per configured `(Protocol, SocketAddr)` accepts connections and gives
//!   each a [`ConnId`](switchboard_proto::ConnId) that is never reused.
//! - Per connection, a reader task sends what it reads to the driver over a bounded channel
//!   (a flood of input waits there, and TCP pushes back on the peer), and a writer task
//!   writes the core's transmits in order and reports each write back as
//!   [`Input::Written`](switchboard_proto::Input::Written), so the core can close a peer that
//!   stopped reading once its queue passes `Config::outbound_limit_bytes`.
//! - A close the core wants flushed writes what is queued, shuts the socket down and waits
//!   for the peer to close, all within [`Options::linger`]; any other close drops the socket
//!   at once.
//! - Durability: the runtime holds the data directory's lock ([`DataDir`]) for its lifetime,
//!   loads the store before serving, and drives the core through a
//!   [`Pump`](switchboard_proto::Pump), which holds back the transmits that reveal
//!   uncommitted changes and decides what to commit and when: one batch in flight while the
//!   next gathers (group commit), a failed batch again after a capped backoff. This crate's
//!   committer runs each batch in one transaction on smol's blocking pool and logs a run of
//!   failures once.
//! - Effects (password hashing) run on smol's blocking pool and come back as
//!   [`Input::EffectDone`](switchboard_proto::Input::EffectDone).
//! - On Unix, `<data-dir>/admin.sock` takes admin commands: its connections are driven like
//!   any other, as [`Protocol::Admin`](switchboard_proto::Protocol::Admin) from
//!   [`Peer::Local`](switchboard_proto::Peer::Local).
//!
//! ```no_run
//! use std::path::Path;
//! use switchboard_proto::{Config, Protocol};
//!
//! // Serves ws2017 until Ctrl-C or SIGTERM, with its store in ./switchboard-data.
//! let listeners = vec![(Protocol::Ws2017, "127.0.0.1:1030".parse()?)];
//! switchboard_smol::serve(Config::default(), Path::new("switchboard-data"), listeners)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(unix)]
mod admin;
mod commit;
mod conn;
mod driver;

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use smol::stream::StreamExt;
use smol::{Async, LocalExecutor};
use switchboard_proto::{Config, Protocol, State};
use switchboard_store::start::StartError;
use switchboard_store::{Store, StoreError};
use tracing::{info, warn};

// Std-only pieces every runtime shares; they live in the store crate so that no other
// runtime has to import this one. Re-exported for this crate's callers.
pub use switchboard_store::data_dir::{
    admin_socket_path, check as check_data_dir, DataDir, LockError, ADMIN_SOCKET_NAME,
    LOCK_FILE_NAME,
};
pub use switchboard_store::start::error_chain;
pub use switchboard_store::{fds, fds::DEFAULT_FD_RESERVE};

pub use switchboard_store::options::Options;

/// Why the runtime could not start, or did not stop cleanly. The `Display` text says what
/// failed; the cause is the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system gave no randomness for the seed.
    #[error(transparent)]
    Seed(#[from] switchboard_store::start::SeedError),
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
    /// Shutdown gave up on changes the store did not commit within the grace period (it
    /// was failing). None of them was acknowledged to a client.
    #[error("stopped with {changes} changes not committed; none of them was acknowledged")]
    Uncommitted {
        /// How many.
        changes: usize,
    },
}

/// A server whose data directory is locked, whose store is loaded, whose listeners are
/// bound and whose seed is chosen, ready to [`run_until`](Self::run_until) shutdown.
///
/// Binding first lets a caller learn the real addresses (port 0 picks a free port) before
/// the server runs, for example to hand them to a test client.
#[derive(Debug)]
pub struct Runtime {
    config: Config,
    options: Options,
    data_dir: DataDir,
    store: Store,
    state: State,
    listeners: Vec<Listener>,
    /// How many client connections the descriptor limit leaves room for.
    capacity: fds::Capacity,
    /// The metrics, when served.
    metrics: Option<switchboard_store::metrics::Metrics>,
    /// SIGHUP, when watched ([`serve_with`] does): a reload of [`Options::reload`].
    hangup: Option<async_signal::Signals>,
    #[cfg(unix)]
    admin: admin::AdminSocket,
}

#[derive(Debug)]
struct Listener {
    protocol: Protocol,
    socket: Async<TcpListener>,
    addr: SocketAddr,
}

impl Runtime {
    /// Chooses the seed (logged), takes the lock of `data_dir` (creating it if needed),
    /// opens and loads the store there, binds one listener per `(protocol, address)`,
    /// logging `"<protocol> listening on <address>"` with the address actually bound, and,
    /// on Unix, binds the admin socket `<data_dir>/admin.sock`.
    ///
    /// # Errors
    /// When another process holds the data directory, the store cannot be opened or
    /// loaded, an address cannot be bound, or the OS has no randomness to give.
    pub fn bind(
        mut config: Config,
        data_dir: &Path,
        listeners: &[(Protocol, SocketAddr)],
        options: Options,
    ) -> Result<Runtime, Error> {
        config.seed = switchboard_store::start::choose_seed(options.seed)?;
        info!(seed = config.seed, "server seed");
        let limit = fds::raise_limit();
        let started = switchboard_store::start::lock_and_load(data_dir).map_err(|e| match e {
            StartError::DataDir(e) => Error::DataDir(e),
            StartError::Store(e) => Error::Store(e),
        })?;
        switchboard_store::start::log_started(&started);
        let switchboard_store::start::Started {
            data_dir,
            store,
            state,
        } = started;
        let (backlog, somaxconn) = fds::backlog();
        let listeners = listeners
            .iter()
            .map(|&(protocol, addr)| {
                let context = |source| Error::Listen {
                    protocol,
                    addr,
                    source,
                };
                let socket = Async::<TcpListener>::bind(addr).map_err(context)?;
                fds::set_backlog(socket.get_ref(), backlog).map_err(context)?;
                let addr = socket.get_ref().local_addr().map_err(context)?;
                info!(backlog, "{protocol} listening on {addr}");
                Ok(Listener {
                    protocol,
                    socket,
                    addr,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if somaxconn.is_some_and(|max| max < backlog) {
            warn!(
                backlog,
                somaxconn,
                "the kernel caps the listen backlog at net.core.somaxconn; raise it for \
                 crowds that connect at once"
            );
        }
        #[cfg(unix)]
        let admin = admin::bind(&data_dir)?;
        let capacity = fds::client_capacity(limit, options.fd_reserve);
        fds::log_start(limit, &capacity, options.fd_reserve);
        let metrics = switchboard_store::metrics::Metrics::start(options.metrics)
            .map_err(|(addr, source)| Error::Metrics { addr, source })?;
        Ok(Runtime {
            config,
            options,
            data_dir,
            store,
            state,
            listeners,
            capacity,
            metrics,
            hangup: None,
            #[cfg(unix)]
            admin,
        })
    }

    /// The addresses the listeners are bound to, in the order they were given.
    pub fn local_addrs(&self) -> Vec<(Protocol, SocketAddr)> {
        self.listeners
            .iter()
            .map(|l| (l.protocol, l.addr))
            .collect()
    }

    /// The seed the core runs with.
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// The data directory this runtime holds.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Serves on the current thread until `shutdown` completes; then stops accepting,
    /// removes the admin socket, commits what the core asked to persist (releasing the
    /// acknowledgements that waited on it), closes every connection (flushing what is
    /// queued), all within [`Options::shutdown_grace`], and returns, releasing the data
    /// directory.
    ///
    /// # Errors
    /// [`Error::Uncommitted`] when the store was failing and changes were still
    /// uncommitted when the grace period ran out.
    pub fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let ex = LocalExecutor::new();
        let result = smol::block_on(ex.run(driver::run(&ex, self, shutdown)));
        info!("stopped");
        result
    }
}

/// Serves `listeners` with the store in `data_dir` and a seed from the OS until Ctrl-C or
/// SIGTERM, then shuts down cleanly and returns `Ok`. Blocks the calling thread.
///
/// # Errors
/// See [`Runtime::bind`] and [`Runtime::run_until`]; also when the signals cannot be
/// watched.
pub fn serve(
    config: Config,
    data_dir: &Path,
    listeners: Vec<(Protocol, SocketAddr)>,
) -> Result<(), Error> {
    serve_with(config, data_dir, listeners, Options::default())
}

/// [`serve`] with explicit [`Options`].
///
/// The signals are watched before anything is bound, so a signal sent as soon as a
/// listener is logged already shuts the server down cleanly.
///
/// # Errors
/// See [`serve`].
pub fn serve_with(
    config: Config,
    data_dir: &Path,
    listeners: Vec<(Protocol, SocketAddr)>,
    options: Options,
) -> Result<(), Error> {
    let shutdown = shutdown_signal().map_err(Error::Signals)?;
    let hangup = hangup_signal().map_err(Error::Signals)?;
    let mut runtime = Runtime::bind(config, data_dir, &listeners, options)?;
    runtime.hangup = hangup;
    runtime.run_until(shutdown)
}

/// Starts watching for SIGHUP (on Unix; `None` elsewhere): from this call on it no longer
/// kills the process, and the loop reloads on it ([`Options::reload`]).
///
/// # Errors
/// When the signal handler cannot be installed.
pub fn hangup_signal() -> io::Result<Option<async_signal::Signals>> {
    #[cfg(unix)]
    return async_signal::Signals::new([async_signal::Signal::Hup]).map(Some);
    #[cfg(not(unix))]
    Ok(None)
}

/// Starts watching for Ctrl-C (SIGINT) and, on Unix, SIGTERM; the returned future completes
/// at the first of them. From this call on those signals no longer kill the process.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    use async_signal::{Signal, Signals};

    #[cfg(unix)]
    let mut signals = Signals::new([Signal::Int, Signal::Term])?;
    #[cfg(not(unix))]
    let mut signals = Signals::new([Signal::Int])?;
    Ok(async move {
        match signals.next().await {
            Some(Ok(signal)) => info!(?signal, "shutting down on signal"),
            Some(Err(e)) => {
                warn!(error = %e, "watching signals failed; the server keeps running");
                smol::future::pending().await
            }
            None => smol::future::pending().await,
        }
    })
}
