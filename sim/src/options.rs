//! [`SimOptions`]: everything a run is tuned by, drawn from its seed before anything else
//! happens (TigerBeetle's swarm testing: each seed also picks which faults are on and how
//! hard), and printed under `seed=` so a failure shows what it ran with.

use core::fmt;
use core::time::Duration;

use switchboard_proto::{Config, Limits, RateLimit};

use crate::choices::Choices;

/// A bug planted in the core on purpose (the `planted-bugs` feature of switchboard-proto),
/// to prove the invariants catch it. The sim never names the core's bug type: the test or
/// binary that has the feature passes a function that sets it.
#[derive(Clone, Copy, Debug)]
pub struct Plant {
    /// The name `--plant` takes, printed in the replay command.
    pub name: &'static str,
    /// Sets the bug in a server's config.
    pub apply: fn(&mut Config),
}

/// What the command line or a test fixes instead of drawing. Values are drawn first and
/// replaced afterwards, so a fixed value never shifts the other draws: a failure found
/// with caps replays with the same values given explicitly.
#[derive(Clone, Copy, Debug, Default)]
pub struct Overrides {
    /// Exactly this many ws2017 clients.
    pub clients: Option<u32>,
    /// Exactly this many ims clients (each logs in to its own account).
    pub clients_ims: Option<u32>,
    /// Exactly this many arsc clients (each logs in to its own account).
    pub clients_arsc: Option<u32>,
    /// Exactly this many opcode clients (each logs in to its own account).
    pub clients_opcode: Option<u32>,
    /// Exactly this long a safety phase, in virtual seconds.
    pub virtual_secs: Option<u64>,
    /// At most this many clients (a test's budget).
    pub max_clients: Option<u32>,
    /// At most this long a safety phase (a test's budget).
    pub max_virtual_secs: Option<u64>,
    /// The benchmark profile ([`SimOptions::bench`]) instead of drawn options.
    pub bench: bool,
    /// A planted core bug.
    pub plant: Option<Plant>,
}

/// The options of one run.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// The seed everything comes from.
    pub seed: u64,
    /// ws2017 clients.
    pub clients: u32,
    /// ims clients, each with its own account (`im0`, `im1`, ...).
    pub ims_clients: u32,
    /// arsc clients, each with its own account (`ar0`, `ar1`, ...).
    pub arsc_clients: u32,
    /// opcode clients, each with its own account (`op0`, `op1`, ...).
    pub opcode_clients: u32,
    /// Length of the safety phase (faults on), virtual seconds.
    pub virtual_secs: u64,
    /// Length of the liveness phase (faults off, everyone back, expectations checked).
    pub settle_secs: u64,
    /// Clients' IP addresses come from this many addresses, so an IP ban hits several.
    pub ip_pool: u32,
    /// Names the administrator creates accounts under.
    pub account_pool: u32,

    /// The server's ws2017 ping interval, milliseconds.
    pub ping_interval_ms: u64,
    /// The server's ws2017 ping timeout, milliseconds.
    pub ping_timeout_ms: u64,
    /// The server's longest ws2017 line.
    pub max_line_bytes: usize,
    /// The server's outbound limit per connection.
    pub outbound_limit_bytes: usize,
    /// The server's offline queue cap per account.
    pub offline_cap: usize,
    /// The server runs with limits its clients reach: connection caps no higher than the
    /// clients need (stale connections push past them), rate limits a client that
    /// renames or stores messages now and then hits, and an outbound budget of a quarter
    /// of the clients' outbound limits (at least eight): a few slow readers together
    /// reach it, ordinary traffic does not (smaller budgets shed readers that keep up,
    /// and the liveness phase rightly fails). Otherwise the defaults, which an ordinary client
    /// never meets.
    pub tight_limits: bool,

    /// Shortest and longest network delay before a chunk arrives, milliseconds.
    pub delay_ms: (u64, u64),
    /// Bytes the client's socket takes ahead of its reading: the server hears of them as
    /// written at once. A client that stops reading is a slow reader past this.
    pub sockbuf_bytes: u64,
    /// Chance (of 1000) that a delivery takes only part of what is pending.
    pub split_per_mille: u64,
    /// Mean time between connection cuts, if cuts are on.
    pub cut_every_ms: Option<u64>,
    /// Mean time between network stalls of one connection, if on.
    pub hold_every_ms: Option<u64>,
    /// Longest stall.
    pub hold_max_ms: u64,

    /// Shortest and longest commit latency.
    pub commit_ms: (u64, u64),
    /// Mean time between storage failures (commits fail for a while), if on.
    pub store_fail_every_ms: Option<u64>,
    /// Longest storage failure.
    pub store_fail_max_ms: u64,
    /// Shortest and longest effect (password hash) latency.
    pub effect_ms: (u64, u64),
    /// Chance (of 1000) that an effect fails.
    pub effect_fail_per_mille: u64,

    /// Mean time between server crashes, if on.
    pub crash_every_ms: Option<u64>,
    /// Shortest and longest downtime after a crash.
    pub restart_ms: (u64, u64),
    /// Chance (of 1000) that a commit in flight at a crash lands (durable but never
    /// acknowledged) rather than vanishing.
    pub crash_lands_per_mille: u64,

    /// Mean time between a client's actions when online.
    pub action_ms: u64,
    /// Mean time a client stays away after leaving or losing its connection.
    pub away_ms: u64,
    /// Chance (of 1000) an action is a misbehaviour (garbage, silence, slow reading...).
    pub misbehave_per_mille: u64,
    /// Chance (of 1000) an action is leaving (cquit or a dropped connection).
    pub leave_per_mille: u64,
    /// Share (of 10,000 ordinary actions) that are renames, which every client hears of.
    pub rename_per_10k: u64,
    /// Chance (of 1000) a received message is answered with a receipt.
    pub receipt_per_mille: u64,
    /// Mean time between the administrator's commands.
    pub admin_every_ms: u64,

    /// Server statistics are checked every this many steps (1: every step).
    pub stats_every: u64,
    /// The planted bug, if any.
    pub plant: Option<Plant>,
    /// Whether this is the benchmark profile.
    pub bench: bool,
}

