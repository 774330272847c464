//! `switchboard`: the chat server's binary. `cargo run --release` serves ws2017 on
//! 127.0.0.1:1030, arsc on 127.0.0.1:1031 and ims on 127.0.0.1:1032 with the smol runtime
//! and its store in `./switchboard-data`;
//! `switchboard user ...`, `ban ...`, `unban ...` and `kick ...` administer it, running or
//! not; `switchboard jabberd-authreg` answers jabberd2's c2s with its accounts. `switchboard --help` lists the commands and flags.

mod admin;
mod authreg;
mod cli;
mod serve;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use switchboard_proto::AdminCommand;
use switchboard_store::start::error_chain;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, ServeArgs};

/// The exit status of an admin command answered `err`, or that could not run.
const EXIT_REFUSED: u8 = 1;
/// The exit status of a usage error (clap uses it too).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let command = match Cli::parse().into_command() {
        Command::Serve(args) => return serve(args),
        // Its stdout belongs to c2s; it logs its own lines to stderr.
        Command::JabberdAuthreg(args) => return authreg::run(args),
        Command::User { command, admin } => admin::user_command(command).map(|c| (c, admin)),
        Command::Ban { command, admin } => Ok((admin::ban_command(command), admin)),
        Command::Unban { command, admin } => Ok((admin::unban_command(command), admin)),
        Command::Kick { name, admin } => Ok((AdminCommand::Kick { name }, admin)),
    };
    // Admin commands say what they did on stdout; logs are for trouble only.
    init_logging("warn");
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

/// `switchboard serve`.
fn serve(args: ServeArgs) -> ExitCode {
    init_logging("info");
    match serve::serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", error_chain(&*e));
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at `default` unless `RUST_LOG` says otherwise; colours only on a terminal.
fn init_logging(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
