//! The ims documents: a framed document parsed into a [`Request`], and every server
//! document encoded from a [`Reply`]. Element names, attribute names and type values
//! are matched case-insensitively; attribute values and text are unescaped on input and
//! escaped on output. The bytes sent are pinned in PROTOCOLS.md ("ims", "Bytes, pinned").

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// A client document. Values borrow the document's bytes where they needed no
/// unescaping (the common case: a request allocates nothing for them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Request<'a> {
    /// `<LOGIN user="N" pass="MD5HEX"/>`.
    Login {
        user: Cow<'a, str>,
        pass: Cow<'a, str>,
    },
    /// `<LOGOUT user="N"/>`.
    Logout { user: Cow<'a, str> },
    /// `<MESSAGE from="S" to="R">text</MESSAGE>`.
    Message {
        from: Cow<'a, str>,
        to: Cow<'a, str>,
        body: Cow<'a, str>,
    },
    /// `<STATUS user="N" type="set|get|list" code="C"/>`.
    Status {
        user: Cow<'a, str>,
        action: StatusAction<'a>,
    },
    /// `<FRIEND user="N" type="..." friend="F" other="O"/>`.
    Friend {
        user: Cow<'a, str>,
        action: FriendAction<'a>,
    },
    /// `<ALIVE/>`.
    Alive,
    /// A well-formed document this protocol does not know (another element, or a known
    /// one with an unknown `type`): echoed and otherwise ignored.
    Unknown,
}

/// What a STATUS document asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StatusAction<'a> {
    /// Set the owner's status to `code` (as sent; checked by the session).
    Set { code: Cow<'a, str> },
    /// The status of the user named in `user`.
    Get,
    /// The list of statuses.
    List,
}

/// What a FRIEND document asks; the name is the `friend` attribute for add and delete,
/// `other` for accept and deny (either is taken when the expected one is missing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FriendAction<'a> {
    Add(Cow<'a, str>),
    Delete(Cow<'a, str>),
    Request,
    Accept(Cow<'a, str>),
    Deny(Cow<'a, str>),
}

impl FriendAction<'_> {
    /// The `type` value of the reply.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            FriendAction::Add(_) => "add",
            FriendAction::Delete(_) => "delete",
            FriendAction::Request => "request",
            FriendAction::Accept(_) => "accept",
            FriendAction::Deny(_) => "deny",
        }
    }
}

/// Why a framed document could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Not UTF-8, or holding a NUL.
    Encoding,
    /// Not well-formed XML (mismatched tags, a bad attribute, an unknown entity).
    Syntax,
}

/// Reads one framed document (a top-level element, as [`super::framer::Framer`] cut it).
pub(crate) fn parse(document: &[u8]) -> Result<Request<'_>, ParseError> {
    if memchr::memchr(0, document).is_some() {
        return Err(ParseError::Encoding);
    }
    let text = std::str::from_utf8(document).map_err(|_| ParseError::Encoding)?;
    match plain(text) {
        Some((name, attrs, body)) => Ok(request(name, attrs, body)),
        None => parse_xml(text),
    }
}

/// Reads a document with the XML parser (any form [`plain`] does not take).
fn parse_xml(text: &str) -> Result<Request<'_>, ParseError> {
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    let (root, empty) = match reader.read_event() {
        Ok(Event::Start(e)) => (e, false),
        Ok(Event::Empty(e)) => (e, true),
        _ => return Err(ParseError::Syntax),
    };
    let qname = root.name();
    let name: &str = qname.as_ref();
    let attrs = attributes(&root)?;
    let mut body = Cow::Borrowed("");
    if !empty {
        read_body(&mut reader, &mut body)?;
    }
    Ok(request(name, attrs, body))
}

