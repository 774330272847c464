//! The driver task: owns the core and runs its drive loop.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixListener;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use smol::channel::{self, Receiver, Sender};
use smol::future::{self, FutureExt};
use smol::{Async, LocalExecutor, Task, Timer};
use switchboard_proto::{
    Action, ConnId, Effect, EffectId, EffectResult, Peer, Protocol, Pump, Server,
};
use switchboard_store::clock::Clock;
use switchboard_store::commit_log::CommitLog;
use switchboard_store::effects::EffectPool;
use switchboard_store::media_reader::MediaReader;
use switchboard_store::memory::AfterBurst;
use tracing::{debug, warn};

use switchboard_store::observe::Observer;

use crate::commit::{Attempt, Committer};
use crate::conn::{Conn, Got, Ready, Sockets, Stream};
use crate::fds::{Capacity, Slot};
use crate::woken::Woken;
use crate::{Error, Runtime};

/// Events the driver can buffer before listeners and dials wait.
const EVENT_CAPACITY: usize = 256;

/// Inputs handled in one go when several are ready, before what they asked for is carried
/// out and written: a bound, so the writes (which the core counts against each
/// connection's limit) wait at most this many inputs. The core joins each connection's
/// small transmits of the whole batch into one buffer, so a batch costs a write per
/// connection however many broadcasts it made. The null relay takes up to 4096 readiness
/// events a turn; 1000 logins at once took 0.35 s here with 64 inputs, 0.22 s with 256,
/// 0.16 s with 1024 (one run; full-speed direct msgs/s the same). The core says when to
/// write sooner ([`Pump::batch_full`]).
const EVENT_BATCH: usize = 1024;

