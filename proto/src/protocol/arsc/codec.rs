//! arsc bytes: `<arscrequest>` documents found in a byte stream and parsed with quick-xml,
//! and every `<arscrespond>` and `<arscmessage>` the server sends.
//!
//! Framing (PROTOCOLS.md, arsc): everything up to the next `<arscrequest` is padding and
//! skipped; a document ends at its matching `</arscrequest>`; a document longer than the
//! frame limit, or one that is not well-formed, becomes a [`Frame::TooLong`] or
//! [`Frame::Malformed`] and the stream resynchronises at the next `<arscrequest`.

use std::sync::LazyLock;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use memchr::memmem;
use quick_xml::errors::{Error as XmlError, SyntaxError};
use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;

/// The start of every request.
const OPEN: &[u8] = b"<arscrequest";
/// The start of its end tag.
const CLOSE: &[u8] = b"</arscrequest";

/// Searchers for [`OPEN`] and [`CLOSE`], built once: `memmem::find` builds one per call,
/// and every request looks for both.
static FIND_OPEN: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(OPEN));
static FIND_CLOSE: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(CLOSE));

/// A request's fields, unvalidated; children in any order, unknown ones ignored, the
/// first of a repeated one kept. Values are unescaped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Request {
    /// `<type>`: `connect`, `post`, `userlist`, or anything else (unknown).
    pub(super) kind: Option<String>,
    pub(super) sid: Option<String>,
    pub(super) user: Option<String>,
    pub(super) password: Option<String>,
    pub(super) room: Option<String>,
    pub(super) language: Option<String>,
    pub(super) template: Option<String>,
    pub(super) content: Option<String>,
}

/// What the decoder found in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Frame {
    /// A well-formed request.
    Request(Request),
    /// A document that is not well-formed XML; `kind` is its `<type>` if it can be told.
    Malformed { kind: Option<String> },
    /// A document longer than the frame limit; `kind` as for `Malformed`.
    TooLong { kind: Option<String> },
}

/// Finds requests in a stream delivered in arbitrary pieces. Holds at most the frame
/// limit (plus one read) of unparsed bytes: padding is dropped as it is scanned.
///
/// The work is linear in the input whatever a peer sends: bytes are dropped from the
/// front in O(1) (`BytesMut::advance`), the search for an end tag never goes over bytes
/// already searched (`no_close_before` outlives the document it was found for), the
/// lenient look for a refused document's `<type>` stops at the next start tag, and a
/// document whose end tags keep falling inside comments is parsed at most
/// [`MAX_ATTEMPTS`] times.
#[derive(Debug)]
pub(super) struct Decoder {
    buf: BytesMut,
    max_frame: usize,
    /// Whether `buf` starts with a document's start tag.
    in_doc: bool,
    /// Where the search for the end tag goes on (bytes before it were searched).
    scan_from: usize,
    /// No end tag starts before this offset of `buf`: a fact about the bytes, kept
    /// across documents, so a flood of start tags is not searched again per document.
    no_close_before: usize,
    /// Parses of the document at the front that ended inside a comment or CDATA.
    attempts: u8,
    /// Bytes searched and parsed so far, for the test that the work stays linear.
    examined: usize,
}

/// Parses of one document that may end inside a comment or CDATA section before it is
/// refused as malformed: each parse reads it from its start, so without a bound a
/// document of many `<!-- </arscrequest> -->` would cost its length squared.
const MAX_ATTEMPTS: u8 = 8;

/// How a parse of a buffered document ended.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// Complete, `consumed` bytes long.
    Done { request: Request, consumed: usize },
    /// Not well-formed; the stream goes on at `resume` (a nested start tag) or at the
    /// next start tag after this one.
    Malformed { resume: Option<usize> },
    /// Not XML (markup a client did not escape, say), within every bound: read as the
    /// original server read requests ([`parse_lenient`]), else malformed.
    NotXml,
    /// The end tag found was inside a comment or CDATA section: wait for more.
    Incomplete,
}

impl Decoder {
    /// A decoder that refuses documents over `max_frame` bytes.
    pub(super) fn new(max_frame: usize) -> Decoder {
        Decoder {
            buf: BytesMut::new(),
            max_frame: max_frame.max(OPEN.len() + 2),
            in_doc: false,
            scan_from: 0,
            no_close_before: 0,
            attempts: 0,
            examined: 0,
        }
    }

    /// Gives back the buffer's memory beyond what it still holds, after frames were taken
    /// (see [`crate::frame::shrink_to_leftover`]; the offsets kept are into the same bytes).
    pub(super) fn shrink_to_leftover(&mut self) {
        crate::frame::shrink_to_leftover(&mut self.buf);
    }