/// The request a document of root element `name` makes, from the attributes it reads
/// and its text.
fn request<'a>(
    name: &str,
    mut attrs: [Option<Cow<'a, str>>; 8],
    body: Cow<'a, str>,
) -> Request<'a> {
    // Each value is taken once, moved out rather than copied.
    let mut take = |key: Attr| attrs[key as usize].take().unwrap_or_default();
    let kind = take(Attr::Type);
    // Names and types are compared as one folded word each (`folded_word`).
    let name = folded_word(name);
    let is = |name: Option<u64>, known: &[u8]| name == Some(word(known));
    let kind_word = folded_word(&kind);
    let kind_is = |known: &str| is(kind_word, known.as_bytes());
    if is(name, b"LOGIN") {
        Request::Login {
            user: take(Attr::User),
            pass: take(Attr::Pass),
        }
    } else if is(name, b"LOGOUT") {
        Request::Logout {
            user: take(Attr::User),
        }
    } else if is(name, b"MESSAGE") {
        Request::Message {
            from: take(Attr::From),
            to: take(Attr::To),
            body,
        }
    } else if is(name, b"STATUS") {
        let action = if kind_is("set") {
            StatusAction::Set {
                code: take(Attr::Code),
            }
        } else if kind_is("get") {
            StatusAction::Get
        } else if kind_is("list") {
            StatusAction::List
        } else {
            return Request::Unknown;
        };
        Request::Status {
            user: take(Attr::User),
            action,
        }
    } else if is(name, b"FRIEND") {
        let mut either = |first: Attr, second: Attr| {
            let value = take(first);
            if value.is_empty() {
                take(second)
            } else {
                value
            }
        };
        let action = if kind_is("add") {
            FriendAction::Add(either(Attr::Friend, Attr::Other))
        } else if kind_is("delete") {
            FriendAction::Delete(either(Attr::Friend, Attr::Other))
        } else if kind_is("request") {
            FriendAction::Request
        } else if kind_is("accept") {
            FriendAction::Accept(either(Attr::Other, Attr::Friend))
        } else if kind_is("deny") {
            FriendAction::Deny(either(Attr::Other, Attr::Friend))
        } else {
            return Request::Unknown;
        };
        Request::Friend {
            user: take(Attr::User),
            action,
        }
    } else if is(name, b"ALIVE") {
        Request::Alive
    } else {
        Request::Unknown
    }
}

/// The values of the attributes a request reads, by [`Attr`].
type Attributes<'a> = [Option<Cow<'a, str>>; 8];

/// Reads a document of the plain form clients send, without the XML parser, borrowing
/// every value: `<NAME` (ASCII letters), attributes `KEY="VALUE"` or `KEY='VALUE'`, each
/// after spaces (KEY an ASCII letter then letters, digits, `_` or `-`; VALUE without `<`,
/// `&` or control characters), then `/>` ending the document, or `>`, text without
/// `<`, `&`, CR or control characters other than tab and LF, and `</NAME>` ending it.
/// Such a document is well formed and needs no unescaping or normalisation, so it reads
/// as the XML parser would read it (`the_plain_form_reads_as_the_parser_reads_it`);
/// anything else is `None`, for the parser.
fn plain(text: &str) -> Option<(&str, Attributes<'_>, Cow<'_, str>)> {
    let b = text.as_bytes();
    if b.first() != Some(&b'<') {
        return None;
    }
    let name_end = 1 + b[1..]
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    if name_end == 1 {
        return None;
    }
    let name = &text[1..name_end];
    let mut attrs: [Option<Cow<'_, str>>; 8] = Default::default();
    let mut at = name_end;
    let mut count = 0;
    loop {
        let spaces = b[at..].iter().take_while(|&&c| c == b' ').count();
        at += spaces;
        match *b.get(at)? {
            b'/' if &b[at..] == b"/>" => return Some((name, attrs, Cow::Borrowed(""))),
            b'/' => return None,
            b'>' => {
                at += 1;
                break;
            }
            c if spaces == 0 || !c.is_ascii_alphabetic() => return None,
            _ => {}
        }
        let key_len = (b[at..].iter())
            .take_while(|&&c| CLASSES[usize::from(c)] & KEY != 0)
            .count();
        let key = &text[at..at + key_len];
        at += key_len;
        if b.get(at) != Some(&b'=') {
            return None;
        }
        let quote = *b.get(at + 1)?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        at += 2;
        let len = (b[at..].iter())
            .position(|&c| c == quote || CLASSES[usize::from(c)] & ENDS_VALUE != 0)?;
        if b[at + len] != quote {
            return None;
        }
        let value = &text[at..at + len];
        at += len + 1;
        count += 1;
        if count > MAX_ATTRIBUTES {
            return None;
        }
        keep(&mut attrs, key, Cow::Borrowed(value));
    }
    let rest = &b[at..];
    let close = name.len() + 3;
    let body_len = rest.len().checked_sub(close)?;
    let end = &rest[body_len..];
    if !(end.starts_with(b"</") && &end[2..close - 1] == name.as_bytes() && end[close - 1] == b'>')
    {
        return None;
    }
    let body = &rest[..body_len];
    if body
        .iter()
        .any(|&c| CLASSES[usize::from(c)] & SPOILS_TEXT != 0)
    {
        return None;
    }
    Some((name, attrs, Cow::Borrowed(&text[at..at + body_len])))
}

/// [`CLASSES`]: a byte that may continue an attribute's name (an ASCII letter or digit,
/// `_`, `-`).
const KEY: u8 = 1;
/// [`CLASSES`]: a byte that ends a plain attribute value short of its quote (`<`, `&`, a
/// control character).
const ENDS_VALUE: u8 = 2;
/// [`CLASSES`]: a byte plain text may not hold (`<`, `&`, CR, a control character other
/// than tab and LF).
const SPOILS_TEXT: u8 = 4;

/// What the plain reader needs to know of each byte: one look-up a byte instead of a
/// chain of comparisons.
const CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' {
            t[b] |= KEY;
        }
        if c == b'<' || c == b'&' || c < 0x20 {
            t[b] |= ENDS_VALUE;
        }
        if c == b'<' || c == b'&' || c == b'\r' || (c < 0x20 && c != b'\t' && c != b'\n') {
            t[b] |= SPOILS_TEXT;
        }
        b += 1;
    }
    t
};

