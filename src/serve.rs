//! `switchboard serve`: the flags turned into the core's config and a runtime.

use switchboard_proto::{
    ArscConfig, Config, ImsConfig, ImsTerminator, JabberdConfig, Limits, OpcodeConfig, Protocol,
    Secret, Ws2017Config,
};
use tracing::{info, warn};

use crate::cli::{RuntimeKind, ServeArgs};

/// Serves until Ctrl-C or SIGTERM.
///
/// # Errors
/// When the data directory is in use or its store cannot be opened, a listener cannot be
/// bound, the signals cannot be watched, or the store was failing at shutdown.
pub fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    info!(data_dir = %args.data_dir.display(), runtime = args.runtime.name(), "starting");
    if let Some(path) = &args.config {
        info!(config = %path.display(), "config file read");
    }
    let mut config = config(&args);
    if let Some(router) = config.jabberd.router {
        config.jabberd.secret = jabberd_secret(&args)?;
        // The secret is never logged.
        info!(%router, domain = %config.jabberd.domain, user = %config.jabberd.user, "jabberd: session manager behind this router");
    }
    let listeners = vec![
        (Protocol::Ws2017, args.ws2017),
        (Protocol::Arsc, args.arsc),
        (Protocol::Ims, args.ims),
        (Protocol::Opcode, args.opcode),
    ];
    let reload = Some(reloader(&args, &config));
    match args.runtime {
        RuntimeKind::Smol => {
            let options = switchboard_smol::Options {
                seed: args.seed,
                hash_cost: args.hash_cost.cost(),
                metrics: args.metrics,
                reload,
                ..switchboard_smol::Options::default()
            };
            Ok(switchboard_smol::serve_with(
                config,
                &args.data_dir,
                listeners,
                options,
            )?)
        }
        RuntimeKind::Mio => {
            let options = switchboard_mio::Options {
                seed: args.seed,
                hash_cost: args.hash_cost.cost(),
                metrics: args.metrics,
                reload,
                ..switchboard_mio::Options::default()
            };
            Ok(switchboard_mio::serve_with(
                config,
                &args.data_dir,
                listeners,
                options,
            )?)
        }
    }
}

/// What a SIGHUP may change without a restart, as `(key, value)` pairs in the config
/// file's names, for the log line that says what changed.
fn reloadable(config: &Config, log: &str) -> Vec<(&'static str, String)> {
    let l = &config.limits;
    let rate = |r: &switchboard_proto::RateLimit| format!("{}/{}", r.per_minute, r.burst);
    vec![
        ("limits.max_connections", l.max_connections.to_string()),
        (
            "limits.max_connections_per_ip",
            l.max_connections_per_ip.to_string(),
        ),
        (
            "limits.outbound_budget_bytes",
            l.outbound_budget_bytes.to_string(),
        ),
        ("limits.broadcast_per_conn", rate(&l.broadcast_per_conn)),
        ("limits.broadcast_per_ip", rate(&l.broadcast_per_ip)),
        ("limits.durable_per_conn", rate(&l.durable_per_conn)),
        ("limits.durable_per_ip", rate(&l.durable_per_ip)),
        ("limits.message_per_conn", rate(&l.message_per_conn)),
        ("limits.message_per_ip", rate(&l.message_per_ip)),
        ("limits.max_ip_buckets", l.max_ip_buckets.to_string()),
        (
            "limits.failed_logins_per_account",
            l.failed_logins_per_account.to_string(),
        ),
        (
            "limits.failed_logins_per_ip",
            l.failed_logins_per_ip.to_string(),
        ),
        ("limits.login_lockout", format!("{:?}", l.login_lockout)),
        ("limits.login_timeout", format!("{:?}", l.login_timeout)),
        (
            "offline_share_percent",
            config.offline_share_percent.to_string(),
        ),
        ("log.filter", log.to_owned()),
    ]
}

/// The log filter in force: `--log` or the file's, else `RUST_LOG`, else `info`.
fn log_filter(log: Option<String>) -> String {
    log.or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned())
}

