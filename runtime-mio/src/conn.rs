//! One connection: its socket, its queue of transmits, and where it is in its life.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::Shutdown;
use std::time::Instant;

use bytes::{Buf, Bytes};
use mio::net::TcpStream;
#[cfg(unix)]
use mio::net::UnixStream;
use switchboard_store::fds::Slot;

/// Queued transmits handed to one `write_vectored` at most.
const MAX_SLICES: usize = 64;

/// A connection's socket.
pub(crate) enum Sock {
    /// A client (or dialled) TCP stream, holding its share of the descriptors.
    Tcp(TcpStream, #[allow(dead_code)] Slot),
    /// An admin connection.
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Sock {
    pub(crate) fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Sock::Tcp(s, _) => s,
            #[cfg(unix)]
            Sock::Unix(s) => s,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s, _) => s.read(buf),
            #[cfg(unix)]
            Sock::Unix(s) => s.read(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s, _) => s.write_vectored(bufs),
            #[cfg(unix)]
            Sock::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s, _) => s.write(buf),
            #[cfg(unix)]
            Sock::Unix(s) => s.write(buf),
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Sock::Tcp(s, _) => s.shutdown(how),
            #[cfg(unix)]
            Sock::Unix(s) => s.shutdown(how),
        }
    }
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// A dial the core asked for, not established yet; given up at the instant.
    Connecting(Instant),
    /// Known to the core: reads go to it, writes are reported to it.
    Open,
    /// Closed for the core: writing what is queued, then saying goodbye, by the instant.
    Flushing(Instant),
    /// Goodbye said (write side shut down): waiting for the peer's close, by the instant.
    Draining(Instant),
}

/// How a read went.
pub(crate) enum Got {
    /// Bytes are in the buffer.
    Data(usize),
    /// Nothing more for now.
    WouldBlock,
    /// The peer closed, or reading failed.
    Closed,
}

/// A live connection.
pub(crate) struct Conn {
    pub(crate) sock: Sock,
    pub(crate) phase: Phase,
    /// Transmits not yet written, the first possibly in part. Bounded by the core, which
    /// closes a connection whose unwritten bytes pass `outbound_limit_bytes`.
    out: VecDeque<Bytes>,
    /// Whether the socket took all it was offered last time; when not, writing waits for a
    /// writable event.
    pub(crate) writable: bool,
    /// Whether it is in the loop's list of connections to write this turn.
    pub(crate) dirty: bool,
    /// The peer's close (or an error) was reported: reads go on to the end of the stream,
    /// short or not, since no further edge will come for it.
    pub(crate) hung_up: bool,
}

impl Conn {
    pub(crate) fn new(sock: Sock, phase: Phase) -> Conn {
        Conn {
            sock,
            phase,
            out: VecDeque::new(),
            writable: true,
            dirty: false,
            hung_up: false,
        }
    }

    /// Whether the core still knows this connection.
    pub(crate) fn known(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Connecting(_))
    }

    /// Queues bytes; they leave at the next [`write`](Self::write).
    pub(crate) fn queue(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            if self.out.capacity() == 0 {
                self.out = switchboard_store::memory::spare_queue();
            }
            self.out.push_back(bytes);
        }
    }

    /// Whether transmits wait to be written.
    pub(crate) fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Reads once into `buf`.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Got {
        loop {
            return match self.sock.read(buf) {
                Ok(0) => Got::Closed,
                Ok(n) => Got::Data(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => Got::WouldBlock,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => Got::Closed,
            };
        }
    }

    /// Writes what is queued until the socket is full or the queue empty: one `write` for
    /// one transmit, one `write_vectored` for several. Returns the bytes the socket took.
    ///
    /// # Errors
    /// The socket failed: the peer is gone.
    pub(crate) fn write(&mut self) -> io::Result<usize> {
        let mut total = 0;
        while !self.out.is_empty() && self.writable {
            let result = if self.out.len() == 1 {
                self.sock.write(&self.out[0])
            } else {
                // On the stack: a write per connection per turn allocates nothing.
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut n = 0;
                for (slice, bytes) in slices.iter_mut().zip(&self.out) {
                    *slice = IoSlice::new(bytes);
                    n += 1;
                }
                self.sock.write_vectored(&slices[..n])
            };
            match result {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    total += n;
                    self.advance(n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // An idle connection keeps no queue; the emptied one serves the next connection
        // written to (`memory::return_queue`).
        switchboard_store::memory::return_queue(&mut self.out);
        Ok(total)
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.out.front_mut() else {
                return;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.out.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three queued transmits leave in order through one vectored write, and a partial
    /// write keeps the rest queued from the right byte.
    #[test]
    fn queued_transmits_leave_in_order() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        client.set_nonblocking(true).expect("non-blocking");
        let slot = switchboard_store::fds::Capacity::new(1)
            .try_take()
            .expect("slot");
        let mut conn = Conn::new(Sock::Tcp(TcpStream::from_std(client), slot), Phase::Open);
        for part in ["one ", "two ", "three"] {
            conn.queue(Bytes::from_static(part.as_bytes()));
        }
        conn.advance(2);
        assert_eq!(conn.write().expect("write"), 11);
        assert!(!conn.has_output());
        let mut got = [0_u8; 11];
        server.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"e two three");
    }
}