impl SimOptions {
    /// Draws the options of `seed` from `c` (the run's options stream), then applies
    /// `overrides`.
    pub fn draw(seed: u64, c: &mut impl Choices, overrides: &Overrides) -> SimOptions {
        if overrides.bench {
            let mut o = SimOptions::bench(seed);
            o.apply(overrides);
            return o;
        }
        let clients = c.range(2..=40) as u32;
        let virtual_secs = c.range(20..=180);
        let ping_fast = c.ratio(1, 2);
        let (ping_interval_ms, ping_timeout_ms) = if ping_fast {
            (c.range(300..=2000), c.range(2000..=8000))
        } else {
            (2000, 15_000)
        };
        let max_line_bytes = *c.pick(&[160usize, 200, 1024, 8192]);
        let outbound_limit_bytes = *c.pick(&[512usize, 2048, 8192, 1 << 20]);
        let offline_cap = *c.pick(&[1usize, 3, 10, 1000]);
        let dmin = c.range(0..=20);
        let delay_ms = (dmin, dmin + c.range(0..=200));
        let split_per_mille = *c.pick(&[0u64, 100, 500, 900]);
        let sockbuf_bytes = *c.pick(&[0u64, 1024, 16_384, 65_536]);
        // Each fault is on for some seeds only; its rate is drawn either way, so turning
        // one off does not shift the draws after it.
        let cuts = c.ratio(3, 4);
        let holds = c.ratio(2, 4);
        let store_fails = c.ratio(2, 4);
        let crashes = c.ratio(3, 4);
        let cut_every_ms = Some(c.range(500..=10_000)).filter(|_| cuts);
        let hold_every_ms = Some(c.range(2_000..=20_000)).filter(|_| holds);
        let hold_max_ms = c.range(100..=20_000);
        let cmin = c.range(0..=30);
        let commit_ms = (cmin, cmin + c.range(0..=200));
        let store_fail_every_ms = Some(c.range(3_000..=30_000)).filter(|_| store_fails);
        let store_fail_max_ms = c.range(10..=5_000);
        let emin = c.range(0..=50);
        let effect_ms = (emin, emin + c.range(0..=300));
        let effect_fail_per_mille = *c.pick(&[0u64, 0, 50, 300]);
        let crash_every_ms = Some(c.range(5_000..=60_000)).filter(|_| crashes);
        let rmin = c.range(0..=500);
        let restart_ms = (rmin, rmin + c.range(0..=5_000));
        let crash_lands_per_mille = c.range(0..=1000);
        let action_ms = *c.pick(&[100u64, 500, 1_000, 3_000]);
        let away_ms = *c.pick(&[200u64, 1_000, 5_000]);
        let misbehave_per_mille = *c.pick(&[0u64, 20, 50, 150]);
        let leave_per_mille = *c.pick(&[5u64, 20, 60]);
        let receipt_per_mille = *c.pick(&[0u64, 500, 1000]);
        let rename_per_10k = *c.pick(&[100u64, 500]);
        let admin_every_ms = *c.pick(&[200u64, 1_000, 5_000]);
        let ip_pool = c.range(1..=8) as u32;
        let account_pool = c.range(1..=8) as u32;
        // Drawn last, so the draws above are those of the seed before limits existed.
        let tight_limits = c.ratio(1, 3);
        // Drawn after the limits, for the same reason: two seeds in three mix in ims
        // clients, who talk to the ws2017 clients and to each other.
        let ims_clients = if c.ratio(2, 3) {
            c.range(1..=6) as u32
        } else {
            0
        };
        // Drawn last, for the same reason: arsc and opcode clients, each in two seeds of
        // three.
        let mut login = || match c.ratio(2, 3) {
            true => c.range(1..=4) as u32,
            false => 0,
        };
        let arsc_clients = login();
        let opcode_clients = login();
        let mut o = SimOptions {
            seed,
            clients,
            ims_clients,
            arsc_clients,
            opcode_clients,
            virtual_secs,
            settle_secs: 0,
            ip_pool,
            account_pool,
            ping_interval_ms,
            ping_timeout_ms,
            max_line_bytes,
            outbound_limit_bytes,
            offline_cap,
            tight_limits,
            delay_ms,
            sockbuf_bytes,
            split_per_mille,
            cut_every_ms,
            hold_every_ms,
            hold_max_ms,
            commit_ms,
            store_fail_every_ms,
            store_fail_max_ms,
            effect_ms,
            effect_fail_per_mille,
            crash_every_ms,
            restart_ms,
            crash_lands_per_mille,
            action_ms,
            away_ms,
            misbehave_per_mille,
            leave_per_mille,
            rename_per_10k,
            receipt_per_mille,
            admin_every_ms,
            stats_every: 1,
            plant: None,
            bench: false,
        };
        o.apply(overrides);
        o
    }