/// `s` as one integer, its bytes big-endian with the ASCII case bit set (`| 0x20`): for
/// a word of ASCII letters, two are equal exactly when they are equal ignoring ASCII case
/// (a byte folds to a letter only if it is that letter in either case, and no byte folds
/// to zero, so the lengths agree). For words of at most eight bytes.
const fn word(s: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    while i < s.len() {
        w = (w << 8) | (s[i] | 0x20) as u64;
        i += 1;
    }
    w
}

/// [`word`] of `s` when it is one to eight bytes long: compared with the [`word`] of a
/// known name of ASCII letters, one integer comparison says whether `s` is that name in
/// any case.
fn folded_word(s: &str) -> Option<u64> {
    (1..=8).contains(&s.len()).then(|| word(s.as_bytes()))
}

/// Keeps `value` in the slot of `key` if a request reads it and it is not yet filled
/// (the first of a repeated attribute wins).
fn keep<'a>(attrs: &mut [Option<Cow<'a, str>>; 8], key: &str, value: Cow<'a, str>) {
    let key = folded_word(key);
    let known = READ_ATTRIBUTES
        .iter()
        .position(|k| key == Some(word(k.as_bytes())));
    if let Some(slot) = known.and_then(|at| attrs.get_mut(at)) {
        if slot.is_none() {
            *slot = Some(value);
        }
    }
}

/// Deepest nesting of a document (its root is 1; a request has no children): deeper is
/// malformed.
pub(crate) const MAX_DEPTH: u32 = 16;
/// Most attributes on a document's root (a request reads at most eight): more is
/// malformed.
pub(crate) const MAX_ATTRIBUTES: usize = 32;

/// The attributes a request reads; the others are checked and dropped. In the order of
/// [`Attr`].
const READ_ATTRIBUTES: [&str; 8] = [
    "type", "user", "pass", "from", "to", "code", "friend", "other",
];

/// An attribute a request reads, as an index into [`READ_ATTRIBUTES`].
#[derive(Clone, Copy)]
enum Attr {
    Type,
    User,
    Pass,
    From,
    To,
    Code,
    Friend,
    Other,
}

/// The root's attributes that a request reads ([`READ_ATTRIBUTES`]), by [`Attr`], values
/// unescaped; the first of a repeated name wins. Every attribute is still checked (a bad
/// one makes the document malformed), but only those are kept, so a document of
/// thousands of attributes costs linear work, not their number squared (7,400 of them in
/// 64 KiB took 140 ms), and a request allocates only the values it keeps.
fn attributes<'a>(root: &BytesStart<'_>) -> Result<[Option<Cow<'a, str>>; 8], ParseError> {
    let mut out: [Option<Cow<'a, str>>; 8] = Default::default();
    for (i, attr) in root.attributes().with_checks(false).enumerate() {
        if i >= MAX_ATTRIBUTES {
            return Err(ParseError::Syntax);
        }
        let attr = attr.map_err(|_| ParseError::Syntax)?;
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|_| ParseError::Syntax)?;
        keep(&mut out, attr.key.as_ref(), Cow::Owned(value.into_owned()));
    }
    Ok(out)
}

/// Reads the root's content to its end tag: its own text (unescaped, CDATA as is) goes
/// into `body`; child elements are checked for well-formedness and their text ignored.
fn read_body<'a>(reader: &mut Reader<&'a [u8]>, body: &mut Cow<'a, str>) -> Result<(), ParseError> {
    let mut depth = 0u32;
    loop {
        match reader.read_event().map_err(|_| ParseError::Syntax)? {
            // The root is depth 1, its children 2.
            Event::Start(_) if depth + 2 > MAX_DEPTH => return Err(ParseError::Syntax),
            Event::Start(_) => depth += 1,
            Event::End(_) if depth == 0 => return Ok(()),
            Event::End(_) => depth -= 1,
            Event::Text(t) if depth == 0 => append(body, t.xml10_content()),
            Event::CData(t) if depth == 0 => append(body, t.xml10_content()),
            Event::GeneralRef(r) if depth == 0 => {
                let c = match r.resolve_char_ref().map_err(|_| ParseError::Syntax)? {
                    Some(c) => Cow::Owned(c.to_string()),
                    None => {
                        let name: &str = &r;
                        let text = quick_xml::escape::resolve_predefined_entity(name)
                            .ok_or(ParseError::Syntax)?;
                        Cow::Borrowed(text)
                    }
                };
                append(body, c);
            }
            Event::GeneralRef(r) => {
                // Checked even where ignored: an unknown entity is malformed anywhere.
                let name: &str = &r;
                if r.resolve_char_ref()
                    .map_err(|_| ParseError::Syntax)?
                    .is_none()
                    && quick_xml::escape::resolve_predefined_entity(name).is_none()
                {
                    return Err(ParseError::Syntax);
                }
            }
            Event::Eof => return Err(ParseError::Syntax),
            Event::DocType(_) => return Err(ParseError::Syntax),
            _ => {}
        }
    }
}

