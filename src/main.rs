//! `switchboard`: the chat server's binary. `cargo run --release` serves ws2017 on
//! 127.0.0.1:1030, arsc on :1031, ims on :1032 and opcode on :1033 with the smol runtime
//! and its store in `./switchboard-data`;
//! `switchboard user ...`, `ban ...`, `unban ...` and `kick ...` administer it, running or
//! not; `switchboard jabberd-authreg` answers jabberd2's c2s with its accounts. `switchboard --help` lists the commands and flags.

mod admin;
mod authreg;
mod cli;
mod config;
mod serve;

use std::io::IsTerminal;
use std::process::ExitCode;

use switchboard_proto::AdminCommand;
use switchboard_store::start::error_chain;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat, ServeArgs};

/// A write past the process's file size limit (`ulimit -f`) fails with `EFBIG`, a store
/// error the server retries and reports like a full disk, instead of killing it with
/// SIGXFSZ before it logs a word.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: sets the disposition of one signal to "ignore" before any thread starts;
    // no handler runs, so nothing async-signal-unsafe can happen.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// The exit status of an admin command answered `err`, or that could not run.
const EXIT_REFUSED: u8 = 1;
/// The exit status of a usage error (clap uses it too).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    ignore_file_size_signal();
    let command = match cli::parse().into_command() {
        Command::Serve(args) => return serve(args),
        // Its stdout belongs to c2s; it logs its own lines to stderr.
        Command::JabberdAuthreg(args) => return authreg::run(args),
        Command::CheckConfig { file } => return check_config(file),
        Command::Backup { file, admin } => return backup(&file, &admin),
        Command::Status { admin } => Ok((AdminCommand::Status, admin)),
        Command::User { command, admin } => admin::user_command(command).map(|c| (c, admin)),
        Command::Ban { command, admin } => Ok((admin::ban_command(command), admin)),
        Command::Unban { command, admin } => Ok((admin::unban_command(command), admin)),
        Command::Kick { name, admin } => Ok((AdminCommand::Kick { name }, admin)),
    };
    // Admin commands say what they did on stdout; logs are for trouble only.
    init_logging(None, "warn", LogFormat::Human);
    let answer = command.and_then(|(command, args)| admin::run(&command, &args));
    match answer {
        Ok(answer) => {
            for line in &answer.data {
                println!("{line}");
            }
            println!("{}", answer.text);
            if answer.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_REFUSED)
            }
        }
        Err(e) => {
            eprintln!("switchboard: {}", error_chain(&e));
            ExitCode::from(if e.is_usage() {
                EXIT_USAGE
            } else {
                EXIT_REFUSED
            })
        }
    }
}

/// `switchboard check-config FILE`: the file applied to the defaults, without starting.
fn check_config(file: std::path::PathBuf) -> ExitCode {
    // No arguments are `serve` with its defaults.
    let Ok(Command::Serve(mut args)) = cli::try_parse_from(["switchboard"]).map(Cli::into_command)
    else {
        eprintln!("switchboard: the defaults of `serve` do not parse");
        return ExitCode::FAILURE;
    };
    args.config = Some(file.clone());
    // The secret file is read as `serve` reads it, so a unit's check before a start
    // catches a missing or empty one.
    let loaded =
        args.load_config()
            .map_err(|e| error_chain(&e))
            .and_then(|()| match serve::config(&args).jabberd.router {
                Some(_) => serve::jabberd_secret(&args)
                    .map(drop)
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            });
    match loaded {
        Ok(()) => {
            println!("{}", config::Summary(&args));
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::from(EXIT_REFUSED)
        }
    }
}

/// `switchboard backup FILE`.
fn backup(file: &std::path::Path, admin: &cli::AdminArgs) -> ExitCode {
    init_logging(None, "warn", LogFormat::Human);
    if let Err(e) = switchboard_store::data_dir::check(&admin.data_dir) {
        eprintln!("switchboard: {}", error_chain(&e));
        return ExitCode::from(EXIT_REFUSED);
    }
    match switchboard_store::backup::backup(&admin.data_dir, file) {
        Ok(copied) => {
            println!(
                "backed up {} to {} ({} bytes, {} accounts)",
                admin.data_dir.display(),
                copied.path.display(),
                copied.bytes,
                copied.accounts
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard: {}", error_chain(&e));
            ExitCode::from(EXIT_REFUSED)
        }
    }
}

/// `switchboard serve`.
fn serve(mut args: ServeArgs) -> ExitCode {
    if let Err(e) = args.load_config() {
        eprintln!("switchboard: {}", error_chain(&e));
        return ExitCode::from(EXIT_REFUSED);
    }
    init_logging(args.log.as_deref(), "info", args.log_format);
    match serve::serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", error_chain(&*e));
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `filter` (`--log`, the config file), else `RUST_LOG`, else
/// `default`; readable lines (colours only on a terminal) or JSON objects, one a line.
/// The filter can be replaced later through [`LOG_FILTER`] (SIGHUP).
fn init_logging(filter: Option<&str>, default: &str, format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = match filter {
        Some(filter) => EnvFilter::new(filter),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let _ = LOG_FILTER.set(handle);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Human => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

/// Replaces the log filter of the running process (a SIGHUP's reload).
pub type LogFilterHandle =
    tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// The handle on the log filter, set once logging starts.
pub static LOG_FILTER: std::sync::OnceLock<LogFilterHandle> = std::sync::OnceLock::new();
