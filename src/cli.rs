//! The command line.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use switchboard_proto::{Config, Ws2017Config};

/// One chat server for five chat protocols, joined into one network.
///
/// With no subcommand, `serve` runs (with the flags given).
#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
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
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the chat protocols until Ctrl-C or SIGTERM (the default).
    Serve(ServeArgs),
}

/// The flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the ws2017 listener; port 0 picks a free port (the log names it).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1030")]
    pub ws2017: SocketAddr,

    /// Directory of the durable store; created if missing.
    #[arg(long, value_name = "DIR", default_value = "switchboard-data")]
    pub data_dir: PathBuf,

    /// The runtime that drives the server.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Smol)]
    pub runtime: RuntimeKind,

    /// Seconds between the server's ws2017 `cping`s; decimals allowed.
    #[arg(long, value_name = "SECS", default_value_t = Secs(Ws2017Config::default().ping_interval))]
    pub ws2017_ping_interval: Secs,

    /// Seconds a ws2017 `cping` may go unanswered before the connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = Secs(Ws2017Config::default().ping_timeout))]
    pub ws2017_ping_timeout: Secs,

    /// Bytes a connection may have queued and not yet written before it is dropped as a
    /// reader that stopped reading.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = Config::default().outbound_limit_bytes as u64,
        value_parser = clap::value_parser!(u64).range(1..),
    )]
    pub outbound_limit: u64,

    /// Seed of the server's random generator, to reproduce a run; drawn from the OS (and
    /// logged) when omitted.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// The runtimes the binary can drive the server with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// smol (async-io): a driver task plus a reader and a writer task per connection.
    Smol,
}

impl RuntimeKind {
    /// The name used on the command line and in logs.
    pub const fn name(self) -> &'static str {
        match self {
            RuntimeKind::Smol => "smol",
        }
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
        assert_eq!(args.data_dir, PathBuf::from("switchboard-data"));
        assert_eq!(args.runtime, RuntimeKind::Smol);
        let core = Config::default();
        assert_eq!(args.ws2017_ping_interval.0, core.ws2017.ping_interval);
        assert_eq!(args.ws2017_ping_timeout.0, core.ws2017.ping_timeout);
        assert_eq!(args.outbound_limit, core.outbound_limit_bytes as u64);
        assert_eq!(args.seed, None);
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
            &["--outbound-limit", "0"],
            &["--seed", "-1"],
            &["serve", "extra"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
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
