//! What every runtime logs and counts about its connections, sessions and commits, in one
//! place, so the smol and mio runtimes write the same lines and export the same metrics.
//!
//! A runtime calls [`Observer::opened`] and [`Observer::closed`] for each connection,
//! [`Observer::dialing`], [`Observer::dial_failed`] and [`Observer::dialed`] for each
//! outbound connection the core asks for (the jabberd router link),
//! [`Observer::received`] and [`Observer::written`] with its byte counts, hands it every
//! [`NetworkEvent`] the pump records, [`Observer::committed`] for each commit, and
//! [`Observer::refresh`] after each batch of work. The log lines (targets
//! `switchboard::conn`, `switchboard::auth`, `switchboard::moderation`,
//! `switchboard::link` for outbound connections, and `switchboard::local` for admin
//! socket connections) carry the fields operators grep for: `protocol`, `peer`, `user`,
//! `reason`, `addr`. Passwords never reach here.
//!
//! Outbound connections count under their own label, `protocol="outbound"`, in the
//! connection gauge and the byte counters, so the gauge counts every socket the server
//! holds and the client figures stay the clients'.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use switchboard_proto::{
    CloseReason, ConnId, KickReason, NetworkEvent, Peer, Protocol, Server, UserName,
};
use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// How often the gauges that cost a walk of the server's state (the offline queue) are
/// read again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The label of outbound connections (those the core dials) in the `protocol` label of
/// the connection gauge and the byte counters.
pub const OUTBOUND: &str = "outbound";

/// What is known of an open connection.
#[derive(Debug)]
struct Open {
    /// `None` for an outbound connection (the runtime does not know its protocol).
    protocol: Option<Protocol>,
    peer: Peer,
    /// The user of its last login, for the lines after it.
    user: Option<UserName>,
}

/// Logs and counts what a runtime sees. See the module's documentation.
#[derive(Debug)]
pub struct Observer {
    conns: HashMap<ConnId, Open>,
    /// Outbound connections being dialed, and where to.
    dialing: HashMap<ConnId, SocketAddr>,
    /// Per address dialed: the dials since it was last up (0 until the first).
    links: HashMap<SocketAddr, Link>,
    metrics: Option<Metrics>,
    /// The byte counters of `metrics`, by [`index_of`] a connection, taken once: finding
    /// them by label costs a lock, a hash and two allocations per read or write.
    bytes: Option<ByteCounters>,
    /// The core's counters as last exported.
    exported: switchboard_proto::Counters,
    last_refresh: Option<Instant>,
}

/// Every value of the `reason` label of disconnects.
pub const REASONS: [&str; 9] = [
    "timeout",
    "limit",
    "slow_reader",
    "kick",
    "error",
    "quit",
    "done",
    "peer_closed",
    "shutdown",
];

/// Why a connection went, as a metric label: `timeout`, `limit`, `slow_reader`, `kick`,
/// `error`, `quit`, `done`, `peer_closed` or `shutdown`.
pub fn reason_label(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Quit => "quit",
        CloseReason::Timeout | CloseReason::LoginTimeout => "timeout",
        CloseReason::SlowReader => "slow_reader",
        CloseReason::ProtocolError => "error",
        CloseReason::Kicked | CloseReason::Banned => "kick",
        CloseReason::Done => "done",
        CloseReason::TooManyConnections => "limit",
        CloseReason::Shutdown => "shutdown",
    }
}

/// The dials of one outbound address.
#[derive(Debug, Default)]
struct Link {
    /// Dials since it was last established.
    attempts: u32,
    /// Whether it was ever established.
    was_up: bool,
}

/// The byte counters of each protocol, then of outbound connections.
#[derive(Debug)]
struct ByteCounters {
    inbound: Vec<prometheus_client::metrics::counter::Counter>,
    outbound: Vec<prometheus_client::metrics::counter::Counter>,
}

impl ByteCounters {
    fn of(m: &Metrics) -> ByteCounters {
        let labels: Vec<_> = (Protocol::ALL.iter().map(|&p| label(p)))
            .chain([outbound_label()])
            .collect();
        ByteCounters {
            inbound: labels
                .iter()
                .map(|l| m.bytes_in.get_or_create(l).clone())
                .collect(),
            outbound: labels
                .iter()
                .map(|l| m.bytes_out.get_or_create(l).clone())
                .collect(),
        }
    }
}

