//! Tunables of the server, with defaults that match PROTOCOLS.md.

use core::time::Duration;

use crate::rng::Seed;

/// Everything the server can be tuned by. `Config::default()` is what the binary runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Seed of the server's random generator (session ids, hash keys): runtimes draw 256
    /// bits from the OS unless given a number to reproduce a run.
    pub seed: Seed,
    /// Short name sent in greetings.
    pub server_name: String,
    /// Bytes a connection may have outstanding (sent but not yet reported written) before
    /// the server gives up on it as a reader that stopped reading and closes it. Keep it
    /// well above what one input can make the server send to one connection (a read's
    /// worth of messages relayed to it), or a reader that is merely slower than one read
    /// is closed.
    ///
    /// A request takes effect only if its reply fits: before a request changes anything
    /// (stores or relays a message, sets a name), the connection must have room under
    /// this limit, and the budget of all connections, for the reply it is about to get.
    /// Without room the connection is closed as a slow reader there, and that request
    /// and the rest of its input are dropped unhandled; otherwise its acknowledgement
    /// would be dropped by the close, and the client, never told, would send it again
    /// after reconnecting (a message stored twice). Replies of requests that change
    /// nothing (a user list) may still overflow the limit and close the connection.
    pub outbound_limit_bytes: usize,
    /// Most offline messages kept for one account; a sender past it is told the
    /// recipient's mailbox is full.
    pub offline_cap: usize,
    /// The share of an account's offline mailbox one sender may fill, in percent of
    /// `offline_cap` (at least one message), so one sender cannot lock out the rest.
    pub offline_share_percent: u8,
    /// Connection caps, request rates and the memory of all outbound queues together.
    pub limits: Limits,
    /// ws2017 settings.
    pub ws2017: Ws2017Config,
    /// arsc settings.
    pub arsc: ArscConfig,
    /// ims settings.
    pub ims: ImsConfig,
    /// opcode settings.
    pub opcode: OpcodeConfig,
    /// jabberd settings: the router link, when Switchboard is a jabberd2 session manager.
    pub jabberd: JabberdConfig,
    /// The server's version, as the admin `status` reports it.
    pub version: String,
    /// The runtime driving the server (`smol`, `mio`), as the admin `status` reports it.
    pub runtime: String,
    /// A known bug to plant, so the simulator can prove its invariants catch it.
    #[cfg(feature = "planted-bugs")]
    pub planted_bug: Option<PlantedBug>,
}

impl Config {
    /// How many of one account's offline messages may come from one sender.
    pub fn offline_share(&self) -> usize {
        (self
            .offline_cap
            .saturating_mul(usize::from(self.offline_share_percent))
            / 100)
            .max(1)
    }
}

/// A token bucket's parameters: `burst` requests at once, refilled at `per_minute`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens added a minute.
    pub per_minute: u32,
    /// Most tokens held; a bucket starts full.
    pub burst: u32,
}