/// Adds `piece` to the body: the first piece is kept as it is (borrowed when it needed
/// no unescaping), later ones are appended to an owned copy.
fn append<'a>(body: &mut Cow<'a, str>, piece: Cow<'a, str>) {
    if body.is_empty() {
        *body = piece;
    } else {
        body.to_mut().push_str(&piece);
    }
}

/// A server document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reply<'a> {
    /// The client's document, byte for byte.
    Echo(&'a [u8]),
    /// `<LOGIN user="N" result="R"/>`.
    Login { user: &'a str, result: u8 },
    /// `<LOGOUT user="N" result="R"/>`: an answer, or an administrator's kick.
    Logout { user: &'a str, result: u8 },
    /// `<MESSAGE result="R"/>`.
    MessageResult(i8),
    /// `<STATUS type="get" result="R"/>`.
    StatusGet(i8),
    /// `<STATUS type="set" result="R"/>`.
    StatusSet(u8),
    /// The STATUSLIST.
    StatusList,
    /// `<FRIEND type="T" result="R"/>`.
    Friend { action: &'a str, result: u8 },
    /// `<FRIENDS><USER status="S">NAME</USER>...</FRIENDS>`.
    Friends(&'a [(&'a str, i8)]),
    /// A message pushed to its recipient.
    Message {
        from: &'a str,
        to: &'a str,
        body: &'a str,
    },
    /// `<FRIEND type="invite" to="R" from="S"/>`.
    Invite { to: &'a str, from: &'a str },
}

pub(crate) use crate::config::ImsTerminator as Terminator;

/// The byte that ends each document.
pub(crate) fn end_byte(term: Terminator) -> u8 {
    match term {
        Terminator::Newline => b'\n',
        Terminator::Nul => 0,
    }
}

impl Reply<'_> {
    /// Bytes the encoded reply takes with its terminator, escapes included: its buffer is
    /// allocated at exactly this size (a `Bytes` frozen from a buffer with spare capacity
    /// allocates a second block to share it), and a session asks for room with it without
    /// encoding the reply.
    pub(crate) fn encoded_len(&self) -> usize {
        /// `"/>` after a result, with the terminator.
        const CLOSE: usize = 3 + 1;
        match self {
            Reply::Echo(bytes) => bytes.len() + 1,
            Reply::Login { user, result } => {
                "<LOGIN user=\"".len()
                    + attr_len(user)
                    + "\" result=\"".len()
                    + int_len(*result)
                    + CLOSE
            }
            Reply::Logout { user, result } => {
                "<LOGOUT user=\"".len()
                    + attr_len(user)
                    + "\" result=\"".len()
                    + int_len(*result)
                    + CLOSE
            }
            Reply::MessageResult(r) => "<MESSAGE result=\"".len() + int_len(*r) + CLOSE,
            Reply::StatusGet(r) => "<STATUS type=\"get\" result=\"".len() + int_len(*r) + CLOSE,
            Reply::StatusSet(r) => "<STATUS type=\"set\" result=\"".len() + int_len(*r) + CLOSE,
            Reply::StatusList => STATUS_LIST.len() + 1,
            Reply::Friend { action, result } => {
                "<FRIEND type=\"".len()
                    + attr_len(action)
                    + "\" result=\"".len()
                    + int_len(*result)
                    + CLOSE
            }
            Reply::Friends(friends) => {
                "<FRIENDS></FRIENDS>".len()
                    + friends
                        .iter()
                        .map(|(name, status)| {
                            "<USER status=\"\"></USER>".len() + int_len(*status) + text_len(name)
                        })
                        .sum::<usize>()
                    + 1
            }
            Reply::Message { from, to, body } => {
                "<MESSAGE from=\"\" to=\"\"></MESSAGE>".len()
                    + attr_len(from)
                    + attr_len(to)
                    + text_len(body)
                    + 1
            }
            Reply::Invite { to, from } => {
                "<FRIEND type=\"invite\" to=\"\" from=\"\"/>".len()
                    + attr_len(to)
                    + attr_len(from)
                    + 1
            }
        }
    }
}

