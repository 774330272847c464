//! [`Server`]: the whole network behind one input door and one output door.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::conns::{Conn, Slot, Table};
use crate::cx::{Cx, Dialing, Home, Homes, Px};
use crate::ids::{ConnId, Protocol, Seq};
use crate::io::{Input, Output, Peer};
use crate::limits::Limiter;
use crate::model::{Audience, Network, NetworkEvent};
use crate::outbox::{Link, Outbox};
use crate::persist::State;
use crate::protocol::{lobby_news, Encoded, Endpoint, Shared};
use crate::rng::{Rng, Stream};
use crate::time::{Instant, Now};
use crate::timers::{Timers, Wake};

/// The chat server's state machine: every connection, session and user of the network.
///
/// It does no I/O and reads no clock. Drive it like this:
///
/// 1. Wait for something to happen: a connection accepted, bytes read, bytes written,
///    a connection closed by its peer, an effect or a commit finished, or the deadline of
///    [`poll_timeout`](Self::poll_timeout).
/// 2. Feed it: [`handle`](Self::handle) for an event, [`handle_timeout`](Self::handle_timeout)
///    when the deadline passed. Every call passes the current [`Now`]; its monotonic part
///    must never go backwards.
/// 3. Drain [`poll_output`](Self::poll_output) until `None`, through a
///    [`CommitGate`](crate::CommitGate): write each [`Output::Transmit`] it lets through to
///    its connection in order and report written bytes with [`Input::Written`]; close on
///    [`Output::Close`]; add each [`Output::Persist`] to the store's next batch; run each
///    [`Output::Effect`] off the loop and report [`Input::EffectDone`]; dial each
///    [`Output::Connect`] and report [`Input::Connected`] (then treat the connection as an
///    accepted one) or [`Input::ConnectFailed`] (the server decides when to try again).
///    Draining late only adds latency.
/// 4. Commit batches off the loop, one at a time; report [`Input::Committed`] *first*, then
///    carry out what the gate releases ([`CommitGate::committed`](crate::CommitGate::committed)),
///    then drain again; or report [`Input::CommitFailed`] and retry the same batch. That
///    order is the one rule: the server always knows of a commit before any byte it
///    released is reported written.
/// 5. Ask [`poll_timeout`](Self::poll_timeout) for the next deadline and go back to 1.
///
/// Every driver in this workspace does all of this through a [`Pump`](crate::Pump), which
/// owns the server, the gate and the group-commit and retry state machine; a new runtime
/// should too, instead of writing steps 3 and 4 again.
///
/// A client never sees an acknowledgement of a durable change before it is committed, and a
/// commit never holds up traffic that does not depend on it. Given the same config, state
/// and inputs, the outputs are the same, byte for byte.
pub struct Server {
    last_now: Option<Now>,
    /// The open connections in id order, the order every walk that produces output
    /// takes; their records are in `core.conns`.
    order: BTreeMap<ConnId, Slot>,
    /// Those of `order` whose protocol shows the lobby's broadcasts
    /// ([`shows_lobby`](crate::protocol::shows_lobby)): a broadcast's walk.
    lobby: BTreeMap<ConnId, Slot>,
    /// Each protocol's state across its connections and sessions.
    shared: Shared,
    core: Core,
}

/// The parts of the server a session may touch through its [`Cx`].
struct Core {
    /// Drawn from by protocols that hand out random ids (arsc sids).
    rng: Rng,
    config: Config,
    net: Network,
    /// Every open connection's record.
    conns: Table,
    /// Where the sessions their protocols placed are.
    homes: Homes,
    /// Outbound connections asked for and not yet reported connected or failed.
    dialing: Dialing,
    timers: Timers,
    out: Outbox,
    limits: Limiter,
}

