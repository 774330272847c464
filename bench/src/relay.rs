//! The null relays: each protocol's wire format with no logic beyond finding the line and
//! the recipient, so each figure of the server has this machine's practical limit beside
//! it, measured in the same run. One loop for all; what differs is each protocol's
//! `line` (ws2017 below; arsc, ims and opcode in `relay_more.rs`).
//!
//! ws2017: it greets, answers `uname <name>` with `+OK uname you are <name>` and announces
//! `nuser <name>` to every other connection, relays `chatm <s> <r> <text>` to `r` in
//! ws2017's delivered form (the line as it came, the text already quoted) and answers
//! `+OK chatm 'message relayed'`, or `+OK chatm 'message stored'` when nobody by that
//! name is connected (it stores nothing), relays `chatr <s> <r>` to `s`, answers `cping`,
//! sends `cping` every 2 s as the server does, and closes on `cquit`. No checks, no
//! limits, no store: one thread, one epoll, one write per connection per loop turn.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::proto::Proto;

const LISTENER: Token = Token(usize::MAX);

/// Readiness events handled per loop turn unless set otherwise; what they queue is
/// written at the turn's end, so large turns coalesce writes at full speed.
pub const EVENTS_PER_TURN: usize = 4096;

/// The greeting, like the server's.
pub const GREETING: &[u8] = b"+OK null relay ws2017 ready\r\n";

pub(crate) struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    pub(crate) name: Option<Box<[u8]>>,
    /// arsc: the room it is in.
    pub(crate) room: Option<Box<[u8]>>,
    dirty: bool,
    pub(crate) open: bool,
}

/// The relay's state: connections by token (a slot index), names to slots.
pub struct Relay {
    pub(crate) proto: Proto,
    poll: Poll,
    listener: TcpListener,
    pub(crate) conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    pub(crate) names: HashMap<Box<[u8]>, usize>,
    /// arsc: the members of each room.
    pub(crate) rooms: HashMap<Box<[u8]>, Vec<usize>>,
    /// opcode: each chat's two members, by chat id, and each name's chats.
    pub(crate) chats: Vec<[Box<[u8]>; 2]>,
    pub(crate) chats_of: HashMap<Box<[u8]>, Vec<usize>>,
    /// The wall clock of this loop turn: `HH:MM` (arsc) and Unix milliseconds (opcode).
    pub(crate) hhmm: [u8; 5],
    pub(crate) unix_ms: u64,
    dirty: Vec<usize>,
    scratch: Vec<u8>,
    events_per_turn: usize,
}