    /// The bytes the buffer holds room for, used or not.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes held and not yet framed.
    pub(super) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Adds bytes from the peer.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next frame complete in what was pushed, if any.
    pub(super) fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if !self.in_doc && !self.find_start() {
                return None;
            }
            // `<arscrequest/>`: a request with no fields.
            match self.buf.get(OPEN.len()..OPEN.len() + 2) {
                Some(b"/>") => {
                    self.restart(OPEN.len() + 2);
                    return Some(Frame::Request(Request::default()));
                }
                None if self.buf.get(OPEN.len()) == Some(&b'/') => return None,
                _ => {}
            }
            // Past an end tag that fell inside a comment, `scan_from` is beyond a known
            // end tag: what is learnt then is not about the bytes before it.
            let contiguous = self.attempts == 0;
            let from = self.scan_from.max(self.no_close_before).min(self.buf.len());
            self.examined += self.buf.len() - from;
            let Some(end) = FIND_CLOSE.find(&self.buf[from..]).map(|i| i + from) else {
                let searched = self.buf.len().saturating_sub(CLOSE.len() - 1);
                if contiguous {
                    self.no_close_before = searched;
                }
                if self.buf.len() > self.max_frame {
                    return Some(self.too_long());
                }
                self.scan_from = searched.max(self.scan_from);
                return None;
            };
            if contiguous {
                self.no_close_before = end;
            }
            let Some(gt) = memchr::memchr(b'>', &self.buf[end..]).map(|i| i + end) else {
                if self.buf.len() > self.max_frame {
                    return Some(self.too_long());
                }
                self.scan_from = end;
                return None;
            };
            if gt >= self.max_frame {
                return Some(self.too_long());
            }
            self.examined += gt + 1;
            match parse(&self.buf[..=gt]) {
                Parsed::Done { request, consumed } => {
                    self.restart(consumed);
                    return Some(Frame::Request(request));
                }
                Parsed::NotXml => {
                    if let Some(request) = parse_lenient(&self.buf[..=gt]) {
                        self.restart(gt + 1);
                        return Some(Frame::Request(request));
                    }
                    return Some(self.malformed(None, gt));
                }
                Parsed::Malformed { resume } => return Some(self.malformed(resume, gt)),
                Parsed::Incomplete if self.attempts + 1 >= MAX_ATTEMPTS => {
                    return Some(self.malformed(None, gt));
                }
                Parsed::Incomplete => {
                    self.attempts += 1;
                    self.scan_from = end + 1;
                    continue;
                }
            }
        }
    }

    /// Drops padding up to the next start tag; whether one is at the front now.
    fn find_start(&mut self) -> bool {
        let mut from = 0;
        while let Some(i) = FIND_OPEN.find(&self.buf[from..]).map(|i| i + from) {
            self.examined += i + 1 - from;
            match self.buf.get(i + OPEN.len()) {
                // The tag's name may go on (`<arscrequestX`): wait for its next byte.
                None => {
                    self.consume(i);
                    return false;
                }
                Some(b'>' | b'/' | b' ' | b'\t' | b'\r' | b'\n') => {
                    self.consume(i);
                    self.in_doc = true;
                    self.scan_from = OPEN.len();
                    return true;
                }
                Some(_) => from = i + 1,
            }
        }
        // Keep what may be the beginning of a start tag.
        let keep = self.buf.len().min(OPEN.len() - 1);
        let cut = self.buf.len() - keep;
        let keep_from = (cut..self.buf.len())
            .find(|&i| OPEN.starts_with(&self.buf[i..]))
            .unwrap_or(self.buf.len());
        self.consume(keep_from);
        false
    }

    /// The document at the front is over the limit: it is dropped, up to the next start
    /// tag after its own.
    fn too_long(&mut self) -> Frame {
        let own = self.own_bytes(self.buf.len().min(self.max_frame));
        let (examined, kind) = (own.len(), tell_kind(own));
        self.examined += examined;
        self.restart(1);
        Frame::TooLong { kind }
    }

    /// The document at the front, ending by `gt`, is not well-formed: it is dropped up
    /// to `resume` (a nested start tag), else up to the next start tag after its own.
    fn malformed(&mut self, resume: Option<usize>, gt: usize) -> Frame {
        let own = self.own_bytes(gt + 1);
        let (examined, kind) = (own.len(), tell_kind(own));
        self.examined += examined;
        self.restart(resume.unwrap_or(1));
        Frame::Malformed { kind }
    }

    /// The first `len` bytes, cut at the next start tag after the document's own: what
    /// the resynchronisation drops, so looking at it costs no more than dropping it.
    fn own_bytes(&self, len: usize) -> &[u8] {
        let doc = &self.buf[..len.min(self.buf.len())];
        let next = doc
            .get(1..)
            .and_then(|rest| FIND_OPEN.find(rest))
            .map_or(doc.len(), |i| i + 1);
        &doc[..next]
    }

    /// Drops the first `n` bytes and looks for the next document.
    fn restart(&mut self, n: usize) {
        self.consume(n);
        self.in_doc = false;
        self.scan_from = 0;
        self.attempts = 0;
    }

    /// Drops the first `n` bytes (at most all) in O(1); what is known about the rest
    /// moves with it.
    fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.advance(n);
        self.no_close_before = self.no_close_before.saturating_sub(n);
    }
}

/// Deepest element nesting a request may have (a request is two levels deep): deeper is
/// malformed, so no peer makes the parser keep a long stack of open names.
pub(super) const MAX_DEPTH: usize = 16;
/// Most attributes one element may carry (a request reads none): more is malformed.
pub(super) const MAX_ATTRIBUTES: usize = 32;

/// Parses the document at the front of `doc`, which ends with a candidate end tag: the
/// plain shape every client sends by [`parse_plain`], anything else by [`parse_xml`].
fn parse(doc: &[u8]) -> Parsed {
    parse_plain(doc).unwrap_or_else(|| parse_xml(doc))
}

/// The request `doc` holds when it is exactly `<arscrequest>`, children
/// `<name>text</name>` with nothing between them, and `</arscrequest>`: names of ASCII
/// letters (not `arscrequest`), each closed by the same name, texts of UTF-8 without
/// markup, references, `]`, `>` or CR. Read without the XML parser (which was a third
/// of a whisper's instructions); `None` for anything else, which [`parse_xml`] reads as
/// it always did. A test checks that the two agree on every document of this shape built
/// from a few pieces, and on its near misses.
fn parse_plain(doc: &[u8]) -> Option<Parsed> {
    const ROOT_OPEN: &[u8] = b"<arscrequest>";
    const ROOT_CLOSE: &[u8] = b"</arscrequest>";
    let mut rest = doc.strip_prefix(ROOT_OPEN)?.strip_suffix(ROOT_CLOSE)?;
    let mut request = Request::default();
    while !rest.is_empty() {
        let open = rest.strip_prefix(b"<")?;
        let name_len = memchr::memchr(b'>', open)?;
        let name = &open[..name_len];
        if name.is_empty() || !name.iter().all(u8::is_ascii_alphabetic) || name == b"arscrequest" {
            return None;
        }
        let after = &open[name_len + 1..];
        let text_len = memchr::memchr(b'<', after)?;
        let text = &after[..text_len];
        if text
            .iter()
            .any(|&b| matches!(b, b'&' | b']' | b'>' | b'\r'))
        {
            return None;
        }
        rest = after[text_len..]
            .strip_prefix(b"</")?
            .strip_prefix(name)?
            .strip_prefix(b">")?;
        let text = std::str::from_utf8(text).ok()?;
        if let Some(field) = Field::of(name) {
            request.field(field).get_or_insert_with(|| text.to_owned());
        }
    }
    Some(Parsed::Done {
        request,
        consumed: doc.len(),
    })
}