/// Sizes of the server's collections, for monitoring and the simulator's memory bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Open connections.
    pub connections: usize,
    /// Users with at least one session.
    pub online_users: usize,
    /// Outputs waiting in the queue.
    pub queued_outputs: usize,
    /// Armed timers.
    pub timers: usize,
    /// The most bytes buffered from one peer and not yet framed.
    pub max_inbound_bytes: usize,
    /// The most bytes sent to one peer and not yet reported written.
    pub max_unwritten_bytes: usize,
    /// Bytes sent and not yet reported written over all connections that are not
    /// closing; at most `Limits::outbound_budget_bytes`.
    pub unwritten_bytes: usize,
    /// Addresses whose rate-limit buckets are kept; at most `Limits::max_ip_buckets`.
    pub ip_buckets: usize,
    /// Requests refused by a rate limit since start (see [`Server::rate_refusals`]).
    pub rate_refusals: u64,
    /// Effects asked for and not yet done.
    pub running_effects: usize,
    /// Registered accounts.
    pub accounts: usize,
    /// Direct messages relayed to online recipients since start.
    pub relayed_messages: u64,
    /// Offline messages stored, over all accounts.
    pub offline_messages: usize,
    /// The most offline messages stored for one account.
    pub max_offline_queue: usize,
}

impl Server {
    /// A server with no connections over the durable `state` the store loaded, its
    /// generator seeded from `config.seed`.
    pub fn new(config: Config, state: State) -> Server {
        let hasher = crate::hashing::seeded(config.seed);
        #[allow(unused_mut)]
        let mut net = Network::new(state, hasher.clone());
        let mut timers = Timers::default();
        // The router link (if configured) is dialed at the first timeout.
        if config.jabberd.router.is_some() {
            timers.set_protocol(Protocol::Jabberd, Instant::ZERO);
        }
        #[cfg(feature = "planted-bugs")]
        {
            net.planted_bug = config.planted_bug;
        }
        let limits = Limiter::seeded(hasher);
        Server {
            last_now: None,
            order: BTreeMap::new(),
            lobby: BTreeMap::new(),
            shared: Shared::default(),
            core: Core {
                rng: Rng::new(config.seed, Stream::Sessions),
                conns: Table::default(),
                homes: Homes::default(),
                dialing: Dialing::default(),
                out: Outbox::new(
                    config.outbound_limit_bytes,
                    config.limits.outbound_budget_bytes,
                ),
                config,
                net,
                timers,
                limits,
            },
        }
    }

    /// From now on, records a [`NetworkEvent`] for everything that happens in the network
    /// (logins, renames, each direct message's fate, mailbox hand-outs and removals,
    /// kicks), to be read with [`poll_event`](Self::poll_event). Off until called, so a
    /// driver that does not read them pays nothing and nothing piles up; one that calls
    /// it must drain them after every input, as it drains
    /// [`poll_output`](Self::poll_output). Nothing changes on the wire.
    pub fn record_events(&mut self) {
        let outputs = self.core.out.output_count();
        self.core.net.record_events(outputs, true);
    }

    /// [`record_events`](Self::record_events) without the events of each direct message
    /// ([`NetworkEvent::is_per_message`]): what a runtime logs (logins, kicks, refusals),
    /// at no cost per message.
    pub fn record_session_events(&mut self) {
        let outputs = self.core.out.output_count();
        self.core.net.record_events(outputs, false);
    }

    /// The next recorded [`NetworkEvent`], in the order things happened; always `None`
    /// without [`record_events`](Self::record_events).
    pub fn poll_event(&mut self) -> Option<NetworkEvent> {
        self.core.net.poll_event()
    }

    /// The next recorded [`NetworkEvent`] if it happened before the output
    /// [`poll_output`](Self::poll_output) returns next (or, with none queued, any): for a
    /// driver that reads events and outputs as one ordered stream.
    pub fn poll_event_before_output(&mut self) -> Option<NetworkEvent> {
        let next = self.core.out.popped();
        self.core.net.poll_event_before(next)
    }

    /// The durable state as the server sees it: everything committed plus the changes it
    /// has queued since.
    pub fn state(&self) -> &State {
        self.core.net.state()
    }

