//! The protocol adapters: what the generator and the null relay need to know of each
//! protocol's bytes (docs/protocols/*.md), so the modes in [`crate::load`] are written once.
//!
//! A message's text is always the stamp `t<ns>.<sender>`: the send time in nanoseconds
//! since the run started and the sending connection's index, read back from whatever line
//! delivers it.

use std::fmt::Write as _;

/// The password of every account the bench seeds (`compare::seed_names`).
pub const PASSWORD: &str = "pw";

/// A protocol the bench speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Proto {
    /// ws2017's text lines (`uname`, `chatm`).
    Ws2017,
    /// ARSC's XML requests (`connect`, `post`), rooms and whispers.
    Arsc,
    /// ims' XML documents (`LOGIN` with the MD5 hex, `MESSAGE`, `ALIVE`).
    Ims,
    /// opcode's numbered lines (`110` login, `115` message in a chat).
    Opcode,
}

/// What one line a client received means to the generator.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The server's greeting (ws2017 only).
    Greeting,
    /// The login was accepted; arsc's carries the session id every post names.
    LoggedIn(&'a [u8]),
    /// Another client's arrival announced (ws2017 `nuser`, arsc's enter notice).
    Announce,
    /// A message carrying a stamp arrived.
    Delivered {
        /// Its send time, nanoseconds since the run started.
        sent: u64,
        /// The connection that sent it.
        sender: usize,
    },
    /// A message was accepted for a live recipient (or a post was accepted).
    Relayed,
    /// A message was durably stored for an offline recipient.
    Stored,
    /// A line the client must answer at once (ws2017 `cping`).
    Answer(&'static [u8]),
    /// An answer of the opcode setup (contacts, chats) was a success.
    SetupOk,
    /// An opcode chat listed: its id.
    Chat(&'a [u8]),
    /// An error reply.
    Error,
    /// Anything else (echoes, welcome whispers, list frames).
    Other,
}

/// Clients per room in arsc's `logins`: the server's default `arsc.max_room_members`. One
/// room of 10,000 (the size) meant 50 M enter notices of 200 bytes, past the
/// run's timeout for the null relay too.
pub const LOGIN_ROOM: u64 = 1000;

impl Proto {
    /// Every protocol.
    pub const ALL: [Proto; 4] = [Proto::Ws2017, Proto::Arsc, Proto::Ims, Proto::Opcode];

    /// Its name, as in the server's flags and log (`--arsc`, `arsc listening on`).
    pub fn name(self) -> &'static str {
        match self {
            Proto::Ws2017 => "ws2017",
            Proto::Arsc => "arsc",
            Proto::Ims => "ims",
            Proto::Opcode => "opcode",
        }
    }

    /// Whether the server greets a new connection (the connect-only idle test needs it).
    pub fn greets(self) -> bool {
        self == Proto::Ws2017
    }

    /// Whether a login needs an account (seeded before the server starts).
    pub fn needs_accounts(self) -> bool {
        matches!(self, Proto::Ims | Proto::Opcode)
    }

    /// Whether a direct message needs a chat set up after login (opcode).
    pub fn needs_chats(self) -> bool {
        self == Proto::Opcode
    }

    /// Announcements `n` clients logging in one after another receive in all.
    pub fn announcements(self, n: u64) -> u64 {
        // The enter notice goes to the room, the newcomer included.
        let room = |n: u64| n * (n + 1) / 2;
        match self {
            Proto::Ws2017 => n * n.saturating_sub(1) / 2,
            Proto::Arsc => (n / LOGIN_ROOM) * room(LOGIN_ROOM) + room(n % LOGIN_ROOM),
            Proto::Ims | Proto::Opcode => 0,
        }
    }

    /// The room the `i`th client of `logins` enters (arsc): rooms of [`LOGIN_ROOM`].
    pub fn login_room(i: usize) -> String {
        format!("bench{}", i as u64 / LOGIN_ROOM)
    }

    /// What an idle client sends now and then to stay connected (ims' 15 s timeout).
    pub fn keepalive(self) -> Option<&'static [u8]> {
        match self {
            Proto::Ims => Some(b"<ALIVE/>\n"),
            _ => None,
        }
    }

    /// Appends the login of `name` (into `room` for arsc) to `out`.
    pub fn login(self, out: &mut Vec<u8>, name: &str, room: &str) {
        let _ = match self {
            Proto::Ws2017 => write!(Buf(out), "uname {name}\r\n"),
            Proto::Arsc => writeln!(
                Buf(out),
                "<arscrequest><type>connect</type><user>{name}</user><room>{room}</room></arscrequest>"
            ),
            Proto::Ims => writeln!(
                Buf(out),
                "<LOGIN user=\"{name}\" pass=\"{}\"/>",
                md5_pw()
            ),
            Proto::Opcode => write!(Buf(out), "110 {name} {PASSWORD}\r\n"),
        };
    }

    /// Appends a direct message from `from` to `to` with the stamp `t<ns>.<sender>`;
    /// `token` is the sender's arsc sid or the pair's opcode chat id.
    pub fn message(
        self,
        out: &mut Vec<u8>,
        from: &str,
        to: &str,
        token: &[u8],
        ns: u64,
        sender: usize,
    ) {
        let _ = match self {
            Proto::Ws2017 => write!(Buf(out), "chatm {from} {to} 't{ns}.{sender}'\r\n"),
            Proto::Arsc => {
                out.extend_from_slice(b"<arscrequest><type>post</type><sid>");
                out.extend_from_slice(token);
                writeln!(
                    Buf(out),
                    "</sid><content>/msg {to} t{ns}.{sender}</content></arscrequest>"
                )
            }
            Proto::Ims => writeln!(
                Buf(out),
                "<MESSAGE from=\"{from}\" to=\"{to}\">t{ns}.{sender}</MESSAGE>"
            ),
            Proto::Opcode => {
                out.extend_from_slice(b"115 ");
                out.extend_from_slice(token);
                write!(Buf(out), " t{ns}.{sender}\r\n")
            }
        };
    }

    /// Appends an arsc post to the sender's room (session `sid`) with the stamp.
    pub fn room_post(out: &mut Vec<u8>, sid: &[u8], ns: u64, sender: usize) {
        out.extend_from_slice(b"<arscrequest><type>post</type><sid>");
        out.extend_from_slice(sid);
        let _ = writeln!(
            Buf(out),
            "</sid><content>t{ns}.{sender}</content></arscrequest>"
        );
    }

    /// What `line` (without its line ending) means.
    pub fn classify(self, line: &[u8]) -> Event<'_> {
        match self {
            Proto::Ws2017 => ws2017(line),
            Proto::Arsc => arsc(line),
            Proto::Ims => ims(line),
            Proto::Opcode => opcode(line),
        }
    }
}

