//! The load generator's modes, over [`Net`]: `direct`, `idle`, `logins`, `storm` and
//! `offline`. Each returns a [`Report`] of named figures.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::net::{Handler, Net};
use crate::pace::Pacer;
use crate::proto::{Event, Proto};
use crate::stats::{self, Latencies, ProcSample};

/// One measured figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// Its name, the same for the server and the null relay (`direct.msgs_per_s`, ...).
    pub key: String,
    /// Its value.
    pub value: f64,
    /// Its unit, for printing.
    pub unit: &'static str,
    /// Whether more is better (throughput) rather than less (time, latency, memory).
    pub higher_is_better: bool,
}

/// What one run of a mode measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The figures, in the order they were measured.
    pub figures: Vec<Figure>,
    /// Error replies and closed connections seen, as a count.
    pub errors: u64,
    /// The first error reply seen, for the log.
    pub first_error: Option<String>,
}

impl Report {
    fn add(&mut self, key: &str, value: f64, unit: &'static str, higher_is_better: bool) {
        self.figures.push(Figure {
            key: key.to_string(),
            value,
            unit,
            higher_is_better,
        });
    }

    /// The value of `key`, if measured.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.figures.iter().find(|f| f.key == key).map(|f| f.value)
    }

    /// One line per figure.
    pub fn print(&self) {
        for f in &self.figures {
            println!("{:<28} {:>14.3} {}", f.key, f.value, f.unit);
        }
        if self.errors > 0 {
            println!(
                "errors: {} (first: {})",
                self.errors,
                self.first_error.as_deref().unwrap_or("a closed connection")
            );
        }
    }
}

/// Where the load goes and how to watch the server.
#[derive(Clone, Debug)]
pub struct Target {
    /// The listener of `proto`.
    pub addr: SocketAddr,
    /// The protocol spoken.
    pub proto: Proto,
    /// The server's process id, for its CPU time and memory; figures from /proc are left
    /// out without it.
    pub pid: Option<u32>,
    /// How many 127.0.0.x source addresses connections are spread over.
    pub sources: u8,
    /// Longest any one phase may take before the run gives up and reports what it has.
    pub timeout: Duration,
}

/// Counts and latencies, updated line by line.
struct Load {
    start: Instant,
    logged_in: Vec<bool>,
    login_sent: Vec<u64>,
    greeted: Vec<bool>,
    greetings: usize,
    logins: usize,
    login_lat: Latencies,
    last_login: u64,
    nusers: u64,
    last_nuser: u64,
    inflight: Vec<u32>,
    sent_at: Vec<VecDeque<u64>>,
    delivered: u64,
    last_delivery: u64,
    /// Only messages sent in `[record_from, record_until]` count in `lat`.
    record_from: u64,
    record_until: u64,
    lat: Latencies,
    relayed: u64,
    stored: u64,
    ack_lat: Latencies,
    errors: u64,
    first_error: Option<String>,
    /// The protocol spoken.
    proto: Proto,
    /// Per connection: its arsc session id, or its pair's opcode chat id.
    tokens: Vec<Box<[u8]>>,
    /// A room test: every copy of a post counts, the poster's own included.
    fanout: bool,
    /// opcode setup answers that succeeded, and chats listed.
    setup_ok: u64,
    chats: u64,
}

