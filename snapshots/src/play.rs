//! Plays a [`Scenario`] against a [`Server`] in virtual time and writes the transcript.
//!
//! The player is the server's whole world: the clients, the store (see [`crate::store`])
//! and the effect runner. It drives the core through a [`Pump`], like every runtime: an
//! acknowledgement that reveals a durable change is printed only after the `db:` line of
//! its commit, one batch is committed at a time while the next gathers, and a failed batch
//! is retried after the pump's backoff (in virtual time).

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use switchboard_proto::{
    Action, Batch, ConnId, Effect, EffectId, EffectResult, Input, Instant, Now, Peer, Protocol,
    Pump, Server,
};

use crate::escape::escape;
use crate::scenario::{Origin, Scenario, ScenarioError, SendMode, StepKind};
use crate::store::{run_effect, Attempt, Store, STORE_ERROR};

/// Unix time at virtual time zero (2023-11-14T22:13:20Z), for protocol timestamps.
pub const WALL_ORIGIN_MS: u64 = 1_700_000_000_000;

/// How many times the server may ask for a timeout at one instant without its deadline
/// moving before the harness calls it a livelock.
const MAX_FIRES_PER_INSTANT: usize = 10_000;

/// Where a network client connects from unless its `!connect` says otherwise.
const DEFAULT_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// How clients' bytes reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// As the scenario says: each `c:` and `c~:` in one delivery, each `c/:` byte by byte.
    AsWritten,
    /// Every byte of every send in its own delivery. The transcript must not change:
    /// codecs are split-insensitive.
    Bytewise,
    /// Every `c:` and `c~:` send in two deliveries, cut after this many bytes (in one if
    /// it is not longer); `c/:` byte by byte as written. A send that holds several lines
    /// is then read as complete lines and a partial one together, which
    /// [`Bytewise`](Delivery::Bytewise) never does.
    SplitAt(usize),
}

