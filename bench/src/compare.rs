//! `compare`: the server and the null relay, each started fresh for every run, measured
//! interleaved (server, relay, relay, server, ...: the order turns each round), medians of
//! the rounds, each figure
//! printed with its ratio to the relay's. And `seed`: offline accounts written straight
//! into a data directory before the server starts.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::load::{self, Report, Target};
use crate::proto::Proto;
use crate::stats;

/// Flags the server is started with for the bench: the connection caps and request rates
/// out of the way (one machine plays thousands of users from a few addresses), cheap
/// password hashes, a fixed seed. Everything else is the default.
pub const SERVER_FLAGS: &[&str] = &[
    // The other protocols' listeners on free ports, so their defaults cannot collide.
    "--arsc",
    "127.0.0.1:0",
    "--ims",
    "127.0.0.1:0",
    "--opcode",
    "127.0.0.1:0",
    "--max-connections",
    "1000000",
    "--max-connections-per-ip",
    "1000000",
    "--broadcast-rate-per-conn",
    "1000000/1000000",
    "--broadcast-rate-per-ip",
    "1000000000/1000000000",
    "--durable-rate-per-conn",
    "1000000000/1000000",
    "--durable-rate-per-ip",
    "1000000000/1000000000",
    "--offline-share-percent",
    "100",
    "--seed",
    "1",
    "--hash-cost",
    "cheap",
];

/// Flags raised for the bench when the server has them: the chat-message rate (arsc
/// posts and whispers, ims MESSAGEs), which a server before it does not know.
const OPTIONAL_FLAGS: &[(&str, &str)] = &[
    ("--message-rate-per-conn", "1000000000/1000000"),
    ("--message-rate-per-ip", "1000000000/1000000000"),
];

/// The bench's config file, for the limits that have no flag: arsc's room count and
/// size, so that `idle` (a room per client) and the room modes measure the server, not
/// its caps. Given only to a server that takes `--config`.
const CONFIG: &str = "[arsc]\nmax_rooms = 1000000\nmax_room_members = 1000000\n";

/// Those of [`OPTIONAL_FLAGS`] that `bin serve --help` lists, with their values.
fn optional_flags(help: &str) -> Vec<&'static str> {
    OPTIONAL_FLAGS
        .iter()
        .filter(|(flag, _)| help.contains(flag))
        .flat_map(|(flag, value)| [*flag, *value])
        .collect()
}

