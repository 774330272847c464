//! opcode lines to [`Request`]s, and [`Reply`]s to lines (`seeds/opcode.txt`, with the
//! decisions of PROTOCOLS.md).
//!
//! A line ends at LF, CR or CRLF; fields are separated by exactly one space; `Str` fields
//! are percent-encoded, `Long` and `int` fields are decimal. Every reply ends with CRLF.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

/// A client request, its fields decoded and of the right kinds. A `Str` field with
/// nothing percent-encoded in it borrows the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Request<'a> {
    /// `110 Username Password` (also `100`, the seed's example).
    Login {
        name: Cow<'a, str>,
        password: Cow<'a, str>,
    },
    /// `111`.
    Logout,
    /// `112`.
    ChatList,
    /// `113 ContactName`.
    ChatCreate { contact: Cow<'a, str> },
    /// `114 ChatID`.
    ChatDelete { chat: u64 },
    /// `115 ChatID Message [Media]`.
    MessageSend {
        chat: u64,
        message: Cow<'a, str>,
        media: Option<Vec<u8>>,
    },
    /// `117 Username Password [Email [Gender]]`.
    Register {
        name: Cow<'a, str>,
        password: Cow<'a, str>,
        email: Option<Cow<'a, str>>,
        gender: Option<Cow<'a, str>>,
    },
    /// `118`.
    OwnContacts,
    /// `119 MediaID`.
    Media { id: u64 },
    /// `120`.
    Contacts,
    /// `121 Username`.
    ConfirmContact { name: Cow<'a, str> },
}

/// Why a line is not a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// An empty line: ignored.
    Empty,
    /// No request has this opcode (or it is no number): `210`.
    Unknown,
    /// A known opcode with the wrong number or kind of fields, or a line that is not
    /// UTF-8: `211`.
    Invalid,
}

/// A status code of the table (`STATUSCODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// 400 OK.
    Ok = 400,
    /// 401 USERNAME_INVALID.
    UsernameInvalid = 401,
    /// 402 PASSWORD_INVALID.
    PasswordInvalid = 402,
    /// 403 USERNAME_ALREADY_TAKEN.
    UsernameTaken = 403,
    /// 404 CLIENT_ALREADY_LOGGED_IN.
    ClientLoggedIn = 404,
    /// 405 USERNAME_ALREADY_LOGGED_IN.
    UserLoggedIn = 405,
    /// 406 PASSWORD_WRONG.
    PasswordWrong = 406,
    /// 407 CLIENT_NOT_LOGGED_IN.
    NotLoggedIn = 407,
    /// 408 CHAT_NOT_FOUND.
    ChatNotFound = 408,
    /// 409 CHAT_PERMISSION_DENIED.
    PermissionDenied = 409,
    /// 410 CONTACT_NOT_FOUND.
    ContactNotFound = 410,
    /// 411 CONTACT_NOT_CONFIRMED.
    ContactNotConfirmed = 411,
    /// 412 MEDIA_NOT_FOUND.
    MediaNotFound = 412,
}

impl Status {
    /// Its number on the wire.
    pub(crate) fn code(self) -> u16 {
        self as u16
    }
}

