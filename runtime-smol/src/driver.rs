//! The driver task: owns the core and runs its drive loop.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use smol::channel::{self, Receiver, Sender};
use smol::future::{self, FutureExt};
use smol::{Async, LocalExecutor, Task, Timer};
use switchboard_proto::{ConnId, Input, Output, Protocol, Server};
use tracing::{info, warn};

use crate::clock::Clock;
use crate::conn::Conn;
use crate::Runtime;

/// Events the driver can buffer before readers, writers and listeners wait.
const EVENT_CAPACITY: usize = 256;

/// How long a listener rests after a failed accept (out of file descriptors, say), so it
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What listener and reader tasks tell the driver, over a bounded channel: when the driver
/// falls behind, they wait, and TCP pushes back on the peers.
pub(crate) enum Event {
    /// A listener accepted a connection and gave it a fresh id.
    Accepted {
        conn: ConnId,
        protocol: Protocol,
        peer: SocketAddr,
        stream: Async<TcpStream>,
    },
    /// A reader read bytes.
    Received { conn: ConnId, bytes: Bytes },
    /// The peer closed its side, or reading failed.
    Gone { conn: ConnId },
}

/// What writer tasks tell the driver, over an unbounded channel that the driver serves
/// before any new input: the core counts bytes sent but not reported written against its
/// limit, so a report held up behind a queue of input would make a fast reader look slow.
/// There is at most one report per write, and the core bounds the bytes waiting for one.
pub(crate) enum Report {
    /// A writer handed `n` bytes to the socket.
    Written { conn: ConnId, n: usize },
    /// Writing failed; the peer is gone.
    Failed { conn: ConnId },
}

/// Why the driver woke up.
enum Wake {
    Report(Report),
    Event(Event),
    Deadline,
    Shutdown,
}

/// Runs the drive loop until `shutdown` completes, then closes everything.
pub(crate) async fn run(
    ex: &LocalExecutor<'_>,
    runtime: Runtime,
    shutdown: impl Future<Output = ()>,
) {
    let (events, inbox) = channel::bounded(EVENT_CAPACITY);
    let (reports, report_box) = channel::unbounded();
    let next_id = Arc::new(AtomicU64::new(1));
    let accepting: Vec<Task<()>> = runtime
        .listeners
        .into_iter()
        .map(|l| {
            ex.spawn(accept_loop(
                l.protocol,
                l.socket,
                next_id.clone(),
                events.clone(),
            ))
        })
        .collect();
    let mut driver = Driver {
        ex,
        server: Server::new(runtime.config),
        clock: Clock::start(),
        conns: BTreeMap::new(),
        events,
        reports,
        linger: runtime.options.linger,
    };
    let mut shutdown = pin!(shutdown);
    let mut timer = Timer::never();
    let mut timer_at = None;
    loop {
        let now = driver.clock.now();
        let deadline = driver.server.poll_timeout();
        if deadline.is_some_and(|at| at <= now.mono) {
            driver.server.handle_timeout(now);
            driver.drain();
            continue;
        }
        if deadline != timer_at {
            timer_at = deadline;
            timer = match deadline.and_then(|at| driver.clock.deadline(at)) {
                Some(at) => Timer::at(at),
                None => Timer::never(),
            };
        }
        // Polled in this order, so that neither shutdown, a deadline nor a write report
        // starves behind a flood of input.
        let wake = async {
            shutdown.as_mut().await;
            Wake::Shutdown
        }
        .or(async {
            (&mut timer).await;
            Wake::Deadline
        })
        .or(async {
            match report_box.recv().await {
                Ok(report) => Wake::Report(report),
                // The driver holds a sender, so the channel never closes.
                Err(_) => future::pending().await,
            }
        })
        .or(async {
            match inbox.recv().await {
                Ok(event) => Wake::Event(event),
                Err(_) => future::pending().await,
            }
        })
        .await;
        match wake {
            Wake::Report(report) => {
                driver.on_report(report);
                driver.drain();
            }
            Wake::Event(event) => {
                driver.on_event(event);
                driver.drain();
                // Let the writers write what this input produced (and report it) before
                // the next input, which a ready channel would otherwise hand over at once.
                future::yield_now().await;
            }
            Wake::Deadline => timer_at = None,
            Wake::Shutdown => break,
        }
    }
    drop(accepting);
    driver
        .shut_down(&inbox, &report_box, runtime.options.shutdown_grace)
        .await;
}

