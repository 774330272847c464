//! One connection (TCP, or the admin socket's Unix stream): its socket, the queue of
//! transmits the driver writes itself, and how the driver ends it; and [`Sockets`], the
//! readiness of every live connection.
//!
//! A live connection runs no task and holds no waker or reactor registration of its own:
//! its socket is registered, edge-triggered and keyed by its id, in one poller of the
//! driver's ([`Sockets`]), whose descriptor is in turn one source of smol's reactor. When
//! the reactor says that poller is readable, the driver collects which connections can
//! read or write and reads them itself, one read per connection in turn. An idle
//! connection so costs its entry in the driver's map and what the kernel and the core
//! keep; a reader task per connection, with its future, its header, the executor's slot,
//! and the reactor's `Source` with its wakers, was about a third of the memory of an idle
//! client on this runtime (see docs/performance-log.md).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, ErrorKind, IoSlice, Read as _, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use smol::future::{self, FutureExt};
use smol::{Async, LocalExecutor, Task, Timer};
use switchboard_proto::ConnId;
use tracing::debug;

use crate::fds::Slot;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Queued transmits handed to one `write_vectored` at most.
const MAX_SLICES: usize = 64;

/// Readiness events collected from the poller at once; more wait for the next collection.
const EVENTS_AT_ONCE: usize = 1024;

/// An accepted or dialed stream, non-blocking.
pub(crate) enum Stream {
    /// A protocol listener's connection (or a dialed link), holding its share of the
    /// descriptors until the socket is closed.
    Tcp(
        TcpStream,
        #[allow(dead_code)] // held, never read: dropped with the socket
        Slot,
    ),
    /// A connection to the admin socket.
    #[cfg(unix)]
    Unix(UnixStream),
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(stream, _) => stream.as_fd(),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.as_fd(),
        }
    }
}

impl Stream {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(stream, _) => stream.shutdown(how),
            #[cfg(unix)]
            Stream::Unix(stream) => stream.shutdown(how),
        }
    }

    /// Reads what is ready; `WouldBlock` when nothing is.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream, _) => (&mut &*stream).read(buf),
            #[cfg(unix)]
            Stream::Unix(stream) => (&mut &*stream).read(buf),
        }
    }

    /// Writes what the socket takes of `buf` now; `WouldBlock` when it takes nothing.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream, _) => (&mut &*stream).write(buf),
            #[cfg(unix)]
            Stream::Unix(stream) => (&mut &*stream).write(buf),
        }
    }

    /// Writes what the socket takes now; `WouldBlock` when it takes nothing.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream, _) => (&mut &*stream).write_vectored(bufs),
            #[cfg(unix)]
            Stream::Unix(stream) => (&mut &*stream).write_vectored(bufs),
        }
    }
}

/// What a collection of the poller's events found for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ready {
    pub(crate) conn: ConnId,
    /// It has bytes to read, or its peer closed, or it failed.
    pub(crate) readable: bool,
    /// Its socket takes more (or failed).
    pub(crate) writable: bool,
    /// Its peer closed its side, or it failed: no further edge will come for it.
    pub(crate) hung_up: bool,
}

/// The readiness of every live connection: one poller in which each connection's socket
/// is registered, edge-triggered, under its id, itself a source of smol's reactor.
/// Edge-triggered: a connection is reported again only once something new happens after
/// a read or write found its socket empty or full, so the driver reads a reported
/// connection until it has nothing ([`Got::Pending`]) and writes until the socket is full.
///
/// The poller is mio's: a collection is one `epoll_wait`. smol's own `polling` arms a
/// timer and rearms its notifier around every wait, five system calls where one does, on
/// every wake-up of the driver (docs/performance-log.md, "What a wake-up costs on smol").
pub(crate) struct Sockets {
    /// The poller's descriptor as a source of smol's reactor: says when to collect.
    /// Declared before `poll`, so it leaves the reactor before the descriptor closes.
    reactor: Async<PollFd>,
    poll: mio::Poll,
    /// Where connections register, shared with each of them to leave it when dropped.
    registry: Arc<mio::Registry>,
    events: mio::Events,
}