/// Parses the document at the front of `doc`, which ends with a candidate end tag.
///
/// XML as far as a request needs it and no further: the five predefined entities and
/// character references are expanded, any other entity is kept as written (never looked
/// up), and a DOCTYPE makes the document malformed (nothing in it is processed).
fn parse_xml(doc: &[u8]) -> Parsed {
    let mut reader = Reader::from_reader(doc);
    let config = reader.config_mut();
    config.allow_dangling_amp = true;
    config.check_end_names = true;
    config.expand_empty_elements = true;
    let mut request = Request::default();
    let mut depth = 0usize;
    // The child being read (depth 1): the field it fills, if it is one, and its text so
    // far.
    let mut child: Option<(Option<Field>, String)> = None;
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        match reader.read_event() {
            Ok(XmlEvent::Start(start)) => {
                let name = start.local_name();
                let name: &str = name.as_ref();
                if name == "arscrequest" && depth > 0 {
                    return Parsed::Malformed {
                        resume: Some(before),
                    };
                }
                if depth == 0 && name != "arscrequest" {
                    return Parsed::Malformed { resume: None };
                }
                if depth >= MAX_DEPTH || start.attributes().count() > MAX_ATTRIBUTES {
                    return Parsed::Malformed { resume: None };
                }
                if depth == 1 {
                    child = Some((Field::of(name.as_bytes()), String::new()));
                }
                depth += 1;
            }
            Ok(XmlEvent::End(_)) => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    if let Some((Some(field), text)) = child.take() {
                        request.field(field).get_or_insert(text);
                    }
                }
                if depth == 0 {
                    let consumed = usize::try_from(reader.buffer_position()).unwrap_or(doc.len());
                    return Parsed::Done {
                        request,
                        consumed: consumed.min(doc.len()),
                    };
                }
            }
            Ok(XmlEvent::Text(text)) => {
                if let (2, Some((Some(_), value))) = (depth, child.as_mut()) {
                    value.push_str(&text);
                }
            }
            Ok(XmlEvent::CData(text)) => {
                if let (2, Some((Some(_), value))) = (depth, child.as_mut()) {
                    value.push_str(&text);
                }
            }
            Ok(XmlEvent::GeneralRef(reference)) => {
                if let (2, Some((Some(_), value))) = (depth, child.as_mut()) {
                    value.push_str(&entity(&reference));
                }
            }
            Ok(XmlEvent::Eof) => return Parsed::Incomplete,
            Ok(XmlEvent::DocType(_)) => return Parsed::Malformed { resume: None },
            Ok(_) => {}
            Err(XmlError::Syntax(
                SyntaxError::UnclosedCData | SyntaxError::UnclosedComment | SyntaxError::UnclosedPI,
            )) => return Parsed::Incomplete,
            Err(_) => return Parsed::NotXml,
        }
    }
}

/// Reads a request the XML parser refused as the original server read every request:
/// each field from the first `<name>` to the last `</name>` after it, its text as
/// written but for references (decoded as the parser decodes them). A client that
/// escapes nothing, as none had to, is understood: `<content>I <3 you</content>`. `None`
/// (malformed) for a document that is not UTF-8, holds a DOCTYPE, opens a field it
/// never closes, or has no `<type>`.
fn parse_lenient(doc: &[u8]) -> Option<Request> {
    let doc = std::str::from_utf8(doc).ok()?;
    if doc.contains("<!DOCTYPE") {
        return None;
    }
    let mut request = Request::default();
    for (name, field) in Field::NAMES {
        let (open, close) = (format!("<{name}>"), format!("</{name}>"));
        let Some(start) = doc.find(&open).map(|i| i + open.len()) else {
            continue;
        };
        let len = doc[start..].rfind(&close)?;
        *request.field(field) = Some(decode_references(&doc[start..start + len]));
    }
    request.kind.is_some().then_some(request)
}

/// `text` with its references decoded as [`entity`] decodes them; a `&` that starts
/// none is kept.
fn decode_references(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let reference = rest[1..]
            .find(';')
            .filter(|&end| end > 0 && end <= 10)
            .map(|end| &rest[1..=end])
            .filter(|raw| raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'#'));
        match reference {
            Some(raw) => {
                out.push_str(&entity(raw));
                rest = &rest[raw.len() + 2..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A child of a request that the server reads; its name in any case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Kind,
    Sid,
    User,
    Password,
    Room,
    Language,
    Template,
    Content,
}

impl Field {
    /// Every field, by the name of its child.
    const NAMES: [(&str, Field); 8] = [
        ("type", Field::Kind),
        ("sid", Field::Sid),
        ("user", Field::User),
        ("password", Field::Password),
        ("room", Field::Room),
        ("language", Field::Language),
        ("template", Field::Template),
        ("content", Field::Content),
    ];

    /// The field a child of this name fills, compared without a lowercase copy (every
    /// request has a few).
    fn of(name: &[u8]) -> Option<Field> {
        (Self::NAMES.iter())
            .find(|(known, _)| known.as_bytes().eq_ignore_ascii_case(name))
            .map(|&(_, field)| field)
    }
}

impl Request {
    fn field(&mut self, field: Field) -> &mut Option<String> {
        match field {
            Field::Kind => &mut self.kind,
            Field::Sid => &mut self.sid,
            Field::User => &mut self.user,
            Field::Password => &mut self.password,
            Field::Room => &mut self.room,
            Field::Language => &mut self.language,
            Field::Template => &mut self.template,
            Field::Content => &mut self.content,
        }
    }
}

/// The text of an entity reference (`raw` is what stood between `&` and `;`): the five
/// XML entities and character references; anything else is kept literally.
fn entity(raw: &str) -> String {
    let named = match raw {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    };
    let numeric = || {
        let digits = raw.strip_prefix('#')?;
        let code = match digits.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => digits.parse().ok()?,
        };
        char::from_u32(code).filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
    };
    match named.or_else(numeric) {
        Some(c) => c.to_string(),
        None => format!("&{raw};"),
    }
}

/// The `<type>` of a document that could not be parsed, when a lenient look finds one.
fn tell_kind(doc: &[u8]) -> Option<String> {
    // Children's names and types match in any case, as in a well-formed request.
    let start = (doc.windows(b"<type>".len())).position(|w| w.eq_ignore_ascii_case(b"<type>"))?
        + b"<type>".len();
    let len = memchr::memchr(b'<', &doc[start..])?;
    let kind = String::from_utf8_lossy(&doc[start..start + len]);
    let kind = kind.trim();
    (KINDS.iter())
        .find(|k| k.eq_ignore_ascii_case(kind))
        .map(|&k| k.to_owned())
}

/// The request types the server answers.
pub(super) const KINDS: [&str; 3] = ["connect", "post", "userlist"];

/// The type of a pushed `<arscmessage>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MessageType {
    Normal,
    Me,
    Whisper,
    WhisperOps,
    System,
}

