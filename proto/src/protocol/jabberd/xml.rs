//! The router link's XML: a stream whose outer `<stream:stream>` element never closes,
//! with every unit of the protocol (features, SASL, `bind`, `route`, advertisements) an
//! element at depth 1. [`StreamReader`] finds the stream header, then cuts the depth-1
//! elements with the ims framer (incremental, bounded, resynchronising) and parses each
//! into a small tree with its namespaces resolved, since jabberd2 names everything by
//! namespace URI and never by prefix.

use std::borrow::Cow;

use bytes::{Buf, Bytes, BytesMut};
use quick_xml::events::{BytesStart, Event};
use quick_xml::parser::{ElementParser, Parser, PiParser};
use quick_xml::{Reader, XmlVersion};

use crate::protocol::ims::framer::{Frame, Framer, Malformed};

/// `http://etherx.jabber.org/streams`: the stream wrapper and its features.
pub(crate) const NS_STREAM: &str = "http://etherx.jabber.org/streams";
/// SASL on the router link.
pub(crate) const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// The router protocol: `bind`, `route`, component `presence`.
pub(crate) const NS_COMP: &str = "http://jabberd.jabberstudio.org/ns/component/1.0";
/// The sm-c2s session protocol.
pub(crate) const NS_SESS: &str = "http://jabberd.jabberstudio.org/ns/session/1.0";
/// The stanzas a route carries.
pub(crate) const NS_CLIENT: &str = "jabber:client";

/// The longest stream header accepted (the `<?xml?>` declaration and the start tag).
pub(crate) const MAX_HEADER_BYTES: usize = 4096;
/// How deep a parsed element may nest; deeper input is refused as malformed.
const MAX_DEPTH: usize = 32;

/// An element with its namespace resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Element {
    /// The local name (no prefix).
    pub(crate) name: String,
    /// The namespace URI ("" for none).
    pub(crate) ns: String,
    /// The attributes but namespace declarations, in document order.
    pub(crate) attrs: Vec<Attr>,
    /// Child elements and text, in order.
    pub(crate) children: Vec<Node>,
}

/// An attribute: unqualified (`ns` empty) or in a namespace (`sc:c2s`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attr {
    pub(crate) ns: String,
    pub(crate) name: String,
    pub(crate) value: String,
}

/// A child of an element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    /// Whether this is `name` in namespace `ns`.
    pub(crate) fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// The unqualified attribute `name` (the first, if repeated).
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        (self.attrs.iter())
            .find(|a| a.ns.is_empty() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// The attribute `name` in namespace `ns`.
    pub(crate) fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        (self.attrs.iter())
            .find(|a| a.ns == ns && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// The child elements, in order.
    pub(crate) fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element `name` in namespace `ns`.
    pub(crate) fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(ns, name))
    }

    /// The element's own text (not its children's), concatenated.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        for node in &self.children {
            if let Node::Text(t) = node {
                out.push_str(t);
            }
        }
        out
    }
}

/// One unit read from the router.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// The router's stream header (its `<stream:stream>` start tag).
    Header,
    /// An element at depth 1.
    Element(Element),
    /// The router closed its stream (`</stream:stream>`).
    Closed,
}

/// Why the stream cannot go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamError {
    /// The header is missing, malformed, or not a `stream` element.
    BadHeader,
}

/// Reads the router's stream: its header, then one depth-1 element at a time.
#[derive(Debug)]
pub(crate) struct StreamReader {
    buf: BytesMut,
    /// The header has been read; depth-1 elements follow.
    open: bool,
    framer: Framer,
    max: usize,
}

impl StreamReader {
    /// A reader for a new stream whose elements are at most `max` bytes; a longer one
    /// is skipped.
    pub(crate) fn new(max: usize) -> Self {
        StreamReader {
            buf: BytesMut::new(),
            open: false,
            framer: Framer::new(max),
            max,
        }
    }

    /// The stream restarts (after SASL): the next thing read is a new header; bytes
    /// already buffered belong to the new stream.
    pub(crate) fn restart(&mut self) {
        self.open = false;
        self.framer = Framer::new(self.max);
    }

