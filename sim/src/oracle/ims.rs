//! A seeded world of ims clients around the real core: virtual time that jumps to the
//! next event, client bytes split at random, commits that finish after a random delay,
//! password checks that take a while, and crashes that lose every connection and the
//! uncommitted batch (the server restarts from what was committed). After a safety phase
//! (faults and misbehaviour) comes a liveness phase (everyone behaves and logs in again).
//!
//! The clients ([`ImsClient`]) check every line they get against what they sent; the
//! world checks what needs its view, after every step:
//! - a MESSAGE acknowledged with -1 is in the committed store when the -1 arrives (or
//!   already delivered), and reaches its recipient by the end of the liveness phase;
//! - a pushed MESSAGE is one that was sent, by the sender it names, to that client;
//! - a stored message is delivered once, or again only after a crash came between;
//! - the server closes a connection for silence only after the ALIVE timeout since its
//!   last document, and does close a connection silent for longer;
//! - nothing panics, and no client is left with an unanswered document at the end.

// Run by this module's tests (the ims world); the main simulation does not run ims
// clients yet.
#![cfg_attr(not(test), allow(dead_code))]

use std::collections::{BTreeMap, BTreeSet};

use switchboard_proto::{
    Account, Action, Batch, CloseReason, Config, ConnId, Effect, EffectId, EffectResult, Instant,
    Now, PasswordHash, Peer, Protocol, Pump, Server, State, UserName,
};

use crate::choices::{Choices, Purpose, SimRng};
use crate::client::ims::{md5_hex, Do, ImsClient, Seen, ALIVE_MS};

/// Unix time of the world's origin.
const WALL_MS: u64 = 1_700_000_000_000;

/// What a run of the world did, for tests to require coverage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ImsCounters {
    pub(crate) steps: u64,
    pub(crate) crashes: u64,
    pub(crate) stored: u64,
    pub(crate) pushed: u64,
    pub(crate) alive_closes: u64,
    pub(crate) logins: u64,
}

/// The world.
pub(crate) struct ImsWorld {
    rng: SimRng,
    config: Config,
    pump: Pump,
    boot: u64,
    now: Instant,
    clients: Vec<ImsClient>,
    /// Which client each open connection is.
    conns: BTreeMap<ConnId, usize>,
    next_conn: u64,
    /// What the store committed.
    committed: State,
    /// The batch being committed and when it finishes.
    in_flight: Option<(Batch, Instant)>,
    /// Password checks running, and when each finishes.
    effects: Vec<(Instant, EffectId, Effect)>,
    /// Every message token sent: (sender, recipient).
    sent: BTreeMap<u64, (String, String)>,
    /// Tokens acknowledged with -1.
    stored: BTreeSet<u64>,
    /// Deliveries per token: how many, and the crash count at the first.
    delivered: BTreeMap<u64, (u32, u64)>,
    healed: bool,
    pub(crate) counters: ImsCounters,
}

impl ImsWorld {
    /// A world of `clients` accounts, all offline, from `seed`.
    pub(crate) fn new(seed: u64, clients: usize) -> ImsWorld {
        let names: Vec<String> = (0..clients).map(|i| format!("u{i}")).collect();
        let mut state = State::default();
        for name in &names {
            let account = Account {
                name: UserName::parse(name).expect("a valid name"),
                password: PasswordHash(format!("sim$pw-{name}")),
                ims_password: PasswordHash(format!("sim${}", md5_hex(&format!("pw-{name}")))),
                email: None,
                gender: None,
                level: 0,
                banned: false,
                created_ms: 0,
            };
            state.apply(&switchboard_proto::Change::AccountCreated(account));
        }
        let clients = (0..clients)
            .map(|i| {
                let rng = SimRng::derive(seed, Purpose::Client, 1_000 + i as u64);
                let start = Instant::from_millis(i as u64 * 37);
                ImsClient::new(names[i].clone(), names.clone(), rng, start)
            })
            .collect();
        let config = Config {
            seed,
            ..Config::default()
        };
        ImsWorld {
            rng: SimRng::derive(seed, Purpose::Faults, 1_000),
            pump: Pump::new(Server::new(config.clone(), state.clone())),
            config,
            boot: 0,
            now: Instant::ZERO,
            clients,
            conns: BTreeMap::new(),
            next_conn: 1,
            committed: state,
            in_flight: None,
            effects: Vec::new(),
            sent: BTreeMap::new(),
            stored: BTreeSet::new(),
            delivered: BTreeMap::new(),
            healed: false,
            counters: ImsCounters::default(),
        }
    }

