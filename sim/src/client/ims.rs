//! A virtual ims client: random but valid scripts (LOGIN with the MD5 hex, MESSAGE,
//! STATUS, FRIEND, ALIVE, LOGOUT), some misbehaviour (wrong passwords, forged names, junk,
//! malformed and unknown documents, silence past the ALIVE timeout, abrupt closes), and a
//! reader of the server's documents written independently of proto's codec: server
//! documents are one per line, and only the few attributes checked are picked out by hand.
//!
//! The client knows what each of its documents must get back (its echo, then its answer)
//! and checks every line it receives against that; what needs the world's view (is a
//! stored message durable, is a pushed message addressed here) it reports as [`Seen`].

use core::net::IpAddr;
use std::collections::VecDeque;

use switchboard_proto::{ConnId, Instant};

use crate::choices::Choices;
use crate::client::ws2017_codec as codec;
use crate::client::Directory;

/// The ALIVE timeout the world runs with (the default).
pub(crate) const ALIVE_MS: u64 = 15_000;

/// What a document sent must get back, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    /// Its echo, byte for byte.
    Echo(String),
    /// `<LOGIN user=.. result="R"/>`.
    Login(u8),
    /// `<LOGOUT user=.. result="R"/>`.
    Logout(u8),
    /// `<MESSAGE result=..>`: one of these results (whether -1 waited for its commit
    /// is the oracle's to judge, as the server emits it).
    MessageResult { allowed: &'static [i8] },
    /// `<STATUS type="get" result="C"/>` with the code last set.
    StatusGet,
    /// `<STATUS type="set" result="R"/>` for this code (a valid code may be refused
    /// past the connection's rate; then the status stays).
    StatusSet { code: i8, ok: bool },
    /// The STATUSLIST.
    StatusList,
    /// `<FRIEND type="T" result="0|1"/>` (only 0 when `zero`).
    Friend { kind: &'static str, zero: bool },
    /// `<FRIENDS>...</FRIENDS>` (empty when `empty`).
    Friends { empty: bool },
}

/// What the client saw that the world must judge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// A message pushed to this client: from `from`, with `token` (or none, if its text
    /// is no token), and its text (unescaped).
    Pushed {
        from: String,
        token: Option<u64>,
        text: String,
    },
}

/// A MESSAGE document sent, for the ledger: its token, sender and recipient as written.
pub(crate) type MessageSent = (u64, String, String);

/// What the client asks the world to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Do {
    /// Open a connection (the world calls [`ImsClient::connected`]).
    Connect,
    /// Write these bytes (a MESSAGE says which); `doc`: a well-formed document, which
    /// the server counts as activity (junk and malformed XML are not).
    Send {
        bytes: Vec<u8>,
        message: Option<MessageSent>,
        doc: bool,
        /// The request gets one answer the oracle matches (arsc, opcode), with the
        /// message it carries, if any; `None`: nothing the oracle follows (ims matches
        /// its answers by their echoes).
        asks: Option<Option<u64>>,
    },
    /// Close the connection from this side.
    Close,
}

/// One virtual ims user with at most one connection.
#[derive(Debug)]
pub(crate) struct ImsClient<R> {
    /// The client's place in the message ledger (its tokens are `idx << 32 | n`).
    idx: u32,
    next_message: u32,
    /// The address it connects from (its own: no administrator's ban reaches it).
    pub(crate) ip: IpAddr,
    /// Bumped at every scheduled turn; a wake of an older generation is stale.
    pub(crate) gen: u32,
    pub(crate) name: String,
    pub(crate) password: String,
    /// Every account's name, to pick recipients and friends from.
    others: Vec<String>,
    rng: R,
    pub(crate) conn: Option<ConnId>,
    /// A correct LOGIN went out on this connection (later documents are answered).
    logged_in: bool,
    /// The status this session last set (0 at login).
    status: i8,
    /// LOGOUT with our own name went out: nothing may follow its answer but the close.
    leaving: bool,
    /// The LOGOUT answer arrived.
    left: bool,
    inbuf: Vec<u8>,
    expect: VecDeque<Expect>,
    /// When the last complete document was sent.
    pub(crate) last_doc: Instant,
    /// When the client acts next.
    pub(crate) next_at: Instant,
    /// Silent on purpose until `next_at` (to be dropped by the ALIVE timeout).
    pub(crate) silent: bool,
    /// The liveness phase: behave.
    pub(crate) healed: bool,
    /// Logins answered with result 1.
    pub(crate) logins: u32,
}

