//! The loop: one `mio::Poll`, the pump, and the connections.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, ErrorKind};
use std::net::{Shutdown as Both, SocketAddr};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Events, Interest, Poll, Token};
use switchboard_proto::{Action, ConnId, Peer, Protocol, Pump, Server};
use switchboard_store::clock::Clock;
use switchboard_store::commit_log::CommitLog;
use switchboard_store::effects::EffectPool;
use switchboard_store::fds::Capacity;
use switchboard_store::media_reader::MediaReader;
use switchboard_store::memory::AfterBurst;
use switchboard_store::refusals::{CapacityRefusals, RefusalLog};
use tracing::{debug, info, warn};

use switchboard_store::observe::Observer;

use crate::conn::{Conn, Got, Phase, Sock};
use crate::workers::{Back, Committer, Done};
use crate::{signals, Error, Listener, Runtime, Shutdown};

const WAKER: Token = Token(usize::MAX);
const SHUTDOWN: Token = Token(usize::MAX - 1);
const ADMIN: Token = Token(usize::MAX - 2);
/// Listener `i` has token `LISTENERS - i`; connections have their id as token, far below.
const LISTENERS: usize = usize::MAX - 3;

/// Bytes asked of the socket per read, into the loop's one buffer.
const READ_CHUNK: usize = 64 * 1024;

/// Bytes read from one connection per turn before the others get theirs; the rest waits
/// for the next turn, which then does not block.
const READ_PER_TURN: usize = 256 * 1024;

/// Readiness events taken per turn. What the inputs of a turn ask for is carried out at
/// its end, so the core joins each connection's transmits of the whole turn into one
/// write; it says when to write sooner ([`Pump::batch_full`]). (Before turns were joined,
/// 64 answered sooner than 1024: 2000 idle logins took 10 s against 19.6 s.)
const EVENTS: usize = 1024;

/// Connections taken from one listener per turn: a crowd connecting at once is let in a
/// share at a time, between the reads of those already in, as their own inputs (smol's
/// listener tasks hand theirs over a channel of 256 the same way). The rest waits in the
/// backlog for the next turn, which then does not block.
const ACCEPTS_PER_TURN: usize = 128;

/// How long accepting rests after a failed accept (out of descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a dial may take before it is reported failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn token(conn: ConnId) -> Token {
    // 64-bit only (see lib.rs): ids are below the listeners' tokens.
    Token(conn.0 as usize)
}