/// What one peer, and all peers together, may make the server do. Rates are kept per
/// connection and per address (an IPv4 address, an IPv6 /64), for two kinds of request:
/// those broadcast to everyone (a login, a rename) and those that make durable work (a
/// message stored for an offline account). The defaults let a real user, or a room of
/// them behind one NAT address, do everything at once, and hold a flood to a trickle.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Broadcast requests per connection (ws2017 `uname`, first or rename; an arsc
    /// connect; an ims LOGIN).
    pub broadcast_per_conn: RateLimit,
    /// Broadcast requests per address, over all its connections.
    pub broadcast_per_ip: RateLimit,
    /// Durable requests per connection (a direct message stored for an offline account,
    /// on any protocol; an ims FRIEND change).
    pub durable_per_conn: RateLimit,
    /// Durable requests per address.
    pub durable_per_ip: RateLimit,
    /// Chat messages per connection: a post to a room (arsc text, `/me`, `/msgops`,
    /// `/opcall`), which reaches every member, and a direct message to an online user
    /// (arsc `/msg`, ims MESSAGE). A message stored for an offline account is a durable
    /// request instead.
    pub message_per_conn: RateLimit,
    /// Chat messages per address.
    pub message_per_ip: RateLimit,
    /// Most addresses whose buckets are kept; buckets that have refilled are dropped to
    /// make room, and addresses that find no room share one bucket. Also bounds the
    /// accounts whose failed-login buckets are kept.
    pub max_ip_buckets: usize,
    /// Most network connections at once (the admin socket does not count); more are
    /// refused with the protocol's error.
    pub max_connections: usize,
    /// Most network connections from one address at once.
    pub max_connections_per_ip: usize,
    /// Most bytes queued and not yet written over all connections together; past it the
    /// connections with the largest queues are closed as slow readers until a quarter
    /// of it is free again.
    pub outbound_budget_bytes: usize,
    /// A network connection that has not logged in this long after it was accepted is
    /// closed (`CloseReason::LoginTimeout`): ws2017 `uname`, an arsc connect (or a request
    /// with a known sid), an ims LOGIN, an opcode login or registration.
    pub login_timeout: Duration,
    /// Failed password checks of one account, each within `login_lockout` of the last,
    /// after which its logins are refused for `login_lockout` (before any hash is
    /// computed), whatever the password and wherever they come from.
    pub failed_logins_per_account: u32,
    /// Failed password checks from one address (of any accounts) after which its logins
    /// are refused the same way.
    pub failed_logins_per_ip: u32,
    /// How long a run of failures is remembered, and how long logins are refused after it.
    pub login_lockout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            broadcast_per_conn: RateLimit {
                per_minute: 60,
                burst: 10,
            },
            broadcast_per_ip: RateLimit {
                per_minute: 600,
                burst: 100,
            },
            durable_per_conn: RateLimit {
                per_minute: 120,
                burst: 20,
            },
            durable_per_ip: RateLimit {
                per_minute: 600,
                burst: 100,
            },
            // Two a second and a burst of 20: more than a person types or pastes, and
            // a flooder's posts reach the room at a trickle. A benchmark raises it.
            message_per_conn: RateLimit {
                per_minute: 120,
                burst: 20,
            },
            message_per_ip: RateLimit {
                per_minute: 600,
                burst: 100,
            },
            // Five wrong passwords at once, then one every ten seconds: a person who
            // mistypes is not held up, a guesser gets 360 tries an hour per account.
            max_ip_buckets: 65_536,
            max_connections: 10_000,
            max_connections_per_ip: 64,
            outbound_budget_bytes: 256 << 20,
            login_timeout: Duration::from_secs(60),
            failed_logins_per_account: 5,
            failed_logins_per_ip: 20,
            login_lockout: Duration::from_secs(300),
        }
    }
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
    /// An arsc `/msg` is delivered, and its text is also said to the sender's room.
    WhisperToRoom,
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
            seed: Seed::default(),
            server_name: "switchboard".to_owned(),
            outbound_limit_bytes: 1 << 20,
            offline_cap: 1000,
            offline_share_percent: 10,
            limits: Limits::default(),
            ws2017: Ws2017Config::default(),
            arsc: ArscConfig::default(),
            ims: ImsConfig::default(),
            opcode: OpcodeConfig::default(),
            jabberd: JabberdConfig::default(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            runtime: "none".to_owned(),
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

/// Settings of the arsc protocol.
#[derive(Clone, Debug)]
pub struct ArscConfig {
    /// Whether an unregistered name may connect as a guest (level 0).
    pub guests: bool,
    /// The chat's title, in the welcome whisper `Welcome to {title}!`.
    pub title: String,
    /// The server's time zone for `sendtime` (`HH:MM`), in minutes east of UTC.
    pub utc_offset_minutes: i32,
    /// Longest accepted `<arscrequest>` document, in bytes.
    pub max_request_bytes: usize,
    /// The room of a `connect` that names none.
    pub default_room: String,
    /// Most rooms at once (a room exists while it has members): a connect or `/room`
    /// into a new room past it is refused.
    pub max_rooms: usize,
    /// Most sessions in one room: a connect or `/room` into a full room is refused.
    pub max_room_members: usize,
}

impl Default for ArscConfig {
    fn default() -> Self {
        ArscConfig {
            guests: true,
            title: "Switchboard".to_owned(),
            utc_offset_minutes: 0,
            max_request_bytes: 64 * 1024,
            default_room: "lounge".to_owned(),
            max_rooms: 1_000,
            max_room_members: 1_000,
        }
    }
}
/// Settings of the ims protocol.
#[derive(Clone, Debug)]
pub struct ImsConfig {
    /// How long a connection may go without sending a document (ALIVE keeps it open)
    /// before it is closed; the seed's 15 s.
    pub alive_timeout: Duration,
    /// Longest accepted document, in bytes; a longer one is skipped unanswered.
    pub max_document_bytes: usize,
    /// What ends each document the server sends: `\n`, or NUL for XMLSocket clients.
    pub terminator: ImsTerminator,
}

impl Default for ImsConfig {
    fn default() -> Self {
        ImsConfig {
            alive_timeout: Duration::from_secs(15),
            max_document_bytes: 64 * 1024,
            terminator: Default::default(),
        }
    }
}

/// What ends each ims document the server sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImsTerminator {
    /// `\n` (the default).
    #[default]
    Newline,
    /// NUL, for XMLSocket-style clients.
    Nul,
}
/// Settings of the opcode protocol.
#[derive(Clone, Debug)]
pub struct OpcodeConfig {
    /// Longest accepted line without media, without its line ending; longer gets `211`.
    pub max_line_bytes: usize,
    /// Largest media item (decoded bytes) a `115 MessageSend` may carry; larger gets `211`.
    /// A line with media may be up to three times this (percent-encoded), and so may the
    /// `227` answering it: keep it under a third of `outbound_limit_bytes`.
    pub max_media_bytes: usize,
    /// Most bytes of media one account may have stored at once, over all its chats; an
    /// item that would pass it gets `211`. Items count until removed with their chat.
    pub max_media_bytes_per_user: u64,
}

