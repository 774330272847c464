//! A virtual ws2017 client: connects, picks a name (taking the server's suggestion when
//! it is taken), chats with other clients and with offline accounts, answers pings and
//! sends receipts, renames, leaves and comes back, and now and then misbehaves: garbage,
//! oversized lines, someone else's sender name, silence past the ping timeout, reading
//! nothing while asking for a lot, a connection dropped in the middle of a line.

use core::net::IpAddr;

use switchboard_proto::ConnId;

use super::ws2017_codec::{self as codec, Spelling};
use super::{Act, Directory, Heard, Link, Sent};
use crate::choices::Choices;
use crate::options::SimOptions;

/// Names several clients want, so names collide; some are also account names. Two are
/// look-alikes of others (docs/names.md): Cyrillic `А` in `Аlice`, Greek `ο` in `bοb`.
pub(crate) const SHARED_NAMES: [&str; 10] = [
    "alice",
    "bob",
    "carol",
    "dave",
    "eve",
    "Mallory",
    "trent",
    "Ünïcödé",
    "\u{410}lice",
    "b\u{3bf}b",
];

/// The name client `idx` asks for first.
pub(crate) fn base_name(idx: u32) -> String {
    if idx % 4 == 1 {
        SHARED_NAMES[(idx / 4) as usize % SHARED_NAMES.len()].to_owned()
    } else {
        format!("u{idx}")
    }
}

/// Lines the server must refuse with an error that names no command: malformed
/// requests (an unclosed quote among them) and an unknown keyword before bytes that are
/// not UTF-8.
const MALFORMED: [&[u8]; 8] = [
    b"chatm onlyone\r\n",
    b"uname\r\n",
    b"cgetu extra\r\n",
    b"chatr a\r\n",
    b"uname 'unclosed\r\n",
    b"chatm me me 'unclosed\r\n",
    b"hello \xff\r\n",
    b"cquit now\r\n",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Answers no ping and does nothing until the given time.
    Silent(u64),
    /// Reads nothing until the given time, and keeps asking for the user list.
    SlowReader(u64),
}

/// The behaviour knobs a client takes from the run's options.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Knobs {
    action_ms: u64,
    away_ms: u64,
    misbehave: u64,
    leave: u64,
    rename: u64,
    receipt: u64,
    max_line: usize,
    ping_timeout_ms: u64,
    /// Whether the user list is small enough to ask for (not in a crowd of thousands).
    small: bool,
}

impl Knobs {
    pub(crate) fn new(o: &SimOptions) -> Knobs {
        Knobs {
            action_ms: o.action_ms,
            away_ms: o.away_ms,
            misbehave: o.misbehave_per_mille,
            leave: o.leave_per_mille,
            rename: o.rename_per_10k,
            receipt: o.receipt_per_mille,
            max_line: o.max_line_bytes,
            ping_timeout_ms: o.ping_timeout_ms,
            small: o.clients <= 200,
        }
    }
}

/// One virtual ws2017 user.
pub(crate) struct Ws2017Client<C> {
    pub(crate) idx: u32,
    rng: C,
    /// The address it connects from.
    pub(crate) ip: IpAddr,
    base: String,
    /// Its connection.
    pub(crate) link: Link,
    /// Its name, as the server last confirmed it on this connection.
    pub(crate) name: Option<String>,
    /// Every name it held on this connection (messages sent to an earlier one may still
    /// arrive after a rename).
    pub(crate) held: Vec<String>,
    /// Counts changes of `name`, so the simulator's directory follows it cheaply.
    pub(crate) name_changes: u32,
    naming: bool,
    renaming: bool,
    /// It said goodbye or was told to go: it waits for the close.
    leaving: bool,
    mode: Mode,
    next_message: u32,
    /// Generation of its wake-up timer; older wake-ups are ignored.
    pub(crate) gen: u32,
    /// Messages of the liveness phase's final round, which must all be answered; those
    /// to a client (not an account) must arrive.
    pub(crate) final_tokens: Vec<(u64, bool)>,
    /// The final round is due at the next wake-up.
    final_due: bool,
    knobs: Knobs,
}