/// Runs the loop until `shutdown` fires, then shuts down within the grace.
pub(crate) fn run(runtime: Runtime, mut shutdown: Shutdown) -> Result<(), Error> {
    let Runtime {
        start,
        options,
        mut listeners,
    } = runtime;
    #[cfg(unix)]
    let mut admin = start.admin;
    let poll = Poll::new().map_err(Error::Poll)?;
    let registry = poll.registry();
    for (i, l) in listeners.iter_mut().enumerate() {
        registry
            .register(&mut l.socket, Token(LISTENERS - i), Interest::READABLE)
            .map_err(Error::Poll)?;
    }
    #[cfg(unix)]
    registry
        .register(&mut admin.socket, ADMIN, Interest::READABLE)
        .map_err(Error::Poll)?;
    registry
        .register(&mut shutdown.pipe, SHUTDOWN, Interest::READABLE)
        .map_err(Error::Poll)?;
    let waker = Arc::new(mio::Waker::new(registry, WAKER).map_err(Error::Poll)?);
    let (sender, done) = mpsc::channel();
    let back = Back { sender, waker };
    let mut pump = Pump::new(Server::new(start.config, start.state));
    // Logins and kicks are logged, and counted, from the network's events.
    pump.record_session_events();
    let effects = EffectPool::start(
        options.hash_cost.clone(),
        MediaReader::new(start.data_dir.path().to_owned()),
        Arc::new({
            let back = back.clone();
            move |id, result| back.send(Done::Effect(id, result))
        }),
    )
    .map_err(Error::Effects)?;
    let mut driver = Driver {
        observer: Observer::new(start.metrics),
        next_refresh: Instant::now(),
        committer: Committer::start(start.store, back),
        effects,
        poll,
        pump,
        clock: Clock::start(),
        conns: HashMap::new(),
        dirty: Vec::new(),
        queued: 0,
        burst: AfterBurst::default(),
        more_to_read: Vec::new(),
        more_to_accept: Vec::new(),
        timers: BTreeSet::new(),
        scratch: vec![0; READ_CHUNK],
        done,
        committing: false,
        commits: CommitLog::default(),
        listeners,
        #[cfg(unix)]
        admin: Some(admin.socket),
        capacity: start.capacity,
        next_id: 1,
        accept_retry: None,
        refused: CapacityRefusals::default(),
        rate_refusals: RefusalLog::default(),
        linger: options.linger,
        stopping: false,
    };
    let mut events = Events::with_capacity(EVENTS);
    loop {
        if driver
            .turn(&mut events, None)
            .map_err(Error::Poll)?
            .is_none()
        {
            continue;
        }
        let signals = shutdown.take();
        if signals.iter().any(|&s| signals::is_hangup(s)) {
            options.apply_reload(&mut driver.pump);
        }
        if let Some(&signal) = signals.iter().find(|&&s| !signals::is_hangup(s)) {
            info!(signal = signals::name(signal), "shutting down on signal");
            break;
        }
    }
    // Stop accepting, remove the admin socket.
    driver.listeners.clear();
    #[cfg(unix)]
    {
        driver.admin = None;
        switchboard_store::admin_socket::remove(&admin.path);
    }
    driver.stopping = true;
    let result = driver.shut_down(&mut events, options.shutdown_grace);
    driver.committer.stop(driver.committing);
    // Held until here: nobody else may open the store before the last commit is done.
    drop(start.data_dir);
    result
}

struct Driver {
    /// Logs and counts connections, logins, kicks and commits.
    observer: Observer,
    /// When the observer's gauges are next read again.
    next_refresh: Instant,
    poll: Poll,
    /// The core with its commit gate and group commit.
    pump: Pump,
    clock: Clock,
    conns: HashMap<ConnId, Conn>,
    /// Connections with transmits queued this turn.
    dirty: Vec<ConnId>,
    /// Bytes queued since the last [`flush`](Driver::flush), to know a burst
    /// ([`AfterBurst`]).
    queued: usize,
    /// Whether a burst's queues were freed since the allocator was last trimmed.
    burst: AfterBurst,
    /// Connections whose reads stopped at [`READ_PER_TURN`] with more ready.
    more_to_read: Vec<ConnId>,
    /// Listeners (by index) whose accepting stopped at [`ACCEPTS_PER_TURN`] with more
    /// waiting.
    more_to_accept: Vec<usize>,
    /// Linger and dial deadlines.
    timers: BTreeSet<(Instant, ConnId)>,
    /// The one read buffer.
    scratch: Vec<u8>,
    /// Results of the committer and the effect pool.
    done: Receiver<Done>,
    committer: Committer,
    /// Whether a batch is at the committer.
    committing: bool,
    /// Logs and reports each commit attempt.
    commits: CommitLog,
    effects: EffectPool,
    listeners: Vec<Listener>,
    #[cfg(unix)]
    admin: Option<mio::net::UnixListener>,
    capacity: Capacity,
    next_id: u64,
    accept_retry: Option<Instant>,
    /// Connections refused past the capacity, logged now and then.
    refused: CapacityRefusals,
    /// Requests the core refused by a rate limit, logged at most every
    /// [`switchboard_store::refusals::WARNING_EVERY`].
    rate_refusals: RefusalLog,
    linger: Duration,
    /// Shutting down: nothing new is read or handed to the core but commits.
    stopping: bool,
}