struct Driver<'a, 'ex> {
    ex: &'a LocalExecutor<'ex>,
    server: Server,
    clock: Clock,
    /// Connections the core knows, by id.
    conns: BTreeMap<ConnId, Conn>,
    /// Handed to every new connection's tasks.
    events: Sender<Event>,
    reports: Sender<Report>,
    linger: Duration,
}

impl Driver<'_, '_> {
    fn on_event(&mut self, event: Event) {
        let now = self.clock.now();
        match event {
            Event::Accepted {
                conn,
                protocol,
                peer,
                stream,
            } => {
                info!(%conn, %protocol, %peer, "connection opened");
                let handle = Conn::start(self.ex, conn, stream, &self.events, &self.reports);
                self.conns.insert(conn, handle);
                self.server.handle(
                    now,
                    Input::Accepted {
                        conn,
                        protocol,
                        peer,
                    },
                );
            }
            // Events of a connection already closed are late news; the core has forgotten it.
            Event::Received { conn, bytes } => {
                if self.conns.contains_key(&conn) {
                    self.server.handle(now, Input::Received { conn, bytes });
                }
            }
            // After a half-close the peer may still read what was queued: flush it.
            Event::Gone { conn } => self.peer_closed(conn, true),
        }
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Written { conn, n } => {
                if self.conns.contains_key(&conn) {
                    self.server
                        .handle(self.clock.now(), Input::Written { conn, n });
                }
            }
            Report::Failed { conn } => self.peer_closed(conn, false),
        }
    }

    fn peer_closed(&mut self, conn: ConnId, flush: bool) {
        let Some(handle) = self.conns.remove(&conn) else {
            return;
        };
        info!(%conn, reason = "peer closed", "connection closed");
        self.server
            .handle(self.clock.now(), Input::PeerClosed { conn });
        if flush {
            handle.close(self.ex, self.linger).detach();
        } else {
            handle.abort();
        }
    }

    /// Carries out every output the core has queued.
    fn drain(&mut self) {
        while let Some(output) = self.server.poll_output() {
            match output {
                Output::Transmit { conn, bytes } => {
                    if let Some(handle) = self.conns.get(&conn) {
                        handle.send(bytes);
                    }
                }
                Output::Close { conn, reason } => {
                    if let Some(handle) = self.conns.remove(&conn) {
                        info!(%conn, reason = reason.as_str(), "connection closed");
                        if reason.flush() {
                            handle.close(self.ex, self.linger).detach();
                        } else {
                            handle.abort();
                        }
                    }
                }
            }
        }
    }

    /// Closes every connection, flushing what is queued, and waits up to `grace` for them.
    async fn shut_down(self, inbox: &Receiver<Event>, reports: &Receiver<Report>, grace: Duration) {
        let closing: Vec<Task<()>> = self
            .conns
            .into_iter()
            .map(|(conn, handle)| {
                info!(%conn, reason = "shutdown", "connection closed");
                handle.close(self.ex, grace)
            })
            .collect();
        let all_closed = async {
            for task in closing {
                task.await;
            }
        };
        // Keep emptying the channels: nothing is waited on any more, and nobody should wait
        // on a full channel.
        let discard_events = async {
            while inbox.recv().await.is_ok() {}
            future::pending::<()>().await;
        };
        let discard_reports = async {
            while reports.recv().await.is_ok() {}
            future::pending::<()>().await;
        };
        let discard = discard_events.or(discard_reports);
        all_closed.or(discard).await;
    }
}

async fn accept_loop(
    protocol: Protocol,
    listener: Async<TcpListener>,
    next_id: Arc<AtomicU64>,
    events: Sender<Event>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let conn = ConnId(next_id.fetch_add(1, Ordering::Relaxed));
                let accepted = Event::Accepted {
                    conn,
                    protocol,
                    peer,
                    stream,
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
