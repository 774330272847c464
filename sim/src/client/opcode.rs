//! A virtual opcode client of the main world: it logs in to an account of its own
//! (`op0`, `op1`, ... with password `pw-opN`), follows random valid scripts (contact
//! requests to accounts of every protocol and their confirmation when a `233` comes,
//! chats, messages with and without media, media fetched back, chat and contact lists,
//! logout and login again, dropped connections) and misbehaves sometimes (unknown
//! opcodes, malformed fields, bytes that are not UTF-8, over-long lines, a registration
//! of a taken name).
//!
//! One request at a time: each gets exactly one answer of its kind (`219 400` followed
//! at once by its `220` echo; lists with their count, elements and end), and `407`
//! exactly when the client is not logged in. Pushes (`220`, `233`) may come between
//! answers. Media fetched back must be the bytes sent (media bytes are derived from the
//! message's token). The client codec is written apart from proto's. What needs the
//! world's view (a `220` reaches only its chat's members, carries a message as sent; a
//! stored message's `219 400` waits for its commit) is the oracle's (`oracle/opcode.rs`).

use core::net::IpAddr;
use std::collections::{BTreeMap, VecDeque};

use switchboard_proto::{ConnId, Instant, Protocol};

use crate::choices::Choices;
use crate::client::ims::{Do, MessageSent, Seen};
use crate::client::ws2017_codec as codec;
use crate::client::{Directory, LoginClient};

/// The longest line the world's server takes (`opcode.max_line_bytes`).
pub(crate) const MAX_LINE: usize = 4096;
/// The largest media the world's server takes (`opcode.max_media_bytes`).
pub(crate) const MAX_MEDIA: usize = 64;

/// What a request expects back (also read by the standalone loop, `opcode_loop`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// A status line of this opcode (`212` also names the user); in the world a durable
    /// request may get a bare `211` instead (the store is failing, or its rate is spent).
    Status(u16),
    /// `219`, and on 400 its `220` echo of `token`.
    Send { token: u64 },
    /// `214`, n × `215`, `216`.
    ChatList,
    /// `223` then on 400 `224`, n × `225`, `226`.
    OwnContacts,
    /// `228` then on 400 `229`, n × `230`, `231`.
    Contacts,
    /// `227` with media `id`.
    Media { id: u64 },
    /// `210`.
    Unknown,
    /// `211`.
    Invalid,
}

/// A list being read: its count line `begin` if still to come, then `left` lines of
/// `element`, then `end`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Listing {
    pub(crate) begin: Option<u16>,
    pub(crate) element: u16,
    pub(crate) left: u64,
    pub(crate) end: u16,
}

/// The media bytes a message with `token` carries.
fn media_of(token: u64) -> Vec<u8> {
    let len = 1 + (token % (MAX_MEDIA as u64)) as usize;
    (0..len)
        .map(|i| (token.wrapping_mul(31).wrapping_add(i as u64 * 7) & 0xFF) as u8)
        .collect()
}

/// Percent-encodes every byte but letters and digits.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a percent-encoded field.
pub(crate) fn decode(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut k = 0;
    while k < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[k] == b'%' && k + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[k + 1]), hex(b[k + 2])) {
                out.push((h * 16 + l) as u8);
                k += 3;
                continue;
            }
        }
        out.push(b[k]);
        k += 1;
    }
    out
}

/// One virtual opcode user with at most one connection.
#[derive(Debug)]
pub(crate) struct OpcodeClient<R> {
    idx: u32,
    next_message: u32,
    ip: IpAddr,
    gen: u32,
    name: String,
    password: String,
    /// Every login account (contacts to ask).
    others: Vec<String>,
    rng: R,
    conn: Option<ConnId>,
    logged_in: bool,
    expect: VecDeque<Expect>,
    inbuf: Vec<u8>,
    /// After `219 400` for this token, its `220` echo must follow at once.
    echo_due: Option<u64>,
    listing: Option<Listing>,
    /// Chats seen in `215` lines, with the other member.
    chats: BTreeMap<u64, String>,
    /// A `220` came in a chat not listed yet: list the chats next.
    list_due: bool,
    /// Requesters of `233` pushes to confirm.
    confirm: Vec<String>,
    /// Media ids seen in `220` lines, with the token of their message.
    media: BTreeMap<u64, u64>,
    next_at: Instant,
    healed: bool,
    logins: u32,
}