/// The descriptor of a [`mio::Poll`], borrowed for smol's reactor (which only watches
/// it): the [`Sockets`] holding both drop this first.
struct PollFd(std::os::fd::RawFd);

impl AsFd for PollFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor stays open while this lives: `Sockets` owns the poll and
        // drops this (its reactor source) before it.
        unsafe { BorrowedFd::borrow_raw(self.0) }
    }
}

impl Sockets {
    /// A poller registered with smol's reactor.
    ///
    /// # Errors
    /// The system refused a poller or its registration.
    pub(crate) fn new() -> io::Result<Sockets> {
        let poll = mio::Poll::new()?;
        let registry = Arc::new(poll.registry().try_clone()?);
        let reactor = Async::new(PollFd(poll.as_raw_fd()))?;
        Ok(Sockets {
            reactor,
            poll,
            registry,
            events: mio::Events::with_capacity(EVENTS_AT_ONCE),
        })
    }

    /// Waits until some connection may be ready (the reactor says the poller has events).
    ///
    /// Through `poll_readable`, whose record of the reactor's ticks lives in the poller's
    /// registration, not in the future: news that came while the driver was busy is seen
    /// by the next wait, however many waits were started and dropped meanwhile (a fresh
    /// `readable()` future sees only news after it was made, so a driver that always had
    /// other input missed the poller's until that input ran out).
    pub(crate) async fn wait(&self) -> io::Result<()> {
        future::poll_fn(|cx| self.reactor.poll_readable(cx)).await
    }

    /// Collects what is ready now, without waiting (at most [`EVENTS_AT_ONCE`]; the rest
    /// stays for the next call, and the reactor says so again).
    pub(crate) fn collect(&mut self, mut each: impl FnMut(Ready)) {
        loop {
            match self.poll.poll(&mut self.events, Some(Duration::ZERO)) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!(error = %e, "polling the connections failed");
                    return;
                }
            }
        }
        for event in self.events.iter() {
            let failed = event.is_error();
            each(Ready {
                conn: ConnId(event.token().0 as u64),
                readable: event.is_readable() || event.is_read_closed() || failed,
                writable: event.is_writable() || event.is_write_closed() || failed,
                hung_up: event.is_read_closed() || failed,
            });
        }
    }

    /// Registers `stream` for connection `conn`, for reading and writing, edge-triggered.
    fn register(&self, conn: ConnId, stream: Stream) -> io::Result<Registered> {
        let key = usize::try_from(conn.0)
            .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "connection id too large"))?;
        self.registry.register(
            &mut mio::unix::SourceFd(&stream.as_fd().as_raw_fd()),
            mio::Token(key),
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        )?;
        Ok(Registered {
            registry: self.registry.clone(),
            stream: Some(stream),
        })
    }
}

/// A stream registered in the driver's poller; deleted from it before it is dropped.
struct Registered {
    registry: Arc<mio::Registry>,
    /// Always `Some` until [`into_stream`](Self::into_stream) or the drop.
    stream: Option<Stream>,
}

impl Registered {
    fn stream(&self) -> Option<&Stream> {
        self.stream.as_ref()
    }

    /// Deletes the stream from the poller and hands it out.
    fn into_stream(mut self) -> Option<Stream> {
        let stream = self.stream.take()?;
        leave(&self.registry, &stream);
        Some(stream)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            leave(&self.registry, &stream);
        }
    }
}

/// Deletes `stream` from the poller (a socket closed while registered would otherwise
/// stay in it while a duplicate of its descriptor lives).
fn leave(registry: &mio::Registry, stream: &Stream) {
    let _ = registry.deregister(&mut mio::unix::SourceFd(&stream.as_fd().as_raw_fd()));
}

/// What one [`Conn::read`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Got {
    /// Bytes; more may be ready: read again (after other connections had their turn).
    Bytes(Bytes),
    /// Nothing yet: the poller reports the connection again when something comes.
    Pending,
    /// The peer closed its side, or reading failed: nothing more will come.
    Gone,
}