/// The MD5 hex of [`PASSWORD`], computed once.
fn md5_pw() -> &'static str {
    static HEX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HEX.get_or_init(|| switchboard_store::credentials::md5_hex(PASSWORD))
}

/// `fmt::Write` into a byte vector.
struct Buf<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The stamp `t<ns>.<sender>` at the start of `text` (anything may follow it).
pub fn parse_stamp(text: &[u8]) -> Option<(u64, usize)> {
    let text = text.strip_prefix(b"t")?;
    let dot = memchr::memchr(b'.', text)?;
    let ns = parse_u64(&text[..dot])?;
    let rest = &text[dot + 1..];
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    let sender = parse_u64(&rest[..end])?;
    Some((ns, usize::try_from(sender).ok()?))
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(v)
}

fn delivered(text: &[u8]) -> Event<'_> {
    match parse_stamp(text) {
        Some((sent, sender)) => Event::Delivered { sent, sender },
        None => Event::Other,
    }
}

/// The bytes between `open` and the next `close` in `line`.
pub fn between<'a>(line: &'a [u8], open: &[u8], close: &[u8]) -> Option<&'a [u8]> {
    let start = memchr::memmem::find(line, open)? + open.len();
    let len = memchr::memmem::find(&line[start..], close)?;
    Some(&line[start..start + len])
}

fn ws2017(line: &[u8]) -> Event<'_> {
    if line.starts_with(b"chatm ") {
        match memchr::memchr(b'\'', line) {
            Some(i) => delivered(&line[i + 1..]),
            None => Event::Other,
        }
    } else if line.starts_with(b"nuser ") {
        Event::Announce
    } else if line == b"+OK chatm 'message relayed'" {
        Event::Relayed
    } else if line == b"+OK chatm 'message stored'" {
        Event::Stored
    } else if line.starts_with(b"+OK uname you are ") {
        Event::LoggedIn(b"")
    } else if line == b"cping" {
        Event::Answer(b"cpong\r\n")
    } else if line.starts_with(b"-ERR") {
        Event::Error
    } else if line.starts_with(b"+OK switchboard") || line.starts_with(b"+OK null") {
        Event::Greeting
    } else {
        Event::Other
    }
}

fn arsc(line: &[u8]) -> Event<'_> {
    if line.starts_with(b"<arscmessage>") {
        let Some(content) = between(line, b"<content>", b"</content>") else {
            return Event::Other;
        };
        if line.starts_with(b"<arscmessage><type>system</type>") {
            if content.starts_with(b"User ") && content.windows(7).any(|w| w == b" enters") {
                return Event::Announce;
            }
            return Event::Other;
        }
        delivered(content)
    } else if line.starts_with(b"<arscrespond>") {
        if memchr::memmem::find(line, b"<status>ok</status>").is_none() {
            return Event::Error;
        }
        if line.starts_with(b"<arscrespond><type>connect</type>") {
            Event::LoggedIn(between(line, b"<sid>", b"</sid>").unwrap_or(b""))
        } else {
            Event::Relayed
        }
    } else {
        Event::Other
    }
}