/// The MD5 hex of `password`.
pub(crate) fn md5_hex(password: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl<R: Choices> ImsClient<R> {
    pub(crate) fn new(
        idx: u32,
        ip: IpAddr,
        name: String,
        others: Vec<String>,
        rng: R,
        start: Instant,
    ) -> Self {
        ImsClient {
            idx,
            next_message: 0,
            ip,
            gen: 0,
            password: format!("pw-{name}"),
            name,
            others,
            rng,
            conn: None,
            logged_in: false,
            status: 0,
            leaving: false,
            left: false,
            inbuf: Vec::new(),
            expect: VecDeque::new(),
            last_doc: start,
            next_at: start,
            silent: false,
            healed: false,
            logins: 0,
        }
    }

    /// The connection is up.
    pub(crate) fn connected(&mut self, conn: ConnId, now: Instant) {
        self.conn = Some(conn);
        self.logged_in = false;
        self.status = 0;
        self.leaving = false;
        self.left = false;
        self.inbuf.clear();
        self.expect.clear();
        self.last_doc = now;
        self.silent = false;
    }

    /// The connection is gone (closed by the server or lost in a crash).
    pub(crate) fn lost(&mut self, now: Instant) {
        self.conn = None;
        self.expect.clear();
        self.inbuf.clear();
        self.silent = false;
        self.next_at = now + ms(self.rng.range(10..=2_000));
    }

    /// Whether the client is owed nothing more (everything it sent was answered).
    pub(crate) fn settled(&self) -> bool {
        self.expect.is_empty()
    }

    /// Whether the client is logged in (or logging in) on a connection.
    pub(crate) fn online(&self) -> bool {
        self.conn.is_some() && self.logged_in
    }

    /// The client's turn: what it does now (`dir`: the ws2017 clients it may write to).
    /// Schedules its next turn.
    pub(crate) fn act(&mut self, now: Instant, dir: &Directory) -> Vec<Do> {
        self.next_at = now + ms(self.rng.range(50..=4_000));
        if self.conn.is_none() {
            return vec![Do::Connect];
        }
        if self.leaving {
            return Vec::new();
        }
        self.silent = false;
        if !self.logged_in {
            // Sometimes a wrong password first; sometimes the next document pipelined.
            let mut out = Vec::new();
            if !self.healed && self.rng.ratio(1, 6) {
                let doc = format!(
                    "<LOGIN user=\"{}\" pass=\"{}\"/>",
                    self.name,
                    md5_hex("wrong")
                );
                out.push(self.doc(doc, &[Expect::Login(0)], None, now));
            }
            let pass = match self.rng.ratio(1, 2) {
                true => md5_hex(&self.password),
                false => md5_hex(&self.password).to_uppercase(),
            };
            let doc = format!("<LOGIN user=\"{}\" pass=\"{pass}\"/>", self.name);
            out.push(self.doc(doc, &[Expect::Login(1)], None, now));
            self.logged_in = true;
            if self.rng.ratio(1, 3) {
                out.push(self.request(now, dir));
            }
            return out;
        }
        if !self.healed {
            if self.rng.ratio(1, 40) {
                // Silent past the timeout: the server must drop the connection.
                self.silent = true;
                self.next_at = now + ms(ALIVE_MS + self.rng.range(1_500..=4_000));
                return Vec::new();
            }
            if self.rng.ratio(1, 60) {
                return vec![Do::Close];
            }
            if self.rng.ratio(1, 50) {
                self.leaving = true;
                let doc = format!("<LOGOUT user=\"{}\"/>", self.name);
                return vec![self.doc(doc, &[Expect::Logout(1)], None, now)];
            }
            if self.rng.ratio(1, 15) {
                return vec![self.garbage(now)];
            }
        }
        vec![self.request(now, dir)]
    }

    /// A document that answers `expect` after its echo; it counts as activity.
    fn doc(
        &mut self,
        doc: String,
        expect: &[Expect],
        message: Option<MessageSent>,
        now: Instant,
    ) -> Do {
        self.last_doc = now;
        self.expect.push_back(Expect::Echo(doc.clone()));
        self.expect.extend(expect.iter().cloned());
        let sep: &[u8] = match self.rng.below(4) {
            0 => b"",
            1 => b"\n",
            2 => b"\0",
            _ => b" \r\n",
        };
        let mut bytes = doc.into_bytes();
        bytes.extend_from_slice(sep);
        Do::Send {
            bytes,
            message,
            doc: true,
            asks: None,
        }
    }

    /// Misbehaviour: junk and malformed XML (no echo), an unknown element or type (its
    /// echo only), a LOGOUT or MESSAGE by another name.
    fn garbage(&mut self, now: Instant) -> Do {
        let other = self.rng.pick(&self.others).clone();
        match self.rng.below(6) {
            0 => junk(b"junk outside any element "),
            1 => junk(b"<MESSAGE from=\"a\" to=\"b\">&nope;</MESSAGE>"),
            2 => junk(b"<A><B></A></B></STRAY>"),
            3 => self.doc("<HELLO there=\"1\"/>".to_owned(), &[], None, now),
            4 => {
                let doc = format!("<LOGOUT user=\"{other}x\"/>");
                self.doc(doc, &[Expect::Logout(0)], None, now)
            }
            _ => {
                let doc = format!("<STATUS user=\"{}\" type=\"nap\"/>", self.name);
                self.doc(doc, &[], None, now)
            }
        }
    }

    /// A valid request (sometimes naming another user, which is refused).
    fn request(&mut self, now: Instant, dir: &Directory) -> Do {
        let me = self.name.clone();
        let other = self.rng.pick(&self.others).clone();
        match self.rng.weighted(&[8, 2, 1, 2, 2, 1, 3, 2]) {
            0 => {
                let token = (u64::from(self.idx) << 32) | u64::from(self.next_message);
                self.next_message += 1;
                let (to, allowed): (String, &'static [i8]) = match self.rng.below(8) {
                    0 => (format!("ghost{}", self.rng.below(3)), &[0]),
                    // Oneself: online, unless its mailbox is still being handed out at its
                    // login (then stored behind it, or refused as for an offline account).
                    1 => (me.clone(), &[1, -1, 0]),
                    // A ws2017 client, by the name it holds (or held): online, gone, or
                    // an account's name (then offline means stored).
                    2 | 3 => match dir.names.iter().flatten().nth(
                        self.rng
                            .below(dir.names.iter().flatten().count().max(1) as u64)
                            as usize,
                    ) {
                        Some(nick) => (nick.clone(), &[1, -1, 0]),
                        None => (other, &[1, -1, 0]),
                    },
                    _ => (other, &[1, -1, 0]),
                };
                let forged = !self.healed && self.rng.ratio(1, 10);
                let (from, allowed) = match forged {
                    true => (format!("{to}z"), &[0][..]),
                    false => (me.clone(), allowed),
                };
                let body = codec::body(token);
                let doc = format!("<MESSAGE from=\"{from}\" to=\"{to}\">{body}</MESSAGE>");
                let sent = Some((token, from, to));
                self.doc(doc, &[Expect::MessageResult { allowed }], sent, now)
            }
            1 => {
                // Not Invisible (3): the model tells of no visibility change, so the
                // lobby's `cquit` for it could not be judged (4 is refused).
                let code = *self.rng.pick(&[0i8, 1, 2, 4]);
                let ok = code <= 3;
                let doc = format!("<STATUS user=\"{me}\" type=\"set\" code=\"{code}\"/>");
                self.doc(doc, &[Expect::StatusSet { code, ok }], None, now)
            }
            2 => {
                let doc = format!("<STATUS user=\"{me}\" type=\"list\"/>");
                self.doc(doc, &[Expect::StatusList], None, now)
            }
            3 => {
                let doc = format!("<STATUS user=\"{me}\" type=\"get\"/>");
                self.doc(doc, &[Expect::StatusGet], None, now)
            }
            4 => {
                let doc = format!("<FRIEND user=\"{me}\" type=\"add\" friend=\"{other}\"/>");
                self.doc(
                    doc,
                    &[Expect::Friend {
                        kind: "add",
                        zero: false,
                    }],
                    None,
                    now,
                )
            }
            5 => {
                let kind = *self.rng.pick(&["accept", "deny", "delete"]);
                let attr = if kind == "delete" { "friend" } else { "other" };
                let doc = format!("<FRIEND user=\"{me}\" type=\"{kind}\" {attr}=\"{other}\"/>");
                self.doc(doc, &[Expect::Friend { kind, zero: false }], None, now)
            }
            6 => {
                let forged = !self.healed && self.rng.ratio(1, 5);
                let user = if forged { format!("{me}z") } else { me };
                let doc = format!("<FRIEND user=\"{user}\" type=\"request\"/>");
                self.doc(doc, &[Expect::Friends { empty: forged }], None, now)
            }
            _ => self.doc("<ALIVE/>".to_owned(), &[], None, now),
        }
    }

    /// Bytes from the server: every complete line checked against what is expected.
    pub(crate) fn on_bytes(&mut self, bytes: &[u8]) -> Result<Vec<Seen>, String> {
        self.inbuf.extend_from_slice(bytes);
        let mut seen = Vec::new();
        while let Some(end) = self.inbuf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.inbuf.drain(..=end).collect();
            let line = String::from_utf8(line[..end].to_vec())
                .map_err(|_| "a document that is not UTF-8".to_owned())?;
            self.on_line(&line, &mut seen)
                .map_err(|e| format!("{}: {e} (line {line:?})", self.name))?;
        }
        Ok(seen)
    }

    fn on_line(&mut self, line: &str, seen: &mut Vec<Seen>) -> Result<(), String> {
        if self.left {
            return Err("a document after LOGOUT was answered".into());
        }
        if self.expect.front() == Some(&Expect::Echo(line.to_owned())) {
            self.expect.pop_front();
            return Ok(());
        }
        if line.starts_with("<MESSAGE from=") {
            let to = attr(line, "to").ok_or("a pushed MESSAGE without to")?;
            if to != self.name {
                return Err(format!("a message for {to} reached {}", self.name));
            }
            let from = attr(line, "from").ok_or("a pushed MESSAGE without from")?;
            let text = line
                .split_once('>')
                .and_then(|(_, rest)| rest.strip_suffix("</MESSAGE>"))
                .ok_or("a pushed MESSAGE without text")?;
            let text = unescape(text);
            let token = codec::token_of(&text);
            seen.push(Seen::Pushed { from, token, text });
            return Ok(());
        }
        if line.starts_with("<FRIEND type=\"invite\"") {
            return match attr(line, "to") {
                Some(to) if to == self.name => Ok(()),
                other => Err(format!("an invite to {other:?}")),
            };
        }
        let Some(expected) = self.expect.pop_front() else {
            return Err("a document nothing asked for".into());
        };
        let ok = match &expected {
            Expect::Echo(_) => false,
            Expect::Login(r) => {
                let answer = |r| format!("<LOGIN user=\"{}\" result=\"{r}\"/>", self.name);
                // The right password may still be refused: its check failed (an effect
                // fails now and then) or the connection's login rate is spent. The
                // documents behind it then get their echo only.
                let refused = *r == 1 && line == answer(0);
                if refused {
                    self.expect.retain(|e| matches!(e, Expect::Echo(_)));
                }
                let good = line == answer(*r) || refused;
                self.logins += u32::from(good && *r == 1 && !refused);
                if good && (refused || *r == 0 && !self.expect.contains(&Expect::Login(1))) {
                    self.logged_in = false;
                }
                good
            }
            Expect::Logout(r) => {
                let good = attr(line, "result") == Some(r.to_string())
                    && line.starts_with("<LOGOUT user=");
                if good && *r == 1 {
                    self.left = true;
                }
                good
            }
            Expect::MessageResult { allowed } => {
                let result = attr(line, "result").and_then(|r| r.parse::<i8>().ok());
                line.starts_with("<MESSAGE result=") && result.is_some_and(|r| allowed.contains(&r))
            }
            // The user shows as its most available session: another one (an older
            // connection the server has not yet seen closed) may be more available.
            Expect::StatusGet => (0..=self.status)
                .any(|code| line == format!("<STATUS type=\"get\" result=\"{code}\"/>")),
            Expect::StatusSet { code, ok } => {
                let set = *ok && line == "<STATUS type=\"set\" result=\"1\"/>";
                if set {
                    self.status = *code;
                }
                set || line == "<STATUS type=\"set\" result=\"0\"/>"
            }
            Expect::StatusList => {
                line == "<STATUSLIST><STATUS id=\"0\">Online</STATUS><STATUS id=\"1\">Away</STATUS>\
                         <STATUS id=\"2\">Busy</STATUS><STATUS id=\"3\">Invisible</STATUS></STATUSLIST>"
            }
            Expect::Friend { kind, zero } => {
                let result = attr(line, "result");
                line.starts_with(&format!("<FRIEND type=\"{kind}\" result="))
                    && match zero {
                        true => result.as_deref() == Some("0"),
                        false => matches!(result.as_deref(), Some("0" | "1")),
                    }
            }
            Expect::Friends { empty } => friends_ok(line, *empty, &self.others),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected {expected:?}"))
        }
    }
}

