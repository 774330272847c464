//! The generator's sockets: many non-blocking client connections in one thread over mio,
//! each with a read buffer split into lines and a write buffer flushed once per loop turn.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Socket, Type};

/// What the generator does with each line a connection receives.
pub trait Handler {
    /// One line from connection `conn`, without its line ending.
    fn line(&mut self, net: &mut Net, conn: usize, line: &[u8]);
    /// Connection `conn` was closed by the peer or failed.
    fn closed(&mut self, _net: &mut Net, _conn: usize) {}
}

/// One client connection.
struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet split into lines (a partial line at most, between turns).
    rbuf: Vec<u8>,
    /// Bytes to send; `wpos` of them are sent.
    wbuf: Vec<u8>,
    wpos: usize,
    /// Whether the connect has completed (the first readiness event says so).
    connected: bool,
    closed: bool,
    /// Whether it is in `dirty` already.
    dirty: bool,
}

/// Every connection of the generator and its poller.
pub struct Net {
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    /// Connections with bytes appended this turn, flushed at its end.
    dirty: Vec<usize>,
    target: SocketAddr,
    /// Source addresses connections are spread over, round-robin.
    sources: Vec<IpAddr>,
    scratch: Vec<u8>,
    /// Connections closed or failed so far.
    pub closed: usize,
    /// Writes that moved bytes so far (a paced run makes one per message).
    pub writes: u64,
}

impl Net {
    /// A generator aimed at `target`, spreading its connections over `sources` source
    /// addresses 127.0.0.1, 127.0.0.2, ... (loopback targets only; one source otherwise).
    pub fn new(target: SocketAddr, sources: u8) -> io::Result<Net> {
        let sources = if target.ip().is_loopback() && target.is_ipv4() {
            (1..=sources.max(1))
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .collect()
        } else {
            vec![]
        };
        Ok(Net {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            conns: Vec::new(),
            dirty: Vec::new(),
            target,
            sources,
            scratch: vec![0; 256 * 1024],
            closed: 0,
            writes: 0,
        })
    }