    fn at(&self) -> Now {
        Now::at(self.now, WALL_MS)
    }

    /// Runs `safety` steps with faults, then the liveness phase; the first violation.
    pub(crate) fn run(&mut self, safety: u64) -> Result<(), String> {
        for _ in 0..safety {
            self.step()?;
        }
        self.heal()?;
        let end = self.now + ms(60_000);
        while self.now < end {
            self.step()?;
        }
        self.quiesce()?;
        self.check_end()
    }

    /// Lets the clients rest for a second while commits, password checks and deadlines
    /// finish, so whatever they sent last is answered.
    fn quiesce(&mut self) -> Result<(), String> {
        let until = self.now + ms(1_000);
        loop {
            let commit = self.in_flight.as_ref().map(|(_, at)| *at);
            let effect = self.effects.iter().map(|(at, ..)| *at).min();
            let timeout = self.pump.poll_timeout();
            let Some(next) = [commit, effect, timeout].into_iter().flatten().min() else {
                return Ok(());
            };
            if next > until {
                return Ok(());
            }
            self.now = self.now.max(next);
            if commit == Some(next) {
                self.finish_commit();
            } else if effect == Some(next) {
                self.finish_effect(next)?;
            } else {
                self.pump.handle_timeout(self.at());
            }
            self.drain()?;
        }
    }

    fn finish_commit(&mut self) {
        if let Some((batch, _)) = self.in_flight.take() {
            for change in &batch.changes {
                self.committed.apply(change);
            }
            self.pump.commit_finished(self.at());
        }
    }

    fn finish_effect(&mut self, at: Instant) -> Result<(), String> {
        let i = (self.effects.iter())
            .position(|(due, ..)| *due == at)
            .ok_or("no effect")?;
        let (_, id, effect) = self.effects.remove(i);
        let result = match effect {
            Effect::VerifyPassword { hash, password } => {
                EffectResult::Verified(hash.0 == format!("sim${}", password.0))
            }
            // No account is made and no media sent in these runs.
            Effect::HashPassword { .. } | Effect::ReadMedia { .. } => EffectResult::Failed,
        };
        self.pump.effect_done(self.at(), id, result);
        Ok(())
    }

    /// The liveness phase: no more faults; every client comes back on a fresh connection,
    /// so its mailbox is drained.
    fn heal(&mut self) -> Result<(), String> {
        self.healed = true;
        for i in 0..self.clients.len() {
            self.clients[i].healed = true;
            if let Some(conn) = self.clients[i].conn.take() {
                self.conns.remove(&conn);
                self.pump.peer_closed(self.at(), conn);
                self.clients[i].lost(self.now);
                self.drain()?;
            }
        }
        Ok(())
    }

    /// Everything owed is settled: every -1 reached its recipient, every document of a
    /// connection still open was answered.
    fn check_end(&self) -> Result<(), String> {
        for token in &self.stored {
            if !self.delivered.contains_key(token) {
                let (from, to) = &self.sent[token];
                return Err(format!(
                    "message t{token} from {from} to {to} was acknowledged -1 and never delivered"
                ));
            }
        }
        for c in &self.clients {
            if c.conn.is_some() && !c.settled() {
                return Err(format!("{} still waits for answers at the end", c.name));
            }
        }
        Ok(())
    }

    /// One event: the earliest of a commit finishing, an effect finishing, a server
    /// deadline and a client's turn.
    pub(crate) fn step(&mut self) -> Result<(), String> {
        self.counters.steps += 1;
        let commit = self.in_flight.as_ref().map(|(_, at)| *at);
        let effect = self.effects.iter().map(|(at, ..)| *at).min();
        let timeout = self.pump.poll_timeout();
        let (who, turn) = (self.clients.iter().enumerate())
            .map(|(i, c)| (i, c.next_at))
            .min_by_key(|(_, at)| *at)
            .ok_or("no clients")?;
        let next = [commit, effect, timeout, Some(turn)]
            .into_iter()
            .flatten()
            .min()
            .ok_or("nothing to do")?;
        self.now = self.now.max(next);
        if commit == Some(next) {
            self.finish_commit();
        } else if effect == Some(next) {
            self.finish_effect(next)?;
        } else if timeout == Some(next) {
            self.pump.handle_timeout(self.at());
        } else if !self.healed && self.rng.ratio(1, 400) {
            self.crash();
            self.clients[who].next_at = self.now + ms(1);
        } else {
            self.turn(who)?;
        }
        self.drain()
    }