impl MessageType {
    fn as_str(self) -> &'static str {
        match self {
            MessageType::Normal => "normal",
            MessageType::Me => "me",
            MessageType::Whisper => "whisper",
            MessageType::WhisperOps => "whisperops",
            MessageType::System => "system",
        }
    }
}

/// Everything the server sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Reply<'a> {
    /// `connect` accepted, with the session id.
    ConnectOk { sid: &'a str },
    /// `post` accepted.
    PostOk,
    /// The users of the caller's room: name and level.
    UserList { users: &'a [(&'a str, u8)] },
    /// A request of type `kind` refused (a `connect` error also carries the version).
    Error { kind: &'a str, text: &'a str },
    /// A pushed message.
    Message {
        kind: MessageType,
        sendtime: &'a str,
        sender: &'a str,
        content: &'a str,
    },
    /// The `System` whisper that echoes a whisper to its sender: `You whispered to TO:
    /// TEXT`, written from its parts (on every whisper; building the text first cost an
    /// allocation and the formatter).
    Whispered {
        sendtime: &'a str,
        to: &'a str,
        text: &'a str,
    },
}

/// The sender of the server's own messages.
pub(super) const SYSTEM: &str = "System";

/// What a whisper's echo says before the recipient's name.
const WHISPERED: &str = "You whispered to ";

/// The answer to an accepted `post`, with its line end: the most frequent answer, whose
/// length the post's gate asks for.
pub(super) const POST_OK: &[u8] =
    b"<arscrespond><type>post</type><status>ok</status></arscrespond>\n";

/// The protocol version every `connect` answer carries.
const VERSION: &str = "0.1";

/// Appends `reply`, with its `\n`.
pub(super) fn encode(reply: &Reply<'_>, out: &mut BytesMut) {
    match reply {
        Reply::ConnectOk { sid } => {
            out.put_slice(b"<arscrespond><type>connect</type><status>ok</status><sid>");
            escape(sid, out);
            out.put_slice(b"</sid><version>");
            out.put_slice(VERSION.as_bytes());
            out.put_slice(b"</version></arscrespond>");
        }
        Reply::PostOk => return out.put_slice(POST_OK),
        Reply::UserList { users } => {
            out.put_slice(b"<arscrespond><type>userlist</type><status>ok</status>");
            for (name, level) in users.iter() {
                out.put_slice(b"<user><name>");
                escape(name, out);
                out.put_slice(b"</name><level>");
                put_level(*level, out);
                out.put_slice(b"</level></user>");
            }
            out.put_slice(b"</arscrespond>");
        }
        Reply::Error { kind, text } => {
            out.put_slice(b"<arscrespond><type>");
            escape(kind, out);
            out.put_slice(b"</type><status>error</status><error>");
            escape(text, out);
            out.put_slice(b"</error>");
            if *kind == "connect" {
                out.put_slice(b"<version>");
                out.put_slice(VERSION.as_bytes());
                out.put_slice(b"</version>");
            }
            out.put_slice(b"</arscrespond>");
        }
        Reply::Message {
            kind,
            sendtime,
            sender,
            content,
        } if plain(&[sendtime, sender, content]) => {
            return crate::protocol::scan::put_joined(
                out,
                &[
                    "<arscmessage><type>",
                    kind.as_str(),
                    "</type><sendtime>",
                    sendtime,
                    "</sendtime><sender>",
                    sender,
                    "</sender><content>",
                    content,
                    "</content></arscmessage>\n",
                ],
                b"",
            );
        }
        Reply::Whispered { sendtime, to, text } if plain(&[sendtime, to, text]) => {
            return crate::protocol::scan::put_joined(
                out,
                &[
                    "<arscmessage><type>whisper</type><sendtime>",
                    sendtime,
                    "</sendtime><sender>",
                    SYSTEM,
                    "</sender><content>",
                    WHISPERED,
                    to,
                    ": ",
                    text,
                    "</content></arscmessage>\n",
                ],
                b"",
            );
        }
        Reply::Message {
            kind,
            sendtime,
            sender,
            content,
        } => {
            out.put_slice(b"<arscmessage><type>");
            out.put_slice(kind.as_str().as_bytes());
            out.put_slice(b"</type><sendtime>");
            escape(sendtime, out);
            out.put_slice(b"</sendtime><sender>");
            escape(sender, out);
            out.put_slice(b"</sender><content>");
            escape(content, out);
            out.put_slice(b"</content></arscmessage>");
        }
        Reply::Whispered { sendtime, to, text } => {
            out.put_slice(b"<arscmessage><type>whisper</type><sendtime>");
            escape(sendtime, out);
            out.put_slice(b"</sendtime><sender>");
            out.put_slice(SYSTEM.as_bytes());
            out.put_slice(b"</sender><content>");
            out.put_slice(WHISPERED.as_bytes());
            // A name holds no line break, so the parts escape as their concatenation.
            escape(to, out);
            out.put_slice(b": ");
            escape(text, out);
            out.put_slice(b"</content></arscmessage>");
        }
    }
    out.put_u8(b'\n');
}

/// `reply` as bytes, in one allocation unless it needs escaping.
pub(super) fn to_bytes(reply: &Reply<'_>) -> Bytes {
    let mut out = BytesMut::with_capacity(len_hint(reply));
    encode(reply, &mut out);
    out.freeze()
}

/// The length of `reply` encoded when nothing in it needs escaping (more when something
/// does).
pub(super) fn len_hint(reply: &Reply<'_>) -> usize {
    // The longest fixed text of a reply, tags and line end: the error's with its version.
    const FIXED: usize = 112;
    FIXED
        + match reply {
            Reply::ConnectOk { sid } => sid.len(),
            Reply::PostOk => 0,
            Reply::UserList { users } => users.iter().map(|(name, _)| name.len() + 48).sum(),
            Reply::Error { kind, text } => kind.len() + text.len(),
            Reply::Message {
                sendtime,
                sender,
                content,
                ..
            } => sendtime.len() + sender.len() + content.len(),
            Reply::Whispered { sendtime, to, text } => {
                sendtime.len() + SYSTEM.len() + WHISPERED.len() + to.len() + 2 + text.len()
            }
        }
}

/// Appends a level in decimal, without a `String` of its own (a listing writes one per
/// member).
fn put_level(level: u8, out: &mut BytesMut) {
    let digits = [level / 100, level / 10 % 10, level % 10].map(|d| b'0' + d);
    let first = match level {
        100.. => 0,
        10.. => 1,
        _ => 2,
    };
    out.put_slice(&digits[first..]);
}

