//! [`Pump`]: the one drive loop of the core, sans I/O. Every driver (the runtimes, the
//! simulator, the snapshots player, the in-process admin path, the unit-test harness)
//! feeds it what happened and carries out the [`Action`]s it returns; none of them
//! re-implements the commit gate, group commit or the retry of a failed batch.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use crate::effect::{Effect, EffectResult};
use crate::gate::CommitGate;
use crate::ids::{ConnId, EffectId, Protocol, Seq};
use crate::io::{CloseReason, Input, Output, Peer};
use crate::persist::Change;
use crate::server::Server;
use crate::time::{Instant, Now};

/// The first retry of a failed batch waits this long; each further one twice as long.
pub const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest wait between retries of a failed batch.
pub const MAX_RETRY: Duration = Duration::from_secs(2);

/// Changes to commit in one transaction, in order: the sequence numbers
/// `through - len + 1 ..= through`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The sequence number of the last change.
    pub through: Seq,
    /// The changes, in sequence order.
    pub changes: Vec<Change>,
}

impl Batch {
    /// Each change with its sequence number.
    pub fn numbered(&self) -> impl Iterator<Item = (Seq, &Change)> {
        let first = self.through.0 + 1 - self.changes.len() as u64;
        self.changes
            .iter()
            .enumerate()
            .map(move |(i, change)| (Seq(first + i as u64), change))
    }
}

/// What a tapped pump saw, in order: for [`Pump::poll_emitted`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Emitted {
    /// Something happened in the network.
    Event(crate::NetworkEvent),
    /// The server produced an output (before the gate).
    Output(Output),
}

/// What the pump tells its caller to do, in order.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write `bytes` on `conn`, after everything written on it before; report the bytes
    /// handed to the socket with [`Pump::written`].
    Transmit {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        bytes: Bytes,
    },
    /// Close `conn` (flushing first if [`CloseReason::flush`] says so). The core has
    /// forgotten it; later reports about it are ignored.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// Commit this batch in one transaction, off the loop, and report
    /// [`Pump::commit_finished`] or hand it back with [`Pump::commit_failed`]. At most one
    /// commit is in flight; the next batch gathers meanwhile.
    Commit(Batch),
    /// Run this effect off the loop and report [`Pump::effect_done`].
    Effect {
        /// Its id.
        id: EffectId,
        /// What to do.
        effect: Effect,
    },
    /// Open a TCP connection to `addr` as `conn`, off the loop, and report
    /// [`Pump::connected`] (then treat it as an accepted connection) or
    /// [`Pump::connect_failed`] (the core decides when to try again).
    Connect {
        /// The id the core gave the connection.
        conn: ConnId,
        /// Where to dial.
        addr: core::net::SocketAddr,
    },
}

/// Where the one commit stands.
#[derive(Debug)]
enum Commit {
    /// None in flight.
    Idle,
    /// The caller is committing the batch that ends at `through`, of `len` changes.
    InFlight { through: Seq, len: usize },
    /// The batch failed and is asked for again at `at`.
    Retrying { batch: Batch, at: Instant },
}

/// The core's drive loop: owns the [`Server`], the [`CommitGate`] and the group-commit
/// state machine, and tells its caller what to do.
///
/// The caller reports what happened (a connection accepted, bytes received or written, a
/// peer gone, an effect done, a commit finished or failed, time passed), then drains
/// [`poll_action`](Self::poll_action) until `None` and carries each [`Action`] out in
/// order, then sleeps until an event or [`poll_timeout`](Self::poll_timeout).
///
/// The rules it keeps, so no driver has to:
/// - **Gate.** A transmit that reveals an uncommitted change, and everything after it on
///   the same connection (its close included), is held until the change commits; other
///   connections are not held up.
/// - **Release order.** When a commit finishes, [`Input::Committed`] is fed to the server
///   *first*, then the gate releases what waited on it, then the server's new outputs
///   follow. So a report about released bytes (`written`) never reaches a server that has
///   not yet heard of the commit, and released bytes always precede anything newer on
///   their connection.
/// - **Group commit.** Changes gather while one batch is in flight; when it finishes, all
///   that gathered becomes the next [`Action::Commit`].
/// - **Retry.** A failed batch is fed to the server as [`Input::CommitFailed`] (which
///   refuses new durable work until a commit succeeds) and asked for again, unchanged,
///   after [`FIRST_RETRY`], doubling up to [`MAX_RETRY`]; the changes gathering meanwhile
///   wait for the next batch.
///
/// ```
/// use switchboard_proto::{Action, Config, ConnId, Instant, Now, Peer, Protocol, Pump, Server, State};
///
/// let mut pump = Pump::new(Server::new(Config::default(), State::default()));
/// let now = Now::at(Instant::ZERO, 1_700_000_000_000);
/// let conn = ConnId(1);
/// let peer: std::net::SocketAddr = "127.0.0.1:5000".parse().unwrap();
/// pump.accepted(now, conn, Protocol::Ws2017, Peer::Net(peer));
/// pump.received(now, conn, "uname alice\r\n".into());
/// let mut sent = Vec::new();
/// while let Some(action) = pump.poll_action() {
///     match action {
///         Action::Transmit { conn, bytes } => {
///             sent.extend_from_slice(&bytes);
///             pump.written(now, conn, bytes.len());
///         }
///         Action::Close { .. } => { /* flush if reason.flush(), then close */ }
///         Action::Commit(_batch) => pump.commit_finished(now), // a store that keeps up
///         Action::Effect { .. } => { /* run it off the loop, then pump.effect_done(..) */ }
///         Action::Connect { .. } => { /* dial, then pump.connected(..) or connect_failed(..) */ }
///     }
/// }
/// assert!(sent.ends_with(b"+OK uname you are alice\r\n"));
/// ```
pub struct Pump {
    server: Server,
    gate: CommitGate,
    actions: VecDeque<Action>,
    commit: Commit,
    /// Changes for the next batch, and the sequence number of the last.
    pending: Vec<Change>,
    pending_through: Seq,
    /// The wait before the next retry.
    backoff: Duration,
    /// With [`with_tap`](Self::with_tap): a copy of every output, in the server's order,
    /// with the recorded events between them.
    tap: Option<VecDeque<Emitted>>,
}

