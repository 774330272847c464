//! An in-memory driver for unit tests: connects clients, feeds bytes, advances virtual
//! time from deadline to deadline, and collects what each client received.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::{CloseReason, Config, ConnId, Input, Instant, Now, Output, Protocol, Server};

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
}

impl Harness {
    pub(crate) fn new(config: Config) -> Self {
        Harness {
            server: Server::new(config),
            now: Instant::ZERO,
            next_conn: 1,
            received: BTreeMap::new(),
            closed: BTreeMap::new(),
            auto_written: true,
        }
    }

    fn now(&self) -> Now {
        Now::at(self.now, WALL_ORIGIN_MS)
    }

    pub(crate) fn connect(&mut self, protocol: Protocol) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let peer = ([127, 0, 0, 1], 40000 + conn.0 as u16).into();
        self.input(Input::Accepted {
            conn,
            protocol,
            peer,
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

    fn drain(&mut self) {
        while let Some(output) = self.server.poll_output() {
            match output {
                Output::Transmit { conn, bytes } => {
                    assert!(
                        !self.closed.contains_key(&conn),
                        "transmit after close on {conn}"
                    );
                    self.received
                        .entry(conn)
                        .or_default()
                        .extend_from_slice(&bytes);
                    if self.auto_written {
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