/// What `args` set that a reload cannot change, as text to compare: the listeners, the
/// data directory, the runtime, the metrics address and every part of the core's config
/// but what [`reloadable`] lists (and the seed, drawn at start, and the jabberd secret,
/// read from its file).
fn restart_only(args: &ServeArgs) -> String {
    let defaults = Config::default();
    let mut fixed = config_of(args);
    fixed.limits = defaults.limits;
    fixed.offline_share_percent = defaults.offline_share_percent;
    fixed.seed = defaults.seed;
    fixed.jabberd.secret = defaults.jabberd.secret;
    let listeners = [args.ws2017, args.arsc, args.ims, args.opcode];
    format!(
        "{fixed:?} {listeners:?} {:?} {} {:?}",
        args.data_dir,
        args.runtime.name(),
        args.metrics
    )
}

/// SIGHUP's reload: the command line is read again, with its config file, exactly as at
/// start (flags still override the file); the limits, the mailbox share and the log
/// filter take the new values, and one line says what changed. A change to anything
/// else (ports, timeouts of the protocols, the arsc title, ...) is kept for the next
/// start, with a warning saying so. A file that no longer parses changes nothing (an
/// error line says why).
fn reloader(args: &ServeArgs, config: &Config) -> switchboard_store::options::Reload {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let running = std::sync::Mutex::new(reloadable(config, &log_filter(args.log.clone())));
    let started = restart_only(args);
    switchboard_store::options::Reload(std::sync::Arc::new(move || {
        let mut args = match crate::cli::try_parse_from(argv.clone()).map(|c| c.into_command()) {
            Ok(crate::cli::Command::Serve(args)) => args,
            _ => return None,
        };
        if let Err(e) = args.load_config() {
            tracing::error!(
                error = %switchboard_store::start::error_chain(&e),
                "config reload failed; the server keeps running with what it had"
            );
            return None;
        }
        let new = config_of(&args);
        if restart_only(&args) != started {
            warn!("config reloaded: settings that apply only at start differ from the running server's; restart it to apply them");
        }
        let filter = log_filter(args.log.clone());
        let values = reloadable(&new, &filter);
        let mut running = running.lock().ok()?;
        let changed: Vec<String> = (values.iter().zip(running.iter()))
            .filter(|(now, before)| now.1 != before.1)
            .map(|(now, before)| format!("{}: {} -> {}", now.0, before.1, now.1))
            .collect();
        if changed.iter().any(|c| c.starts_with("log.filter")) {
            if let Some(handle) = crate::LOG_FILTER.get() {
                if let Err(e) = handle.reload(tracing_subscriber::EnvFilter::new(&filter)) {
                    warn!(error = %e, "the log filter could not be replaced");
                }
            }
        }
        match changed.is_empty() {
            true => info!("config reloaded; nothing changed"),
            false => info!(changed = %changed.join(", "), "config reloaded"),
        }
        *running = values;
        Some(switchboard_store::options::Reloaded {
            limits: new.limits,
            offline_share_percent: new.offline_share_percent,
        })
    }))
}

/// The core's config: its defaults, with what the flags (and the config file) set.
// Every `Limits` field is set today; the update keeps a field added later at its default.
#[allow(clippy::needless_update)]
pub fn config(args: &ServeArgs) -> Config {
    config_of(args)
}

