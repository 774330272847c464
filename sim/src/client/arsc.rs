//! A virtual arsc client of the main world: it logs in to an account of its own
//! (`ar0`, `ar1`, ... with password `pw-arN`), follows random valid scripts (connect with
//! the original client's padding and junk between requests, posts, `/me`, `/msg` to
//! anyone on any protocol, `/room` among three rooms, `userlist`, disconnects) and
//! misbehaves sometimes (malformed XML, requests without a type, unknown request types
//! and sids, a request over the frame limit, a connection dropped mid-request).
//!
//! It reads the server's lines with a parser of its own (not proto's codec) and checks
//! each answer against what it asked, in order. What needs the world's view (a whisper
//! carries a message as sent, reaches only its recipient; a stored `/msg` is answered
//! only once committed) is the oracle's (`oracle/arsc.rs`); the room order across
//! clients is judged at the end from [`LoginClient::room_posts`].

use core::net::IpAddr;
use std::collections::{BTreeSet, VecDeque};

use switchboard_proto::{ConnId, Instant, Protocol};

use crate::choices::Choices;
use crate::client::ims::{Do, MessageSent, Seen};
use crate::client::ws2017_codec as codec;
use crate::client::{Directory, LoginClient};

/// The rooms clients choose among.
const ROOMS: [&str; 3] = ["lounge", "hall", "Free For All"];

/// The frame limit the world's server has for arsc (`arsc.max_request_bytes`), small so
/// an over-long request is cheap to make.
pub(crate) const MAX_REQUEST: usize = 2048;

/// What a request must get back.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Asked {
    Connect,
    /// A post; `Some(token)` for a room post whose `ok` means it was said.
    Post(Option<u64>),
    Userlist,
    /// Misbehaviour: an error of its type, or a `system` message when none can be told.
    Error(Option<&'static str>),
}

/// A parsed server line: `<arscrespond>` or `<arscmessage>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Line {
    Respond {
        kind: String,
        ok: bool,
        sid: Option<String>,
        error: Option<String>,
    },
    Message {
        kind: String,
        sender: String,
        content: String,
    },
}

