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
//!
//! ```no_run
//! use switchboard_proto::{Config, Protocol};
//!
//! // Serves ws2017 until Ctrl-C or SIGTERM.
//! switchboard_smol::serve(Config::default(), vec![(Protocol::Ws2017, "127.0.0.1:1030".parse()?)])?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod clock;
mod conn;
mod driver;

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use smol::stream::StreamExt;
use smol::{Async, LocalExecutor};
use switchboard_proto::{Config, Protocol};
use tracing::{info, warn};

/// How the runtime runs, beyond the core's [`Config`].
#[derive(Clone, Debug)]
pub struct Options {
    /// The seed of the core's generator, for a reproducible run. `None` draws one from the
    /// operating system. Either way the seed is logged, and it replaces `Config::seed`.
    pub seed: Option<u64>,
    /// How long a connection the core closes with a flush may take to write what is
    /// queued and see the peer close, before its socket is dropped anyway.
    pub linger: Duration,
    /// How long shutdown waits for open connections to flush and close.
    pub shutdown_grace: Duration,
}

impl Default for Options {
    /// A seed from the OS, 5 s of linger, 2 s of shutdown grace.
    fn default() -> Self {
        Options {
            seed: None,
            linger: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// A server whose listeners are bound and whose seed is chosen, ready to
/// [`run_until`](Self::run_until) shutdown.
///
/// Binding first lets a caller learn the real addresses (port 0 picks a free port) before
/// the server runs, for example to hand them to a test client.
#[derive(Debug)]
pub struct Runtime {
    config: Config,
    options: Options,
    listeners: Vec<Listener>,
}

#[derive(Debug)]
struct Listener {
    protocol: Protocol,
    socket: Async<TcpListener>,
    addr: SocketAddr,
}

impl Runtime {
    /// Chooses the seed (logged) and binds one listener per `(protocol, address)`, logging
    /// `"<protocol> listening on <address>"` with the address actually bound.
    ///
    /// # Errors
    /// When the OS has no randomness to give, or an address cannot be bound; the error
    /// names the protocol and address.
    pub fn bind(
        mut config: Config,
        listeners: &[(Protocol, SocketAddr)],
        options: Options,
    ) -> io::Result<Runtime> {
        config.seed = match options.seed {
            Some(seed) => seed,
            None => getrandom::u64().map_err(io::Error::other)?,
        };
        info!(seed = config.seed, "server seed");
        let listeners = listeners
            .iter()
            .map(|&(protocol, addr)| {
                let context = |e: io::Error| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot listen for {protocol} on {addr}: {e}"),
                    )
                };
                let socket = Async::<TcpListener>::bind(addr).map_err(context)?;
                let addr = socket.get_ref().local_addr().map_err(context)?;
                info!("{protocol} listening on {addr}");
                Ok(Listener {
                    protocol,
                    socket,
                    addr,
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Runtime {
            config,
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
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// Serves on the current thread until `shutdown` completes; then stops accepting,
    /// closes every connection (flushing what is queued, within
    /// [`Options::shutdown_grace`]) and returns.
    ///
    /// # Errors
    /// None today; the signature leaves room for the store's failures.
    pub fn run_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let ex = LocalExecutor::new();
        smol::block_on(ex.run(driver::run(&ex, self, shutdown)));
        info!("stopped");
        Ok(())
    }
}

/// Serves `listeners` with a seed from the OS until Ctrl-C or SIGTERM, then shuts down
/// cleanly and returns `Ok`. Blocks the calling thread.
///
/// # Errors
/// When a listener cannot be bound or the signals cannot be watched.
pub fn serve(config: Config, listeners: Vec<(Protocol, SocketAddr)>) -> io::Result<()> {
    serve_with(config, listeners, Options::default())
}

/// [`serve`] with explicit [`Options`].
///
/// The signals are watched before anything is bound, so a signal sent as soon as a
/// listener is logged already shuts the server down cleanly.
///
/// # Errors
/// When a listener cannot be bound or the signals cannot be watched.
pub fn serve_with(
    config: Config,
    listeners: Vec<(Protocol, SocketAddr)>,
    options: Options,
) -> io::Result<()> {
    let shutdown = shutdown_signal()?;
    Runtime::bind(config, &listeners, options)?.run_until(shutdown)
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