impl Pump {
    /// A pump driving `server`, nothing committed through it yet.
    pub fn new(server: Server) -> Pump {
        Pump {
            gate: CommitGate::new(),
            actions: VecDeque::new(),
            commit: Commit::Idle,
            pending: Vec::new(),
            pending_through: server.committed(),
            backoff: FIRST_RETRY,
            tap: None,
            server,
        }
    }

    /// A pump that also keeps a copy of every output the server produces, in the server's
    /// order and before the gate holds any back, for [`poll_emitted`](Self::poll_emitted):
    /// what the simulator's oracles read. With [`record_events`](Self::record_events) the
    /// events come in the same stream, each before the outputs queued after it happened.
    /// Outputs are pulled from the server as actions are polled, so after each
    /// [`poll_action`](Self::poll_action) (the last, `None`, included) drain
    /// `poll_emitted`: it yields what led to that action, or to none.
    pub fn with_tap(mut server: Server) -> Pump {
        server.keep_output_log();
        Pump {
            tap: Some(VecDeque::new()),
            ..Pump::new(server)
        }
    }

    /// With [`with_tap`](Self::with_tap): the next output as the server produced it, or
    /// the next event.
    pub fn poll_emitted(&mut self) -> Option<Emitted> {
        self.tap.as_mut()?.pop_front()
    }

    /// Records [`NetworkEvent`](crate::NetworkEvent)s from now on, as
    /// [`Server::record_events`]; read them with [`poll_event`](Self::poll_event).
    pub fn record_events(&mut self) {
        self.server.record_events();
    }

    /// [`Server::record_session_events`]: the events without those of each direct
    /// message, read with [`poll_event`](Self::poll_event).
    pub fn record_session_events(&mut self) {
        self.server.record_session_events();
    }

    /// With [`record_events`](Self::record_events) and no tap: the next
    /// [`NetworkEvent`](crate::NetworkEvent), in the order things happened. Drain after
    /// every call. (With a tap, events come through [`poll_emitted`](Self::poll_emitted).)
    pub fn poll_event(&mut self) -> Option<crate::NetworkEvent> {
        self.server.poll_event()
    }

    /// The server, for its state, config and stats.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Feeds `input` through the call above that matches it: a driver that records or
    /// replays [`Input`]s (the simulator, the snapshots player) hands them over as they
    /// are. [`Input::Committed`] is [`commit_finished`](Self::commit_finished).
    /// [`Input::CommitFailed`] cannot be carried out without the failed batch: it comes
    /// back as `Err`, for [`commit_failed`](Self::commit_failed).
    pub fn handle(&mut self, now: Now, input: Input) -> Result<(), Input> {
        match input {
            Input::Accepted {
                conn,
                protocol,
                peer,
            } => self.accepted(now, conn, protocol, peer),
            Input::Received { conn, bytes } => self.received(now, conn, bytes),
            Input::Written { conn, n } => self.written(now, conn, n),
            Input::PeerClosed { conn } => self.peer_closed(now, conn),
            Input::EffectDone { id, result } => self.effect_done(now, id, result),
            Input::Connected { conn } => self.connected(now, conn),
            Input::ConnectFailed { conn, error } => self.connect_failed(now, conn, error),
            Input::Committed { .. } => self.commit_finished(now),
            failed @ Input::CommitFailed { .. } => return Err(failed),
            Input::Shutdown => self.shutdown(now),
        }
        Ok(())
    }

