//! [`Sim`]: one deterministic run. The real [`Server`] in the middle, driven through the
//! same [`Pump`] as every runtime (its gate, group commit and retry); around it virtual
//! clients, a virtual network, a virtual clock, a store model and scheduled faults; the
//! oracle after every step, reading every output as the server produced it (the pump's
//! tap).
//!
//! A step is one event: the earliest of the server's deadline and the queue's head. The
//! clock jumps to it. Two phases: safety (faults on, clients misbehave) until
//! `virtual_secs`, then liveness (faults healed, the server up, bans lifted, everyone
//! back; a final round of messages), then a drain (no new timers or actions, the network
//! and the store finish what is in flight) and the liveness expectations.

use core::net::{IpAddr, Ipv4Addr};

use std::panic::{catch_unwind, AssertUnwindSafe};

use switchboard_proto::{
    Action, Batch, CloseReason, ConnId, Effect, EffectId, EffectResult, Emitted, Input, Instant,
    Now, Output, PasswordHash, Protocol, Pump, Seq, Server,
};

use crate::choices::{ChoiceSource, Choices, Purpose, Seeded};
use crate::client::admin::AdminClient;
use crate::client::arsc::ArscClient;
use crate::client::ims::ImsClient;
use crate::client::ims::ALIVE_MS;
use crate::client::opcode::OpcodeClient;
use crate::client::ws2017::{Knobs, Ws2017Client};
use crate::client::LoginClient;
use crate::client::{Act, Directory, Heard};
use crate::invariants::{Expected, Limits};
use crate::net::{prefetch, Net, Owner};
use crate::options::{Overrides, SimOptions};
use crate::oracle::durable::{fake_hash, fake_ims_hash};
use crate::oracle::{check, EmitCx, Oracle};
use crate::queue::EventQueue;
use crate::report::{Failure, Violation};
use crate::store::StoreModel;
use crate::trace::{Record, RollingHash, Trace};

mod faults;
mod network;

/// Unix time, in milliseconds, at virtual time zero.
pub const WALL_ORIGIN_MS: u64 = 1_700_000_000_000;

/// The most unframed input an ims connection may hold: four documents of the default
/// 64 KiB limit wait behind a LOGIN's password check.
const IMS_INBOUND: usize = 4 * 64 * 1024;

/// Records kept for a failure report.
const TRACE_RECORDS: usize = 300;

#[derive(Clone, Debug)]
enum Ev {
    /// A connection attempt reaches the server.
    Accept(ConnId),
    /// The next client-to-server chunk arrives.
    Up(ConnId),
    /// The next server-to-client chunk arrives.
    Down(ConnId),
    /// The client learns its connection is gone.
    ClientReset(ConnId),
    /// The server learns the client's side is gone.
    ServerReset(ConnId),
    /// The client learns its connection attempt was refused.
    Refused(ConnId),
    Wake(u32, u32),
    AdminWake(u32),
    /// A login client's turn (index, generation).
    LoginWake(u32, u32),
    Effect(Box<(u32, EffectId, EffectResult)>),
    Commit(u32),
    Crash,
    Restart,
    Cut,
    Hold,
    StoreFail,
    Heal,
    FinalRound,
    End,
}

impl Ev {
    fn name(&self) -> (&'static str, u64) {
        match self {
            Ev::Accept(c) => ("accept", c.0),
            Ev::Up(c) => ("up", c.0),
            Ev::Down(c) => ("down", c.0),
            Ev::ClientReset(c) => ("client-reset", c.0),
            Ev::ServerReset(c) => ("server-reset", c.0),
            Ev::Refused(c) => ("refused", c.0),
            Ev::Wake(i, _) => ("wake client", u64::from(*i)),
            Ev::AdminWake(_) => ("wake admin", 0),
            Ev::LoginWake(i, _) => ("wake login client", u64::from(*i)),
            Ev::Effect(e) => ("effect", e.1 .0),
            Ev::Commit(b) => ("commit boot", u64::from(*b)),
            Ev::Crash => ("CRASH", 0),
            Ev::Restart => ("RESTART", 0),
            Ev::Cut => ("CUT", 0),
            Ev::Hold => ("STALL", 0),
            Ev::StoreFail => ("STORE-FAIL", 0),
            Ev::Heal => ("HEAL", 0),
            Ev::FinalRound => ("FINAL-ROUND", 0),
            Ev::End => ("END", 0),
        }
    }