/// A server line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reply<'a> {
    /// `210`.
    Unknown,
    /// `211`.
    Invalid,
    /// `212 CODE Username`.
    Login { status: Status, name: &'a str },
    /// `213 CODE`.
    Logout(Status),
    /// `214 ChatCount`.
    ChatListBegin(usize),
    /// `215 ChatID Username Username`.
    ChatListElement {
        chat: u64,
        me: &'a str,
        other: &'a str,
    },
    /// `216`.
    ChatListEnd,
    /// `217 CODE`.
    ChatCreate(Status),
    /// `218 CODE`.
    ChatDelete(Status),
    /// `219 CODE`.
    MessageSend(Status),
    /// `220 ChatID TimeStamp Message [MediaID]`.
    MessageSended {
        chat: u64,
        ms: u64,
        message: &'a str,
        media: Option<u64>,
    },
    /// `222 CODE`.
    Register(Status),
    /// `223 CODE`.
    OwnContacts(Status),
    /// `224 Count`.
    OwnContactsBegin(usize),
    /// `225 ContactName ContactSince`.
    OwnContact { name: &'a str, since_ms: u64 },
    /// `226` (ContactOwnListEnd; the seed repeats 224's name).
    OwnContactsEnd,
    /// `227 CODE [Media]`: the media on 400.
    Media {
        status: Status,
        bytes: Option<&'a [u8]>,
    },
    /// `228 CODE`.
    Contacts(Status),
    /// `229 Count`.
    ContactsBegin(usize),
    /// `230 ContactName`.
    Contact(&'a str),
    /// `231`.
    ContactsEnd,
    /// `232 CODE`.
    ConfirmContact(Status),
    /// `233 Username`.
    ConfirmContactAdd(&'a str),
}

/// The fields after the opcode: the first four (no request has more), and how many
/// there are (so a line with too many is told apart). Found without an allocation.
struct Fields<'a> {
    first: [&'a str; 4],
    len: usize,
}

impl<'a> Fields<'a> {
    /// `rest` split at every space; none when the line has no space after its opcode.
    fn split(rest: Option<&'a str>) -> Fields<'a> {
        let mut fields = Fields {
            first: [""; 4],
            len: 0,
        };
        let Some(rest) = rest else {
            return fields;
        };
        let mut push = |field: &'a str| {
            if let Some(slot) = fields.first.get_mut(fields.len) {
                *slot = field;
            }
            fields.len += 1;
        };
        // One pass over the bytes: the lines are short, and a search per field cost more
        // than the fields themselves. A space is ASCII, so each piece is a `str` still.
        let mut start = 0;
        for (i, &b) in rest.as_bytes().iter().enumerate() {
            if b == b' ' {
                push(rest.get(start..i).unwrap_or_default());
                start = i + 1;
            }
        }
        push(rest.get(start..).unwrap_or_default());
        fields
    }

    fn get(&self, i: usize) -> Option<&'a str> {
        (i < self.len).then(|| self.first.get(i).copied()).flatten()
    }
}

/// Parses one line (without its line end). Liberal where the table leaves room: `100` is
/// Login, Email and Gender may be omitted; exact otherwise: one space between fields, an
/// empty field is an empty `Str`.
pub(crate) fn parse(line: &[u8]) -> Result<Request<'_>, ParseError> {
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    let space = line.iter().position(|&b| b == b' ');
    let op = match space {
        Some(i) => &line[..i],
        None => line,
    };
    let op = match number(op) {
        Some(op) => op,
        None => return Err(ParseError::Unknown),
    };
    if !matches!(op, 100 | 110..=115 | 117..=121) {
        return Err(ParseError::Unknown);
    }
    // Checked once: every field is a piece of it between spaces, so UTF-8 too.
    let Ok(line) = std::str::from_utf8(line) else {
        return Err(ParseError::Invalid);
    };
    let fields = Fields::split(space.and_then(|i| line.get(i + 1..)));
    let invalid = ParseError::Invalid;
    let text =
        |i: usize| -> Result<Cow<'_, str>, ParseError> { string(fields.get(i).ok_or(invalid)?) };
    let long = |i: usize| -> Result<u64, ParseError> {
        number(fields.get(i).ok_or(invalid)?.as_bytes()).ok_or(invalid)
    };
    let count = |ok: &[usize]| -> Result<(), ParseError> {
        if ok.contains(&fields.len) {
            Ok(())
        } else {
            Err(invalid)
        }
    };
    Ok(match op {
        100 | 110 => {
            count(&[2])?;
            Request::Login {
                name: text(0)?,
                password: text(1)?,
            }
        }
        111 => count(&[0]).map(|()| Request::Logout)?,
        112 => count(&[0]).map(|()| Request::ChatList)?,
        113 => {
            count(&[1])?;
            Request::ChatCreate { contact: text(0)? }
        }
        114 => {
            count(&[1])?;
            Request::ChatDelete { chat: long(0)? }
        }
        115 => {
            count(&[2, 3])?;
            Request::MessageSend {
                chat: long(0)?,
                message: text(1)?,
                media: fields.get(2).map(|m| decode(m.as_bytes())),
            }
        }
        117 => {
            count(&[2, 3, 4])?;
            let optional = |i: usize| match fields.get(i) {
                Some(_) => text(i).map(|s| Some(s).filter(|s| !s.is_empty())),
                None => Ok(None),
            };
            Request::Register {
                name: text(0)?,
                password: text(1)?,
                email: optional(2)?,
                gender: optional(3)?,
            }
        }
        118 => count(&[0]).map(|()| Request::OwnContacts)?,
        119 => {
            count(&[1])?;
            Request::Media { id: long(0)? }
        }
        120 => count(&[0]).map(|()| Request::Contacts)?,
        121 => {
            count(&[1])?;
            Request::ConfirmContact { name: text(0)? }
        }
        _ => return Err(ParseError::Unknown),
    })
}

/// A decimal `Long` or `int`: ASCII digits only, no sign, no overflow.
fn number(field: &[u8]) -> Option<u64> {
    if field.is_empty() {
        return None;
    }
    field.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// A percent-encoded field's bytes: `%XX` in either case, an invalid `%` taken literally,
/// `+` a plus sign.
pub(crate) fn decode(field: &[u8]) -> Vec<u8> {
    percent_encoding::percent_decode(field).collect()
}

/// A `Str` field (a piece of a UTF-8 line): itself when it has no `%`, else decoded and
/// checked to be UTF-8 still.
fn string(field: &str) -> Result<Cow<'_, str>, ParseError> {
    if !field.as_bytes().contains(&b'%') {
        return Ok(Cow::Borrowed(field));
    }
    String::from_utf8(decode(field.as_bytes()))
        .map(Cow::Owned)
        .map_err(|_| ParseError::Invalid)
}

/// Whether byte `b` is written as `%XX`: `%`, space, every byte below 0x20 and 0x7F;
/// bytes of 0x80 and up too in `binary` bytes (not UTF-8).
fn escaped(b: u8, binary: bool) -> bool {
    b == b'%' || b == b' ' || b < 0x20 || b == 0x7F || (binary && b >= 0x80)
}

/// Appends `bytes` percent-encoded: `%`, space, every byte below 0x20 and 0x7F as `%XX`
/// with upper-case hex; bytes of 0x80 and up too when `bytes` is not UTF-8 (binary media),
/// so every line the server sends is UTF-8.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn put_encoded(out: &mut BytesMut, bytes: &[u8]) {
    put_escaped(out, bytes, std::str::from_utf8(bytes).is_err());
}