    /// Bytes buffered and not yet read.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends bytes from the router.
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next unit, `Ok(None)` when more input is needed.
    pub(crate) fn next(&mut self) -> Result<Option<Read>, StreamError> {
        if !self.open {
            return match self.header()? {
                Some(()) => {
                    self.open = true;
                    Ok(Some(Read::Header))
                }
                None => Ok(None),
            };
        }
        loop {
            match self.framer.next(&mut self.buf) {
                None => return Ok(None),
                // The only end tag at depth 0 is the stream's own.
                Some(Frame::Malformed(Malformed::StrayEndTag)) => return Ok(Some(Read::Closed)),
                // Anything else malformed or oversized is skipped.
                Some(Frame::Malformed(_) | Frame::TooLarge) => {}
                Some(Frame::Document(doc)) => {
                    if let Some(element) = parse(&doc) {
                        return Ok(Some(Read::Element(element)));
                    }
                }
            }
        }
    }

    /// Consumes the header if it has arrived whole: an optional XML declaration, then a
    /// `stream` start tag.
    fn header(&mut self) -> Result<Option<()>, StreamError> {
        // Declarations (and whitespace) before the start tag are skipped, in a loop: a
        // peer sending thousands of them costs no stack.
        loop {
            let skip = self
                .buf
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(self.buf.len());
            self.buf.advance(skip);
            if self.buf.len() < 2 {
                return Ok(None);
            }
            if !self.buf.starts_with(b"<?") {
                break;
            }
            let mut pi = PiParser::default();
            match pi.feed(&self.buf[2..]) {
                // The limit holds for a declaration that arrived whole too, so whether
                // it is refused does not depend on how the bytes were split.
                Some(i) if 2 + i + 1 > MAX_HEADER_BYTES => return Err(StreamError::BadHeader),
                Some(i) => self.buf.advance(2 + i + 1),
                None if self.buf.len() > MAX_HEADER_BYTES => return Err(StreamError::BadHeader),
                None => return Ok(None),
            }
        }
        if self.buf[0] != b'<' {
            return Err(StreamError::BadHeader);
        }
        let mut tag = ElementParser::default();
        let Some(i) = tag.feed(&self.buf[1..]) else {
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err(StreamError::BadHeader);
            }
            return Ok(None);
        };
        if 1 + i + 1 > MAX_HEADER_BYTES {
            return Err(StreamError::BadHeader);
        }
        let raw = self.buf.split_to(1 + i + 1);
        let inner = &raw[1..raw.len() - 1];
        let name_end = inner
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'/')
            .unwrap_or(inner.len());
        let name = &inner[..name_end];
        let local = name.rsplit(|&b| b == b':').next().unwrap_or(name);
        if local != b"stream" || inner.ends_with(b"/") {
            return Err(StreamError::BadHeader);
        }
        Ok(Some(()))
    }
}

/// The namespaces in scope: (prefix, URI), innermost last; "" is the default.
type Scope = Vec<(String, String)>;

fn resolve<'s>(scope: &'s Scope, prefix: &str) -> Option<&'s str> {
    (scope.iter().rev())
        .find(|(p, _)| p == prefix)
        .map(|(_, uri)| uri.as_str())
}