    /// New limits and mailbox share while running: see [`Server::reconfigure`].
    pub fn reconfigure(&mut self, limits: crate::Limits, offline_share_percent: u8) {
        self.server.reconfigure(limits, offline_share_percent);
    }

    /// The server is stopping: each client is told in its protocol's way and closed
    /// ([`Input::Shutdown`]). Commits go on as before; keep driving the pump until
    /// nothing is left to commit and the closes are carried out.
    pub fn shutdown(&mut self, now: Now) {
        self.feed(now, Input::Shutdown);
    }

    /// A connection was accepted on the listener of `protocol`.
    pub fn accepted(&mut self, now: Now, conn: ConnId, protocol: Protocol, peer: Peer) {
        self.feed(
            now,
            Input::Accepted {
                conn,
                protocol,
                peer,
            },
        );
    }

    /// `bytes` were read from `conn`.
    pub fn received(&mut self, now: Now, conn: ConnId, bytes: Bytes) {
        self.feed(now, Input::Received { conn, bytes });
    }

    /// `n` bytes of earlier transmits on `conn` were handed to its socket.
    pub fn written(&mut self, now: Now, conn: ConnId, n: usize) {
        self.feed(now, Input::Written { conn, n });
    }

    /// The peer of `conn` closed it, or it failed: what was held for it is dropped.
    pub fn peer_closed(&mut self, now: Now, conn: ConnId) {
        self.gate.forget(conn);
        self.feed(now, Input::PeerClosed { conn });
    }

    /// The connection asked for with [`Action::Connect`] is established.
    pub fn connected(&mut self, now: Now, conn: ConnId) {
        self.feed(now, Input::Connected { conn });
    }

    /// The connection asked for with [`Action::Connect`] could not be established.
    pub fn connect_failed(&mut self, now: Now, conn: ConnId, error: String) {
        self.feed(now, Input::ConnectFailed { conn, error });
    }

    /// The effect `id` finished with `result`.
    pub fn effect_done(&mut self, now: Now, id: EffectId, result: EffectResult) {
        self.feed(now, Input::EffectDone { id, result });
    }

    /// The batch of the last [`Action::Commit`] is durable. Ignored when none is in flight.
    pub fn commit_finished(&mut self, now: Now) {
        let Commit::InFlight { through, .. } = self.commit else {
            return;
        };
        self.commit = Commit::Idle;
        self.backoff = FIRST_RETRY;
        self.pull_all();
        // The rule: the server hears of the commit before the gate releases anything.
        self.server.handle(now, Input::Committed { through });
        for output in self.gate.committed(through) {
            if let Some(action) = self.action_of(output) {
                self.actions.push_back(action);
            }
        }
    }

    /// The batch of the last [`Action::Commit`] failed; it is handed back and asked for
    /// again after the backoff. `error` is the cause, for the server's own reporting.
    /// Ignored when none is in flight.
    pub fn commit_failed(&mut self, now: Now, batch: Batch, error: String) {
        let Commit::InFlight { .. } = self.commit else {
            return;
        };
        self.commit = Commit::Retrying {
            batch,
            at: now.mono + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(MAX_RETRY);
        self.feed(now, Input::CommitFailed { error });
    }

    /// Time passed: fires the server's timers due at `now` and asks again for a failed
    /// batch whose backoff is over. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Now) {
        if let Commit::Retrying { at, .. } = &self.commit {
            if *at <= now.mono {
                if let Commit::Retrying { batch, .. } =
                    std::mem::replace(&mut self.commit, Commit::Idle)
                {
                    self.pull_all();
                    let action = self.start(batch);
                    self.actions.push_back(action);
                }
            }
        }
        self.pull_all();
        self.server.handle_timeout(now);
    }

