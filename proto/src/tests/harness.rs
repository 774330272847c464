//! An in-memory driver for unit tests: connects clients, feeds bytes, advances virtual
//! time from deadline to deadline, and collects what each client received.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::{
    Action, Batch, Change, CloseReason, Config, ConnId, Effect, EffectId, EffectResult, Input,
    Instant, MediaId, Now, PasswordHash, Peer, Protocol, Pump, Seq, Server, State,
};

/// Unix time of the harness's origin.
pub(crate) const WALL_ORIGIN_MS: u64 = 1_700_000_000_000;

pub(crate) struct Harness {
    pump: Pump,
    now: Instant,
    next_conn: u64,
    received: BTreeMap<ConnId, Vec<u8>>,
    closed: BTreeMap<ConnId, CloseReason>,
    /// Acknowledge transmits as written (a client that reads).
    pub(crate) auto_written: bool,
    /// Clients that stopped reading, whatever `auto_written` says.
    pub(crate) stalled: std::collections::BTreeSet<ConnId>,
    /// Commit persisted changes after every input (a store that keeps up).
    pub(crate) auto_commit: bool,
    /// What the store has committed.
    pub(crate) store: State,
    /// The batch the pump asked to commit, while it is in flight.
    in_flight: Option<Batch>,
    effects: VecDeque<(EffectId, Effect)>,
    /// Outbound connections the server asked for, to be answered by the test.
    pub(crate) dials: Vec<(ConnId, core::net::SocketAddr)>,
    /// The bytes of committed media, as the store keeps them apart from `store`.
    blobs: BTreeMap<MediaId, Bytes>,
}

impl Harness {
    pub(crate) fn new(config: Config) -> Self {
        Harness::with_state(config, State::default())
    }

    pub(crate) fn with_state(config: Config, state: State) -> Self {
        Harness {
            pump: Pump::new(Server::new(config, state.clone())),
            auto_commit: true,
            store: state,
            in_flight: None,
            effects: VecDeque::new(),
            dials: Vec::new(),
            blobs: BTreeMap::new(),
            now: Instant::ZERO,
            next_conn: 1,
            received: BTreeMap::new(),
            closed: BTreeMap::new(),
            auto_written: true,
            stalled: Default::default(),
        }
    }

    fn now(&self) -> Now {
        Now::at(self.now, WALL_ORIGIN_MS)
    }

    pub(crate) fn connect(&mut self, protocol: Protocol) -> ConnId {
        self.connect_from(protocol, [127, 0, 0, 1])
    }