impl<C: Choices> Ws2017Client<C> {
    pub(crate) fn new(idx: u32, rng: C, ip: IpAddr, knobs: Knobs) -> Self {
        Ws2017Client {
            idx,
            rng,
            ip,
            base: base_name(idx),
            link: Link::Offline,
            name: None,
            held: Vec::new(),
            name_changes: 0,
            naming: false,
            renaming: false,
            leaving: false,
            mode: Mode::Normal,
            next_message: 0,
            gen: 0,
            final_tokens: Vec::new(),
            final_due: false,
            knobs,
        }
    }

    /// The first wake-up: clients arrive over the first `spread_ms`.
    pub(crate) fn start(&mut self, spread_ms: u64, acts: &mut Vec<Act>) {
        let at = self.rng.below(spread_ms.max(1));
        acts.push(Act::Wake(at));
    }

    /// The simulator opened connection `conn` for it.
    pub(crate) fn connecting(&mut self, conn: ConnId) {
        self.link = Link::Connecting(conn);
    }

    /// Whether it is connected and named, as the liveness phase requires.
    pub(crate) fn settled(&self) -> bool {
        matches!(self.link, Link::Open(_)) && self.name.is_some() && !self.leaving
    }

    /// A short description for failure reports.
    pub(crate) fn describe(&self) -> String {
        format!(
            "client {} ({}) link={:?} name={:?} naming={} renaming={} leaving={} mode={:?}",
            self.idx,
            self.base,
            self.link,
            self.name,
            self.naming,
            self.renaming,
            self.leaving,
            self.mode
        )
    }

    fn spelling(&mut self) -> Spelling {
        Spelling {
            upper: self.rng.ratio(1, 10),
            lf: self.rng.ratio(1, 10),
            quote: self.rng.ratio(1, 4),
        }
    }

    /// The connection it uses now (`ConnId(0)`, which never exists, when none).
    fn conn(&self) -> ConnId {
        self.link.conn().unwrap_or(ConnId(0))
    }

    fn send(&mut self, bytes: Vec<u8>, sent: Sent, acts: &mut Vec<Act>) {
        acts.push(Act::Send {
            conn: self.conn(),
            bytes,
            sent,
        });
    }

    fn wake_in(&mut self, mean: u64, acts: &mut Vec<Act>) {
        let ms = self.rng.around(mean).max(1);
        acts.push(Act::Wake(ms));
    }

    /// Its timer fired at `now` (milliseconds).
    pub(crate) fn on_wake(&mut self, now: u64, dir: &Directory, acts: &mut Vec<Act>) {
        match self.link {
            Link::Offline => {
                acts.push(Act::Connect);
                self.wake_in(self.knobs.action_ms.max(500), acts);
            }
            Link::Connecting(_) => self.wake_in(self.knobs.action_ms, acts),
            Link::Open(_) => {
                match self.mode {
                    Mode::Silent(until) if now < until => {
                        acts.push(Act::Wake(until - now));
                        return;
                    }
                    Mode::SlowReader(until) if now < until => {
                        if self.knobs.small && self.name.is_some() {
                            let sp = self.spelling();
                            self.send(codec::bare("cgetu", sp), Sent::Cgetu, acts);
                        }
                        acts.push(Act::Wake(50.min(until - now)));
                        return;
                    }
                    Mode::SlowReader(_) => {
                        acts.push(Act::Reading {
                            conn: self.conn(),
                            on: true,
                        });
                        self.mode = Mode::Normal;
                    }
                    Mode::Silent(_) => self.mode = Mode::Normal,
                    Mode::Normal => {}
                }
                if !self.leaving {
                    if self.name.is_none() {
                        if !self.naming {
                            self.ask_name(None, acts);
                        }
                    } else if std::mem::take(&mut self.final_due) {
                        self.final_messages(dir, acts);
                    } else {
                        self.act(now, dir, acts);
                    }
                }
                if matches!(self.link, Link::Open(_)) && self.mode == Mode::Normal {
                    // Once healed, a calmer pace: the final round must not drown anyone.
                    let mean = if dir.healed {
                        self.knobs.action_ms.max(2_000)
                    } else {
                        self.knobs.action_ms
                    };
                    self.wake_in(mean, acts);
                }
            }
        }
    }

