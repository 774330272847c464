//! One connection (TCP, or the admin socket's Unix stream): a reader task, the queue of
//! transmits the driver writes itself, and how the driver ends them.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, ErrorKind, IoSlice, Write};
use std::net::{Shutdown, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use smol::channel::Sender;
use smol::future::{self, FutureExt};
use smol::io::AsyncRead;
use smol::{Async, LocalExecutor, Task, Timer};
use switchboard_proto::ConnId;
use tracing::debug;

use crate::driver::{Event, Report};
use crate::fds::Slot;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Queued transmits handed to one `write_vectored` at most.
const MAX_SLICES: usize = 64;

/// An accepted stream, before its tasks start.
pub(crate) enum Stream {
    /// A protocol listener's connection, with its share of the descriptors.
    Tcp(Async<TcpStream>, Slot),
    /// A connection to the admin socket.
    #[cfg(unix)]
    Unix(Async<UnixStream>),
}

/// What the driver needs of a socket: non-blocking reads and writes, readiness, shutdown.
pub(crate) trait Socket: 'static {
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    /// Reads what is ready, or registers `cx` for when something is.
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    /// Writes what the socket takes now; `WouldBlock` when it takes nothing.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Ready when the socket may take more, registering `cx` until then.
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A client's TCP stream holding its [`Slot`] until the socket is closed (when the last
/// of the connection's tasks lets go of it).
struct Counted {
    stream: Async<TcpStream>,
    _slot: Slot,
}

impl Socket for Counted {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.stream.get_ref().shutdown(how)
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut &self.stream).poll_read(cx, buf)
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // The descriptor is non-blocking (async-io made it so).
        (&mut self.stream.get_ref()).write_vectored(bufs)
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_writable(cx)
    }
}

#[cfg(unix)]
impl Socket for Async<UnixStream> {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.get_ref().shutdown(how)
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_read(cx, buf)
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&mut self.get_ref()).write_vectored(bufs)
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Async::poll_writable(self, cx)
    }
}

/// The driver's handle on a live connection.
pub(crate) struct Conn {
    stream: Arc<dyn Socket>,
    /// Transmits not yet written, the first possibly in part. Unbounded on purpose: the
    /// core counts what it sent and has not seen written, and closes the connection past
    /// its limit, so the driver never waits on a slow peer.
    out: VecDeque<Bytes>,
    /// The socket took nothing at the last write: a watcher waits for it to take more.
    blocked: Option<Task<()>>,
    /// Whether it is in the driver's list of connections to write this turn.
    pub(crate) dirty: bool,
    reader: Task<()>,
}

impl Conn {
    /// Starts the reader task of `stream`, which sends to `events`.
    pub(crate) fn start(
        ex: &LocalExecutor<'_>,
        conn: ConnId,
        stream: Stream,
        events: &Sender<Event>,
    ) -> Conn {
        let stream: Arc<dyn Socket> = match stream {
            Stream::Tcp(stream, slot) => {
                // Small lines should leave at once; a failure here only costs latency.
                if let Err(e) = stream.get_ref().set_nodelay(true) {
                    debug!(%conn, error = %e, "cannot set TCP_NODELAY");
                }
                Arc::new(Counted {
                    stream,
                    _slot: slot,
                })
            }
            #[cfg(unix)]
            Stream::Unix(stream) => Arc::new(stream),
        };
        let reader = ex.spawn(read_loop(conn, stream.clone(), events.clone()));
        Conn {
            stream,
            out: VecDeque::new(),
            blocked: None,
            dirty: false,
            reader,
        }
    }