/// The longest client send of `scenario` in bytes: [`Delivery::SplitAt`] below it cuts
/// at least one send.
pub fn longest_send(scenario: &Scenario) -> usize {
    scenario
        .steps
        .iter()
        .map(|step| match &step.kind {
            StepKind::Send { bytes, .. } => bytes.len(),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// One scenario client: a name with its current connection.
#[derive(Debug)]
struct Client {
    protocol: Protocol,
    /// The open connection; `None` once it closed (either side).
    conn: Option<ConnId>,
    /// Whether transmits are acknowledged with `Input::Written` (false after `!stall`).
    reading: bool,
    /// Bytes transmitted and not acknowledged while stalled.
    unread: usize,
}

struct Player<'s> {
    scenario: &'s Scenario,
    delivery: Delivery,
    /// The running server's pump; `None` between `!crash` and `!restart`.
    pump: Option<Pump>,
    /// Servers started before the running one; each boot's seed is the config's seed
    /// plus this.
    boots: u64,
    /// The batch the pump asked to commit and the store has not committed yet.
    in_flight: Option<Batch>,
    store: Store,
    /// Effects asked for and not yet run.
    effects: VecDeque<(EffectId, Effect)>,
    now: Instant,
    next_conn: u64,
    clients: BTreeMap<String, Client>,
    /// Every connection ever opened, to its client; ids are never reused, across
    /// restarts too.
    owners: BTreeMap<ConnId, String>,
    /// The instant of the timer being fired, printed before its first output.
    firing: Option<Instant>,
    transcript: String,
}

/// Plays `scenario` against a fresh server (seed 0, `Config::default()` changed by the
/// scenario's `!config` lines, no durable state) and returns its transcript.
/// Deterministic: the same scenario gives the same transcript, byte for byte.
///
/// Errors name the scenario's file and line: a send on a closed connection, a `!cut` of a
/// client that is not connected, a directive that does not fit the store's or server's
/// state (`!commit` without `!hold-commits`, `!restart` of a running server), a server
/// output the harness cannot place, or a server whose durable state disagrees with what
/// it asked the store to commit.
pub fn play(scenario: &Scenario, delivery: Delivery) -> Result<String, ScenarioError> {
    let mut player = Player {
        scenario,
        delivery,
        pump: None,
        boots: 0,
        in_flight: None,
        store: Store::default(),
        effects: VecDeque::new(),
        now: Instant::ZERO,
        next_conn: 1,
        clients: BTreeMap::new(),
        owners: BTreeMap::new(),
        firing: None,
        transcript: String::new(),
    };
    player.boot();
    for step in &scenario.steps {
        player.step(step.line, &step.kind)?;
        player.settle(step.line)?;
        player.check_store(step.line)?;
    }
    Ok(player.transcript)
}

impl Player<'_> {
    fn now(&self) -> Now {
        Now::at(self.now, WALL_ORIGIN_MS)
    }

    /// Starts a server over the committed state.
    fn boot(&mut self) {
        let mut config = self.scenario.config.clone();
        // Scenarios run with numbered seeds (seed 0 unless a directive sets one).
        let base = config.seed.as_number().unwrap_or_default();
        config.seed = switchboard_proto::Seed::number(base.wrapping_add(self.boots));
        self.boots += 1;
        let server = Server::new(config, self.store.committed.clone());
        self.pump = Some(Pump::new(server));
        self.in_flight = None;
        self.effects.clear();
    }

    fn step(&mut self, line: usize, kind: &StepKind) -> Result<(), ScenarioError> {
        if let Some(echo) = kind.echo() {
            self.transcript.push_str(&echo);
            self.transcript.push('\n');
        }
        match kind {
            StepKind::Blank | StepKind::Comment(_) | StepKind::Config(_) => Ok(()),
            StepKind::Advance(d) => self.advance(line, self.now + *d),
            StepKind::Connect {
                client,
                protocol,
                from,
            } => self.connect(line, client, *protocol, *from),
            StepKind::Send {
                client,
                protocol,
                mode,
                bytes,
            } => self.send(line, client, *protocol, *mode, bytes),
            StepKind::Cut(client) => {
                let conn = self.open_conn(line, client)?;
                if let Some(c) = self.clients.get_mut(client) {
                    c.conn = None;
                }
                // Whatever waited for a commit on it has nowhere to go: the pump drops it.
                self.input(line, Input::PeerClosed { conn })
            }
            StepKind::Stall(client) => {
                self.open_conn(line, client)?;
                if let Some(c) = self.clients.get_mut(client) {
                    c.reading = false;
                }
                Ok(())
            }
            StepKind::Resume(client) => {
                let conn = self.open_conn(line, client)?;
                let Some(c) = self.clients.get_mut(client) else {
                    return Ok(());
                };
                c.reading = true;
                let n = std::mem::take(&mut c.unread);
                if n > 0 {
                    self.input(line, Input::Written { conn, n })?;
                }
                Ok(())
            }
            StepKind::HoldCommits => {
                self.running(line, "!hold-commits")?;
                if self.store.holding {
                    return Err(self.scenario.error(
                        line,
                        "commits are held already; !commit releases them".to_owned(),
                    ));
                }
                self.store.holding = true;
                Ok(())
            }
            StepKind::Commit => {
                self.running(line, "!commit")?;
                if !self.store.holding {
                    return Err(self.scenario.error(
                        line,
                        "!commit ends !hold-commits; without it the store commits by itself"
                            .to_owned(),
                    ));
                }
                self.store.holding = false;
                if self.in_flight.is_none() {
                    return Ok(());
                }
                self.commit(line)
            }
            StepKind::StoreFail => {
                self.running(line, "!store-fail")?;
                if self.store.failing {
                    return Err(self.scenario.error(
                        line,
                        "the store is failing already; !store-ok heals it".to_owned(),
                    ));
                }
                self.store.failing = true;
                Ok(())
            }
            StepKind::StoreOk => {
                self.running(line, "!store-ok")?;
                if !self.store.failing {
                    return Err(self
                        .scenario
                        .error(line, "the store is not failing (!store-fail)".to_owned()));
                }
                self.store.failing = false;
                Ok(())
            }
            StepKind::Crash => {
                self.running(line, "!crash")?;
                self.crash();
                Ok(())
            }
            StepKind::Restart => {
                if self.pump.is_some() {
                    return Err(self.scenario.error(
                        line,
                        "the server is running; !crash it before !restart".to_owned(),
                    ));
                }
                self.boot();
                Ok(())
            }
        }
    }

    /// The running server, or an error naming the line and what needed it.
    fn running(&self, line: usize, what: &str) -> Result<(), ScenarioError> {
        if self.pump.is_some() {
            return Ok(());
        }
        Err(self.scenario.error(
            line,
            format!("{what}: the server crashed; !restart it first"),
        ))
    }

    /// The server is gone with its held outputs and running effects; the store loses
    /// the uncommitted changes (the batch in flight and those gathering); every open
    /// connection is cut.
    fn crash(&mut self) {
        let in_flight = self.in_flight.take();
        let lost = in_flight.iter().flat_map(Batch::numbered);
        let lost = match &self.pump {
            Some(pump) => {
                let retrying = pump.retrying().into_iter().flat_map(Batch::numbered);
                self.store
                    .crash(lost.chain(retrying).chain(pump.gathering()))
            }
            None => self.store.crash(lost),
        };
        self.pump = None;
        self.effects.clear();
        for text in lost {
            self.print_db(&text);
        }
        let open: BTreeMap<ConnId, String> = (self.clients.iter())
            .filter_map(|(name, c)| c.conn.map(|conn| (conn, name.clone())))
            .collect();
        for client in open.into_values() {
            let label = self.label(&client);
            self.print(&label, "s:", "(lost: crash)");
            if let Some(c) = self.clients.get_mut(&client) {
                c.conn = None;
                c.unread = 0;
            }
        }
    }

    /// The open connection of `client`, or an error naming the line.
    fn open_conn(&self, line: usize, client: &str) -> Result<ConnId, ScenarioError> {
        match self.clients.get(client) {
            Some(Client {
                conn: Some(conn), ..
            }) => Ok(*conn),
            Some(Client { protocol, .. }) => Err(self.scenario.error(
                line,
                format!("{client} is closed; reconnect it first with !connect:{client}/{protocol}"),
            )),
            None => Err(self
                .scenario
                .error(line, format!("{client} has not connected yet"))),
        }
    }

    fn connect(
        &mut self,
        line: usize,
        client: &str,
        protocol: Protocol,
        from: Option<Origin>,
    ) -> Result<(), ScenarioError> {
        self.running(line, &format!("cannot connect {client}"))?;
        if let Some(Client { conn: Some(_), .. }) = self.clients.get(client) {
            return Err(self
                .scenario
                .error(line, format!("{client} is already connected")));
        }
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.owners.insert(conn, client.to_owned());
        self.clients.insert(
            client.to_owned(),
            Client {
                protocol,
                conn: Some(conn),
                reading: true,
                unread: 0,
            },
        );
        let port = 40_000u16.wrapping_add(u16::try_from(conn.0).unwrap_or(u16::MAX));
        // The admin CLI talks over the local socket; everyone else over the network.
        let peer = match (from, protocol) {
            (Some(Origin::Ip(ip)), _) => Peer::Net(SocketAddr::new(ip, port)),
            (Some(Origin::Local), _) | (None, Protocol::Admin) => Peer::Local,
            (None, _) => Peer::Net(SocketAddr::new(DEFAULT_IP, port)),
        };
        self.input(
            line,
            Input::Accepted {
                conn,
                protocol,
                peer,
            },
        )
    }

    fn send(
        &mut self,
        line: usize,
        client: &str,
        protocol: Option<Protocol>,
        mode: SendMode,
        bytes: &[u8],
    ) -> Result<(), ScenarioError> {
        match (self.clients.get(client), protocol) {
            // A client's first line connects it; the greeting comes before the line.
            (None, Some(protocol)) => self.connect(line, client, protocol, None)?,
            (Some(c), Some(protocol)) if c.protocol != protocol => {
                return Err(self.scenario.error(
                    line,
                    format!(
                        "{client} speaks {}, not {protocol}; reconnect it with !connect",
                        c.protocol
                    ),
                ))
            }
            _ => {}
        }
        let conn = self.open_conn(line, client)?;
        let label = self.label(client);
        self.print(&label, mode.marker(), &StepKind::send_text(mode, bytes));
        let bytewise = mode == SendMode::Bytewise || self.delivery == Delivery::Bytewise;
        if let (false, Delivery::SplitAt(at)) = (bytewise, self.delivery) {
            let (head, tail) = bytes.split_at(at.min(bytes.len()));
            for part in [head, tail].into_iter().filter(|p| !p.is_empty()) {
                self.input(
                    line,
                    Input::Received {
                        conn,
                        bytes: part.to_vec().into(),
                    },
                )?;
            }
            return Ok(());
        }
        if bytewise {
            for &b in bytes {
                self.input(
                    line,
                    Input::Received {
                        conn,
                        bytes: vec![b].into(),
                    },
                )?;
            }
            Ok(())
        } else {
            self.input(
                line,
                Input::Received {
                    conn,
                    bytes: bytes.to_vec().into(),
                },
            )
        }
    }

    /// Moves time to `target`, firing every deadline on the way in order; the store
    /// keeps up after each.
    fn advance(&mut self, line: usize, target: Instant) -> Result<(), ScenarioError> {
        let mut fired_at = (self.now, 0);
        while let Some(at) = (self.pump.as_ref())
            .and_then(Pump::poll_timeout)
            .filter(|&at| at <= target)
        {
            self.now = self.now.max(at);
            if fired_at.0 == self.now {
                fired_at.1 += 1;
                if fired_at.1 > MAX_FIRES_PER_INSTANT {
                    return Err(self.scenario.error(
                        line,
                        format!(
                            "the server keeps asking for a timeout at {} (livelock)",
                            self.now
                        ),
                    ));
                }
            } else {
                fired_at = (self.now, 1);
            }
            self.firing = Some(self.now);
            let now = self.now();
            if let Some(pump) = self.pump.as_mut() {
                pump.handle_timeout(now);
            }
            let done = self.drain(line).and_then(|()| self.settle(line));
            self.firing = None;
            done?;
        }
        self.now = target;
        Ok(())
    }

    /// Feeds one input and drains what it caused.
    fn input(&mut self, line: usize, input: Input) -> Result<(), ScenarioError> {
        self.handle(input);
        self.drain(line)
    }

    /// Feeds one input without draining.
    fn handle(&mut self, input: Input) {
        let now = self.now();
        let Some(pump) = self.pump.as_mut() else {
            return;
        };
        // Commits are reported by `commit`, through the pump's own calls; no scenario
        // line makes a raw commit input.
        if !matches!(input, Input::Committed { .. }) {
            let _ = pump.handle(now, input);
        }
    }

    /// Carries out every action in the order the pump gives them, running each effect
    /// once the queue is empty.
    fn drain(&mut self, line: usize) -> Result<(), ScenarioError> {
        loop {
            let Some(pump) = self.pump.as_mut() else {
                return Ok(());
            };
            if let Some(action) = pump.poll_action() {
                self.carry_out(line, action)?;
                continue;
            }
            let Some((id, effect)) = self.effects.pop_front() else {
                return Ok(());
            };
            let result = match effect {
                Effect::ReadMedia { id } => EffectResult::Media(self.store.media(id)),
                effect => run_effect(&effect),
            };
            self.handle(Input::EffectDone { id, result });
        }
    }

    /// The store keeps up: while the pump has a batch in flight and commits are not held,
    /// the store tries it and the pump hears the outcome. Called once the server is idle
    /// at an instant (after a step, after each deadline fired).
    fn settle(&mut self, line: usize) -> Result<(), ScenarioError> {
        while self.pump.is_some() && !self.store.holding && self.in_flight.is_some() {
            self.commit(line)?;
        }
        Ok(())
    }

    /// Tries to commit the batch in flight: on success prints its `db:` lines and reports
    /// the commit (the pump releases what waited on it); on failure prints that (once per
    /// batch) and hands the batch back for the pump to retry after its backoff.
    fn commit(&mut self, line: usize) -> Result<(), ScenarioError> {
        let Some(batch) = self.in_flight.take() else {
            return Ok(());
        };
        let now = self.now();
        match self.store.attempt(&batch) {
            Attempt::Committed { lines } => {
                for text in lines {
                    self.print_db(&text);
                }
                if let Some(pump) = self.pump.as_mut() {
                    pump.commit_finished(now);
                }
            }
            Attempt::Failed { line: text } => {
                if let Some(text) = text {
                    self.print_db(&text);
                }
                if let Some(pump) = self.pump.as_mut() {
                    pump.commit_failed(now, batch, STORE_ERROR.to_owned());
                }
            }
        }
        self.drain(line)
    }

    /// Checks that the server's durable state is exactly what it asked the store to
    /// commit: a change applied in memory but never persisted would be lost in a crash.
    fn check_store(&self, line: usize) -> Result<(), ScenarioError> {
        let Some(pump) = self.pump.as_ref() else {
            return Ok(());
        };
        let uncommitted = (self.in_flight.iter().flat_map(Batch::numbered))
            .chain(pump.retrying().into_iter().flat_map(Batch::numbered))
            .chain(pump.gathering());
        if *pump.server().state() == self.store.expected(uncommitted) {
            return Ok(());
        }
        Err(self.scenario.error(
            line,
            "the server's durable state differs from the changes it persisted".to_owned(),
        ))
    }

    /// Does what one action asks: prints transmits and closes, acknowledging transmits
    /// to clients that read; keeps the batch to commit; queues effects.
    fn carry_out(&mut self, line: usize, action: Action) -> Result<(), ScenarioError> {
        match action {
            Action::Transmit { conn, bytes } => {
                let client = self.owner(line, conn, "a transmit")?;
                let label = self.label(&client);
                // ims ends its documents with a bare LF: a complete line there.
                let lf = self.clients.get(&client).map(|c| c.protocol) == Some(Protocol::Ims);
                for (marker, text) in received_lines(&bytes, lf) {
                    self.print(&label, marker, &text);
                }
                let Some(c) = self.clients.get_mut(&client) else {
                    return Ok(());
                };
                if c.reading {
                    let n = bytes.len();
                    self.handle(Input::Written { conn, n });
                } else {
                    c.unread += bytes.len();
                }
            }
            Action::Close { conn, reason } => {
                let client = self.owner(line, conn, "a close")?;
                let label = self.label(&client);
                self.print(&label, "s:", &format!("(closed: {})", reason.as_str()));
                if let Some(c) = self.clients.get_mut(&client) {
                    c.conn = None;
                }
            }
            Action::Commit(batch) => {
                if self.in_flight.is_some() {
                    return Err(self.scenario.error(
                        line,
                        "the pump started a commit while one was in flight".to_owned(),
                    ));
                }
                self.in_flight = Some(batch);
            }
            Action::Effect { id, effect } => self.effects.push_back((id, effect)),
            // No scenario's protocol keeps a link to another server.
            Action::Connect { conn, addr } => {
                return Err(self.scenario.error(
                    line,
                    format!("the server asked for an outbound connection {conn} to {addr}"),
                ))
            }
        }
        Ok(())
    }

    /// The client whose open connection `conn` is; an error if the server addresses a
    /// connection it never had or one that has closed.
    fn owner(&self, line: usize, conn: ConnId, what: &str) -> Result<String, ScenarioError> {
        let client = self.owners.get(&conn).ok_or_else(|| {
            self.scenario.error(
                line,
                format!("the server sent {what} on unknown connection {conn}"),
            )
        })?;
        match self.clients.get(client) {
            Some(c) if c.conn == Some(conn) => Ok(client.clone()),
            _ => Err(self.scenario.error(
                line,
                format!("the server sent {what} on {client}'s connection {conn} after it closed"),
            )),
        }
    }

    fn label(&self, client: &str) -> String {
        match self.clients.get(client) {
            Some(c) => format!("{client}/{}", c.protocol),
            None => client.to_owned(),
        }
    }

    /// A `db:` line, in the clients' column so it lines up with their `s:` lines.
    fn print_db(&mut self, text: &str) {
        self.print("", "db:", text);
    }

    fn print(&mut self, label: &str, marker: &str, text: &str) {
        if let Some(at) = self.firing.take() {
            self.transcript.push_str(&format!("@ {at}\n"));
        }
        let width = self.scenario.width;
        let line = format!("{label:<width$}{marker} {text}");
        self.transcript.push_str(line.trim_end_matches(' '));
        self.transcript.push('\n');
    }
}

/// Splits received bytes into transcript lines: `s:` for a line ended by CRLF (the CRLF
/// implied), or by a bare LF when `lf` (ims), `s~:` for anything else (a bare LF, or no
/// line end yet), with its endings shown as escapes.
fn received_lines(bytes: &[u8], lf: bool) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        // ims ends a document with a newline or a NUL; one transmit may hold several.
        let end = rest
            .iter()
            .position(|&b| b == b'\n' || (lf && b == 0))
            .map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        let text = match lf {
            true => line.strip_suffix(b"\n"),
            false => line.strip_suffix(b"\r\n"),
        };
        match text {
            Some(text) => lines.push(("s:", escape(text))),
            None => lines.push(("s~:", escape(line))),
        }
        rest = tail;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_bytes_split_at_line_ends() {
        assert_eq!(
            received_lines(b"+OK a\r\nb\nc\r", false),
            vec![
                ("s:", "+OK a".to_owned()),
                ("s~:", "b\\n".to_owned()),
                ("s~:", "c\\r".to_owned())
            ]
        );
        assert_eq!(received_lines(b"\r\n", false), vec![("s:", String::new())]);
    }

    #[test]
    fn a_scenario_plays_into_a_transcript() {
        let scenario = Scenario::parse(
            "t.scn",
            "# two clients\nalice/ws2017 c: uname alice\n!connect:bob/ws2017\n~ +2s\n!cut:alice\n",
        )
        .unwrap();
        let transcript = play(&scenario, Delivery::AsWritten).unwrap();
        assert_eq!(
            transcript,
            "# two clients\n\
             alice/ws2017  s: +OK switchboard ws2017 ready\n\
             alice/ws2017  c: uname alice\n\
             alice/ws2017  s: +OK uname you are alice\n\
             !connect:bob/ws2017\n\
             bob/ws2017    s: +OK switchboard ws2017 ready\n\
             ~ +2.000s\n\
             @ 2.000s\n\
             alice/ws2017  s: cping\n\
             bob/ws2017    s: cping\n\
             !cut:alice\n\
             bob/ws2017    s: cquit alice\n"
        );
        assert_eq!(play(&scenario, Delivery::Bytewise).unwrap(), transcript);
        for at in 0..=longest_send(&scenario) {
            assert_eq!(play(&scenario, Delivery::SplitAt(at)).unwrap(), transcript);
        }
    }

    #[test]
    fn directives_that_do_not_fit_name_the_line() {
        let err = |text: &str| {
            let scenario = Scenario::parse("t.scn", text).unwrap();
            play(&scenario, Delivery::AsWritten)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("!commit\n"),
            "t.scn:1: !commit ends !hold-commits; without it the store commits by itself"
        );
        assert_eq!(
            err("!hold-commits\n!hold-commits\n"),
            "t.scn:2: commits are held already; !commit releases them"
        );
        assert_eq!(
            err("!store-ok\n"),
            "t.scn:1: the store is not failing (!store-fail)"
        );
        assert_eq!(
            err("!restart\n"),
            "t.scn:1: the server is running; !crash it before !restart"
        );
        assert_eq!(
            err("!crash\n!connect:a/ws2017\n"),
            "t.scn:2: cannot connect a: the server crashed; !restart it first"
        );
        assert_eq!(
            err("a/ws2017 c: uname a\n!crash\n!restart\na c: cgetu\n"),
            "t.scn:4: a is closed; reconnect it first with !connect:a/ws2017"
        );
    }

    #[test]
    fn sending_on_a_closed_connection_names_the_line() {
        let scenario = Scenario::parse("t.scn", "a/ws2017 c: cquit\na c: cgetu\n").unwrap();
        assert_eq!(
            play(&scenario, Delivery::AsWritten)
                .unwrap_err()
                .to_string(),
            "t.scn:2: a is closed; reconnect it first with !connect:a/ws2017"
        );
    }
}
