//! Framing of back-to-back XML documents: each top-level element is one document, with
//! whitespace, newlines or NUL between documents. Incremental (keeps its scan state
//! between reads, so a document arriving a byte at a time costs linear work), bounded
//! (a unit longer than the limit is reported once and skipped), and resynchronising
//! (malformed input is skipped to the next `<`).
//!
//! Ends of tags, comments and processing instructions are found with quick-xml's
//! resumable parsers (quotes in attribute values may hold `>`); depth counting finds the
//! end of the root element, and so does the end tag that closes the root by name with
//! elements inside it left open (`<MESSAGE>a<br>b</MESSAGE>`, unescaped markup in a
//! message): without it, such a document would take every later one into itself until
//! the connection timed out. Whether the document is well formed is the parser's
//! business ([`super::codec::parse`]); the framer only needs its extent.

use bytes::Bytes;

use crate::frame::{FrameInput, SplitInput};
use quick_xml::parser::{ElementParser, Parser, PiParser};

/// One result of [`Framer::next`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A complete top-level element, from its `<` to its last `>`, followed by the
    /// framer's trailer byte when that came right after it (see
    /// [`Framer::with_trailer`]): an element never ends in that byte, so a document
    /// ending in it carries it.
    Document(Bytes),
    /// Bytes that cannot start or continue a document were skipped, up to the next `<`
    /// (or the end of what has arrived). Reported once per run of such bytes.
    Malformed(Malformed),
    /// A document (or a top-level comment or declaration) passed the limit; it is being
    /// skipped to its end, and the next document is framed normally. Reported once.
    TooLarge,
}

/// What was wrong with skipped input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// Text outside any element.
    TextOutside,
    /// An end tag with no element open.
    StrayEndTag,
    /// `<` not followed by a name, `/`, `?` or `!`.
    BadTag,
    /// `<!` that is neither a comment nor CDATA in an element (a DOCTYPE, say).
    BadDeclaration,
    /// A NUL byte inside a document.
    Nul,
}

/// Where the scan is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between documents: whitespace and NUL are skipped.
    Top,
    /// Just past a `<`: what follows decides what it opens.
    Open,
    /// Past `<!`, with the bytes seen since (to tell `<!--` from `<![CDATA[`).
    Bang { seen: [u8; 7], n: u8 },
    /// Inside a tag (start tag, or end tag when `end`); `last` is the last byte before
    /// the scan position that is not white space (a `/` before the `>` makes the
    /// element empty).
    Tag {
        parser: ElementParser,
        end: bool,
        last: u8,
    },
    /// Inside a comment, with how many `-` just went by (at most 2). Our own count, not
    /// quick-xml's `CommentParser`, whose state after a piece ending in one `-` keeps
    /// the count of the piece before (`--` then `x-` leaves it at two), so a later `>`
    /// ended the comment early in one split and not in another (found by the
    /// `ims_decoder` fuzz target).
    Comment(u8),
    /// Inside a processing instruction (an XML declaration).
    Pi(PiParser),
    /// Inside a CDATA section, with how many `]` just went by (at most 2).
    Cdata(u8),
    /// Inside an element, between markup.
    Text,
    /// Skipping malformed bytes up to the next `<`.
    Junk,
}

const CDATA: &[u8] = b"[CDATA[";
const COMMENT: &[u8] = b"--";

/// Splits a byte stream into XML documents, however it is chunked.
#[derive(Debug)]
pub(crate) struct Framer {
    max: usize,
    state: State,
    /// Bytes of the buffer already scanned (the buffer starts where the current unit
    /// starts: a document, a top-level comment or declaration).
    pos: usize,
    /// Elements open in the current document.
    depth: u32,
    /// Of those, the ones named as the root is (the root among them): when an end tag
    /// of that name closes the last of them, the document ends, whatever is still open
    /// inside it.
    root_open: u32,
    /// Where the tag being scanned starts (its `<`) in the buffer.
    tag_start: usize,
    /// The current unit passed the limit: its bytes are dropped as they are scanned.
    discarding: bool,
    /// A byte taken into a document when it immediately follows its last `>`.
    trailer: Option<u8>,
    /// Whether a whole plain document is found in one pass ([`plain_extent`]); off only
    /// in the test that compares it with the states.
    plain: bool,
}

