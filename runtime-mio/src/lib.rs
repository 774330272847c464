//! Drives Switchboard's sans-I/O core from one [mio] event loop, without async.
//!
//! The second runtime, and the worked example of driving [`switchboard_proto::Pump`] from
//! your own loop. It holds no protocol logic and imports nothing from runtime-smol:
//!
//! - One thread owns the pump and a `mio::Poll`. It waits for readiness, the pump's
//!   [`poll_timeout`](switchboard_proto::Pump::poll_timeout) or a linger/dial deadline,
//!   tells the pump what happened, and carries out every action the pump then yields.
//! - Listeners (every configured `(Protocol, SocketAddr)`, and on Unix the admin socket
//!   `<data-dir>/admin.sock`, mode 0600) are non-blocking; each accepted connection gets a
//!   [`ConnId`](switchboard_proto::ConnId) that is never reused, or is closed at once when
//!   the descriptor limit leaves no room ([`Options::fd_reserve`]).
//! - Reads go into one reusable buffer of the loop, so an idle connection holds none.
//!   Transmits queue per connection (shared `Bytes`, not copied) and leave in one write per
//!   loop turn, vectored when several are queued; a socket that is full waits for its
//!   writable event, and the bytes it took are reported
//!   [`written`](switchboard_proto::Pump::written), so the core closes a peer that stopped
//!   reading once `Config::outbound_limit_bytes` is passed.
//! - Commits run on one committer thread (the pump keeps one batch in flight: group
//!   commit); effects (password hashing) on a small worker pool. Both hand results back
//!   over a channel and wake the loop with a `mio::Waker`.
//! - The core's dials are non-blocking connects, finished on their writable event.
//! - SIGINT and SIGTERM write to a self-pipe the loop polls; shutdown then does what the
//!   smol runtime does: stop accepting, remove the admin socket, commit what is pending
//!   within [`Options::shutdown_grace`], flush and close connections, release the lock.
//!
//! ```no_run
//! use std::path::Path;
//! use switchboard_proto::{Config, Protocol};
//!
//! // Serves ws2017 until Ctrl-C or SIGTERM, with its store in ./switchboard-data.
//! let listeners = vec![(Protocol::Ws2017, "127.0.0.1:1030".parse()?)];
//! switchboard_mio::serve(Config::default(), Path::new("switchboard-data"), listeners)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(not(target_pointer_width = "64"))]
compile_error!("switchboard-mio uses connection ids as mio tokens, which needs 64-bit usize");

#[cfg(unix)]
mod admin;
mod commit;
mod conn;
mod driver;
mod signals;
mod workers;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use switchboard_proto::{Config, Protocol, State};
use switchboard_store::data_dir::{DataDir, LockError};
use switchboard_store::fds;
use switchboard_store::start::StartError;
use switchboard_store::{Store, StoreError};
use tracing::{info, warn};

pub use signals::{shutdown_signal, Shutdown, Trigger};
pub use switchboard_store::fds::DEFAULT_FD_RESERVE;

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
    /// The event loop failed (the OS refused to create or wait on it).
    #[error("the event loop failed")]
    Poll(#[source] io::Error),
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
#[derive(Debug)]
pub struct Runtime {
    config: Config,
    options: Options,
    data_dir: DataDir,
    store: Store,
    state: State,
    listeners: Vec<Listener>,
    capacity: fds::Capacity,
    /// The metrics, when served.
    metrics: Option<switchboard_store::metrics::Metrics>,
    #[cfg(unix)]
    admin: admin::AdminSocket,
}

#[derive(Debug)]
struct Listener {
    protocol: Protocol,
    socket: mio::net::TcpListener,
    addr: SocketAddr,
}

impl Runtime {
    /// Chooses the seed (logged), takes the lock of `data_dir` (creating it if needed),
    /// opens and loads the store there, binds one non-blocking listener per
    /// `(protocol, address)`, logging `"<protocol> listening on <address>"` with the address
    /// actually bound, and, on Unix, binds the admin socket `<data_dir>/admin.sock`.
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
                let socket = std::net::TcpListener::bind(addr).map_err(context)?;
                fds::set_backlog(&socket, backlog).map_err(context)?;
                socket.set_nonblocking(true).map_err(context)?;
                let addr = socket.local_addr().map_err(context)?;
                info!(backlog, "{protocol} listening on {addr}");
                Ok(Listener {
                    protocol,
                    socket: mio::net::TcpListener::from_std(socket),
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

    /// Serves on the current thread until `shutdown` fires; then stops accepting, removes
    /// the admin socket, commits what the core asked to persist (releasing the
    /// acknowledgements that waited on it), closes every connection (flushing what is
    /// queued), all within [`Options::shutdown_grace`], and returns, releasing the data
    /// directory.
    ///
    /// # Errors
    /// [`Error::Uncommitted`] when the store was failing and changes were still
    /// uncommitted when the grace period ran out; [`Error::Poll`] when the OS event loop
    /// cannot be created.
    pub fn run_until(self, shutdown: Shutdown) -> Result<(), Error> {
        let result = driver::run(self, shutdown);
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

/// [`serve`] with explicit [`Options`]. The signals are watched before anything is bound,
/// so a signal sent as soon as a listener is logged already shuts the server down cleanly.
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
    Runtime::bind(config, data_dir, &listeners, options)?.run_until(shutdown)
}