fn ims(line: &[u8]) -> Event<'_> {
    if line.starts_with(b"<MESSAGE from=") {
        match memchr::memchr(b'>', line) {
            Some(i) => delivered(&line[i + 1..]),
            None => Event::Other,
        }
    } else if line.starts_with(b"<MESSAGE result=") {
        match line {
            b"<MESSAGE result=\"1\"/>" => Event::Relayed,
            b"<MESSAGE result=\"-1\"/>" => Event::Stored,
            _ => Event::Error,
        }
    } else if line.starts_with(b"<LOGIN ") && memchr::memmem::find(line, b" result=").is_some() {
        if line.ends_with(b"result=\"1\"/>") {
            Event::LoggedIn(b"")
        } else {
            Event::Error
        }
    } else {
        Event::Other
    }
}

fn opcode(line: &[u8]) -> Event<'_> {
    let mut fields = line.splitn(4, |&b| b == b' ');
    let code = fields.next().unwrap_or(b"");
    let second = fields.next().unwrap_or(b"");
    match code {
        b"220" => {
            let _ts = fields.next();
            delivered(fields.next().unwrap_or(b""))
        }
        b"219" if second == b"400" => Event::Relayed,
        b"212" if second == b"400" => Event::LoggedIn(b""),
        b"232" | b"217" if second == b"400" => Event::SetupOk,
        b"215" => Event::Chat(second),
        b"210" | b"211" | b"212" | b"217" | b"219" | b"232" | b"407" => Event::Error,
        _ => Event::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_read_back_from_each_protocols_delivered_line() {
        let d = |sent, sender| Event::Delivered { sent, sender };
        assert_eq!(
            Proto::Ws2017.classify(b"chatm d1 d0 't123456.1'"),
            d(123_456, 1)
        );
        assert_eq!(Proto::Ws2017.classify(b"chatm d1 d0 'hello'"), Event::Other);
        assert_eq!(
            Proto::Ws2017.classify(b"chatm d1 d0 't99999999999999999999999.1'"),
            Event::Other
        );
        assert_eq!(
            Proto::Arsc.classify(b"<arscmessage><type>whisper</type><sendtime>08:00</sendtime><sender>d1</sender><content>t5.1</content></arscmessage>"),
            d(5, 1)
        );
        assert_eq!(
            Proto::Arsc.classify(b"<arscmessage><type>whisper</type><sendtime>08:00</sendtime><sender>System</sender><content>You whispered to d0: t5.1</content></arscmessage>"),
            Event::Other
        );
        assert_eq!(
            Proto::Ims.classify(b"<MESSAGE from=\"d1\" to=\"d0\">t7.1</MESSAGE>"),
            d(7, 1)
        );
        assert_eq!(Proto::Opcode.classify(b"220 3 1700000000000 t9.2"), d(9, 2));
    }

    #[test]
    fn arsc_logins_fill_rooms_of_a_thousand() {
        assert_eq!(Proto::login_room(0), Proto::login_room(999));
        assert_ne!(Proto::login_room(999), Proto::login_room(1000));
        // Each newcomer's notice reaches its room, itself included.
        assert_eq!(Proto::Arsc.announcements(3), 1 + 2 + 3);
        let room = 1000 * 1001 / 2;
        assert_eq!(Proto::Arsc.announcements(2500), 2 * room + 500 * 501 / 2);
        assert_eq!(Proto::Ws2017.announcements(3), 2 + 1);
    }

    #[test]
    fn logins_and_acknowledgements_are_recognised() {
        assert_eq!(
            Proto::Arsc.classify(b"<arscrespond><type>connect</type><status>ok</status><sid>00ff</sid><version>0.1</version></arscrespond>"),
            Event::LoggedIn(b"00ff")
        );
        assert_eq!(
            Proto::Arsc.classify(b"<arscrespond><type>post</type><status>error</status><error>x</error></arscrespond>"),
            Event::Error
        );
        assert_eq!(
            Proto::Arsc.classify(b"<arscmessage><type>system</type><sendtime>08:00</sendtime><sender>System</sender><content>User a enters the room r.</content></arscmessage>"),
            Event::Announce
        );
        assert_eq!(
            Proto::Ims.classify(b"<LOGIN user=\"a\" result=\"1\"/>"),
            Event::LoggedIn(b"")
        );
        assert_eq!(
            Proto::Ims.classify(b"<LOGIN user=\"a\" result=\"0\"/>"),
            Event::Error
        );
        assert_eq!(
            Proto::Ims.classify(b"<LOGIN user=\"a\" pass=\"91\"/>"),
            Event::Other
        );
        assert_eq!(
            Proto::Ims.classify(b"<MESSAGE result=\"-1\"/>"),
            Event::Stored
        );
        assert_eq!(Proto::Opcode.classify(b"212 406 a"), Event::Error);
        assert_eq!(Proto::Opcode.classify(b"215 12 a b"), Event::Chat(b"12"));
    }
}