impl Framer {
    /// A framer whose documents are at most `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Framer {
            max,
            state: State::Top,
            pos: 0,
            depth: 0,
            root_open: 0,
            tag_start: 0,
            discarding: false,
            trailer: None,
            plain: true,
        }
    }

    /// The same framer without the one-pass reading of plain documents, for the test
    /// that checks it frames as the states do.
    #[cfg(test)]
    pub(crate) fn states_only(mut self) -> Self {
        self.plain = false;
        self
    }

    /// The same framer, taking `byte` into a document when it has arrived right after
    /// the document's last `>` (a client ending each document with the byte the server
    /// ends its own with): the document can then be echoed as it arrived, sharing the
    /// read's memory, instead of copied with the byte appended. The byte would be
    /// skipped between documents anyway, so the framing is otherwise the same.
    pub(crate) fn with_trailer(mut self, byte: u8) -> Self {
        self.trailer = Some(byte);
        self
    }

    /// Takes the next frame out of `buf`, or `None` if more input is needed. Bytes of a
    /// document are kept in `buf` until it is complete; everything else is consumed as
    /// it is scanned.
    pub(crate) fn next<B: SplitInput>(&mut self, buf: &mut B) -> Option<Frame> {
        loop {
            if self.discarding && self.pos > 0 {
                buf.advance(self.pos);
                self.pos = 0;
            }
            if !self.discarding && self.state != State::Top && self.pos > self.max {
                self.discarding = true;
                buf.advance(self.pos);
                self.pos = 0;
                return Some(Frame::TooLarge);
            }
            // A unit is scanned no further than one byte past the limit, so it is refused
            // at the same byte however the input is split (whole, a NUL past the limit
            // would be seen before the limit was).
            let between = matches!(self.state, State::Top | State::Junk);
            let end = match self.discarding || between {
                true => buf.len(),
                false => buf.len().min(self.max.saturating_add(1)),
            };
            let rest = &buf[self.pos..end];
            if rest.is_empty() {
                return None;
            }
            match self.state {
                State::Top => {
                    let skip = rest
                        .iter()
                        .position(|&b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0));
                    match skip {
                        None => {
                            buf.clear();
                            self.pos = 0;
                            return None;
                        }
                        Some(i) => {
                            buf.advance(self.pos + i);
                            self.pos = 0;
                            let plain = match self.plain && !self.discarding {
                                true => plain_extent(&buf[..], self.max),
                                false => None,
                            };
                            if let Some(len) = plain {
                                // The whole document is here in its plain form: what the
                                // states below would find, in one pass.
                                self.pos = len;
                                if let Some(frame) = self.after_markup(buf) {
                                    return Some(frame);
                                }
                            } else if buf[0] == b'<' {
                                self.pos = 1;
                                self.state = State::Open;
                            } else {
                                return Some(self.malformed(buf, Malformed::TextOutside));
                            }
                        }
                    }
                }
                State::Open => {
                    let b = rest[0];
                    // A byte that opens nothing stays, to be looked at again (it may be
                    // the `<` of the next document).
                    if !matches!(b, b'?' | b'!' | b'/') && !is_name_start(b) {
                        return Some(self.malformed(buf, Malformed::BadTag));
                    }
                    // (At 0 only when discarding, which never reads it.)
                    self.tag_start = self.pos.saturating_sub(1);
                    self.pos += 1;
                    self.state = match b {
                        b'?' => State::Pi(PiParser::default()),
                        b'!' => State::Bang { seen: [0; 7], n: 0 },
                        b'/' if self.depth == 0 => {
                            return Some(self.malformed(buf, Malformed::StrayEndTag))
                        }
                        b'/' => State::Tag {
                            parser: ElementParser::default(),
                            end: true,
                            last: b'/',
                        },
                        b => State::Tag {
                            parser: ElementParser::default(),
                            end: false,
                            last: b,
                        },
                    };
                }
                State::Bang { mut seen, mut n } => {
                    let b = rest[0];
                    self.pos += 1;
                    seen[usize::from(n)] = b;
                    n += 1;
                    let seen_now = &seen[..usize::from(n)];
                    if seen_now == COMMENT {
                        self.state = State::Comment(0);
                    } else if seen_now == CDATA && self.depth > 0 {
                        self.state = State::Cdata(0);
                    } else if COMMENT.starts_with(seen_now)
                        || (CDATA.starts_with(seen_now) && self.depth > 0)
                    {
                        self.state = State::Bang { seen, n };
                    } else {
                        return Some(self.malformed(buf, Malformed::BadDeclaration));
                    }
                }
                State::Tag {
                    mut parser,
                    end,
                    last,
                } => match parser.feed(rest) {
                    None => {
                        let last = last_not_space(rest).unwrap_or(last);
                        self.pos += rest.len();
                        self.state = State::Tag { parser, end, last };
                    }
                    Some(i) => {
                        let before = last_not_space(&rest[..i]).unwrap_or(last);
                        self.pos += i + 1;
                        self.tag_ended(buf, end, before == b'/');
                        if let Some(frame) = self.after_markup(buf) {
                            return Some(frame);
                        }
                    }
                },
                State::Comment(mut dashes) => {
                    let mut done = None;
                    for (i, &b) in rest.iter().enumerate() {
                        match b {
                            b'>' if dashes >= 2 => {
                                done = Some(i);
                                break;
                            }
                            b'-' => dashes = (dashes + 1).min(2),
                            _ => dashes = 0,
                        }
                    }
                    match done {
                        None => {
                            self.pos += rest.len();
                            self.state = State::Comment(dashes);
                        }
                        Some(i) => {
                            self.pos += i + 1;
                            if let Some(frame) = self.after_markup(buf) {
                                return Some(frame);
                            }
                        }
                    }
                }
                State::Pi(mut parser) => match parser.feed(rest) {
                    None => {
                        self.pos += rest.len();
                        self.state = State::Pi(parser);
                    }
                    Some(i) => {
                        self.pos += i + 1;
                        if let Some(frame) = self.after_markup(buf) {
                            return Some(frame);
                        }
                    }
                },
                State::Cdata(mut brackets) => {
                    let mut done = None;
                    for (i, &b) in rest.iter().enumerate() {
                        match b {
                            b'>' if brackets >= 2 => {
                                done = Some(i);
                                break;
                            }
                            b']' => brackets = (brackets + 1).min(2),
                            _ => brackets = 0,
                        }
                    }
                    match done {
                        None => {
                            self.pos += rest.len();
                            self.state = State::Cdata(brackets);
                        }
                        Some(i) => {
                            self.pos += i + 1;
                            self.state = State::Text;
                        }
                    }
                }
                State::Text => match memchr::memchr2(b'<', 0, rest) {
                    None => self.pos += rest.len(),
                    Some(i) if rest[i] == 0 => {
                        self.pos += i;
                        return Some(self.malformed(buf, Malformed::Nul));
                    }
                    Some(i) => {
                        self.pos += i + 1;
                        self.state = State::Open;
                    }
                },
                State::Junk => match memchr::memchr(b'<', rest) {
                    None => {
                        buf.clear();
                        self.pos = 0;
                        return None;
                    }
                    Some(i) => {
                        buf.advance(self.pos + i);
                        self.pos = 0;
                        self.state = State::Top;
                    }
                },
            }
        }
    }

    /// A start tag (`empty` when it ends in `/>`) or an end tag, from `tag_start` to
    /// `pos`, ended: counts the elements it opens or closes.
    fn tag_ended<B: SplitInput>(&mut self, buf: &B, end: bool, empty: bool) {
        if !end && empty {
            return;
        }
        // The unit starts at the buffer's start unless it is being discarded (then it is
        // dropped anyway, and only depth counts).
        let root_named = !self.discarding && {
            let name = |at: usize| tag_name(buf.get(at..self.pos).unwrap_or_default());
            name(self.tag_start + 1 + usize::from(end)) == name(1)
        };
        if end {
            self.depth = self.depth.saturating_sub(1);
            if root_named {
                self.root_open = self.root_open.saturating_sub(1);
                if self.root_open == 0 {
                    self.depth = 0;
                }
            }
        } else {
            self.depth = self.depth.saturating_add(1);
            if self.depth == 1 || root_named {
                self.root_open = self.root_open.saturating_add(1);
            }
        }
    }

    /// A tag, comment or declaration ended at `pos`: the document is complete when no
    /// element is open (a top-level comment or declaration is dropped).
    fn after_markup<B: SplitInput>(&mut self, buf: &mut B) -> Option<Frame> {
        if self.depth > 0 {
            self.state = State::Text;
            return None;
        }
        self.root_open = 0;
        self.state = State::Top;
        let len = std::mem::take(&mut self.pos);
        if std::mem::take(&mut self.discarding) {
            buf.advance(len);
            return None;
        }
        // One read may bring a whole unit longer than the limit (a huge attribute).
        if len > self.max {
            buf.advance(len);
            return Some(Frame::TooLarge);
        }
        let element = buf.first() == Some(&b'<') && buf.get(1).is_some_and(|&b| is_name_start(b));
        if !element {
            buf.advance(len);
            return None;
        }
        let trailed = self.trailer.is_some_and(|t| buf.get(len) == Some(&t));
        Some(Frame::Document(buf.split_front(len + usize::from(trailed))))
    }

    /// The unit being scanned is malformed: it is dropped, with whatever follows up to
    /// the next `<`.
    fn malformed<B: FrameInput>(&mut self, buf: &mut B, why: Malformed) -> Frame {
        self.discarding = false;
        buf.advance(self.pos);
        self.pos = 0;
        self.depth = 0;
        self.root_open = 0;
        self.state = State::Junk;
        Frame::Malformed(why)
    }
}

