//! The command line.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use switchboard_proto::{
    ArscConfig, Config, ImsConfig, Limits, OpcodeConfig, RateLimit, Ws2017Config,
};
use switchboard_store::credentials::Cost;

use crate::config::{ConfigError, File, FileOnly};

/// A chat server that joins several chat protocols into one network: it serves ws2017,
/// arsc, ims and opcode, and is the session manager behind a jabberd2 router for XMPP
/// (`--jabberd-router`).
///
/// With no subcommand, `serve` runs (with the flags given). `user`, `ban`, `unban` and
/// `kick` administer a running or a stopped server through its data directory.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The flags of `serve`, for when the subcommand is omitted.
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl Cli {
    /// The subcommand to run, `serve` when none was named.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

/// The subcommands.
// Parsed once per process: `serve`'s flags need no box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve ws2017, arsc, ims and opcode until Ctrl-C or SIGTERM (the default).
    Serve(ServeArgs),
    /// Add, delete, list accounts and set their passwords.
    ///
    /// Like every admin command, this works on a stopped server (directly on the store in
    /// --data-dir) and on a running one (through its admin socket in --data-dir).
    User {
        /// What to do.
        #[command(subcommand)]
        command: UserCommand,
        /// Where.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Ban an IP address or an account, or list the bans.
    Ban {
        /// What to ban.
        #[command(subcommand)]
        command: BanCommand,
        /// Where.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Lift a ban.
    Unban {
        /// What to unban.
        #[command(subcommand)]
        command: UnbanCommand,
        /// Where.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Answer jabberd2 c2s's authreg `pipe` module on stdin/stdout with the running
    /// server's accounts (c2s.xml `<authreg><pipe><exec>`, through a wrapper script that
    /// passes --data-dir: c2s gives no arguments).
    JabberdAuthreg(AuthregArgs),
    /// Close every session of a user, in its protocol's manner.
    Kick {
        /// The user's name.
        name: String,
        /// Where.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Check a config file (`serve --config FILE`) without starting: prints what it sets,
    /// or the first error, naming the key.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
    /// The running server's version, runtime, uptime, and connections and sessions per
    /// protocol (through its admin socket).
    Status {
        /// Where.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Copy the store to FILE, consistently, while the server runs or not (SQLite's
    /// online backup); see docs/operations.md for restoring it.
    Backup {
        /// The copy to write; it must not exist.
        file: PathBuf,
        /// Where.
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// `switchboard jabberd-authreg`
#[derive(Debug, Args)]
pub struct AuthregArgs {
    /// Data directory of the running server, whose admin socket answers every question
    /// (the store is never opened here). Give an absolute path: c2s's working directory
    /// is its own.
    #[arg(long, value_name = "DIR", default_value = "switchboard-data")]
    pub data_dir: PathBuf,

    /// Answer only for this realm (c2s's `<id realm='...'>`, by default its domain;
    /// `--realm ''` for an empty one) and `NO` for any other; any realm when omitted.
    #[arg(long, value_name = "REALM")]
    pub realm: Option<String>,

    /// Seconds to wait for the server before answering `NO` (all of c2s waits meanwhile);
    /// decimals allowed.
    #[arg(long, value_name = "SECS", default_value = "2")]
    pub timeout: Secs,
}

/// The flags every admin command takes.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Directory of the durable store, where a running server keeps its admin socket.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "switchboard-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Seconds to wait for a running server's answer; decimals allowed.
    #[arg(long, value_name = "SECS", default_value = "30", global = true)]
    pub timeout: Secs,

    /// The cost of password hashes made while no server runs (tests only: `cheap` makes
    /// hashes that are easy to guess).
    #[arg(long, value_enum, default_value_t = HashCost::Recommended, hide = true, global = true)]
    pub hash_cost: HashCost,
}

/// `switchboard user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Add {
        /// Its name (1-32 characters, no spaces).
        name: String,
        /// Its password.
        #[command(flatten)]
        password: NewPassword,
        /// 0 for a user, 1 or more for an operator.
        #[arg(long, value_name = "N", default_value_t = 0)]
        level: u8,
        /// Its email address.
        #[arg(long, value_name = "EMAIL")]
        email: Option<String>,
        /// Its gender, as the user gives it.
        #[arg(long, value_name = "G")]
        gender: Option<String>,
    },
    /// Delete an account and its offline messages (its sessions are closed).
    Del {
        /// The account.
        name: String,
    },
    /// List the accounts.
    List,
    /// Set an account's password: from --password, --password-stdin, or else the first
    /// line of standard input (no prompt).
    Passwd {
        /// The account.
        name: String,
        /// The new password.
        #[command(flatten)]
        password: PasswordSource,
    },
}

/// A new account's password: one of the two flags is required.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct NewPassword {
    /// The password (visible to other local users in the process list; prefer
    /// --password-stdin).
    #[arg(long, value_name = "PW")]
    pub password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

/// Where a changed password comes from; standard input when neither flag is given.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct PasswordSource {
    /// The password (visible to other local users in the process list; prefer
    /// --password-stdin).
    #[arg(long, value_name = "PW")]
    pub password: Option<String>,
    /// Read the password from the first line of standard input (also the default).
    #[arg(long)]
    pub password_stdin: bool,
}

/// `switchboard ban ...`
#[derive(Debug, Subcommand)]
pub enum BanCommand {
    /// Ban an IP address: its connections are closed and new ones refused.
    Ip {
        /// The address, IPv4 or IPv6.
        addr: IpAddr,
    },
    /// Ban an account: its sessions are closed and it cannot log in.
    User {
        /// The account.
        name: String,
    },
    /// List the banned addresses and accounts.
    List,
}

/// `switchboard unban ...`
#[derive(Debug, Subcommand)]
pub enum UnbanCommand {
    /// Lift the ban of an IP address.
    Ip {
        /// The address.
        addr: IpAddr,
    },
    /// Lift the ban of an account.
    User {
        /// The account.
        name: String,
    },
}

/// The argon2id cost of new password hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HashCost {
    /// argon2's recommended parameters: for real accounts.
    Recommended,
    /// The cheapest parameters: for tests only, never for real accounts.
    Cheap,
}

impl HashCost {
    /// The store's parameters for this choice.
    pub fn cost(self) -> Cost {
        match self {
            HashCost::Recommended => Cost::recommended(),
            HashCost::Cheap => Cost::cheap(),
        }
    }
}

/// The flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML config file (see `switchboard.example.toml`); flags given on the command
    /// line override its keys. `switchboard check-config FILE` checks one.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to log: a tracing filter such as `info` or `info,switchboard_smol=debug`
    /// (`RUST_LOG` when omitted, else `info`).
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,

    /// How log lines look: `human` (the default) or `json`, one object a line, for log
    /// collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Serve Prometheus/OpenMetrics metrics over HTTP on this address (`GET /metrics`);
    /// off unless set.
    #[arg(long, value_name = "ADDR", value_parser = listen_addr)]
    pub metrics: Option<SocketAddr>,

    /// Address of the ws2017 listener, `HOST:PORT`: an IP address or a host name (its
    /// first IPv4 address, else its first address); port 0 picks a free port (the log
    /// names it).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1030", value_parser = listen_addr)]
    pub ws2017: SocketAddr,

    /// Address of the arsc listener (ARSC's XML protocol), `HOST:PORT`, as `--ws2017`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1031", value_parser = listen_addr)]
    pub arsc: SocketAddr,

    /// Whether arsc lets an unregistered name connect as a guest (level 0).
    #[arg(long, value_name = "BOOL", default_value_t = ArscConfig::default().guests, action = clap::ArgAction::Set)]
    pub arsc_guests: bool,
    /// Address of the ims listener, `HOST:PORT`, as for `--ws2017`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1032", value_parser = listen_addr)]
    pub ims: SocketAddr,
    /// Address of the opcode listener, `HOST:PORT`, as for `--ws2017`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1033", value_parser = listen_addr)]
    pub opcode: SocketAddr,

    /// Largest media item an opcode `115 MessageSend` may carry, in bytes (decoded); a
    /// larger one is answered `211`. Keep it under a third of `--outbound-limit`: the `227`
    /// that returns it is up to three times as long, percent-encoded.
    #[arg(long, value_name = "BYTES", default_value_t = OpcodeConfig::default().max_media_bytes as u64)]
    pub opcode_max_media: u64,

    /// The jabberd2 router to serve as session manager behind (its component port,
    /// `HOST:PORT`, router.xml `local/port`, usually 5347): Switchboard dials it, logs in
    /// with `--jabberd-user` and the secret of `--jabberd-secret-file`, binds
    /// `--jabberd-domain`, and redials after a loss. Off without it.
    #[arg(long, value_name = "ADDR", value_parser = listen_addr)]
    pub jabberd_router: Option<SocketAddr>,

    /// The XMPP domain served: the name bound on the router, as clients write it after
    /// the `@` (c2s.xml `local/id`). Default: `localhost`.
    #[arg(long, value_name = "NAME")]
    pub jabberd_domain: Option<String>,

    /// The user name of the router link, as in the router's router-users.xml. Default:
    /// `jabberd`.
    #[arg(long, value_name = "NAME")]
    pub jabberd_user: Option<String>,

    /// A file holding the router link's secret (its first line), so that it shows in no
    /// process list or log. Required with `--jabberd-router`.
    #[arg(long, value_name = "FILE")]
    pub jabberd_secret_file: Option<PathBuf>,

    /// Directory of the durable store, its lock and the admin socket; created (mode 700)
    /// if missing. It must belong to this user and be writable by no one else. One server
    /// at a time may use it.
    #[arg(long, value_name = "DIR", default_value = "switchboard-data")]
    pub data_dir: PathBuf,

    /// The runtime that drives the server: `smol` (the default) or `mio` (one event
    /// loop thread, no async).
    #[arg(long, value_enum, default_value_t = RuntimeKind::Smol)]
    pub runtime: RuntimeKind,

    /// Seconds between the server's ws2017 `cping`s; decimals allowed.
    #[arg(long, value_name = "SECS", default_value_t = Secs(Ws2017Config::default().ping_interval))]
    pub ws2017_ping_interval: Secs,

    /// Seconds a ws2017 `cping` may go unanswered before the connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = Secs(Ws2017Config::default().ping_timeout))]
    pub ws2017_ping_timeout: Secs,

    /// Seconds an ims connection may go without sending a document (`<ALIVE/>` keeps it
    /// open) before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = Secs(ImsConfig::default().alive_timeout))]
    pub ims_alive_timeout: Secs,

    /// Longest ims document accepted, in bytes; a longer one is skipped unanswered.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = ImsConfig::default().max_document_bytes as u64,
        value_parser = clap::value_parser!(u64).range(64..),
    )]
    pub ims_max_document: u64,

    /// End each ims document the server sends with NUL instead of a newline (for
    /// XMLSocket-style clients).
    #[arg(long)]
    pub ims_nul: bool,

    /// Bytes a connection may have queued and not yet written before it is dropped as a
    /// reader that stopped reading.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = Config::default().outbound_limit_bytes as u64,
        value_parser = clap::value_parser!(u64).range(1..),
    )]
    pub outbound_limit: u64,

    /// Bytes queued and not yet written over all connections together; past it the
    /// connections with the largest queues are dropped first.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = Limits::default().outbound_budget_bytes as u64,
        value_parser = clap::value_parser!(u64).range(1..),
    )]
    pub outbound_budget: u64,

    /// Most client connections at once (the admin socket is not counted); more are
    /// refused with an error line.
    #[arg(
        long,
        value_name = "N",
        default_value_t = Limits::default().max_connections as u64,
        value_parser = clap::value_parser!(u64).range(1..),
    )]
    pub max_connections: u64,

    /// Most client connections at once from one IP address (an IPv6 /64 counts as one).
    #[arg(
        long,
        value_name = "N",
        default_value_t = Limits::default().max_connections_per_ip as u64,
        value_parser = clap::value_parser!(u64).range(1..),
    )]
    pub max_connections_per_ip: u64,

    /// Logins and name changes (ws2017 `uname`, arsc connect, ims LOGIN; each told to
    /// everyone) one connection may make: `PER_MINUTE/BURST`.
    #[arg(long, value_name = "RATE", default_value_t = Rate(Limits::default().broadcast_per_conn))]
    pub broadcast_rate_per_conn: Rate,

    /// Logins and name changes all connections from one IP address may make together.
    #[arg(long, value_name = "RATE", default_value_t = Rate(Limits::default().broadcast_per_ip))]
    pub broadcast_rate_per_ip: Rate,

    /// Messages one connection may leave for offline accounts (and ims FRIEND changes):
    /// `PER_MINUTE/BURST`.
    #[arg(long, value_name = "RATE", default_value_t = Rate(Limits::default().durable_per_conn))]
    pub durable_rate_per_conn: Rate,

    /// Messages all connections from one IP address may leave for offline accounts.
    #[arg(long, value_name = "RATE", default_value_t = Rate(Limits::default().durable_per_ip))]
    pub durable_rate_per_ip: Rate,

    /// Chat messages one connection may send: arsc room posts (each reaches the whole
    /// room), `/me`, `/msgops`, room changes and whispers, ims MESSAGEs and ws2017
    /// `chatm`/`chatw` to online users: `PER_MINUTE/BURST`. Raise it for a benchmark that
    /// posts at full speed.
    #[arg(long, value_name = "RATE", default_value_t = Rate(Limits::default().message_per_conn))]
    pub message_rate_per_conn: Rate,

    /// Chat messages all connections from one IP address may send together.
    #[arg(long, value_name = "RATE", default_value_t = Rate(Limits::default().message_per_ip))]
    pub message_rate_per_ip: Rate,

    /// Wrong passwords in a row that lock an account out for `limits.login_lockout` (300 s),
    /// on every protocol with passwords and through the admin socket's `user check` (the
    /// jabberd authreg helper).
    #[arg(
        long,
        value_name = "N",
        default_value_t = Limits::default().failed_logins_per_account
    )]
    pub failed_logins_per_account: u32,

    /// The share of an account's offline mailbox one sender may fill, in percent.
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = Config::default().offline_share_percent,
        value_parser = clap::value_parser!(u8).range(1..=100),
    )]
    pub offline_share_percent: u8,

    /// Seed of the server's random generator, for tests that need the same session ids on
    /// every run (anyone who knows it can predict them; the server warns); when omitted,
    /// 256 bits from the OS, never logged.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// The cost of the password hashes the server makes (tests only: `cheap` makes hashes
    /// that are easy to guess).
    #[arg(long, value_enum, default_value_t = HashCost::Recommended, hide = true)]
    pub hash_cost: HashCost,

    /// The ids of the flags given on the command line (set by [`parse`]), which override
    /// the config file.
    #[arg(skip)]
    pub given: BTreeSet<String>,

    /// What the config file sets that has no flag.
    #[arg(skip)]
    pub file_only: FileOnly,
}

