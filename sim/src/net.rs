//! The virtual network: TCP-like connections, ordered within each direction and
//! interleaved across connections, with no sockets. Each direction delivers what is
//! pending in random chunks after random delays, so the server sees partial reads; a
//! connection can be stalled (held), cut (both sides learn late, in-flight bytes are
//! lost), closed with or without flushing, or refused while the server is down.
//!
//! Server-to-client bytes are followed as a count: the oracle decodes each line when the
//! server emits it (the server's order is the truth) and queues what the client will hear
//! at the stream offset where the line ends; the client hears it once the network has
//! delivered up to there.

use std::collections::VecDeque;

use core::net::IpAddr;
use switchboard_proto::{ConnId, Instant};

use crate::client::{Heard, Sent};

/// Asks the processor to bring `value` into the cache ahead of its use. With 10,000
/// clients, the connection, the client and the lines an event touches are never in the
/// cache when the event comes (the first read of a connection was the largest single cost
/// of the simulator's own loop), so the loop fetches what the next event will touch while
/// this one runs. Only a hint: it cannot change a run.
#[inline]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = core::ptr::from_ref(value).cast::<i8>();
        // Every cache line of it, at most 16 (1 KiB).
        for line in (0..core::mem::size_of::<T>().min(1024)).step_by(64) {
            // SAFETY: a prefetch is a hint that never faults and loads nothing into the
            // program's registers; the address is within `value` anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(line)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Who is at the client end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A ws2017 client, by index.
    Client(u32),
    /// The administrator (admin protocol, a local peer).
    Admin,
    /// A client that logs in to an account (ims, arsc, opcode), by its index among
    /// them, and the protocol it speaks.
    Login(u32, switchboard_proto::Protocol),
}

/// Something an emitted line promised that must hold when it leaves for the client.
#[derive(Clone, Debug)]
pub(crate) enum Claim {
    /// `+OK chatm 'message stored'`: message `token` is committed.
    Stored(u64),
    /// An admin `ok` for a durable command: its change is committed.
    Admin(switchboard_proto::AdminCommand),
    /// A line of a listing (a row, or its closing `ok`): every change this boot persisted
    /// before the server emitted it, through this sequence number, is committed.
    Listing(switchboard_proto::Seq),
}

/// The oracle's view of a connection, from the server's side: what the server has told
/// it, in the server's order.
#[derive(Debug, Default)]
pub(crate) struct ConnOracle {
    /// The first line was seen (greeting or refusal).
    pub(crate) greeted: bool,
    /// The name the connection holds on the server: (key, name as chosen).
    pub(crate) name: Option<(String, String)>,
    /// Requests written and not yet answered, oldest first.
    pub(crate) sent: VecDeque<Sent>,
    /// Whispers to oneself passed over by later replies: each is answered by its one
    /// copy, which the server hands out with the deliveries after the rest of the read.
    pub(crate) self_whispers: Vec<u64>,
    /// The server said goodbye (`cquit` answered, kicked, refused): nothing more to answer.
    pub(crate) done: bool,
    /// When the oldest `cping` the server has not yet had an answer to was sent.
    pub(crate) ping_since: Option<switchboard_proto::Instant>,
    /// An emitted line not yet finished (transmits may split lines).
    pub(crate) partial: Vec<u8>,
    /// Data rows of the admin answer being emitted.
    pub(crate) rows: u64,
    /// The server counts it against its connection caps (an admitted ws2017 connection).
    pub(crate) counted: bool,
    /// It arrived past a connection cap: the refusal it must get instead of a greeting.
    pub(crate) over_cap: Option<&'static str>,
    /// Rate-limited requests written on it: `uname`s, and chats (the server's buckets
    /// cannot be empty before that many were made).
    pub(crate) unames: u64,
    pub(crate) chats: u64,
    /// ims: MESSAGE documents echoed after the login and not yet answered (tokens).
    pub(crate) ims_echoed: VecDeque<u64>,
    /// ims: the last token of this connection's own MESSAGEs echoed (later lines with
    /// it, or an older one, are deliveries).
    pub(crate) ims_last_echo: Option<u64>,
    /// arsc, opcode: requests written and not yet answered, each with the token of the
    /// direct message it carries, if any.
    pub(crate) login_asked: VecDeque<Option<u64>>,
}