/// Appends text percent-encoded as `put_encoded` does (text is UTF-8: never binary).
fn put_text(out: &mut impl Sink, text: &str) {
    put_escaped(out, text.as_bytes(), false);
}

/// Whether no byte of `bytes` is escaped: a message is mostly plain, and a byte-by-byte
/// test cost more than the rest of the encoding.
fn plain(bytes: &[u8], binary: bool) -> bool {
    // `escaped`, without branches.
    let hit = |b: u8| (b <= b' ') | (b == b'%') | (b == 0x7f) | (binary & (b >= 0x80));
    !crate::protocol::scan::any_byte(bytes, hit)
}

fn put_escaped(out: &mut impl Sink, bytes: &[u8], binary: bool) {
    if plain(bytes, binary) {
        return out.put(bytes);
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if escaped(b, binary) {
            out.put(&bytes[start..i]);
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.put(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            start = i + 1;
        }
    }
    out.put(&bytes[start..]);
}

/// How many bytes `bytes` takes percent-encoded (as `put_encoded` writes it).
pub(crate) fn encoded_len(bytes: &[u8]) -> usize {
    escaped_len(bytes, std::str::from_utf8(bytes).is_err())
}

/// How many bytes text takes percent-encoded (as [`put_text`] writes it).
fn text_len(text: &str) -> usize {
    escaped_len(text.as_bytes(), false)
}

fn escaped_len(bytes: &[u8], binary: bool) -> usize {
    if plain(bytes, binary) {
        return bytes.len();
    }
    let escapes = bytes.iter().filter(|&&b| escaped(b, binary)).count();
    bytes.len() + 2 * escapes
}

/// How many digits `n` takes in decimal.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The decimal digits of 0 to 99, two by two.
const PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// The fixed part of a line (opcode, numbers, spaces) made on the stack and appended
/// with one copy: a line is a few of these runs and its percent-encoded text, instead
/// of a copy per field.
struct Run {
    bytes: [u8; Run::CAP],
    len: usize,
}

impl Run {
    /// The longest run: `220 `, two numbers of 20 digits and their spaces.
    const CAP: usize = 48;

    fn new() -> Run {
        Run {
            bytes: [0; Run::CAP],
            len: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        self.bytes[self.len..end].copy_from_slice(bytes);
        self.len = end;
    }

    /// `op`, a space and the status code.
    fn status(&mut self, op: &[u8; 3], status: Status) {
        let code = usize::from(status.code() % 100);
        let pair = &PAIRS[2 * code..2 * code + 2];
        self.push(&[op[0], op[1], op[2], b' ', b'4', pair[0], pair[1]]);
    }

    /// `n` in decimal, two digits at a time from the last (no `fmt` machinery: it was a
    /// tenth of the instructions of a delivered message).
    fn number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        while n >= 100 {
            let pair = 2 * (n % 100) as usize;
            n /= 100;
            at -= 2;
            digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        }
        if n >= 10 {
            let pair = 2 * n as usize;
            at -= 2;
            digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        } else {
            at -= 1;
            digits[at] = b'0' + n as u8;
        }
        self.push(&digits[at..]);
    }

    /// Appends the run to `out` and empties it.
    fn flush(&mut self, out: &mut impl Sink) {
        out.put(&self.bytes[..self.len]);
        self.len = 0;
    }
}

/// Appends `n` in decimal.
#[cfg(test)]
fn put_number(out: &mut BytesMut, n: u64) {
    let mut run = Run::new();
    run.number(n);
    run.flush(out);
}

impl Reply<'_> {
    /// Bytes the line takes, CRLF included, exactly: its buffer is allocated once and
    /// frozen whole (a buffer with room to spare costs `Bytes` a second allocation).
    pub(crate) fn encoded_len(&self) -> usize {
        // An opcode, a space and a status code: three digits each.
        const STATUS: usize = 7;
        const CRLF: usize = 2;
        let number = |n: u64| digits(n);
        CRLF + match self {
            Reply::Unknown
            | Reply::Invalid
            | Reply::ChatListEnd
            | Reply::OwnContactsEnd
            | Reply::ContactsEnd => 3,
            Reply::Logout(_)
            | Reply::ChatCreate(_)
            | Reply::ChatDelete(_)
            | Reply::MessageSend(_)
            | Reply::Register(_)
            | Reply::OwnContacts(_)
            | Reply::Contacts(_)
            | Reply::ConfirmContact(_) => STATUS,
            Reply::Login { name, .. } => STATUS + 1 + text_len(name),
            Reply::ChatListBegin(n) | Reply::OwnContactsBegin(n) | Reply::ContactsBegin(n) => {
                4 + number(*n as u64)
            }
            Reply::ChatListElement { chat, me, other } => {
                4 + number(*chat) + 1 + text_len(me) + 1 + text_len(other)
            }
            Reply::MessageSended {
                chat,
                ms,
                message,
                media,
            } => {
                4 + number(*chat)
                    + 1
                    + number(*ms)
                    + 1
                    + text_len(message)
                    + media.map_or(0, |m| 1 + number(m))
            }
            Reply::OwnContact { name, since_ms } => 4 + text_len(name) + 1 + number(*since_ms),
            Reply::Media { bytes, .. } => STATUS + bytes.map_or(0, |b| 1 + encoded_len(b)),
            Reply::Contact(name) | Reply::ConfirmContactAdd(name) => 4 + text_len(name),
        }
    }
}