    /// Client `i` acts.
    fn turn(&mut self, i: usize) -> Result<(), String> {
        let c = &self.clients[i];
        if c.silent {
            if let Some(conn) = c.conn {
                // It was silent past the timeout: the server must have dropped it.
                return Err(format!(
                    "{} ({conn}) was silent for {} ms and is still open",
                    c.name,
                    self.now.as_millis() - c.last_doc.as_millis()
                ));
            }
        }
        for act in self.clients[i].act(self.now) {
            match act {
                Do::Connect => {
                    let conn = ConnId(self.next_conn);
                    self.next_conn += 1;
                    self.conns.insert(conn, i);
                    self.clients[i].connected(conn, self.now);
                    let ip = core::net::IpAddr::from([10, 0, 0, i as u8 + 1]);
                    let peer = Peer::Net(core::net::SocketAddr::new(ip, 40_000));
                    self.pump.accepted(self.at(), conn, Protocol::Ims, peer);
                    self.clients[i].next_at = self.now + ms(self.rng.range(1..=50));
                }
                Do::Send(bytes) => {
                    let Some(conn) = self.clients[i].conn else {
                        continue;
                    };
                    self.note_sent(&bytes);
                    // Split at random, as TCP may.
                    let mut rest = &bytes[..];
                    while !rest.is_empty() {
                        let n = match self.rng.ratio(1, 3) {
                            true => self.rng.range(1..=rest.len() as u64) as usize,
                            false => rest.len(),
                        };
                        let (head, tail) = rest.split_at(n);
                        self.pump.received(self.at(), conn, head.to_vec().into());
                        self.drain()?;
                        rest = tail;
                    }
                    self.counters.logins += u64::from(bytes.starts_with(b"<LOGIN"));
                }
                Do::Close => {
                    if let Some(conn) = self.clients[i].conn {
                        self.conns.remove(&conn);
                        self.pump.peer_closed(self.at(), conn);
                        self.clients[i].lost(self.now);
                    }
                }
            }
        }
        Ok(())
    }

    /// Notes the token of a MESSAGE being sent.
    fn note_sent(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        if !text.starts_with("<MESSAGE from=") {
            return;
        }
        let get = |name: &str| {
            let start = text.find(&format!(" {name}=\""))? + name.len() + 3;
            let len = text[start..].find('"')?;
            Some(text[start..start + len].to_owned())
        };
        let token = (text.split_once(">t"))
            .and_then(|(_, rest)| rest.split_once('<'))
            .and_then(|(t, _)| t.parse::<u64>().ok());
        if let (Some(from), Some(to), Some(token)) = (get("from"), get("to"), token) {
            self.sent.insert(token, (from, to));
        }
    }

    /// The server is gone with its uncommitted batch, its running effects and every
    /// connection; it restarts from what was committed.
    fn crash(&mut self) {
        self.counters.crashes += 1;
        self.in_flight = None;
        self.effects.clear();
        self.boot += 1;
        let config = Config {
            seed: self.config.seed.wrapping_add(self.boot),
            ..self.config.clone()
        };
        self.pump = Pump::new(Server::new(config, self.committed.clone()));
        for (_, i) in std::mem::take(&mut self.conns) {
            self.clients[i].lost(self.now);
        }
    }