    /// Whether the event still runs once the run drains (no new timers or actions).
    fn drains(&self) -> bool {
        matches!(
            self,
            Ev::Accept(_)
                | Ev::Up(_)
                | Ev::Down(_)
                | Ev::ClientReset(_)
                | Ev::ServerReset(_)
                | Ev::Refused(_)
                | Ev::Effect(_)
                | Ev::Commit(_)
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Safety,
    Liveness,
    Drain,
    Done,
}

/// What a run exercised: counts that show the fault model and the rare branches were
/// reached (TigerBeetle's coverage marks, for the simulator itself).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Steps.
    pub steps: u64,
    /// Server crashes.
    pub crashes: u64,
    /// Crashes during a commit whose batch landed (durable, never acknowledged).
    pub crash_landed: u64,
    /// Restarts with offline messages in the store.
    pub restarts_with_mail: u64,
    /// Commits.
    pub commits: u64,
    /// Failed commit attempts.
    pub commit_failures: u64,
    /// Connections cut.
    pub cuts: u64,
    /// Connections stalled.
    pub stalls: u64,
    /// Connection attempts refused (server down).
    pub refused: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Server closes by reason: quit, timeout, slow reader, kicked, banned, other.
    pub closes: [u64; 6],
    /// Messages relayed to an online recipient.
    pub relayed: u64,
    /// Messages acknowledged as stored.
    pub stored: u64,
    /// Messages refused: mailbox full.
    pub mailbox_full: u64,
    /// Failed effects.
    pub effects_failed: u64,
    /// Final-round messages checked.
    pub final_messages: u64,
    /// ims logins answered with result 1.
    pub ims_logins: u64,
    /// Messages read by ims clients that came from the store (drained at a login).
    pub ims_stored_reads: u64,
    /// ims connections closed by the ALIVE timeout.
    pub ims_alive_closes: u64,
    /// Messages from ws2017 clients read by ims clients (live or from the store).
    pub ws2017_to_ims: u64,
    /// Messages from ims clients the server handed to ws2017 clients.
    pub ims_to_ws2017: u64,
    /// arsc connects answered `ok`.
    pub arsc_logins: u64,
    /// opcode logins answered `212 400`.
    pub opcode_logins: u64,
    /// Messages read by arsc and opcode clients that came from the store.
    pub login_stored_reads: u64,
    /// Direct messages (from any protocol) read by arsc clients as whispers.
    pub to_arsc: u64,
    /// Direct messages (from any protocol) read by opcode clients as `220`.
    pub to_opcode: u64,
    /// Direct messages read by their recipient's client, by the sender's protocol (row)
    /// and the recipient's (column): ws2017, ims, arsc, opcode.
    pub routes: [[u64; 4]; 4],
}

impl Counters {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counters) {
        let fields = [
            (&mut self.steps, other.steps),
            (&mut self.crashes, other.crashes),
            (&mut self.crash_landed, other.crash_landed),
            (&mut self.restarts_with_mail, other.restarts_with_mail),
            (&mut self.commits, other.commits),
            (&mut self.commit_failures, other.commit_failures),
            (&mut self.cuts, other.cuts),
            (&mut self.stalls, other.stalls),
            (&mut self.refused, other.refused),
            (&mut self.accepted, other.accepted),
            (&mut self.relayed, other.relayed),
            (&mut self.stored, other.stored),
            (&mut self.mailbox_full, other.mailbox_full),
            (&mut self.effects_failed, other.effects_failed),
            (&mut self.final_messages, other.final_messages),
            (&mut self.ims_logins, other.ims_logins),
            (&mut self.ims_stored_reads, other.ims_stored_reads),
            (&mut self.ims_alive_closes, other.ims_alive_closes),
            (&mut self.ws2017_to_ims, other.ws2017_to_ims),
            (&mut self.ims_to_ws2017, other.ims_to_ws2017),
            (&mut self.arsc_logins, other.arsc_logins),
            (&mut self.opcode_logins, other.opcode_logins),
            (&mut self.login_stored_reads, other.login_stored_reads),
            (&mut self.to_arsc, other.to_arsc),
            (&mut self.to_opcode, other.to_opcode),
        ];
        for (mine, theirs) in fields {
            *mine += theirs;
        }
        for (mine, theirs) in self.closes.iter_mut().zip(other.closes) {
            *mine += theirs;
        }
        for (row, theirs) in self.routes.iter_mut().zip(other.routes) {
            for (mine, theirs) in row.iter_mut().zip(theirs) {
                *mine += theirs;
            }
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// The options it ran with.
    pub options: SimOptions,
    /// Virtual time at the end, milliseconds.
    pub virtual_ms: u64,
    /// The rolling hash of every input and output.
    pub hash: u64,
    /// The failure, if an invariant broke.
    pub failure: Option<Failure>,
    /// What the run exercised.
    pub counters: Counters,
}

/// One simulation run. See the module docs.
pub struct Sim<S: ChoiceSource = Seeded> {
    opts: SimOptions,
    now: Instant,
    step: u64,
    phase: Phase,
    queue: EventQueue<Ev>,
    /// The running server's pump; `None` while it is down.
    server: Option<Pump>,
    boot: u32,
    /// The batch the pump asked to commit, while its commit is scheduled.
    in_flight: Option<Batch>,
    store: StoreModel,
    effects_running: usize,
    server_open: usize,
    fail_until: Instant,
    net: Net,
    clients: Vec<Ws2017Client<S::Stream>>,
    /// ims, arsc and opcode clients, each logged in to its own account.
    logins: Vec<Box<dyn LoginClient>>,
    /// The most unframed input a login client's connection may hold (the largest of
    /// its protocols').
    login_inbound: usize,
    admin: AdminClient<S::Stream>,
    dir: Directory,
    /// The `name_changes` of each client the directory reflects.
    dir_seen: Vec<u32>,
    net_rng: S::Stream,
    fault_rng: S::Stream,
    store_rng: S::Stream,
    source: S,
    /// What the run was built from, to replay it with the trace on.
    overrides: Overrides,
    replay: S,
    oracle: Oracle,
    trace: Trace,
    hash: RollingHash,
    trail: Option<Vec<u64>>,
    expect: Option<Vec<u64>>,
    acts: Vec<Act>,
    /// The lines a delivery hands its client, kept to reuse the buffer.
    heard: Vec<Heard>,
    /// Connections with written bytes to report at the end of the step.
    report_due: Vec<ConnId>,
    failure: Option<(u64, Instant, Violation)>,
    counters: Counters,
}

impl Sim<Seeded> {
    /// The run of `seed`, its options drawn from the seed and then `overrides`.
    pub fn new(seed: u64, overrides: &Overrides) -> Self {
        Sim::with_source(Seeded(seed), seed, overrides)
    }
}

impl<S: ChoiceSource> Sim<S> {
    /// A run whose decisions come from `source` (a seed, or a fuzzer's bytes); `seed` is
    /// what reports print.
    pub fn with_source(mut source: S, seed: u64, overrides: &Overrides) -> Self {
        let mut options_rng = source.stream(Purpose::Options, 0);
        let opts = SimOptions::draw(seed, &mut options_rng, overrides);
        let ips: Vec<IpAddr> = (0..opts.ip_pool.max(1))
            .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8 + 1)))
            .collect();
        let mut accounts: Vec<String> =
            (0..opts.account_pool).map(|i| format!("acct{i}")).collect();
        accounts.extend(["alice".to_owned(), "Bob".to_owned()]);
        let knobs = Knobs::new(&opts);
        let clients: Vec<Ws2017Client<S::Stream>> = (0..opts.clients)
            .map(|i| {
                let rng = source.stream(Purpose::Client, u64::from(i));
                Ws2017Client::new(i, rng, ips[i as usize % ips.len()], knobs)
            })
            .collect();
        let admin = AdminClient::new(source.stream(Purpose::Admin, 0), opts.admin_every_ms);
        // ims, arsc and opcode clients log in to accounts that exist from the start
        // (`im0`, `ar0`, `op0`, ...), each from an address of its own, so the
        // administrator's bans and deletions, which pick from the ws2017 side, never reach
        // them. Every one of them may write to every other.
        let kinds = [
            ("im", opts.ims_clients),
            ("ar", opts.arsc_clients),
            ("op", opts.opcode_clients),
        ];
        let login_accounts: Vec<String> = kinds
            .iter()
            .flat_map(|&(prefix, n)| (0..n).map(move |i| format!("{prefix}{i}")))
            .collect();
        let mut store = StoreModel::default();
        for name in &login_accounts {
            let password = format!("pw-{name}");
            let account = switchboard_proto::Account {
                name: switchboard_proto::UserName::parse(name).expect("a valid name"),
                password: PasswordHash(fake_hash(&password)),
                ims_password: PasswordHash(fake_ims_hash(&password)),
                email: None,
                gender: None,
                level: 0,
                banned: false,
                created_ms: 0,
            };
            store
                .committed
                .apply(&switchboard_proto::Change::AccountCreated(account));
        }
        let spread = (opts.virtual_secs * 100).clamp(1, 60_000);
        let mut logins: Vec<Box<dyn LoginClient>> = Vec::new();
        for (kind, &(_, n)) in kinds.iter().enumerate() {
            for i in 0..n {
                let at = logins.len() as u32;
                let index = ((kind as u64 + 1) << 32) + u64::from(i);
                let mut rng = source.stream(Purpose::Client, index);
                let start = Instant::from_millis(rng.below(spread));
                let (hi, lo) = ((i / 250) as u8, (i % 250) as u8 + 1);
                let ip = IpAddr::V4(Ipv4Addr::new(10, kind as u8 + 1, hi, lo));
                let name = login_accounts[at as usize].clone();
                let others = login_accounts.clone();
                let idx = opts.clients + at;
                logins.push(match kind {
                    0 => Box::new(ImsClient::new(idx, ip, name, others, rng, start)),
                    1 => Box::new(ArscClient::new(idx, ip, name, others, rng, start)),
                    _ => Box::new(OpcodeClient::new(idx, ip, name, others, rng, start)),
                });
            }
        }
        let login_inbound = [
            (opts.ims_clients, IMS_INBOUND),
            (opts.arsc_clients, 4 * crate::client::arsc::MAX_REQUEST),
            (opts.opcode_clients, 2 * crate::client::opcode::MAX_LINE),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(_, bytes)| *bytes)
        .max()
        .unwrap_or(0);
        let dir = Directory {
            names: vec![None; opts.clients as usize],
            accounts,
            login_accounts,
            ips,
            healed: false,
        };
        let mut sim = Sim {
            now: Instant::ZERO,
            step: 0,
            phase: Phase::Safety,
            queue: EventQueue::new(),
            server: None,
            boot: 0,
            in_flight: None,
            store,
            effects_running: 0,
            server_open: 0,
            fail_until: Instant::ZERO,
            net: Net::default(),
            clients,
            logins,
            login_inbound,
            admin,
            dir_seen: vec![0; opts.clients as usize],
            dir,
            net_rng: source.stream(Purpose::Network, 0),
            fault_rng: source.stream(Purpose::Faults, 0),
            store_rng: source.stream(Purpose::Store, 0),
            oracle: Oracle::new(opts.clients, opts.login_clients(), &opts.config(0)),
            trace: Trace::new(0),
            hash: RollingHash::default(),
            trail: None,
            expect: None,
            acts: Vec::new(),
            heard: Vec::new(),
            report_due: Vec::new(),
            failure: None,
            counters: Counters::default(),
            replay: source.fresh(),
            source,
            overrides: *overrides,
            opts,
        };
        sim.oracle.track_direct = sim.opts.arsc_clients + sim.opts.opcode_clients > 0;
        sim.start();
        sim
    }

    fn start(&mut self) {
        self.boot_server();
        // Clients arrive over the first tenth of the safety phase (at most a minute).
        let spread = (self.opts.virtual_secs * 100).min(60_000);
        for i in 0..self.clients.len() {
            let mut acts = std::mem::take(&mut self.acts);
            self.clients[i].start(spread, &mut acts);
            self.apply(Owner::Client(i as u32), &mut acts);
            self.acts = acts;
        }
        for i in 0..self.logins.len() {
            self.login_schedule(i);
        }
        let mut acts = std::mem::take(&mut self.acts);
        acts.push(Act::Wake(self.opts.admin_every_ms));
        self.apply(Owner::Admin, &mut acts);
        self.acts = acts;
        let o = self.opts.clone();
        for (every, ev) in [
            (o.cut_every_ms, Ev::Cut),
            (o.hold_every_ms, Ev::Hold),
            (o.store_fail_every_ms, Ev::StoreFail),
            (o.crash_every_ms, Ev::Crash),
        ] {
            self.schedule_fault(every, ev);
        }
        let heal = Instant::from_millis(o.virtual_secs * 1000);
        self.queue.push(heal, Ev::Heal);
        if !o.bench {
            let settle = o.settle_secs * 1000;
            self.queue.push(heal + ms(settle * 2 / 3), Ev::FinalRound);
            self.queue.push(heal + ms(settle), Ev::End);
        }
    }

    /// The options of this run.
    pub fn options(&self) -> &SimOptions {
        &self.opts
    }

    /// Keeps the hash after every step, for a determinism check.
    pub fn record_trail(&mut self) {
        self.trail = Some(Vec::new());
    }

    /// The hashes kept by [`record_trail`](Self::record_trail).
    pub fn take_trail(&mut self) -> Vec<u64> {
        self.trail.take().unwrap_or_default()
    }

    /// Fails at the first step whose hash differs from `trail` (another run's).
    pub fn expect_trail(&mut self, trail: Vec<u64>) {
        self.expect = Some(trail);
    }

    fn schedule_fault(&mut self, every: Option<u64>, ev: Ev) {
        if let Some(every) = every {
            if self.phase == Phase::Safety {
                let at = self.now + ms(self.fault_rng.around(every).max(1));
                self.queue.push(at, ev);
            }
        }
    }

    fn now(&self) -> Now {
        Now::at(self.now, WALL_ORIGIN_MS)
    }

    fn delay(&mut self) -> u64 {
        let (lo, hi) = self.opts.delay_ms;
        self.net_rng.range(lo..=hi)
    }

    /// Records what `record` makes, if the trace is on.
    fn note(&mut self, record: impl FnOnce() -> Record) {
        if self.trace.on() {
            self.trace.push(self.step, self.now, record());
        }
    }

    fn fail(&mut self, v: Violation) {
        fail_into(&mut self.failure, self.step, self.now, v);
    }

    /// Runs one step; `false` once the run is over (finished or failed).
    pub fn step(&mut self) -> bool {
        if self.phase == Phase::Done || self.failure.is_some() {
            return false;
        }
        let timer = if self.phase == Phase::Drain {
            None
        } else {
            self.server.as_ref().and_then(Pump::poll_timeout)
        };
        let next = self.queue.next_at();
        match (timer, next) {
            (Some(t), e) if e.is_none_or(|e| t <= e) => {
                self.now = self.now.max(t);
                self.note(|| Record::Step("server deadline", t.as_millis()));
                self.note(|| Record::Timeout);
                self.hash.word(0x7131);
                self.hash.word(self.now.as_millis());
                let now = self.now();
                if let Some(server) = self.server.as_mut() {
                    server.handle_timeout(now);
                }
                self.drain();
            }
            _ => match self.queue.pop() {
                Some((at, ev)) => {
                    self.prefetch_next();
                    self.now = self.now.max(at);
                    if self.phase == Phase::Drain && !ev.drains() && !self.rejoins(&ev) {
                        return true;
                    }
                    let (name, arg) = ev.name();
                    self.note(|| Record::Step(name, arg));
                    self.dispatch(ev);
                }
                None => {
                    if self.phase == Phase::Drain {
                        self.finish();
                    } else {
                        self.phase = Phase::Done;
                    }
                }
            },
        }
        self.end_step();
        if let Some(trail) = self.trail.as_mut() {
            trail.push(self.hash.0);
        }
        if let Some(expect) = &self.expect {
            let want = expect.get(self.step as usize).copied();
            if want != Some(self.hash.0) {
                let detail = format!(
                    "the first run's hash after step {} was {want:x?}, this run's is {:x}",
                    self.step, self.hash.0
                );
                self.fail(Violation::new("runs_are_deterministic", detail));
            }
        }
        self.step += 1;
        self.counters.steps = self.step;
        self.phase != Phase::Done && self.failure.is_none()
    }

    /// Runs to the end, or to the first violation or panic. A failure replays the run
    /// with the trace on to report its last records.
    pub fn run(&mut self) -> Outcome {
        self.run_steps(u64::MAX);
        let mut outcome = self.outcome();
        if let Some(failure) = outcome.failure.as_mut() {
            if !self.trace.on() {
                let mut again =
                    Sim::with_source(self.replay.fresh(), self.opts.seed, &self.overrides);
                again.trace = Trace::new(TRACE_RECORDS);
                again.run_steps(failure.step + 1);
                failure.trace = again.trace.lines();
                let same = again
                    .failure
                    .as_ref()
                    .is_some_and(|(step, _, v)| *step == failure.step && *v == failure.violation);
                if !same {
                    failure
                        .trace
                        .push("!! the replay with the trace on did not fail the same way".into());
                }
            }
        }
        outcome
    }

    /// Runs at most `max_steps` steps (to look at a run's state part way, or to bisect),
    /// or to the end or the first violation, whichever comes first.
    pub fn run_until(&mut self, max_steps: u64) -> Outcome {
        self.run_steps(max_steps);
        self.outcome()
    }

    /// Runs until the end, a violation or a panic, or `max` steps.
    fn run_steps(&mut self, max: u64) {
        let result = catch_unwind(AssertUnwindSafe(|| while self.step < max && self.step() {}));
        if let Err(panic) = result {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".to_owned());
            self.fail(Violation::new("no_panics", message));
        }
    }

    /// The result so far.
    pub fn outcome(&self) -> Outcome {
        let failure = self.failure.as_ref().map(|(step, at, v)| Failure {
            seed: self.opts.seed,
            step: *step,
            at: at.to_string(),
            violation: v.clone(),
            options: self.opts.to_string(),
            trace: self.trace.lines(),
            replay: self.opts.replay_command(),
        });
        Outcome {
            seed: self.opts.seed,
            options: self.opts.clone(),
            virtual_ms: self.now.as_millis(),
            hash: self.hash.0,
            failure,
            counters: self.counters.clone(),
        }
    }

    /// Fetches into the cache what the next events will touch, while this one runs (see
    /// [`prefetch`]): the connection of the one after next, and for the next (whose
    /// connection the last step fetched) its client, its unread lines or unsent bytes.
    fn prefetch_next(&self) {
        if let Some(Ev::Up(id) | Ev::Down(id)) = self.queue.peek_now(1) {
            self.net.prefetch(*id);
        }
        let client = match self.queue.peek_now(0) {
            Some(Ev::Up(id) | Ev::Down(id)) => {
                let Some(c) = self.net.get(*id) else {
                    return;
                };
                if let Some(line) = c.heard.front() {
                    prefetch(line);
                }
                if let Some(byte) = c.up.first() {
                    prefetch(byte);
                }
                match c.owner {
                    Owner::Client(i) => i,
                    _ => return,
                }
            }
            Some(Ev::Wake(i, _)) => *i,
            _ => return,
        };
        if let Some(client) = self.clients.get(client as usize) {
            prefetch(client);
        }
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Accept(id) => self.accept(id),
            Ev::Up(id) => self.up(id),
            Ev::Down(id) => self.down(id),
            Ev::ClientReset(id) => self.client_closed(id),
            Ev::ServerReset(id) => self.server_reset(id),
            Ev::Refused(id) => {
                self.counters.refused += 1;
                self.client_closed(id);
            }
            Ev::Wake(i, gen) => {
                if self.clients[i as usize].gen == gen {
                    let now = self.now.as_millis();
                    let mut acts = std::mem::take(&mut self.acts);
                    self.clients[i as usize].on_wake(now, &self.dir, &mut acts);
                    self.apply(Owner::Client(i), &mut acts);
                    self.acts = acts;
                }
            }
            Ev::AdminWake(gen) => {
                if self.admin.gen == gen {
                    let mut acts = std::mem::take(&mut self.acts);
                    self.admin.on_wake(&self.dir, &mut acts);
                    self.apply(Owner::Admin, &mut acts);
                    self.acts = acts;
                }
            }
            Ev::LoginWake(i, gen) => {
                if *self.logins[i as usize].gen_mut() == gen {
                    self.login_turn(i as usize);
                }
            }
            Ev::Effect(effect) => {
                let (boot, id, result) = *effect;
                if boot == self.boot && self.server.is_some() {
                    self.effects_running -= 1;
                    self.feed(Input::EffectDone { id, result });
                }
            }
            Ev::Commit(boot) => self.commit(boot),
            Ev::Crash => self.crash(),
            Ev::Restart => {
                if self.server.is_none() {
                    self.boot_server();
                }
            }
            Ev::Cut => self.cut(),
            Ev::Hold => self.stall(),
            Ev::StoreFail => {
                self.schedule_fault(self.opts.store_fail_every_ms, Ev::StoreFail);
                if self.phase == Phase::Safety {
                    let len = self
                        .fault_rng
                        .range(10..=self.opts.store_fail_max_ms.max(10));
                    self.fail_until = self.now + ms(len);
                    self.note(|| Record::Note(format!("store fails for {len}ms")));
                }
            }
            Ev::Heal => self.heal(),
            Ev::FinalRound => {
                for i in 0..self.clients.len() {
                    let mut acts = std::mem::take(&mut self.acts);
                    self.clients[i].final_round(&mut acts);
                    self.apply(Owner::Client(i as u32), &mut acts);
                    self.acts = acts;
                }
            }
            Ev::End => {
                self.note(|| Record::Note("drain: no new timers or actions".into()));
                self.phase = Phase::Drain;
            }
        }
    }

    /// Whether `ev` is the turn of a login client that is not logged in: it still comes
    /// back while the run drains (a connection the server closed in the last moments
    /// before, a slow reader say, would otherwise leave it out for good), and does
    /// nothing more once in (see `login_turn`).
    fn rejoins(&self, ev: &Ev) -> bool {
        match ev {
            Ev::LoginWake(i, _) => (self.logins.get(*i as usize)).is_some_and(|c| !c.online()),
            _ => false,
        }
    }

    // ---- the server's doors ----

    fn boot_server(&mut self) {
        self.boot += 1;
        let seed = self
            .source
            .stream(Purpose::ServerBoot, u64::from(self.boot))
            .next_u64();
        let config = self.opts.config(seed);
        let server = Server::new(config, self.store.committed.clone());
        let mut pump = Pump::with_tap(server);
        // The oracle learns who logged in, out and renamed from the model's events.
        pump.record_events();
        self.server = Some(pump);
        self.in_flight = None;
        self.effects_running = 0;
        self.server_open = 0;
        if !self.store.committed.offline.is_empty() {
            self.counters.restarts_with_mail += 1;
        }
        let boot = self.boot;
        self.note(|| Record::Note(format!("boot {boot} (seed {seed})")));
        if let Err(v) = self.oracle.restarted(&self.store.committed) {
            self.fail(v);
        }
    }

    /// Feeds one input through the pump (hashed and traced as the server sees it) and
    /// carries out what it caused.
    fn feed(&mut self, input: Input) {
        let Some(pump) = self.server.as_mut() else {
            return;
        };
        self.hash.input(&input);
        let now = Now::at(self.now, WALL_ORIGIN_MS);
        if self.trace.on() {
            self.trace
                .push(self.step, self.now, Record::In(input.clone()));
        }
        if let Err(Input::CommitFailed { error }) = pump.handle(now, input) {
            match self.in_flight.take() {
                Some(batch) => pump.commit_failed(now, batch, error),
                None => return,
            }
        }
        self.drain();
    }

    /// Reads what happened in the network (the model's events) and every output the
    /// server produced (the pump's tap) for the oracle, and carries out what the pump asks
    /// for, each action after the outputs that caused it.
    fn drain(&mut self) {
        // Each action after the outputs that led to it, which the oracle reads first, with
        // the model's events in their place between them.
        loop {
            let action = self.server.as_mut().and_then(Pump::poll_action);
            while let Some(emitted) = self.server.as_mut().and_then(Pump::poll_emitted) {
                let output = match emitted {
                    Emitted::Output(output) => output,
                    Emitted::Event(event) => {
                        if let Some(pump) = self.server.as_ref() {
                            self.oracle.event(&event, pump.server().state());
                        }
                        continue;
                    }
                };
                self.hash.output(&output);
                if self.trace.on() {
                    self.trace
                        .push(self.step, self.now, Record::Out(output.clone()));
                }
                if let Err(v) = self.emitted(&output) {
                    self.fail(v);
                }
            }
            match action {
                Some(action) => self.release(action),
                None => break,
            }
        }
    }

    /// An output as the server produced it: the oracle reads it in the server's order.
    fn emitted(&mut self, output: &Output) -> Result<(), Violation> {
        match output {
            Output::Transmit { conn, bytes, after } => {
                let Some(c) = self.net.get_mut(*conn) else {
                    return Err(Violation::new(
                        "connections_are_not_leaked",
                        format!("transmit to unknown {conn}"),
                    ));
                };
                if !c.server_open {
                    return Err(Violation::new(
                        "connections_are_not_leaked",
                        format!("transmit to {conn}, which the server had forgotten"),
                    ));
                }
                // Outputs come only from a running server.
                let Some(state) = self.server.as_ref().map(|p| p.server().state()) else {
                    return Ok(());
                };
                let cx = EmitCx {
                    store: &self.store,
                    state,
                    now: self.now,
                };
                self.oracle.transmit(c, bytes, *after, &cx)
            }
            Output::Close { conn, reason } => {
                let slot = match reason {
                    CloseReason::Quit => 0,
                    CloseReason::Timeout => 1,
                    CloseReason::SlowReader => 2,
                    CloseReason::Kicked => 3,
                    CloseReason::Banned => 4,
                    _ => 5,
                };
                self.counters.closes[slot] += 1;
                let ims = match self.net.get(*conn).map(|c| c.owner) {
                    Some(Owner::Login(i, Protocol::Ims)) => Some(i as usize),
                    _ => None,
                };
                if let (CloseReason::Timeout, Some(_)) = (reason, ims) {
                    // The ALIVE timeout: no document reached the server for all of it.
                    self.counters.ims_alive_closes += 1;
                    if let Some(c) = self.net.get(*conn) {
                        let waited = self.now.as_millis() - c.last_up.as_millis();
                        check!(alive_timeouts_are_kept(waited, ALIVE_MS, false))?;
                    }
                } else if *reason == CloseReason::Timeout {
                    let since = self.net.get(*conn).and_then(|c| c.o.ping_since);
                    let timeout = self.opts.ping_timeout_ms;
                    let waited = since.map(|t| self.now.as_millis() - t.as_millis());
                    check!(ping_timeouts_are_earned(waited, timeout))?;
                }
                if self.net.get(*conn).is_some_and(|c| c.server_open) {
                    self.forget(*conn);
                    Ok(())
                } else {
                    Err(Violation::new(
                        "connections_are_not_leaked",
                        format!("close of {conn}, which the server had forgotten"),
                    ))
                }
            }
            Output::Persist { seq, change } => self
                .store
                .persist(*seq, (**change).clone())
                .map_err(|e| Violation::new("acknowledgements_wait_on_their_change", e)),
            Output::Effect { id, effect } => {
                self.effects_running += 1;
                // A failing effect is a fault: none once faults are healed (an ims client
                // whose every password check failed could never log in again).
                let failed = self.store_rng.ratio(self.opts.effect_fail_per_mille, 1000)
                    && self.phase == Phase::Safety;
                let result = if failed {
                    self.counters.effects_failed += 1;
                    EffectResult::Failed
                } else if let Effect::ReadMedia { id } = effect {
                    EffectResult::Media(self.store.blobs.get(id).cloned())
                } else {
                    run_effect(effect)
                };
                let (lo, hi) = self.opts.effect_ms;
                let at = self.now + ms(self.store_rng.range(lo..=hi));
                let boot = self.boot;
                self.queue
                    .push(at, Ev::Effect(Box::new((boot, *id, result))));
                Ok(())
            }
            // No protocol the simulator drives keeps a link to another server.
            Output::Connect { conn, addr } => Err(Violation::new(
                "connections_are_not_leaked",
                format!(
                    "{conn}: an outbound connection to {addr}, which no protocol here asks for"
                ),
            )),
        }
    }

    /// The server no longer has `id`.
    fn forget(&mut self, id: ConnId) {
        if let Some(c) = self.net.get_mut(id) {
            if c.server_open {
                c.server_open = false;
                self.server_open -= 1;
                self.oracle.forgotten(c);
            }
        }
    }

    /// An action of the pump (an output the gate let go, or a commit to start): carried out.
    fn release(&mut self, action: Action) {
        match action {
            Action::Transmit { conn, bytes } => {
                let batch = self.report_batch();
                let Some(c) = self.net.get_mut(conn) else {
                    return;
                };
                c.released += bytes.len() as u64;
                if let Err(v) = self.oracle.released(c, &self.store) {
                    fail_into(&mut self.failure, self.step, self.now, v);
                }
                // Reported in batches (see `report_batch`): a client that reads nothing
                // still gets its socket buffer's worth reported. ims connections report
                // every write: a stored message leaves the mailbox once written, and its
                // few bytes would otherwise wait for a batch that never fills.
                let batch = if matches!(c.owner, Owner::Login(..)) {
                    1
                } else {
                    batch
                };
                if !c.report_due && c.unreported(self.opts.sockbuf_bytes) >= batch {
                    c.report_due = true;
                    self.report_due.push(conn);
                }
                if c.client_open && !c.cut {
                    self.schedule_down(conn);
                } else {
                    c.drop_down();
                }
            }
            Action::Close { conn, reason } => {
                let Some(c) = self.net.get_mut(conn) else {
                    return;
                };
                c.down_close = Some(reason.flush());
                self.net.unestablish(conn);
                if reason.flush() {
                    self.schedule_down(conn);
                } else if let Some(c) = self.net.get_mut(conn) {
                    c.drop_down();
                    let at = self.now + ms(self.delay());
                    self.queue.push(at, Ev::ClientReset(conn));
                }
            }
            Action::Commit(batch) => {
                // The batch starts right after the last commit and holds what the tap
                // showed persisted, in order (a retried batch ends before later changes).
                debug_assert_eq!(
                    batch.through.0 - batch.changes.len() as u64,
                    self.store.committed_through.0
                );
                debug_assert!(batch.through <= self.store.persisted());
                self.store.begin(batch.through);
                self.in_flight = Some(batch);
                let (lo, hi) = self.opts.commit_ms;
                let at = self.now + ms(self.store_rng.range(lo..=hi));
                self.queue.push(at, Ev::Commit(self.boot));
            }
            // Scheduled when the tap showed it (see `emitted`).
            Action::Effect { .. } => {}
            // Judged when the tap showed it (see `emitted`).
            Action::Connect { .. } => {}
        }
    }

    fn commit(&mut self, boot: u32) {
        if boot != self.boot || self.server.is_none() || self.store.inflight.is_none() {
            return;
        }
        if self.now < self.fail_until {
            self.counters.commit_failures += 1;
            self.store.failing = true;
            self.store.inflight = None;
            self.oracle.store_failing = true;
            // The batch goes back to the pump, which asks for it again after its backoff.
            self.feed(Input::CommitFailed {
                error: "disk full".into(),
            });
            return;
        }
        let first = Seq(self.store.committed_through.0 + 1);
        let batch = self.store.land();
        self.in_flight = None;
        self.counters.commits += 1;
        let through = self.store.committed_through;
        if let Err(v) = self.oracle.committed(first, &batch, &self.store.committed) {
            self.fail(v);
        }
        self.oracle.store_failing = false;
        // The pump tells the server first, then releases what waited on the commit.
        self.feed(Input::Committed { through });
    }

    /// Tells the server of bytes the sockets took.
    fn report_written(&mut self) {
        while let Some(id) = self.report_due.pop() {
            self.written(id);
        }
    }

    /// Written bytes are reported to the server in batches of this many, as a runtime
    /// learns of completed writes: the server may count up to this many bytes as still
    /// queued (a small share of its outbound limit).
    fn report_batch(&self) -> u64 {
        (self.opts.outbound_limit_bytes as u64 / 4).clamp(1, 4096)
    }

    fn written(&mut self, id: ConnId) {
        let (sockbuf, boot, batch) = (self.opts.sockbuf_bytes, self.boot, self.report_batch());
        let Some(c) = self.net.get_mut(id) else {
            return;
        };
        c.report_due = false;
        let batch = if matches!(c.owner, Owner::Login(..)) {
            1
        } else {
            batch
        };
        let n = c.unreported(sockbuf);
        if n >= batch && c.server_open && c.boot == boot {
            c.reported += n;
            self.feed(Input::Written {
                conn: id,
                n: n as usize,
            });
        }
    }

    fn end_step(&mut self) {
        self.report_written();
        if let Err(v) = self.oracle.end_step(&self.net) {
            self.fail(v);
        }
        if self.step.is_multiple_of(self.opts.stats_every) {
            self.check_stats();
        }
    }

    /// The protocol (0 ws2017, 1 ims, 2 arsc, 3 opcode) of the client that sent `token`.
    pub(super) fn route_of(&self, token: u64) -> usize {
        let idx = (token >> 32) as usize;
        let Some(login) = idx.checked_sub(self.clients.len()) else {
            return 0;
        };
        match self.logins.get(login).map(|c| c.protocol()) {
            Some(Protocol::Ims) => 1,
            Some(Protocol::Arsc) => 2,
            _ => 3,
        }
    }

    fn check_stats(&mut self) {
        let Some(pump) = &self.server else {
            return;
        };
        let server = pump.server();
        let stats = server.stats();
        let limits = Limits {
            outbound: self.opts.outbound_limit_bytes,
            inbound: (self.opts.max_line_bytes + 1)
                .max(self.oracle.longest_admin_line)
                .max(self.login_inbound),
            offline_cap: self.opts.offline_cap,
            budget: server.config().limits.outbound_budget_bytes,
        };
        let expected = Expected {
            connections: self.server_open,
            online_users: self.oracle.holders.len(),
            running_effects: self.effects_running,
        };
        let result = check!(memory_within_limits(&stats, &limits))
            .and_then(|()| check!(connections_are_not_leaked(&stats, &expected)));
        if let Err(v) = result {
            self.fail(v);
        }
    }
}

/// Keeps the first violation of a run.
fn fail_into(slot: &mut Option<(u64, Instant, Violation)>, step: u64, at: Instant, v: Violation) {
    if slot.is_none() {
        *slot = Some((step, at, v));
    }
}

fn ms(n: u64) -> core::time::Duration {
    core::time::Duration::from_millis(n)
}

/// The simulator's password hasher: cheap and deterministic; the core treats hashes as
/// opaque strings, so a fake is as good as argon2 here.
fn run_effect(effect: &Effect) -> EffectResult {
    match effect {
        Effect::HashPassword { password } => EffectResult::Hashed {
            password: PasswordHash(fake_hash(&password.0)),
            ims_password: PasswordHash(fake_ims_hash(&password.0)),
        },
        Effect::VerifyPassword { hash, password } => {
            EffectResult::Verified(hash.0 == fake_hash(&password.0))
        }
        // Read from the store model where effects are run.
        Effect::ReadMedia { .. } => EffectResult::Failed,
    }
}