impl Load {
    fn new(proto: Proto) -> Load {
        Load {
            proto,
            tokens: Vec::new(),
            fanout: false,
            setup_ok: 0,
            chats: 0,
            start: Instant::now(),
            logged_in: Vec::new(),
            login_sent: Vec::new(),
            greeted: Vec::new(),
            greetings: 0,
            logins: 0,
            login_lat: Latencies::default(),
            last_login: 0,
            nusers: 0,
            last_nuser: 0,
            inflight: Vec::new(),
            sent_at: Vec::new(),
            delivered: 0,
            last_delivery: 0,
            record_from: 0,
            record_until: u64::MAX,
            lat: Latencies::default(),
            relayed: 0,
            stored: 0,
            ack_lat: Latencies::default(),
            errors: 0,
            first_error: None,
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Makes room for connection `conn`'s state.
    fn grow(&mut self, conn: usize) {
        if self.logged_in.len() <= conn {
            let n = conn + 1;
            self.logged_in.resize(n, false);
            self.login_sent.resize(n, 0);
            self.greeted.resize(n, false);
            self.inflight.resize(n, 0);
            self.sent_at.resize_with(n, VecDeque::new);
            self.tokens.resize_with(n, Box::default);
        }
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            eprintln!("bench: first error: {what}");
            self.first_error = Some(what);
        }
    }

    /// Whether a run started at `started` passed `timeout` before delivering its
    /// `total` (recorded as an error).
    fn timed_out(&mut self, started: Instant, timeout: Duration, total: u64) -> bool {
        let late = started.elapsed() > timeout;
        if late {
            let delivered = self.delivered;
            self.error(format!("timed out with {delivered} of {total} delivered"));
        }
        late
    }
}

impl Handler for Load {
    fn line(&mut self, net: &mut Net, conn: usize, line: &[u8]) {
        match self.proto.classify(line) {
            Event::Delivered { sent, sender } => {
                // ims and opcode echo a message to its sender: only a room post's own
                // copy counts there (it is one of the room's deliveries).
                if sender == conn && !self.fanout {
                    return;
                }
                let now = self.now();
                self.delivered += 1;
                self.last_delivery = now;
                if sent >= self.record_from && sent <= self.record_until {
                    self.lat.push(now.saturating_sub(sent));
                }
                if !self.fanout || sender == conn {
                    if let Some(n) = self.inflight.get_mut(sender) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
            Event::Announce => {
                self.nusers += 1;
                self.last_nuser = self.now();
            }
            Event::Relayed => self.relayed += 1,
            Event::Stored => {
                let now = self.now();
                self.stored += 1;
                if let Some(sent) = self.sent_at.get_mut(conn).and_then(|q| q.pop_front()) {
                    self.ack_lat.push(now.saturating_sub(sent));
                }
                if let Some(n) = self.inflight.get_mut(conn) {
                    *n = n.saturating_sub(1);
                }
            }
            Event::LoggedIn(token) => {
                self.grow(conn);
                if !self.logged_in[conn] {
                    let now = self.now();
                    self.logged_in[conn] = true;
                    self.tokens[conn] = token.into();
                    self.logins += 1;
                    self.last_login = now;
                    self.login_lat
                        .push(now.saturating_sub(self.login_sent[conn]));
                }
            }
            Event::Answer(bytes) => net.send(conn, bytes),
            Event::SetupOk => self.setup_ok += 1,
            Event::Chat(id) => {
                self.grow(conn);
                self.tokens[conn] = id.into();
                self.chats += 1;
            }
            Event::Error => self.error(String::from_utf8_lossy(line).into_owned()),
            Event::Greeting => {
                self.grow(conn);
                if !self.greeted[conn] {
                    self.greeted[conn] = true;
                    self.greetings += 1;
                }
            }
            Event::Other => {}
        }
    }

    fn closed(&mut self, _net: &mut Net, conn: usize) {
        self.error(format!("connection {conn} closed"));
    }
}

/// Connects `names.len()` clients, `batch` at a time, each sending `uname` at once when
/// `login`; waits for every batch's answers (logins or greetings). Returns the first
/// connection's index, or the first error reply (a refused login never comes in: waiting
/// for it would only run into the timeout).
fn connect_all(
    net: &mut Net,
    load: &mut Load,
    target: &Target,
    names: &[String],
    batch: usize,
    login: bool,
    room: &dyn Fn(usize) -> String,
) -> io::Result<usize> {
    let first = net.len();
    let deadline = Instant::now() + target.timeout;
    for chunk in names.chunks(batch.max(1)) {
        let want = if login { load.logins } else { load.greetings } + chunk.len();
        for name in chunk {
            let conn = net.connect()?;
            load.grow(conn);
            load.login_sent[conn] = load.now();
            if login {
                let mut out = Vec::new();
                target.proto.login(&mut out, name, &room(conn - first));
                net.send(conn, &out);
            }
        }
        while (if login { load.logins } else { load.greetings }) < want {
            if let Some(error) = load.first_error.as_deref() {
                return Err(io::Error::other(format!(
                    "refused while logging in: {error}"
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} of {} clients in after {:?}",
                        if login { load.logins } else { load.greetings },
                        want,
                        target.timeout
                    ),
                ));
            }
            net.turn(Duration::from_millis(5), load)?;
        }
    }
    Ok(first)
}

/// Turns until no announcement (`nuser`) has arrived for `quiet`, so a test starts with
/// the login traffic behind it.
fn settle(net: &mut Net, load: &mut Load, quiet: Duration, limit: Duration) -> io::Result<()> {
    let start = Instant::now();
    let mut seen = load.nusers;
    let mut since = Instant::now();
    while since.elapsed() < quiet && start.elapsed() < limit {
        net.turn(Duration::from_millis(10), load)?;
        if load.nusers != seen {
            seen = load.nusers;
            since = Instant::now();
        }
    }
    Ok(())
}

/// Turns for `how_long`, answering pings.
/// Turns for `how_long`, answering pings and sending the protocol's keep-alive (ims'
/// `<ALIVE/>`) from every client at once and every 5 s.
fn hold(net: &mut Net, load: &mut Load, how_long: Duration) -> io::Result<()> {
    let start = Instant::now();
    let mut next_alive = start;
    while start.elapsed() < how_long {
        if let Some(alive) = load.proto.keepalive() {
            if Instant::now() >= next_alive {
                next_alive += Duration::from_secs(5);
                for conn in 0..net.len() {
                    net.send(conn, alive);
                }
            }
        }
        net.turn(Duration::from_millis(20), load)?;
    }
    Ok(())
}

/// Turns until `done` says so, or fails after the target's timeout naming `what`.
fn wait_until(
    net: &mut Net,
    load: &mut Load,
    target: &Target,
    what: &str,
    done: impl Fn(&Load) -> bool,
) -> io::Result<()> {
    let started = Instant::now();
    while !done(load) {
        if started.elapsed() > target.timeout {
            return Err(io::Error::new(io::ErrorKind::TimedOut, what.to_string()));
        }
        if load.errors > 0 {
            return Err(io::Error::other(format!(
                "{what}: {}",
                load.first_error.as_deref().unwrap_or("error")
            )));
        }
        net.turn(Duration::from_millis(2), load)?;
    }
    Ok(())
}

/// opcode: makes each pair (connections `2k`, `2k+1` named `names[..]`) contacts (`121`
/// both ways), opens their chat (`113`) and learns its id (`112`) on both sides, so each
/// `115` names it.
fn pair_chats(net: &mut Net, load: &mut Load, target: &Target, names: &[String]) -> io::Result<()> {
    let pairs = names.len() / 2;
    let base = load.setup_ok;
    let step = |net: &mut Net, from_odd: bool, code: &str| {
        for k in 0..pairs {
            let (from, to) = if from_odd {
                (2 * k + 1, 2 * k)
            } else {
                (2 * k, 2 * k + 1)
            };
            net.send(from, format!("{code} {}\r\n", names[to]).as_bytes());
        }
    };
    step(net, false, "121");
    let want = base + pairs as u64;
    wait_until(net, load, target, "contact requests", |l| {
        l.setup_ok >= want
    })?;
    step(net, true, "121");
    let want = want + pairs as u64;
    wait_until(net, load, target, "contact answers", |l| l.setup_ok >= want)?;
    step(net, false, "113");
    let want = want + pairs as u64;
    wait_until(net, load, target, "chats", |l| l.setup_ok >= want)?;
    let chats = load.chats;
    for conn in 0..2 * pairs {
        net.send(conn, b"112\r\n");
    }
    let want = chats + 2 * pairs as u64;
    wait_until(net, load, target, "chat lists", |l| l.chats >= want)
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn server_sample(target: &Target) -> Option<ProcSample> {
    target.pid.and_then(stats::sample)
}

/// Adds the server's CPU seconds over a phase, per unit of work, and its peak RSS.
fn add_server(
    report: &mut Report,
    prefix: &str,
    target: &Target,
    before: Option<ProcSample>,
    units: f64,
) {
    if let (Some(before), Some(after)) = (before, server_sample(target)) {
        let cpu = (after.cpu - before.cpu).as_secs_f64();
        report.add(&format!("{prefix}.server_cpu_s"), cpu, "s", false);
        if units > 0.0 {
            report.add(
                &format!("{prefix}.server_cpu_us_per_msg"),
                cpu * 1e6 / units,
                "us",
                false,
            );
        }
        report.add(
            &format!("{prefix}.server_peak_rss_mib"),
            after.peak_kib as f64 / 1024.0,
            "MiB",
            false,
        );
    }
}

fn finish(report: &mut Report, load: &Load, net: &Net) {
    report.errors = load.errors;
    report.first_error = load.first_error.clone();
    let _ = net;
}

/// Sizes of the `direct` test.
#[derive(Clone, Debug)]
pub struct DirectOpts {
    /// Clients, in pairs (rounded down to even).
    pub clients: usize,
    /// Messages each client sends its partner.
    pub messages: usize,
    /// At most this many of a client's messages undelivered at once; unlimited if `None`.
    pub in_flight: Option<u32>,
    /// Total messages a second over all clients; full speed if `None`.
    pub rate: Option<f64>,
    /// Figure names start with this (`direct`, `direct8`, ...).
    pub label: String,
}

/// `direct`: clients in pairs, each sending `messages` to its partner; throughput, and
/// latency from the send timestamp each message carries.
pub fn direct(target: &Target, opts: &DirectOpts) -> io::Result<Report> {
    let n = opts.clients / 2 * 2;
    let mut net = Net::new(target.addr, target.sources)?;
    let mut load = Load::new(target.proto);
    let names = names("d", n);
    // arsc: each pair in a room of its own, so no login is announced to the crowd.
    connect_all(&mut net, &mut load, target, &names, 500, true, &|i| {
        format!("p{}", i / 2)
    })?;
    if target.proto.needs_chats() {
        pair_chats(&mut net, &mut load, target, &names)?;
    }
    settle(
        &mut net,
        &mut load,
        Duration::from_millis(300),
        target.timeout,
    )?;
    let total = (n * opts.messages) as u64;
    let mut remaining = vec![opts.messages; n];
    let cap = opts.in_flight.unwrap_or(u32::MAX);
    let before = server_sample(target);
    let own_before = stats::own_cpu();
    let t0 = load.now();
    load.record_from = t0;
    let mut send_lag = Latencies::default();
    let writes_before = net.writes;
    match opts.rate {
        Some(rate) => paced(
            &mut net,
            &mut load,
            target,
            &names,
            Pacer::new(rate, total, n),
            (&mut remaining, cap),
            &mut send_lag,
        )?,
        None => full_speed(&mut net, &mut load, target, &names, &mut remaining, cap)?,
    }
    let elapsed =
        Duration::from_nanos(load.last_delivery.saturating_sub(t0)).max(Duration::from_nanos(1));
    let own = (stats::own_cpu() - own_before).as_secs_f64();
    let mut report = Report::default();
    let p = &opts.label;
    report.add(
        &format!("{p}.msgs_per_s"),
        load.delivered as f64 / elapsed.as_secs_f64(),
        "msgs/s",
        true,
    );
    report.add(
        &format!("{p}.delivered"),
        load.delivered as f64,
        "msgs",
        true,
    );
    report.add(
        &format!("{p}.p50_ms"),
        load.lat.percentile(50.0).as_secs_f64() * 1e3,
        "ms",
        false,
    );
    report.add(
        &format!("{p}.p99_ms"),
        load.lat.percentile(99.0).as_secs_f64() * 1e3,
        "ms",
        false,
    );
    report.add(
        &format!("{p}.max_ms"),
        load.lat.max().as_secs_f64() * 1e3,
        "ms",
        false,
    );
    if opts.rate.is_some() {
        // How late the generator sent (after each message's due time): a paced run whose
        // generator kept its schedule has this well under a millisecond.
        report.add(
            &format!("{p}.send_lag_p99_ms"),
            send_lag.percentile(99.0).as_secs_f64() * 1e3,
            "ms",
            false,
        );
        // Writes per message sent: 1 when each left on its own (answers to pings add a
        // few), below 1 when messages were held back and left together.
        report.add(
            &format!("{p}.writes_per_msg"),
            (net.writes - writes_before) as f64 / send_lag.len().max(1) as f64,
            "",
            false,
        );
    }
    add_server(&mut report, p, target, before, load.delivered as f64);
    report.add(&format!("{p}.generator_cpu_s"), own, "s", false);
    report.add(&format!("{p}.elapsed_s"), elapsed.as_secs_f64(), "s", false);
    finish(&mut report, &load, &net);
    Ok(report)
}

/// The full-speed loop of `direct`: every client sends while it has messages left, is
/// under its in-flight cap and its socket takes them; written at the end of each turn.
fn full_speed(
    net: &mut Net,
    load: &mut Load,
    target: &Target,
    names: &[String],
    remaining: &mut [usize],
    cap: u32,
) -> io::Result<()> {
    let n = names.len();
    let total: u64 = remaining.iter().map(|&m| m as u64).sum();
    let started = Instant::now();
    let mut line = Vec::with_capacity(128);
    let mut cursor = 0;
    while load.delivered < total {
        if load.timed_out(started, target.timeout, total) {
            break;
        }
        let mut idle_rounds = 0;
        while idle_rounds < n {
            let i = cursor;
            cursor = (cursor + 1) % n;
            if !(remaining[i] > 0 && load.inflight[i] < cap && net.pending(i) < 2048) {
                idle_rounds += 1;
                continue;
            }
            idle_rounds = 0;
            line.clear();
            let now = load.now();
            target
                .proto
                .message(&mut line, &names[i], &names[i ^ 1], &load.tokens[i], now, i);
            net.send(i, &line);
            remaining[i] -= 1;
            load.inflight[i] += 1;
        }
        net.turn(Duration::from_millis(1), load)?;
    }
    Ok(())
}

/// Readiness events the paced loop handles before it looks at its schedule again.
const PACED_EVENTS_PER_TURN: usize = 256;

/// The paced loop of `direct` (`--rate`): the messages [`Pacer`] says are due are sent
/// one by one, each stamped right before its own write; between them the replies are
/// read in batches of at most [`PACED_EVENTS_PER_TURN`] events, waiting at most 1 ms
/// (epoll's resolution) when nothing is due. `send_lag` gets how late each message left
/// against its due time.
fn paced(
    net: &mut Net,
    load: &mut Load,
    target: &Target,
    names: &[String],
    mut pacer: Pacer,
    (remaining, cap): (&mut [usize], u32),
    send_lag: &mut Latencies,
) -> io::Result<()> {
    let total: u64 = remaining.iter().map(|&m| m as u64).sum();
    net.set_events_per_turn(PACED_EVENTS_PER_TURN);
    let started = Instant::now();
    let t0 = load.now();
    let mut line = Vec::with_capacity(128);
    while load.delivered < total {
        if load.timed_out(started, target.timeout, total) {
            break;
        }
        let due = pacer.take(load.now().saturating_sub(t0));
        for k in due.clone() {
            let i = pacer.client_of(k);
            if remaining[i] == 0 || load.inflight[i] >= cap {
                // Under an in-flight cap: this one (and the rest, in order) waits.
                pacer.put_back(k);
                break;
            }
            line.clear();
            let now = load.now();
            target
                .proto
                .message(&mut line, &names[i], &names[i ^ 1], &load.tokens[i], now, i);
            net.send_now(i, &line);
            send_lag.push((now - t0).saturating_sub(pacer.due_at(k)));
            remaining[i] -= 1;
            load.inflight[i] += 1;
        }
        // Wait for replies only while nothing is due; otherwise just take what is ready.
        let wait = match pacer.next_due() {
            Some(at) if at > load.now().saturating_sub(t0) => Duration::from_millis(1),
            Some(_) => Duration::ZERO,
            None => Duration::from_millis(1),
        };
        net.turn(wait, load)?;
    }
    Ok(())
}

/// Sizes of the `idle` test.
#[derive(Clone, Debug)]
pub struct IdleOpts {
    /// Clients.
    pub clients: usize,
    /// Connect only (no `uname`): what a connection costs, and how many are held.
    pub connect_only: bool,
    /// How long they stay idle before the memory is read.
    pub hold: Duration,
}

/// `idle`: `clients` logged-in clients doing nothing; the server's RSS per client.
pub fn idle(target: &Target, opts: &IdleOpts) -> io::Result<Report> {
    let mut net = Net::new(target.addr, target.sources)?;
    let mut load = Load::new(target.proto);
    let before = server_sample(target);
    let started = Instant::now();
    let names = names("i", opts.clients);
    connect_all(
        &mut net,
        &mut load,
        target,
        &names,
        500,
        !opts.connect_only,
        // arsc: a room each, so the memory read is the clients', not a backlog of
        // 2000 x 2000 enter notices.
        &|i| format!("i{i}"),
    )?;
    settle(
        &mut net,
        &mut load,
        Duration::from_millis(300),
        target.timeout,
    )?;
    let in_s = started.elapsed().as_secs_f64();
    hold(&mut net, &mut load, opts.hold)?;
    let mut report = Report::default();
    let p = if opts.connect_only { "conns" } else { "idle" };
    report.add(&format!("{p}.clients"), opts.clients as f64, "", true);
    report.add(&format!("{p}.setup_s"), in_s, "s", false);
    if let (Some(b), Some(a)) = (before, server_sample(target)) {
        let per = (a.rss_kib as f64 - b.rss_kib as f64) / opts.clients.max(1) as f64;
        report.add(&format!("{p}.rss_kib_per_client"), per, "KiB", false);
        report.add(
            &format!("{p}.server_rss_mib"),
            a.rss_kib as f64 / 1024.0,
            "MiB",
            false,
        );
        report.add(
            &format!("{p}.server_peak_rss_mib"),
            a.peak_kib as f64 / 1024.0,
            "MiB",
            false,
        );
    }
    report.add(
        &format!("{p}.held"),
        (net.len() - net.closed) as f64,
        "conns",
        true,
    );
    finish(&mut report, &load, &net);
    Ok(report)
}

/// `logins`: `clients` clients log in one after another, each announced to all present;
/// total time until every login is answered and every announcement arrived, and the p99
/// of one login (connect to `+OK uname`).
pub fn logins(target: &Target, clients: usize) -> io::Result<Report> {
    let mut net = Net::new(target.addr, target.sources)?;
    let mut load = Load::new(target.proto);
    let before = server_sample(target);
    let t0 = load.now();
    let started = Instant::now();
    for i in 0..clients {
        let conn = net.connect()?;
        load.grow(conn);
        load.login_sent[conn] = load.now();
        let mut out = Vec::new();
        target
            .proto
            .login(&mut out, &format!("l{i}"), &Proto::login_room(i));
        net.send(conn, &out);
        while load.logins <= i {
            if started.elapsed() > target.timeout {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{i} of {clients} logged in"),
                ));
            }
            net.turn(Duration::from_millis(2), &mut load)?;
        }
    }
    let expected = target.proto.announcements(clients as u64);
    while load.nusers < expected && started.elapsed() < target.timeout {
        net.turn(Duration::from_millis(5), &mut load)?;
    }
    if load.nusers < expected {
        load.error(format!("{} of {expected} announcements", load.nusers));
    }
    let end = load.last_login.max(load.last_nuser);
    let mut report = Report::default();
    report.add(
        "logins.total_s",
        end.saturating_sub(t0) as f64 / 1e9,
        "s",
        false,
    );
    report.add(
        "logins.p99_ms",
        load.login_lat.percentile(99.0).as_secs_f64() * 1e3,
        "ms",
        false,
    );
    add_server(&mut report, "logins", target, before, 0.0);
    finish(&mut report, &load, &net);
    Ok(report)
}

/// Sizes of the `storm` test.
#[derive(Clone, Debug)]
pub struct StormOpts {
    /// Clients logging in at once.
    pub clients: usize,
    /// Clients already logged in, in pairs, exchanging messages meanwhile.
    pub background: usize,
    /// Their messages a second, all together.
    pub rate: f64,
}

/// `storm`: `clients` log in at once while `background` clients chat; time until all are
/// in, and the p99 of the background's messages sent meanwhile.
pub fn storm(target: &Target, opts: &StormOpts) -> io::Result<Report> {
    let mut net = Net::new(target.addr, target.sources)?;
    let mut load = Load::new(target.proto);
    let bg = opts.background / 2 * 2;
    let bg_names = names("b", bg);
    connect_all(&mut net, &mut load, target, &bg_names, 500, true, &|i| {
        format!("p{}", i / 2)
    })?;
    if target.proto.needs_chats() {
        pair_chats(&mut net, &mut load, target, &bg_names)?;
    }
    settle(
        &mut net,
        &mut load,
        Duration::from_millis(200),
        target.timeout,
    )?;
    let before = server_sample(target);
    let started = Instant::now();
    let t0 = load.now();
    load.record_from = t0;
    let mut sent: u64 = 0;
    let mut cursor = 0;
    let mut line = Vec::with_capacity(128);
    // The storm: every client connects and sends its uname at once.
    for i in 0..opts.clients {
        let conn = net.connect()?;
        load.grow(conn);
        load.login_sent[conn] = load.now();
        let mut out = Vec::new();
        target.proto.login(&mut out, &format!("s{i}"), "storm");
        net.send(conn, &out);
    }
    let want = bg + opts.clients;
    let mut all_in = None;
    let mut tail_until = None;
    loop {
        if all_in.is_none() && load.logins >= want {
            let now = load.now();
            all_in = Some(now);
            load.record_until = now;
            tail_until = Some(Instant::now() + Duration::from_millis(200));
        }
        if let Some(until) = tail_until {
            if Instant::now() > until {
                break;
            }
        }
        if started.elapsed() > target.timeout {
            load.error(format!("{} of {want} logged in", load.logins));
            break;
        }
        if bg > 0 && all_in.is_none() {
            let due = (opts.rate * started.elapsed().as_secs_f64()) as u64;
            while sent < due {
                let i = cursor;
                cursor = (cursor + 1) % bg;
                line.clear();
                let now = load.now();
                let token = &load.tokens[i];
                target
                    .proto
                    .message(&mut line, &bg_names[i], &bg_names[i ^ 1], token, now, i);
                net.send(i, &line);
                sent += 1;
            }
        }
        net.turn(Duration::from_millis(1), &mut load)?;
    }
    let mut report = Report::default();
    let t = all_in.map_or(f64::NAN, |t| t.saturating_sub(t0) as f64 / 1e9);
    report.add("storm.all_in_s", t, "s", false);
    report.add(
        "storm.bg_p99_ms",
        load.lat.percentile(99.0).as_secs_f64() * 1e3,
        "ms",
        false,
    );
    report.add("storm.bg_msgs", load.lat.len() as f64, "msgs", true);
    add_server(&mut report, "storm", target, before, 0.0);
    finish(&mut report, &load, &net);
    Ok(report)
}

/// Sizes of the `room` test (arsc's room fan-out).
#[derive(Clone, Debug)]
pub struct RoomOpts {
    /// Clients, all in one room.
    pub clients: usize,
    /// How many of them post.
    pub senders: usize,
    /// Posts each sender makes.
    pub posts: usize,
    /// At most this many of a sender's posts not yet back to it; unlimited if `None`.
    pub in_flight: Option<u32>,
}

/// `room`: `clients` in one room, `senders` of them posting `posts` each as fast as
/// they can; every post goes to every member, the poster included, so deliveries are
/// `senders x posts x clients`. Deliveries a second and their latency.
pub fn room(target: &Target, opts: &RoomOpts) -> io::Result<Report> {
    if target.proto != Proto::Arsc {
        return Err(io::Error::other("the room test needs arsc"));
    }
    let mut net = Net::new(target.addr, target.sources)?;
    let mut load = Load::new(target.proto);
    load.fanout = true;
    let names = names("r", opts.clients);
    connect_all(&mut net, &mut load, target, &names, 500, true, &|_| {
        "bench".into()
    })?;
    settle(
        &mut net,
        &mut load,
        Duration::from_millis(300),
        target.timeout,
    )?;
    let senders = opts.senders.min(opts.clients).max(1);
    let total = (senders * opts.posts * opts.clients) as u64;
    let mut remaining = vec![opts.posts; senders];
    let cap = opts.in_flight.unwrap_or(u32::MAX);
    let before = server_sample(target);
    let own_before = stats::own_cpu();
    let t0 = load.now();
    load.record_from = t0;
    let started = Instant::now();
    let mut line = Vec::with_capacity(160);
    while load.delivered < total {
        if load.timed_out(started, target.timeout, total) {
            break;
        }
        if load.errors > 0 {
            break;
        }
        for (i, left) in remaining.iter_mut().enumerate() {
            while *left > 0 && load.inflight[i] < cap && net.pending(i) < 2048 {
                line.clear();
                Proto::room_post(&mut line, &load.tokens[i], load.now(), i);
                net.send(i, &line);
                *left -= 1;
                load.inflight[i] += 1;
            }
        }
        net.turn(Duration::from_millis(1), &mut load)?;
    }
    let elapsed =
        Duration::from_nanos(load.last_delivery.saturating_sub(t0)).max(Duration::from_nanos(1));
    let own = (stats::own_cpu() - own_before).as_secs_f64();
    let mut report = Report::default();
    report.add(
        "room.deliveries_per_s",
        load.delivered as f64 / elapsed.as_secs_f64(),
        "msgs/s",
        true,
    );
    report.add("room.delivered", load.delivered as f64, "msgs", true);
    report.add(
        "room.p50_ms",
        load.lat.percentile(50.0).as_secs_f64() * 1e3,
        "ms",
        false,
    );
    report.add(
        "room.p99_ms",
        load.lat.percentile(99.0).as_secs_f64() * 1e3,
        "ms",
        false,
    );
    add_server(&mut report, "room", target, before, load.delivered as f64);
    report.add("room.generator_cpu_s", own, "s", false);
    report.add("room.elapsed_s", elapsed.as_secs_f64(), "s", false);
    finish(&mut report, &load, &net);
    Ok(report)
}

/// Sizes of the `offline` test.
#[derive(Clone, Debug)]
pub struct OfflineOpts {
    /// Sending clients.
    pub senders: usize,
    /// Messages each has waiting for their acknowledgement at most.
    pub in_flight: u32,
    /// Messages in all.
    pub messages: usize,
    /// Offline accounts `acct0`..`acct{n-1}` the messages go to, round-robin (they must
    /// exist: `switchboard-bench seed`).
    pub accounts: usize,
}

/// `offline`: `senders` clients each keep `in_flight` messages to offline accounts
/// waiting for their `+OK chatm 'message stored'`; acknowledged messages a second, overall
/// and per tenth of the run, and the p99 of an acknowledgement.
pub fn offline(target: &Target, opts: &OfflineOpts) -> io::Result<Report> {
    let mut net = Net::new(target.addr, target.sources)?;
    let mut load = Load::new(target.proto);
    let senders = names("o", opts.senders);
    connect_all(&mut net, &mut load, target, &senders, 500, true, &|_| {
        "offline".into()
    })?;
    settle(
        &mut net,
        &mut load,
        Duration::from_millis(200),
        target.timeout,
    )?;
    let before = server_sample(target);
    let started = Instant::now();
    let total = opts.messages as u64;
    let mut sent: u64 = 0;
    let mut line = String::with_capacity(64);
    let tenth = (total / 10).max(1);
    let mut marks: Vec<Duration> = Vec::new();
    while load.stored < total {
        if started.elapsed() > target.timeout {
            load.error(format!("{} of {total} acknowledged", load.stored));
            break;
        }
        if load.errors > 100 {
            break;
        }
        for i in 0..opts.senders {
            while sent < total && load.inflight[i] < opts.in_flight {
                let account = sent as usize % opts.accounts.max(1);
                let now = load.now();
                line.clear();
                let _ = write!(line, "chatm o{i} acct{account} 't{now}.{i}'\r\n");
                net.send(i, line.as_bytes());
                load.sent_at[i].push_back(now);
                load.inflight[i] += 1;
                sent += 1;
            }
        }
        net.turn(Duration::from_millis(1), &mut load)?;
        while load.stored >= tenth * (marks.len() as u64 + 1) && marks.len() < 10 {
            marks.push(started.elapsed());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut report = Report::default();
    report.add(
        "offline.acked_per_s",
        load.stored as f64 / elapsed,
        "msgs/s",
        true,
    );
    report.add(
        "offline.p99_ack_ms",
        load.ack_lat.percentile(99.0).as_secs_f64() * 1e3,
        "ms",
        false,
    );
    if marks.len() >= 2 {
        let rate = |i: usize| {
            let from = if i == 0 { Duration::ZERO } else { marks[i - 1] };
            tenth as f64 / (marks[i] - from).as_secs_f64().max(1e-9)
        };
        report.add("offline.first_tenth_per_s", rate(0), "msgs/s", true);
        report.add(
            "offline.last_tenth_per_s",
            rate(marks.len() - 1),
            "msgs/s",
            true,
        );
    }
    add_server(&mut report, "offline", target, before, load.stored as f64);
    finish(&mut report, &load, &net);
    Ok(report)
}