impl<R: Choices> OpcodeClient<R> {
    pub(crate) fn new(
        idx: u32,
        ip: IpAddr,
        name: String,
        others: Vec<String>,
        rng: R,
        start: Instant,
    ) -> Self {
        OpcodeClient {
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
            expect: VecDeque::new(),
            inbuf: Vec::new(),
            echo_due: None,
            listing: None,
            chats: BTreeMap::new(),
            list_due: false,
            confirm: Vec::new(),
            media: BTreeMap::new(),
            next_at: start,
            healed: false,
            logins: 0,
        }
    }

    fn send(&mut self, line: String, expect: Expect, message: Option<MessageSent>) -> Vec<Do> {
        self.send_bytes(line.into_bytes(), expect, message)
    }

    fn send_bytes(
        &mut self,
        mut bytes: Vec<u8>,
        expect: Expect,
        message: Option<MessageSent>,
    ) -> Vec<Do> {
        self.expect.push_back(expect);
        bytes.extend_from_slice(b"\r\n");
        let token = message.as_ref().map(|m| m.0);
        vec![Do::Send {
            bytes,
            message,
            doc: false,
            asks: Some(token),
        }]
    }

    fn logged_in_turn(&mut self) -> Vec<Do> {
        if let Some(requester) = self.confirm.pop() {
            return self.send(format!("121 {requester}"), Expect::Status(232), None);
        }
        // Listings are answered whole, and a long one (a chat for each ws2017 nick that
        // wrote) overruns a small outbound limit: closed as a slow reader. Once healed the
        // client lists nothing, so it stays logged in.
        if std::mem::take(&mut self.list_due) && !self.healed {
            return self.send("112".into(), Expect::ChatList, None);
        }
        let other = self.rng.pick(&self.others).clone();
        // Chats with accounts, and with ws2017 nicks that wrote (for their login only).
        let chats: Vec<(u64, String)> = (self.chats.iter()).map(|(c, o)| (*c, o.clone())).collect();
        let list = if self.healed { 0 } else { 1 };
        match self.rng.weighted(&[3, 3, 2 * list, 10, 1, list, list, 1]) {
            0 => self.send(format!("121 {other}"), Expect::Status(232), None),
            1 => self.send(format!("113 {other}"), Expect::Status(217), None),
            3 if !chats.is_empty() => {
                let (chat, to) = self.rng.pick(&chats).clone();
                let token = (u64::from(self.idx) << 32) | u64::from(self.next_message);
                self.next_message += 1;
                let mut line = format!("115 {chat} {}", encode(codec::body(token).as_bytes()));
                if self.rng.ratio(1, 4) {
                    line.push(' ');
                    line.push_str(&encode(&media_of(token)));
                }
                let sent = (token, self.name.clone(), to);
                self.send(line, Expect::Send { token }, Some(sent))
            }
            4 => {
                let ids: Vec<u64> = self.media.keys().copied().collect();
                let id = match ids.is_empty() {
                    true => self.rng.below(4),
                    false => *self.rng.pick(&ids),
                };
                self.send(format!("119 {id}"), Expect::Media { id }, None)
            }
            5 => self.send("118".into(), Expect::OwnContacts, None),
            6 => self.send("120".into(), Expect::Contacts, None),
            7 if !self.healed && self.rng.ratio(1, 3) => {
                self.send("111".into(), Expect::Status(213), None)
            }
            _ if self.healed => self.send(format!("121 {other}"), Expect::Status(232), None),
            _ => self.send("112".into(), Expect::ChatList, None),
        }
    }

    fn misbehave(&mut self) -> Vec<Do> {
        match self.rng.below(7) {
            0 => self.send("999 what".into(), Expect::Unknown, None),
            1 => self.send("114 abc".into(), Expect::Invalid, None),
            2 => self.send_bytes(b"110 \xFF\xFE pw".to_vec(), Expect::Invalid, None),
            3 => self.send(
                format!("121 {}", "x".repeat(MAX_LINE + 10)),
                Expect::Invalid,
                None,
            ),
            4 => self.send("115 1".into(), Expect::Invalid, None),
            5 => {
                let taken = self.rng.pick(&self.others).clone();
                self.send(format!("117 {taken} pw"), Expect::Status(222), None)
            }
            _ if self.logged_in => self.send("112 extra".into(), Expect::Invalid, None),
            _ => self.send("118".into(), Expect::OwnContacts, None),
        }
    }

