//! `switchboard-bench`: the load generator, the null relay and `compare`.
//! Run `switchboard-bench --help`; `docs/performance.md` has the exact commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use switchboard_bench::compare::{self, Mode, Sizes};
use switchboard_bench::load::{self, Report, Target};
use switchboard_bench::proto::Proto;
use switchboard_bench::relay::Relay;
use switchboard_bench::stats;

#[derive(Parser)]
#[command(about = "Switchboard's load generator and null relay")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// Where the load goes.
#[derive(Args, Clone)]
struct TargetArgs {
    /// The listener of the server (or null relay) under test, speaking `--proto`.
    #[arg(long, default_value = "127.0.0.1:1030")]
    addr: SocketAddr,
    /// The protocol spoken (ims and opcode log in as seeded accounts, password `pw`).
    #[arg(long, value_enum, default_value_t = Proto::Ws2017)]
    proto: Proto,
    /// The server's process id: its CPU seconds and peak RSS are read from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Source addresses 127.0.0.1..=127.0.0.N the connections are spread over.
    #[arg(long, default_value_t = 8)]
    sources: u8,
    /// Seconds any one phase may take before the run gives up.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

impl TargetArgs {
    fn target(&self) -> Target {
        Target {
            proto: self.proto,
            addr: self.addr,
            pid: self.server_pid,
            sources: self.sources,
            timeout: Duration::from_secs(self.timeout),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// The core alone, in memory (no sockets): clients in pairs route chat messages through
    /// the pump; prints messages a second. Under `valgrind --tool=callgrind` the
    /// instructions per message are a figure the machine's load does not move.
    Core {
        /// Clients (pairs of them).
        #[arg(long, default_value_t = 2000)]
        clients: u64,
        /// Chat lines in each client's read.
        #[arg(long, default_value_t = 8)]
        per_read: usize,
        /// Times every client's read is fed.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// The protocol routed: ws2017, arsc whispers, ims or opcode (each protocol's
        /// round calls `core::round`, the function to count under callgrind).
        #[arg(long, value_enum, default_value_t = Proto::Ws2017)]
        proto: Proto,
    },
    /// Clients in pairs, each sending messages to its partner.
    Direct {
        #[command(flatten)]
        target: TargetArgs,
        /// Clients (pairs of them).
        #[arg(long, default_value_t = 2000)]
        clients: usize,
        /// Messages each client sends.
        #[arg(long, default_value_t = 50)]
        messages: usize,
        /// At most this many undelivered messages per client (full speed without).
        #[arg(long)]
        in_flight: Option<u32>,
        /// Messages a second over all clients (full speed without).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Logged-in idle clients; the server's RSS per client.
    Idle {
        #[command(flatten)]
        target: TargetArgs,
        /// Clients.
        #[arg(long, default_value_t = 2000)]
        clients: usize,
        /// Only connect (no uname): what a connection costs and how many are held.
        #[arg(long)]
        connect_only: bool,
        /// Seconds the clients stay idle before the server's memory is read.
        #[arg(long, default_value_t = 1)]
        hold: u64,
    },
    /// Clients logging in one after another, each announced to all present.
    Logins {
        #[command(flatten)]
        target: TargetArgs,
        /// Clients.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
    },
    /// Clients logging in at once while others chat.
    Storm {
        #[command(flatten)]
        target: TargetArgs,
        /// Clients logging in at once.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Clients already logged in, chatting in pairs meanwhile.
        #[arg(long, default_value_t = 100)]
        background: usize,
        /// The background's messages a second, together.
        #[arg(long, default_value_t = 10_000.0)]
        rate: f64,
    },
    /// Senders storing messages for offline accounts (seeded with `seed`).
    Offline {
        #[command(flatten)]
        target: TargetArgs,
        /// Sending clients.
        #[arg(long, default_value_t = 100)]
        senders: usize,
        /// Messages each keeps unacknowledged at most.
        #[arg(long, default_value_t = 8)]
        in_flight: u32,
        /// Messages in all.
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        /// Accounts acct0.. the messages go to (1000 each at most).
        #[arg(long, default_value_t = 100)]
        accounts: usize,
    },
    /// arsc: clients in one room, some of them posting; every post goes to all.
    Room {
        #[command(flatten)]
        target: TargetArgs,
        /// Clients in the room.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Clients that post.
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// Posts each sender makes.
        #[arg(long, default_value_t = 200)]
        posts: usize,
        /// At most this many posts per sender not yet back to it (full speed without).
        #[arg(long)]
        in_flight: Option<u32>,
    },
    /// The null relay.
    Relay {
        /// Where it listens; it prints `listening on ADDR` once it does.
        #[arg(long, default_value = "127.0.0.1:1030")]
        listen: SocketAddr,
        /// The protocol it speaks.
        #[arg(long, value_enum, default_value_t = Proto::Ws2017)]
        proto: Proto,
        /// Readiness events handled per loop turn before their writes (`compare` gives
        /// the paced mode 64).
        #[arg(long, default_value_t = switchboard_bench::relay::EVENTS_PER_TURN)]
        events_per_turn: usize,
    },
    /// Writes offline accounts acct0..acct{N-1} into a data directory (server stopped).
    Seed {
        /// The server's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Accounts.
        #[arg(long, default_value_t = 100)]
        accounts: usize,
        /// Their names' prefix: `acct` gives acct0, acct1, ... (the `offline` mode's);
        /// `i` the `idle` mode's names, `d` the `direct` mode's, for ims and opcode.
        #[arg(long, default_value = "acct")]
        prefix: String,
    },
    /// Server and null relay, started fresh per run, interleaved; medians and ratios.
    Compare {
        /// The protocol measured.
        #[arg(long, value_enum, default_value_t = Proto::Ws2017)]
        proto: Proto,
        /// Rounds (the median is printed).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The sizes (takes much longer).
        #[arg(long)]
        full: bool,
        /// Modes to run (comma-separated; all by default).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// The switchboard binary (default: beside this one); several (comma-separated, or
        /// the flag again), say a build before and after a change, are measured side by
        /// side, interleaved, as `Server#1`, `Server#2`, ...
        #[arg(long, value_delimiter = ',')]
        server_bin: Vec<PathBuf>,
        /// The server's runtimes to measure side by side, interleaved (comma-separated:
        /// smol,mio); the binary's default when not given.
        #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(compare::RUNTIMES))]
        runtime: Vec<String>,
        /// Append every run's figures to this CSV file.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Messages a second in all of the `paced` mode.
        #[arg(long, default_value_t = 100_000.0)]
        paced_rate: f64,
    },
    /// `direct` and `logins` at growing client counts, for the plot.
    Sweep {
        /// Client counts for `direct`.
        #[arg(long, value_delimiter = ',', default_value = "200,500,1000,2000,4000")]
        direct: Vec<usize>,
        /// Client counts for `logins`.
        #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,4000")]
        logins: Vec<usize>,
        /// The switchboard binary (default: beside this one).
        #[arg(long)]
        server_bin: Option<PathBuf>,
        /// The CSV file rows are appended to.
        #[arg(long, default_value = "docs/performance-sweep.csv")]
        csv: PathBuf,
    },
}

fn report(result: std::io::Result<Report>) -> ExitCode {
    match result {
        Ok(report) => {
            report.print();
            if report.errors > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("switchboard-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `round` (each `per_round` messages) `rounds` times and prints the rate.
fn time_core(label: &str, per_round: u64, rounds: usize, mut round: impl FnMut()) -> ExitCode {
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        round();
    }
    let secs = start.elapsed().as_secs_f64();
    let messages = per_round as f64 * rounds as f64;
    println!(
        "{label}: {messages} messages in {secs:.3} s, {:.0} msgs/s",
        messages / secs
    );
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let fds = stats::raise_fd_limit(1 << 20);
    let result = match cli.command {
        Cmd::Core {
            clients,
            per_read,
            rounds,
            proto: Proto::Ims,
        } => {
            use switchboard_bench::core_ims;
            let (mut pump, now) = match core_ims::crowd(clients) {
                Ok(crowd) => crowd,
                Err(e) => {
                    eprintln!("switchboard-bench core: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let reads = core_ims::reads(clients, per_read);
            return time_core("core ims", clients * per_read as u64, rounds, || {
                core_ims::round(&mut pump, now, &reads);
            });
        }
        Cmd::Core {
            clients,
            per_read,
            rounds,
            proto: Proto::Opcode,
        } => {
            let mut crowd = switchboard_bench::core_opcode::crowd(clients);
            let reads = switchboard_bench::core_opcode::reads(&crowd, per_read);
            return time_core("core opcode", clients * per_read as u64, rounds, || {
                switchboard_bench::core_opcode::round(&mut crowd.pump, crowd.now, &reads);
            });
        }
        Cmd::Core {
            clients,
            per_read,
            rounds,
            proto: Proto::Ws2017,
        } => {
            let (mut pump, now) = switchboard_bench::core::crowd(clients);
            let reads = switchboard_bench::core::reads(clients, per_read);
            return time_core("core", clients * per_read as u64, rounds, || {
                switchboard_bench::core::round(&mut pump, now, &reads);
            });
        }
        Cmd::Core {
            clients,
            per_read,
            rounds,
            proto: Proto::Arsc,
        } => {
            use switchboard_bench::core_arsc;
            let mut crowd = match core_arsc::crowd(clients) {
                Ok(crowd) => crowd,
                Err(e) => {
                    eprintln!("switchboard-bench core: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let reads = core_arsc::reads(&crowd, per_read);
            return time_core("core arsc", clients * per_read as u64, rounds, || {
                core_arsc::round(&mut crowd.pump, crowd.now, &reads);
            });
        }
        Cmd::Direct {
            target,
            clients,
            messages,
            in_flight,
            rate,
        } => load::direct(
            &target.target(),
            &load::DirectOpts {
                clients,
                messages,
                in_flight,
                rate,
                label: "direct".into(),
            },
        ),
        Cmd::Idle {
            target,
            clients,
            connect_only,
            hold,
        } => {
            if (fds as usize) < clients + 100 {
                eprintln!("switchboard-bench: only {fds} descriptors for {clients} clients");
            }
            load::idle(
                &target.target(),
                &load::IdleOpts {
                    clients,
                    connect_only,
                    hold: Duration::from_secs(hold),
                },
            )
        }
        Cmd::Logins { target, clients } => load::logins(&target.target(), clients),
        Cmd::Storm {
            target,
            clients,
            background,
            rate,
        } => load::storm(
            &target.target(),
            &load::StormOpts {
                clients,
                background,
                rate,
            },
        ),
        Cmd::Offline {
            target,
            senders,
            in_flight,
            messages,
            accounts,
        } => load::offline(
            &target.target(),
            &load::OfflineOpts {
                senders,
                in_flight,
                messages,
                accounts,
            },
        ),
        Cmd::Room {
            target,
            clients,
            senders,
            posts,
            in_flight,
        } => load::room(
            &target.target(),
            &load::RoomOpts {
                clients,
                senders,
                posts,
                in_flight,
            },
        ),
        Cmd::Relay {
            listen,
            proto,
            events_per_turn,
        } => {
            let relay = Relay::bind(listen, proto).and_then(|mut relay| {
                relay.set_events_per_turn(events_per_turn);
                println!("listening on {}", relay.local_addr()?);
                relay.run(|| false)
            });
            return match relay {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("switchboard-bench relay: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Cmd::Seed {
            data_dir,
            accounts,
            prefix,
        } => {
            let names: Vec<String> = (0..accounts).map(|i| format!("{prefix}{i}")).collect();
            return match compare::seed_names(&data_dir, &names) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("switchboard-bench seed: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Cmd::Compare {
            proto,
            rounds,
            full,
            only,
            server_bin,
            runtime,
            csv,
            paced_rate,
        } => {
            let runtimes: Vec<&'static str> = compare::RUNTIMES
                .into_iter()
                .filter(|r| runtime.iter().any(|given| given == r))
                .collect();
            let sizes = Sizes {
                paced_rate,
                ..if full { Sizes::full() } else { Sizes::quick() }
            };
            let modes: Vec<Mode> = Mode::for_proto(proto)
                .into_iter()
                .filter(|m| only.is_empty() || only.iter().any(|o| o == m.name()))
                .collect();
            let bins = match server_bin.is_empty() {
                true => vec![compare::default_server_bin()],
                false => server_bin,
            };
            return match compare::compare(
                proto,
                &modes,
                &sizes,
                rounds,
                &bins,
                &runtimes,
                csv.as_deref(),
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("switchboard-bench compare: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Cmd::Sweep {
            direct,
            logins,
            server_bin,
            csv,
        } => {
            let bin = server_bin.unwrap_or_else(compare::default_server_bin);
            return match compare::sweep(&direct, &logins, &bin, &csv) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("switchboard-bench sweep: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    report(result)
}