/// The encoding of a reply that is always the same bytes (a result, the STATUSLIST), so
/// sending it allocates nothing; `None` for the others.
pub(crate) fn fixed(reply: &Reply<'_>, term: Terminator) -> Option<&'static [u8]> {
    macro_rules! both {
        ($doc:expr) => {
            match term {
                Terminator::Newline => concat!($doc, "\n").as_bytes(),
                Terminator::Nul => concat!($doc, "\0").as_bytes(),
            }
        };
    }
    Some(match reply {
        Reply::MessageResult(1) => both!("<MESSAGE result=\"1\"/>"),
        Reply::MessageResult(0) => both!("<MESSAGE result=\"0\"/>"),
        Reply::MessageResult(-1) => both!("<MESSAGE result=\"-1\"/>"),
        Reply::StatusSet(1) => both!("<STATUS type=\"set\" result=\"1\"/>"),
        Reply::StatusSet(0) => both!("<STATUS type=\"set\" result=\"0\"/>"),
        Reply::StatusGet(-1) => both!("<STATUS type=\"get\" result=\"-1\"/>"),
        Reply::StatusGet(0) => both!("<STATUS type=\"get\" result=\"0\"/>"),
        Reply::StatusGet(1) => both!("<STATUS type=\"get\" result=\"1\"/>"),
        Reply::StatusGet(2) => both!("<STATUS type=\"get\" result=\"2\"/>"),
        Reply::StatusGet(3) => both!("<STATUS type=\"get\" result=\"3\"/>"),
        Reply::StatusList => both!(
            "<STATUSLIST><STATUS id=\"0\">Online</STATUS><STATUS id=\"1\">Away</STATUS>\
             <STATUS id=\"2\">Busy</STATUS><STATUS id=\"3\">Invisible</STATUS></STATUSLIST>"
        ),
        _ => return None,
    })
}

/// A MESSAGE pushed to its recipient ([`Reply::Message`]), in one buffer of exactly its
/// length.
#[cfg(test)]
pub(crate) fn message(from: &str, to: &str, body: &str, term: Terminator) -> BytesMut {
    let doc = MessageDoc::new(from, to, body);
    let mut out = BytesMut::with_capacity(doc.len());
    doc.put(term, &mut out);
    out
}

/// A MESSAGE pushed to its recipient ([`Reply::Message`]), each part scanned for escapes
/// once (not once for the length and again to write it).
pub(crate) struct MessageDoc<'a> {
    parts: [Part<'a>; 3],
}

/// A part of a [`MessageDoc`]: its bytes, whether they need escaping, and whether they
/// are an attribute's value.
struct Part<'a>(&'a [u8], bool, bool);

impl Part<'_> {
    fn new(s: &str, quote: bool) -> Part<'_> {
        Part(s.as_bytes(), needs_escape(s.as_bytes(), quote), quote)
    }
    fn len(&self) -> usize {
        match self.1 {
            false => self.0.len(),
            true => (self.0.iter()).map(|&b| escaped_byte_len(b, self.2)).sum(),
        }
    }
    fn put(&self, out: &mut BytesMut) {
        match self.1 {
            false => out.put_slice(self.0),
            true => escape_all(self.0, self.2, out),
        }
    }
}

impl<'a> MessageDoc<'a> {
    pub(crate) fn new(from: &'a str, to: &'a str, body: &'a str) -> Self {
        MessageDoc {
            parts: [
                Part::new(from, true),
                Part::new(to, true),
                Part::new(body, false),
            ],
        }
    }

    /// Its length in bytes, terminator included.
    pub(crate) fn len(&self) -> usize {
        "<MESSAGE from=\"\" to=\"\"></MESSAGE>".len()
            + self.parts.iter().map(Part::len).sum::<usize>()
            + 1
    }

    /// Appends it, then the terminator, to `out`.
    pub(crate) fn put(&self, term: Terminator, out: &mut BytesMut) {
        out.put_slice(b"<MESSAGE from=\"");
        self.parts[0].put(out);
        out.put_slice(b"\" to=\"");
        self.parts[1].put(out);
        out.put_slice(b"\">");
        self.parts[2].put(out);
        out.put_slice(b"</MESSAGE>");
        out.put_u8(end_byte(term));
    }
}

/// The STATUSLIST document, without its terminator.
const STATUS_LIST: &str =
    "<STATUSLIST><STATUS id=\"0\">Online</STATUS><STATUS id=\"1\">Away</STATUS>\
    <STATUS id=\"2\">Busy</STATUS><STATUS id=\"3\">Invisible</STATUS></STATUSLIST>";