impl Driver {
    /// One turn: run what is due, write what is queued, wait (at most until `cap`), handle
    /// what happened. Returns `Some(())` when the shutdown source fired.
    fn turn(&mut self, events: &mut Events, cap: Option<Instant>) -> io::Result<Option<()>> {
        let now = self.clock.now();
        let pump_at = match self.stopping && self.committing {
            true => None,
            false => self.pump.poll_timeout(),
        };
        if pump_at.is_some_and(|at| at <= now.mono) {
            self.pump.handle_timeout(now);
            self.drain();
        }
        self.expire_timers();
        self.flush();
        if self.stopping && self.conns.is_empty() && !self.pump.committing() {
            // Shutdown is done: the last connection closed as it was written.
            return Ok(None);
        }
        let mut wake_at = pump_at.and_then(|at| self.clock.deadline(at));
        if self.next_refresh <= Instant::now() {
            self.observer.refresh(self.pump.server());
            self.next_refresh = Instant::now() + switchboard_store::observe::REFRESH_EVERY;
        }
        for at in [
            self.timers.first().map(|&(at, _)| at),
            self.accept_retry,
            cap,
            Some(self.next_refresh),
            // The memory of the last burst goes back once it is QUIET ago.
            self.burst.ready_at(),
        ]
        .into_iter()
        .flatten()
        {
            wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
        }
        // After a burst, look without waiting first: if nothing is there, the burst is over
        // and its memory goes back before the wait.
        let trim = self.burst.ready(Instant::now());
        let more = !self.more_to_read.is_empty() || !self.more_to_accept.is_empty();
        let timeout = match !more && !trim {
            true => wake_at.map(|at| at.saturating_duration_since(Instant::now())),
            false => Some(Duration::ZERO),
        };
        // mio rounds the timeout up to its clock's unit, so a wake-up is never early.
        match self.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(e),
        }
        if trim && events.is_empty() && !more {
            self.burst.idle(Instant::now());
        }
        let mut shutdown = None;
        for event in events.iter() {
            match event.token() {
                WAKER => self.take_done(),
                SHUTDOWN => shutdown = Some(()),
                ADMIN => self.accept_admin(),
                Token(t) if t > LISTENERS - self.listeners.len() && t <= LISTENERS => {
                    self.accept(LISTENERS - t);
                }
                Token(t) => {
                    let conn = ConnId(t as u64);
                    if event.is_writable() || event.is_error() {
                        self.on_writable(conn);
                    }
                    if event.is_read_closed() || event.is_error() {
                        if let Some(c) = self.conns.get_mut(&conn) {
                            c.hung_up = true;
                        }
                    }
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        self.on_readable(conn);
                    }
                }
            }
            self.write_if_full();
        }
        for conn in std::mem::take(&mut self.more_to_read) {
            self.on_readable(conn);
        }
        for i in std::mem::take(&mut self.more_to_accept) {
            self.accept(i);
        }
        // What the turn's inputs asked for is carried out and written at the start of the
        // next turn (`flush`).
        if self.accept_retry.is_some_and(|at| at <= Instant::now()) {
            self.accept_retry = None;
            for i in 0..self.listeners.len() {
                self.accept(i);
            }
        }
        Ok(shutdown)
    }

    /// Carries out every action the pump has queued.
    fn drain(&mut self) {
        // Events first: a kick's line names the connections its closes remove.
        let mut news = false;
        while let Some(event) = self.pump.poll_event() {
            self.observer.event(event);
            news = true;
        }
        while let Some(action) = self.pump.poll_action() {
            news |= !matches!(action, Action::Transmit { .. });
            match action {
                Action::Transmit { conn, bytes } => self.transmit(conn, bytes),
                Action::Close { conn, reason } => {
                    let open = self.conns.get(&conn).filter(|c| c.known()).map(|c| c.phase);
                    if let Some(phase) = open {
                        // The counters the close changed (sessions) show no later than
                        // the close itself, so no scrape sees the disconnect with the session.
                        self.export();
                        self.observer.closed(conn, Some(reason));
                        match reason.flush() && phase == Phase::Open {
                            true => self.start_flushing(conn, Instant::now() + self.linger),
                            false => self.drop_conn(conn, true),
                        }
                    }
                }
                Action::Commit(batch) => {
                    self.commits.started(&batch);
                    self.committing = true;
                    self.committer.commit(batch);
                }
                Action::Effect { id, effect } => self.effects.run(id, effect),
                Action::Connect { conn, addr } => self.dial(conn, addr),
            }
        }
        // Logins, closes and commits show in the metrics with the counters they change;
        // plain transmits wait for the end of the turn (see `flush`).
        if news {
            self.export();
        }
    }

    /// Exports the core's counters and logs its rate refusals.
    fn export(&mut self) {
        self.observer.refresh(self.pump.server());
        self.rate_refusals.check(self.pump.server().rate_refusals());
    }

    fn transmit(&mut self, conn: ConnId, bytes: Bytes) {
        if let Some(c) = self.conns.get_mut(&conn) {
            self.queued += bytes.len();
            c.queue(bytes);
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(conn);
            }
        }
    }

    /// Carries out and writes what the turn's inputs so far asked for, if the core says a
    /// connection or all of them were sent enough to write before more input.
    fn write_if_full(&mut self) {
        if self.pump.batch_full() {
            self.flush();
        }
    }

    /// Writes what this turn queued, reporting what the sockets took; reports may queue
    /// more, which is written too. Then exports the core's counters (once per turn, not
    /// per write: a fan-out to 1000 connections is 1000 writes).
    fn flush(&mut self) {
        // Whatever the pump still holds goes out with the rest.
        self.drain();
        self.pump.begin_batch();
        self.burst.queued(std::mem::take(&mut self.queued));
        while !self.dirty.is_empty() {
            for conn in std::mem::take(&mut self.dirty) {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.dirty = false;
                }
                self.write(conn);
            }
            // What the writes released (a close past the outbound limit, say), in order.
            self.drain();
        }
        self.export();
    }

    fn write(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Phase::Connecting(_) = c.phase {
            return;
        }
        match c.write() {
            Ok(n) => {
                let (known, done) = (c.known(), !c.has_output());
                if let Phase::Flushing(by) = c.phase {
                    if done {
                        // Everything is written: say goodbye, then wait for the peer's
                        // close, so unread input does not turn our close into a reset.
                        if c.sock.shutdown(Both::Write).is_err() {
                            self.drop_conn(conn, false);
                            return;
                        }
                        c.phase = Phase::Draining(by);
                        self.on_readable(conn);
                        return;
                    }
                }
                // What this releases is carried out once the pass over the queued
                // connections is done (see `flush`).
                if known && n > 0 && !self.stopping {
                    self.observer.written(conn, n);
                    self.pump.written(self.clock.now(), conn, n);
                }
            }
            Err(e) => {
                debug!(%conn, error = %e, "write failed");
                self.peer_closed(conn, false);
            }
        }
    }

    fn on_writable(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Phase::Connecting(_) = c.phase {
            self.finish_dial(conn);
            return;
        }
        c.writable = true;
        if c.has_output() && !c.dirty {
            c.dirty = true;
            self.dirty.push(conn);
        }
    }

    fn on_readable(&mut self, conn: ConnId) {
        let mut taken = 0;
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            match c.phase {
                Phase::Connecting(_) => return,
                // Shutting down: nothing new reaches the core.
                Phase::Open if self.stopping => return,
                Phase::Open | Phase::Draining(_) => {}
                // Input after the core closed it is dropped unread until goodbye is said.
                Phase::Flushing(_) => return,
            }
            if taken >= READ_PER_TURN {
                self.more_to_read.push(conn);
                return;
            }
            let hung_up = c.hung_up;
            match c.read(&mut self.scratch) {
                Got::Data(n) => {
                    taken += n;
                    if c.phase == Phase::Open {
                        let bytes = Bytes::copy_from_slice(&self.scratch[..n]);
                        self.observer.received(conn, n);
                        self.pump.received(self.clock.now(), conn, bytes);
                        self.write_if_full();
                    }
                    if n < self.scratch.len() && !hung_up {
                        // A short read took all the socket held: what arrives later raises
                        // a new edge (edge-triggered readiness fires on every arrival, and
                        // on the peer's close), so the read that would only say
                        // `WouldBlock` is skipped: one system call less per message when
                        // each read brings one line. A close that came with the last bytes
                        // raised its edge already: then reading goes on to the end.
                        return;
                    }
                }
                Got::WouldBlock => return,
                Got::Closed => {
                    match c.phase {
                        // After a half-close the peer may still read what was queued.
                        Phase::Open => self.peer_closed(conn, true),
                        _ => self.drop_conn(conn, false),
                    }
                    return;
                }
            }
        }
    }

    /// The peer closed (or failed): the core forgets the connection; what is queued is
    /// flushed when `flush`, else the socket is dropped.
    fn peer_closed(&mut self, conn: ConnId, flush: bool) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if !c.known() {
            self.drop_conn(conn, false);
            return;
        }
        self.observer.closed(conn, None);
        self.pump.peer_closed(self.clock.now(), conn);
        match flush {
            true => self.start_flushing(conn, Instant::now() + self.linger),
            false => self.drop_conn(conn, false),
        }
        self.drain();
    }

    /// Closed for the core: write what is queued, then say goodbye, by `by`.
    fn start_flushing(&mut self, conn: ConnId, by: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Flushing(by);
            self.timers.insert((by, conn));
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(conn);
            }
        }
    }

    /// Closes the socket (deregistered, its descriptor slot given back); `abort` shuts it
    /// down first so the peer hears of it at once.
    fn drop_conn(&mut self, conn: ConnId, abort: bool) {
        if let Some(mut c) = self.conns.remove(&conn) {
            if abort {
                let _ = c.sock.shutdown(Both::Both);
            }
            let _ = self.poll.registry().deregister(c.sock.source());
        }
    }

    /// Drops lingering connections and fails dials whose time is up.
    fn expire_timers(&mut self) {
        let now = Instant::now();
        while let Some(&(at, conn)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(c) = self.conns.get(&conn) else {
                continue;
            };
            match c.phase {
                Phase::Flushing(by) | Phase::Draining(by) if by == at => {
                    self.drop_conn(conn, false);
                }
                Phase::Connecting(by) if by == at => {
                    self.drop_conn(conn, false);
                    let error = format!("timed out after {} s", CONNECT_TIMEOUT.as_secs());
                    self.dial_failed(conn, error);
                }
                _ => {}
            }
        }
    }

    fn take_done(&mut self) {
        while let Ok(done) = self.done.try_recv() {
            let now = self.clock.now();
            match done {
                Done::Commit(batch, result) => {
                    self.committing = false;
                    self.commits.finished(
                        batch,
                        result,
                        &mut self.pump,
                        &self.clock,
                        &mut self.observer,
                    );
                    self.drain();
                }
                // Shutting down: the core takes nothing new but commits.
                Done::Effect(..) if self.stopping => {}
                Done::Effect(id, result) => {
                    self.pump.effect_done(now, id, result);
                    self.drain();
                }
            }
        }
    }

    fn fresh_id(&mut self) -> ConnId {
        let conn = ConnId(self.next_id);
        self.next_id += 1;
        conn
    }

    /// Accepts what listener `i` has, up to [`ACCEPTS_PER_TURN`]: past the capacity each
    /// connection is closed at once, so the backlog drains and the reserve stays free.
    fn accept(&mut self, i: usize) {
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(listener) = self.listeners.get(i) else {
                return;
            };
            let protocol = listener.protocol;
            match listener.socket.accept() {
                Ok((stream, peer)) => {
                    let Some(slot) = self.capacity.try_take() else {
                        drop(stream);
                        self.refused.refused(protocol, &self.capacity);
                        continue;
                    };
                    if let Err(e) = stream.set_nodelay(true) {
                        debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    self.open(Sock::Tcp(stream, slot), protocol, Peer::Net(peer));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!(%protocol, error = %e, "accept failed");
                    self.accept_retry = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
        // More may wait, and no new edge will say so.
        if !self.more_to_accept.contains(&i) {
            self.more_to_accept.push(i);
        }
    }

    #[cfg(unix)]
    fn accept_admin(&mut self) {
        loop {
            let Some(admin) = &self.admin else { return };
            match admin.accept() {
                Ok((stream, _)) => self.open(Sock::Unix(stream), Protocol::Admin, Peer::Local),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!(error = %e, "accept on the admin socket failed");
                    return;
                }
            }
        }
    }

    #[cfg(not(unix))]
    fn accept_admin(&mut self) {}

    /// Registers an accepted connection and tells the core.
    fn open(&mut self, mut sock: Sock, protocol: Protocol, peer: Peer) {
        let conn = self.fresh_id();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(sock.source(), token(conn), interest)
        {
            warn!(error = %e, "cannot register a connection");
            return;
        }
        self.observer.opened(conn, protocol, peer);
        self.conns.insert(conn, Conn::new(sock, Phase::Open));
        self.pump.accepted(self.clock.now(), conn, protocol, peer);
        // Input may be there already; edge-triggered readiness reports it anyway.
    }

    /// Starts a non-blocking connect for the core; it finishes on its writable event.
    fn dial(&mut self, conn: ConnId, addr: SocketAddr) {
        self.observer.dialing(conn, addr);
        let Some(slot) = self.capacity.try_take() else {
            self.dial_failed(conn, "no descriptor to spare".to_owned());
            return;
        };
        let mut stream = match mio::net::TcpStream::connect(addr) {
            Ok(stream) => stream,
            Err(e) => return self.dial_failed(conn, e.to_string()),
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, token(conn), interest)
        {
            return self.dial_failed(conn, e.to_string());
        }
        let by = Instant::now() + CONNECT_TIMEOUT;
        self.timers.insert((by, conn));
        let c = Conn::new(Sock::Tcp(stream, slot), Phase::Connecting(by));
        self.conns.insert(conn, c);
    }

    fn finish_dial(&mut self, conn: ConnId) {
        let Some(Conn {
            sock: Sock::Tcp(stream, _),
            ..
        }) = self.conns.get(&conn)
        else {
            return;
        };
        let outcome = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e.to_string()),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(e) => Err(e.to_string()),
            },
        };
        match outcome {
            Ok(()) => {
                if let Err(e) = stream.set_nodelay(true) {
                    debug!(%conn, error = %e, "cannot set TCP_NODELAY");
                }
                self.observer.dialed(conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.phase = Phase::Open;
                }
                self.pump.connected(self.clock.now(), conn);
                self.drain();
            }
            Err(error) => {
                self.drop_conn(conn, false);
                self.dial_failed(conn, error);
            }
        }
    }

    fn dial_failed(&mut self, conn: ConnId, error: String) {
        self.observer.dial_failed(conn, &error);
        self.pump.connect_failed(self.clock.now(), conn, error);
        self.drain();
    }

    /// Commits what the core asked to persist (releasing what waited on it), then closes
    /// every connection, flushing what is queued, all within `grace`.
    fn shut_down(&mut self, events: &mut Events, grace: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + grace;
        // Each client is told in its protocol's way (after what waits on a commit); the
        // closes flush within the grace.
        self.linger = self.linger.min(grace);
        self.pump.shutdown(self.clock.now());
        self.drain();
        // The pump asks for each batch in turn, a failed one again after its backoff.
        while self.pump.committing() && Instant::now() < deadline {
            self.turn(events, Some(deadline)).map_err(Error::Poll)?;
        }
        let uncommitted = self.pump.uncommitted();
        self.observer.shutdown();
        let open: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in open {
            let Some(c) = self.conns.get(&conn) else {
                continue;
            };
            match c.phase {
                Phase::Open => self.start_flushing(conn, deadline),
                Phase::Connecting(_) => self.drop_conn(conn, false),
                Phase::Flushing(_) | Phase::Draining(_) => {}
            }
        }
        while !self.conns.is_empty() && Instant::now() < deadline {
            self.turn(events, Some(deadline)).map_err(Error::Poll)?;
        }
        switchboard_store::start::stopped(uncommitted)
    }
}