/// The driver's handle on a live connection.
pub(crate) struct Conn {
    socket: Registered,
    /// Transmits not yet written, the first possibly in part. Unbounded on purpose: the
    /// core counts what it sent and has not seen written, and closes the connection past
    /// its limit, so the driver never waits on a slow peer. Holds no allocation while
    /// empty (`memory::return_queue`).
    out: VecDeque<Bytes>,
    /// The socket took nothing at the last write: the poller says when it takes more.
    blocked: bool,
    /// Whether it is in the driver's list of connections to write this turn.
    pub(crate) dirty: bool,
    /// Whether it is in the driver's list of connections to read.
    pub(crate) to_read: bool,
    /// The peer's close (or an error) was reported: reads go on to the end of the stream,
    /// short or not, since no further edge will come for it.
    pub(crate) hung_up: bool,
}

impl Conn {
    /// Registers `stream` as connection `conn` in `sockets`. The driver is to
    /// [`read`](Self::read) it once to begin with: what came before the registration is
    /// reported by no edge.
    ///
    /// # Errors
    /// The poller refused the socket.
    pub(crate) fn new(conn: ConnId, stream: Stream, sockets: &Sockets) -> io::Result<Conn> {
        if let Stream::Tcp(stream, _) = &stream {
            // Small lines should leave at once; a failure here only costs latency.
            if let Err(e) = stream.set_nodelay(true) {
                debug!(%conn, error = %e, "cannot set TCP_NODELAY");
            }
        }
        Ok(Conn {
            socket: sockets.register(conn, stream)?,
            out: VecDeque::new(),
            blocked: false,
            dirty: false,
            to_read: false,
            hung_up: false,
        })
    }