/// The length of the document at the start of `b` when all of it has arrived, it is at
/// most `max` bytes, and it is plain: a start tag (quotes in it respected) that is empty
/// or followed by text without `<` or NUL and an end tag without quotes. That is where the
/// states of [`Framer::next`] would end it (`the_plain_extent_is_where_the_states_end_it`);
/// anything else is `None`, for them.
fn plain_extent(b: &[u8], max: usize) -> Option<usize> {
    if b.first() != Some(&b'<') || !b.get(1).is_some_and(|&c| is_name_start(c)) {
        return None;
    }
    // The first `>` ends the start tag when no quotes are open there (every quote
    // before it is closed before it); one inside quotes is left to the states. Tags
    // are short: their quotes are found by plain loops, not memchr's setup.
    let gt = 2 + memchr::memchr(b'>', &b[2..])?;
    let tag = &b[..gt];
    let mut at = 2;
    while let Some(open) = tag[at..].iter().position(|&c| c == b'"' || c == b'\'') {
        let open = at + open;
        at = open + 1 + tag[open + 1..].iter().position(|&c| c == tag[open])? + 1;
    }
    let len = if last_not_space(tag) == Some(b'/') {
        gt + 1
    } else {
        let lt = gt + 1 + memchr::memchr2(b'<', 0, &b[gt + 1..])?;
        if b[lt] == 0 || b.get(lt + 1) != Some(&b'/') {
            return None;
        }
        let close = b.get(lt + 2..)?;
        let end = lt
            + 2
            + close
                .iter()
                .position(|&c| matches!(c, b'>' | b'"' | b'\''))?;
        if b[end] != b'>' {
            return None;
        }
        end + 1
    };
    (len <= max).then_some(len)
}

/// The name at the start of a tag's bytes past its `<` (or `</`).
fn tag_name(tag: &[u8]) -> &[u8] {
    let end = (tag.iter())
        .position(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'))
        .unwrap_or(tag.len());
    &tag[..end]
}

/// The last byte of `b` that is not XML white space.
fn last_not_space(b: &[u8]) -> Option<u8> {
    b.iter()
        .rev()
        .find(|&&c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        .copied()
}

/// Whether `b` may start an element name (an ASCII letter, `_`, `:`, or the first byte of
/// a non-ASCII character).
fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}
