//! The transcript of a run, kept as the last few hundred records and formatted only when
//! a failure prints it, and the rolling hash of every input and output that the
//! determinism check compares.

use core::fmt::Write as _;
use std::collections::VecDeque;

use bytes::Bytes;
use switchboard_proto::{ConnId, Input, Instant, Output};

/// One thing that happened.
#[derive(Clone, Debug)]
pub(crate) enum Record {
    /// A step began with this event.
    Step(&'static str, u64),
    /// An input fed to the server.
    In(Input),
    /// The server's deadline fired.
    Timeout,
    /// An output of the server, as emitted (before the commit gate).
    Out(Output),
    /// Bytes the client heard (delivered).
    Delivered(ConnId, usize),
    /// Bytes a client wrote.
    Wrote(ConnId, Bytes),
    /// A fault or phase change.
    Note(String),
}

/// A ring of the last records. Off in a normal run: a failure replays its seed with the
/// trace on (the run is deterministic, so the replay is the same run) and prints that.
pub(crate) struct Trace {
    ring: VecDeque<(u64, Instant, Record)>,
    cap: usize,
}

impl Trace {
    /// A trace keeping the last `cap` records; 0 keeps none.
    pub(crate) fn new(cap: usize) -> Trace {
        Trace {
            ring: VecDeque::with_capacity(cap),
            cap,
        }
    }

    /// Whether records are kept.
    pub(crate) fn on(&self) -> bool {
        self.cap > 0
    }

    pub(crate) fn push(&mut self, step: u64, at: Instant, record: Record) {
        if self.cap == 0 {
            return;
        }
        if self.ring.len() == self.cap {
            self.ring.pop_front();
        }
        self.ring.push_back((step, at, record));
    }

    /// The records as text, oldest first.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.ring
            .iter()
            .map(|(step, at, r)| format!("{step:>8} {at:>10} {}", describe(r)))
            .collect()
    }
}

fn text(bytes: &[u8]) -> String {
    let mut s = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\r' => s.push_str("\\r"),
                '\n' => s.push_str("\\n"),
                c if c.is_control() => {
                    let _ = write!(s, "\\x{:02x}", c as u32);
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    if s.len() > 240 {
        let mut cut = 240;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

fn describe(r: &Record) -> String {
    match r {
        Record::Step(what, arg) => format!("== {what} {arg}"),
        Record::Timeout => "   server timeout".to_owned(),
        Record::In(input) => match input {
            Input::Accepted {
                conn,
                protocol,
                peer,
            } => format!("-> {conn} accepted {protocol} from {peer:?}"),
            Input::Received { conn, bytes } => format!("-> {conn} c: {}", text(bytes)),
            Input::Written { conn, n } => format!("-> {conn} written {n}"),
            Input::PeerClosed { conn } => format!("-> {conn} peer closed"),
            Input::EffectDone { id, result } => format!("-> effect {} done: {result:?}", id.0),
            Input::Committed { through } => format!("-> committed through #{}", through.0),
            Input::CommitFailed { error } => format!("-> commit failed: {error}"),
            Input::Connected { conn } => format!("-> {conn} connected"),
            Input::ConnectFailed { conn, error } => format!("-> {conn} connect failed: {error}"),
            Input::Shutdown => "-> shutdown".to_owned(),
        },
        Record::Out(output) => match output {
            Output::Transmit { conn, bytes, after } => {
                let held = after.map_or(String::new(), |s| format!(" (after #{})", s.0));
                format!("<- {conn} s: {}{held}", text(bytes))
            }
            Output::Close { conn, reason } => format!("<- {conn} close ({})", reason.as_str()),
            Output::Persist { seq, change } => format!("<- persist #{}: {change:?}", seq.0),
            Output::Effect { id, effect } => format!("<- effect {}: {effect:?}", id.0),
            Output::Connect { conn, addr } => format!("<- {conn} connect to {addr}"),
        },
        Record::Delivered(conn, n) => format!("   {conn} client read {n} bytes"),
        Record::Wrote(conn, bytes) => format!("   {conn} client wrote: {}", text(bytes)),
        Record::Note(note) => format!("!! {note}"),
    }
}

/// A 64-bit rolling hash of everything that crossed the server's doors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RollingHash(pub(crate) u64);

impl Default for RollingHash {
    fn default() -> Self {
        RollingHash(0xCBF2_9CE4_8422_2325)
    }
}

impl RollingHash {
    pub(crate) fn word(&mut self, x: u64) {
        self.0 = (self.0 ^ x)
            .wrapping_mul(0x0000_0100_0000_01B3)
            .rotate_left(29)
            ^ (x >> 17);
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.word(b.len() as u64);
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(last));
    }

    pub(crate) fn input(&mut self, input: &Input) {
        match input {
            Input::Accepted { conn, .. } => {
                self.word(1);
                self.word(conn.0);
            }
            Input::Received { conn, bytes } => {
                self.word(2);
                self.word(conn.0);
                self.bytes(bytes);
            }
            Input::Written { conn, n } => {
                self.word(3);
                self.word(conn.0 ^ (*n as u64) << 32);
            }
            Input::PeerClosed { conn } => {
                self.word(4);
                self.word(conn.0);
            }
            Input::EffectDone { id, result } => {
                self.word(5);
                self.word(id.0);
                self.bytes(format!("{result:?}").as_bytes());
            }
            Input::Committed { through } => {
                self.word(6);
                self.word(through.0);
            }
            Input::CommitFailed { .. } => self.word(7),
            Input::Connected { conn } => {
                self.word(8);
                self.word(conn.0);
            }
            Input::ConnectFailed { conn, .. } => {
                self.word(9);
                self.word(conn.0);
            }
            Input::Shutdown => self.word(10),
        }
    }

    pub(crate) fn output(&mut self, output: &Output) {
        match output {
            Output::Transmit { conn, bytes, after } => {
                self.word(11);
                self.word(conn.0 ^ after.map_or(0, |s| s.0 << 32));
                self.bytes(bytes);
            }
            Output::Close { conn, reason } => {
                self.word(12);
                self.word(conn.0);
                self.bytes(reason.as_str().as_bytes());
            }
            Output::Persist { seq, change } => {
                self.word(13);
                self.word(seq.0);
                self.bytes(format!("{change:?}").as_bytes());
            }
            Output::Effect { id, effect } => {
                self.word(14);
                self.word(id.0);
                self.bytes(format!("{effect:?}").as_bytes());
            }
            Output::Connect { conn, addr } => {
                self.word(15);
                self.word(conn.0);
                self.bytes(addr.to_string().as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_records() {
        let mut t = Trace::new(2);
        for i in 0..5 {
            t.push(i, Instant::from_millis(i * 1000), Record::Step("wake", i));
        }
        let lines = t.lines();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("== wake 3") && lines[1].contains("4.000s"));
    }

    #[test]
    fn text_escapes_line_ends_and_invalid_bytes() {
        assert_eq!(text(b"a\r\n\xff\x01"), "a\\r\\n\\xff\\x01");
    }

    #[test]
    fn hashes_differ_by_content_and_order() {
        let mut a = RollingHash::default();
        let mut b = RollingHash::default();
        a.bytes(b"ab");
        a.bytes(b"c");
        b.bytes(b"a");
        b.bytes(b"bc");
        assert_ne!(a, b);
    }
}