/// Appends one reply line, CRLF included.
pub(crate) fn encode<S: Sink>(reply: &Reply<'_>, out: &mut S) {
    let mut run = Run::new();
    let count = |run: &mut Run, op: &[u8; 4], n: usize| {
        run.push(op);
        run.number(n as u64);
    };
    // The text of a line between two runs.
    let text = |run: &mut Run, out: &mut S, text: &str| {
        run.flush(out);
        put_text(out, text);
    };
    match reply {
        Reply::Unknown => run.push(b"210"),
        Reply::Invalid => run.push(b"211"),
        Reply::Login { status, name } => {
            run.status(b"212", *status);
            run.push(b" ");
            text(&mut run, out, name);
        }
        Reply::Logout(s) => run.status(b"213", *s),
        Reply::ChatListBegin(n) => count(&mut run, b"214 ", *n),
        Reply::ChatListElement { chat, me, other } => {
            run.push(b"215 ");
            run.number(*chat);
            run.push(b" ");
            text(&mut run, out, me);
            run.push(b" ");
            text(&mut run, out, other);
        }
        Reply::ChatListEnd => run.push(b"216"),
        Reply::ChatCreate(s) => run.status(b"217", *s),
        Reply::ChatDelete(s) => run.status(b"218", *s),
        Reply::MessageSend(s) => run.status(b"219", *s),
        Reply::MessageSended {
            chat,
            ms,
            message,
            media,
        } => {
            run.push(b"220 ");
            run.number(*chat);
            run.push(b" ");
            run.number(*ms);
            run.push(b" ");
            text(&mut run, out, message);
            if let Some(media) = media {
                run.push(b" ");
                run.number(*media);
            }
        }
        Reply::Register(s) => run.status(b"222", *s),
        Reply::OwnContacts(s) => run.status(b"223", *s),
        Reply::OwnContactsBegin(n) => count(&mut run, b"224 ", *n),
        Reply::OwnContact { name, since_ms } => {
            run.push(b"225 ");
            text(&mut run, out, name);
            run.push(b" ");
            run.number(*since_ms);
        }
        Reply::OwnContactsEnd => run.push(b"226"),
        Reply::Media { status, bytes } => {
            run.status(b"227", *status);
            if let Some(bytes) = bytes {
                run.push(b" ");
                run.flush(out);
                put_escaped(out, bytes, std::str::from_utf8(bytes).is_err());
            }
        }
        Reply::Contacts(s) => run.status(b"228", *s),
        Reply::ContactsBegin(n) => count(&mut run, b"229 ", *n),
        Reply::Contact(name) => {
            run.push(b"230 ");
            text(&mut run, out, name);
        }
        Reply::ContactsEnd => run.push(b"231"),
        Reply::ConfirmContact(s) => run.status(b"232", *s),
        Reply::ConfirmContactAdd(name) => {
            run.push(b"233 ");
            text(&mut run, out, name);
        }
    }
    run.push(b"\r\n");
    run.flush(out);
}

/// One reply as its own bytes.
pub(crate) fn line(reply: &Reply<'_>) -> Bytes {
    lines(std::slice::from_ref(reply))
}