/// [`config`], for the reload.
#[allow(clippy::needless_update)]
fn config_of(args: &ServeArgs) -> Config {
    let defaults = Config::default();
    let file = &args.file_only;
    Config {
        outbound_limit_bytes: usize::try_from(args.outbound_limit).unwrap_or(usize::MAX),
        limits: Limits {
            outbound_budget_bytes: usize::try_from(args.outbound_budget).unwrap_or(usize::MAX),
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            max_connections_per_ip: usize::try_from(args.max_connections_per_ip)
                .unwrap_or(usize::MAX),
            broadcast_per_conn: args.broadcast_rate_per_conn.0,
            broadcast_per_ip: args.broadcast_rate_per_ip.0,
            durable_per_conn: args.durable_rate_per_conn.0,
            durable_per_ip: args.durable_rate_per_ip.0,
            message_per_conn: args.message_rate_per_conn.0,
            message_per_ip: args.message_rate_per_ip.0,
            failed_logins_per_account: args.failed_logins_per_account,
            max_ip_buckets: file
                .max_ip_buckets
                .unwrap_or(defaults.limits.max_ip_buckets),
            login_timeout: file.login_timeout.unwrap_or(defaults.limits.login_timeout),
            failed_logins_per_ip: file
                .failed_logins_per_ip
                .unwrap_or(defaults.limits.failed_logins_per_ip),
            login_lockout: file.login_lockout.unwrap_or(defaults.limits.login_lockout),
            ..defaults.limits.clone()
        },
        offline_cap: file.offline_cap.unwrap_or(defaults.offline_cap),
        offline_share_percent: args.offline_share_percent,
        ws2017: Ws2017Config {
            ping_interval: args.ws2017_ping_interval.0,
            ping_timeout: args.ws2017_ping_timeout.0,
            max_line_bytes: file
                .ws2017_max_line_bytes
                .unwrap_or(defaults.ws2017.max_line_bytes),
        },
        arsc: ArscConfig {
            guests: args.arsc_guests,
            max_request_bytes: file
                .arsc_max_request_bytes
                .unwrap_or(defaults.arsc.max_request_bytes),
            title: file
                .arsc_title
                .clone()
                .unwrap_or(defaults.arsc.title.clone()),
            default_room: (file.arsc_default_room.clone())
                .unwrap_or(defaults.arsc.default_room.clone()),
            utc_offset_minutes: file
                .arsc_utc_offset_minutes
                .unwrap_or(defaults.arsc.utc_offset_minutes),
            max_rooms: file.arsc_max_rooms.unwrap_or(defaults.arsc.max_rooms),
            max_room_members: file
                .arsc_max_room_members
                .unwrap_or(defaults.arsc.max_room_members),
        },
        ims: ImsConfig {
            alive_timeout: args.ims_alive_timeout.0,
            max_document_bytes: usize::try_from(args.ims_max_document).unwrap_or(usize::MAX),
            terminator: match args.ims_nul {
                true => ImsTerminator::Nul,
                false => ImsTerminator::Newline,
            },
        },
        version: env!("CARGO_PKG_VERSION").to_owned(),
        runtime: args.runtime.name().to_owned(),
        opcode: OpcodeConfig {
            max_media_bytes: usize::try_from(args.opcode_max_media).unwrap_or(usize::MAX),
            max_line_bytes: file
                .opcode_max_line_bytes
                .unwrap_or(defaults.opcode.max_line_bytes),
            max_media_bytes_per_user: file
                .opcode_max_media_bytes_per_user
                .unwrap_or(defaults.opcode.max_media_bytes_per_user),
        },
        // Flags win over the config file's `[jabberd]`.
        jabberd: JabberdConfig {
            router: args.jabberd_router.or(file.jabberd.router),
            domain: (args.jabberd_domain.clone())
                .or_else(|| file.jabberd.domain.clone())
                .unwrap_or_else(|| defaults.jabberd.domain.clone()),
            user: (args.jabberd_user.clone())
                .or_else(|| file.jabberd.user.clone())
                .unwrap_or_else(|| defaults.jabberd.user.clone()),
            ..defaults.jabberd.clone()
        },
        ..defaults
    }
}