impl Default for OpcodeConfig {
    fn default() -> Self {
        OpcodeConfig {
            max_line_bytes: 64 * 1024,
            max_media_bytes: 256 * 1024,
            max_media_bytes_per_user: 64 * 1024 * 1024,
        }
    }
}

/// Settings of the jabberd protocol: the link to a jabberd2 router, on which Switchboard
/// is the session manager of `domain` for the clients of jabberd2's c2s.
#[derive(Clone, Debug)]
pub struct JabberdConfig {
    /// The router's component port; `None` (the default) keeps no link.
    pub router: Option<core::net::SocketAddr>,
    /// The domain served: the name bound on the router, which XMPP clients put in their
    /// stream's `to` and JIDs.
    pub domain: String,
    /// The user name in the router's router-users.xml.
    pub user: String,
    /// Its secret (never shown in logs: `Secret`'s Debug hides it).
    pub secret: crate::secret::Secret,
    /// Longest element accepted from the router (a `route` with its stanza), in bytes;
    /// a longer one is skipped. c2s's own default stanza limit is 64 KiB.
    pub max_stanza_bytes: usize,
    /// Most XMPP sessions at once; a `start` past it fails (the client's bind gets
    /// internal-server-error).
    pub max_sessions: usize,
    /// The first wait before dialing the router again after a failed or lost link; it
    /// doubles with each failure up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// The longest wait between dials.
    pub reconnect_max: Duration,
}

impl Default for JabberdConfig {
    fn default() -> Self {
        JabberdConfig {
            router: None,
            domain: "localhost".to_owned(),
            user: "jabberd".to_owned(),
            secret: crate::secret::Secret(String::new()),
            max_stanza_bytes: 128 * 1024,
            max_sessions: 10_000,
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
        }
    }
}