/// Appends `reply`, then the terminator, to `out`.
pub(crate) fn encode(reply: &Reply<'_>, term: Terminator, out: &mut BytesMut) {
    match reply {
        Reply::Echo(bytes) => out.put_slice(bytes),
        Reply::Login { user, result } => {
            out.put_slice(b"<LOGIN user=\"");
            attr(user, out);
            out.put_slice(b"\" result=\"");
            put_int(out, *result);
            out.put_slice(b"\"/>");
        }
        Reply::Logout { user, result } => {
            out.put_slice(b"<LOGOUT user=\"");
            attr(user, out);
            out.put_slice(b"\" result=\"");
            put_int(out, *result);
            out.put_slice(b"\"/>");
        }
        Reply::MessageResult(r) => {
            out.put_slice(b"<MESSAGE result=\"");
            put_int(out, *r);
            out.put_slice(b"\"/>");
        }
        Reply::StatusGet(r) => {
            out.put_slice(b"<STATUS type=\"get\" result=\"");
            put_int(out, *r);
            out.put_slice(b"\"/>");
        }
        Reply::StatusSet(r) => {
            out.put_slice(b"<STATUS type=\"set\" result=\"");
            put_int(out, *r);
            out.put_slice(b"\"/>");
        }
        Reply::StatusList => out.put_slice(STATUS_LIST.as_bytes()),
        Reply::Friend { action, result } => {
            out.put_slice(b"<FRIEND type=\"");
            attr(action, out);
            out.put_slice(b"\" result=\"");
            put_int(out, *result);
            out.put_slice(b"\"/>");
        }
        Reply::Friends(friends) => {
            out.put_slice(b"<FRIENDS>");
            for (name, status) in friends.iter() {
                out.put_slice(b"<USER status=\"");
                put_int(out, *status);
                out.put_slice(b"\">");
                text(name, out);
                out.put_slice(b"</USER>");
            }
            out.put_slice(b"</FRIENDS>");
        }
        Reply::Message { from, to, body } => {
            out.put_slice(b"<MESSAGE from=\"");
            attr(from, out);
            out.put_slice(b"\" to=\"");
            attr(to, out);
            out.put_slice(b"\">");
            text(body, out);
            out.put_slice(b"</MESSAGE>");
        }
        Reply::Invite { to, from } => {
            out.put_slice(b"<FRIEND type=\"invite\" to=\"");
            attr(to, out);
            out.put_slice(b"\" from=\"");
            attr(from, out);
            out.put_slice(b"\"/>");
        }
    }
    out.put_u8(end_byte(term));
}

/// Digits (and sign) of `n` in decimal.
fn int_len(n: impl Into<i16>) -> usize {
    let n: i16 = n.into();
    let sign = usize::from(n < 0);
    let n = n.unsigned_abs();
    sign + match n {
        0..=9 => 1,
        10..=99 => 2,
        _ => 3,
    }
}

/// Writes `n` in decimal without the formatting machinery (results and status codes
/// are small numbers).
fn put_int(out: &mut BytesMut, n: impl Into<i16>) {
    let n: i16 = n.into();
    if n < 0 {
        out.put_u8(b'-');
    }
    let n = n.unsigned_abs();
    let mut digits = [0u8; 5];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        // A digit: `rest % 10` is below 10.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.put_slice(&digits[at..]);
}

/// Escapes text content: `&`, `<`, `>`, and CR, LF and DEL as character references, so
/// every document stays on one line. The other control characters but tab, which XML
/// 1.0 cannot carry even as references (a strict parser rejects `&#1;`), become U+FFFD;
/// so does a NUL, which never ends a document early.
fn text(s: &str, out: &mut BytesMut) {
    escape(s, false, out);
}

/// Escapes an attribute value: as text, and `"` too.
fn attr(s: &str, out: &mut BytesMut) {
    escape(s, true, out);
}

/// Bytes of `s` escaped as text.
fn text_len(s: &str) -> usize {
    escaped_len(s, false)
}

/// Bytes of `s` escaped as an attribute value.
fn attr_len(s: &str) -> usize {
    escaped_len(s, true)
}

/// How each byte is escaped: 0 as is, [`QUOTE`] only in an attribute, otherwise the
/// length of its replacement.
const ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = 3; // U+FFFD
        b += 1;
    }
    t[b'\t' as usize] = 0;
    t[b'\n' as usize] = 5; // `&#10;`
    t[b'\r' as usize] = 5; // `&#13;`
    t[0x7f] = 6; // `&#127;`
    t[b'&' as usize] = 5;
    t[b'<' as usize] = 4;
    t[b'>' as usize] = 4;
    t[b'"' as usize] = QUOTE;
    t
};