/// Bytes that are no document.
fn junk(bytes: &[u8]) -> Do {
    Do::Send {
        bytes: bytes.to_vec(),
        message: None,
        doc: false,
        asks: None,
    }
}

/// A FRIENDS list: accounts only, sorted, statuses -1 to 3.
fn friends_ok(line: &str, empty: bool, accounts: &[String]) -> bool {
    let Some(inner) = line
        .strip_prefix("<FRIENDS>")
        .and_then(|l| l.strip_suffix("</FRIENDS>"))
    else {
        return false;
    };
    if empty {
        return inner.is_empty();
    }
    let mut names = Vec::new();
    for user in inner.split("</USER>").filter(|u| !u.is_empty()) {
        let Some((head, name)) = user.split_once('>') else {
            return false;
        };
        let status = attr(&format!("{head}>"), "status").and_then(|s| s.parse::<i8>().ok());
        if !status.is_some_and(|s| (-1..=3).contains(&s)) || !accounts.iter().any(|a| a == name) {
            return false;
        }
        names.push(name.to_owned());
    }
    names.windows(2).all(|w| w[0] < w[1])
}

/// The value of attribute `name` in a one-line document (values hold no quotes here).
pub(crate) fn attr(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = line[start..].find('"')?;
    Some(unescape(&line[start..start + len]))
}