/// The router link's secret: the first line of `--jabberd-secret-file` (or the config
/// file's `jabberd.secret_file`).
pub fn jabberd_secret(args: &ServeArgs) -> Result<Secret, Box<dyn std::error::Error>> {
    let path = (args.jabberd_secret_file.as_ref()).or(args.file_only.jabberd.secret_file.as_ref());
    let Some(path) = path else {
        return Err(
            "--jabberd-router needs --jabberd-secret-file (the router-users.xml secret)".into(),
        );
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --jabberd-secret-file {}: {e}", path.display()))?;
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "the jabberd secret file is readable by others: chmod 600 it"
            );
        }
    }
    let secret = text.lines().next().unwrap_or("").to_owned();
    if secret.is_empty() {
        return Err(format!("--jabberd-secret-file {} is empty", path.display()).into());
    }
    Ok(Secret(secret))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use switchboard_proto::{Limits, RateLimit};

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
            "--durable-rate-per-ip",
            "6000/1000",
            "--broadcast-rate-per-conn",
            "0/3",
            "--offline-share-percent",
            "100",
            "--opcode-max-media",
            "1000",
            "--message-rate-per-conn",
            "60000/1000",
        ];
        let Ok(Command::Serve(args)) = Cli::try_parse_from(argv).map(Cli::into_command) else {
            panic!("serve flags refused");
        };
        let limits = super::config(&args).limits;
        assert_eq!(limits.max_connections, 5);
        assert_eq!(limits.max_connections_per_ip, 2);
        assert_eq!(limits.outbound_budget_bytes, 100_000);
        let rate = |per_minute, burst| RateLimit { per_minute, burst };
        assert_eq!(limits.durable_per_ip, rate(6000, 1000));
        assert_eq!(limits.broadcast_per_conn, rate(0, 3));
        assert_eq!(limits.broadcast_per_ip, Limits::default().broadcast_per_ip);
        assert_eq!(limits.message_per_conn, rate(60000, 1000));
        assert_eq!(limits.message_per_ip, Limits::default().message_per_ip);
        assert_eq!(super::config(&args).offline_share_percent, 100);
        assert_eq!(super::config(&args).opcode.max_media_bytes, 1000);
        let ims = [
            "switchboard",
            "--ims-alive-timeout",
            "2.5",
            "--ims-max-document",
            "1000",
            "--ims-nul",
        ];
        let Ok(Command::Serve(args)) = Cli::try_parse_from(ims).map(Cli::into_command) else {
            panic!("ims flags refused");
        };
        let ims = super::config(&args).ims;
        assert_eq!(ims.alive_timeout, std::time::Duration::from_millis(2500));
        assert_eq!(ims.max_document_bytes, 1000);
        assert_eq!(ims.terminator, switchboard_proto::ImsTerminator::Nul);
        let dir = std::env::temp_dir().join(format!("sb-jabberd-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("secret");
        std::fs::write(&file, "s3cret\nignored\n").expect("secret file");
        let jabberd = [
            "switchboard",
            "--jabberd-router",
            "127.0.0.1:5347",
            "--jabberd-domain",
            "example.org",
            "--jabberd-user",
            "sm",
            "--jabberd-secret-file",
            file.to_str().expect("utf-8 path"),
        ];
        let Ok(Command::Serve(args)) = Cli::try_parse_from(jabberd).map(Cli::into_command) else {
            panic!("jabberd flags refused");
        };
        let config = super::config(&args).jabberd;
        assert_eq!(config.router, Some("127.0.0.1:5347".parse().expect("addr")));
        assert_eq!(
            (config.domain.as_str(), config.user.as_str()),
            ("example.org", "sm")
        );
        let secret = super::jabberd_secret(&args).expect("read");
        assert_eq!(secret.0, "s3cret", "the first line");
        assert!(
            !format!("{args:?}{secret:?}").contains("s3cret"),
            "never shown"
        );
        // The config file's [jabberd] section, with a flag winning over its domain.
        let toml = dir.join("switchboard.toml");
        std::fs::write(
            &toml,
            format!(
                "[jabberd]\nrouter = \"127.0.0.1:5348\"\ndomain = \"from-file.org\"\nuser = \"fileuser\"\nsecret_file = \"{}\"\n",
                file.display()
            ),
        )
        .expect("config file");
        let argv = [
            "switchboard",
            "--config",
            toml.to_str().expect("utf-8 path"),
            "--jabberd-domain",
            "flag.org",
        ];
        let Ok(Command::Serve(mut args)) = Cli::try_parse_from(argv).map(Cli::into_command) else {
            panic!("--config refused");
        };
        args.load_config().expect("a valid file");
        let config = super::config(&args).jabberd;
        assert_eq!(config.router, Some("127.0.0.1:5348".parse().expect("addr")));
        assert_eq!(
            (config.domain.as_str(), config.user.as_str()),
            ("flag.org", "fileuser")
        );
        assert_eq!(super::jabberd_secret(&args).expect("read").0, "s3cret");
        std::fs::remove_dir_all(&dir).ok();
        for (flag, bad) in [
            ("--max-connections", "0"),
            ("--max-connections-per-ip", "0"),
            ("--durable-rate-per-conn", "10"),
            ("--durable-rate-per-conn", "10/0"),
            ("--broadcast-rate-per-ip", "-1/5"),
            ("--message-rate-per-ip", "60"),
            ("--offline-share-percent", "0"),
            ("--offline-share-percent", "101"),
        ] {
            assert!(
                Cli::try_parse_from(["switchboard", flag, bad]).is_err(),
                "{flag} {bad} was accepted"
            );
        }
    }
}