    fn on_line(&mut self, line: &str, seen: &mut Vec<Seen>) -> Result<(), String> {
        let fields: Vec<&str> = line.split(' ').collect();
        let op: u16 = fields[0].parse().map_err(|_| "no opcode".to_owned())?;
        let number = |k: usize| -> Result<u64, String> {
            let f = fields.get(k).ok_or("missing field")?;
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err("not a number".into());
            }
            f.parse().map_err(|_| "not a number".into())
        };
        // Pushes may come between answers (but not inside a list, nor before an echo).
        if op == 220 || op == 233 {
            let in_list = self.listing.is_some();
            if op == 233 {
                if fields.len() != 2 || in_list {
                    return Err("a 233 out of place".into());
                }
                let requester = String::from_utf8_lossy(&decode(fields[1])).into_owned();
                if !self.confirm.contains(&requester) {
                    self.confirm.push(requester);
                }
                return Ok(());
            }
            if !(4..=5).contains(&fields.len()) || in_list {
                return Err("a 220 out of place".into());
            }
            let chat = number(1)?;
            number(2)?;
            let media = match fields.len() {
                5 => Some(number(4)?),
                _ => None,
            };
            let text = String::from_utf8(decode(fields[3]))
                .map_err(|_| "a message that is not UTF-8".to_owned())?;
            let token = codec::token_of(&text);
            if let (Some(media), Some(token)) = (media, token) {
                self.media.insert(media, token);
            }
            if let Some(expected) = self.echo_due.take() {
                if Some(expected) != token {
                    return Err(format!("the echo of m{expected} is {text:?}"));
                }
                return Ok(());
            }
            let from = match self.chats.get(&chat) {
                Some(other) => other.clone(),
                None => {
                    self.list_due = true;
                    String::new()
                }
            };
            seen.push(Seen::Pushed { from, token, text });
            return Ok(());
        }
        if self.echo_due.is_some() {
            return Err("no 220 echo after 219 400".into());
        }
        if let Some(mut listing) = self.listing {
            if let Some(begin) = listing.begin {
                if op != begin || fields.len() != 2 {
                    return Err("a list without its count".into());
                }
                listing.begin = None;
                listing.left = number(1)?;
                self.listing = Some(listing);
                return Ok(());
            }
            if listing.left > 0 {
                if op != listing.element {
                    return Err("a list is short".into());
                }
                listing.left -= 1;
                if op == 215 {
                    let chat = number(1)?;
                    let me = fields.get(2).copied().unwrap_or_default();
                    let other = fields.get(3).copied().unwrap_or_default();
                    if codec::key(me) != codec::key(&self.name) {
                        return Err("215 names the caller first".into());
                    }
                    self.chats.insert(chat, other.to_owned());
                }
                self.listing = Some(listing);
                return Ok(());
            }
            if op != listing.end || fields.len() != 1 {
                return Err("a list does not end".into());
            }
            self.listing = None;
            return Ok(());
        }
        let Some(expect) = self.expect.pop_front() else {
            return Err("an answer nobody asked for".into());
        };
        let logged_in = self.logged_in;
        let status = |k: usize| -> Result<u64, String> {
            let code = number(k)?;
            if !(400..=412).contains(&code) {
                return Err("no such status".into());
            }
            Ok(code)
        };
        // Durable requests get a bare 211 while the store fails or past their rate; so
        // does a login past the broadcast rate, and a media fetch whose read failed.
        let durable = matches!(
            expect,
            Expect::Send { .. }
                | Expect::Media { .. }
                | Expect::Status(212 | 217 | 218 | 222 | 232)
        );
        match expect {
            Expect::Unknown if line == "210" => Ok(()),
            Expect::Invalid if line == "211" => Ok(()),
            _ if durable && line == "211" => Ok(()),
            Expect::Status(212) if op == 212 => {
                // A refusal (its session is still open elsewhere, the check failed, a
                // rate): again at a later turn.
                if status(1)? == 400 {
                    self.logged_in = true;
                    self.logins += 1;
                    // Chats for one login only are gone with it.
                    self.chats.retain(|&chat, _| chat < 1 << 62);
                }
                Ok(())
            }
            Expect::Status(222) if op == 222 => status(1).map(drop),
            Expect::Status(want) if op == want && fields.len() == 2 => {
                let code = status(1)?;
                if (code == 407) == logged_in {
                    return Err("407 exactly when not logged in".into());
                }
                if want == 213 && code == 400 {
                    self.logged_in = false;
                }
                Ok(())
            }
            Expect::Send { token } if op == 219 && fields.len() == 2 => {
                let code = status(1)?;
                if (code == 407) == logged_in {
                    return Err("407 exactly when not logged in".into());
                }
                if code == 400 {
                    self.echo_due = Some(token);
                }
                Ok(())
            }
            Expect::ChatList if op == 214 && fields.len() == 2 => {
                let left = number(1)?;
                self.chats.clear();
                self.listing = Some(Listing {
                    begin: None,
                    element: 215,
                    left,
                    end: 216,
                });
                Ok(())
            }
            Expect::ChatList if line == "211" && !logged_in => Ok(()),
            Expect::OwnContacts | Expect::Contacts if fields.len() == 2 => {
                let (answer, begin, element, end) = match expect {
                    Expect::OwnContacts => (223, 224, 225, 226),
                    _ => (228, 229, 230, 231),
                };
                if op != answer {
                    return Err("a list answered out of turn".into());
                }
                let code = status(1)?;
                if (code == 407) == logged_in || (code != 400 && code != 407) {
                    return Err("a list's status".into());
                }
                if code == 400 {
                    self.listing = Some(Listing {
                        begin: Some(begin),
                        element,
                        left: 0,
                        end,
                    });
                }
                Ok(())
            }
            Expect::Media { id } if op == 227 => {
                let code = status(1)?;
                if code == 400 {
                    let bytes = fields.get(2).ok_or("227 400 without media")?;
                    let got = decode(bytes);
                    if let Some(&token) = self.media.get(&id) {
                        if got != media_of(token) {
                            return Err(format!(
                                "media {id} of m{token} came back as {got:?}, not as sent"
                            ));
                        }
                    }
                }
                Ok(())
            }
            other => Err(format!("expected {other:?}")),
        }
    }
}

