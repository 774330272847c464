//! An in-memory driver for unit tests: connects clients, feeds bytes, advances virtual
//! time from deadline to deadline, and collects what each client received.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::{
    Change, CloseReason, CommitGate, Config, ConnId, Effect, EffectId, EffectResult, Input,
    Instant, Now, Output, PasswordHash, Protocol, Seq, Server, State,
};

/// Unix time of the harness's origin.
pub(crate) const WALL_ORIGIN_MS: u64 = 1_700_000_000_000;

pub(crate) struct Harness {
    pub(crate) server: Server,
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
    /// Changes persisted and not yet committed.
    pub(crate) uncommitted: Vec<(Seq, Change)>,
    gate: CommitGate,
    effects: VecDeque<(EffectId, Effect)>,
    /// Outbound connections the server asked for, to be answered by the test.
    pub(crate) dials: Vec<(ConnId, core::net::SocketAddr)>,
}

impl Harness {
    pub(crate) fn new(config: Config) -> Self {
        Harness::with_state(config, State::default())
    }

    pub(crate) fn with_state(config: Config, state: State) -> Self {
        Harness {
            server: Server::new(config, state.clone()),
            auto_commit: true,
            store: state,
            uncommitted: Vec::new(),
            gate: CommitGate::new(),
            effects: VecDeque::new(),
            dials: Vec::new(),
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
        self.input(Input::Accepted {
            conn,
            protocol,
            peer: addr.into(),
        });
        conn
    }

    pub(crate) fn send(&mut self, conn: ConnId, bytes: impl Into<Vec<u8>>) {
        let bytes = Bytes::from(bytes.into());
        self.input(Input::Received { conn, bytes });
    }

    pub(crate) fn peer_close(&mut self, conn: ConnId) {
        self.input(Input::PeerClosed { conn });
    }

    pub(crate) fn input(&mut self, input: Input) {
        let now = self.now();
        self.server.handle(now, input);
        self.drain();
    }

    /// Advances virtual time by `ms`, firing every deadline on the way.
    pub(crate) fn advance(&mut self, ms: u64) {
        let target = Instant::from_millis(self.now.as_millis() + ms);
        while let Some(at) = self.server.poll_timeout().filter(|&at| at <= target) {
            self.now = self.now.max(at);
            let now = self.now();
            self.server.handle_timeout(now);
            self.drain();
        }
        self.now = target;
    }

    /// Commits everything persisted so far and releases what waited on it.
    pub(crate) fn commit(&mut self) {
        let Some(&(through, _)) = self.uncommitted.last() else {
            return;
        };
        for (_, change) in self.uncommitted.drain(..) {
            self.store.apply(&change);
        }
        let now = self.now();
        self.server.handle(now, Input::Committed { through });
        for output in self.gate.committed(through) {
            self.carry_out(output);
        }
        self.drain();
    }

    /// Commits the changes persisted through `through` (a batch that ends there), reports
    /// it, and releases what waited on it; later changes stay uncommitted.
    pub(crate) fn commit_through(&mut self, through: Seq) {
        let n = self.uncommitted.partition_point(|(seq, _)| *seq <= through);
        for (_, change) in self.uncommitted.drain(..n) {
            self.store.apply(&change);
        }
        let now = self.now();
        self.server.handle(now, Input::Committed { through });
        for output in self.gate.committed(through) {
            self.carry_out(output);
        }
        self.drain();
    }

    /// Reports a failed commit (the batch stays uncommitted).
    pub(crate) fn fail_commit(&mut self) {
        let now = self.now();
        self.server.handle(
            now,
            Input::CommitFailed {
                error: "disk full".into(),
            },
        );
        self.drain();
    }

    fn drain(&mut self) {
        loop {
            while let Some(output) = self.server.poll_output() {
                if let Some(output) = self.gate.admit(output) {
                    self.carry_out(output);
                }
            }
            if let Some((id, effect)) = self.effects.pop_front() {
                let now = self.now();
                let result = run_effect(&effect);
                self.server.handle(now, Input::EffectDone { id, result });
                continue;
            }
            if self.auto_commit && !self.uncommitted.is_empty() {
                self.commit();
                continue;
            }
            break;
        }
    }

    fn carry_out(&mut self, output: Output) {
        {
            match output {
                Output::Persist { seq, change } => self.uncommitted.push((seq, *change)),
                Output::Effect { id, effect } => self.effects.push_back((id, effect)),
                Output::Connect { conn, addr } => self.dials.push((conn, addr)),
                Output::Transmit { conn, bytes, .. } => {
                    assert!(
                        !self.closed.contains_key(&conn),
                        "transmit after close on {conn}"
                    );
                    self.received
                        .entry(conn)
                        .or_default()
                        .extend_from_slice(&bytes);
                    if self.auto_written && !self.stalled.contains(&conn) {
                        let now = self.now();
                        self.server.handle(
                            now,
                            Input::Written {
                                conn,
                                n: bytes.len(),
                            },
                        );
                    }
                }
                Output::Close { conn, reason } => {
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

/// A stand-in for the runtime's argon2 hasher: deterministic and instant.
fn run_effect(effect: &Effect) -> EffectResult {
    match effect {
        Effect::HashPassword { password } => EffectResult::Hashed {
            password: PasswordHash(format!("test${}", password.0)),
            ims_password: PasswordHash(format!("test-ims${}", password.0)),
        },
        Effect::VerifyPassword { hash, password } => {
            EffectResult::Verified(hash.0 == format!("test${}", password.0))
        }
    }
}