/// [`ESCAPES`]' mark of `"`, escaped as `&quot;` (6 bytes) in attribute values only.
const QUOTE: u8 = 0xff;

/// The bytes `b` takes escaped.
fn escaped_byte_len(b: u8, quote: bool) -> usize {
    match ESCAPES[usize::from(b)] {
        0 => 1,
        QUOTE if quote => 6,
        QUOTE => 1,
        n => usize::from(n),
    }
}

fn escaped_len(s: &str, quote: bool) -> usize {
    let bytes = s.as_bytes();
    if !needs_escape(bytes, quote) {
        return bytes.len();
    }
    bytes.iter().map(|&b| escaped_byte_len(b, quote)).sum()
}

/// Whether any byte of `bytes` is escaped (one marked in [`ESCAPES`]): a short name byte
/// by byte in the table, a longer text 16 bytes a step.
fn needs_escape(bytes: &[u8], quote: bool) -> bool {
    if bytes.len() < 16 {
        return bytes.iter().any(|&b| match ESCAPES[usize::from(b)] {
            0 => false,
            QUOTE => quote,
            _ => true,
        });
    }
    let hit = |b: u8| {
        ((b < 0x20) & (b != b'\t'))
            | (b == 0x7f)
            | (b == b'&')
            | (b == b'<')
            | (b == b'>')
            | (quote & (b == b'"'))
    };
    crate::protocol::scan::any_byte(bytes, hit)
}

fn escape(s: &str, quote: bool, out: &mut BytesMut) {
    let bytes = s.as_bytes();
    if !needs_escape(bytes, quote) {
        return out.put_slice(bytes);
    }
    escape_all(bytes, quote, out);
}

/// Escapes `bytes`, known to hold something to escape.
fn escape_all(bytes: &[u8], quote: bool, out: &mut BytesMut) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if escaped_byte_len(b, quote) == 1 {
            continue;
        }
        out.put_slice(&bytes[start..i]);
        start = i + 1;
        match b {
            b'&' => out.put_slice(b"&amp;"),
            b'<' => out.put_slice(b"&lt;"),
            b'>' => out.put_slice(b"&gt;"),
            b'"' => out.put_slice(b"&quot;"),
            b'\n' | b'\r' | 0x7f => {
                out.put_slice(b"&#");
                put_int(out, b);
                out.put_u8(b';');
            }
            // NUL and the controls XML 1.0 cannot carry.
            _ => out.put_slice("\u{FFFD}".as_bytes()),
        }
    }
    out.put_slice(&bytes[start..]);
}

#[cfg(test)]
mod attribute_tests {
    use super::*;

    /// The step-at-a-time scan finds exactly the bytes [`ESCAPES`] marks, wherever they
    /// sit, in text and in attributes.
    #[test]
    fn every_escaped_byte_is_found_at_every_offset() {
        for quote in [false, true] {
            for b in 0..=255u8 {
                let want = match ESCAPES[usize::from(b)] {
                    0 => false,
                    QUOTE => quote,
                    _ => true,
                };
                for len in [1, 15, 16, 17, 40] {
                    for at in 0..len {
                        let mut bytes = vec![b'a'; len];
                        bytes[at] = b;
                        let got = needs_escape(&bytes, quote);
                        assert_eq!(got, want, "{b:#x} at {at} of {len}, quote {quote}");
                    }
                }
            }
        }
    }