    /// The benchmark profile: 10,000 clients for one virtual hour of a lobby at rest:
    /// staggered logins, chat about twice a minute each, a few departures and returns, an
    /// administrator, storage and effect latency, no crash.
    pub fn bench(seed: u64) -> SimOptions {
        SimOptions {
            seed,
            clients: 10_000,
            ims_clients: 0,
            arsc_clients: 0,
            opcode_clients: 0,
            virtual_secs: 3_600,
            settle_secs: 0,
            ip_pool: 256,
            account_pool: 16,
            ping_interval_ms: 2_000,
            ping_timeout_ms: 15_000,
            max_line_bytes: 8192,
            outbound_limit_bytes: 1 << 20,
            offline_cap: 1000,
            tight_limits: false,
            delay_ms: (1, 40),
            sockbuf_bytes: 65_536,
            split_per_mille: 100,
            cut_every_ms: Some(60_000),
            hold_every_ms: None,
            hold_max_ms: 0,
            commit_ms: (1, 10),
            store_fail_every_ms: None,
            store_fail_max_ms: 0,
            effect_ms: (5, 50),
            effect_fail_per_mille: 0,
            crash_every_ms: None,
            restart_ms: (0, 0),
            crash_lands_per_mille: 0,
            action_ms: 30_000,
            away_ms: 60_000,
            misbehave_per_mille: 2,
            leave_per_mille: 1,
            rename_per_10k: 2,
            receipt_per_mille: 500,
            admin_every_ms: 10_000,
            stats_every: 100_000,
            plant: None,
            bench: true,
        }
    }

    fn apply(&mut self, o: &Overrides) {
        if let Some(max) = o.max_clients {
            self.clients = self.clients.min(max);
        }
        if let Some(max) = o.max_virtual_secs {
            self.virtual_secs = self.virtual_secs.min(max);
        }
        if let Some(clients) = o.clients {
            self.clients = clients;
        }
        if let Some(clients) = o.clients_ims {
            self.ims_clients = clients;
        }
        if let Some(clients) = o.clients_arsc {
            self.arsc_clients = clients;
        }
        if let Some(clients) = o.clients_opcode {
            self.opcode_clients = clients;
        }
        if let Some(secs) = o.virtual_secs {
            self.virtual_secs = secs;
        }
        self.plant = o.plant;
        // Long enough for every client to come back after the slowest fault heals: a
        // stall, a ban lifted by the administrator, a ping timeout, a restart.
        self.settle_secs = if self.bench {
            0
        } else {
            30 + (self.ping_timeout_ms / 1000) * 2 + self.away_ms * 4 / 1000
        };
        if !self.bench {
            // Statistics cost a pass over every connection: every step for small runs.
            self.stats_every = (u64::from(self.clients) / 64).max(1);
        }
    }

    /// Clients that log in to accounts: ims, arsc and opcode.
    pub fn login_clients(&self) -> u32 {
        self.ims_clients + self.arsc_clients + self.opcode_clients
    }