    fn ask_name(&mut self, suggestion: Option<&str>, acts: &mut Vec<Act>) {
        let name = match suggestion {
            Some(s) if self.rng.ratio(4, 5) => s.to_owned(),
            _ => match self.rng.below(8) {
                0 => format!("{}{}", self.base, self.rng.below(100)),
                1 => self.base.to_uppercase(),
                _ => self.base.clone(),
            },
        };
        self.naming = true;
        let sp = self.spelling();
        self.send(codec::uname(&name, sp), Sent::Uname(name), acts);
    }

    /// Someone this client might write to.
    fn target(&mut self, dir: &Directory) -> String {
        match self.rng.weighted(&[60, 20, 6, 6]) {
            0 => {
                let j = self.rng.below(dir.names.len() as u64) as u32;
                let name = match &dir.names[j as usize] {
                    Some(name) => name.clone(),
                    None => base_name(j),
                };
                if self.rng.ratio(1, 8) {
                    name.to_uppercase()
                } else {
                    name
                }
            }
            // An ims user (online or not) as often as an administrator's account.
            1 if !dir.login_accounts.is_empty() && self.rng.ratio(1, 2) => {
                self.rng.pick(&dir.login_accounts).clone()
            }
            1 if !dir.accounts.is_empty() => self.rng.pick(&dir.accounts).clone(),
            2 => self.name.clone().unwrap_or_else(|| self.base.clone()),
            _ => format!("ghost{}", self.rng.below(4)),
        }
    }

    fn chat(&mut self, to: String, whisper: bool, acts: &mut Vec<Act>) -> u64 {
        let token = (u64::from(self.idx) << 32) | u64::from(self.next_message);
        self.next_message += 1;
        let mut from = self.name.clone().unwrap_or_default();
        if self.rng.ratio(1, 16) {
            from = from.to_lowercase();
        }
        let sp = self.spelling();
        let bytes = codec::chat(whisper, &from, &to, &codec::body(token), sp);
        let sent = Sent::Chat {
            token,
            whisper,
            from,
            to,
        };
        self.send(bytes, sent, acts);
        token
    }

    fn act(&mut self, now: u64, dir: &Directory, acts: &mut Vec<Act>) {
        if !dir.healed && self.rng.ratio(self.knobs.leave, 1000) {
            return self.leave(acts);
        }
        if !dir.healed && self.rng.ratio(self.knobs.misbehave, 1000) {
            return self.misbehave(now, dir, acts);
        }
        // Weights per 10,000 actions.
        let cgetu = if self.knobs.small { 300 } else { 0 };
        let rename = if dir.healed { 0 } else { self.knobs.rename };
        let chat = 10_000 - 200 - 500 - cgetu - rename;
        let sp = self.spelling();
        match self
            .rng
            .weighted(&[chat * 4 / 5, chat / 5, cgetu, 200, 500, rename])
        {
            0 | 1 => {
                let to = self.target(dir);
                let whisper = self.rng.ratio(1, 4);
                self.chat(to, whisper, acts);
            }
            2 => self.send(codec::bare("cgetu", sp), Sent::Cgetu, acts),
            3 => self.send(codec::bare("cgetg", sp), Sent::Cgetg, acts),
            4 => self.send(codec::bare("cping", sp), Sent::Cping, acts),
            _ => {
                let name = match self.rng.below(3) {
                    0 => format!("{}{}", self.base, self.rng.below(10)),
                    1 => self.name.clone().unwrap_or_default().to_uppercase(),
                    _ => base_name(self.rng.below(dir.names.len() as u64) as u32),
                };
                self.renaming = true;
                self.send(codec::uname(&name, sp), Sent::Uname(name), acts);
            }
        }
    }

