//! The ims documents: a framed document parsed into a [`Request`], and every server
//! document encoded from a [`Reply`]. Element names, attribute names and type values
//! are matched case-insensitively; attribute values and text are unescaped on input and
//! escaped on output. The bytes sent are pinned in PROTOCOLS.md ("ims", "Bytes, pinned").

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// A client document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// `<LOGIN user="N" pass="MD5HEX"/>`.
    Login { user: String, pass: String },
    /// `<LOGOUT user="N"/>`.
    Logout { user: String },
    /// `<MESSAGE from="S" to="R">text</MESSAGE>`.
    Message {
        from: String,
        to: String,
        body: String,
    },
    /// `<STATUS user="N" type="set|get|list" code="C"/>`.
    Status { user: String, action: StatusAction },
    /// `<FRIEND user="N" type="..." friend="F" other="O"/>`.
    Friend { user: String, action: FriendAction },
    /// `<ALIVE/>`.
    Alive,
    /// A well-formed document this protocol does not know (another element, or a known
    /// one with an unknown `type`): echoed and otherwise ignored.
    Unknown,
}

/// What a STATUS document asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StatusAction {
    /// Set the owner's status to `code` (as sent; checked by the session).
    Set { code: String },
    /// The status of the user named in `user`.
    Get,
    /// The list of statuses.
    List,
}

/// What a FRIEND document asks; the name is the `friend` attribute for add and delete,
/// `other` for accept and deny (either is taken when the expected one is missing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FriendAction {
    Add(String),
    Delete(String),
    Request,
    Accept(String),
    Deny(String),
}

impl FriendAction {
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
pub(crate) fn parse(document: &[u8]) -> Result<Request, ParseError> {
    if memchr::memchr(0, document).is_some() {
        return Err(ParseError::Encoding);
    }
    let text = std::str::from_utf8(document).map_err(|_| ParseError::Encoding)?;
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
    let mut attrs = attributes(&root)?;
    let mut body = String::new();
    if !empty {
        read_body(&mut reader, &mut body)?;
    }
    // Each value is taken once, moved out rather than copied.
    let mut take = |key: Attr| -> String { attrs[key as usize].take().unwrap_or_default() };
    let kind = take(Attr::Type);
    let is = |name: &str, known: &str| name.eq_ignore_ascii_case(known);
    let kind_is = |known: &str| kind.eq_ignore_ascii_case(known);
    Ok(if is(name, "LOGIN") {
        Request::Login {
            user: take(Attr::User),
            pass: take(Attr::Pass),
        }
    } else if is(name, "LOGOUT") {
        Request::Logout {
            user: take(Attr::User),
        }
    } else if is(name, "MESSAGE") {
        Request::Message {
            from: take(Attr::From),
            to: take(Attr::To),
            body,
        }
    } else if is(name, "STATUS") {
        let action = if kind_is("set") {
            StatusAction::Set {
                code: take(Attr::Code),
            }
        } else if kind_is("get") {
            StatusAction::Get
        } else if kind_is("list") {
            StatusAction::List
        } else {
            return Ok(Request::Unknown);
        };
        Request::Status {
            user: take(Attr::User),
            action,
        }
    } else if is(name, "FRIEND") {
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
            return Ok(Request::Unknown);
        };
        Request::Friend {
            user: take(Attr::User),
            action,
        }
    } else if is(name, "ALIVE") {
        Request::Alive
    } else {
        Request::Unknown
    })
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
fn attributes(root: &BytesStart<'_>) -> Result<[Option<String>; 8], ParseError> {
    let mut out: [Option<String>; 8] = Default::default();
    for (i, attr) in root.attributes().with_checks(false).enumerate() {
        if i >= MAX_ATTRIBUTES {
            return Err(ParseError::Syntax);
        }
        let attr = attr.map_err(|_| ParseError::Syntax)?;
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|_| ParseError::Syntax)?;
        let key: &str = attr.key.as_ref();
        let known = READ_ATTRIBUTES
            .iter()
            .position(|k| k.eq_ignore_ascii_case(key));
        if let Some(slot) = known.and_then(|at| out.get_mut(at)) {
            if slot.is_none() {
                *slot = Some(value.into_owned());
            }
        }
    }
    Ok(out)
}