/// What `bin serve --help` prints (empty if it fails).
fn serve_help(bin: &Path) -> String {
    Command::new(bin)
        .args(["serve", "--help"])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
/// The server's runtimes `compare --runtime` accepts (`serve --runtime`).
pub const RUNTIMES: [&str; 2] = ["smol", "mio"];

/// Which program a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// The `switchboard` binary, on its default runtime or the one named (see
    /// [`RUNTIMES`]); with several binaries compared (a build before and after a change),
    /// `Some(i)` for the `i`-th (from 0).
    Server(Option<usize>, Option<&'static str>),
    /// This crate's null relay.
    Relay,
}

impl Subject {
    /// Its name in the table and the CSV: `Server`, `Server-mio`, `Relay`; with several
    /// binaries `Server#1`, `Server#2-mio` (numbered from 1 in the order given).
    pub fn label(self) -> String {
        let bin = |bin: Option<usize>| bin.map_or(String::new(), |i| format!("#{}", i + 1));
        match self {
            Subject::Server(b, None) => format!("Server{}", bin(b)),
            Subject::Server(b, Some(runtime)) => format!("Server{}-{runtime}", bin(b)),
            Subject::Relay => "Relay".to_string(),
        }
    }
}

/// A server or relay process of one run; killed when dropped.
pub struct Running {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    _data: Option<tempfile::TempDir>,
    /// The bench's config file ([`CONFIG`]), while the server runs.
    _config: Option<tempfile::NamedTempFile>,
}

impl Running {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `child`'s stream line by line in a thread (so it never blocks on a full pipe)
/// until a line contains `needle`; returns the word after it.
fn wait_for_addr<R: io::Read + Send + 'static>(
    stream: R,
    needle: &'static str,
    echo: bool,
) -> io::Result<SocketAddr> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if echo && line.contains("ERROR") {
                eprintln!("[server] {line}");
            }
            if !sent {
                if let Some(rest) = line.split(needle).nth(1) {
                    let addr = rest.split_whitespace().next().map(str::to_string);
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| io::Error::other(format!("no {needle:?} line")))?;
    addr.and_then(|a| a.parse().ok())
        .ok_or_else(|| io::Error::other("unreadable address"))
}

/// Starts the server binary on a fresh data directory (with `accounts` offline accounts
/// seeded) on a free port of 127.0.0.1; its ws2017 listener is the one returned.
pub fn start_server(bin: &Path, accounts: usize) -> io::Result<Running> {
    start_server_on(bin, accounts, None)
}

/// [`start_server`] on the runtime named (`serve --runtime`), or the default.
pub fn start_server_on(bin: &Path, accounts: usize, runtime: Option<&str>) -> io::Result<Running> {
    let names: Vec<String> = (0..accounts).map(|i| format!("acct{i}")).collect();
    launch(bin, Proto::Ws2017, &names, runtime)
}

/// Starts the server binary on a fresh data directory with the accounts `names`
/// (password [`crate::proto::PASSWORD`]) seeded, every listener on a free port of
/// 127.0.0.1; `proto`'s listener is the one returned.
pub fn start_server_for(bin: &Path, proto: Proto, names: &[String]) -> io::Result<Running> {
    launch(bin, proto, names, None)
}

/// [`start_server_for`] on the runtime named, or the default.
fn launch(
    bin: &Path,
    proto: Proto,
    names: &[String],
    runtime: Option<&str>,
) -> io::Result<Running> {
    let data = tempfile::Builder::new().prefix("sb-bench").tempdir()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(data.path(), fs::Permissions::from_mode(0o700))?;
    }
    if !names.is_empty() {
        seed_names(data.path(), names)?;
    }
    let help = serve_help(bin);
    let config = match help.contains("--config") {
        true => {
            let mut file = tempfile::Builder::new()
                .prefix("sb-bench")
                .suffix(".toml")
                .tempfile()?;
            file.write_all(CONFIG.as_bytes())?;
            Some(file)
        }
        false => None,
    };
    let mut child = Command::new(bin)
        // Every listener on a free port: the fixed defaults of arsc and ims would collide
        // with any other server on the machine.
        .args(["serve", "--ws2017", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args(SERVER_FLAGS)
        .args(optional_flags(&help))
        .args(
            config
                .iter()
                .flat_map(|c| [OsStr::new("--config"), c.path().as_os_str()]),
        )
        .args(runtime.map(|r| ["--runtime", r]).into_iter().flatten())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| io::Error::other("no stderr"))?;
    let needle: &'static str = match proto {
        Proto::Ws2017 => "ws2017 listening on ",
        Proto::Arsc => "arsc listening on ",
        Proto::Ims => "ims listening on ",
        Proto::Opcode => "opcode listening on ",
    };
    let addr = match wait_for_addr(stderr, needle, true) {
        Ok(addr) => addr,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    Ok(Running {
        child,
        addr,
        _data: Some(data),
        _config: config,
    })
}

/// Starts the null relay of `proto` (this binary's `relay` mode) on a free port of
/// 127.0.0.1.
pub fn start_relay(bench_bin: &Path, proto: Proto, events_per_turn: usize) -> io::Result<Running> {
    let mut child = Command::new(bench_bin)
        .args(["relay", "--listen", "127.0.0.1:0", "--proto", proto.name()])
        .args(["--events-per-turn", &events_per_turn.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no stdout"))?;
    let addr = match wait_for_addr(stdout, "listening on ", false) {
        Ok(addr) => addr,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    Ok(Running {
        child,
        addr,
        _data: None,
        _config: None,
    })
}

/// Writes accounts `acct0`..`acct{n-1}` (password `pw`, a cheap hash made once and
/// shared) into the store in `data_dir`, in one transaction.
pub fn seed_accounts(data_dir: &Path, n: usize) -> io::Result<()> {
    let names: Vec<String> = (0..n).map(|i| format!("acct{i}")).collect();
    seed_names(data_dir, &names)
}

/// Writes the accounts `names` (password [`crate::proto::PASSWORD`], a cheap hash made
/// once and shared) into the store in `data_dir`, in one transaction.
pub fn seed_names(data_dir: &Path, names: &[String]) -> io::Result<()> {
    let changes = account_changes(names)?;
    let err = |e: &dyn std::fmt::Display| io::Error::other(e.to_string());
    let mut store = switchboard_store::Store::open(data_dir).map_err(|e| err(&e))?;
    store.commit(&changes).map_err(|e| err(&e))?;
    Ok(())
}

/// The changes that create the accounts `names`, password [`crate::proto::PASSWORD`]
/// (a cheap hash made once and shared): for the store, or a core run's state.
pub fn account_changes(names: &[String]) -> io::Result<Vec<switchboard_proto::Change>> {
    use switchboard_proto::UserName;
    use switchboard_proto::{Account, Change};
    use switchboard_store::credentials::{hash_password_with, Cost};
    let err = |e: &dyn std::fmt::Display| io::Error::other(e.to_string());
    let (password, ims_password) =
        hash_password_with(&Cost::cheap(), crate::proto::PASSWORD).map_err(|e| err(&e))?;
    let mut changes = Vec::with_capacity(names.len());
    for name in names {
        let name = UserName::parse(name).map_err(|e| err(&format!("{e:?}")))?;
        changes.push(Change::AccountCreated(Account {
            name,
            password: password.clone(),
            ims_password: ims_password.clone(),
            email: None,
            gender: None,
            level: 0,
            banned: false,
            created_ms: 0,
        }));
    }
    Ok(changes)
}

/// The sizes of one `compare` (the defaults run in a few minutes; `full` are the issue's).
#[derive(Clone, Debug)]
pub struct Sizes {
    /// `direct`: clients and messages each.
    pub direct_clients: usize,
    /// Messages each client of `direct` sends.
    pub direct_messages: usize,
    /// `idle`: clients.
    pub idle_clients: usize,
    /// `logins`: clients.
    pub login_clients: usize,
    /// `storm`: clients at once, and the background pairs' clients.
    pub storm_clients: usize,
    /// `offline`: messages in all (to `offline_messages / 1000` accounts, at least 100).
    pub offline_messages: usize,
    /// `room` (arsc): clients in the room, senders among them, posts each.
    pub room_clients: usize,
    /// Senders of `room`.
    pub room_senders: usize,
    /// Posts each sender of `room` makes.
    pub room_posts: usize,
    /// `paced`: messages a second in all (the issue's target is at 100,000).
    pub paced_rate: f64,
}

impl Sizes {
    /// A few minutes for three rounds on a 2-core machine.
    pub fn quick() -> Sizes {
        Sizes {
            direct_clients: 2000,
            direct_messages: 200,
            idle_clients: 2000,
            login_clients: 1000,
            storm_clients: 1000,
            offline_messages: 100_000,
            room_clients: 1000,
            room_senders: 10,
            room_posts: 200,
            paced_rate: 100_000.0,
        }
    }

    /// The issue's sizes (the 10,000 logins alone take minutes).
    pub fn full() -> Sizes {
        Sizes {
            direct_clients: 2000,
            direct_messages: 200,
            idle_clients: 10_000,
            login_clients: 10_000,
            storm_clients: 1000,
            offline_messages: 1_000_000,
            room_clients: 1000,
            room_senders: 10,
            room_posts: 200,
            paced_rate: 100_000.0,
        }
    }
}

/// One mode at the sizes given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Full speed.
    Direct,
    /// At most 8 in flight per client.
    Direct8,
    /// Paced at 100k messages a second in all (`Sizes::paced_rate`).
    Paced,
    /// Idle logged-in clients.
    Idle,
    /// Logins one after another.
    Logins,
    /// Logins at once.
    Storm,
    /// Durable offline enqueue.
    Offline,
    /// Room fan-out (arsc).
    Room,
}

impl Mode {
    /// Every mode, in the order `compare` runs them.
    pub const ALL: [Mode; 7] = [
        Mode::Direct,
        Mode::Direct8,
        Mode::Paced,
        Mode::Idle,
        Mode::Logins,
        Mode::Storm,
        Mode::Offline,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::Direct8 => "direct8",
            Mode::Paced => "paced",
            Mode::Idle => "idle",
            Mode::Logins => "logins",
            Mode::Storm => "storm",
            Mode::Offline => "offline",
            Mode::Room => "room",
        }
    }

    /// The modes `compare` runs for `proto` (offline for ws2017, whose generator names
    /// offline accounts; room for arsc, the one protocol with rooms).
    pub fn for_proto(proto: Proto) -> Vec<Mode> {
        match proto {
            Proto::Ws2017 => Mode::ALL.to_vec(),
            Proto::Arsc => vec![
                Mode::Direct,
                Mode::Direct8,
                Mode::Idle,
                Mode::Logins,
                Mode::Room,
            ],
            Proto::Ims | Proto::Opcode => {
                vec![Mode::Direct, Mode::Direct8, Mode::Idle, Mode::Logins]
            }
        }
    }
}

/// Readiness events per loop turn of the null relay `mode` is measured against:
/// 64 for `paced`, whose figure is latency (at 25k msgs/s the relay's p50 was 18-46 ms
/// with 4096, every reply waiting for a turn over all 2000 connections, and 0.6-1.6 ms
/// with 64); [`crate::relay::EVENTS_PER_TURN`] otherwise, whose figures are throughput
/// (at full speed 4096 gave 627-630k msgs/s, 64 gave 513-550k).
pub fn relay_events_per_turn(mode: Mode) -> usize {
    match mode {
        Mode::Paced => PACED_RELAY_EVENTS_PER_TURN,
        _ => crate::relay::EVENTS_PER_TURN,
    }
}

/// The null relay's events per turn in the paced mode (see [`relay_events_per_turn`]). The
/// servers' turns are larger (1024), but at a paced rate few events are ready at once.
pub const PACED_RELAY_EVENTS_PER_TURN: usize = 64;

/// Runs `mode` once against `target`.
pub fn run_mode(mode: Mode, target: &Target, sizes: &Sizes) -> io::Result<Report> {
    match mode {
        Mode::Direct | Mode::Direct8 | Mode::Paced => load::direct(
            target,
            &load::DirectOpts {
                clients: sizes.direct_clients,
                messages: sizes.direct_messages,
                in_flight: (mode == Mode::Direct8).then_some(8),
                rate: (mode == Mode::Paced).then_some(sizes.paced_rate),
                label: mode.name().to_string(),
            },
        ),
        Mode::Idle => load::idle(
            target,
            &load::IdleOpts {
                clients: sizes.idle_clients,
                connect_only: false,
                hold: Duration::from_secs(1),
            },
        ),
        Mode::Logins => load::logins(target, sizes.login_clients),
        Mode::Storm => load::storm(
            target,
            &load::StormOpts {
                clients: sizes.storm_clients,
                background: 100,
                rate: 10_000.0,
            },
        ),
        Mode::Offline => load::offline(
            target,
            &load::OfflineOpts {
                senders: 100,
                in_flight: 8,
                messages: sizes.offline_messages,
                accounts: offline_accounts(sizes),
            },
        ),
        Mode::Room => load::room(
            target,
            &load::RoomOpts {
                clients: sizes.room_clients,
                senders: sizes.room_senders,
                posts: sizes.room_posts,
                in_flight: None,
            },
        ),
    }
}

/// The accounts `proto` needs seeded for `mode` at `sizes`: the names the generator logs
/// in with (ims and opcode have no guests), or the offline accounts.
pub fn accounts_for(proto: Proto, mode: Mode, sizes: &Sizes) -> Vec<String> {
    if mode == Mode::Offline {
        return (0..offline_accounts(sizes))
            .map(|i| format!("acct{i}"))
            .collect();
    }
    if !proto.needs_accounts() {
        return Vec::new();
    }
    let list = |prefix: &'static str, n: usize| (0..n).map(move |i| format!("{prefix}{i}"));
    match mode {
        Mode::Direct | Mode::Direct8 | Mode::Paced => list("d", sizes.direct_clients).collect(),
        Mode::Idle => list("i", sizes.idle_clients).collect(),
        Mode::Logins => list("l", sizes.login_clients).collect(),
        Mode::Storm => list("b", 100)
            .chain(list("s", sizes.storm_clients))
            .collect(),
        Mode::Room => list("r", sizes.room_clients).collect(),
        Mode::Offline => Vec::new(),
    }
}

/// Accounts the offline test spreads its messages over (1000 each at most, the default
/// mailbox cap).
pub fn offline_accounts(sizes: &Sizes) -> usize {
    sizes.offline_messages.div_ceil(1000).max(100)
}

/// Starts `subject` fresh and runs `mode` once against it.
pub fn run_once(
    subject: Subject,
    proto: Proto,
    mode: Mode,
    sizes: &Sizes,
    server_bin: &Path,
    bench_bin: &Path,
) -> io::Result<Report> {
    let running = match subject {
        Subject::Server(_, runtime) => launch(
            server_bin,
            proto,
            &accounts_for(proto, mode, sizes),
            runtime,
        )?,
        Subject::Relay => start_relay(bench_bin, proto, relay_events_per_turn(mode))?,
    };
    let target = Target {
        proto,
        addr: running.addr,
        pid: Some(running.pid()),
        sources: 8,
        timeout: Duration::from_secs(300),
    };
    let report = run_mode(mode, &target, sizes);
    drop(running);
    report
}

/// Where the `switchboard` binary is: beside this one (cargo builds both into the same
/// target directory).
pub fn default_server_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("switchboard")))
        .unwrap_or_else(|| PathBuf::from("switchboard"))
}

