//! How a runtime runs beyond the core's `Config`: the options both runtimes take.

use std::time::Duration;

use crate::credentials::Cost;
use crate::fds::DEFAULT_FD_RESERVE;

/// How a runtime runs, beyond the core's `Config`.
#[derive(Clone, Debug)]
pub struct Options {
    /// The seed of the core's generator, for a reproducible run. `None` draws one from the
    /// operating system. Either way the seed is logged, and it replaces `Config::seed`.
    pub seed: Option<u64>,
    /// How long a connection the core closes with a flush may take to write what is
    /// queued and see the peer close, before its socket is dropped anyway.
    pub linger: Duration,
    /// How long shutdown waits for the last commits and for open connections to flush and
    /// close.
    pub shutdown_grace: Duration,
    /// The argon2id cost of the password hashes the server makes. Keep
    /// [`Cost::recommended`] for real accounts; [`Cost::cheap`] is for tests.
    pub hash_cost: Cost,
    /// File descriptors kept free of client connections, for admin connections, the
    /// store's files and accepting: client connections may take what the descriptor limit
    /// leaves after those open at start and this reserve.
    pub fd_reserve: usize,
    /// Where to serve the metrics (`GET /metrics`, OpenMetrics text); `None`: nowhere.
    pub metrics: Option<std::net::SocketAddr>,
    /// What SIGHUP does: reads the config again and returns the limits to run with from
    /// now on. `None`: SIGHUP is logged and ignored. Either way it never stops the server.
    pub reload: Option<Reload>,
}

/// What to run with after a reload: the core's limits and the mailbox share.
#[derive(Clone, Debug)]
pub struct Reloaded {
    /// `Config::limits`.
    pub limits: switchboard_proto::Limits,
    /// `Config::offline_share_percent`.
    pub offline_share_percent: u8,
}

/// The reload of SIGHUP: called on the runtime's loop; `None` when the config could not
/// be read (the callee logs why, and the server keeps what it runs with).
#[derive(Clone)]
pub struct Reload(pub std::sync::Arc<dyn Fn() -> Option<Reloaded> + Send + Sync>);

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reload(..)")
    }
}

impl Default for Options {
    /// A seed from the OS, 5 s of linger, 2 s of shutdown grace, the recommended hash cost,
    /// [`DEFAULT_FD_RESERVE`] descriptors in reserve.
    fn default() -> Self {
        Options {
            seed: None,
            linger: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(2),
            hash_cost: Cost::recommended(),
            fd_reserve: DEFAULT_FD_RESERVE,
            metrics: None,
            reload: None,
        }
    }
}

impl Options {
    /// SIGHUP: logs it, reads the config again with [`Options::reload`] and hands `pump`
    /// the new limits, which apply to the next connection and request. Without a reload,
    /// or when the config cannot be read (the reload logs why), nothing changes.
    pub fn apply_reload(&self, pump: &mut switchboard_proto::Pump) {
        tracing::info!("SIGHUP: reloading the config");
        match self.reload.as_ref().and_then(|reload| (reload.0)()) {
            Some(new) => pump.reconfigure(new.limits, new.offline_share_percent),
            None if self.reload.is_none() => tracing::info!("nothing to reload"),
            None => {}
        }
    }
}