/// Reads the root's content to its end tag: its own text (unescaped, CDATA as is) goes
/// into `body`; child elements are checked for well-formedness and their text ignored.
fn read_body(reader: &mut Reader<&[u8]>, body: &mut String) -> Result<(), ParseError> {
    let mut depth = 0u32;
    loop {
        match reader.read_event().map_err(|_| ParseError::Syntax)? {
            // The root is depth 1, its children 2.
            Event::Start(_) if depth + 2 > MAX_DEPTH => return Err(ParseError::Syntax),
            Event::Start(_) => depth += 1,
            Event::End(_) if depth == 0 => return Ok(()),
            Event::End(_) => depth -= 1,
            Event::Text(t) if depth == 0 => body.push_str(&t.xml10_content()),
            Event::CData(t) if depth == 0 => body.push_str(&t.xml10_content()),
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
                body.push_str(&c);
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

/// The statuses, by code, as STATUSLIST names them.
pub(crate) const STATUSES: [&str; 4] = ["Online", "Away", "Busy", "Invisible"];

pub(crate) use crate::config::ImsTerminator as Terminator;

/// The byte that ends each document.
fn end_byte(term: Terminator) -> u8 {
    match term {
        Terminator::Newline => b'\n',
        Terminator::Nul => 0,
    }
}

impl Reply<'_> {
    /// Bytes the encoded reply takes with its terminator when nothing needs escaping
    /// (escapes grow it past this), so its buffer is allocated once instead of regrown.
    pub(crate) fn encoded_len_hint(&self) -> usize {
        const TAGS: usize = 48;
        1 + match self {
            Reply::Echo(bytes) => bytes.len(),
            Reply::Login { user, .. } | Reply::Logout { user, .. } => TAGS + user.len(),
            Reply::Friend { action, .. } => TAGS + action.len(),
            Reply::MessageResult(_) | Reply::StatusGet(_) | Reply::StatusSet(_) => TAGS,
            Reply::StatusList => 256,
            Reply::Friends(friends) => {
                TAGS + friends
                    .iter()
                    .map(|(name, _)| 32 + name.len())
                    .sum::<usize>()
            }
            Reply::Message { from, to, body } => TAGS + from.len() + to.len() + body.len(),
            Reply::Invite { to, from } => TAGS + to.len() + from.len(),
        }
    }
}

/// Appends `reply`, then the terminator, to `out`.
pub(crate) fn encode(reply: &Reply<'_>, term: Terminator, out: &mut BytesMut) {
    match reply {
        Reply::Echo(bytes) => out.put_slice(bytes),
        Reply::Login { user, result } => {
            out.put_slice(b"<LOGIN user=\"");
            attr(user, out);
            put_fmt(out, format_args!("\" result=\"{result}\"/>"));
        }
        Reply::Logout { user, result } => {
            out.put_slice(b"<LOGOUT user=\"");
            attr(user, out);
            put_fmt(out, format_args!("\" result=\"{result}\"/>"));
        }
        Reply::MessageResult(r) => put_fmt(out, format_args!("<MESSAGE result=\"{r}\"/>")),
        Reply::StatusGet(r) => put_fmt(out, format_args!("<STATUS type=\"get\" result=\"{r}\"/>")),
        Reply::StatusSet(r) => put_fmt(out, format_args!("<STATUS type=\"set\" result=\"{r}\"/>")),
        Reply::StatusList => {
            out.put_slice(b"<STATUSLIST>");
            for (id, name) in STATUSES.iter().enumerate() {
                put_fmt(out, format_args!("<STATUS id=\"{id}\">{name}</STATUS>"));
            }
            out.put_slice(b"</STATUSLIST>");
        }
        Reply::Friend { action, result } => {
            out.put_slice(b"<FRIEND type=\"");
            attr(action, out);
            put_fmt(out, format_args!("\" result=\"{result}\"/>"));
        }
        Reply::Friends(friends) => {
            out.put_slice(b"<FRIENDS>");
            for (name, status) in friends.iter() {
                put_fmt(out, format_args!("<USER status=\"{status}\">"));
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

fn put_fmt(out: &mut BytesMut, args: core::fmt::Arguments<'_>) {
    use core::fmt::Write;
    struct W<'b>(&'b mut BytesMut);
    impl Write for W<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            self.0.put_slice(s.as_bytes());
            Ok(())
        }
    }
    // Writing into memory cannot fail.
    let _ = W(out).write_fmt(args);
}

/// Escapes text content: `&`, `<`, `>`, and control characters other than tab as
/// character references, so every document stays on one line (a NUL, which XML cannot
/// carry, becomes U+FFFD and never ends a document early).
fn text(s: &str, out: &mut BytesMut) {
    escape(s, false, out);
}

/// Escapes an attribute value: as text, and `"` too.
fn attr(s: &str, out: &mut BytesMut) {
    escape(s, true, out);
}

fn escape(s: &str, quote: bool, out: &mut BytesMut) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep: Option<&[u8]> = match b {
            b'&' => Some(b"&amp;"),
            b'<' => Some(b"&lt;"),
            b'>' => Some(b"&gt;"),
            b'"' if quote => Some(b"&quot;"),
            b'\t' => None,
            0 => Some("\u{FFFD}".as_bytes()),
            1..=0x1f | 0x7f => {
                out.put_slice(&s.as_bytes()[start..i]);
                put_fmt(out, format_args!("&#{b};"));
                start = i + 1;
                continue;
            }
            _ => None,
        };
        if let Some(rep) = rep {
            out.put_slice(&s.as_bytes()[start..i]);
            out.put_slice(rep);
            start = i + 1;
        }
    }
    out.put_slice(&s.as_bytes()[start..]);
}

#[cfg(test)]
mod attribute_tests {
    use super::*;

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
