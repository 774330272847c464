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
//! - No task per connection: every client socket is registered, edge-triggered and keyed
//!   by its id, in one `polling` poller of the driver's, which is itself one source of
//!   smol's reactor. When it has news, the driver reads the connections it names, one
//!   read each in turn, and hands the bytes to the core; a driver that falls behind reads
//!   nothing, and TCP pushes back on the peers. The driver queues the core's transmits
//!   per connection (shared `Bytes`, not copied) and writes them itself at the end of each
//!   turn, one (vectored) write per connection, reporting what the socket took as
//!   [`Input::Written`](switchboard_proto::Input::Written), so the core can close a peer
//!   that stopped reading once its queue passes `Config::outbound_limit_bytes`; the poller
//!   says when a full socket takes more. (A writer task and a channel per connection cost
//!   a fan-out to 1000 clients 1000 channel sends and task wake-ups per message: a quarter
//!   of the server's CPU in arsc's room fan-out. A reader task per connection, with the
//!   reactor's `Source` and wakers of each socket, was a third of an idle client's
//!   memory.)
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
//! - Effects (password hashes and checks, media reads) run on the store's
//!   [`EffectPool`](switchboard_store::effects::EffectPool), a few threads of its own, and
//!   come back as [`Input::EffectDone`](switchboard_proto::Input::EffectDone) through the
//!   driver's report channel.
//! - On Unix, `<data-dir>/admin.sock` takes admin commands: its connections are driven like
//!   any other, as [`switchboard_proto::Protocol::Admin`] from
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
mod woken;

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use smol::stream::StreamExt;
use smol::{Async, LocalExecutor};
use switchboard_proto::{Config, Protocol};
use switchboard_store::start::Prepared;
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

/// Why the runtime could not start, or did not stop cleanly: the error every runtime
/// shares (see [`switchboard_store::start::RuntimeError`]).
pub use switchboard_store::start::RuntimeError as Error;

/// A server whose data directory is locked, whose store is loaded, whose listeners are
/// bound and whose seed is chosen, ready to [`run_until`](Self::run_until) shutdown.
///
/// Binding first lets a caller learn the real addresses (port 0 picks a free port) before
/// the server runs, for example to hand them to a test client.
#[derive(Debug)]
pub struct Runtime {
    /// The config with its seed, the locked data directory, the store and its state, the
    /// admin socket, the connection capacity and the metrics (its listeners are below).
    start: Prepared<Admin>,
    options: Options,
    listeners: Vec<Listener>,
    /// SIGHUP, when watched ([`serve_with`] does): a reload of [`Options::reload`].
    hangup: Option<async_signal::Signals>,
}

/// The admin socket, on Unix.
#[cfg(unix)]
type Admin = admin::AdminSocket;
#[cfg(not(unix))]
type Admin = ();

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
        config: Config,
        data_dir: &Path,
        listeners: &[(Protocol, SocketAddr)],
        options: Options,
    ) -> Result<Runtime, Error> {
        let mut start =
            switchboard_store::start::prepare(config, data_dir, listeners, &options, |dir| {
                #[cfg(unix)]
                return admin::bind(dir);
                #[cfg(not(unix))]
                Ok(())
            })?;
        let listeners = std::mem::take(&mut start.listeners)
            .into_iter()
            .map(|l| {
                let (protocol, addr) = (l.protocol, l.addr);
                let socket = Async::new(l.socket).map_err(|source| Error::Listen {
                    protocol,
                    addr,
                    source,
                })?;
                Ok(Listener {
                    protocol,
                    socket,
                    addr,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Runtime {
            start,
            options,
            listeners,
            hangup: None,
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
    pub fn seed(&self) -> switchboard_proto::Seed {
        self.start.config.seed
    }

    /// The data directory this runtime holds.
    pub fn data_dir(&self) -> &Path {
        self.start.data_dir.path()
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
            Some(Ok(signal)) => {
                // Named as runtime-mio names it: the same line on either runtime.
                let signal = match signal {
                    Signal::Int => "SIGINT",
                    Signal::Term => "SIGTERM",
                    _ => "trigger",
                };
                info!(signal, "shutting down on signal");
            }
            Some(Err(e)) => {
                warn!(error = %e, "watching signals failed; the server keeps running");
                smol::future::pending().await
            }
            None => smol::future::pending().await,
        }
    })
}