    /// When the pump next wants [`handle_timeout`](Self::handle_timeout), if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let retry = match &self.commit {
            Commit::Retrying { at, .. } => Some(*at),
            _ => None,
        };
        match (self.server.poll_timeout(), retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next thing to do, in order.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        match self.actions.pop_front() {
            Some(action) => Some(action),
            None => self.pull(),
        }
    }

    /// Whether a commit is in flight or waiting to be retried.
    pub fn committing(&self) -> bool {
        !matches!(self.commit, Commit::Idle)
    }

    /// Changes not yet committed: in flight, waiting to be retried, or gathering.
    pub fn uncommitted(&self) -> usize {
        let current = match &self.commit {
            Commit::Idle => 0,
            Commit::InFlight { len, .. } => *len,
            Commit::Retrying { batch, .. } => batch.changes.len(),
        };
        current + self.pending.len()
    }

    /// The failed batch waiting out its backoff, if any: the caller handed it back with
    /// [`commit_failed`](Self::commit_failed), and it is still uncommitted.
    pub fn retrying(&self) -> Option<&Batch> {
        match &self.commit {
            Commit::Retrying { batch, .. } => Some(batch),
            _ => None,
        }
    }

    /// The changes gathering for the next batch, with their sequence numbers.
    pub fn gathering(&self) -> impl Iterator<Item = (Seq, &Change)> {
        let first = self.pending_through.0 + 1 - self.pending.len() as u64;
        self.pending
            .iter()
            .enumerate()
            .map(move |(i, change)| (Seq(first + i as u64), change))
    }

    /// Outputs the gate holds for commits not yet finished.
    pub fn held(&self) -> usize {
        self.gate.held()
    }

    /// [`Server::begin_batch`]: the caller is about to write what was sent so far.
    pub fn begin_batch(&mut self) {
        self.server.begin_batch();
    }

    /// [`Server::batch_full`]: a connection was sent enough since
    /// [`begin_batch`](Self::begin_batch) that the caller should write before it handles
    /// more input.
    pub fn batch_full(&self) -> bool {
        self.server.batch_full()
    }

    /// Hands `input` to the server. Outputs of earlier inputs the caller left unpolled
    /// stay queued in the server, ahead of the new ones: a caller that handles several
    /// inputs before it polls gets each connection's small transmits joined into one.
    /// (Only a commit's end, which changes what the gate holds, moves them first.)
    fn feed(&mut self, now: Now, input: Input) {
        self.server.handle(now, input);
    }

    /// Moves every output the server has queued through the gate into the action queue,
    /// for the rare paths (a commit finishing, a failure) whose actions must line up
    /// behind them. The common path pulls lazily in [`poll_action`](Self::poll_action).
    fn pull_all(&mut self) {
        while let Some(action) = self.pull_output() {
            self.actions.push_back(action);
        }
    }

    /// The next action from the server's outputs, through the tap and the gate.
    fn pull_output(&mut self) -> Option<Action> {
        // The hot path: a transmit the gate lets through, untapped, moved as its two parts.
        // (Moving whole outputs through the steps below cost a store-forwarding stall per
        // transmit: 6 % of the server's CPU in the 8-in-flight direct test.)
        if self.tap.is_none() && self.gate.holds_nothing() {
            let committed = self.gate.committed_through();
            if let Some((conn, bytes)) = self.server.poll_ready_transmit(committed) {
                return Some(Action::Transmit { conn, bytes });
            }
        }
        loop {
            // The tap gets everything produced so far, each transmit as it was sent (the
            // output about to be pulled may hold several joined), events in between.
            if let Some(tap) = self.tap.as_mut() {
                loop {
                    while let Some(event) = self.server.poll_event_before_output() {
                        tap.push_back(Emitted::Event(event));
                    }
                    match self.server.poll_logged_output() {
                        Some(output) => tap.push_back(Emitted::Output(output)),
                        None => break,
                    }
                }
            }
            let output = self.server.poll_output()?;
            if let Some(output) = self.gate.admit(output) {
                if let Some(action) = self.action_of(output) {
                    return Some(action);
                }
            }
        }
    }

    /// The next action from the server's outputs; when they are exhausted, the commit of
    /// what gathered if none is in flight.
    fn pull(&mut self) -> Option<Action> {
        if let Some(action) = self.pull_output() {
            return Some(action);
        }
        if matches!(self.commit, Commit::Idle) && !self.pending.is_empty() {
            let batch = Batch {
                through: self.pending_through,
                changes: std::mem::take(&mut self.pending),
            };
            return Some(self.start(batch));
        }
        None
    }

    fn start(&mut self, batch: Batch) -> Action {
        self.commit = Commit::InFlight {
            through: batch.through,
            len: batch.changes.len(),
        };
        Action::Commit(batch)
    }

    /// What the caller does for an output the gate let go; `None` for a change, which
    /// joins the batch gathering.
    fn action_of(&mut self, output: Output) -> Option<Action> {
        match output {
            Output::Transmit { conn, bytes, .. } => Some(Action::Transmit { conn, bytes }),
            Output::Close { conn, reason } => {
                self.gate.forget(conn);
                Some(Action::Close { conn, reason })
            }
            Output::Persist { seq, change } => {
                debug_assert!(seq > self.pending_through, "persist out of order");
                self.pending.push(*change);
                self.pending_through = seq;
                None
            }
            Output::Effect { id, effect } => Some(Action::Effect { id, effect }),
            Output::Connect { conn, addr } => Some(Action::Connect { conn, addr }),
        }
    }
}

#[cfg(test)]
mod tests;