    /// Carries out what the pump asks, judging what reaches the clients.
    fn drain(&mut self) -> Result<(), String> {
        while let Some(action) = self.pump.poll_action() {
            match action {
                Action::Transmit { conn, bytes } => {
                    let Some(&i) = self.conns.get(&conn) else {
                        continue;
                    };
                    let seen = self.clients[i].on_bytes(&bytes)?;
                    self.pump.written(self.at(), conn, bytes.len());
                    for s in seen {
                        self.judge(i, s)?;
                    }
                }
                Action::Close { conn, reason } => {
                    let Some(i) = self.conns.remove(&conn) else {
                        continue;
                    };
                    let c = &self.clients[i];
                    let silent = self.now.as_millis() - c.last_doc.as_millis();
                    match reason {
                        CloseReason::Timeout if silent < ALIVE_MS => {
                            return Err(format!("{} closed for silence after {silent} ms", c.name));
                        }
                        CloseReason::Timeout => self.counters.alive_closes += 1,
                        CloseReason::Quit if c.leaving() => {}
                        other => {
                            return Err(format!("{} closed: {}", c.name, other.as_str()));
                        }
                    }
                    self.clients[i].lost(self.now);
                }
                Action::Commit(batch) => {
                    let at = self.now + ms(self.rng.range(0..=300));
                    self.in_flight = Some((batch, at));
                }
                Action::Effect { id, effect } => {
                    let at = self.now + ms(self.rng.range(0..=50));
                    self.effects.push((at, id, effect));
                }
                Action::Connect { conn, addr } => {
                    return Err(format!("the server dialed {addr} as {conn}"));
                }
            }
        }
        Ok(())
    }

    /// What client `i` saw, against the world's view.
    fn judge(&mut self, i: usize, seen: Seen) -> Result<(), String> {
        let me = &self.clients[i].name;
        match seen {
            Seen::Stored(token) => {
                self.counters.stored += 1;
                let (_, to) = self.sent.get(&token).ok_or("-1 for an unknown message")?;
                let body = format!("t{token}");
                let key = UserName::parse(to).map_err(|e| e.to_string())?.key();
                let in_store = (self.committed.offline.get(&key).into_iter().flatten())
                    .any(|m| m.body == body);
                if !in_store && !self.delivered.contains_key(&token) {
                    return Err(format!("t{token} acknowledged -1 but not committed"));
                }
                self.stored.insert(token);
            }
            Seen::Pushed { from, token } => {
                self.counters.pushed += 1;
                let token = token.ok_or_else(|| format!("{me} got a message with no token"))?;
                let (sender, to) = (self.sent.get(&token))
                    .ok_or_else(|| format!("{me} got t{token}, never sent"))?;
                if !to.eq_ignore_ascii_case(me) || !sender.eq_ignore_ascii_case(&from) {
                    return Err(format!(
                        "{me} got t{token} from {from}; it was sent by {sender} to {to}"
                    ));
                }
                let crashes = self.counters.crashes;
                let entry = self.delivered.entry(token).or_insert((0, crashes));
                entry.0 += 1;
                if entry.0 > 1 && entry.1 == crashes {
                    return Err(format!("t{token} delivered twice with no crash between"));
                }
                entry.1 = crashes;
            }
        }
        Ok(())
    }
}

fn ms(n: u64) -> core::time::Duration {
    core::time::Duration::from_millis(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeds from `SWITCHBOARD_SIM_SEED` (default 1) and how many from
    /// `SWITCHBOARD_SIM_RUNS` (default 8), as the main simulation's test.
    #[test]
    fn ims_worlds_hold_their_invariants() {
        let base = std::env::var("SWITCHBOARD_SIM_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1u64);
        let runs = std::env::var("SWITCHBOARD_SIM_RUNS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(8u64);
        let mut total = ImsCounters::default();
        for seed in base..base + runs {
            let mut world = ImsWorld::new(seed, 6);
            if let Err(e) = world.run(3_000) {
                panic!("seed={seed} step={}: {e}", world.counters.steps);
            }
            let c = &world.counters;
            total.crashes += c.crashes;
            total.stored += c.stored;
            total.pushed += c.pushed;
            total.alive_closes += c.alive_closes;
            total.logins += c.logins;
        }
        // The runs reached what they are for.
        assert!(total.crashes > 0, "{total:?}");
        assert!(total.stored > 0, "{total:?}");
        assert!(total.pushed > 0, "{total:?}");
        assert!(total.alive_closes > 0, "{total:?}");
    }

    /// The same seed gives the same run.
    #[test]
    fn an_ims_world_is_deterministic() {
        let run = |seed| {
            let mut world = ImsWorld::new(seed, 4);
            let result = world.run(1_000);
            (result, world.counters.clone(), world.now)
        };
        assert_eq!(run(42), run(42));
    }
}