    /// How many connections were opened.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection was opened.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Starts a non-blocking connect; the new connection's index is returned at once.
    pub fn connect(&mut self) -> io::Result<usize> {
        let idx = self.conns.len();
        let socket = Socket::new(Domain::for_address(self.target), Type::STREAM, None)?;
        if !self.sources.is_empty() {
            let source = self.sources[idx % self.sources.len()];
            socket.bind(&SocketAddr::new(source, 0).into())?;
        }
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        match socket.connect(&self.target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let mut stream = TcpStream::from_std(socket.into());
        self.poll.registry().register(
            &mut stream,
            Token(idx),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.conns.push(Conn {
            stream,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            connected: false,
            closed: false,
            dirty: false,
        });
        Ok(idx)
    }

    /// Queues `bytes` on `conn`; they are written at the end of this turn (or at once
    /// from outside a turn by [`flush_all`](Self::flush_all)).
    pub fn send(&mut self, conn: usize, bytes: &[u8]) {
        let c = &mut self.conns[conn];
        if c.closed {
            return;
        }
        c.wbuf.extend_from_slice(bytes);
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(conn);
        }
    }

    /// Writes `bytes` on `conn` now, behind whatever it still has queued (what the socket
    /// does not take waits for the next flush or writable event): a paced message leaves
    /// right after its timestamp is taken, not at the end of the loop turn.
    pub fn send_now(&mut self, conn: usize, bytes: &[u8]) {
        let c = &mut self.conns[conn];
        if c.closed {
            return;
        }
        c.wbuf.extend_from_slice(bytes);
        self.write_out(conn);
        let c = &mut self.conns[conn];
        if c.wpos < c.wbuf.len() && !c.dirty {
            c.dirty = true;
            self.dirty.push(conn);
        }
    }

    /// Hands out at most `n` readiness events per [`turn`](Self::turn) (4096 unless
    /// set), so a loop that must also keep a schedule comes round between batches.
    pub fn set_events_per_turn(&mut self, n: usize) {
        self.events = Events::with_capacity(n.max(1));
    }

    /// Bytes queued on `conn` and not yet written.
    pub fn pending(&self, conn: usize) -> usize {
        let c = &self.conns[conn];
        c.wbuf.len() - c.wpos
    }

    /// Whether `conn` was closed.
    pub fn is_closed(&self, conn: usize) -> bool {
        self.conns[conn].closed
    }

    /// Closes `conn` from this side.
    pub fn close(&mut self, conn: usize) {
        let c = &mut self.conns[conn];
        if !c.closed {
            c.closed = true;
            let _ = self.poll.registry().deregister(&mut c.stream);
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Writes what every connection has queued, as far as the sockets take it.
    pub fn flush_all(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &conn in &dirty {
            self.conns[conn].dirty = false;
            self.write_out(conn);
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    fn write_out(&mut self, conn: usize) {
        let c = &mut self.conns[conn];
        if !c.connected || c.closed {
            return;
        }
        while c.wpos < c.wbuf.len() {
            match c.stream.write(&c.wbuf[c.wpos..]) {
                Ok(0) => break,
                Ok(n) => {
                    c.wpos += n;
                    self.writes += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if c.wpos == c.wbuf.len() {
            c.wbuf.clear();
            c.wpos = 0;
        } else if c.wpos > 64 * 1024 {
            c.wbuf.drain(..c.wpos);
            c.wpos = 0;
        }
    }

    /// One loop turn: waits up to `timeout` for readiness, reads every ready connection
    /// (at most the events set by [`set_events_per_turn`](Self::set_events_per_turn))
    /// and hands each complete line to `handler`, then flushes what was queued. Returns
    /// how many readiness events it handled.
    pub fn turn<H: Handler>(&mut self, timeout: Duration, handler: &mut H) -> io::Result<usize> {
        self.flush_all();
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let mut handled = 0;
        match self.poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                self.events = events;
                return Err(e);
            }
        }
        for event in events.iter() {
            handled += 1;
            let conn = event.token().0;
            if self.conns[conn].closed {
                continue;
            }
            if !self.conns[conn].connected {
                let c = &mut self.conns[conn];
                if matches!(c.stream.take_error(), Ok(Some(_)) | Err(_))
                    || c.stream.peer_addr().is_err()
                {
                    if event.is_error() || event.is_write_closed() || event.is_read_closed() {
                        self.fail(conn, handler);
                    }
                    continue;
                }
                c.connected = true;
            }
            if event.is_writable() {
                self.write_out(conn);
            }
            if event.is_readable() || event.is_read_closed() {
                self.read_in(conn, handler);
            }
        }
        self.events = events;
        self.flush_all();
        Ok(handled)
    }

    fn fail<H: Handler>(&mut self, conn: usize, handler: &mut H) {
        self.close(conn);
        self.closed += 1;
        handler.closed(self, conn);
    }

    fn read_in<H: Handler>(&mut self, conn: usize, handler: &mut H) {
        let mut eof = false;
        let mut scratch = std::mem::take(&mut self.scratch);
        loop {
            match self.conns[conn].stream.read(&mut scratch) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    let mut rbuf = std::mem::take(&mut self.conns[conn].rbuf);
                    if rbuf.is_empty() {
                        let done = self.lines(conn, &scratch[..n], handler);
                        rbuf.extend_from_slice(&scratch[done..n]);
                    } else {
                        rbuf.extend_from_slice(&scratch[..n]);
                        let done = self.lines(conn, &rbuf, handler);
                        rbuf.drain(..done);
                    }
                    self.conns[conn].rbuf = rbuf;
                    if n < scratch.len() {
                        // A short read took all the socket had; anything arriving later
                        // raises a new edge (the edge-triggered readiness fires on every
                        // arrival), so the read that would say `WouldBlock` is saved.
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        self.scratch = scratch;
        if eof {
            self.fail(conn, handler);
        }
    }

    /// Hands each complete line of `data` to `handler`; returns the bytes consumed.
    fn lines<H: Handler>(&mut self, conn: usize, data: &[u8], handler: &mut H) -> usize {
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', data) {
            let mut line = &data[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            start = end + 1;
            if !line.is_empty() {
                handler.line(self, conn, line);
            }
        }
        start
    }
}