/// The subjects in the order round `round` runs them: turned by one each round, so that
/// over as many rounds as subjects each runs once in every position. A fixed order
/// measured the first position slower (the login storm: 0.157 against 0.120 s for two
/// builds, 0.148 against 0.141 s with the two swapped), which favoured whichever build
/// came later.
fn round_order(subjects: &[Subject], round: usize) -> impl Iterator<Item = Subject> + '_ {
    let n = subjects.len().max(1);
    (0..subjects.len()).map(move |k| subjects[(k + round) % n])
}

/// Every figure of `mode` over `rounds` rounds, by subject and key.
type Results = BTreeMap<(String, Subject), Vec<(f64, bool, &'static str)>>;

/// `compare`: each mode, `rounds` times interleaved, medians and ratios printed; rows
/// appended to `csv` when given (`subject,key,round,value`). `runtimes` names the server's
/// runtimes to measure side by side (interleaved too); none measures the default. Each of
/// `server_bins` (one, or a build before and after a change) runs on each runtime, all
/// interleaved within a round.
pub fn compare(
    proto: Proto,
    modes: &[Mode],
    sizes: &Sizes,
    rounds: usize,
    server_bins: &[PathBuf],
    runtimes: &[&'static str],
    csv: Option<&Path>,
) -> io::Result<()> {
    let runtimes: Vec<Option<&'static str>> = match runtimes {
        [] => vec![None],
        _ => runtimes.iter().map(|&r| Some(r)).collect(),
    };
    let several = server_bins.len() > 1;
    let mut subjects: Vec<Subject> = (0..server_bins.len())
        .flat_map(|i| {
            let bin = several.then_some(i);
            runtimes.iter().map(move |&r| Subject::Server(bin, r))
        })
        .collect();
    subjects.push(Subject::Relay);
    let servers = subjects.len() - 1;
    let bench_bin = std::env::current_exe()?;
    stats::raise_fd_limit(1 << 20);
    let mut csv = match csv {
        Some(path) => Some(
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
        None => None,
    };
    let mut results: Results = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for &mode in modes {
        for round in 0..rounds {
            for subject in round_order(&subjects, round) {
                eprintln!(
                    "bench: {} {} round {} {}",
                    proto.name(),
                    mode.name(),
                    round + 1,
                    subject.label()
                );
                let server_bin = match subject {
                    Subject::Server(Some(i), _) => &server_bins[i],
                    _ => &server_bins[0],
                };
                let report = run_once(subject, proto, mode, sizes, server_bin, &bench_bin)?;
                if report.errors > 0 {
                    eprintln!(
                        "bench: {} {}: {} errors (first: {:?})",
                        mode.name(),
                        subject.label(),
                        report.errors,
                        report.first_error
                    );
                }
                for f in &report.figures {
                    if !order.contains(&f.key) {
                        order.push(f.key.clone());
                    }
                    results.entry((f.key.clone(), subject)).or_default().push((
                        f.value,
                        f.higher_is_better,
                        f.unit,
                    ));
                    if let Some(csv) = csv.as_mut() {
                        let subject = subject.label();
                        writeln!(csv, "{subject},{},{round},{}", f.key, f.value)?;
                    }
                }
            }
        }
    }
    let mut header = format!("{:<32}", "figure");
    for subject in &subjects {
        header += &format!(" {:>14}", subject.label());
    }
    for subject in &subjects[..servers] {
        header += &format!(" {:>8}", format!("{}/Relay", subject.label()));
    }
    println!("{header}  unit (median of {rounds}; ratio = server / relay)");
    for key in &order {
        let get = |s| {
            results.get(&(key.clone(), s)).map(|v| {
                let values: Vec<f64> = v.iter().map(|x| x.0).collect();
                (stats::median(&values), v[0].2)
            })
        };
        let medians: Vec<Option<(f64, &str)>> = subjects.iter().map(|&s| get(s)).collect();
        let unit = medians.iter().flatten().next().map_or("", |x| x.1);
        let relay = medians[servers];
        let mut row = format!("{key:<32}");
        for m in &medians {
            row += &format!(
                " {:>14}",
                m.map_or("-".to_string(), |x| format!("{:.3}", x.0))
            );
        }
        for server in &medians[..servers] {
            let ratio = match (server, relay) {
                (Some(s), Some(r)) if r.0 != 0.0 => format!("{:.2}", s.0 / r.0),
                _ => "-".to_string(),
            };
            row += &format!(" {ratio:>8}");
        }
        println!("{row}  {unit}");
    }
    Ok(())
}

/// `sweep`: `direct` and `logins` at growing client counts, server and relay, one round
/// each, rows `subject,mode,clients,value` appended to `csv` (what `bench/plot.py` draws).
pub fn sweep(
    direct_clients: &[usize],
    login_clients: &[usize],
    server_bin: &Path,
    csv: &Path,
) -> io::Result<()> {
    let bench_bin = std::env::current_exe()?;
    stats::raise_fd_limit(1 << 20);
    let mut out = fs::OpenOptions::new().create(true).append(true).open(csv)?;
    for (mode, list) in [
        (Mode::Direct, direct_clients),
        (Mode::Logins, login_clients),
    ] {
        for &n in list {
            for subject in [Subject::Server(None, None), Subject::Relay] {
                let sizes = Sizes {
                    direct_clients: n,
                    direct_messages: 200,
                    login_clients: n,
                    ..Sizes::quick()
                };
                eprintln!("bench: sweep {} {n} {:?}", mode.name(), subject);
                let report =
                    run_once(subject, Proto::Ws2017, mode, &sizes, server_bin, &bench_bin)?;
                let (key, value) = match mode {
                    Mode::Direct => ("direct.msgs_per_s", report.get("direct.msgs_per_s")),
                    _ => ("logins.total_s", report.get("logins.total_s")),
                };
                if let Some(v) = value {
                    let subject = subject.label();
                    writeln!(out, "{subject},{key},{n},{v}")?;
                    println!("{subject} {key} {n} {v:.3}");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over as many rounds as subjects, each subject runs once in every position.
    #[test]
    fn every_subject_takes_every_position_in_turn() {
        let subjects = [
            Subject::Server(Some(0), Some("smol")),
            Subject::Server(Some(1), Some("smol")),
            Subject::Relay,
        ];
        let mut seen = BTreeMap::new();
        for round in 0..subjects.len() {
            let order: Vec<Subject> = round_order(&subjects, round).collect();
            assert_eq!(order.len(), subjects.len());
            for (position, subject) in order.into_iter().enumerate() {
                *seen.entry((position, subject)).or_insert(0) += 1;
            }
        }
        assert_eq!(seen.len(), subjects.len() * subjects.len());
        assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    }

    /// The paced mode's relay turns over few events (its figure is latency); every other
    /// mode keeps the relay's large, write-coalescing turn.
    #[test]
    fn only_the_paced_relay_takes_short_turns() {
        assert_eq!(relay_events_per_turn(Mode::Paced), 64);
        for mode in Mode::ALL.into_iter().filter(|&m| m != Mode::Paced) {
            assert_eq!(relay_events_per_turn(mode), crate::relay::EVENTS_PER_TURN);
        }
        assert_eq!(relay_events_per_turn(Mode::Room), 4096);
    }
}
