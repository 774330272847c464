//! One connection (TCP, or the admin socket's Unix stream): a reader task, a writer task,
//! and how the driver ends them.

use std::cell::RefCell;
use std::io::{self, ErrorKind};
use std::net::{Shutdown, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use smol::channel::{self, Receiver, Sender};
use smol::future::{self, FutureExt};
use smol::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use smol::{Async, LocalExecutor, Task, Timer};
use switchboard_proto::ConnId;
use tracing::debug;

use crate::driver::{Event, Report};
use crate::fds::Slot;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Queued transmits are joined into one write up to this many bytes.
const WRITE_BATCH: usize = 64 * 1024;

/// An accepted stream, before its tasks start.
pub(crate) enum Stream {
    /// A protocol listener's connection, with its share of the descriptors.
    Tcp(Async<TcpStream>, Slot),
    /// A connection to the admin socket.
    #[cfg(unix)]
    Unix(Async<UnixStream>),
}

/// What the driver needs of a socket besides reading and writing it.
pub(crate) trait Socket: 'static {
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
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
}

impl AsyncRead for &Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for &Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &self.stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &self.stream).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &self.stream).poll_close(cx)
    }
}

#[cfg(unix)]
impl Socket for Async<UnixStream> {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.get_ref().shutdown(how)
    }
}

/// The driver's handle on a live connection.
pub(crate) struct Conn {
    stream: Arc<dyn Socket>,
    /// Transmits for the writer task, in order. Unbounded on purpose: the core counts what
    /// it sent and has not seen written, and closes the connection past its limit, so the
    /// driver never waits on a slow peer.
    outbound: Sender<Bytes>,
    reader: Task<()>,
    writer: Task<()>,
}

impl Conn {
    /// Starts the reader task of `stream`, which sends to `events`, and its writer task,
    /// which sends to `reports`.
    pub(crate) fn start(
        ex: &LocalExecutor<'_>,
        conn: ConnId,
        stream: Stream,
        events: &Sender<Event>,
        reports: &Sender<Report>,
    ) -> Conn {
        match stream {
            Stream::Tcp(stream, slot) => {
                // Small lines should leave at once; a failure here only costs latency.
                if let Err(e) = stream.get_ref().set_nodelay(true) {
                    debug!(%conn, error = %e, "cannot set TCP_NODELAY");
                }
                let counted = Counted {
                    stream,
                    _slot: slot,
                };
                Conn::start_on(ex, conn, Arc::new(counted), events, reports)
            }
            #[cfg(unix)]
            Stream::Unix(stream) => Conn::start_on(ex, conn, Arc::new(stream), events, reports),
        }
    }

    fn start_on<S>(
        ex: &LocalExecutor<'_>,
        conn: ConnId,
        stream: Arc<S>,
        events: &Sender<Event>,
        reports: &Sender<Report>,
    ) -> Conn
    where
        S: Socket,
        for<'s> &'s S: AsyncRead + AsyncWrite + Unpin,
    {
        let (outbound, queue) = channel::unbounded();
        let reader = ex.spawn(read_loop(conn, stream.clone(), events.clone()));
        let writer = ex.spawn(write_loop(conn, stream.clone(), queue, reports.clone()));
        Conn {
            stream,
            outbound,
            reader,
            writer,
        }
    }

    /// Queues bytes for the writer task.
    pub(crate) fn send(&self, bytes: Bytes) {
        // Fails only once the writer is gone, after which the bytes have nowhere to go.
        let _ = self.outbound.try_send(bytes);
    }

    /// Stops reading, lets the writer write everything queued, then shuts the socket down
    /// and waits for the peer to close, all within `linger`. Returns the task doing that;
    /// the socket is closed when it ends.
    pub(crate) fn close(self, ex: &LocalExecutor<'_>, linger: Duration) -> Task<()> {
        let Conn {
            stream: _,
            outbound,
            reader,
            writer,
        } = self;
        drop(reader);
        // The writer drains what is queued, then sees the end of the queue.
        outbound.close();
        ex.spawn(writer.or(async move {
            Timer::after(linger).await;
        }))
    }

    /// Closes at once, dropping whatever is queued or unwritten.
    pub(crate) fn abort(self) {
        // Shut down explicitly: a cancelled task may hold its handle on the socket a moment
        // longer, and the peer should see the close now.
        let _ = self.stream.shutdown(Shutdown::Both);
    }
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
async fn read_some<S>(stream: &S) -> io::Result<Bytes>
where
    for<'s> &'s S: AsyncRead + Unpin,
{
    future::poll_fn(|cx| {
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            match Pin::new(&mut &*stream).poll_read(cx, &mut scratch) {
                Poll::Ready(Ok(n)) => Poll::Ready(Ok(Bytes::copy_from_slice(&scratch[..n]))),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    })
    .await
}

async fn read_loop<S>(conn: ConnId, stream: Arc<S>, events: Sender<Event>)
where
    for<'s> &'s S: AsyncRead + Unpin,
{
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

async fn write_loop<S>(
    conn: ConnId,
    stream: Arc<S>,
    queue: Receiver<Bytes>,
    reports: Sender<Report>,
) where
    S: Socket,
    for<'s> &'s S: AsyncRead + AsyncWrite + Unpin,
{
    let mut batch = BytesMut::new();
    while let Ok(first) = queue.recv().await {
        let chunk = if queue.is_empty() {
            first
        } else {
            batch.extend_from_slice(&first);
            while batch.len() < WRITE_BATCH {
                let Ok(more) = queue.try_recv() else { break };
                batch.extend_from_slice(&more);
            }
            batch.split().freeze()
        };
        if let Err(e) = write_reporting(conn, &stream, &chunk, &reports).await {
            debug!(%conn, error = %e, "write failed");
            let _ = reports.try_send(Report::Failed { conn });
            return;
        }
    }
    // The driver closed the queue and everything in it is written: say goodbye, then wait
    // for the peer's close so that unread input does not turn our close into a reset that
    // could discard the goodbye. The driver bounds this wait.
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

/// Writes all of `bytes`, reporting each partial write to the driver.
async fn write_reporting<S>(
    conn: ConnId,
    stream: &S,
    mut bytes: &[u8],
    reports: &Sender<Report>,
) -> io::Result<()>
where
    for<'s> &'s S: AsyncWrite + Unpin,
{
    while !bytes.is_empty() {
        let n = match (&mut &*stream).write(bytes).await {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        bytes = &bytes[n..];
        // Unbounded, so a report never waits; it fails only once the driver is gone.
        let _ = reports.try_send(Report::Written { conn, n });
    }
    Ok(())
}