    fn leave(&mut self, acts: &mut Vec<Act>) {
        match self.rng.below(4) {
            0 | 1 => {
                let sp = self.spelling();
                self.leaving = true;
                self.send(codec::bare("cquit", sp), Sent::Cquit, acts);
            }
            2 => {
                acts.push(Act::Close {
                    conn: self.conn(),
                    abort: false,
                });
                self.gone(acts);
            }
            _ => {
                // Disconnect in the middle of a line.
                let line = format!("chatm {} x 'unfini", self.name.as_deref().unwrap_or("x"));
                let cut = 1 + self.rng.below(line.len() as u64 - 1) as usize;
                let bytes = line.as_bytes()[..cut].to_vec();
                self.send(bytes, Sent::Partial, acts);
                acts.push(Act::Close {
                    conn: self.conn(),
                    abort: false,
                });
                self.gone(acts);
            }
        }
    }

    fn misbehave(&mut self, now: u64, dir: &Directory, acts: &mut Vec<Act>) {
        let sp = self.spelling();
        match self.rng.below(11) {
            0 => {
                let line = format!("xq{} foo 'bar'\r\n", self.rng.below(1000));
                self.send(line.into_bytes(), Sent::Garbage, acts);
            }
            1 => {
                let line = self.rng.pick(&MALFORMED);
                self.send(line.to_vec(), Sent::Garbage, acts);
            }
            2 => self.send(b"\xff\xfe chatm\r\n".to_vec(), Sent::Garbage, acts),
            3 => {
                let extra = 1 + self.rng.below(64) as usize;
                let mut line = b"chatm me you '".to_vec();
                line.resize(line.len() + self.knobs.max_line + extra, b'x');
                line.extend_from_slice(b"'\r\n");
                self.send(line, Sent::Garbage, acts);
            }
            4 => {
                // Someone else's name as the sender: refused.
                let to = self.target(dir);
                let token = (u64::from(self.idx) << 32) | u64::from(self.next_message);
                self.next_message += 1;
                let from = format!("not{}", self.name.as_deref().unwrap_or("x"));
                let bytes = codec::chat(false, &from, &to, &codec::body(token), sp);
                let sent = Sent::Chat {
                    token,
                    whisper: false,
                    from,
                    to,
                };
                self.send(bytes, sent, acts);
            }
            5 => {
                let from = self.target(dir);
                let to = if self.rng.ratio(1, 2) {
                    self.name.clone().unwrap_or_default()
                } else {
                    self.target(dir)
                };
                self.send(codec::chatr(&from, &to, sp), Sent::Chatr, acts);
            }
            6 => {
                let line: &[u8] = if self.rng.ratio(1, 2) {
                    b"\r\n"
                } else {
                    b"   \n"
                };
                self.send(line.to_vec(), Sent::Blank, acts);
            }
            7 => {
                let t = self.knobs.ping_timeout_ms;
                let until = now + t / 2 + self.rng.below(t * 2);
                self.mode = Mode::Silent(until);
            }
            8 => {
                let t = self.knobs.ping_timeout_ms;
                let until = now + self.rng.below(t * 2);
                self.mode = Mode::SlowReader(until);
                acts.push(Act::Reading {
                    conn: self.conn(),
                    on: false,
                });
            }
            9 => {
                let name = if self.rng.ratio(1, 2) {
                    "bad<name".to_owned()
                } else {
                    "x".repeat(33)
                };
                self.renaming = true;
                self.send(codec::uname(&name, sp), Sent::Uname(name), acts);
            }
            _ => {
                acts.push(Act::Close {
                    conn: self.conn(),
                    abort: true,
                });
                self.gone(acts);
            }
        }
    }

    /// It dropped its own connection: offline, back later.
    fn gone(&mut self, acts: &mut Vec<Act>) {
        self.reset();
        self.wake_in(self.knobs.away_ms, acts);
    }

    fn reset(&mut self) {
        self.link = Link::Offline;
        if self.name.take().is_some() {
            self.name_changes += 1;
        }
        self.held.clear();
        self.naming = false;
        self.renaming = false;
        self.leaving = false;
        self.mode = Mode::Normal;
    }