/// Where a connection's byte counters are in [`ByteCounters`].
fn index_of(open: &Open) -> usize {
    open.protocol.map_or(Protocol::ALL.len(), |p| p.index())
}

impl Observer {
    /// An observer that exports to `metrics` when given.
    pub fn new(metrics: Option<Metrics>) -> Observer {
        Observer {
            bytes: metrics.as_ref().map(ByteCounters::of),
            conns: HashMap::new(),
            dialing: HashMap::new(),
            links: HashMap::new(),
            metrics,
            exported: Default::default(),
            last_refresh: None,
        }
    }

    /// The connections open now, by protocol (admin connections included).
    pub fn connections(&self) -> [u64; Protocol::ALL.len()] {
        let mut open = [0; Protocol::ALL.len()];
        for protocol in self.conns.values().filter_map(|c| c.protocol) {
            open[protocol.index()] += 1;
        }
        open
    }

    /// The outbound connections open now.
    pub fn outbound(&self) -> usize {
        self.conns.values().filter(|c| c.protocol.is_none()).count()
    }

    /// The core asked for an outbound connection `conn` to `addr`: logged at info, as a
    /// redial (with the attempt's number) when `addr` was dialed before.
    pub fn dialing(&mut self, conn: ConnId, addr: SocketAddr) {
        let link = self.links.entry(addr).or_default();
        link.attempts += 1;
        let attempt = link.attempts;
        match (link.was_up, attempt) {
            (false, 1) => info!(target: "switchboard::link", %conn, %addr, "dialing outbound link"),
            _ => info!(
                target: "switchboard::link", %conn, %addr, attempt,
                "redialing outbound link"
            ),
        }
        self.dialing.insert(conn, addr);
    }

    /// The dial of `conn` failed (refused, timed out, no descriptor): logged at warn with
    /// the address and the cause; the core decides when to dial again.
    pub fn dial_failed(&mut self, conn: ConnId, error: &str) {
        let addr = self.dialing.remove(&conn);
        let attempt = addr
            .and_then(|a| self.links.get(&a))
            .map_or(0, |l| l.attempts);
        let addr = addr.map(|a| a.to_string()).unwrap_or_default();
        warn!(
            target: "switchboard::link", %conn, %addr, error, attempt,
            "outbound connection failed; the server dials it again later"
        );
    }

    /// The dial of `conn` succeeded: logged at info with the address, and counted as an
    /// open connection under [`OUTBOUND`] until [`closed`](Self::closed).
    pub fn dialed(&mut self, conn: ConnId) {
        let Some(addr) = self.dialing.remove(&conn) else {
            return;
        };
        let link = self.links.entry(addr).or_default();
        let attempts = std::mem::take(&mut link.attempts);
        link.was_up = true;
        info!(target: "switchboard::link", %conn, %addr, attempts, "outbound connection established");
        if let Some(m) = &self.metrics {
            m.connections.get_or_create(&outbound_label()).inc();
        }
        self.conns.insert(
            conn,
            Open {
                protocol: None,
                peer: Peer::Net(addr),
                user: None,
            },
        );
    }

    /// A connection opened (accepted, or dialed by the core).
    pub fn opened(&mut self, conn: ConnId, protocol: Protocol, peer: Peer) {
        match peer {
            Peer::Net(addr) => {
                debug!(target: "switchboard::conn", %conn, %protocol, peer = %addr, "connection opened")
            }
            Peer::Local => {
                debug!(target: "switchboard::local", %conn, %protocol, "local connection opened")
            }
        }
        if let Some(m) = &self.metrics {
            m.connections.get_or_create(&label(protocol)).inc();
        }
        self.conns.insert(
            conn,
            Open {
                protocol: Some(protocol),
                peer,
                user: None,
            },
        );
    }

