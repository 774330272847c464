//! `switchboard serve`: the flags turned into the core's config and a runtime.

use switchboard_proto::{Config, Limits, Protocol, Ws2017Config};
use tracing::info;

use crate::cli::{RuntimeKind, ServeArgs};

/// Serves until Ctrl-C or SIGTERM.
///
/// # Errors
/// When the data directory is in use or its store cannot be opened, a listener cannot be
/// bound, the signals cannot be watched, or the store was failing at shutdown.
pub fn serve(args: ServeArgs) -> Result<(), switchboard_smol::Error> {
    info!(data_dir = %args.data_dir.display(), runtime = args.runtime.name(), "starting");
    let config = config(&args);
    let listeners = vec![(Protocol::Ws2017, args.ws2017)];
    match args.runtime {
        RuntimeKind::Smol => {
            let options = switchboard_smol::Options {
                seed: args.seed,
                hash_cost: args.hash_cost.cost(),
                ..switchboard_smol::Options::default()
            };
            switchboard_smol::serve_with(config, &args.data_dir, listeners, options)
        }
    }
}

/// The core's config: its defaults, with what the flags set.
fn config(args: &ServeArgs) -> Config {
    let defaults = Config::default();
    Config {
        outbound_limit_bytes: usize::try_from(args.outbound_limit).unwrap_or(usize::MAX),
        limits: Limits {
            outbound_budget_bytes: usize::try_from(args.outbound_budget).unwrap_or(usize::MAX),
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            max_connections_per_ip: usize::try_from(args.max_connections_per_ip)
                .unwrap_or(usize::MAX),
            ..defaults.limits.clone()
        },
        ws2017: Ws2017Config {
            ping_interval: args.ws2017_ping_interval.0,
            ping_timeout: args.ws2017_ping_timeout.0,
            ..defaults.ws2017
        },
        ..defaults
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    #[test]
    fn the_limit_flags_reach_the_core() {
        let argv = [
            "switchboard",
            "--max-connections",
            "5",
            "--max-connections-per-ip",
            "2",
            "--outbound-budget",
            "100000",
        ];
        let Ok(Command::Serve(args)) = Cli::try_parse_from(argv).map(Cli::into_command) else {
            panic!("serve flags refused");
        };
        let limits = super::config(&args).limits;
        assert_eq!(limits.max_connections, 5);
        assert_eq!(limits.max_connections_per_ip, 2);
        assert_eq!(limits.outbound_budget_bytes, 100_000);
        for zero in ["--max-connections", "--max-connections-per-ip"] {
            assert!(Cli::try_parse_from(["switchboard", zero, "0"]).is_err());
        }
    }
}