/// How long a listener rests after a failed accept (out of file descriptors, say), so it
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a dial may take before it is reported failed (the system's own SYN timeout
/// can be minutes); the core then decides when to try again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What listener and dial tasks tell the driver, over a bounded channel: when the driver
/// falls behind, they wait, and the listen backlog pushes back on new peers. (Bytes are
/// read by the driver itself, when its poller says a connection has some, so a driver
/// that falls behind reads nothing and TCP pushes back on the peers.)
pub(crate) enum Event {
    /// A listener accepted a connection and gave it a fresh id.
    Accepted {
        conn: ConnId,
        protocol: Protocol,
        peer: Peer,
        stream: Stream,
    },
    /// A connection the core asked for is established.
    Connected { conn: ConnId, stream: Stream },
    /// A connection the core asked for could not be established.
    ConnectFailed { conn: ConnId, error: String },
}

/// One input the driver handles: an event, or a connection to read.
enum Input {
    Event(Event),
    /// A connection's socket has something to read, or may have (it read bytes last time,
    /// or was just accepted).
    Read(ConnId),
}

/// What effect tasks tell the driver, over an unbounded channel that the driver serves
/// before any new input. There is at most one report per effect, and the core bounds
/// them.
pub(crate) enum Report {
    /// An effect finished on the effect pool.
    EffectDone { id: EffectId, result: EffectResult },
}

/// Why the driver woke up.
enum Wake {
    Report(Report),
    Event(Event),
    /// The poller has news of some connections (to read, or room to write).
    Polled,
    /// Nothing new, and connections that read bytes last time may have more.
    Again,
    Commit(Attempt),
    Deadline,
    /// Time to read the gauges again.
    Refresh,
    /// The last burst was [`switchboard_store::memory::QUIET`] ago: its memory may go back.
    Quiet,
    /// SIGHUP: reload.
    Hangup,
    Shutdown,
}

/// Runs the drive loop until `shutdown` completes, then commits what it can and closes
/// everything.
pub(crate) async fn run(
    ex: &LocalExecutor<'_>,
    runtime: Runtime,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let Runtime {
        start,
        options,
        listeners,
        hangup,
    } = runtime;
    let capacity = start.capacity;
    let (events, inbox) = channel::bounded(EVENT_CAPACITY);
    let (reports, report_box) = channel::unbounded();
    // Every connection's socket is registered here, not with the reactor one by one.
    let sockets = Sockets::new().map_err(Error::Poll)?;
    let next_id = Arc::new(AtomicU64::new(1));
    #[allow(unused_mut)]
    let mut accepting: Vec<Task<()>> = listeners
        .into_iter()
        .map(|l| {
            ex.spawn(accept_loop(
                l.protocol,
                l.socket,
                capacity.clone(),
                next_id.clone(),
                events.clone(),
            ))
        })
        .collect();
    #[cfg(unix)]
    let admin_path = start.admin.path.clone();
    #[cfg(unix)]
    accepting.push(ex.spawn(accept_admin(
        start.admin.socket,
        next_id.clone(),
        events.clone(),
    )));
    let effects = EffectPool::start(
        options.hash_cost.clone(),
        MediaReader::new(start.data_dir.path().to_owned()),
        // Fails only once the driver is gone.
        Arc::new(move |id, result| {
            let _ = reports.try_send(Report::EffectDone { id, result });
        }),
    )
    .map_err(Error::Effects)?;
    let mut pump = Pump::new(Server::new(start.config, start.state));
    // Logins and kicks are logged, and counted, from the network's events.
    pump.record_session_events();
    let mut driver = Driver {
        observer: Observer::new(start.metrics),
        commits: CommitLog::default(),
        stopping: None,
        closing: Vec::new(),
        ex,
        effects,
        capacity,
        pump,
        committer: Committer::new(start.store),
        clock: Clock::start(),
        conns: HashMap::new(),
        dirty: Vec::new(),
        events,
        sockets,
        again: VecDeque::new(),
        linger: options.linger,
        queued: 0,
        burst: AfterBurst::default(),
        rate_refusals: switchboard_store::refusals::RefusalLog::default(),
    };
    // Both reach their signal pipes only once woken: polled, they read them.
    let shutdown = pin!(shutdown);
    let mut shutdown = Woken::new(shutdown);
    let mut hangup = hangup.map(Woken::new);
    let mut timer = Timer::never();
    let mut timer_at = None;
    // Wakes the driver to trim the allocator once the last burst is QUIET ago.
    let mut trim_timer = Timer::never();
    let mut trim_timer_at = None;
    let mut refresh = Timer::interval(switchboard_store::observe::REFRESH_EVERY);
    loop {
        let now = driver.clock.now();
        let deadline = driver.pump.poll_timeout();
        if deadline.is_some_and(|at| at <= now.mono) {
            driver.pump.handle_timeout(now);
            driver.drain();
            driver.flush();
            continue;
        }
        if deadline != timer_at {
            timer_at = deadline;
            timer = match deadline.and_then(|at| driver.clock.deadline(at)) {
                Some(at) => Timer::at(at),
                None => Timer::never(),
            };
        }
        // Polled in this order, so that neither shutdown, a deadline, a write report nor a
        // finished commit starves behind a flood of input.
        let committer = &mut driver.committer;
        let sockets = &driver.sockets;
        let again = !driver.again.is_empty();
        let trim = driver.burst.ready_at().filter(|_| !again);
        if trim != trim_timer_at {
            trim_timer_at = trim;
            trim_timer = trim.map_or_else(Timer::never, Timer::at);
        }
        let wake = async {
            (&mut shutdown).await;
            Wake::Shutdown
        }
        .or(async {
            (&mut timer).await;
            Wake::Deadline
        })
        .or(async {
            smol::stream::StreamExt::next(&mut refresh).await;
            Wake::Refresh
        })
        .or(async {
            match hangup.as_mut() {
                Some(signals) => {
                    smol::stream::StreamExt::next(signals).await;
                    Wake::Hangup
                }
                None => future::pending().await,
            }
        })
        .or(async {
            match report_box.recv().await {
                Ok(report) => Wake::Report(report),
                // The driver holds a sender, so the channel never closes.
                Err(_) => future::pending().await,
            }
        })
        .or(async { Wake::Commit(committer.finished().await) })
        .or(async {
            match inbox.recv().await {
                Ok(event) => Wake::Event(event),
                Err(_) => future::pending().await,
            }
        })
        .or(async {
            match sockets.wait().await {
                Ok(()) => Wake::Polled,
                Err(e) => {
                    warn!(error = %e, "cannot wait for the connections' sockets");
                    future::pending().await
                }
            }
        })
        .or(async {
            match again {
                // Let the executor run the other tasks first (effects, commits, closes,
                // listeners): connections that keep sending keep this list full, and the
                // driver would otherwise never yield.
                true => {
                    future::yield_now().await;
                    Wake::Again
                }
                false => future::pending().await,
            }
        })
        // Last, and not while connections wait to be read: anything else that is ready
        // comes first, so a due trim never keeps input waiting.
        .or(async {
            (&mut trim_timer).await;
            Wake::Quiet
        })
        .await;
        match wake {
            Wake::Report(report) => {
                driver.on_report(report);
                // And every other report already there, before one drain.
                while let Ok(report) = report_box.try_recv() {
                    driver.on_report(report);
                }
                driver.drain();
            }
            Wake::Event(_) | Wake::Polled | Wake::Again => {
                let first = match wake {
                    Wake::Event(event) => {
                        // The poller's news too: while connections keep arriving, the
                        // inbox wins every wake-up before the poller would, and the reads
                        // of those already in waited for the crowd (a 1000-login storm's
                        // chat p99 93 ms against 50 with this).
                        driver.collect();
                        Some(Input::Event(event))
                    }
                    Wake::Polled => {
                        driver.collect();
                        driver.again.pop_front().map(Input::Read)
                    }
                    // Busy: take the poller's news every turn, as a loop of its own
                    // would, rather than wait for the reactor's thread to see it.
                    _ => {
                        driver.collect();
                        driver.again.pop_front().map(Input::Read)
                    }
                };
                // Take what other input is ready already, up to a bound, before carrying
                // out what they asked for: the core joins each connection's small
                // transmits of the whole batch into one buffer, written at once.
                let mut next = first;
                let mut taken = 0;
                while let Some(input) = next {
                    driver.on_input(input);
                    taken += 1;
                    if taken == EVENT_BATCH {
                        break;
                    }
                    // Written now if a connection or all of them were sent enough.
                    if driver.pump.batch_full() {
                        driver.flush();
                    }
                    next = driver.next_input(&inbox);
                }
            }
            Wake::Commit(attempt) => driver.on_commit(attempt),
            Wake::Deadline => timer_at = None,
            Wake::Refresh => driver.observer.refresh(driver.pump.server()),
            // The trim itself is below, once nothing waits.
            Wake::Quiet => {}
            Wake::Hangup => options.apply_reload(&mut driver.pump),
            Wake::Shutdown => break,
        }
        // What this turn's inputs asked for, then one write per connection.
        driver.flush();
        // Once the bursts stopped, their queues' memory goes back (checked again at the
        // next wake-up, the metrics' tick at the latest).
        if driver.burst.due()
            && inbox.is_empty()
            && report_box.is_empty()
            && driver.again.is_empty()
        {
            driver.burst.idle(std::time::Instant::now());
        }
    }
    drop(accepting);
    #[cfg(unix)]
    crate::admin::remove_socket(&admin_path);
    let result = driver
        .shut_down(&inbox, &report_box, options.shutdown_grace)
        .await;
    // Held until here: nobody else may open the store before the last commit is done.
    drop(start.data_dir);
    result
}

struct Driver<'a, 'ex> {
    ex: &'a LocalExecutor<'ex>,
    /// Logs and counts connections, logins, kicks and commits.
    observer: Observer,
    /// Logs and reports each commit attempt.
    commits: CommitLog,
    /// Shutting down, by this deadline: closes are awaited, not detached.
    stopping: Option<std::time::Instant>,
    /// The closes started while shutting down.
    closing: Vec<Task<()>>,
    /// Runs the core's effects (password hashes and checks, media reads) on its threads.
    effects: EffectPool,
    /// The descriptors client connections, and the links the core dials, may take.
    capacity: Capacity,
    /// The core with its commit gate and group commit: says what to write, close, commit
    /// and run.
    pump: Pump,
    /// Runs the batches the pump asks for on the blocking pool.
    committer: Committer,
    clock: Clock,
    /// Connections the core knows, by id.
    conns: HashMap<ConnId, Conn>,
    /// Connections with transmits queued since the last [`flush`](Driver::flush).
    dirty: Vec<ConnId>,
    /// Handed to dial tasks.
    events: Sender<Event>,
    /// Every live connection's socket, registered under its id.
    sockets: Sockets,
    /// Connections to read, each once, in turn: those the poller said have something,
    /// those just accepted, and those that read bytes last time and may have more.
    again: VecDeque<ConnId>,
    linger: Duration,
    /// Bytes of transmits queued since the last [`flush`](Driver::flush), to know a burst
    /// ([`AfterBurst`]).
    queued: usize,
    /// Whether a burst's queues were freed since the allocator was last trimmed.
    burst: AfterBurst,
    /// Requests the core refused by a rate limit, logged at most every
    /// [`switchboard_store::refusals::WARNING_EVERY`].
    rate_refusals: switchboard_store::refusals::RefusalLog,
}

impl Driver<'_, '_> {
    /// The next input already waiting, if any: a new connection first (the listeners are
    /// bounded by the backlog), then the next connection to read.
    fn next_input(&mut self, inbox: &Receiver<Event>) -> Option<Input> {
        if let Ok(event) = inbox.try_recv() {
            return Some(Input::Event(event));
        }
        self.again.pop_front().map(Input::Read)
    }

    /// Takes the poller's news: connections to read join the list (once), full sockets
    /// that take more are written at the end of the turn.
    fn collect(&mut self) {
        let Driver {
            sockets,
            conns,
            again,
            dirty,
            ..
        } = self;
        sockets.collect(|ready: Ready| {
            // News of a connection already closed is late; the core has forgotten it.
            let Some(handle) = conns.get_mut(&ready.conn) else {
                return;
            };
            handle.hung_up |= ready.hung_up;
            if ready.readable && !handle.to_read {
                handle.to_read = true;
                again.push_back(ready.conn);
            }
            if ready.writable && handle.writable() && !handle.dirty {
                handle.dirty = true;
                dirty.push(ready.conn);
            }
        });
    }

    /// Queues `conn` to be read in turn, unless it is already.
    fn read_later(&mut self, conn: ConnId) {
        if let Some(handle) = self.conns.get_mut(&conn) {
            if !handle.to_read {
                handle.to_read = true;
                self.again.push_back(conn);
            }
        }
    }

    /// Hands one input to the pump; what it asks for is carried out at the batch's
    /// [`drain`](Self::drain).
    fn on_input(&mut self, input: Input) {
        match input {
            Input::Event(event) => self.on_event(event),
            Input::Read(conn) => self.read(conn),
        }
    }

    /// Reads what `conn`'s socket has ready and hands it to the pump. A connection that
    /// filled the read is read again later in the batch or the next turn (its socket may
    /// hold more), one that read less or nothing waits for the poller's next edge, one
    /// whose peer is gone is closed.
    fn read(&mut self, conn: ConnId) {
        // The id of a connection already closed is late news; the core has forgotten it.
        let Some(handle) = self.conns.get_mut(&conn) else {
            return;
        };
        handle.to_read = false;
        match handle.read() {
            Got::Bytes(bytes) => {
                let drained = handle.drained_by(&bytes);
                self.observer.received(conn, bytes.len());
                self.pump.received(self.clock.now(), conn, bytes);
                if !drained {
                    self.read_later(conn);
                }
            }
            Got::Pending => {}
            // After a half-close the peer may still read what was queued: flush it.
            Got::Gone => self.peer_closed(conn, true),
        }
    }

    fn on_event(&mut self, event: Event) {
        let now = self.clock.now();
        match event {
            Event::Accepted {
                conn,
                protocol,
                peer,
                stream,
            } => {
                let handle = match Conn::new(conn, stream, &self.sockets) {
                    Ok(handle) => handle,
                    // Closed (dropped) before the core heard of it.
                    Err(e) => {
                        warn!(%conn, error = %e, "cannot watch an accepted connection");
                        return;
                    }
                };
                self.observer.opened(conn, protocol, peer);
                self.conns.insert(conn, handle);
                self.pump.accepted(now, conn, protocol, peer);
                // Whatever came before its registration raised no edge.
                self.read_later(conn);
            }
            Event::Connected { conn, stream } => {
                let handle = match Conn::new(conn, stream, &self.sockets) {
                    Ok(handle) => handle,
                    Err(e) => {
                        let error = format!("cannot watch the connection: {e}");
                        self.observer.dial_failed(conn, &error);
                        self.pump.connect_failed(now, conn, error);
                        return;
                    }
                };
                self.observer.dialed(conn);
                self.conns.insert(conn, handle);
                self.pump.connected(now, conn);
                self.read_later(conn);
            }
            Event::ConnectFailed { conn, error } => {
                self.observer.dial_failed(conn, &error);
                self.pump.connect_failed(now, conn, error);
            }
        }
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::EffectDone { id, result } => {
                self.pump.effect_done(self.clock.now(), id, result);
            }
        }
    }

    /// Tells the pump how a commit attempt went: it tells the core, releases what waited
    /// on the commit and asks for the next batch, or keeps the failed batch for a retry
    /// after its backoff.
    fn on_commit(&mut self, attempt: Attempt) {
        let (batch, result) = self.committer.finish(attempt);
        self.commits.finished(
            batch,
            result,
            &mut self.pump,
            &self.clock,
            &mut self.observer,
        );
        self.drain();
    }

    fn peer_closed(&mut self, conn: ConnId, flush: bool) {
        if flush {
            // What earlier inputs of the batch sent it is queued on it first, to be flushed.
            self.drain();
        }
        let Some(handle) = self.conns.remove(&conn) else {
            return;
        };
        self.observer.closed(conn, None);
        self.pump.peer_closed(self.clock.now(), conn);
        if flush {
            handle.close(self.ex, self.linger).detach();
        } else {
            handle.abort();
        }
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
            self.carry_out(action);
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

    /// Writes what was queued since the last flush, one write per connection, and tells
    /// the pump what the sockets took; what that releases is written too. Then exports
    /// the core's counters (once per turn, not per input: a fan-out to 1000 connections
    /// is 1000 writes).
    fn flush(&mut self) {
        // Whatever the pump still holds goes out with the rest.
        self.drain();
        self.pump.begin_batch();
        self.burst.queued(std::mem::take(&mut self.queued));
        while !self.dirty.is_empty() {
            let now = self.clock.now();
            for conn in std::mem::take(&mut self.dirty) {
                let Some(handle) = self.conns.get_mut(&conn) else {
                    continue;
                };
                handle.dirty = false;
                match handle.write() {
                    // Shutting down: the core takes nothing new but commits.
                    Ok(n) if n > 0 && self.stopping.is_none() => {
                        self.observer.written(conn, n);
                        self.pump.written(now, conn, n);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        debug!(%conn, error = %e, "write failed");
                        self.peer_closed(conn, false);
                    }
                }
            }
            // What the writes released (a close past the outbound limit, say), in order.
            self.drain();
        }
        self.export();
    }

    fn carry_out(&mut self, action: Action) {
        match action {
            Action::Transmit { conn, bytes } => {
                if let Some(handle) = self.conns.get_mut(&conn) {
                    self.queued += bytes.len();
                    handle.queue(bytes);
                    if !handle.dirty {
                        handle.dirty = true;
                        self.dirty.push(conn);
                    }
                }
            }
            Action::Close { conn, reason } => {
                if let Some(handle) = self.conns.remove(&conn) {
                    // The counters the close changed (sessions) show no later than the
                    // close itself, so no scrape sees the disconnect with the session.
                    self.export();
                    self.observer.closed(conn, Some(reason));
                    match (reason.flush(), self.stopping) {
                        (true, None) => handle.close(self.ex, self.linger).detach(),
                        // A goodbye at shutdown: written within the grace, and waited for.
                        (true, Some(deadline)) => {
                            let left =
                                deadline.saturating_duration_since(std::time::Instant::now());
                            self.closing.push(handle.close(self.ex, left));
                        }
                        (false, _) => handle.abort(),
                    }
                }
            }
            Action::Commit(batch) => {
                self.commits.started(&batch);
                self.committer.start(self.ex, batch)
            }
            Action::Effect { id, effect } => self.run_effect(id, effect),
            // Dialed off the loop; the result comes back as an event, and a connected link
            // is then like an accepted connection.
            Action::Connect { conn, addr } => {
                self.observer.dialing(conn, addr);
                match self.capacity.try_take() {
                    Some(slot) => {
                        let events = self.events.clone();
                        self.ex.spawn(dial(conn, addr, slot, events)).detach();
                    }
                    None => {
                        let error = "no descriptor to spare".to_owned();
                        self.observer.dial_failed(conn, &error);
                        self.pump.connect_failed(self.clock.now(), conn, error);
                    }
                }
            }
        }
    }

    /// Runs an effect on the effect pool, which reports its result.
    fn run_effect(&self, id: EffectId, effect: Effect) {
        self.effects.run(id, effect);
    }

    /// Commits what the core asked to persist (releasing what waited on it), then closes
    /// every connection, flushing what is queued, all within `grace`.
    async fn shut_down(
        mut self,
        inbox: &Receiver<Event>,
        reports: &Receiver<Report>,
        grace: Duration,
    ) -> Result<(), Error> {
        let deadline = std::time::Instant::now() + grace;
        self.stopping = Some(deadline);
        // Each client is told in its protocol's way (after what waits on a commit).
        self.pump.shutdown(self.clock.now());
        self.drain();
        // Nothing new is handled; keep emptying the channels so nobody waits on a full one.
        let discard = async {
            let events = async {
                while inbox.recv().await.is_ok() {}
                future::pending::<()>().await;
            };
            let reports = async {
                while reports.recv().await.is_ok() {}
                future::pending::<()>().await;
            };
            events.or(reports).await;
        };
        let mut discard = pin!(discard);
        // The pump asks for each batch in turn, a failed one again after its backoff:
        // follow it until nothing is left to commit or the grace is over.
        while self.pump.committing() {
            let retry_at = match self.committer.busy() {
                true => None,
                false => self
                    .pump
                    .poll_timeout()
                    .and_then(|at| self.clock.deadline(at))
                    .map(|at| at.min(deadline)),
            };
            let committer = &mut self.committer;
            let woke = async { Some(Some(committer.finished().await)) }
                .or(async {
                    match retry_at {
                        Some(at) => {
                            Timer::at(at).await;
                            Some(None)
                        }
                        None => future::pending().await,
                    }
                })
                .or(async {
                    Timer::at(deadline).await;
                    None
                })
                .or(async {
                    discard.as_mut().await;
                    None
                })
                .await;
            match woke {
                Some(Some(attempt)) => self.on_commit(attempt),
                Some(None) if std::time::Instant::now() < deadline => {
                    self.pump.handle_timeout(self.clock.now());
                    self.drain();
                }
                _ => break,
            }
        }
        let uncommitted = self.pump.uncommitted();
        self.observer.shutdown();
        let mut closing = std::mem::take(&mut self.closing);
        closing.extend(std::mem::take(&mut self.conns).into_values().map(|handle| {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            handle.close(self.ex, left)
        }));
        let all_closed = async {
            for task in closing {
                task.await;
            }
        };
        all_closed
            .or(async {
                discard.as_mut().await;
            })
            .await;
        switchboard_store::start::stopped(uncommitted)
    }
}

/// Connects to `addr` for the core's connection `conn`, within [`CONNECT_TIMEOUT`], and
/// tells the driver how it went.
async fn dial(conn: ConnId, addr: SocketAddr, slot: Slot, events: Sender<Event>) {
    let connect = async {
        // Connected through smol's reactor, then handed to the driver's poller.
        Async::<TcpStream>::connect(addr)
            .await
            .and_then(Async::into_inner)
            .map_err(|e| e.to_string())
    };
    let timeout = async {
        Timer::after(CONNECT_TIMEOUT).await;
        Err(format!("timed out after {} s", CONNECT_TIMEOUT.as_secs()))
    };
    let event = match connect.or(timeout).await {
        Ok(stream) => Event::Connected {
            conn,
            stream: Stream::Tcp(stream, slot),
        },
        Err(error) => Event::ConnectFailed { conn, error },
    };
    // Fails only once the driver is gone.
    let _ = events.send(event).await;
}

/// Accepts client connections while they have descriptors to spare: past the capacity,
/// each connection is accepted and closed at once, so the backlog drains, the peer learns
/// at once, and the reserve stays free for the admin socket and the store. A failed
/// accept (out of descriptors after all) rests [`ACCEPT_BACKOFF`], so the loop never spins.
async fn accept_loop(
    protocol: Protocol,
    listener: Async<TcpListener>,
    capacity: Capacity,
    next_id: Arc<AtomicU64>,
    events: Sender<Event>,
) {
    let mut refusals = switchboard_store::refusals::CapacityRefusals::default();
    loop {
        // Accepted as a plain non-blocking stream: the driver registers it in its own
        // poller, not with the reactor.
        match accept_nonblocking(&listener).await {
            Ok((stream, peer)) => {
                let Some(slot) = capacity.try_take() else {
                    drop(stream);
                    refusals.refused(protocol, &capacity);
                    continue;
                };
                let conn = ConnId(next_id.fetch_add(1, Ordering::Relaxed));
                let accepted = Event::Accepted {
                    conn,
                    protocol,
                    peer: Peer::Net(peer),
                    stream: Stream::Tcp(stream, slot),
                };
                if events.send(accepted).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!(%protocol, error = %e, "accept failed");
                Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Accepts one connection on `listener`, non-blocking.
async fn accept_nonblocking(listener: &Async<TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    let (stream, peer) = listener.read_with(|l| l.accept()).await?;
    stream.set_nonblocking(true)?;
    Ok((stream, peer))
}

/// Accepts on the admin socket: each connection speaks [`Protocol::Admin`] from
/// [`Peer::Local`].
#[cfg(unix)]
async fn accept_admin(
    listener: Async<UnixListener>,
    next_id: Arc<AtomicU64>,
    events: Sender<Event>,
) {
    loop {
        let accepted = listener
            .read_with(|l| l.accept())
            .await
            .and_then(|(stream, _)| stream.set_nonblocking(true).map(|()| stream));
        match accepted {
            Ok(stream) => {
                let conn = ConnId(next_id.fetch_add(1, Ordering::Relaxed));
                let accepted = Event::Accepted {
                    conn,
                    protocol: Protocol::Admin,
                    peer: Peer::Local,
                    stream: Stream::Unix(stream),
                };
                if events.send(accepted).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!(error = %e, "accept on the admin socket failed");
                Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dial_once(addr: SocketAddr) -> Event {
        let (events, inbox) = channel::bounded(1);
        let capacity = Capacity::new(1);
        let slot = capacity.try_take().expect("a slot");
        smol::block_on(async {
            dial(ConnId::OUTBOUND, addr, slot, events).await;
            inbox.recv().await.expect("an event")
        })
    }

    #[test]
    fn a_dial_reports_the_established_stream() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        match dial_once(addr) {
            Event::Connected { conn, stream } => {
                assert_eq!(conn, ConnId::OUTBOUND);
                let Stream::Tcp(stream, _) = stream else {
                    panic!("not TCP");
                };
                let (_, from) = listener.accept().expect("accepted");
                assert_eq!(stream.local_addr().expect("local"), from);
            }
            _ => panic!("not connected"),
        }
    }

    #[test]
    fn a_refused_dial_reports_its_failure() {
        // A port that was just free: nothing listens there.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        match dial_once(addr) {
            Event::ConnectFailed { conn, error } => {
                assert_eq!(conn, ConnId::OUTBOUND);
                assert!(!error.is_empty());
            }
            _ => panic!("connected to nothing"),
        }
    }
}