    /// The highest sequence number reported committed.
    pub fn committed(&self) -> Seq {
        self.core.out.committed_through()
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    /// Feeds one input.
    ///
    /// # Panics
    /// If `now.mono` is earlier than the previous call's.
    pub fn handle(&mut self, now: Now, input: Input) {
        self.advance(now);
        match input {
            Input::Accepted {
                conn,
                protocol,
                peer,
            } => {
                if self.core.conns.slot(conn).is_some() || conn.is_outbound() {
                    return;
                }
                // A refused connection still opens: its protocol says why and closes it.
                // The admin protocol is never refused, so an operator can always get in.
                let ip = peer.ip().filter(|_| protocol != Protocol::Admin);
                self.open(now, conn, protocol, peer, ip, false);
            }
            Input::Connected { conn } => {
                let Some(dial) = self.core.dialing.remove(&conn) else {
                    return;
                };
                // A link the server asked for counts against no client's caps.
                self.open(now, conn, dial.protocol, Peer::Net(dial.addr), None, true);
            }
            Input::ConnectFailed { conn, error } => {
                if let Some(dial) = self.core.dialing.remove(&conn) {
                    let mut px = lend_px(now, &mut self.core);
                    (self.shared).on_connect_failed(dial.protocol, conn, &error, &mut px);
                }
            }
            Input::Received { conn, bytes } => {
                if self.is_open(conn) {
                    self.with_endpoint(now, conn, |ep, cx, shared| ep.on_bytes(cx, shared, &bytes));
                }
            }
            Input::Written { conn, n } => {
                if let Some(record) = self.core.conns.get_mut(conn) {
                    self.core.out.written(&mut record.link, n);
                    // Stored messages now written leave their mailboxes, by a change
                    // committed after this report (the model's mailbox guarantee).
                    let written = record.link.written();
                    for change in self.core.net.conn_written(conn, written) {
                        let seq = self.core.out.next_seq();
                        self.core.net.apply(&change, seq);
                        self.core.out.persist(seq, change);
                    }
                    // A paused mailbox drain goes on once a quarter of the limit is left.
                    let low = self.core.config.outbound_limit_bytes / 4;
                    if let Some(session) = record.drain.filter(|_| record.link.unwritten() <= low) {
                        self.with_endpoint(now, conn, |ep, cx, shared| {
                            ep.on_drain(cx, shared, session)
                        });
                    }
                }
            }
            Input::PeerClosed { conn } => {
                if let Some(record) = self.core.conns.get_mut(conn) {
                    self.core.out.close(record, None);
                }
            }
            Input::EffectDone { id, result } => {
                if let Some(conn) = self.core.out.effect_done(id) {
                    if self.is_open(conn) {
                        self.with_endpoint(now, conn, |ep, cx, shared| {
                            ep.on_effect(cx, shared, id, result)
                        });
                    }
                }
            }
            Input::Committed { through } => {
                self.core.out.committed(through);
                self.core.net.committed(through);
            }
            Input::CommitFailed { error: _ } => self.core.net.commit_failed(),
            Input::Shutdown => {
                let conns: Vec<ConnId> = self.order.keys().copied().collect();
                for conn in conns {
                    if self.is_open(conn) {
                        self.with_endpoint(now, conn, |ep, cx, _| ep.on_shutdown(cx));
                    }
                }
            }
        }
        self.settle(now);
    }

    /// Opens connection `conn` of `protocol`: its record, then its endpoint (which greets
    /// the peer, or starts the protocol's side of a link the server asked for).
    fn open(
        &mut self,
        now: Now,
        conn: ConnId,
        protocol: Protocol,
        peer: Peer,
        ip: Option<core::net::IpAddr>,
        outbound: bool,
    ) {
        let core = &mut self.core;
        let limits = core.limits.admit(&core.config.limits, ip);
        let slot = core.conns.insert(Conn {
            id: conn,
            peer,
            protocol,
            endpoint: None,
            link: Link::default(),
            limits,
            timer: None,
            drain: None,
            requests_handed: 0,
        });
        self.order.insert(conn, slot);
        if crate::protocol::shows_lobby(protocol) {
            self.lobby.insert(conn, slot);
        }
        if let Some(mut cx) = lend(now, slot, core) {
            let endpoint = match outbound {
                false => Endpoint::open(protocol, &mut cx),
                true => Endpoint::connected(protocol, &mut cx, &mut self.shared),
            };
            if let Some(record) = core.conns.at_mut(slot) {
                record.endpoint = Some(endpoint);
            }
        }
    }

    /// Fires every timer that is due at `now`. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Now) {
        self.advance(now);
        while let Some(wake) = self.core.timers.pop_due(now.mono) {
            match wake {
                Wake::Conn(conn, slot) => {
                    let Some(record) = self.core.conns.at_mut(slot) else {
                        continue;
                    };
                    if record.id != conn {
                        continue;
                    }
                    record.timer = None;
                    if record.link.is_open() {
                        with_slot(now, slot, &mut self.core, &mut self.shared, |ep, cx, _| {
                            ep.on_timer(cx)
                        });
                    }
                }
                Wake::Session(protocol, session) => {
                    let mut px = lend_px(now, &mut self.core);
                    self.shared.on_session_timer(protocol, session, &mut px);
                }
                Wake::Protocol(protocol) => {
                    let mut px = lend_px(now, &mut self.core);
                    self.shared.on_protocol_timer(protocol, &mut px);
                }
            }
            self.settle(now);
        }
    }