    /// The server configuration these options ask for, with the boot's seed.
    pub fn config(&self, seed: u64) -> Config {
        let mut config = Config {
            seed: switchboard_proto::Seed::number(seed),
            outbound_limit_bytes: self.outbound_limit_bytes,
            offline_cap: self.offline_cap,
            ..Config::default()
        };
        config.ws2017.ping_interval = Duration::from_millis(self.ping_interval_ms);
        config.ws2017.ping_timeout = Duration::from_millis(self.ping_timeout_ms);
        config.ws2017.max_line_bytes = self.max_line_bytes;
        config.arsc.max_request_bytes = crate::client::arsc::MAX_REQUEST;
        config.opcode.max_line_bytes = crate::client::opcode::MAX_LINE;
        config.opcode.max_media_bytes = crate::client::opcode::MAX_MEDIA;
        // The virtual clients do not model the login timeout or failed-login lockouts
        // (proto's tests and the fuzz target's do): out of their way.
        config.limits.login_timeout = Duration::from_secs(365 * 86_400);
        config.limits.failed_logins_per_account = u32::MAX;
        config.limits.failed_logins_per_ip = u32::MAX;
        if self.tight_limits {
            let rate = |per_minute, burst| RateLimit { per_minute, burst };
            let pool = self.ip_pool.max(1);
            config.limits = Limits {
                broadcast_per_conn: rate(60, 2),
                broadcast_per_ip: rate(120, 4),
                durable_per_conn: rate(60, 3),
                durable_per_ip: rate(120, 6),
                // Login clients connect from addresses of their own, one each.
                max_connections: (self.clients + self.login_clients()) as usize,
                max_connections_per_ip: self.clients.div_ceil(pool).max(1) as usize,
                // Reached when a quarter of the clients are near their own limit at once.
                outbound_budget_bytes: (self.outbound_limit_bytes)
                    .saturating_mul((self.clients as usize / 4).max(8)),
                ..config.limits
            };
        }
        if let Some(plant) = self.plant {
            (plant.apply)(&mut config);
        }
        config
    }

    /// The command that replays this run exactly.
    pub fn replay_command(&self) -> String {
        let features = if self.plant.is_some() {
            " --features planted-bugs"
        } else {
            ""
        };
        let mut cmd = format!(
            "cargo run -p switchboard-sim --release{features} -- --seed {}",
            self.seed
        );
        if self.bench {
            cmd.push_str(" --bench");
        } else {
            cmd.push_str(&format!(
                " --clients {} --clients-ims {} --clients-arsc {} --clients-opcode {} --virtual-secs {}",
                self.clients, self.ims_clients, self.arsc_clients, self.opcode_clients, self.virtual_secs
            ));
        }
        if let Some(plant) = self.plant {
            cmd.push_str(&format!(" --plant {}", plant.name));
        }
        cmd
    }
}

impl fmt::Display for SimOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<u64>| v.map_or("off".to_owned(), |v| format!("{v}ms"));
        writeln!(
            f,
            "seed={} clients={} ims={} arsc={} opcode={} virtual_secs={} settle_secs={} ip_pool={} account_pool={}{}{}",
            self.seed,
            self.clients,
            self.ims_clients,
            self.arsc_clients,
            self.opcode_clients,
            self.virtual_secs,
            self.settle_secs,
            self.ip_pool,
            self.account_pool,
            if self.bench { " bench" } else { "" },
            self.plant
                .map_or(String::new(), |p| format!(" plant={}", p.name)),
        )?;
        writeln!(
            f,
            "  server: ping={}ms/{}ms max_line={} outbound_limit={} offline_cap={} limits={}",
            self.ping_interval_ms,
            self.ping_timeout_ms,
            self.max_line_bytes,
            self.outbound_limit_bytes,
            self.offline_cap,
            if self.tight_limits {
                "tight"
            } else {
                "default"
            }
        )?;
        writeln!(
            f,
            "  network: delay={}..{}ms sockbuf={} split={}/1000 cuts={} stalls={} (max {}ms)",
            self.delay_ms.0,
            self.delay_ms.1,
            self.sockbuf_bytes,
            self.split_per_mille,
            opt(self.cut_every_ms),
            opt(self.hold_every_ms),
            self.hold_max_ms
        )?;
        writeln!(
            f,
            "  store: commit={}..{}ms failures={} (max {}ms) effects={}..{}ms fail={}/1000",
            self.commit_ms.0,
            self.commit_ms.1,
            opt(self.store_fail_every_ms),
            self.store_fail_max_ms,
            self.effect_ms.0,
            self.effect_ms.1,
            self.effect_fail_per_mille
        )?;
        writeln!(
            f,
            "  crashes={} restart={}..{}ms lands={}/1000",
            opt(self.crash_every_ms),
            self.restart_ms.0,
            self.restart_ms.1,
            self.crash_lands_per_mille
        )?;
        write!(
            f,
            "  clients: action={}ms away={}ms misbehave={}/1000 leave={}/1000 rename={}/10000 receipts={}/1000 admin={}ms stats_every={}",
            self.action_ms,
            self.away_ms,
            self.misbehave_per_mille,
            self.leave_per_mille,
            self.rename_per_10k,
            self.receipt_per_mille,
            self.admin_every_ms,
            self.stats_every
        )
    }
}