/// Whether no text of `texts` holds a byte [`escape`] must look at (see
/// [`needs_a_look`]), each 16 bytes a step.
fn plain(texts: &[&str]) -> bool {
    let look =
        |b: u8| (b < 0x20) | (b == b'&') | (b == b'<') | (b == b'>') | (b == 0x7f) | (b == 0xc2);
    !(texts.iter()).any(|t| crate::protocol::scan::any_byte(t.as_bytes(), look))
}

/// Writes `text` XML-escaped (`&amp;` `&lt;` `&gt;`), each line break (CRLF, CR or LF) as
/// `#ret#` so a message stays one line, and other control characters but tab dropped
/// (XML 1.0 cannot carry them). Runs of plain bytes are copied at once: the bytes that
/// need a look are ASCII or 0xC2 (the lead byte of C1 controls, U+0080..U+009F), and
/// UTF-8 uses neither inside another character.
pub(super) fn escape(text: &str, out: &mut BytesMut) {
    let bytes = text.as_bytes();
    // Most texts need nothing: one scan, one copy.
    if plain(&[text]) {
        return out.put_slice(bytes);
    }
    out.reserve(bytes.len());
    let mut plain = 0;
    let mut i = 0;
    while let Some(at) = bytes[i..].iter().position(|&b| needs_a_look(b)) {
        let at = i + at;
        out.put_slice(&bytes[plain..at]);
        i = at + 1;
        match bytes[at] {
            b'&' => out.put_slice(b"&amp;"),
            b'<' => out.put_slice(b"&lt;"),
            b'>' => out.put_slice(b"&gt;"),
            b'\r' => {
                if bytes.get(i) == Some(&b'\n') {
                    i += 1;
                }
                out.put_slice(b"#ret#");
            }
            b'\n' => out.put_slice(b"#ret#"),
            b'\t' => out.put_u8(b'\t'),
            // A C1 control (dropped) or another character from U+0080 on (kept).
            0xc2 => match bytes.get(i) {
                Some(0x80..=0x9f) => i += 1,
                _ => i = at,
            },
            // Other C0 controls and DEL.
            _ => {}
        }
        plain = i;
        if i == at {
            // 0xC2 leading a character that is no control: it stays in the run.
            i = at + 1;
        }
    }
    out.put_slice(&bytes[plain..]);
}