    /// A connection closed: by the core for `reason`, by the peer (`None`), or at shutdown
    /// (`Some("shutdown")` as `label`).
    pub fn closed(&mut self, conn: ConnId, reason: Option<CloseReason>) {
        // A dial the core gave up on before it was established.
        self.dialing.remove(&conn);
        let (text, label_text) = match reason {
            Some(r) => (r.as_str(), reason_label(r)),
            None => ("peer closed", "peer_closed"),
        };
        self.gone(conn, text, label_text);
    }

    /// Every connection still open is closed by shutdown.
    pub fn shutdown(&mut self) {
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.gone(conn, "shutdown", "shutdown");
        }
    }

    fn gone(&mut self, conn: ConnId, reason: &str, label_text: &'static str) {
        let Some(open) = self.conns.remove(&conn) else {
            return;
        };
        let Some(protocol) = open.protocol else {
            let addr = match open.peer {
                Peer::Net(addr) => addr.to_string(),
                Peer::Local => String::new(),
            };
            // The link's end is news to an operator, unless the server is stopping.
            match label_text {
                "shutdown" => {
                    info!(target: "switchboard::link", %conn, %addr, reason, "outbound connection closed")
                }
                _ => warn!(
                    target: "switchboard::link", %conn, %addr, reason,
                    "outbound connection closed; the server dials it again later"
                ),
            }
            if let Some(m) = &self.metrics {
                m.connections.get_or_create(&outbound_label()).dec();
            }
            return;
        };
        let user = open.user.as_ref().map(UserName::as_str).unwrap_or("");
        match open.peer {
            // A limit hit is worth a line at info; a connection's ordinary end is not
            // (a load test wrote megabytes of them).
            Peer::Net(addr) if matches!(label_text, "limit" | "slow_reader") => info!(
                target: "switchboard::conn", %conn, %protocol, peer = %addr, user, reason,
                "connection closed"
            ),
            Peer::Net(addr) => debug!(
                target: "switchboard::conn", %conn, %protocol, peer = %addr, user, reason,
                "connection closed"
            ),
            Peer::Local => {
                debug!(target: "switchboard::local", %conn, %protocol, reason, "local connection closed")
            }
        }
        if let Some(m) = &self.metrics {
            m.connections.get_or_create(&label(protocol)).dec();
            if matches!(open.peer, Peer::Net(_)) {
                m.disconnects
                    .get_or_create(&vec![("reason", label_text.to_owned())])
                    .inc();
            }
        }
    }

    /// `n` bytes were read from `conn`.
    pub fn received(&mut self, conn: ConnId, n: usize) {
        // Metrics off: not even the lookup (this runs for every read).
        let Some(bytes) = &self.bytes else { return };
        if let Some(open) = self.conns.get(&conn) {
            bytes.inbound[index_of(open)].inc_by(n as u64);
        }
    }

    /// `n` bytes were written to `conn`.
    pub fn written(&mut self, conn: ConnId, n: usize) {
        // Metrics off: not even the lookup (this runs for every write: 1000 per message
        // fanned out to a room of 1000).
        let Some(bytes) = &self.bytes else { return };
        if let Some(open) = self.conns.get(&conn) {
            bytes.outbound[index_of(open)].inc_by(n as u64);
        }
    }

    /// Something happened in the network: logins, logouts and kicks get their lines.
    pub fn event(&mut self, event: NetworkEvent) {
        match event {
            NetworkEvent::LoggedIn {
                name,
                protocol,
                conn,
                ..
            } => {
                let peer = self.peer_of(conn);
                info!(target: "switchboard::auth", %conn, %protocol, peer, user = name.as_str(), "login");
                if let Some(open) = self.conns.get_mut(&conn) {
                    open.user = Some(name);
                }
            }
            NetworkEvent::LoggedOut {
                name,
                protocol,
                conn,
                ..
            } => {
                let peer = self.peer_of(conn);
                debug!(target: "switchboard::auth", %conn, %protocol, peer, user = name.as_str(), "logout");
            }
            NetworkEvent::Kicked {
                name,
                conn,
                sessions,
                reason,
            } => {
                let reason = match reason {
                    KickReason::Kicked => "kicked",
                    KickReason::Banned => "banned",
                    KickReason::AccountDeleted => "account deleted",
                };
                // The connections closed: the one named, else those of the user.
                let conns: Vec<ConnId> = match (conn, &name) {
                    (Some(c), _) => vec![c],
                    (None, Some(user)) => (self.conns.iter())
                        .filter(|(_, o)| o.user.as_ref().is_some_and(|u| u.key() == user.key()))
                        .map(|(&c, _)| c)
                        .collect(),
                    (None, None) => Vec::new(),
                };
                let join = |f: &dyn Fn(ConnId) -> String| {
                    let mut all: Vec<String> = conns.iter().map(|&c| f(c)).collect();
                    all.sort();
                    all.dedup();
                    all.join(",")
                };
                let peer = join(&|c| self.peer_of(c));
                let protocol = join(&|c| {
                    (self.conns.get(&c).and_then(|o| o.protocol))
                        .map(|p| p.to_string())
                        .unwrap_or_default()
                });
                let user = name.as_ref().map(UserName::as_str).unwrap_or("");
                info!(target: "switchboard::moderation", protocol, peer, user, reason, sessions, "sessions closed");
            }
            NetworkEvent::MediaRefused {
                name,
                conn,
                size,
                stored,
                limit,
            } => {
                let peer = self.peer_of(conn);
                let protocol = (self.conns.get(&conn).and_then(|o| o.protocol))
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                warn!(target: "switchboard::limits", %conn, protocol, peer, user = name.as_str(), size, stored, limit, "media refused: the user's stored media would pass its total");
            }
            _ => {}
        }
    }

    fn peer_of(&self, conn: ConnId) -> String {
        match self.conns.get(&conn).map(|o| o.peer) {
            Some(Peer::Net(addr)) => addr.to_string(),
            Some(Peer::Local) => "local".to_owned(),
            None => String::new(),
        }
    }

    /// A batch of `changes` committed, `took` after it was handed to the store.
    pub fn committed(&mut self, changes: usize, took: Duration) {
        if let Some(m) = &self.metrics {
            m.batch_size.observe(changes as f64);
            m.commit_seconds.observe(took.as_secs_f64());
        }
    }

    /// Exports the core's counters (cheap: every call), and at most every
    /// [`REFRESH_EVERY`] what costs a walk of its state.
    pub fn refresh(&mut self, server: &Server) {
        let Some(m) = &self.metrics else { return };
        let counters = server.counters();
        for (i, &protocol) in Protocol::ALL.iter().enumerate() {
            let logins = counters.logins[i] - self.exported.logins[i];
            if logins > 0 {
                m.logins.get_or_create(&label(protocol)).inc_by(logins);
            }
            m.sessions
                .get_or_create(&label(protocol))
                .set(i64::try_from(counters.sessions[i]).unwrap_or(i64::MAX));
            let stored = counters.stored[i] - self.exported.stored[i];
            if stored > 0 {
                m.routed
                    .get_or_create(&vec![
                        ("from", protocol.to_string()),
                        ("to", "mailbox".to_owned()),
                    ])
                    .inc_by(stored);
            }
            for (j, &to) in Protocol::ALL.iter().enumerate() {
                let routed = counters.routed[i][j] - self.exported.routed[i][j];
                if routed > 0 {
                    m.routed
                        .get_or_create(&vec![
                            ("from", protocol.to_string()),
                            ("to", to.to_string()),
                        ])
                        .inc_by(routed);
                }
            }
        }
        self.exported = counters.clone();
        let now = Instant::now();
        if self.last_refresh.is_none_or(|at| now - at >= REFRESH_EVERY) {
            self.last_refresh = Some(now);
            let stats = server.stats();
            m.offline_queue
                .set(i64::try_from(stats.offline_messages).unwrap_or(i64::MAX));
            m.offline_queue_max
                .set(i64::try_from(stats.max_offline_queue).unwrap_or(i64::MAX));
            let refused = stats.rate_refusals - m.rate_refusals.get();
            m.rate_refusals.inc_by(refused);
        }
    }
}

fn label(protocol: Protocol) -> Vec<(&'static str, String)> {
    vec![("protocol", protocol.to_string())]
}

/// The `protocol` label of outbound connections.
pub(crate) fn outbound_label() -> Vec<(&'static str, String)> {
    vec![("protocol", OUTBOUND.to_owned())]
}