    /// When the server next wants [`handle_timeout`](Self::handle_timeout), if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.timers.next()
    }

    /// The next output, in the order the server produced them.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.core.out.pop()
    }

    /// Keeps a copy of every output as produced from now on, before any small transmit
    /// joined an earlier one to its connection, for [`poll_logged_output`](Self::poll_logged_output).
    pub(crate) fn keep_output_log(&mut self) {
        self.core.out.keep_log();
    }

    /// With [`keep_output_log`](Self::keep_output_log): the next output as produced (each
    /// transmit as its session sent it); [`poll_event_before_output`](Self::poll_event_before_output)
    /// then places events among these.
    pub(crate) fn poll_logged_output(&mut self) -> Option<Output> {
        self.core.out.pop_logged()
    }

    /// The next output if it is a transmit that waits for no commit later than
    /// `committed` (for the pump's hot path; [`poll_output`](Self::poll_output) otherwise).
    pub(crate) fn poll_ready_transmit(&mut self, committed: Seq) -> Option<(ConnId, bytes::Bytes)> {
        self.core.out.pop_ready_transmit(committed)
    }

    /// Requests refused by a rate limit (any cost, per connection or per address) since
    /// start. Cheap, unlike [`Server::stats`]: the runtime reads it after each batch of
    /// inputs to log refusals, since the core itself logs nothing.
    pub fn rate_refusals(&self) -> u64 {
        self.core.limits.refused()
    }

    /// Replaces the limits and the mailbox share while the server runs (a reload of the
    /// config): connection caps and rates apply to the next connection and request
    /// (buckets keep their levels, capped at the new bursts), the outbound budget to the
    /// next transmit. Nothing already admitted is closed.
    pub fn reconfigure(&mut self, limits: crate::Limits, offline_share_percent: u8) {
        self.core.out.set_budget(limits.outbound_budget_bytes);
        self.core.config.limits = limits;
        self.core.config.offline_share_percent = offline_share_percent.clamp(1, 100);
    }

    /// Logins, open sessions and direct messages by protocol since start: cheap (a
    /// reference), for a runtime's metrics.
    pub fn counters(&self) -> &crate::Counters {
        self.core.net.counters()
    }

    /// A runtime that handles several inputs before it writes is about to write what was
    /// sent so far: [`batch_full`](Self::batch_full) counts from here.
    pub fn begin_batch(&mut self) {
        self.core.out.begin_batch();
    }

    /// Whether it is time to write before handling more input: since
    /// [`begin_batch`](Self::begin_batch) some connection was sent a quarter of its
    /// outbound limit (so that a peer that reads is never closed as a slow reader only
    /// because its bytes waited for the rest of a batch), or all of them together
    /// [`BATCH_BYTES`](crate::BATCH_BYTES) (so a burst of broadcasts is not held in
    /// memory at once).
    pub fn batch_full(&self) -> bool {
        self.core.out.batch_full()
    }

    /// The sizes of the server's collections.
    pub fn stats(&self) -> Stats {
        Stats {
            connections: self.core.conns.len(),
            online_users: self.core.net.online_count(),
            queued_outputs: self.core.out.queued(),
            timers: self.core.timers.len(),
            max_inbound_bytes: (self.core.conns.iter())
                .filter_map(|c| c.endpoint.as_ref().map(Endpoint::buffered))
                .max()
                .unwrap_or(0),
            max_unwritten_bytes: (self.core.conns.iter())
                .map(|c| c.link.unwritten())
                .max()
                .unwrap_or(0),
            unwritten_bytes: self.core.out.total_unwritten(&self.core.conns),
            ip_buckets: self.core.limits.ip_buckets(),
            rate_refusals: self.core.limits.refused(),
            running_effects: self.core.out.running_effects(),
            accounts: self.core.net.state().accounts.len(),
            relayed_messages: self.core.net.relayed(),
            offline_messages: self
                .core
                .net
                .state()
                .offline
                .values()
                .map(|q| q.len())
                .sum(),
            max_offline_queue: (self.core.net.state().offline.values().map(|q| q.len()))
                .max()
                .unwrap_or(0),
        }
    }

    fn advance(&mut self, now: Now) {
        if let Some(last) = self.last_now {
            assert!(
                now.mono >= last.mono,
                "time went backwards: {} after {}",
                now.mono,
                last.mono
            );
        }
        self.last_now = Some(now);
    }

    /// Whether `conn` is open and not closing.
    fn is_open(&self, conn: ConnId) -> bool {
        (self.core.conns.get(conn)).is_some_and(|c| c.link.is_open())
    }

    fn with_endpoint(
        &mut self,
        now: Now,
        conn: ConnId,
        f: impl FnOnce(&mut Endpoint, &mut Cx<'_>, &mut Shared),
    ) {
        let Some(slot) = self.core.conns.slot(conn) else {
            return;
        };
        with_slot(now, slot, &mut self.core, &mut self.shared, f);
    }

    /// Tears down closing connections and hands out network events until neither is left.
    fn settle(&mut self, now: Now) {
        let mut same_event: Option<(crate::model::Event, Encoded)> = None;
        loop {
            if let Some((conn, reason)) = self.core.out.next_closing() {
                if let Some(slot) = self.core.conns.slot(conn) {
                    if let Some(record) = self.core.conns.at_mut(slot) {
                        self.core.timers.cancel(record, slot);
                    }
                    with_slot(
                        now,
                        slot,
                        &mut self.core,
                        &mut self.shared,
                        |ep, cx, shared| ep.on_close(cx, shared),
                    );
                    self.order.remove(&conn);
                    self.lobby.remove(&conn);
                    if let Some(record) = self.core.conns.remove(conn) {
                        self.core.limits.disconnected(&record.limits);
                    }
                }
                self.core.net.conn_closed(conn);
                self.core.out.finish_close(conn, reason);
                continue;
            }
            let Some(delivery) = self.core.net.poll_delivery() else {
                break;
            };
            match delivery.to {
                Audience::Conn(conn) => {
                    if self.is_open(conn) {
                        let mut encoded = Encoded::default();
                        self.with_endpoint(now, conn, |ep, cx, shared| {
                            ep.on_event(cx, shared, &delivery.event, &mut encoded)
                        });
                    }
                }
                // A session goes where its protocol placed it: to its connection's
                // endpoint, or to its protocol while it has none.
                Audience::Session(session) => match self.core.homes.get(&session).copied() {
                    Some(Home {
                        conn: Some(conn), ..
                    }) if self.is_open(conn) => {
                        // Consecutive deliveries of one event (a room's post to each of
                        // its members) share their encodings, as a broadcast does.
                        let encoded = match &mut same_event {
                            Some((event, encoded)) if *event == delivery.event => encoded,
                            slot => {
                                let fresh = (delivery.event.clone(), Encoded::default());
                                &mut slot.insert(fresh).1
                            }
                        };
                        self.with_endpoint(now, conn, |ep, cx, shared| {
                            ep.on_event(cx, shared, &delivery.event, encoded)
                        });
                    }
                    // Its connection is closing: the event goes with it.
                    Some(Home { conn: Some(_), .. }) => {}
                    Some(Home {
                        protocol,
                        conn: None,
                    }) => {
                        let mut px = lend_px(now, &mut self.core);
                        (self.shared).on_session_event(protocol, session, &delivery.event, &mut px);
                    }
                    None => {}
                },
                // The hot path of a busy server: every join, leave and rename reaches
                // every connection that shows them, so the event is encoded once per
                // protocol, and a connection whose protocol shows it the same to all
                // (`lobby_news`) costs its line appended to its queue, no visit to its
                // session (a login storm of 1000: 395 -> 215 instructions a line).
                Audience::AllBut(except) => {
                    let mut encoded = Encoded::default();
                    #[cfg(feature = "planted-bugs")]
                    if let Some(order) = planted_order(&self.core.config, &self.lobby) {
                        for conn in order {
                            let Some(&slot) = self.lobby.get(&conn) else {
                                continue;
                            };
                            if conn == except {
                                continue;
                            }
                            with_slot(now, slot, &mut self.core, &mut self.shared, |ep, cx, sh| {
                                ep.on_event(cx, sh, &delivery.event, &mut encoded)
                            });
                        }
                        continue;
                    }
                    for (&conn, &slot) in &self.lobby {
                        if conn == except {
                            continue;
                        }
                        let Some(protocol) = self.core.conns.at(slot).map(|c| c.protocol) else {
                            continue;
                        };
                        let news = lobby_news(protocol, &delivery.event, &mut encoded);
                        match news {
                            Some(bytes) => {
                                let out = &mut self.core.out;
                                out.transmit_shared(&mut self.core.conns, slot, bytes, None);
                            }
                            None => {
                                with_slot(
                                    now,
                                    slot,
                                    &mut self.core,
                                    &mut self.shared,
                                    |ep, cx, sh| ep.on_event(cx, sh, &delivery.event, &mut encoded),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// With [`PlantedBug::ProcessRandomBroadcastOrder`](crate::config::PlantedBug): the
/// connections in an order drawn once per process (std's `RandomState`, seeded from the
/// OS at its first use), the bug the cross-process determinism test exists for.
#[cfg(feature = "planted-bugs")]
fn planted_order(config: &Config, endpoints: &BTreeMap<ConnId, Slot>) -> Option<Vec<ConnId>> {
    use std::hash::BuildHasher;
    static ORDER: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    if config.planted_bug != Some(crate::config::PlantedBug::ProcessRandomBroadcastOrder) {
        return None;
    }
    let order = ORDER.get_or_init(Default::default);
    let mut conns: Vec<ConnId> = endpoints.keys().copied().collect();
    conns.sort_by_key(|conn| order.hash_one(conn.0));
    Some(conns)
}

/// Lends the endpoint of the connection in `slot` to `f`, with a context bound to it;
/// nothing if the slot is empty or its endpoint already lent.
fn with_slot(
    now: Now,
    slot: Slot,
    core: &mut Core,
    shared: &mut Shared,
    f: impl FnOnce(&mut Endpoint, &mut Cx<'_>, &mut Shared),
) {
    let Some(record) = core.conns.at_mut(slot) else {
        return;
    };
    let Some(mut endpoint) = record.endpoint.take() else {
        return;
    };
    if let Some(mut cx) = lend(now, slot, core) {
        f(&mut endpoint, &mut cx, shared);
    }
    if let Some(record) = core.conns.at_mut(slot) {
        record.endpoint = Some(endpoint);
    }
}

/// Lends a session the parts of the server it may touch, bound to the connection in
/// `slot`, if there is one.
fn lend(now: Now, slot: Slot, core: &mut Core) -> Option<Cx<'_>> {
    let record = core.conns.at(slot)?;
    let (conn, peer, protocol) = (record.id, record.peer, record.protocol);
    Some(Cx {
        now,
        conn,
        peer,
        slot,
        protocol,
        config: &core.config,
        net: &mut core.net,
        conns: &mut core.conns,
        homes: &mut core.homes,
        dialing: &mut core.dialing,
        timers: &mut core.timers,
        out: &mut core.out,
        limits: &mut core.limits,
        rng: &mut core.rng,
    })
}

/// Lends a protocol the parts of the server it may touch beyond one connection.
fn lend_px(now: Now, core: &mut Core) -> Px<'_> {
    Px {
        now,
        config: &core.config,
        net: &mut core.net,
        conns: &mut core.conns,
        homes: &mut core.homes,
        dialing: &mut core.dialing,
        timers: &mut core.timers,
        out: &mut core.out,
    }
}

/// The parts of the server tests look into.
#[cfg(test)]
impl Server {
    /// Each protocol's shared state.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The memory `conn`'s session holds for input not yet framed (see
    /// [`Endpoint::input_capacity`]).
    pub(crate) fn input_capacity(&self, conn: ConnId) -> Option<usize> {
        let endpoint = self.core.conns.get(conn)?.endpoint.as_ref()?;
        endpoint.input_capacity()
    }

    /// The connections a broadcast walks, in its order.
    pub(crate) fn lobby(&self) -> Vec<ConnId> {
        self.lobby.keys().copied().collect()
    }
}