/// Replies one after the other as one buffer: made on the stack and copied once into an
/// allocation of exactly their length when short (as most are); else written into a
/// buffer of their exact length. Either way one allocation, frozen whole (a buffer with
/// room to spare costs `Bytes` a second allocation).
pub(crate) fn lines(replies: &[Reply<'_>]) -> Bytes {
    match encoded(replies, &mut Short::new()) {
        Lines::Short(short) => Bytes::copy_from_slice(short),
        Lines::Long(bytes) => bytes,
    }
}

/// Replies one after the other, encoded: into `short` when they fit (as most do, to be
/// copied where they go), else into a buffer of their exact length.
pub(crate) fn encoded<'s>(replies: &[Reply<'_>], short: &'s mut Short) -> Lines<'s> {
    for reply in replies {
        encode(reply, short);
    }
    if !short.overflow {
        return Lines::Short(&short.bytes[..short.len]);
    }
    let mut out = BytesMut::with_capacity(replies.iter().map(Reply::encoded_len).sum());
    for reply in replies {
        encode(reply, &mut out);
    }
    Lines::Long(out.freeze())
}

/// Encoded replies: see [`encoded`].
pub(crate) enum Lines<'s> {
    /// In the stack's buffer.
    Short(&'s [u8]),
    /// Too long for it: their own bytes.
    Long(Bytes),
}

impl Lines<'_> {
    /// Their length in bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            Lines::Short(short) => short.len(),
            Lines::Long(bytes) => bytes.len(),
        }
    }
}

/// Where a line is written.
pub(crate) trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for BytesMut {
    fn put(&mut self, bytes: &[u8]) {
        self.put_slice(bytes);
    }
}

/// Short lines made on the stack; `overflow` once something did not fit (what it holds is
/// then of no use).
pub(crate) struct Short {
    bytes: [u8; Short::CAP],
    len: usize,
    overflow: bool,
}

impl Short {
    /// Room for a message of about 200 bytes with its `219` and `220`.
    const CAP: usize = 256;

    /// An empty buffer, for [`encoded`].
    pub(crate) fn new() -> Short {
        Short {
            bytes: [0; Short::CAP],
            len: 0,
            overflow: false,
        }
    }
}

impl Sink for Short {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        match self.bytes.get_mut(self.len..end) {
            Some(room) if !self.overflow => {
                room.copy_from_slice(bytes);
                self.len = end;
            }
            _ => self.overflow = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::lines::{Line, LineFramer};
    use bytes::Buf;

    fn lines(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, ()>> {
        let mut framer = LineFramer::cr_or_lf(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        feed(&mut framer, &mut buf, input, &mut out);
        out
    }

    fn feed(
        framer: &mut LineFramer,
        buf: &mut BytesMut,
        input: &[u8],
        out: &mut Vec<Result<Vec<u8>, ()>>,
    ) {
        buf.extend_from_slice(input);
        while let Some(frame) = framer.next_line(buf) {
            match frame {
                Line::Complete { len, consumed } => {
                    if len > 0 {
                        out.push(Ok(buf[..len].to_vec()));
                    }
                    buf.advance(consumed);
                }
                Line::TooLong => out.push(Err(())),
            }
        }
    }

    /// Every reply knows its exact length, escapes included, so its buffer is allocated
    /// once and frozen without a second allocation.
    #[test]
    fn every_reply_knows_its_length() {
        let replies = [
            Reply::Unknown,
            Reply::Invalid,
            Reply::Login {
                status: Status::Ok,
                name: "hans",
            },
            Reply::Logout(Status::NotLoggedIn),
            Reply::ChatListBegin(usize::MAX),
            Reply::ChatListBegin(0),
            Reply::ChatListElement {
                chat: u64::MAX,
                me: "hans",
                other: "grete 100%",
            },
            Reply::ChatListEnd,
            Reply::ChatCreate(Status::ContactNotConfirmed),
            Reply::ChatDelete(Status::Ok),
            Reply::MessageSend(Status::Ok),
            Reply::MessageSended {
                chat: u64::MAX,
                ms: u64::MAX,
                message: "a-plain-message",
                media: Some(u64::MAX),
            },
            Reply::MessageSended {
                chat: 0,
                ms: 9,
                message: "grüße, 100 % \r\n\u{7f}",
                media: Some(10),
            },
            Reply::MessageSended {
                chat: 10,
                ms: 1_700_000_000_000,
                message: "",
                media: None,
            },
            Reply::Register(Status::UsernameTaken),
            Reply::OwnContacts(Status::Ok),
            Reply::OwnContactsBegin(12),
            Reply::OwnContact {
                name: "grete",
                since_ms: u64::MAX,
            },
            Reply::OwnContactsEnd,
            Reply::Media {
                status: Status::Ok,
                bytes: Some(b"abc"),
            },
            Reply::Media {
                status: Status::Ok,
                bytes: Some(&[0xFF, 0, b' ', 0xC3, 0xBC]),
            },
            Reply::Media {
                status: Status::Ok,
                bytes: None,
            },
            Reply::Contacts(Status::Ok),
            Reply::ContactsBegin(3),
            Reply::Contact("grete"),
            Reply::ContactsEnd,
            Reply::ConfirmContact(Status::Ok),
            Reply::ConfirmContactAdd("gr ete"),
        ];
        for reply in &replies {
            let mut out = BytesMut::new();
            encode(reply, &mut out);
            assert_eq!(
                out.len(),
                reply.encoded_len(),
                "{:?}",
                String::from_utf8_lossy(&out)
            );
            assert_eq!(line(reply), out, "{reply:?}");
        }
    }

    /// Numbers are written in decimal whatever their length.
    #[test]
    fn numbers_are_decimal() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            400,
            1_700_000_000_000,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = BytesMut::new();
            put_number(&mut out, n);
            assert_eq!(&out[..], n.to_string().as_bytes());
            assert_eq!(digits(n), out.len());
        }
    }