impl ServeArgs {
    /// Reads the `--config` file, if any, into these flags (flags given on the command
    /// line win).
    ///
    /// # Errors
    /// The file's first problem, naming the key.
    pub fn load_config(&mut self) -> Result<(), ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(());
        };
        File::load(&path)?.apply(&path, self)
    }
}

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event: time, level, target, message, fields.
    Human,
    /// One JSON object per line, with the fields as keys.
    Json,
}

/// Parses the command line (exiting with its usage message when it is wrong), noting
/// which `serve` flags were given, so that they override the config file.
pub fn parse() -> Cli {
    try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// [`parse`] of `argv`.
///
/// # Errors
/// A usage error.
pub fn try_parse_from<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = Cli::command().try_get_matches_from(argv)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    let serve = matches.subcommand_matches("serve").unwrap_or(&matches);
    // Only the ids of `serve`'s own flags: asking about another's panics.
    let flags = ServeArgs::augment_args(clap::Command::new("serve"));
    let given: BTreeSet<String> = flags
        .get_arguments()
        .map(|arg| arg.get_id().as_str())
        .filter(|id| matches!(serve.try_contains_id(id), Ok(true)))
        .filter(|id| serve.value_source(id) == Some(ValueSource::CommandLine))
        .map(str::to_owned)
        .collect();
    match &mut cli.command {
        Some(Command::Serve(args)) => args.given = given,
        None => cli.serve.given = given,
        Some(_) => {}
    }
    Ok(cli)
}