/// Parses one depth-1 element of the stream; `None` if it is not well formed. The
/// stream's own prefix `stream` is in scope, as the header declared it.
pub(crate) fn parse(doc: &[u8]) -> Option<Element> {
    if memchr::memchr(0, doc).is_some() {
        return None;
    }
    let text = std::str::from_utf8(doc).ok()?;
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    let mut scope: Scope = vec![
        (String::new(), String::new()),
        ("stream".to_owned(), NS_STREAM.to_owned()),
        (
            "xml".to_owned(),
            "http://www.w3.org/XML/1998/namespace".to_owned(),
        ),
    ];
    // The open elements, with how many scope entries each added.
    let mut stack: Vec<(Element, usize)> = Vec::new();
    loop {
        let event = reader.read_event().ok()?;
        match event {
            Event::Start(start) | Event::Empty(start) if stack.len() >= MAX_DEPTH => {
                let _ = start;
                return None;
            }
            Event::Start(start) => {
                let (element, added) = open(&start, &mut scope)?;
                stack.push((element, added));
            }
            Event::Empty(start) => {
                let (element, added) = open(&start, &mut scope)?;
                scope.truncate(scope.len() - added);
                match stack.last_mut() {
                    Some((parent, _)) => parent.children.push(Node::Element(element)),
                    None => return Some(element),
                }
            }
            Event::End(_) => {
                let (element, added) = stack.pop()?;
                scope.truncate(scope.len() - added);
                match stack.last_mut() {
                    Some((parent, _)) => parent.children.push(Node::Element(element)),
                    None => return Some(element),
                }
            }
            Event::Text(t) => push_text(&mut stack, t.xml10_content()),
            Event::CData(t) => push_text(&mut stack, t.xml10_content()),
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().ok()? {
                    Some(c) => Cow::Owned(c.to_string()),
                    None => {
                        let name: &str = &r;
                        Cow::Borrowed(quick_xml::escape::resolve_predefined_entity(name)?)
                    }
                };
                push_text(&mut stack, c);
            }
            Event::Eof | Event::DocType(_) => return None,
            _ => {}
        }
    }
}

fn push_text(stack: &mut [(Element, usize)], text: Cow<'_, str>) {
    let Some((element, _)) = stack.last_mut() else {
        return;
    };
    match element.children.last_mut() {
        Some(Node::Text(t)) => t.push_str(&text),
        _ => element.children.push(Node::Text(text.into_owned())),
    }
}

/// Reads a start tag: declares its namespaces in `scope` (returning how many) and
/// resolves its name and attributes.
fn open(start: &BytesStart<'_>, scope: &mut Scope) -> Option<(Element, usize)> {
    let mut raw: Vec<(String, String)> = Vec::new();
    let mut added = 0;
    for attr in start.attributes().with_checks(false) {
        let attr = attr.ok()?;
        let value = attr.normalized_value(XmlVersion::Implicit1_0).ok()?;
        let key: &str = attr.key.as_ref();
        if key == "xmlns" {
            scope.push((String::new(), value.into_owned()));
            added += 1;
        } else if let Some(prefix) = key.strip_prefix("xmlns:") {
            scope.push((prefix.to_owned(), value.into_owned()));
            added += 1;
        } else {
            raw.push((key.to_owned(), value.into_owned()));
        }
    }
    let qname = start.name();
    let (prefix, local) = split(qname.as_ref());
    let ns = resolve(scope, prefix)?.to_owned();
    let mut attrs = Vec::with_capacity(raw.len());
    for (key, value) in raw {
        let (prefix, local) = split(&key);
        let ns = match prefix {
            "" => String::new(),
            p => resolve(scope, p)?.to_owned(),
        };
        attrs.push(Attr {
            ns,
            name: local.to_owned(),
            value,
        });
    }
    let element = Element {
        name: local.to_owned(),
        ns,
        attrs,
        children: Vec::new(),
    };
    Some((element, added))
}

fn split(qname: &str) -> (&str, &str) {
    match qname.split_once(':') {
        Some((prefix, local)) => (prefix, local),
        None => ("", qname),
    }
}

