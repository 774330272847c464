//! Tunables of the server, with defaults that match PROTOCOLS.md.

use core::time::Duration;

/// Everything the server can be tuned by. `Config::default()` is what the binary runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Seed of the server's random generator; runtimes draw it from the OS and log it.
    pub seed: u64,
    /// Short name sent in greetings.
    pub server_name: String,
    /// Bytes a connection may have outstanding (sent but not yet reported written) before
    /// the server gives up on it as a reader that stopped reading and closes it. Keep it
    /// well above what one input can make the server send to one connection (a read's
    /// worth of messages relayed to it), or a reader that is merely slower than one read
    /// is closed.
    pub outbound_limit_bytes: usize,
    /// Most offline messages kept for one account; a sender past it is told the
    /// recipient's mailbox is full.
    pub offline_cap: usize,
    /// ws2017 settings.
    pub ws2017: Ws2017Config,
    /// A known bug to plant, so the simulator can prove its invariants catch it.
    #[cfg(feature = "planted-bugs")]
    pub planted_bug: Option<PlantedBug>,
}

/// Bugs the simulator's tests plant on purpose.
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Every 100th relayed direct message is acknowledged but never delivered.
    DropRelayedMessage,
    /// A created account is acknowledged without being persisted.
    UnpersistedAccount,
    /// Broadcasts reach connections in an order drawn once per process (from std's
    /// `RandomState`): two runs in one process agree, two processes do not.
    ProcessRandomBroadcastOrder,
    /// Listings (admin `user list`, `ban list`) are answered at once, before the pending
    /// changes they reveal are committed.
    EarlyListing,
}

/// Settings of the ws2017 protocol.
#[derive(Clone, Debug)]
pub struct Ws2017Config {
    /// Interval between the server's `cping`s (the original client gives up after 3 s without one).
    pub ping_interval: Duration,
    /// How long a `cping` may stay unanswered before the connection is closed.
    pub ping_timeout: Duration,
    /// Longest accepted line, without its line ending.
    pub max_line_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 0,
            server_name: "switchboard".to_owned(),
            outbound_limit_bytes: 1 << 20,
            offline_cap: 1000,
            ws2017: Ws2017Config::default(),
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
        }
    }
}

impl Default for Ws2017Config {
    fn default() -> Self {
        Ws2017Config {
            ping_interval: Duration::from_secs(2),
            ping_timeout: Duration::from_secs(15),
            max_line_bytes: 8 * 1024,
        }
    }
}