/// A listen address: `IP:PORT`, or `HOST:PORT` resolved to the host's first IPv4
/// address (else its first address), so `localhost:1030` listens on 127.0.0.1.
pub fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("`{s}` is not HOST:PORT or IP:PORT ({e})"))?
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("`{s}` resolves to no address"))
}

/// The runtimes the binary can drive the server with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// smol (async-io): a driver task that reads and writes every connection, listener tasks.
    Smol,
    /// mio: one event loop thread with the pump, a committer thread and an effect pool.
    Mio,
}

impl RuntimeKind {
    /// The name used on the command line and in logs.
    pub const fn name(self) -> &'static str {
        match self {
            RuntimeKind::Smol => "smol",
            RuntimeKind::Mio => "mio",
        }
    }
}

/// A token bucket's rate, `PER_MINUTE/BURST`: `60/10` is ten at once, then one a second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate(pub RateLimit);

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let bad = || format!("`{s}` is not PER_MINUTE/BURST (such as 60/10)");
        let (per_minute, burst) = s.trim().split_once('/').ok_or_else(bad)?;
        let per_minute = per_minute.trim().parse().map_err(|_| bad())?;
        let burst = burst.trim().parse().map_err(|_| bad())?;
        if burst == 0 {
            return Err(format!("`{s}`: a burst of 0 refuses everything"));
        }
        Ok(Rate(RateLimit { per_minute, burst }))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.per_minute, self.0.burst)
    }
}