    /// A folded word matches a known name exactly when the two are equal ignoring ASCII
    /// case, for every name a request reads and every near miss of it: each byte changed
    /// to its other case, a neighbour of its case pair (`@`, `[`, `` ` ``, `{`), a digit,
    /// `_`, `-` or a byte of a multi-byte character, and the name cut short or extended.
    #[test]
    fn a_folded_word_matches_exactly_the_names_equal_ignoring_case() {
        let known: Vec<&str> = (READ_ATTRIBUTES.iter().copied())
            .chain(["LOGIN", "LOGOUT", "MESSAGE", "STATUS", "FRIEND", "ALIVE"])
            .chain([
                "set", "get", "list", "add", "delete", "request", "accept", "deny",
            ])
            .collect();
        let swaps = b"@[`{09_-\x7f\x80\xc3\xe9";
        let mut checked = 0;
        for k in &known {
            let mut tries: Vec<Vec<u8>> = vec![k.as_bytes().to_vec(), k.to_uppercase().into()];
            for i in 0..k.len() {
                tries.push(k.as_bytes()[..i].to_vec());
                for swap in swaps.iter().copied().chain([k.as_bytes()[i] ^ 0x20]) {
                    let mut t = k.as_bytes().to_vec();
                    t[i] = swap;
                    tries.push(t);
                }
            }
            tries.push([k.as_bytes(), b"s"].concat());
            tries.push([b"x", k.as_bytes()].concat());
            for t in tries {
                let s = String::from_utf8_lossy(&t);
                for other in &known {
                    let folded = folded_word(&s) == Some(word(other.as_bytes()));
                    assert_eq!(folded, s.eq_ignore_ascii_case(other), "{s:?} / {other}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    /// Every document the plain reader takes reads as the XML parser reads it (same
    /// request, same values); the forms clients send are plain. Documents are built from
    /// pieces near the edges of the plain form (escapes, CR, tabs and LF, quotes, `>`,
    /// `]]>`, repeated and unknown attributes, missing spaces, end tags that differ).
    #[test]
    fn the_plain_form_reads_as_the_parser_reads_it() {
        let names = [
            "MESSAGE", "message", "ALIVE", "LOGIN", "STATUS", "FRIEND", "a",
        ];
        let attributes = [
            "",
            " from=\"a\"",
            " to='b'",
            " FROM=\"x\"",
            " user=\"a>b\"",
            " pass=\"p q\"",
            "  type=\"set\"",
            " code=\" 1\"",
            " type='add' friend=\"f\"",
            " x-y_z=\"1\"",
            " from=\"a&amp;b\"",
            " to=\"a\tb\"",
            " to=\"a\nb\"",
            " a1=\"'\"",
            " b='\"'",
            "from=\"nospace\"",
            " 1a=\"x\"",
            " k = \"v\"",
            " k=\"v",
            " k=v",
            " ns:k=\"v\"",
            " to=\"ünï\"",
        ];
        let endings = [
            "/>",
            " />",
            "/ >",
            ">hi</@>",
            "></@>",
            ">a > b</@>",
            ">]]></@>",
            ">x\ny\tz</@>",
            ">x\r\ny</@>",
            ">&lt;x</@>",
            "><b/></@>",
            ">x</Q>",
            ">x</@ >",
            ">ünï ✓</@>",
            ">x\u{1}y</@>",
            "> </@>",
            ">x</@>y",
            ">x",
        ];
        let (mut plain_ones, mut all) = (0, 0);
        for name in names {
            for first in attributes {
                for second in attributes {
                    for ending in endings {
                        let doc = format!("<{name}{first}{second}{}", ending.replace('@', name));
                        all += 1;
                        if let Some((n, attrs, body)) = plain(&doc) {
                            plain_ones += 1;
                            assert_eq!(Ok(request(n, attrs, body)), parse_xml(&doc), "{doc:?}");
                        }
                    }
                }
            }
        }
        assert!(plain_ones * 10 > all, "{plain_ones} of {all} plain");
        for doc in [
            "<MESSAGE from=\"u0\" to=\"u1\">t123.0</MESSAGE>",
            "<LOGIN user=\"ann\" pass=\"0123456789abcdef0123456789abcdef\"/>",
            "<ALIVE/>",
            "<STATUS user='ann' type='set' code='1'/>",
        ] {
            assert!(plain(doc).is_some(), "{doc}");
        }
    }

    /// A document is read for the few attributes a request uses; the rest are checked
    /// and dropped (a quadratic check for repeats once made 64 KiB of them cost 140 ms),
    /// and past `MAX_ATTRIBUTES` the document is refused.
    #[test]
    fn only_the_attributes_requests_read_are_kept() {
        let with = |n: usize| {
            let mut doc = String::from("<LOGIN USER=\"ann\" user=\"other\" pass=\"x\"");
            for i in 0..n {
                doc.push_str(&format!(" a{i}=\"v\""));
            }
            doc.push_str("/>");
            doc
        };
        assert_eq!(parse(with(7000).as_bytes()), Err(ParseError::Syntax));
        let doc = with(MAX_ATTRIBUTES - 3);
        let mut reader = Reader::from_str(&doc);
        let Ok(Event::Empty(root)) = reader.read_event() else {
            panic!("not an empty element");
        };
        let kept = attributes(&root).expect("well formed");
        let kept: Vec<(&str, &str)> = (READ_ATTRIBUTES.iter().zip(&kept))
            .filter_map(|(k, v)| Some((*k, v.as_deref()?)))
            .collect();
        assert_eq!(kept, [("user", "ann"), ("pass", "x")]);
        assert_eq!(
            parse(doc.as_bytes()),
            Ok(Request::Login {
                user: "ann".into(),
                pass: "x".into()
            })
        );
        // An unknown attribute is still checked.
        assert_eq!(
            parse(b"<LOGIN user=\"a\" junk=\"&nope;\"/>"),
            Err(ParseError::Syntax)
        );
    }
}