/// Whether `b` may need escaping or dropping (see [`escape`]): one table lookup per byte
/// of every text sent (six comparisons were most of a short text's cost).
fn needs_a_look(b: u8) -> bool {
    const LOOK: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 0x20 {
            table[b] = true;
            b += 1;
        }
        table[b'&' as usize] = true;
        table[b'<' as usize] = true;
        table[b'>' as usize] = true;
        table[0x7f] = true;
        table[0xc2] = true;
        table
    };
    LOOK[usize::from(b)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 64 * 1024;

    fn all(decoder: &mut Decoder) -> Vec<Frame> {
        core::iter::from_fn(|| decoder.next_frame()).collect()
    }

    fn decode(input: &[u8]) -> Vec<Frame> {
        let mut decoder = Decoder::new(LIMIT);
        decoder.push(input);
        all(&mut decoder)
    }

    fn req(kind: &str) -> Request {
        Request {
            kind: Some(kind.to_owned()),
            ..Request::default()
        }
    }

    /// The seed's connect, padded as its clients pad it.
    const CONNECT: &[u8] = b"<arscrequest><type>connect</type><user>Manuel</user><password>prodigy</password><room>lounge</room><language>english</language><template>xml</template></arscrequest>dummydummydummydummydummydummydummydummydummydummydummydummy";

    #[test]
    fn the_seeds_connect_is_read_with_every_field() {
        assert_eq!(
            decode(CONNECT),
            [Frame::Request(Request {
                kind: Some("connect".into()),
                user: Some("Manuel".into()),
                password: Some("prodigy".into()),
                room: Some("lounge".into()),
                language: Some("english".into()),
                template: Some("xml".into()),
                ..Request::default()
            })]
        );
    }

    #[test]
    fn padding_and_junk_between_documents_are_skipped() {
        let input = b"\0\0junk <b>not a request</b>\r\n<arscrequestX><arscrequest><type>post</type><sid>ab</sid><content>hi</content></arscrequest>\0dummy<arscrequest >\n<type>userlist</type><extra><deep>x</deep></extra><sid>ab</sid></arscrequest >";
        let post = Request {
            sid: Some("ab".into()),
            content: Some("hi".into()),
            ..req("post")
        };
        let list = Request {
            sid: Some("ab".into()),
            ..req("userlist")
        };
        assert_eq!(decode(input), [Frame::Request(post), Frame::Request(list)]);
    }

    #[test]
    fn children_come_in_any_order_and_the_first_of_a_repeat_counts() {
        let input = b"<arscrequest><content>a</content><sid>s</sid><type>post</type><sid>t</sid></arscrequest>";
        assert_eq!(
            decode(input),
            [Frame::Request(Request {
                sid: Some("s".into()),
                content: Some("a".into()),
                ..req("post")
            })]
        );
    }

    #[test]
    fn a_child_is_named_in_any_case_and_an_unknown_one_is_ignored() {
        let input = b"<arscrequest><TYPE>post</TYPE><Sid>s</Sid><other>x<b>y</b></other><CONTENT>hi</CONTENT><sId>t</sId><Typ>no</Typ></arscrequest>";
        assert_eq!(
            decode(input),
            [Frame::Request(Request {
                sid: Some("s".into()),
                content: Some("hi".into()),
                ..req("post")
            })]
        );
    }

    #[test]
    fn entities_are_decoded_and_a_bare_ampersand_is_literal() {
        let input = b"<arscrequest><type>post</type><content>a &amp; b &lt;i&gt; &quot;&apos; &#65;&#x42; & c &nope; <![CDATA[<raw>]]></content></arscrequest>";
        let [Frame::Request(request)] = &decode(input)[..] else {
            panic!("one request");
        };
        assert_eq!(
            request.content.as_deref(),
            Some("a & b <i> \"' AB & c &nope; <raw>")
        );
    }

    #[test]
    fn escaping_round_trips_through_the_encoder() {
        let text = "a & b <i> &amp; \"quoted\" #1";
        let mut out = BytesMut::new();
        escape(text, &mut out);
        assert_eq!(&out[..], b"a &amp; b &lt;i&gt; &amp;amp; \"quoted\" #1");
        let doc = [
            b"<arscrequest><type>post</type><content>".as_slice(),
            &out,
            b"</content></arscrequest>",
        ]
        .concat();
        let [Frame::Request(request)] = &decode(&doc)[..] else {
            panic!("one request");
        };
        assert_eq!(request.content.as_deref(), Some(text));
    }

    #[test]
    fn line_breaks_go_out_as_ret_and_control_characters_are_dropped() {
        let mut out = BytesMut::new();
        escape("one\r\ntwo\nthree\rfour\0\u{7}\tend", &mut out);
        assert_eq!(&out[..], b"one#ret#two#ret#three#ret#four\tend");
    }

    #[test]
    fn malformed_xml_is_answered_and_the_stream_resynchronises() {
        let input = b"<arscrequest><type>post</type><content>x</contnt></arscrequest>junk<arscrequest><type>userlist</type><sid>s</sid></arscrequest>";
        assert_eq!(
            decode(input),
            [
                Frame::Malformed {
                    kind: Some("post".into())
                },
                Frame::Request(Request {
                    sid: Some("s".into()),
                    ..req("userlist")
                })
            ]
        );
        // A raw `<` in content, with no type to tell.
        assert_eq!(
            decode(b"<arscrequest><content>a < b</content></arscrequest>"),
            [Frame::Malformed { kind: None }]
        );
    }

    #[test]
    fn a_request_with_unescaped_markup_is_read_as_the_original_read_it() {
        // The original server pulled each field out with `<name>(.*)</name>`: clients
        // had no need to escape `<`.
        let input = b"<arscrequest><type>post</type><sid>s</sid><content>I <3 you &amp; a<b> </content> &nope; &</content></arscrequest><arscrequest><type>userlist</type><sid>t</sid></arscrequest>";
        assert_eq!(
            decode(input),
            [
                Frame::Request(Request {
                    sid: Some("s".into()),
                    content: Some("I <3 you & a<b> </content> &nope; &".into()),
                    ..req("post")
                }),
                Frame::Request(Request {
                    sid: Some("t".into()),
                    ..req("userlist")
                })
            ]
        );
        // Still malformed: a field opened and never closed, no type, a DOCTYPE.
        for input in [
            &b"<arscrequest><type>post</type><content>a < b</contnt></arscrequest>"[..],
            b"<arscrequest><content>a < b</content></arscrequest>",
            b"<arscrequest><!DOCTYPE x><type>post</type><content>a < b</content></arscrequest>",
        ] {
            let frames = decode(input);
            assert!(
                matches!(frames[..], [Frame::Malformed { .. }]),
                "{:?}: {frames:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn a_document_cut_short_by_a_new_one_is_malformed_and_the_new_one_is_read() {
        let input = b"<arscrequest><type>connect</type><user>a<arscrequest><type>userlist</type><sid>s</sid></arscrequest>";
        assert_eq!(
            decode(input),
            [
                Frame::Malformed {
                    kind: Some("connect".into())
                },
                Frame::Request(Request {
                    sid: Some("s".into()),
                    ..req("userlist")
                })
            ]
        );
    }

    #[test]
    fn an_end_tag_inside_cdata_does_not_end_the_document() {
        let input = b"<arscrequest><type>post</type><content><![CDATA[</arscrequest>]]></content></arscrequest>";
        let mut decoder = Decoder::new(LIMIT);
        decoder.push(&input[..60]);
        assert_eq!(all(&mut decoder), []);
        decoder.push(&input[60..]);
        assert_eq!(
            all(&mut decoder),
            [Frame::Request(Request {
                content: Some("</arscrequest>".into()),
                ..req("post")
            })]
        );
    }

    #[test]
    fn a_document_over_the_limit_is_refused_and_the_next_one_read() {
        let mut decoder = Decoder::new(200);
        decoder.push(b"<arscrequest><type>post</type><content>");
        for _ in 0..10 {
            decoder.push(&[b'x'; 100]);
        }
        assert_eq!(
            all(&mut decoder),
            [Frame::TooLong {
                kind: Some("post".into())
            }]
        );
        assert!(decoder.buffered() <= 200, "{}", decoder.buffered());
        decoder
            .push(b"xxx</content></arscrequest><arscrequest><type>userlist</type></arscrequest>");
        assert_eq!(all(&mut decoder), [Frame::Request(req("userlist"))]);
        // A document that ends just past the limit is refused too.
        let mut decoder = Decoder::new(100);
        let long = format!(
            "<arscrequest><type>userlist</type><content>{}</content></arscrequest>",
            "y".repeat(60)
        );
        decoder.push(long.as_bytes());
        assert_eq!(
            all(&mut decoder),
            [Frame::TooLong {
                kind: Some("userlist".into())
            }]
        );
    }

    #[test]
    fn padding_is_not_kept() {
        let mut decoder = Decoder::new(LIMIT);
        for _ in 0..1000 {
            decoder.push(b"dummydummy<arsc");
            assert_eq!(decoder.next_frame(), None);
        }
        assert!(decoder.buffered() < OPEN.len(), "{}", decoder.buffered());
    }

    #[test]
    fn an_empty_request_has_no_type() {
        assert_eq!(
            decode(b"<arscrequest/>junk<arscrequest></arscrequest>"),
            [
                Frame::Request(Request::default()),
                Frame::Request(Request::default())
            ]
        );
    }

    /// A stream with every kind of frame and the padding between them.
    fn stream() -> Vec<u8> {
        [
            b"dummy\0<".as_slice(),
            CONNECT,
            b"<arscrequest><type>post</type><sid>0123</sid><content>&lt;3 &amp; caf\xc3\xa9 & co</content></arscrequest>",
            b"<arscrequest><type>post</type><content>x</wrong></arscrequest>",
            b"\n\n<arscrequest>\n <type>userlist</type>\n <sid>0123</sid>\n</arscrequest>dummy",
            b"<arscrequest><type>post</type><content><![CDATA[</arscrequest>]]></content></arscrequest>",
        ]
        .concat()
    }

    #[test]
    fn bytes_split_at_any_point_decode_the_same() {
        let input = stream();
        let whole = decode(&input);
        assert_eq!(whole.len(), 5, "{whole:?}");
        for split in 0..=input.len() {
            let mut decoder = Decoder::new(LIMIT);
            decoder.push(&input[..split]);
            let mut frames = all(&mut decoder);
            decoder.push(&input[split..]);
            frames.extend(all(&mut decoder));
            assert_eq!(frames, whole, "split at {split}");
        }
        let mut decoder = Decoder::new(LIMIT);
        let mut frames = Vec::new();
        for byte in &input {
            decoder.push(core::slice::from_ref(byte));
            frames.extend(all(&mut decoder));
        }
        assert_eq!(frames, whole, "byte by byte");
    }

    #[test]
    fn every_reply_has_the_originals_bytes() {
        let cases: [(Reply<'_>, &str); 8] = [
            (
                Reply::ConnectOk { sid: "0123abcd" },
                "<arscrespond><type>connect</type><status>ok</status><sid>0123abcd</sid><version>0.1</version></arscrespond>\n",
            ),
            (
                Reply::Error { kind: "connect", text: "Your IP is banned!" },
                "<arscrespond><type>connect</type><status>error</status><error>Your IP is banned!</error><version>0.1</version></arscrespond>\n",
            ),
            (
                Reply::PostOk,
                "<arscrespond><type>post</type><status>ok</status></arscrespond>\n",
            ),
            (
                Reply::Error { kind: "post", text: "Message could not be handled" },
                "<arscrespond><type>post</type><status>error</status><error>Message could not be handled</error></arscrespond>\n",
            ),
            (
                Reply::UserList { users: &[("HanSolo", 0), ("BobbaFett", 1)] },
                "<arscrespond><type>userlist</type><status>ok</status><user><name>HanSolo</name><level>0</level></user><user><name>BobbaFett</name><level>1</level></user></arscrespond>\n",
            ),
            (
                Reply::UserList { users: &[("a", 9), ("b", 10), ("c", 99), ("d", 100), ("e", 255)] },
                "<arscrespond><type>userlist</type><status>ok</status><user><name>a</name><level>9</level></user><user><name>b</name><level>10</level></user><user><name>c</name><level>99</level></user><user><name>d</name><level>100</level></user><user><name>e</name><level>255</level></user></arscrespond>\n",
            ),
            (
                Reply::Error { kind: "userlist", text: "This session is not known" },
                "<arscrespond><type>userlist</type><status>error</status><error>This session is not known</error></arscrespond>\n",
            ),
            (
                Reply::Message {
                    kind: MessageType::Whisper,
                    sendtime: "14:05",
                    sender: "System",
                    content: "Welcome to ARSC 3.0!",
                },
                "<arscmessage><type>whisper</type><sendtime>14:05</sendtime><sender>System</sender><content>Welcome to ARSC 3.0!</content></arscmessage>\n",
            ),
        ];
        for (reply, bytes) in cases {
            assert_eq!(
                String::from_utf8_lossy(&to_bytes(&reply)),
                bytes,
                "{reply:?}"
            );
            // Nothing here needs escaping: each reply is allocated once, at its hint.
            assert!(
                bytes.len() <= len_hint(&reply),
                "{reply:?} is over its hint"
            );
        }
        for (kind, name) in [
            (MessageType::Normal, "normal"),
            (MessageType::Me, "me"),
            (MessageType::WhisperOps, "whisperops"),
            (MessageType::System, "system"),
        ] {
            let reply = Reply::Message {
                kind,
                sendtime: "00:00",
                sender: "a<b",
                content: "x&y",
            };
            assert_eq!(
                String::from_utf8_lossy(&to_bytes(&reply)),
                format!("<arscmessage><type>{name}</type><sendtime>00:00</sendtime><sender>a&lt;b</sender><content>x&amp;y</content></arscmessage>\n")
            );
        }
    }

    /// XML limits (issue 15): no entity is looked up beyond the five predefined ones (a
    /// "billion laughs" stays its few bytes), a DOCTYPE is refused, and nesting and
    /// attributes are bounded.
    #[test]
    fn entities_doctype_depth_and_attributes_are_bounded() {
        let laughs = b"<arscrequest><!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><type>post</type></arscrequest>";
        assert_eq!(
            decode(laughs),
            [Frame::Malformed {
                kind: Some("post".into())
            }]
        );
        let doc =
            b"<arscrequest><type>post</type><content>&b; &amp; &#65; &lt;</content></arscrequest>";
        let [Frame::Request(request)] = &decode(doc)[..] else {
            panic!("{:?}", decode(doc));
        };
        assert_eq!(request.content.as_deref(), Some("&b; & A <"));
        let deep = |n: usize| {
            let mut doc = b"<arscrequest><type>post</type>".to_vec();
            doc.extend(b"<x>".repeat(n));
            doc.extend(b"</x>".repeat(n));
            doc.extend(b"</arscrequest>");
            decode(&doc)
        };
        assert_eq!(deep(MAX_DEPTH - 1), [Frame::Request(req("post"))]);
        assert_eq!(
            deep(MAX_DEPTH),
            [Frame::Malformed {
                kind: Some("post".into())
            }]
        );
        let attrs = |n: usize| {
            let attrs: String = (0..n).map(|i| format!(" a{i}='v'")).collect();
            decode(format!("<arscrequest><type{attrs}>post</type></arscrequest>").as_bytes())
        };
        assert_eq!(attrs(MAX_ATTRIBUTES), [Frame::Request(req("post"))]);
        assert_eq!(attrs(MAX_ATTRIBUTES + 1), [Frame::Malformed { kind: None }]);
    }
}

#[cfg(test)]
mod linear {
    use super::*;

    const LIMIT: usize = 64 * 1024;

    /// Floods of start tags, nested documents, over-long documents and end tags inside
    /// comments: the decoder's work stays within a small multiple of the input, where it
    /// once searched the whole buffer again for each of thousands of documents (a peer
    /// sending 1 MB/s kept a core busy).
    #[test]
    fn the_work_is_linear_in_the_input_whatever_arrives() {
        let comment = b"<arscrequest><!-- </arscrequest> --><!-- </arscrequest> -->".to_vec();
        let floods: [(&str, &[u8], &[u8]); 5] = [
            ("open tags", b"", b"<arscrequest "),
            ("nested starts", b"", b"<arscrequest>"),
            (
                "typed nested starts",
                b"",
                b"<arscrequest><type>post</type>",
            ),
            ("end tags in comments", b"", &comment),
            (
                "end tags in one comment",
                b"<arscrequest><!--",
                b" </arscrequest>",
            ),
        ];
        for (label, prefix, unit) in floods {
            let mut decoder = Decoder::new(LIMIT);
            let chunk = unit.repeat(1024 / unit.len() + 1);
            decoder.push(prefix);
            let mut input = prefix.len();
            let mut frames = 0;
            for _ in 0..256 {
                decoder.push(&chunk);
                input += chunk.len();
                while decoder.next_frame().is_some() {
                    frames += 1;
                }
            }
            assert!(frames > 0, "{label}: {frames} frames");
            // At most MAX_ATTEMPTS parses of a document, plus the searches; the
            // quadratic decoder examined thousands of times the input.
            assert!(
                decoder.examined <= 40 * input,
                "{label}: {} bytes examined for {input} of input",
                decoder.examined
            );
            assert!(decoder.buffered() <= LIMIT + chunk.len(), "{label}");
        }
    }
}

#[cfg(test)]
mod escaping {
    use bytes::{BufMut, BytesMut};

    /// The escape as it was written, character by character: the reference.
    fn by_chars(text: &str, out: &mut BytesMut) {
        let mut chars = text.chars().peekable();
        let mut utf8 = [0u8; 4];
        while let Some(c) = chars.next() {
            match c {
                '&' => out.put_slice(b"&amp;"),
                '<' => out.put_slice(b"&lt;"),
                '>' => out.put_slice(b"&gt;"),
                '\r' => {
                    chars.next_if_eq(&'\n');
                    out.put_slice(b"#ret#");
                }
                '\n' => out.put_slice(b"#ret#"),
                '\t' => out.put_u8(b'\t'),
                c if c.is_control() => {}
                c => out.put_slice(c.encode_utf8(&mut utf8).as_bytes()),
            }
        }
    }

    #[test]
    fn the_run_copy_escapes_every_text_as_the_char_scan_does() {
        // Every text of up to 5 pieces: what is escaped, line breaks, C0, DEL, C1 (U+0085,
        // U+009F), the first character past C1 (U+00A0, also led by 0xC2), others.
        const PIECES: [&str; 13] = [
            "&", "<", ">", "\r", "\n", "\t", "\u{1}", "\u{7f}", "\u{85}", "\u{9f}", "\u{a0}", "é",
            "a日",
        ];
        let checked = crate::tests::fixtures::every_text(&PIECES, 5, |text| {
            let (mut got, mut want) = (BytesMut::new(), BytesMut::new());
            super::escape(text, &mut got);
            by_chars(text, &mut want);
            assert_eq!(got, want, "{text:?}");
            // Long enough for the whole text to be scanned a step at a time.
            let long = format!("{text}0123456789abcdef");
            let (mut got, mut want) = (BytesMut::new(), BytesMut::new());
            super::escape(&long, &mut got);
            by_chars(&long, &mut want);
            assert_eq!(got, want, "{long:?}");
        });
        assert_eq!(checked, 402_234); // 13^0 + 13^1 + ... + 13^5
    }

    #[test]
    fn the_plain_reader_reads_as_the_xml_parser_does() {
        use super::{parse_plain, parse_xml};
        // Every request of up to two children from these pieces: names (the fields, a
        // case variant, an unknown one, the root's own, one with a digit), texts (empty,
        // plain, multi-byte, controls, references, `]]>`, `>`, line breaks, blanks, a
        // quote, invalid UTF-8, a `<`), each child closed by its name or by another.
        const NAMES: [&str; 6] = ["type", "sid", "CONTENT", "x", "arscrequest", "a1"];
        const TEXTS: [&[u8]; 12] = [
            b"",
            b"post",
            "\u{e9}t\u{e9}".as_bytes(),
            b"\x01\x7f",
            b"a &amp; b",
            b"]]>",
            b"a>b",
            b"1\r\n2",
            b" \t\n ",
            b"'\"",
            b"\xff",
            b"a<b",
        ];
        let mut children = Vec::new();
        for name in NAMES {
            for text in TEXTS {
                for close in [name, "Type"] {
                    let mut child = format!("<{name}>").into_bytes();
                    child.extend_from_slice(text);
                    child.extend_from_slice(format!("</{close}>").as_bytes());
                    children.push(child);
                }
            }
        }
        let (mut plain, mut checked) = (0, 0);
        let mut check = |body: &[u8]| {
            let doc = [b"<arscrequest>", body, b"</arscrequest>"].concat();
            checked += 1;
            if let Some(read) = parse_plain(&doc) {
                plain += 1;
                assert_eq!(read, parse_xml(&doc), "{}", String::from_utf8_lossy(&doc));
            }
        };
        check(b"");
        for a in &children {
            check(a);
            for b in &children {
                check(&[&a[..], &b[..]].concat());
            }
        }
        assert_eq!(checked, 1 + 144 + 144 * 144);
        // The shape every client sends is read without the parser: four names (the root's
        // own and one with a digit are not plain), six texts (a reference, `]`, `>`, CR,
        // invalid UTF-8 and `<` are not), closed by their own name.
        assert_eq!(plain, 1 + 24 + 24 * 24);
        // Near misses are left to the parser.
        for doc in [
            &b"<arscrequest ><type>post</type></arscrequest>"[..],
            b"<arscrequest><type>post</type> </arscrequest>",
            b"<arscrequest><type>post</type></arscrequest >",
            b"<arscrequest><type a='1'>post</type></arscrequest>",
            b"<arscrequest><type>post</TYPE></arscrequest>",
            b"<arscrequest><type/></arscrequest>",
            b"<arscrequest><![CDATA[x]]></arscrequest>",
        ] {
            assert_eq!(parse_plain(doc), None, "{}", String::from_utf8_lossy(doc));
        }
    }

    #[test]
    fn a_whisper_echo_is_the_message_of_its_formatted_text() {
        use super::{len_hint, to_bytes, MessageType, Reply, SYSTEM};
        // Every text of up to 4 pieces, line breaks at its start included: the echo is
        // written from its parts, and must read as the one text `format!` gave.
        const PIECES: [&str; 9] = ["&", "<", "\r", "\n", "\r\n", "\u{85}", "\u{a0}", "a", " "];
        let checked = crate::tests::fixtures::every_text(&PIECES, 4, |text| {
            let content = format!("You whispered to Bob: {text}");
            let want = to_bytes(&Reply::Message {
                kind: MessageType::Whisper,
                sendtime: "09:41",
                sender: SYSTEM,
                content: &content,
            });
            let echo = Reply::Whispered {
                sendtime: "09:41",
                to: "Bob",
                text,
            };
            let got = to_bytes(&echo);
            assert_eq!(got, want, "{text:?}");
            assert!(got.len() <= len_hint(&echo) + 4 * text.len(), "{text:?}");
        });
        assert_eq!(checked, 7_381); // 9^0 + 9^1 + ... + 9^4
    }
}
