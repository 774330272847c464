//! `switchboard-sim`: run one seed, sweep a range of seeds, check determinism, or
//! benchmark. See `docs/simulation.md`.

/// A faster allocator for long sweeps and the benchmark (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::time::Instant as WallClock;

use switchboard_sim::{check_determinism, run_seed, sweep, Outcome, Overrides, Plant, Sim};

const USAGE: &str = "\
usage: switchboard-sim [--seed N | --seeds A..B] [options]

  --seed N            run one seed (default: 0)
  --seeds A..B        run seeds A (included) to B (excluded)
  --clients K         exactly K ws2017 clients (default: drawn from the seed)
  --clients-ims K     exactly K ims clients (default: drawn from the seed)
  --clients-arsc K    exactly K arsc clients (default: drawn from the seed)
  --clients-opcode K  exactly K opcode clients (default: drawn from the seed)
  --virtual-secs S    a safety phase of S virtual seconds (default: drawn)
  --steps M           stop one seed's run after M steps (to bisect)
  --jobs J            seeds run on J threads in a sweep (default: 1)
  --check-determinism run each seed twice and compare every step
  --bench             the benchmark: 10,000 clients for one virtual hour
  --plant BUG         plant a core bug: drop-relayed | unpersisted-account |
                      random-broadcast-order | early-listing | whisper-to-room
                      (needs --features planted-bugs)
  --quiet             print failures and the summary only";

/// Why the command line was refused.
#[derive(Debug, PartialEq, Eq)]
enum ArgsError {
    /// A flag this binary does not have.
    Unknown(String),
    /// A flag without its value.
    Missing(&'static str),
    /// A value that does not parse.
    Invalid(&'static str, String),
    /// `--plant` without the `planted-bugs` feature, or an unknown bug.
    Plant(String),
}

impl core::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ArgsError::Unknown(a) => write!(f, "unknown argument {a}"),
            ArgsError::Missing(flag) => write!(f, "{flag} needs a value"),
            ArgsError::Invalid(flag, v) => write!(f, "{flag}: cannot use {v:?}"),
            ArgsError::Plant(bug) => write!(
                f,
                "cannot plant {bug:?}: known bugs are drop-relayed, unpersisted-account, \
                 random-broadcast-order, early-listing and whisper-to-room, and the binary needs \
                 --features planted-bugs"
            ),
        }
    }
}

#[derive(Debug, Default)]
struct Args {
    seeds: Option<(u64, u64)>,
    seed: u64,
    overrides: Overrides,
    jobs: usize,
    steps: Option<u64>,
    determinism: bool,
    quiet: bool,
    help: bool,
}

fn number<T: core::str::FromStr>(flag: &'static str, v: Option<String>) -> Result<T, ArgsError> {
    let v = v.ok_or(ArgsError::Missing(flag))?;
    v.parse().map_err(|_| ArgsError::Invalid(flag, v))
}

#[cfg(feature = "planted-bugs")]
fn plant(name: &str) -> Result<Plant, ArgsError> {
    use switchboard_proto::{Config, PlantedBug};
    fn drop_relayed(c: &mut Config) {
        c.planted_bug = Some(PlantedBug::DropRelayedMessage);
    }
    fn whisper_to_room(c: &mut Config) {
        c.planted_bug = Some(PlantedBug::WhisperToRoom);
    }
    fn unpersisted(c: &mut Config) {
        c.planted_bug = Some(PlantedBug::UnpersistedAccount);
    }
    fn random_broadcast_order(c: &mut Config) {
        c.planted_bug = Some(PlantedBug::ProcessRandomBroadcastOrder);
    }
    fn early_listing(c: &mut Config) {
        c.planted_bug = Some(PlantedBug::EarlyListing);
    }
    match name {
        "random-broadcast-order" => Ok(Plant {
            name: "random-broadcast-order",
            apply: random_broadcast_order,
        }),
        "early-listing" => Ok(Plant {
            name: "early-listing",
            apply: early_listing,
        }),
        "drop-relayed" => Ok(Plant {
            name: "drop-relayed",
            apply: drop_relayed,
        }),
        "unpersisted-account" => Ok(Plant {
            name: "unpersisted-account",
            apply: unpersisted,
        }),
        "whisper-to-room" => Ok(Plant {
            name: "whisper-to-room",
            apply: whisper_to_room,
        }),
        other => Err(ArgsError::Plant(other.to_owned())),
    }
}

#[cfg(not(feature = "planted-bugs"))]
fn plant(name: &str) -> Result<Plant, ArgsError> {
    Err(ArgsError::Plant(name.to_owned()))
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, ArgsError> {
    let mut args = Args {
        jobs: 1,
        ..Args::default()
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seed" => args.seed = number("--seed", it.next())?,
            "--seeds" => {
                let v = it.next().ok_or(ArgsError::Missing("--seeds"))?;
                let (a, b) = v
                    .split_once("..")
                    .ok_or_else(|| ArgsError::Invalid("--seeds", v.clone()))?;
                let a = number("--seeds", Some(a.to_owned()))?;
                let b = number("--seeds", Some(b.to_owned()))?;
                args.seeds = Some((a, b));
            }
            "--clients" => args.overrides.clients = Some(number("--clients", it.next())?),
            "--clients-arsc" => {
                args.overrides.clients_arsc = Some(number("--clients-arsc", it.next())?)
            }
            "--clients-opcode" => {
                args.overrides.clients_opcode = Some(number("--clients-opcode", it.next())?)
            }
            "--clients-ims" => {
                args.overrides.clients_ims = Some(number("--clients-ims", it.next())?)
            }
            "--virtual-secs" => {
                args.overrides.virtual_secs = Some(number("--virtual-secs", it.next())?)
            }
            "--jobs" => args.jobs = number("--jobs", it.next())?,
            "--steps" => args.steps = Some(number("--steps", it.next())?),
            "--check-determinism" => args.determinism = true,
            "--bench" => args.overrides.bench = true,
            "--plant" => {
                let name = it.next().ok_or(ArgsError::Missing("--plant"))?;
                args.overrides.plant = Some(plant(&name)?);
            }
            "--quiet" => args.quiet = true,
            "-h" | "--help" => args.help = true,
            other => return Err(ArgsError::Unknown(other.to_owned())),
        }
    }
    Ok(args)
}