    pub(crate) fn connect_from(&mut self, protocol: Protocol, ip: [u8; 4]) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let addr = core::net::SocketAddr::from((ip, 40000 + conn.0 as u16));
        let now = self.now();
        self.pump.accepted(now, conn, protocol, Peer::Net(addr));
        self.drain();
        conn
    }

    pub(crate) fn send(&mut self, conn: ConnId, bytes: impl Into<Vec<u8>>) {
        let bytes = Bytes::from(bytes.into());
        let now = self.now();
        self.pump.received(now, conn, bytes);
        self.drain();
    }

    pub(crate) fn peer_close(&mut self, conn: ConnId) {
        let now = self.now();
        self.pump.peer_closed(now, conn);
        self.drain();
    }

    /// Reports `n` bytes written on `conn` (for a client with `auto_written` off).
    pub(crate) fn written(&mut self, conn: ConnId, n: usize) {
        let now = self.now();
        self.pump.written(now, conn, n);
        self.drain();
    }

    /// Records the network's events from now on, for [`events`](Self::events).
    pub(crate) fn record_events(&mut self) {
        self.pump.record_events();
    }

    /// Asks for the events without those of each direct message.
    pub(crate) fn record_session_events(&mut self) {
        self.pump.record_session_events();
    }

    /// The network's events recorded since the last call.
    pub(crate) fn events(&mut self) -> Vec<crate::NetworkEvent> {
        std::iter::from_fn(|| self.pump.poll_event()).collect()
    }

    /// The server the pump drives.
    /// New limits while running ([`Pump::reconfigure`]).
    pub(crate) fn reconfigure(&mut self, limits: crate::Limits, offline_share_percent: u8) {
        self.pump.reconfigure(limits, offline_share_percent);
    }

    pub(crate) fn server(&self) -> &Server {
        self.pump.server()
    }

    /// Changes persisted and not yet committed, with their sequence numbers: the batch in
    /// flight or waiting to be retried, then those gathering for the next.
    pub(crate) fn uncommitted(&self) -> Vec<(Seq, Change)> {
        let in_flight = self.in_flight.iter().flat_map(Batch::numbered);
        let retrying = self.pump.retrying().into_iter().flat_map(Batch::numbered);
        in_flight
            .chain(retrying)
            .chain(self.pump.gathering())
            .map(|(seq, change)| (seq, change.clone()))
            .collect()
    }

    /// Advances virtual time by `ms`, firing every deadline on the way.
    pub(crate) fn advance(&mut self, ms: u64) {
        let target = Instant::from_millis(self.now.as_millis() + ms);
        while let Some(at) = self.pump.poll_timeout().filter(|&at| at <= target) {
            self.now = self.now.max(at);
            let now = self.now();
            self.pump.handle_timeout(now);
            self.drain();
        }
        self.now = target;
    }

    /// Commits every batch until nothing persisted is left uncommitted, releasing what
    /// waited on each.
    pub(crate) fn commit(&mut self) {
        while self.in_flight.is_some() {
            self.finish_commit();
            self.drain();
        }
    }

    /// Commits batches until everything through `through` is committed; `through` must
    /// end a batch.
    pub(crate) fn commit_through(&mut self, through: Seq) {
        while self.server().committed() < through {
            let ends = self.in_flight.as_ref().map(|b| b.through);
            assert!(
                ends.is_some_and(|end| end <= through),
                "#{} does not end a batch (in flight: through {ends:?})",
                through.0
            );
            self.finish_commit();
            self.drain();
        }
    }

    /// Commits the batch in flight and reports it.
    fn finish_commit(&mut self) {
        let Some(batch) = self.in_flight.take() else {
            return;
        };
        for change in &batch.changes {
            self.store.apply(change);
            if let Change::MediaStored { id, bytes, .. } = change {
                self.blobs.insert(*id, bytes.0.clone());
            }
        }
        let media = &self.store.media;
        self.blobs.retain(|id, _| media.contains_key(id));
        let now = self.now();
        self.pump.commit_finished(now);
    }

    /// Reports that the batch in flight failed, and waits out the pump's backoff so the
    /// same batch is in flight again. Without a batch in flight, persists nothing and
    /// does nothing.
    pub(crate) fn fail_commit(&mut self) {
        let Some(batch) = self.in_flight.take() else {
            return;
        };
        let now = self.now();
        self.pump.commit_failed(now, batch, "disk full".into());
        self.drain();
        if let Some(at) = self.pump.poll_timeout() {
            let wait = at.as_millis().saturating_sub(self.now.as_millis());
            self.advance(wait);
        }
    }

    /// Feeds a connection event the other helpers do not cover (dial results, an accept
    /// with a chosen id) through the pump's own methods, then drains.
    pub(crate) fn input(&mut self, input: Input) {
        let now = self.now();
        assert!(
            !matches!(input, Input::Committed { .. } | Input::CommitFailed { .. }),
            "commits go through the pump's batches, not a raw input"
        );
        let _ = self.pump.handle(now, input);
        self.drain();
    }

    /// Carries out what the pump asks for; then runs one effect or (with `auto_commit`)
    /// commits the batch in flight, and again, until nothing is left to do.
    fn drain(&mut self) {
        loop {
            self.carry_out();
            if let Some((id, effect)) = self.effects.pop_front() {
                let now = self.now();
                let result = match effect {
                    Effect::ReadMedia { id } => EffectResult::Media(self.blobs.get(&id).cloned()),
                    effect => run_effect(&effect),
                };
                self.pump.effect_done(now, id, result);
                continue;
            }
            if self.auto_commit && self.in_flight.is_some() {
                self.finish_commit();
                continue;
            }
            break;
        }
    }

    fn carry_out(&mut self) {
        while let Some(action) = self.pump.poll_action() {
            let now = self.now();
            match action {
                Action::Commit(batch) => {
                    assert!(self.in_flight.is_none(), "two commits in flight");
                    self.in_flight = Some(batch);
                }
                Action::Effect { id, effect } => self.effects.push_back((id, effect)),
                Action::Connect { conn, addr } => self.dials.push((conn, addr)),
                Action::Transmit { conn, bytes } => {
                    assert!(
                        !self.closed.contains_key(&conn),
                        "transmit after close on {conn}"
                    );
                    self.received
                        .entry(conn)
                        .or_default()
                        .extend_from_slice(&bytes);
                    if self.auto_written && !self.stalled.contains(&conn) {
                        self.pump.written(now, conn, bytes.len());
                    }
                }
                Action::Close { conn, reason } => {
                    assert!(
                        self.closed.insert(conn, reason).is_none(),
                        "closed twice: {conn}"
                    );
                }
            }
        }
    }

    /// Everything `conn` received since the last call, as text.
    pub(crate) fn take(&mut self, conn: ConnId) -> String {
        let bytes = self.received.remove(&conn).unwrap_or_default();
        String::from_utf8(bytes).expect("server sent UTF-8")
    }

    /// Why the server closed `conn`, if it did.
    pub(crate) fn closed(&self, conn: ConnId) -> Option<CloseReason> {
        self.closed.get(&conn).copied()
    }
}

/// The lowercase hex MD5 of `password`: what an ims client sends in its place.
pub(crate) fn md5_hex(password: &str) -> String {
    use md5::{Digest, Md5};
    let digest = Md5::digest(password.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stand-in for the runtime's argon2 hasher: deterministic and instant. The ims hash
/// is of the password's MD5 hex, as the store's, so an ims login checks out.
fn run_effect(effect: &Effect) -> EffectResult {
    match effect {
        Effect::HashPassword { password } => EffectResult::Hashed {
            password: PasswordHash(format!("test${}", password.0)),
            ims_password: PasswordHash(format!("test${}", md5_hex(&password.0))),
        },
        Effect::VerifyPassword { hash, password } => {
            EffectResult::Verified(hash.0 == format!("test${}", password.0))
        }
        Effect::ReadMedia { .. } => EffectResult::Failed,
    }
}