/// Escapes text or a single-quoted attribute value.
pub(crate) fn esc(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '\'', '"']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Bytes of `s`.
pub(crate) fn bytes(s: String) -> Bytes {
    Bytes::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(reader: &mut StreamReader) -> Result<Vec<Read>, StreamError> {
        let mut out = Vec::new();
        while let Some(read) = reader.next()? {
            out.push(read);
        }
        Ok(out)
    }

    #[test]
    fn namespaces_resolve_by_uri_whatever_the_prefix() {
        let e = parse(b"<r xmlns='urn:a' xmlns:x='urn:s'><x:session x:c2s='8' action='start'/><body>a &amp; b<![CDATA[<c>]]></body></r>").expect("parsed");
        assert!(e.is("urn:a", "r"));
        let session = e.child("urn:s", "session").expect("session");
        assert_eq!(session.attr_ns("urn:s", "c2s"), Some("8"));
        assert_eq!(
            session.attr("c2s"),
            None,
            "a qualified attribute is not unqualified"
        );
        assert_eq!(session.attr("action"), Some("start"));
        assert_eq!(
            e.child("urn:a", "body").map(Element::text).as_deref(),
            Some("a & b<c>")
        );
        assert_eq!(parse(b"<a><b></a>"), None);
        assert_eq!(parse(b"<u:a/>"), None, "an undeclared prefix");
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(deep.as_bytes()), None, "too deep");
    }

    /// XML limits (issue 15) on the router link: nesting is bounded (`MAX_DEPTH` levels
    /// parse, one more does not), a DOCTYPE is never processed, and only the predefined
    /// entities and character references are expanded: any other makes the element
    /// malformed, so a "billion laughs" never grows.
    #[test]
    fn depth_doctype_and_entities_are_bounded() {
        let deep = |n: usize| parse(("<a>".repeat(n) + &"</a>".repeat(n)).as_bytes());
        assert!(deep(MAX_DEPTH).is_some(), "as deep as allowed");
        assert_eq!(deep(MAX_DEPTH + 1), None, "one level more");
        let laughs = "<!DOCTYPE a [<!ENTITY b 'bbbbbbbbbb'><!ENTITY c '&b;&b;&b;'>]><a>&c;</a>";
        assert_eq!(parse(laughs.as_bytes()), None);
        assert_eq!(parse(b"<a><!DOCTYPE a></a>"), None);
        assert_eq!(parse(b"<a>&c;</a>"), None, "an unknown entity");
        assert_eq!(parse(b"<a><b>&c;</b></a>"), None, "in a child too");
        let e = parse(b"<a>&lt;&amp;&gt;&quot;&apos;&#65;&#x42;</a>").expect("parsed");
        assert_eq!(e.text(), "<&>\"'AB");
    }

    #[test]
    fn the_stream_yields_its_header_elements_and_its_end() {
        let mut reader = StreamReader::new(1024);
        let many_declarations = "<?x?>".repeat(100_000);
        reader.extend(many_declarations.as_bytes());
        assert_eq!(
            read_all(&mut reader),
            Ok(vec![]),
            "declarations skipped, no stack used"
        );
        reader.extend(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'> <a/>junk<b x='>'></b>");
        reader.extend(&[b'x'; 2000]);
        reader.extend(b"<c/></stream:stream>");
        let got = read_all(&mut reader).expect("readable");
        let names: Vec<String> = got
            .iter()
            .map(|r| match r {
                Read::Header => "header".to_owned(),
                Read::Element(e) => e.name.clone(),
                Read::Closed => "closed".to_owned(),
            })
            .collect();
        assert_eq!(names, ["header", "a", "b", "c", "closed"]);
        let mut bad = StreamReader::new(1024);
        bad.extend(b"<features/>");
        assert_eq!(bad.next(), Err(StreamError::BadHeader));
    }

    /// A header (or a declaration before it) longer than `MAX_HEADER_BYTES` is refused
    /// whether it arrives whole or in pieces; one at the limit is read either way.
    #[test]
    fn the_header_limit_holds_however_the_header_arrives() {
        let open = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' v='";
        let header = |len: usize| format!("{open}{}'>", "x".repeat(len - open.len() - 2));
        let declaration = |len: usize| format!("<?x {}?>", "y".repeat(len - 6));
        for (text, ok) in [
            (header(MAX_HEADER_BYTES), true),
            (header(MAX_HEADER_BYTES + 1), false),
            (declaration(MAX_HEADER_BYTES) + &header(100), true),
            (declaration(MAX_HEADER_BYTES + 1) + &header(100), false),
        ] {
            let expected = if ok {
                Ok(Some(Read::Header))
            } else {
                Err(StreamError::BadHeader)
            };
            let mut whole = StreamReader::new(1024);
            whole.extend(text.as_bytes());
            assert_eq!(whole.next(), expected, "whole, {} bytes", text.len());
            let mut split = StreamReader::new(1024);
            let mut got = Ok(None);
            for piece in text.as_bytes().chunks(1000) {
                split.extend(piece);
                got = split.next();
                if got != Ok(None) {
                    break;
                }
            }
            assert_eq!(got, expected, "in pieces, {} bytes", text.len());
        }
    }
}
