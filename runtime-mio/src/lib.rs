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
//!   the descriptor limit leaves no room ([`Options::fd_reserve`]). A listener gives at
//!   most 128 connections a turn, the rest the next turn: a crowd connecting at once comes
//!   in between the reads of those already in, whose chat does not wait for all of it.
//! - Reads go into one reusable buffer of the loop, so an idle connection holds none.
//!   Transmits queue per connection (shared `Bytes`, not copied) and leave in one write per
//!   loop turn, vectored when several are queued; a socket that is full waits for its
//!   writable event, and the bytes it took are reported
//!   [`written`](switchboard_proto::Pump::written), so the core closes a peer that stopped
//!   reading once `Config::outbound_limit_bytes` is passed.
//! - Commits run on one committer thread (the pump keeps one batch in flight: group
//!   commit); effects (password hashes and checks, media reads) on the store's
//!   [`EffectPool`](switchboard_store::effects::EffectPool), shared with runtime-smol. Both
//!   hand results back over a channel and wake the loop with a `mio::Waker`.
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
mod conn;
mod driver;
mod signals;
mod workers;

use std::net::SocketAddr;
use std::path::Path;

use switchboard_proto::{Config, Protocol};
use switchboard_store::start::Prepared;
use tracing::info;

pub use signals::{shutdown_signal, Shutdown, Trigger};
pub use switchboard_store::fds::DEFAULT_FD_RESERVE;

pub use switchboard_store::options::Options;

/// Why the runtime could not start, or did not stop cleanly: the error every runtime
/// shares (see [`switchboard_store::start::RuntimeError`]).
pub use switchboard_store::start::RuntimeError as Error;

/// A server whose data directory is locked, whose store is loaded, whose listeners are
/// bound and whose seed is chosen, ready to [`run_until`](Self::run_until) shutdown.
#[derive(Debug)]
pub struct Runtime {
    /// The config with its seed, the locked data directory, the store and its state, the
    /// admin socket, the connection capacity and the metrics (its listeners are below).
    start: Prepared<Admin>,
    options: Options,
    listeners: Vec<Listener>,
}

/// The admin socket, on Unix.
#[cfg(unix)]
type Admin = admin::AdminSocket;
#[cfg(not(unix))]
type Admin = ();

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
            .map(|l| Listener {
                protocol: l.protocol,
                socket: mio::net::TcpListener::from_std(l.socket),
                addr: l.addr,
            })
            .collect();
        Ok(Runtime {
            start,
            options,
            listeners,
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