impl<R: Choices + core::fmt::Debug> LoginClient for OpcodeClient<R> {
    fn protocol(&self) -> Protocol {
        Protocol::Opcode
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

    fn act(&mut self, now: Instant, _dir: &Directory) -> Vec<Do> {
        self.next_at = now + ms(self.rng.range(50..=3_000));
        if self.conn.is_none() {
            return vec![Do::Connect];
        }
        // One request at a time.
        if !self.expect.is_empty() || self.listing.is_some() || self.echo_due.is_some() {
            return Vec::new();
        }
        if !self.healed {
            if self.rng.ratio(1, 80) {
                // Drop the connection, at once or after half a line.
                let mut out = Vec::new();
                if self.rng.ratio(1, 2) {
                    out.push(Do::Send {
                        bytes: b"115 0 ha".to_vec(),
                        message: None,
                        doc: false,
                        asks: None,
                    });
                }
                out.push(Do::Close);
                return out;
            }
            if self.rng.ratio(1, 12) {
                return self.misbehave();
            }
        }
        if !self.logged_in {
            let line = format!("110 {} {}", self.name, encode(self.password.as_bytes()));
            return self.send(line, Expect::Status(212), None);
        }
        self.logged_in_turn()
    }

    fn on_bytes(&mut self, bytes: &[u8]) -> Result<Vec<Seen>, String> {
        self.inbuf.extend_from_slice(bytes);
        let mut seen = Vec::new();
        while let Some(end) = self.inbuf.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.inbuf.drain(..end + 2).collect();
            let line = String::from_utf8(line[..end].to_vec())
                .map_err(|_| format!("{}: a line that is not UTF-8", self.name))?;
            if line.contains('\r') || line.contains('\n') {
                return Err(format!("{}: a line with a line break: {line:?}", self.name));
            }
            self.on_line(&line, &mut seen)
                .map_err(|e| format!("{}: {e} (line {line:?})", self.name))?;
        }
        Ok(seen)
    }

    fn connected(&mut self, conn: ConnId, _now: Instant) {
        self.conn = Some(conn);
        self.reset();
    }

    fn lost(&mut self, now: Instant) {
        self.conn = None;
        self.reset();
        self.next_at = now + ms(self.rng.range(10..=2_000));
    }

    fn online(&self) -> bool {
        self.conn.is_some() && self.logged_in
    }

    fn settled(&self) -> bool {
        self.expect.is_empty() && self.listing.is_none() && self.echo_due.is_none()
    }
}

impl<R> OpcodeClient<R> {
    fn reset(&mut self) {
        self.logged_in = false;
        self.expect.clear();
        self.inbuf.clear();
        self.echo_due = None;
        self.listing = None;
        self.list_due = false;
    }
}

fn ms(n: u64) -> core::time::Duration {
    core::time::Duration::from_millis(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_through_the_percent_encoding() {
        let body = codec::body(7 << 32 | 3);
        assert_eq!(decode(&encode(body.as_bytes())), body.as_bytes());
        assert_eq!(decode("a%2"), b"a%2");
        assert_eq!(decode(&encode(&media_of(5))), media_of(5));
    }
}