/// XML's five predefined entities, undone.
pub(crate) fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn ms(n: u64) -> core::time::Duration {
    core::time::Duration::from_millis(n)
}

impl<R: Choices + core::fmt::Debug> crate::client::LoginClient for ImsClient<R> {
    fn protocol(&self) -> switchboard_proto::Protocol {
        switchboard_proto::Protocol::Ims
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn ip(&self) -> IpAddr {
        self.ip
    }

    fn conn(&self) -> Option<ConnId> {
        self.conn
    }

    fn gen_mut(&mut self) -> &mut u32 {
        &mut self.gen
    }

    fn next_at_mut(&mut self) -> &mut Instant {
        &mut self.next_at
    }

    fn silent(&self) -> bool {
        self.silent
    }

    fn heal(&mut self) {
        self.healed = true;
    }

    fn logins(&self) -> u32 {
        self.logins
    }

    fn act(&mut self, now: Instant, dir: &Directory) -> Vec<Do> {
        ImsClient::act(self, now, dir)
    }

    fn on_bytes(&mut self, bytes: &[u8]) -> Result<Vec<Seen>, String> {
        ImsClient::on_bytes(self, bytes)
    }

    fn connected(&mut self, conn: ConnId, now: Instant) {
        ImsClient::connected(self, conn, now);
    }

    fn lost(&mut self, now: Instant) {
        ImsClient::lost(self, now);
    }

    fn online(&self) -> bool {
        ImsClient::online(self)
    }

    fn settled(&self) -> bool {
        ImsClient::settled(self)
    }
}