    /// Reads what the socket has ready (at most [`READ_CHUNK`] bytes, through the thread's
    /// scratch buffer, copied out). Fewer than that took all the socket held
    /// ([`Conn::drained_by`]).
    pub(crate) fn read(&self) -> Got {
        let Some(stream) = self.socket.stream() else {
            return Got::Gone;
        };
        loop {
            return match read_now(stream) {
                Ok(bytes) if bytes.is_empty() => Got::Gone,
                Ok(bytes) => Got::Bytes(bytes),
                Err(e) if e.kind() == ErrorKind::WouldBlock => Got::Pending,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!(error = %e, "read failed");
                    Got::Gone
                }
            };
        }
    }

    /// Whether a read that brought `bytes` left nothing to read before the next edge: it
    /// was short, and the peer's close was not reported (a close that came with the last
    /// bytes raised its edge already, so reading goes on to the end of the stream).
    /// Edge-triggered readiness fires on every arrival, so the read that would only say
    /// `WouldBlock` is skipped: one system call less per message when each read brings
    /// one line.
    pub(crate) fn drained_by(&self, bytes: &Bytes) -> bool {
        bytes.len() < READ_CHUNK && !self.hung_up
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
    /// one transmit, one `write_vectored` for several. When the socket is full, the
    /// poller reports the connection writable once it takes more. Returns the bytes
    /// written.
    ///
    /// # Errors
    /// The socket failed: the peer is gone.
    pub(crate) fn write(&mut self) -> io::Result<usize> {
        let Some(stream) = self.socket.stream() else {
            return Err(ErrorKind::NotConnected.into());
        };
        let mut total = 0;
        while !self.out.is_empty() && !self.blocked {
            match write_some(stream, &self.out) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    total += n;
                    advance(&mut self.out, n);
                }
                // Edge-triggered: the socket is now full, so its next room is an edge.
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.blocked = true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // An idle connection keeps no queue; the emptied one serves the next connection
        // written to (`memory::return_queue`).
        switchboard_store::memory::return_queue(&mut self.out);
        Ok(total)
    }

    /// The socket may take more (the poller said so). Returns whether transmits wait to
    /// be written.
    pub(crate) fn writable(&mut self) -> bool {
        self.blocked = false;
        self.has_output()
    }

    /// Whether transmits wait to be written.
    pub(crate) fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Stops reading, writes everything queued, then shuts the socket down and waits for
    /// the peer to close, all within `linger`. Returns the task doing that; the socket is
    /// closed when it ends (at once if smol's reactor refuses it).
    pub(crate) fn close(self, ex: &LocalExecutor<'_>, linger: Duration) -> Task<()> {
        let Conn {
            socket, mut out, ..
        } = self;
        let stream = socket.into_stream().map(Async::new);
        ex.spawn(
            async move {
                let Some(Ok(stream)) = stream else { return };
                if flush(&stream, &mut out).await.is_err() {
                    return;
                }
                // Everything is written: say goodbye, then wait for the peer's close so
                // that unread input does not turn our close into a reset that could
                // discard the goodbye.
                if stream.get_ref().shutdown(Shutdown::Write).is_err() {
                    return;
                }
                loop {
                    match stream.read_with(read_now).await {
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
        if let Some(stream) = self.socket.into_stream() {
            // The peer should see the close now.
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// One `write` of the first transmit, or one `write_vectored` of the first several.
fn write_some(stream: &Stream, out: &VecDeque<Bytes>) -> io::Result<usize> {
    // One transmit is one `send`: a `writev` of one slice costs the kernel more (its
    // vector checks and the file position lock were 9 % of a login run's server time).
    if out.len() == 1 {
        return stream.try_write(&out[0]);
    }
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
async fn flush(stream: &Async<Stream>, out: &mut VecDeque<Bytes>) -> io::Result<()> {
    while !out.is_empty() {
        let n = stream.write_with(|s| write_some(s, out)).await?;
        if n == 0 {
            return Err(ErrorKind::WriteZero.into());
        }
        advance(out, n);
    }
    Ok(())
}

thread_local! {
    /// The one read buffer of every connection on this thread: a read borrows it only
    /// while the socket copies in what it has ready, and the bytes are copied out before
    /// it returns, so an idle connection holds no buffer at all (a 16 KiB buffer per
    /// connection was most of the memory of an idle client).
    static READ_SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// Reads what `stream` has ready into the thread's scratch buffer and copies it out;
/// `WouldBlock` when nothing is. An empty `Bytes` is end of stream.
fn read_now(stream: &Stream) -> io::Result<Bytes> {
    READ_SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let n = stream.try_read(&mut scratch)?;
        Ok(Bytes::copy_from_slice(&scratch[..n]))
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// A connected pair over loopback: our end, non-blocking, and the peer's.
    fn connected() -> (Stream, TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let ours = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        ours.set_nonblocking(true).expect("non-blocking");
        let (peer, _) = listener.accept().expect("accept");
        let slot = crate::fds::Capacity::new(1).try_take().expect("slot");
        (Stream::Tcp(ours, slot), peer)
    }

    /// Our end registered as connection `id` in a fresh poller, and the peer's end.
    fn pair(id: ConnId) -> (Sockets, Conn, TcpStream) {
        let sockets = Sockets::new().expect("poller");
        let (ours, peer) = connected();
        let conn = Conn::new(id, ours, &sockets).expect("registered");
        (sockets, conn, peer)
    }

    /// Waits (at most 10 s) until the poller has news, and returns it.
    fn news(sockets: &mut Sockets) -> Vec<Ready> {
        let timeout = async {
            Timer::after(Duration::from_secs(10)).await;
            panic!("the poller never said anything was ready");
        };
        smol::block_on(async { sockets.wait().await.expect("wait") }.or(timeout));
        let mut got = Vec::new();
        sockets.collect(|ready| got.push(ready));
        got
    }

    /// What the poller has now, without waiting.
    fn news_now(sockets: &mut Sockets) -> Vec<Ready> {
        let mut got = Vec::new();
        sockets.collect(|ready| got.push(ready));
        got
    }

    /// Three queued transmits leave in order through one vectored write, and a partial
    /// write keeps the rest queued from the right byte.
    #[test]
    fn queued_transmits_leave_in_order_from_a_partial_write() {
        let (socket, mut peer) = connected();
        let mut out: VecDeque<Bytes> = ["one ", "two ", "three"]
            .iter()
            .map(|p| Bytes::from_static(p.as_bytes()))
            .collect();
        advance(&mut out, 2);
        assert_eq!(write_some(&socket, &out).expect("write"), 11);
        let mut got = [0_u8; 11];
        peer.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"e two three");
    }

    /// A transmit larger than the socket takes: the write stops at the full socket, the
    /// poller reports the connection writable once the peer reads, and the rest follows,
    /// every byte once and in order.
    #[test]
    fn a_full_socket_is_reported_writable_and_the_rest_follows_in_order() {
        const TOTAL: usize = 8 << 20;
        let pattern: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
        let id = ConnId(1);
        let (mut sockets, mut conn, mut peer) = pair(id);
        for chunk in pattern.chunks(64 * 1024) {
            conn.queue(Bytes::copy_from_slice(chunk));
        }
        let mut written = conn.write().expect("write");
        assert!(written < TOTAL, "the socket took all {TOTAL} bytes at once");
        assert!(conn.has_output());
        let reader = std::thread::spawn(move || {
            let mut got = vec![0_u8; TOTAL];
            peer.read_exact(&mut got).map(|()| got)
        });
        while conn.has_output() {
            for ready in news(&mut sockets) {
                assert_eq!(ready.conn, id);
                if ready.writable && conn.writable() {
                    written += conn.write().expect("write");
                }
            }
        }
        assert_eq!(written, TOTAL);
        let got = reader.join().expect("reader").expect("read all");
        assert!(got == pattern, "the bytes arrived out of order");
    }

    /// Nothing to read: the poller reports the connection, by its id, once the peer
    /// writes; the read then has the bytes, and the peer's close is [`Got::Gone`] after
    /// whatever it wrote before.
    #[test]
    fn a_connection_is_reported_by_id_when_its_peer_writes_and_gone_when_it_closes() {
        let id = ConnId(42);
        let (mut sockets, conn, mut peer) = pair(id);
        assert_eq!(conn.read(), Got::Pending);
        assert!(
            news_now(&mut sockets).iter().all(|r| !r.readable),
            "reported readable with nothing to read"
        );

        peer.write_all(b"hello").expect("write");
        let ready = news(&mut sockets);
        assert!(
            ready.iter().any(|r| r.conn == id && r.readable),
            "{ready:?}"
        );
        assert_eq!(conn.read(), Got::Bytes(Bytes::from_static(b"hello")));
        assert_eq!(conn.read(), Got::Pending);

        peer.write_all(b" world").expect("write");
        peer.shutdown(Shutdown::Write).expect("half-close");
        let mut got = Vec::new();
        loop {
            match conn.read() {
                Got::Bytes(bytes) => got.extend_from_slice(&bytes),
                Got::Pending => {
                    let ready = news(&mut sockets);
                    assert!(
                        ready.iter().any(|r| r.conn == id && r.readable),
                        "{ready:?}"
                    );
                }
                Got::Gone => break,
            }
        }
        assert_eq!(got, b" world");
    }

    /// A close writes everything still queued, more than the socket takes at once, before
    /// the goodbye (the end of the stream). The closing socket has left the driver's
    /// poller: the peer's bytes after it are no news of the connection.
    #[test]
    fn a_close_writes_everything_queued_then_ends_the_stream() {
        const TOTAL: usize = 4 << 20;
        let pattern: Vec<u8> = (0..TOTAL).map(|i| (i % 253) as u8).collect();
        let id = ConnId(7);
        let (mut sockets, mut conn, mut peer) = pair(id);
        for chunk in pattern.chunks(64 * 1024) {
            conn.queue(Bytes::copy_from_slice(chunk));
        }
        let first = conn.write().expect("write");
        assert!(first < TOTAL, "the socket took all {TOTAL} bytes at once");
        news_now(&mut sockets);
        let ex = LocalExecutor::new();
        let closing = conn.close(&ex, Duration::from_secs(20));
        peer.write_all(b"late").expect("write");
        std::thread::sleep(Duration::from_millis(50));
        let late = news_now(&mut sockets);
        assert!(
            late.is_empty(),
            "a closing connection is still polled: {late:?}"
        );
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).map(|_| {
                drop(peer);
                got
            })
        });
        smol::block_on(ex.run(closing));
        let got = reader.join().expect("reader").expect("read to the end");
        assert_eq!(got.len(), TOTAL);
        assert!(got == pattern, "the bytes arrived out of order");
    }
}