fn summary(o: &Outcome) -> String {
    let c = &o.counters;
    format!(
        "seed={} {} steps={} virtual={}s hash={:016x} crashes={} cuts={} commits={} relayed={} stored={}",
        o.seed,
        if o.failure.is_some() { "FAILED" } else { "ok" },
        c.steps,
        o.virtual_ms / 1000,
        o.hash,
        c.crashes,
        c.cuts,
        c.commits,
        c.relayed,
        c.stored
    )
}

fn bench(args: &Args) -> ExitCode {
    let sim = Sim::new(args.seed, &args.overrides);
    let o = sim.options().clone();
    println!("{o}");
    let mut sim = sim;
    let start = WallClock::now();
    let outcome = sim.run();
    let wall = start.elapsed().as_secs_f64();
    let client_secs = f64::from(o.clients) * outcome.virtual_ms as f64 / 1000.0;
    println!("{}", summary(&outcome));
    println!(
        "bench: {} clients x {} virtual s = {:.0} client-seconds in {:.1} s wall: {:.0} virtual client-seconds per wall second ({} steps, {:.0} steps/s)",
        o.clients,
        outcome.virtual_ms / 1000,
        client_secs,
        wall,
        client_secs / wall,
        outcome.counters.steps,
        outcome.counters.steps as f64 / wall
    );
    match outcome.failure {
        Some(f) => {
            println!("{f}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("switchboard-sim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.overrides.bench {
        return bench(&args);
    }
    let (a, b) = args.seeds.unwrap_or((args.seed, args.seed + 1));
    let start = WallClock::now();
    if b - a == 1 {
        let outcome = match (args.determinism, args.steps) {
            (true, _) => check_determinism(a, &args.overrides),
            (false, Some(steps)) => Sim::new(a, &args.overrides).run_until(steps),
            (false, None) => run_seed(a, &args.overrides),
        };
        println!("{}", outcome.options);
        println!("{}", summary(&outcome));
        return match outcome.failure {
            Some(f) => {
                println!("{f}");
                ExitCode::FAILURE
            }
            None => ExitCode::SUCCESS,
        };
    }
    let quiet = args.quiet;
    let determinism = args.determinism;
    let overrides = args.overrides;
    let print = |o: &Outcome| {
        if !quiet {
            println!("{}", summary(o));
        }
    };
    let report = if determinism {
        let mut report = switchboard_sim::SweepReport::default();
        for seed in a..b {
            let o = check_determinism(seed, &overrides);
            print(&o);
            report.runs += 1;
            report.virtual_ms += o.virtual_ms;
            report.counters.add(&o.counters);
            report.failures.extend(o.failure);
        }
        report
    } else {
        sweep(a..b, &overrides, args.jobs, &print)
    };
    for f in &report.failures {
        println!("\n{f}");
    }
    let c = &report.counters;
    println!(
        "\nseeds {a}..{b}: {} runs, {} failed, {} steps, {} virtual s, {:.1} s wall; crashes={} (landed mid-commit {}), restarts with mail={}, commit failures={}, cuts={}, stalls={}, refused={}, closes quit/timeout/slow/kicked/banned/other={:?}, relayed={}, stored={}, mailbox full={}",
        report.runs,
        report.failures.len(),
        c.steps,
        report.virtual_ms / 1000,
        start.elapsed().as_secs_f64(),
        c.crashes,
        c.crash_landed,
        c.restarts_with_mail,
        c.commit_failures,
        c.cuts,
        c.stalls,
        c.refused,
        c.closes,
        c.relayed,
        c.stored,
        c.mailbox_full
    );
    println!(
        "logins ims/arsc/opcode={:?}, read from the store at a login ims/arsc+opcode={:?}, direct messages read, from (row) and to (column) ws2017/ims/arsc/opcode={:?}",
        [c.ims_logins, c.arsc_logins, c.opcode_logins],
        [c.ims_stored_reads, c.login_stored_reads],
        c.routes
    );
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        let seeds: Vec<String> = report.failures.iter().map(|f| f.seed.to_string()).collect();
        println!("failing seeds: {}", seeds.join(" "));
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, ArgsError> {
        parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn flags_parse_and_errors_say_why() {
        let a = args("--seeds 3..9 --clients 5 --virtual-secs 7 --jobs 2 --quiet").unwrap();
        assert_eq!(a.seeds, Some((3, 9)));
        assert_eq!(a.overrides.clients, Some(5));
        assert_eq!(a.overrides.virtual_secs, Some(7));
        assert_eq!((a.jobs, a.quiet), (2, true));
        assert_eq!(args("--seed").unwrap_err(), ArgsError::Missing("--seed"));
        assert_eq!(
            args("--nope").unwrap_err(),
            ArgsError::Unknown("--nope".into())
        );
        assert!(matches!(
            args("--seeds 5").unwrap_err(),
            ArgsError::Invalid(..)
        ));
        assert!(matches!(
            args("--plant nonsense").unwrap_err(),
            ArgsError::Plant(_)
        ));
    }
}