/// One connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: ConnId,
    pub(crate) owner: Owner,
    /// The client's address; `None` for the local admin socket.
    pub(crate) ip: Option<IpAddr>,
    pub(crate) port: u16,
    /// The server boot that accepted it.
    pub(crate) boot: u32,
    /// The server accepted it.
    pub(crate) accepted: bool,
    /// The server has it (accepted, not closed by either side as far as it knows).
    pub(crate) server_open: bool,
    /// The client still uses it.
    pub(crate) client_open: bool,
    /// Bytes were lost on it (a cut, a crash, a close without flushing).
    pub(crate) lossy: bool,
    /// The network cut it: nothing written on it arrives any more.
    pub(crate) cut: bool,

    /// Client-to-server bytes not yet delivered.
    pub(crate) up: Vec<u8>,
    pub(crate) up_scheduled: bool,
    /// Client-to-server bytes written and delivered so far (stream offsets).
    pub(crate) up_written: u64,
    pub(crate) up_delivered: u64,
    /// Where each `cpong` the client wrote ends in its stream.
    pub(crate) pongs: VecDeque<u64>,
    /// The client closed its side after `up`.
    pub(crate) up_fin: bool,

    /// Server-to-client bytes: emitted by the server, released by the commit gate,
    /// delivered to the client.
    pub(crate) emitted: u64,
    pub(crate) released: u64,
    pub(crate) delivered: u64,
    /// Bytes reported to the server as written: what fits the socket buffer ahead of
    /// the client's reading.
    pub(crate) reported: u64,
    /// Waiting in the list of connections with bytes to report at the end of the step.
    pub(crate) report_due: bool,
    pub(crate) down_scheduled: bool,
    /// The server's close was released: `Some(flush)`.
    pub(crate) down_close: Option<bool>,
    /// What the client will hear, by the stream offset where each line ends.
    pub(crate) heard: VecDeque<(u64, Heard)>,
    /// Promises to check when the bytes up to the offset are released.
    pub(crate) claims: VecDeque<(u64, Claim)>,
    /// The client reads (not a slow reader).
    pub(crate) reading: bool,
    /// Deliveries wait until then (a stall).
    /// When the server last received bytes on it (ims: its ALIVE deadline runs from
    /// there at the latest).
    pub(crate) last_up: Instant,
    pub(crate) hold_until: Instant,

    pub(crate) o: ConnOracle,
    /// Position in the established list, if there.
    pub(crate) est_pos: Option<usize>,
}

impl Conn {
    pub(crate) fn new(id: ConnId, owner: Owner, ip: Option<IpAddr>) -> Conn {
        Conn {
            id,
            owner,
            ip,
            port: 1024 + (id.0 % 60_000) as u16,
            boot: 0,
            accepted: false,
            server_open: false,
            client_open: true,
            lossy: false,
            cut: false,
            up: Vec::new(),
            up_scheduled: false,
            up_written: 0,
            up_delivered: 0,
            pongs: VecDeque::new(),
            up_fin: false,
            emitted: 0,
            released: 0,
            delivered: 0,
            reported: 0,
            report_due: false,
            down_scheduled: false,
            down_close: None,
            heard: VecDeque::new(),
            claims: VecDeque::new(),
            reading: true,
            hold_until: Instant::ZERO,
            last_up: Instant::ZERO,
            o: ConnOracle::default(),
            est_pos: None,
        }
    }

    /// Loses what the client wrote and the network has not delivered (a cut, a reset).
    pub(crate) fn drop_up(&mut self) {
        self.up.clear();
        self.up_fin = false;
        self.up_delivered = self.up_written;
        self.pongs.clear();
    }

    /// Bytes the socket has taken that the server was not told of: everything released,
    /// up to `sockbuf` bytes ahead of what the client read.
    pub(crate) fn unreported(&self, sockbuf: u64) -> u64 {
        self.released
            .min(self.delivered + sockbuf)
            .saturating_sub(self.reported)
    }

    /// Drops everything in flight towards the client (a cut or reset).
    pub(crate) fn drop_down(&mut self) {
        if self.delivered < self.released || !self.heard.is_empty() {
            self.lossy = true;
        }
        self.delivered = self.released;
        self.heard.clear();
    }
}

/// Every connection of a run, by id (ids are never reused), and the established ones
/// for faults to pick from.
#[derive(Default)]
pub(crate) struct Net {
    conns: Vec<Option<Conn>>,
    established: Vec<ConnId>,
}

impl Net {
    /// A new connection; its id is the next one.
    pub(crate) fn open(&mut self, owner: Owner, ip: Option<IpAddr>) -> ConnId {
        let id = ConnId(self.conns.len() as u64 + 1);
        self.conns.push(Some(Conn::new(id, owner, ip)));
        id
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get((id.0 as usize).wrapping_sub(1))?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns
            .get_mut((id.0 as usize).wrapping_sub(1))?
            .as_mut()
    }

    /// Asks the processor to bring connection `id` into the cache ahead of its use (see
    /// [`prefetch`]).
    #[inline]
    pub(crate) fn prefetch(&self, id: ConnId) {
        if let Some(slot) = self.conns.get((id.0 as usize).wrapping_sub(1)) {
            prefetch(slot);
        }
    }

    /// Forgets a connection that neither side uses any more.
    pub(crate) fn retire(&mut self, id: ConnId) {
        let done = self
            .get(id)
            .is_some_and(|c| !c.client_open && !c.server_open && c.released == c.delivered);
        if done {
            self.unestablish(id);
            self.conns[id.0 as usize - 1] = None;
        }
    }

    /// Adds to the list faults pick from.
    pub(crate) fn establish(&mut self, id: ConnId) {
        let pos = self.established.len();
        if let Some(c) = self.get_mut(id) {
            if c.est_pos.is_none() {
                c.est_pos = Some(pos);
                self.established.push(id);
            }
        }
    }

    /// Removes from the list faults pick from.
    pub(crate) fn unestablish(&mut self, id: ConnId) {
        let Some(pos) = self.get_mut(id).and_then(|c| c.est_pos.take()) else {
            return;
        };
        self.established.swap_remove(pos);
        if let Some(&moved) = self.established.get(pos) {
            if let Some(c) = self.get_mut(moved) {
                c.est_pos = Some(pos);
            }
        }
    }

    /// The established connections, in a deterministic order.
    pub(crate) fn established(&self) -> &[ConnId] {
        &self.established
    }

    /// Every connection still remembered, by id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.conns.iter().flatten()
    }
}