    /// It heard one line from the server.
    pub(crate) fn on_heard(&mut self, heard: &Heard, dir: &Directory, acts: &mut Vec<Act>) {
        match heard {
            Heard::Greeting => {
                if let Link::Connecting(conn) = self.link {
                    self.link = Link::Open(conn);
                }
                self.ask_name(None, acts);
                if !dir.healed && self.rng.ratio(self.knobs.misbehave, 1000) {
                    // Asks before it has a name: refused or answered, depending on timing.
                    let sp = self.spelling();
                    self.send(codec::bare("cgetg", sp), Sent::Cgetg, acts);
                }
            }
            Heard::Banned | Heard::Goodbye => self.leaving = true,
            Heard::NameSet(name) => {
                self.held.push(name.clone());
                self.name = Some(name.clone());
                self.name_changes += 1;
                self.naming = false;
            }
            Heard::Renamed(name) => {
                self.held.push(name.clone());
                self.name = Some(name.clone());
                self.name_changes += 1;
                self.renaming = false;
            }
            Heard::NameTaken(suggestion) => {
                if self.naming {
                    self.ask_name(Some(suggestion), acts);
                }
                self.renaming = false;
            }
            Heard::SlowDown => {
                // The next wake-up asks again.
                self.naming = false;
                self.renaming = false;
            }
            Heard::NameRefused => {
                if self.naming {
                    self.naming = false;
                    let name = format!("u{}", self.idx);
                    self.naming = true;
                    let sp = self.spelling();
                    self.send(codec::uname(&name, sp), Sent::Uname(name), acts);
                }
                self.renaming = false;
            }
            Heard::Ping => {
                if !matches!(self.mode, Mode::Silent(_)) {
                    let sp = self.spelling();
                    let answer = if self.rng.ratio(1, 4) {
                        b"+OK cpong\r\n".to_vec()
                    } else {
                        codec::bare("cpong", sp)
                    };
                    self.send(answer, Sent::Cpong, acts);
                }
            }
            Heard::Chat { from, to, .. } => {
                // A message for this client (not the echo of its own whisper): confirm it.
                let mine = self.name.as_deref().map(codec::key) == Some(codec::key(to));
                if mine && self.rng.ratio(self.knobs.receipt, 1000) {
                    let sp = self.spelling();
                    self.send(codec::chatr(from, to, sp), Sent::Chatr, acts);
                }
            }
            Heard::AdminAnswer { .. } | Heard::Line(_) | Heard::Other => {}
        }
    }

    /// The connection is gone (closed by the server, cut, or refused).
    pub(crate) fn on_closed(&mut self, dir: &Directory, acts: &mut Vec<Act>) {
        self.reset();
        let away = if dir.healed { 200 } else { self.knobs.away_ms };
        self.wake_in(away, acts);
    }

    /// The liveness phase begins: behave, read, come back soon.
    pub(crate) fn heal(&mut self, acts: &mut Vec<Act>) {
        if let Mode::SlowReader(_) = self.mode {
            acts.push(Act::Reading {
                conn: self.conn(),
                on: true,
            });
        }
        self.mode = Mode::Normal;
        self.wake_in(200, acts);
    }

    /// The liveness phase's last round: one message to another named client and one to
    /// an account; all must be answered.
    pub(crate) fn final_round(&mut self, acts: &mut Vec<Act>) {
        self.final_due = true;
        let at = self.rng.below(2_000);
        acts.push(Act::Wake(at));
    }

    fn final_messages(&mut self, dir: &Directory, acts: &mut Vec<Act>) {
        let named: Vec<&String> = dir.names.iter().flatten().collect();
        if !named.is_empty() {
            let to = (*self.rng.pick(&named)).clone();
            let token = self.chat(to, false, acts);
            self.final_tokens.push((token, false));
        }
        if !dir.accounts.is_empty() {
            let to = self.rng.pick(&dir.accounts).clone();
            let whisper = self.rng.ratio(1, 2);
            let token = self.chat(to, whisper, acts);
            self.final_tokens.push((token, true));
        }
    }
}