/// The text of the first `<tag>` in `line`, unescaped.
fn field(line: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = line.find(&open)? + open.len();
    let end = start + line[start..].find(&close)?;
    Some(
        line[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// One line the server sent (without its `\n`), if it has one of the two shapes.
pub(crate) fn parse_line(line: &str) -> Option<Line> {
    if line.starts_with("<arscrespond>") && line.ends_with("</arscrespond>") {
        return Some(Line::Respond {
            kind: field(line, "type")?,
            ok: field(line, "status")? == "ok",
            sid: field(line, "sid"),
            error: field(line, "error"),
        });
    }
    if line.starts_with("<arscmessage>") && line.ends_with("</arscmessage>") {
        let time = field(line, "sendtime")?;
        let shaped = time.len() == 5
            && time.bytes().enumerate().all(|(i, b)| match i {
                2 => b == b':',
                _ => b.is_ascii_digit(),
            });
        if !shaped {
            return None;
        }
        return Some(Line::Message {
            kind: field(line, "type")?,
            sender: field(line, "sender")?,
            content: field(line, "content")?,
        });
    }
    None
}

/// The room post token (`p<token>`) in `content`, if any.
pub(crate) fn post_token(content: &str) -> Option<u64> {
    content
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find_map(|w| w.strip_prefix('p').and_then(|t| t.parse::<u64>().ok()))
}

/// XML-escapes what a request carries.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One virtual arsc user with at most one connection.
#[derive(Debug)]
pub(crate) struct ArscClient<R> {
    /// Its place in the ledger (message tokens `idx << 32 | n`, post tokens alike).
    idx: u32,
    next_message: u32,
    next_post: u32,
    ip: IpAddr,
    gen: u32,
    name: String,
    password: String,
    /// Every login account (recipients).
    others: Vec<String>,
    rng: R,
    conn: Option<ConnId>,
    /// The session, once the connect was answered `ok`.
    sid: Option<String>,
    /// A connect is on its way.
    connecting: bool,
    /// The connect was refused: the client closes and tries again later.
    refused: bool,
    asked: VecDeque<Asked>,
    inbuf: Vec<u8>,
    next_at: Instant,
    healed: bool,
    logins: u32,
    /// Room posts of this session answered `ok` and not yet read.
    unseen_posts: BTreeSet<u64>,
    /// Room posts read, in order, and as a set.
    seen: Vec<u64>,
    seen_set: BTreeSet<u64>,
}

impl<R: Choices> ArscClient<R> {
    pub(crate) fn new(
        idx: u32,
        ip: IpAddr,
        name: String,
        others: Vec<String>,
        rng: R,
        start: Instant,
    ) -> Self {
        ArscClient {
            idx,
            next_message: 0,
            next_post: 0,
            ip,
            gen: 0,
            password: format!("pw-{name}"),
            name,
            others,
            rng,
            conn: None,
            sid: None,
            connecting: false,
            refused: false,
            asked: VecDeque::new(),
            inbuf: Vec::new(),
            next_at: start,
            healed: false,
            logins: 0,
            unseen_posts: BTreeSet::new(),
            seen: Vec::new(),
            seen_set: BTreeSet::new(),
        }
    }

    fn junk(&mut self) -> &'static str {
        match self.rng.below(8) {
            0 => "dummydummy",
            1 => "\0\r\n",
            2 => "<b>junk</b> <arsc ",
            _ => "",
        }
    }

    /// A request expecting `asked` (or nothing the oracle follows: `asks` false).
    fn request(&mut self, body: String, asked: Option<Asked>, message: Option<MessageSent>) -> Do {
        let junk = self.junk();
        let token = message.as_ref().map(|m| m.0);
        let asks = match &asked {
            Some(Asked::Error(None)) | None => None,
            Some(_) => Some(token),
        };
        if let Some(asked) = asked {
            self.asked.push_back(asked);
        }
        Do::Send {
            bytes: format!("{junk}{body}").into_bytes(),
            message,
            doc: false,
            asks,
        }
    }

    fn connect(&mut self) -> Do {
        let room = *self.rng.pick(&ROOMS);
        let padding = "dummy".repeat(self.rng.below(30) as usize);
        let body = format!(
            "<arscrequest><type>connect</type><user>{}</user><password>{}</password><room>{room}</room><language>english</language><template>xml</template></arscrequest>{padding}",
            self.name, self.password
        );
        self.connecting = true;
        self.request(body, Some(Asked::Connect), None)
    }

    fn post(&mut self, sid: &str, content: &str, asked: Asked, message: Option<MessageSent>) -> Do {
        let body = format!(
            "<arscrequest><type>post</type><sid>{sid}</sid><content>{}</content></arscrequest>",
            escape(content)
        );
        self.request(body, Some(asked), message)
    }

    /// Someone to whisper to: a ws2017 nick, an account of any protocol, oneself, nobody.
    fn target(&mut self, dir: &Directory) -> String {
        let held: Vec<&String> = dir.names.iter().flatten().collect();
        match self.rng.below(8) {
            0..=2 if !held.is_empty() => (*self.rng.pick(&held)).clone(),
            0..=5 => self.rng.pick(&self.others).clone(),
            6 => self.name.clone(),
            _ => format!("ghost{}", self.rng.below(3)),
        }
    }

    fn online_turn(&mut self, sid: String, dir: &Directory) -> Vec<Do> {
        if !self.healed {
            if self.rng.ratio(1, 80) {
                // The session ends: sometimes in the middle of a request.
                let mut out = Vec::new();
                if self.rng.ratio(1, 2) {
                    out.push(Do::Send {
                        bytes: b"<arscrequest><type>post</type><sid>".to_vec(),
                        message: None,
                        doc: false,
                        asks: None,
                    });
                }
                out.push(Do::Close);
                return out;
            }
            if self.rng.ratio(1, 12) {
                return vec![self.misbehave(&sid)];
            }
        }
        let post = (u64::from(self.idx) << 32) | u64::from(self.next_post);
        match self.rng.weighted(&[8, 3, 8, 2, 2]) {
            0 => {
                self.next_post += 1;
                let content = format!("p{post} says & hi");
                vec![self.post(&sid, &content, Asked::Post(Some(post)), None)]
            }
            1 => {
                self.next_post += 1;
                let content = format!("/me p{post}");
                vec![self.post(&sid, &content, Asked::Post(Some(post)), None)]
            }
            2 => {
                let token = (u64::from(self.idx) << 32) | u64::from(self.next_message);
                self.next_message += 1;
                let to = self.target(dir);
                let content = format!("/msg {to} {}", codec::body(token));
                let sent = (token, self.name.clone(), to);
                vec![self.post(&sid, &content, Asked::Post(None), Some(sent))]
            }
            3 => {
                let room = *self.rng.pick(&ROOMS);
                vec![self.post(&sid, &format!("/room {room}"), Asked::Post(None), None)]
            }
            _ => {
                let body =
                    format!("<arscrequest><type>userlist</type><sid>{sid}</sid></arscrequest>");
                vec![self.request(body, Some(Asked::Userlist), None)]
            }
        }
    }

    fn misbehave(&mut self, sid: &str) -> Do {
        let (body, asked) = match self.rng.below(5) {
            0 => (
                "<arscrequest><type>post</type><content>x</wrong></arscrequest>".to_owned(),
                Asked::Error(Some("post")),
            ),
            1 => (
                "<arscrequest><content>a < b</content></arscrequest>".to_owned(),
                Asked::Error(None),
            ),
            2 => (
                format!("<arscrequest><type>logout</type><sid>{sid}</sid></arscrequest>"),
                Asked::Error(Some("logout")),
            ),
            3 => (
                "<arscrequest><type>post</type><sid>00ff</sid><content>x</content></arscrequest>"
                    .to_owned(),
                Asked::Error(Some("post")),
            ),
            _ => (
                format!(
                    "<arscrequest><type>userlist</type><sid>{sid}</sid><content>{}</content></arscrequest>",
                    "x".repeat(MAX_REQUEST)
                ),
                Asked::Error(Some("userlist")),
            ),
        };
        self.request(body, Some(asked), None)
    }

    fn on_line(&mut self, line: Line, seen: &mut Vec<Seen>) -> Result<(), String> {
        match line {
            Line::Respond {
                kind,
                ok,
                sid,
                error,
            } => {
                let asked = self
                    .asked
                    .pop_front()
                    .ok_or_else(|| format!("an answer to nothing: {kind}"))?;
                self.answered(asked, &kind, ok, sid, error)
            }
            Line::Message {
                kind,
                sender,
                content,
            } => {
                if kind == "system"
                    && sender == "System"
                    && (content == "Malformed request" || content == "Request too long")
                {
                    let asked = self.asked.pop_front();
                    if asked != Some(Asked::Error(None)) {
                        return Err(format!("{content} answers {asked:?}"));
                    }
                    return Ok(());
                }
                self.message(&kind, &sender, &content, seen)
            }
        }
    }

    fn answered(
        &mut self,
        asked: Asked,
        kind: &str,
        ok: bool,
        sid: Option<String>,
        error: Option<String>,
    ) -> Result<(), String> {
        let expected = match &asked {
            Asked::Connect => "connect",
            Asked::Post(_) => "post",
            Asked::Userlist => "userlist",
            Asked::Error(Some(kind)) => kind,
            Asked::Error(None) => return Err(format!("{kind} answers a typeless request")),
        };
        if kind != expected {
            return Err(format!("a {kind} answer to {asked:?}"));
        }
        let unknown = error.as_deref() == Some("This session is not known");
        match asked {
            Asked::Connect => {
                self.connecting = false;
                match (ok, sid) {
                    (true, Some(sid)) => {
                        if sid.len() != 32 || !sid.bytes().all(|b| b.is_ascii_hexdigit()) {
                            return Err(format!("sid {sid} is not 32 hex"));
                        }
                        self.sid = Some(sid);
                        self.logins += 1;
                    }
                    // Refused: the name still online (a session whose close the server has
                    // not read), the password check failed (an effect), a rate. Again later.
                    (false, _) => self.refused = true,
                    (true, None) => return Err("a connect ok without a sid".into()),
                }
            }
            Asked::Post(token) => match (ok, token) {
                (true, Some(token)) => {
                    if !self.seen_set.contains(&token) {
                        self.unseen_posts.insert(token);
                    }
                }
                (true, None) => {}
                // The session is gone, a rate was reached, the store is failing.
                (false, _)
                    if unknown || error.as_deref() == Some("Message could not be handled") => {}
                (false, _) => return Err(format!("post refused: {error:?}")),
            },
            Asked::Userlist => {
                if !ok && !unknown {
                    return Err(format!("userlist refused: {error:?}"));
                }
            }
            Asked::Error(_) => {
                if ok {
                    return Err("misbehaviour answered ok".into());
                }
            }
        }
        Ok(())
    }

    fn message(
        &mut self,
        kind: &str,
        sender: &str,
        content: &str,
        seen: &mut Vec<Seen>,
    ) -> Result<(), String> {
        match kind {
            "normal" | "me" => {
                if let Some(token) = post_token(content) {
                    if !self.seen_set.insert(token) {
                        return Err(format!("post p{token} read twice"));
                    }
                    self.seen.push(token);
                    self.unseen_posts.remove(&token);
                }
            }
            "whisper" if sender != "System" => seen.push(Seen::Pushed {
                from: sender.to_owned(),
                token: codec::token_of(content),
                text: content.to_owned(),
            }),
            "whisper" | "whisperops" | "system" => {}
            other => return Err(format!("unknown message type {other}")),
        }
        Ok(())
    }
}

impl<R: Choices + core::fmt::Debug> LoginClient for ArscClient<R> {
    fn protocol(&self) -> Protocol {
        Protocol::Arsc
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

    fn heal(&mut self) {
        self.healed = true;
    }

    fn logins(&self) -> u32 {
        self.logins
    }

    fn act(&mut self, now: Instant, dir: &Directory) -> Vec<Do> {
        self.next_at = now + ms(self.rng.range(50..=3_000));
        if self.conn.is_none() {
            return vec![Do::Connect];
        }
        if self.refused {
            return vec![Do::Close];
        }
        match self.sid.clone() {
            None if !self.connecting => vec![self.connect()],
            None => Vec::new(),
            Some(sid) => self.online_turn(sid, dir),
        }
    }

    fn on_bytes(&mut self, bytes: &[u8]) -> Result<Vec<Seen>, String> {
        self.inbuf.extend_from_slice(bytes);
        let mut seen = Vec::new();
        while let Some(end) = self.inbuf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.inbuf.drain(..=end).collect();
            let line = String::from_utf8(line[..end].to_vec())
                .map_err(|_| format!("{}: a line that is not UTF-8", self.name))?;
            let parsed = parse_line(&line)
                .ok_or_else(|| format!("{}: unreadable line {line:?}", self.name))?;
            self.on_line(parsed, &mut seen)
                .map_err(|e| format!("{}: {e} (line {line:?})", self.name))?;
        }
        Ok(seen)
    }

    fn connected(&mut self, conn: ConnId, _now: Instant) {
        self.conn = Some(conn);
        self.sid = None;
        self.connecting = false;
        self.refused = false;
        self.asked.clear();
        self.inbuf.clear();
        self.unseen_posts.clear();
    }

    fn lost(&mut self, now: Instant) {
        self.conn = None;
        self.sid = None;
        self.connecting = false;
        self.refused = false;
        self.asked.clear();
        self.inbuf.clear();
        self.unseen_posts.clear();
        self.next_at = now + ms(self.rng.range(10..=2_000));
    }

    fn online(&self) -> bool {
        self.conn.is_some() && self.sid.is_some()
    }

    fn settled(&self) -> bool {
        self.asked.is_empty()
    }

    fn room_posts(&self) -> &[u64] {
        &self.seen
    }

    fn end_problem(&self) -> Option<String> {
        let token = self.unseen_posts.first()?;
        Some(format!(
            "arsc {}: post p{token} was answered ok but never reached it",
            self.name
        ))
    }
}

fn ms(n: u64) -> core::time::Duration {
    core::time::Duration::from_millis(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_parser_reads_both_kinds() {
        assert_eq!(
            parse_line("<arscmessage><type>me</type><sendtime>01:02</sendtime><sender>a</sender><content>x &amp; y</content></arscmessage>"),
            Some(Line::Message {
                kind: "me".into(),
                sender: "a".into(),
                content: "x & y".into()
            })
        );
        assert_eq!(
            parse_line("<arscmessage><type>me</type><sendtime>1700000000</sendtime><sender>a</sender><content>x</content></arscmessage>"),
            None,
            "sendtime is HH:MM"
        );
        assert_eq!(post_token("p4294967296 says & hi"), Some(1 << 32));
    }
}
