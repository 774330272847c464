//! The `server` target: the whole core, driven through its [`Pump`] as a runtime drives
//! it, by a sequence of operations the fuzzer chooses, with small limits so that every
//! limit is within reach. After each operation the driver drains every action and checks:
//!
//! - nothing panicked, and the server's memory stays within its limits (the simulator's
//!   `memory_within_limits`: outbound queues, the outbound budget, unframed input, offline
//!   queues, timers) and it forgets what is gone (`connections_are_not_leaked`);
//! - by the driver's own count, no open connection has more transmitted and unwritten
//!   bytes than the outbound limit;
//! - offline messages are delivered exactly once across restarts: a message's removal
//!   from its mailbox is committed only after it was handed out on a connection whose
//!   write was reported since, and no message is handed out again once its removal
//!   committed (the store model keeps only committed batches, as the simulator's does).

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use switchboard_proto::{
    Account, Action, Batch, Change, Config, ConnId, Effect, EffectId, EffectResult, Instant,
    MessageId, NetworkEvent, Now, PasswordHash, Protocol, Pump, Server, State, UserName,
};

use crate::invariants::{self, Expected, Limits};

/// The most bytes one `Send` carries (a runtime's read is bounded the same way).
pub const MAX_PIECE: usize = 4096;

/// Accounts every run starts with (any password verifies as the fuzzer says).
const ACCOUNTS: [&str; 3] = ["alice", "bob", "carol"];
/// Names the canned requests use: the accounts, a stranger and an odd one.
const NAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "Alice"];
/// Addresses connections come from; two share a /64.
const PEERS: [&str; 4] = [
    "192.0.2.1:1",
    "192.0.2.2:1",
    "[2001:db8::1]:1",
    "[2001:db8::2]:1",
];

/// One thing that happens to the server.
#[derive(Arbitrary, Debug)]
enum Op {
    /// A connection is accepted on a listener.
    Connect { protocol: u8, peer: u8 },
    /// Bytes arrive on a connection.
    Send { conn: u8, piece: Piece },
    /// The peer closes a connection.
    Close { conn: u8 },
    /// Time passes.
    Advance { ms: u16, long: bool },
    /// The socket takes up to `n` (times 16) of a connection's unwritten bytes.
    Write { conn: u8, n: u8 },
    /// Every connection's bytes are written.
    WriteAll,
    /// A running effect finishes.
    Effect { which: u8, ok: bool },
    /// The commit in flight lands, or fails.
    Commit { ok: bool },
    /// The server crashes and starts again over what was committed; a batch in flight
    /// lands whole or not at all.
    Restart { lands: bool },
}

/// The bytes of a `Send`: raw, or a request of the connection's protocol.
#[derive(Arbitrary, Debug)]
enum Piece {
    Raw(Vec<u8>),
    Canned {
        which: u8,
        name: u8,
        other: u8,
        text: u8,
    },
}

struct Conn {
    id: ConnId,
    protocol: Protocol,
    /// Transmitted (as actions) and not yet reported written.
    unwritten: usize,
    /// Write reports made on it.
    writes: u64,
}

/// What the driver knows of the store and of offline messages.
#[derive(Default)]
struct Store {
    committed: State,
    blobs: BTreeMap<switchboard_proto::MediaId, Bytes>,
    inflight: Option<Batch>,
    /// Messages whose removal was committed, per recipient key.
    removed: BTreeSet<(String, MessageId)>,
}

struct Driver {
    config: Config,
    pump: Pump,
    now_ms: u64,
    conns: Vec<Conn>,
    next_conn: u64,
    effects: Vec<(EffectId, Effect)>,
    store: Store,
    /// Messages handed out in this boot: on which connection, and its write reports then.
    handed: BTreeMap<(String, MessageId), (ConnId, u64)>,
    limits: Limits,
}

fn config() -> Config {
    let mut config = Config {
        seed: switchboard_proto::Seed::number(7),
        outbound_limit_bytes: 4096,
        offline_cap: 6,
        ..Config::default()
    };
    config.limits.outbound_budget_bytes = 12 * 1024;
    config.limits.max_connections = 12;
    config.limits.max_connections_per_ip = 6;
    config.ws2017.max_line_bytes = 256;
    config.arsc.max_request_bytes = 512;
    config.ims.max_document_bytes = 512;
    config.opcode.max_line_bytes = 256;
    config.opcode.max_media_bytes = 256;
    config
}