    /// Queues bytes; they leave at the driver's next [`write`](Self::write).
    pub(crate) fn queue(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            if self.out.capacity() == 0 {
                self.out = switchboard_store::memory::spare_queue();
            }
            self.out.push_back(bytes);
        }
    }

    /// Writes what is queued until the socket is full or the queue empty: one `write` for
    /// one transmit, one `write_vectored` for several. When the socket is full, a watcher
    /// task reports [`Report::Writable`] once it takes more. Returns the bytes written.
    ///
    /// # Errors
    /// The socket failed: the peer is gone.
    pub(crate) fn write(
        &mut self,
        ex: &LocalExecutor<'_>,
        conn: ConnId,
        reports: &Sender<Report>,
    ) -> io::Result<usize> {
        let mut total = 0;
        while !self.out.is_empty() && self.blocked.is_none() {
            match write_some(&*self.stream, &self.out) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    total += n;
                    advance(&mut self.out, n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let stream = self.stream.clone();
                    let reports = reports.clone();
                    self.blocked = Some(ex.spawn(async move {
                        let _ = future::poll_fn(|cx| stream.poll_writable(cx)).await;
                        // Unbounded; fails only once the driver is gone.
                        let _ = reports.try_send(Report::Writable { conn });
                    }));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // An idle connection keeps no queue; the emptied one serves the next connection
        // written to (`memory::return_queue`).
        switchboard_store::memory::return_queue(&mut self.out);
        Ok(total)
    }

    /// The socket may take more (its watcher said so).
    pub(crate) fn writable(&mut self) {
        self.blocked = None;
    }

    /// Whether transmits wait to be written.
    pub(crate) fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Stops reading, writes everything queued, then shuts the socket down and waits for
    /// the peer to close, all within `linger`. Returns the task doing that; the socket is
    /// closed when it ends.
    pub(crate) fn close(self, ex: &LocalExecutor<'_>, linger: Duration) -> Task<()> {
        let Conn {
            stream,
            mut out,
            blocked,
            dirty: _,
            reader,
        } = self;
        drop(reader);
        drop(blocked);
        ex.spawn(
            async move {
                if flush(&*stream, &mut out).await.is_err() {
                    return;
                }
                // Everything is written: say goodbye, then wait for the peer's close so
                // that unread input does not turn our close into a reset that could
                // discard the goodbye.
                if stream.shutdown(Shutdown::Write).is_err() {
                    return;
                }
                loop {
                    match read_some(&*stream).await {
                        Ok(bytes) if bytes.is_empty() => return,
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => return,
                    }
                }
            }
            .or(async move {
                Timer::after(linger).await;
            }),
        )
    }

    /// Closes at once, dropping whatever is queued or unwritten.
    pub(crate) fn abort(self) {
        // Shut down explicitly: a cancelled task may hold its handle on the socket a moment
        // longer, and the peer should see the close now.
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// One `write` of the first transmit, or one `write_vectored` of the first several.
fn write_some(stream: &dyn Socket, out: &VecDeque<Bytes>) -> io::Result<usize> {
    // On the stack: a write per connection per turn allocates nothing.
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    let mut n = 0;
    for (slice, bytes) in slices.iter_mut().zip(out) {
        *slice = IoSlice::new(bytes);
        n += 1;
    }
    stream.try_write_vectored(&slices[..n])
}

/// Drops the first `n` bytes of `out`.
fn advance(out: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = out.front_mut() else {
            return;
        };
        if n < front.len() {
            front.advance(n);
            return;
        }
        n -= front.len();
        out.pop_front();
    }
}

/// Writes all of `out`, waiting for the socket as needed.
async fn flush(stream: &dyn Socket, out: &mut VecDeque<Bytes>) -> io::Result<()> {
    while !out.is_empty() {
        match write_some(stream, out) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => advance(out, n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                future::poll_fn(|cx| stream.poll_writable(cx)).await?;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

thread_local! {
    /// The one read buffer of every reader task on this thread: a reader borrows it only
    /// inside a single `poll_read` that found bytes ready, and copies them out before
    /// returning, so an idle connection holds no buffer at all (a 16 KiB buffer per
    /// connection was most of the memory of an idle client).
    static READ_SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// Reads what `stream` has ready into the thread's scratch buffer and copies it out;
/// waits (holding no buffer) while nothing is ready. An empty `Bytes` is end of stream.
async fn read_some(stream: &dyn Socket) -> io::Result<Bytes> {
    future::poll_fn(|cx| {
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            match stream.poll_read(cx, &mut scratch) {
                Poll::Ready(Ok(n)) => Poll::Ready(Ok(Bytes::copy_from_slice(&scratch[..n]))),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    })
    .await
}

async fn read_loop(conn: ConnId, stream: Arc<dyn Socket>, events: Sender<Event>) {
    loop {
        let bytes = match read_some(&*stream).await {
            Ok(bytes) if bytes.is_empty() => break,
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                debug!(%conn, error = %e, "read failed");
                break;
            }
        };
        // The channel is bounded: when the driver falls behind, this waits, the socket's
        // receive buffer fills, and TCP slows the peer down.
        if events.send(Event::Received { conn, bytes }).await.is_err() {
            return;
        }
    }
    let _ = events.send(Event::Gone { conn }).await;
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Three queued transmits leave in order through one vectored write, and a partial
    /// write keeps the rest queued from the right byte.
    #[test]
    fn queued_transmits_leave_in_order_from_a_partial_write() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = Async::<TcpStream>::connect(listener.local_addr().expect("addr"));
        let client = smol::block_on(client).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        let socket = Counted {
            stream: client,
            _slot: crate::fds::Capacity::new(1).try_take().expect("slot"),
        };
        let mut out: VecDeque<Bytes> = ["one ", "two ", "three"]
            .iter()
            .map(|p| Bytes::from_static(p.as_bytes()))
            .collect();
        advance(&mut out, 2);
        assert_eq!(write_some(&socket, &out).expect("write"), 11);
        let mut got = [0_u8; 11];
        server.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"e two three");
    }

    /// A transmit larger than the socket takes: the write stops at the full socket, a
    /// watcher reports the socket writable once the peer reads, and the rest follows, every
    /// byte once and in order.
    #[test]
    fn a_full_socket_is_reported_writable_and_the_rest_follows_in_order() {
        const TOTAL: usize = 8 << 20;
        let pattern: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = Async::<TcpStream>::connect(listener.local_addr().expect("addr"));
        let client = smol::block_on(client).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        let slot = crate::fds::Capacity::new(1).try_take().expect("slot");
        let ex = LocalExecutor::new();
        let (events, _inbox) = smol::channel::bounded(1);
        let (reports, report_box) = smol::channel::unbounded();
        let id = ConnId(1);
        let mut conn = Conn::start(&ex, id, Stream::Tcp(client, slot), &events);
        for chunk in pattern.chunks(64 * 1024) {
            conn.queue(Bytes::copy_from_slice(chunk));
        }
        let mut written = conn.write(&ex, id, &reports).expect("write");
        assert!(written < TOTAL, "the socket took all {TOTAL} bytes at once");
        assert!(conn.has_output());
        let reader = std::thread::spawn(move || {
            let mut got = vec![0_u8; TOTAL];
            server.read_exact(&mut got).map(|()| got)
        });
        let rest = async {
            while conn.has_output() {
                match report_box.recv().await {
                    Ok(Report::Writable { conn: c }) => {
                        assert_eq!(c, id);
                        conn.writable();
                        written += conn.write(&ex, id, &reports).expect("write");
                    }
                    _ => panic!("not a writable report"),
                }
            }
        };
        let timeout = async {
            Timer::after(Duration::from_secs(20)).await;
            panic!("the full socket was never reported writable");
        };
        smol::block_on(ex.run(rest.or(timeout)));
        assert_eq!(written, TOTAL);
        let got = reader.join().expect("reader").expect("read all");
        assert!(got == pattern, "the bytes arrived out of order");
    }
}