    /// Replies made on the stack and those too long for it have the same bytes, at
    /// every length around the stack's size, with and without escapes.
    #[test]
    fn short_and_long_lines_are_the_same_bytes() {
        for len in (0..40).chain(200..300).chain([1000, 5000]) {
            for fill in ["x", " ", "ü"] {
                let message = fill.repeat(len);
                let replies = [
                    Reply::MessageSend(Status::Ok),
                    Reply::MessageSended {
                        chat: 12,
                        ms: 1_700_000_000_000,
                        message: &message,
                        media: None,
                    },
                ];
                let mut want = BytesMut::new();
                for reply in &replies {
                    encode(reply, &mut want);
                }
                assert_eq!(super::lines(&replies), want, "{len} x {fill:?}");
                let mut one = BytesMut::new();
                encode(&replies[1], &mut one);
                assert_eq!(line(&replies[1]), one, "{len} x {fill:?}");
            }
        }
    }

    #[test]
    fn lf_cr_and_crlf_end_lines_and_empty_lines_vanish() {
        let got = lines(b"111\r\n112\n\n113 a\r114 1\r\n", 100);
        let want: Vec<Result<Vec<u8>, ()>> = ["111", "112", "113 a", "114 1"]
            .iter()
            .map(|s| Ok(s.as_bytes().to_vec()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn every_split_point_gives_the_same_lines() {
        let input: &[u8] =
            b"110 bob pw\r\n115 1 hello%20world m%00\r\n\r\n0123456789abcdef0123\n112\r118\n";
        let want = lines(input, 16);
        assert!(want.contains(&Err(())), "the long line is reported");
        for cut in 0..=input.len() {
            let mut framer = LineFramer::cr_or_lf(16);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            feed(&mut framer, &mut buf, &input[..cut], &mut got);
            feed(&mut framer, &mut buf, &input[cut..], &mut got);
            assert_eq!(got, want, "cut at {cut}");
        }
        let mut framer = LineFramer::cr_or_lf(16);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in input {
            feed(&mut framer, &mut buf, std::slice::from_ref(b), &mut got);
        }
        assert_eq!(got, want, "byte by byte");
    }

    #[test]
    fn a_long_line_is_never_buffered_whole() {
        let mut framer = LineFramer::cr_or_lf(8);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        feed(&mut framer, &mut buf, b"0123456789", &mut got);
        for _ in 0..1000 {
            feed(&mut framer, &mut buf, b"0123456789", &mut got);
            assert!(buf.len() <= 9);
        }
        feed(&mut framer, &mut buf, b"x\n111\n", &mut got);
        assert_eq!(got, vec![Err(()), Ok(b"111".to_vec())]);
    }

    fn req(line: &str) -> Result<Request<'_>, ParseError> {
        parse(line.as_bytes())
    }

    #[test]
    fn every_request_parses_with_its_kinds() {
        let s = |x: &'static str| Cow::Borrowed(x);
        assert_eq!(
            req("110 hans meinPasswort123"),
            Ok(Request::Login {
                name: s("hans"),
                password: s("meinPasswort123")
            })
        );
        assert_eq!(req("100 hans pw"), req("110 hans pw"), "100 is an alias");
        assert_eq!(req("111"), Ok(Request::Logout));
        assert_eq!(req("112"), Ok(Request::ChatList));
        assert_eq!(
            req("113 an%20na"),
            Ok(Request::ChatCreate {
                contact: s("an na")
            })
        );
        assert_eq!(req("114 7"), Ok(Request::ChatDelete { chat: 7 }));
        assert_eq!(
            req("115 7 hallo%20Andi"),
            Ok(Request::MessageSend {
                chat: 7,
                message: s("hallo Andi"),
                media: None
            })
        );
        assert_eq!(
            req("115 7 pic %FF%00a+b"),
            Ok(Request::MessageSend {
                chat: 7,
                message: s("pic"),
                media: Some(vec![0xFF, 0, b'a', b'+', b'b'])
            })
        );
        assert_eq!(
            req("117 hans pw"),
            Ok(Request::Register {
                name: s("hans"),
                password: s("pw"),
                email: None,
                gender: None
            })
        );
        assert_eq!(
            req("117 hans pw h%40x.de m"),
            Ok(Request::Register {
                name: s("hans"),
                password: s("pw"),
                email: Some(s("h@x.de")),
                gender: Some(s("m"))
            })
        );
        assert_eq!(req("118"), Ok(Request::OwnContacts));
        assert_eq!(req("119 3"), Ok(Request::Media { id: 3 }));
        assert_eq!(req("120"), Ok(Request::Contacts));
        assert_eq!(
            req("121 grete"),
            Ok(Request::ConfirmContact { name: s("grete") })
        );
    }

    #[test]
    fn unknown_and_invalid_lines() {
        assert_eq!(req(""), Err(ParseError::Empty));
        for unknown in [
            "116",
            "109",
            "212 400 x",
            "hello",
            "-110 a b",
            "999999999999999999999",
            " 110 a b",
        ] {
            assert_eq!(req(unknown), Err(ParseError::Unknown), "{unknown:?}");
        }
        for invalid in [
            "110 hans",
            "110 hans pw extra",
            "111 ",
            "112 x",
            "114 x",
            "114 -1",
            "114 99999999999999999999999",
            "114",
            "115 1",
            "115 1 a b c",
            "117 hans",
            "117 a b c d e",
            "119 1.5",
            "121",
            "110 %FF pw",
        ] {
            assert_eq!(req(invalid), Err(ParseError::Invalid), "{invalid:?}");
        }
        assert_eq!(parse(b"110 \xFF pw"), Err(ParseError::Invalid), "not UTF-8");
        assert_eq!(parse(b"\xFF"), Err(ParseError::Unknown));
    }

    /// A message's text is the line itself unless it has something percent-encoded (no
    /// copy per message); numbers take every digit up to `u64::MAX` and no more.
    #[test]
    fn plain_fields_borrow_the_line_and_numbers_are_exact() {
        match req("115 7 hi") {
            Ok(Request::MessageSend {
                message: Cow::Borrowed("hi"),
                ..
            }) => {}
            other => panic!("not borrowed: {other:?}"),
        }
        match req("115 7 h%69") {
            Ok(Request::MessageSend {
                message: Cow::Owned(m),
                ..
            }) => assert_eq!(m, "hi"),
            other => panic!("not decoded: {other:?}"),
        }
        assert_eq!(req("114 0007"), Ok(Request::ChatDelete { chat: 7 }));
        assert_eq!(
            req("114 18446744073709551615"),
            Ok(Request::ChatDelete { chat: u64::MAX })
        );
        assert_eq!(req("114 18446744073709551616"), Err(ParseError::Invalid));
        assert_eq!(req("114 +1"), Err(ParseError::Invalid));
        assert_eq!(req("117 a b c d e f g"), Err(ParseError::Invalid));
        assert_eq!(req("112 "), Err(ParseError::Invalid));
    }

    #[test]
    fn percent_decoding_is_liberal() {
        assert_eq!(decode(b"a%2fb%2Fc"), b"a/b/c");
        assert_eq!(decode(b"100%"), b"100%");
        assert_eq!(decode(b"%zz%4"), b"%zz%4");
        assert_eq!(decode(b"a+b"), b"a+b");
        assert_eq!(
            req("121 "),
            Ok(Request::ConfirmContact {
                name: Cow::Borrowed("")
            }),
            "an empty Str is an empty token"
        );
    }

    /// The step-at-a-time test finds every escaped byte wherever it sits, and passes
    /// every other byte.
    #[test]
    fn plain_finds_every_escaped_byte_at_every_offset() {
        for binary in [false, true] {
            for b in 0..=255u8 {
                for len in [1, 7, 8, 9, 15, 16, 17, 23, 32, 40] {
                    for at in 0..len {
                        let mut bytes = vec![b'a'; len];
                        bytes[at] = b;
                        assert_eq!(
                            plain(&bytes, binary),
                            !escaped(b, binary),
                            "byte {b:#x} at {at} of {len}, binary {binary}"
                        );
                    }
                }
            }
        }
        // Bytes next to one another that could carry into a neighbour.
        for pair in [
            [0x20, 0x21],
            [0x21, 0x20],
            [0x00, 0xFF],
            [0x7E, 0x80],
            [0x24, 0x26],
        ] {
            let mut bytes = vec![b'z'; 16];
            bytes[6..8].copy_from_slice(&pair);
            let want = !pair.iter().any(|&b| escaped(b, false));
            assert_eq!(plain(&bytes, false), want, "{pair:?}");
        }
    }

    #[test]
    fn strings_round_trip_through_encoding() {
        for text in [
            "hello world",
            "100% sure",
            "a\r\nb\tc\u{7f}",
            "grüße 日本",
            "",
            "+%20",
        ] {
            let mut out = BytesMut::new();
            put_encoded(&mut out, text.as_bytes());
            assert_eq!(out.len(), encoded_len(text.as_bytes()));
            assert!(!out.iter().any(|&b| b <= b' ' || b == 0x7F));
            assert_eq!(decode(&out), text.as_bytes(), "{text:?}");
            // And through a whole request.
            let line = format!("115 1 {}", std::str::from_utf8(&out).unwrap());
            assert_eq!(
                req(&line),
                Ok(Request::MessageSend {
                    chat: 1,
                    message: Cow::Owned(text.to_owned()),
                    media: None
                })
            );
        }
        let binary: Vec<u8> = (0..=255).collect();
        let mut out = BytesMut::new();
        put_encoded(&mut out, &binary);
        assert!(
            std::str::from_utf8(&out).is_ok(),
            "binary media goes as ASCII"
        );
        assert_eq!(decode(&out), binary);
        assert_eq!(out.len(), encoded_len(&binary));
    }

    #[test]
    fn replies_have_the_pinned_bytes() {
        let cases: Vec<(Reply<'_>, &str)> = vec![
            (Reply::Unknown, "210\r\n"),
            (Reply::Invalid, "211\r\n"),
            (
                Reply::Login {
                    status: Status::Ok,
                    name: "hans",
                },
                "212 400 hans\r\n",
            ),
            (Reply::Logout(Status::NotLoggedIn), "213 407\r\n"),
            (Reply::ChatListBegin(2), "214 2\r\n"),
            (
                Reply::ChatListElement {
                    chat: 3,
                    me: "a",
                    other: "b c",
                },
                "215 3 a b%20c\r\n",
            ),
            (Reply::ChatListEnd, "216\r\n"),
            (
                Reply::ChatCreate(Status::ContactNotConfirmed),
                "217 411\r\n",
            ),
            (Reply::ChatDelete(Status::ChatNotFound), "218 408\r\n"),
            (Reply::MessageSend(Status::PermissionDenied), "219 409\r\n"),
            (
                Reply::MessageSended {
                    chat: 1,
                    ms: 1_700_000_000_000,
                    message: "hi there",
                    media: None,
                },
                "220 1 1700000000000 hi%20there\r\n",
            ),
            (
                Reply::MessageSended {
                    chat: 1,
                    ms: 5,
                    message: "",
                    media: Some(9),
                },
                "220 1 5  9\r\n",
            ),
            (Reply::Register(Status::UsernameTaken), "222 403\r\n"),
            (Reply::OwnContacts(Status::Ok), "223 400\r\n"),
            (Reply::OwnContactsBegin(1), "224 1\r\n"),
            (
                Reply::OwnContact {
                    name: "grete",
                    since_ms: 12,
                },
                "225 grete 12\r\n",
            ),
            (Reply::OwnContactsEnd, "226\r\n"),
            (
                Reply::Media {
                    status: Status::Ok,
                    bytes: Some(b"a b"),
                },
                "227 400 a%20b\r\n",
            ),
            (
                Reply::Media {
                    status: Status::MediaNotFound,
                    bytes: None,
                },
                "227 412\r\n",
            ),
            (Reply::Contacts(Status::Ok), "228 400\r\n"),
            (Reply::ContactsBegin(0), "229 0\r\n"),
            (Reply::Contact("x"), "230 x\r\n"),
            (Reply::ContactsEnd, "231\r\n"),
            (
                Reply::ConfirmContact(Status::ContactNotFound),
                "232 410\r\n",
            ),
            (Reply::ConfirmContactAdd("hans"), "233 hans\r\n"),
        ];
        for (reply, bytes) in cases {
            assert_eq!(&line(&reply)[..], bytes.as_bytes(), "{reply:?}");
        }
        let codes: Vec<u16> = [
            Status::Ok,
            Status::UsernameInvalid,
            Status::PasswordInvalid,
            Status::UsernameTaken,
            Status::ClientLoggedIn,
            Status::UserLoggedIn,
            Status::PasswordWrong,
            Status::NotLoggedIn,
            Status::ChatNotFound,
            Status::PermissionDenied,
            Status::ContactNotFound,
            Status::ContactNotConfirmed,
            Status::MediaNotFound,
        ]
        .iter()
        .map(|s| s.code())
        .collect();
        assert_eq!(codes, (400..=412).collect::<Vec<u16>>());
    }
}