impl Relay {
    /// Binds `addr` for `proto` with a listen backlog of 4096 (the kernel caps it at
    /// `somaxconn`).
    pub fn bind(addr: SocketAddr, proto: Proto) -> io::Result<Relay> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(4096)?;
        socket.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(socket.into());
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Relay {
            proto,
            rooms: HashMap::new(),
            chats: Vec::new(),
            chats_of: HashMap::new(),
            hhmm: *b"00:00",
            unix_ms: 0,
            poll,
            listener,
            conns: Vec::new(),
            free: Vec::new(),
            names: HashMap::new(),
            dirty: Vec::new(),
            scratch: vec![0; 64 * 1024],
            events_per_turn: EVENTS_PER_TURN,
        })
    }

    /// Handles at most `n` readiness events per loop turn before writing what they queued
    /// ([`EVENTS_PER_TURN`] unless set): a small turn answers sooner, a large one
    /// coalesces more writes.
    pub fn set_events_per_turn(&mut self, n: usize) {
        self.events_per_turn = n.max(1);
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` says so (checked every loop turn, at least every 100 ms).
    pub fn run(&mut self, stop: impl Fn() -> bool) -> io::Result<()> {
        let mut events = Events::with_capacity(self.events_per_turn);
        let mut next_ping = Instant::now() + Duration::from_secs(2);
        while !stop() {
            self.clock();
            match self
                .poll
                .poll(&mut events, Some(Duration::from_millis(100)))
            {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept()?,
                    Token(slot) => {
                        if event.is_writable() {
                            self.write_out(slot);
                        }
                        if event.is_readable() || event.is_read_closed() {
                            self.read_in(slot, event.is_read_closed());
                        }
                    }
                }
            }
            if Instant::now() >= next_ping && self.proto == Proto::Ws2017 {
                next_ping += Duration::from_secs(2);
                for slot in 0..self.conns.len() {
                    if self.conns[slot].is_some() {
                        self.queue(slot, b"cping\r\n");
                    }
                }
            }
            self.flush();
        }
        Ok(())
    }

    fn accept(&mut self) -> io::Result<()> {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let slot = self.free.pop().unwrap_or_else(|| {
                        self.conns.push(None);
                        self.conns.len() - 1
                    });
                    self.poll.registry().register(
                        &mut stream,
                        Token(slot),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    self.conns[slot] = Some(Conn {
                        stream,
                        rbuf: Vec::new(),
                        wbuf: Vec::new(),
                        wpos: 0,
                        name: None,
                        room: None,
                        dirty: false,
                        open: true,
                    });
                    if self.proto == Proto::Ws2017 {
                        self.queue(slot, GREETING);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Out of descriptors, say: leave the rest in the backlog for a moment.
                Err(_) => return Ok(()),
            }
        }
    }

    fn clock(&mut self) {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if ms / 60_000 != self.unix_ms / 60_000 {
            let minutes = ms / 60_000;
            let (h, m) = ((minutes / 60) % 24, minutes % 60);
            self.hhmm = [
                b'0' + (h / 10) as u8,
                b'0' + (h % 10) as u8,
                b':',
                b'0' + (m / 10) as u8,
                b'0' + (m % 10) as u8,
            ];
        }
        self.unix_ms = ms;
    }

    pub(crate) fn queue(&mut self, slot: usize, bytes: &[u8]) {
        if let Some(c) = self.conns[slot].as_mut() {
            c.wbuf.extend_from_slice(bytes);
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(slot);
            }
        }
    }

    fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &slot in &dirty {
            if let Some(c) = self.conns[slot].as_mut() {
                c.dirty = false;
            }
            self.write_out(slot);
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    fn write_out(&mut self, slot: usize) {
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        while c.wpos < c.wbuf.len() {
            match c.stream.write(&c.wbuf[c.wpos..]) {
                Ok(0) => break,
                Ok(n) => c.wpos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    c.open = false;
                    break;
                }
            }
        }
        if c.wpos == c.wbuf.len() {
            c.wpos = 0;
            if c.wbuf.capacity() > 4096 {
                // An idle connection keeps no burst's worth of buffer.
                c.wbuf = Vec::new();
            } else {
                c.wbuf.clear();
            }
            if !c.open {
                self.drop_conn(slot);
            }
        }
    }

    fn drop_conn(&mut self, slot: usize) {
        if let Some(mut c) = self.conns[slot].take() {
            let _ = self.poll.registry().deregister(&mut c.stream);
            if let Some(name) = c.name {
                if self.names.get(&name) == Some(&slot) {
                    self.names.remove(&name);
                }
            }
            if let Some(room) = c.room {
                if let Some(members) = self.rooms.get_mut(&room) {
                    members.retain(|&m| m != slot);
                }
            }
            self.free.push(slot);
        }
    }

    /// Reads what `slot` holds; to the end of the stream when its peer `closed`.
    fn read_in(&mut self, slot: usize, closed: bool) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut eof = false;
        while let Some(c) = self.conns[slot].as_mut() {
            match c.stream.read(&mut scratch) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    let mut rbuf = std::mem::take(&mut c.rbuf);
                    if rbuf.is_empty() {
                        let done = self.lines(slot, &scratch[..n]);
                        rbuf.extend_from_slice(&scratch[done..n]);
                    } else {
                        rbuf.extend_from_slice(&scratch[..n]);
                        let done = self.lines(slot, &rbuf);
                        rbuf.drain(..done);
                    }
                    if rbuf.capacity() > 4096 && rbuf.len() < 1024 {
                        rbuf.shrink_to(1024);
                    }
                    if let Some(c) = self.conns[slot].as_mut() {
                        c.rbuf = rbuf;
                    }
                    if n < scratch.len() && !closed {
                        // A short read took all there was; a later arrival raises a new
                        // edge, so the read that would say `WouldBlock` is saved (a close
                        // that came with the last bytes raised its edge already).
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
            self.drop_conn(slot);
        }
    }

    fn lines(&mut self, slot: usize, data: &[u8]) -> usize {
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', data) {
            let mut line = &data[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            start = end + 1;
            self.line(slot, line);
        }
        start
    }

    fn line(&mut self, slot: usize, line: &[u8]) {
        match self.proto {
            Proto::Ws2017 => self.ws2017_line(slot, line),
            Proto::Arsc => self.arsc_line(slot, line),
            Proto::Ims => self.ims_line(slot, line),
            Proto::Opcode => self.opcode_line(slot, line),
        }
    }

    fn ws2017_line(&mut self, slot: usize, line: &[u8]) {
        let (keyword, rest) = split_word(line);
        match keyword {
            b"chatm" | b"chatw" => {
                let (_sender, after) = split_word(rest);
                let (recipient, _text) = split_word(after);
                match self.names.get(recipient).copied() {
                    Some(to) => {
                        let mut out = Vec::with_capacity(line.len() + 2);
                        out.extend_from_slice(line);
                        out.extend_from_slice(b"\r\n");
                        self.queue(to, &out);
                        self.queue(slot, b"+OK chatm 'message relayed'\r\n");
                    }
                    None => self.queue(slot, b"+OK chatm 'message stored'\r\n"),
                }
            }
            b"chatr" => {
                let (sender, _) = split_word(rest);
                if let Some(to) = self.names.get(sender).copied() {
                    let mut out = Vec::with_capacity(line.len() + 2);
                    out.extend_from_slice(line);
                    out.extend_from_slice(b"\r\n");
                    self.queue(to, &out);
                }
            }
            b"uname" => {
                let (name, _) = split_word(rest);
                let name: Box<[u8]> = name.into();
                let mut reply = b"+OK uname you are ".to_vec();
                reply.extend_from_slice(&name);
                reply.extend_from_slice(b"\r\n");
                self.queue(slot, &reply);
                let mut announce = b"nuser ".to_vec();
                announce.extend_from_slice(&name);
                announce.extend_from_slice(b"\r\n");
                for other in 0..self.conns.len() {
                    if other != slot && self.conns[other].is_some() {
                        self.queue(other, &announce);
                    }
                }
                self.names.insert(name.clone(), slot);
                if let Some(c) = self.conns[slot].as_mut() {
                    c.name = Some(name);
                }
            }
            b"cping" => self.queue(slot, b"+OK cpong\r\n"),
            b"cquit" => {
                self.queue(slot, b"+OK cquit 'terminating tasks and disconnecting'\r\n");
                if let Some(c) = self.conns[slot].as_mut() {
                    c.open = false;
                }
            }
            _ => {}
        }
    }
}

/// The first space-separated word of `line` and the rest after the space.
pub(crate) fn split_word(line: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b' ', line) {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[]),
    }
}
