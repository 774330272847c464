//! Virtual clients: one model client per protocol, each with its own codec, a randomised
//! but protocol-valid behaviour and a small rate of deliberate misbehaviour.
//!
//! A client never touches the network or the server: it reacts to what it hears and
//! returns [`Act`]s for the simulator to carry out, so the same client code runs under any
//! schedule the seed picks.

pub(crate) mod admin;
pub(crate) mod arsc;
pub mod arsc_loop;
pub(crate) mod ims;
pub mod jabberd;
pub(crate) mod opcode;
pub mod opcode_loop;
pub(crate) mod ws2017;
pub(crate) mod ws2017_codec;

use core::net::IpAddr;

use switchboard_proto::{AdminCommand, ConnId, Instant, Protocol};

use crate::client::ims::{Do, Seen};

/// What a client asks the simulator to do.
#[derive(Debug)]
pub(crate) enum Act {
    /// Open a new connection; the simulator tells the client its id.
    Connect,
    /// Write these bytes on `conn`. `sent` says what they are, for the oracle that
    /// matches the server's replies to requests.
    Send {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        bytes: Vec<u8>,
        /// What they are.
        sent: Sent,
    },
    /// Close our side of `conn`: after the bytes already written (a FIN), or at once,
    /// losing them (`abort`, a reset).
    Close {
        /// The connection.
        conn: ConnId,
        /// A reset instead of a FIN.
        abort: bool,
    },
    /// Stop or resume reading `conn` (a slow reader).
    Reading {
        /// The connection.
        conn: ConnId,
        /// Reading or not.
        on: bool,
    },
    /// Call the client's `on_wake` again in this many milliseconds (replaces the last).
    Wake(u64),
}

/// A request as written, for the oracle's model of what the server must answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// `uname <name>`.
    Uname(String),
    /// `chatm`/`chatw` of message `token`.
    Chat {
        /// The message's token.
        token: u64,
        /// `chatw`.
        whisper: bool,
        /// The sender named in the request.
        from: String,
        /// The recipient named in the request.
        to: String,
    },
    /// `chatr`: answered only by an error.
    Chatr,
    /// `cgetu`.
    Cgetu,
    /// `cgetg`.
    Cgetg,
    /// `cping`.
    Cping,
    /// `cpong`: never answered.
    Cpong,
    /// `cquit`.
    Cquit,
    /// A line the server must refuse with an error that names no command: an unknown
    /// keyword, a malformed request, bytes that are not UTF-8, an oversized line.
    Garbage,
    /// A blank line: ignored.
    Blank,
    /// The start of a line, never finished (the connection closes).
    Partial,
    /// An admin request.
    Admin(AdminCommand),
    /// A request of a login client (arsc, opcode) that gets one answer, in order, and
    /// the direct message it carries, if any: (token, sender, recipient as written).
    Login {
        /// The message.
        message: Option<(u64, String, String)>,
        /// Its token (the oracle matches the answer to it).
        token: Option<u64>,
    },
}

impl Sent {
    /// Whether the server may answer nothing.
    pub(crate) fn may_be_silent(&self) -> bool {
        matches!(
            self,
            Sent::Chatr | Sent::Cpong | Sent::Blank | Sent::Partial
        )
    }
}

/// What a client hears: the parts of a server line its behaviour needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Heard {
    /// The greeting.
    Greeting,
    /// Refused at connect: the address is banned, or the server holds its most
    /// connections.
    Banned,
    /// The first name is set.
    NameSet(String),
    /// Renamed.
    Renamed(String),
    /// The name is taken; try this one.
    NameTaken(String),
    /// The name was refused for another reason.
    NameRefused,
    /// A `uname` was refused past a rate limit: try again later, not at once.
    SlowDown,
    /// A ping to answer.
    Ping,
    /// A direct message (or the echo of one's own whisper).
    Chat {
        /// `chatw`.
        whisper: bool,
        /// The sender.
        from: String,
        /// The recipient.
        to: String,
        /// The message's token.
        token: u64,
    },
    /// The session ends (`cquit` answered, or an administrator's kick).
    Goodbye,
    /// An admin answer line (`ok`/`err`); data lines are not handed to the client.
    AdminAnswer {
        /// `ok` rather than `err`.
        ok: bool,
    },
    /// A line (with its `\n`) of a protocol whose client reads the bytes itself (ims).
    Line(Vec<u8>),
    /// Anything else (notices, other answers).
    Other,
}

/// What every client may know of the world: who it could talk to.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    /// Each ws2017 client's name as last confirmed to it, if it has one.
    pub(crate) names: Vec<Option<String>>,
    /// Names the administrator creates accounts under.
    pub(crate) accounts: Vec<String>,
    /// The accounts clients log in to over ims, arsc and opcode (the administrator
    /// leaves them alone).
    pub(crate) login_accounts: Vec<String>,
    /// The addresses clients connect from.
    pub(crate) ips: Vec<IpAddr>,
    /// The liveness phase: faults are over, everyone behaves and comes back.
    pub(crate) healed: bool,
}

/// A client's connection, as the client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// No connection; waiting to come back.
    Offline,
    /// A connection is being opened.
    Connecting(ConnId),
    /// Connected.
    Open(ConnId),
}

impl Link {
    /// The connection, if any.
    pub(crate) fn conn(self) -> Option<ConnId> {
        match self {
            Link::Offline => None,
            Link::Connecting(c) | Link::Open(c) => Some(c),
        }
    }
}

/// A client that logs in to an account of its own (ims, arsc, opcode): the world drives
/// each the same way (turns, one connection at a time, every line read by the client
/// itself), and the ledger numbers it after the ws2017 clients.
pub(crate) trait LoginClient: core::fmt::Debug {
    /// The protocol it speaks.
    fn protocol(&self) -> Protocol;
    /// Its account.
    fn name(&self) -> &str;
    /// The address it connects from.
    fn ip(&self) -> IpAddr;
    /// Its connection, if any.
    fn conn(&self) -> Option<ConnId>;
    /// The generation of its scheduled turn (bumped at every schedule).
    fn gen_mut(&mut self) -> &mut u32;
    /// When it acts next.
    fn next_at_mut(&mut self) -> &mut Instant;
    /// Silent on purpose (ims: to be dropped by the ALIVE timeout).
    fn silent(&self) -> bool {
        false
    }
    /// The liveness phase: behave.
    fn heal(&mut self);
    /// Successful logins.
    fn logins(&self) -> u32;
    /// Its turn: what it does now.
    fn act(&mut self, now: Instant, dir: &Directory) -> Vec<Do>;
    /// Bytes from the server, checked against what it asked.
    fn on_bytes(&mut self, bytes: &[u8]) -> Result<Vec<Seen>, String>;
    /// The connection it asked for is open.
    fn connected(&mut self, conn: ConnId, now: Instant);
    /// The connection is gone.
    fn lost(&mut self, now: Instant);
    /// Logged in on a connection.
    fn online(&self) -> bool;
    /// Owed no answer.
    fn settled(&self) -> bool;
    /// Room posts read, in order, with the boot they were read in (arsc), for the
    /// order check across clients.
    fn room_posts(&self) -> &[u64] {
        &[]
    }
    /// What the client still finds wrong at the end (a post answered `ok` it never read).
    fn end_problem(&self) -> Option<String> {
        None
    }
}