fn initial_state() -> State {
    let mut state = State::default();
    for (i, name) in ACCOUNTS.iter().enumerate() {
        let Ok(name) = UserName::parse(name) else {
            continue;
        };
        state.apply(&Change::AccountCreated(Account {
            name,
            password: PasswordHash(format!("hash-{i}")),
            ims_password: PasswordHash(format!("ims-hash-{i}")),
            email: None,
            gender: None,
            level: u8::from(i == 0),
            banned: false,
            created_ms: crate::WALL_ORIGIN_MS,
        }));
    }
    state
}

/// Runs the operations the fuzzer's bytes describe.
pub(super) fn run(data: &[u8]) -> Result<(), String> {
    let mut u = Unstructured::new(data);
    let config = config();
    let defaults = &config;
    // The most a connection may hold unframed: its protocol's frame bound plus one read.
    let opcode_frame = defaults
        .opcode
        .max_line_bytes
        .max(defaults.opcode.max_media_bytes * 3 + 1024);
    let inbound = [
        defaults.ws2017.max_line_bytes + 1,
        2 * defaults.arsc.max_request_bytes,
        4 * defaults.ims.max_document_bytes,
        opcode_frame + defaults.opcode.max_line_bytes,
        16 * 1024 + 1,
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
        + MAX_PIECE;
    let limits = Limits {
        outbound: config.outbound_limit_bytes,
        inbound,
        offline_cap: config.offline_cap,
        budget: config.limits.outbound_budget_bytes,
    };
    let mut store = Store {
        committed: initial_state(),
        ..Store::default()
    };
    store
        .committed
        .apply(&Change::IpBanned("192.0.2.9".parse().map_err(|_| "ip")?));
    let mut driver = Driver {
        pump: boot(&config, &store.committed),
        config,
        now_ms: 0,
        conns: Vec::new(),
        next_conn: 1,
        effects: Vec::new(),
        store,
        handed: BTreeMap::new(),
        limits,
    };
    let mut steps = 0;
    while !u.is_empty() && steps < 400 {
        let Ok(op) = Op::arbitrary(&mut u) else {
            break;
        };
        if std::env::var_os("SWITCHBOARD_FUZZ_TRACE").is_some() {
            eprintln!("step {steps}: {op:?}");
        }
        driver.apply(op).map_err(|e| format!("step {steps}: {e}"))?;
        steps += 1;
    }
    Ok(())
}

fn boot(config: &Config, state: &State) -> Pump {
    let mut pump = Pump::new(Server::new(config.clone(), state.clone()));
    pump.record_events();
    pump
}

impl Driver {
    fn now(&self) -> Now {
        Now::at(
            Instant::ZERO + core::time::Duration::from_millis(self.now_ms),
            crate::WALL_ORIGIN_MS + self.now_ms,
        )
    }

    fn conn(&self, i: u8) -> Option<usize> {
        (!self.conns.is_empty()).then(|| usize::from(i) % self.conns.len())
    }

    fn apply(&mut self, op: Op) -> Result<(), String> {
        let now = self.now();
        match op {
            Op::Connect { protocol, peer } => {
                let protocols = [
                    Protocol::Ws2017,
                    Protocol::Arsc,
                    Protocol::Ims,
                    Protocol::Opcode,
                    Protocol::Admin,
                ];
                let protocol = protocols[usize::from(protocol) % protocols.len()];
                let peer: core::net::SocketAddr = match peer % 8 {
                    7 => "192.0.2.9:1".parse(),
                    p => PEERS[usize::from(p) % PEERS.len()].parse(),
                }
                .map_err(|_| "peer")?;
                let id = ConnId(self.next_conn);
                self.next_conn += 1;
                self.conns.push(Conn {
                    id,
                    protocol,
                    unwritten: 0,
                    writes: 0,
                });
                self.pump.accepted(now, id, protocol, peer.into());
            }
            Op::Send { conn, piece } => {
                let Some(i) = self.conn(conn) else {
                    return Ok(());
                };
                let bytes = match piece {
                    Piece::Raw(mut raw) => {
                        raw.truncate(MAX_PIECE);
                        raw
                    }
                    Piece::Canned {
                        which,
                        name,
                        other,
                        text,
                    } => canned(self.conns[i].protocol, which, name, other, text),
                };
                self.pump
                    .received(now, self.conns[i].id, Bytes::from(bytes));
            }
            Op::Close { conn } => {
                let Some(i) = self.conn(conn) else {
                    return Ok(());
                };
                let gone = self.conns.remove(i);
                self.pump.peer_closed(now, gone.id);
            }
            Op::Advance { ms, long } => {
                self.now_ms += if long {
                    u64::from(ms) * 100
                } else {
                    u64::from(ms % 2048)
                };
                let now = self.now();
                if self.pump.poll_timeout().is_some_and(|t| t <= now.mono) {
                    self.pump.handle_timeout(now);
                }
            }
            Op::Write { conn, n } => {
                let Some(i) = self.conn(conn) else {
                    return Ok(());
                };
                self.write(i, usize::from(n) * 16);
            }
            Op::WriteAll => {
                for i in 0..self.conns.len() {
                    self.write(i, usize::MAX);
                }
            }
            Op::Effect { which, ok } => {
                if self.effects.is_empty() {
                    return Ok(());
                }
                let (id, effect) = self.effects.remove(usize::from(which) % self.effects.len());
                let result = match (effect, ok) {
                    (Effect::HashPassword { password }, true) => EffectResult::Hashed {
                        password: PasswordHash(format!("h-{}", password.0)),
                        ims_password: PasswordHash(format!("ih-{}", password.0)),
                    },
                    (Effect::VerifyPassword { .. }, ok) => EffectResult::Verified(ok),
                    (Effect::ReadMedia { id }, true) => {
                        EffectResult::Media(self.store.blobs.get(&id).cloned())
                    }
                    (_, false) => EffectResult::Failed,
                };
                self.pump.effect_done(now, id, result);
            }
            Op::Commit { ok } => {
                let Some(batch) = self.store.inflight.take() else {
                    return Ok(());
                };
                if ok {
                    self.land(&batch)?;
                    self.pump.commit_finished(now);
                } else {
                    self.pump.commit_failed(now, batch, "fuzz".into());
                }
            }
            Op::Restart { lands } => {
                if let Some(batch) = self.store.inflight.take() {
                    if lands {
                        self.land(&batch)?;
                    }
                }
                self.conns.clear();
                self.effects.clear();
                self.handed.clear();
                self.pump = boot(&self.config, &self.store.committed);
                if self.pump.server().state() != &self.store.committed {
                    return Err("the server did not start from the committed state".into());
                }
            }
        }
        self.drain()?;
        self.check()
    }

    /// The socket of connection `i` takes up to `n` bytes.
    fn write(&mut self, i: usize, n: usize) {
        let now = self.now();
        let conn = &mut self.conns[i];
        let n = n.min(conn.unwritten);
        if n == 0 {
            return;
        }
        conn.unwritten -= n;
        conn.writes += 1;
        let id = conn.id;
        self.pump.written(now, id, n);
    }

    /// A batch commits: the store keeps it, and the driver checks each removal.
    fn land(&mut self, batch: &Batch) -> Result<(), String> {
        for change in &batch.changes {
            if let Change::OfflineDelivered { to, through } = change {
                let key = to.key().as_str().to_owned();
                let queue = self.store.committed.offline.get(&to.key());
                for message in queue.into_iter().flatten().filter(|m| m.id <= *through) {
                    let item = (key.clone(), message.id);
                    let Some(&(conn, writes)) = self.handed.get(&item) else {
                        return Err(format!(
                            "message {:?} to {to} removed without being handed out: lost",
                            message.id
                        ));
                    };
                    let written = self
                        .conns
                        .iter()
                        .find(|c| c.id == conn)
                        .is_none_or(|c| c.writes > writes);
                    if !written {
                        return Err(format!(
                            "message {:?} to {to} removed before a write was reported on {conn:?}",
                            message.id
                        ));
                    }
                    self.store.removed.insert(item);
                }
            }
            self.store.committed.apply(change);
            if let Change::MediaStored { id, bytes, .. } = change {
                self.store.blobs.insert(*id, bytes.0.clone());
            }
        }
        let media = &self.store.committed.media;
        self.store.blobs.retain(|id, _| media.contains_key(id));
        Ok(())
    }

    /// Carries out every action and reads every event.
    fn drain(&mut self) -> Result<(), String> {
        loop {
            while let Some(event) = self.pump.poll_event() {
                if let NetworkEvent::StoredHandedOut { to, id, conn } = event {
                    let item = (to.key().as_str().to_owned(), id);
                    if self.store.removed.contains(&item) {
                        return Err(format!(
                            "message {id:?} to {to} handed out again after its removal committed"
                        ));
                    }
                    let writes = self
                        .conns
                        .iter()
                        .find(|c| c.id == conn)
                        .map_or(0, |c| c.writes);
                    self.handed.insert(item, (conn, writes));
                }
            }
            let Some(action) = self.pump.poll_action() else {
                return Ok(());
            };
            match action {
                Action::Transmit { conn, bytes } => {
                    if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
                        c.unwritten += bytes.len();
                    }
                }
                Action::Close { conn, .. } => self.conns.retain(|c| c.id != conn),
                Action::Commit(batch) => {
                    if self.store.inflight.is_some() {
                        return Err("a second commit while one is in flight".into());
                    }
                    self.store.inflight = Some(batch);
                }
                Action::Effect { id, effect } => self.effects.push((id, effect)),
                Action::Connect { conn, .. } => {
                    let now = self.now();
                    self.pump.connect_failed(now, conn, "no network".into());
                }
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        let stats = self.pump.server().stats();
        invariants::memory_within_limits(&stats, &self.limits)?;
        // A connection the server closed behind an uncommitted change (a ban, say) is
        // forgotten by the server while its `Close` waits in the pump's gate.
        let connections = if self.pump.held() == 0 {
            self.conns.len()
        } else {
            stats.connections.min(self.conns.len())
        };
        let expected = Expected {
            connections,
            online_users: stats.online_users,
            running_effects: self.effects.len(),
        };
        invariants::connections_are_not_leaked(&stats, &expected)?;
        for c in &self.conns {
            if c.unwritten > self.config.outbound_limit_bytes {
                return Err(format!(
                    "{:?} ({:?}) has {} unwritten bytes, limit {}",
                    c.id, c.protocol, c.unwritten, self.config.outbound_limit_bytes
                ));
            }
        }
        Ok(())
    }
}

/// A request of `protocol`, so the fuzzer reaches logins, messages, rooms and chats
/// without guessing their syntax.
fn canned(protocol: Protocol, which: u8, name: u8, other: u8, text: u8) -> Vec<u8> {
    let name = NAMES[usize::from(name) % NAMES.len()];
    let other = NAMES[usize::from(other) % NAMES.len()];
    let text = match text % 4 {
        0 => "hi".to_owned(),
        1 => "x".repeat(usize::from(text)),
        2 => "a &amp; <b> 'q' %20 \u{e9}".to_owned(),
        _ => format!("m{text}"),
    };
    let line = match protocol {
        Protocol::Ws2017 => match which % 8 {
            0 => format!("uname {name}\r\n"),
            1 => format!("chatm {name} {other} '{text}'\r\n"),
            2 => format!("chatw {name} {other} '{text}'\r\n"),
            3 => "cgetu\r\n".to_owned(),
            4 => "cpong\r\n".to_owned(),
            5 => format!("chatr {name} {other}\r\n"),
            6 => "cping\r\n".to_owned(),
            _ => "cquit\r\n".to_owned(),
        },
        Protocol::Arsc => match which % 5 {
            0 => format!(
                "<arscrequest><type>connect</type><user>{name}</user><password>pw</password><room>{}</room></arscrequest>",
                ["lobby", "den"][usize::from(which / 8) % 2]
            ),
            1 => format!("<arscrequest><type>connect</type><user>{name}</user><room>lobby</room></arscrequest>"),
            2 => format!("<arscrequest><type>post</type><sid>{text}</sid><content>{text}</content></arscrequest>"),
            3 => format!("<arscrequest><type>post</type><sid>{text}</sid><content>/msg {other} {text}</content></arscrequest>"),
            _ => "<arscrequest><type>userlist</type><room>lobby</room></arscrequest>".to_owned(),
        },
        Protocol::Ims => match which % 7 {
            0 => format!("<LOGIN user=\"{name}\" pass=\"{}\"/>", "0123456789abcdef".repeat(2)),
            1 => format!("<MESSAGE from=\"{name}\" to=\"{other}\">{text}</MESSAGE>"),
            2 => format!("<FRIEND user=\"{name}\" friend=\"{other}\" type=\"add\"/>"),
            3 => format!("<FRIEND user=\"{name}\" other=\"{other}\" type=\"accept\"/>"),
            4 => format!("<STATUS user=\"{name}\" type=\"Away\"/>"),
            5 => "<ALIVE/>".to_owned(),
            _ => format!("<LOGOUT user=\"{name}\"/>"),
        },
        Protocol::Opcode => match which % 10 {
            0 => format!("110 {name} pw\n"),
            1 => format!("117 {name} pw\n"),
            2 => format!("113 {other}\n"),
            3 => format!("121 {other}\n"),
            4 => format!("115 {} {text}\n", which / 16),
            5 => format!("115 {} {text} %00%01%02\n", which / 16),
            6 => format!("119 {}\n", which / 16),
            7 => "112\n".to_owned(),
            8 => format!("114 {}\n", which / 16),
            _ => "111\n".to_owned(),
        },
        Protocol::Admin => match which % 6 {
            0 => format!("user add {name} pw\n"),
            1 => format!("kick {name}\n"),
            2 => format!("ban user {name}\n"),
            3 => format!("unban user {name}\n"),
            4 => format!("user del {name}\n"),
            _ => "ban ip 192.0.2.1\n".to_owned(),
        },
        #[allow(unreachable_patterns)]
        _ => String::new(),
    };
    line.into_bytes()
}