/// A duration given in seconds, decimals allowed: `2`, `0.25`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secs(pub Duration);

impl Secs {
    /// The shortest duration accepted: the core keeps time in milliseconds.
    const MIN: Duration = Duration::from_millis(1);
}

impl FromStr for Secs {
    type Err = String;

    fn from_str(s: &str) -> Result<Secs, String> {
        let secs: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a number of seconds"))?;
        let duration = Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("`{s}` is not a duration in seconds"))?;
        if duration < Secs::MIN {
            return Err(format!("`{s}` is shorter than a millisecond"));
        }
        Ok(Secs(duration))
    }
}

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        let args = std::iter::once("switchboard").chain(args.iter().copied());
        Cli::try_parse_from(args).map(Cli::into_command)
    }

    fn serve_args(args: &[&str]) -> ServeArgs {
        match parse(args).expect("valid arguments") {
            Command::Serve(args) => args,
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_arguments_serve_with_the_core_defaults() {
        let args = serve_args(&[]);
        assert_eq!(args.ws2017, "127.0.0.1:1030".parse().expect("address"));
        assert_eq!(args.arsc, "127.0.0.1:1031".parse().expect("address"));
        assert_eq!(args.arsc_guests, Config::default().arsc.guests);
        assert_eq!(args.opcode, "127.0.0.1:1033".parse().expect("address"));
        assert_eq!(
            args.opcode_max_media,
            Config::default().opcode.max_media_bytes as u64
        );
        assert_eq!(args.data_dir, PathBuf::from("switchboard-data"));
        assert_eq!(args.runtime, RuntimeKind::Smol);
        let core = Config::default();
        assert_eq!(args.ws2017_ping_interval.0, core.ws2017.ping_interval);
        assert_eq!(args.ws2017_ping_timeout.0, core.ws2017.ping_timeout);
        assert_eq!(args.ims, "127.0.0.1:1032".parse().expect("address"));
        assert_eq!(args.ims_alive_timeout.0, core.ims.alive_timeout);
        assert_eq!(args.ims_max_document, core.ims.max_document_bytes as u64);
        assert!(!args.ims_nul);
        assert_eq!(args.outbound_limit, core.outbound_limit_bytes as u64);
        assert_eq!(
            args.outbound_budget,
            core.limits.outbound_budget_bytes as u64
        );
        assert_eq!(args.max_connections, core.limits.max_connections as u64);
        assert_eq!(
            args.max_connections_per_ip,
            core.limits.max_connections_per_ip as u64
        );
        assert_eq!(args.seed, None);
        assert_eq!(args.hash_cost, HashCost::Recommended);
    }

    #[test]
    fn admin_commands_parse_with_their_data_dir_anywhere() {
        match parse(&[
            "user",
            "add",
            "bob",
            "--password",
            "pw",
            "--level",
            "2",
            "--data-dir",
            "/d",
        ]) {
            Ok(Command::User {
                command:
                    UserCommand::Add {
                        name,
                        password,
                        level,
                        email,
                        gender,
                    },
                admin,
            }) => {
                assert_eq!(name, "bob");
                assert_eq!(password.password.as_deref(), Some("pw"));
                assert!(!password.password_stdin);
                assert_eq!((level, email, gender), (2, None, None));
                assert_eq!(admin.data_dir, PathBuf::from("/d"));
            }
            other => panic!("{other:?}"),
        }
        match parse(&["--data-dir", "/d", "ban", "ip", "10.0.0.1"]) {
            Err(_) => {}
            Ok(other) => panic!("serve flags before a subcommand were accepted: {other:?}"),
        }
        match parse(&["kick", "bob"]) {
            Ok(Command::Kick { name, admin }) => {
                assert_eq!(name, "bob");
                assert_eq!(admin.data_dir, PathBuf::from("switchboard-data"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["user", "passwd", "bob"]),
            Ok(Command::User {
                command: UserCommand::Passwd { .. },
                ..
            })
        ));
    }

    #[test]
    fn bad_admin_commands_are_refused() {
        for bad in [
            &["user", "add", "bob"][..],
            &["user", "add", "bob", "--password", "x", "--password-stdin"],
            &["user", "add", "bob", "--password", "x", "--level", "256"],
            &[
                "user",
                "passwd",
                "bob",
                "--password",
                "x",
                "--password-stdin",
            ],
            &["ban", "ip", "not-an-ip"],
            &["ban", "list", "extra"],
            &["unban", "list"],
            &["kick"],
            &["user", "frob"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn serve_flags_work_with_and_without_the_subcommand() {
        for prefix in [&[][..], &["serve"][..]] {
            let mut argv = prefix.to_vec();
            argv.extend([
                "--ws2017",
                "127.0.0.1:0",
                "--data-dir",
                "/tmp/x",
                "--runtime",
                "smol",
                "--ws2017-ping-interval",
                "0.25",
                "--ws2017-ping-timeout",
                "1.5",
                "--ims",
                "127.0.0.1:0",
                "--ims-alive-timeout",
                "2",
                "--ims-nul",
                "--outbound-limit",
                "4096",
                "--seed",
                "42",
            ]);
            let args = serve_args(&argv);
            assert_eq!(args.ws2017.port(), 0);
            assert_eq!(args.data_dir, PathBuf::from("/tmp/x"));
            assert_eq!(args.ws2017_ping_interval.0, Duration::from_millis(250));
            assert_eq!(args.ws2017_ping_timeout.0, Duration::from_millis(1500));
            assert_eq!(args.ims.port(), 0);
            assert_eq!(args.ims_alive_timeout.0, Duration::from_secs(2));
            assert!(args.ims_nul);
            assert_eq!(args.outbound_limit, 4096);
            assert_eq!(args.seed, Some(42));
        }
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            &["--ws2017", "localhost"][..],
            &["--runtime", "tokio"],
            &["--ws2017-ping-interval", "0"],
            &["--ws2017-ping-interval", "0.0001"],
            &["--ws2017-ping-timeout", "-1"],
            &["--ws2017-ping-timeout", "soon"],
            &["--ws2017-ping-timeout", "NaN"],
            &["--ims", "localhost"],
            &["--ims-alive-timeout", "0"],
            &["--ims-max-document", "10"],
            &["--outbound-limit", "0"],
            &["--seed", "-1"],
            &["serve", "extra"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn listen_addresses_may_name_a_host() {
        let args = serve_args(&["--ws2017", "localhost:1030"]);
        assert_eq!(args.ws2017, "127.0.0.1:1030".parse().expect("address"));
        let args = serve_args(&["--ws2017", "[::1]:0"]);
        assert_eq!(args.ws2017, "[::1]:0".parse().expect("address"));
        for bad in ["localhost", "no-such-host.invalid:1030", "localhost:port"] {
            assert!(parse(&["--ws2017", bad]).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_help_says_what_is_served_today() {
        let mut command = Cli::command();
        for help in [command.render_help(), command.render_long_help()] {
            let help = help
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                help.starts_with(
                    "A chat server that joins several chat protocols into one network: \
                     it serves ws2017, arsc, ims and opcode, and is the session manager \
                     behind a jabberd2 router for XMPP"
                ),
                "{help}"
            );
            assert!(!help.contains("five"), "{help}");
        }
        let serve = command
            .find_subcommand_mut("serve")
            .expect("serve")
            .render_help()
            .to_string();
        assert!(
            serve.starts_with("Serve ws2017, arsc, ims and opcode until Ctrl-C or SIGTERM"),
            "{serve}"
        );
    }

    #[test]
    fn admin_commands_take_a_timeout() {
        match parse(&["ban", "list", "--timeout", "0.5"]) {
            Ok(Command::Ban { admin, .. }) => {
                assert_eq!(admin.timeout.0, Duration::from_millis(500))
            }
            other => panic!("{other:?}"),
        }
        match parse(&["kick", "bob"]) {
            Ok(Command::Kick { admin, .. }) => assert_eq!(admin.timeout.0, Duration::from_secs(30)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn runtime_names_match_the_command_line() {
        for kind in RuntimeKind::value_variants() {
            let value = kind.to_possible_value().expect("not hidden");
            assert_eq!(value.get_name(), kind.name());
        }
    }

    #[test]
    fn seconds_print_as_they_are_written() {
        assert_eq!(Secs(Duration::from_secs(2)).to_string(), "2");
        assert_eq!(Secs(Duration::from_millis(250)).to_string(), "0.25");
    }
}
