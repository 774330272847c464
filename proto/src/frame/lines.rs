//! Line framing for the line protocols: LF ends a line, a CR before it is dropped; or, for
//! protocols whose clients end lines either way, CR and LF each end one.

use super::FrameInput;

/// One result of [`LineFramer::next_line`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A complete line: its first `len` bytes, without the line ending, are the line;
    /// the caller reads them in place, then advances the buffer by `consumed`. (Splitting
    /// each line off as its own `Bytes` would cost an allocation per line.)
    Complete { len: usize, consumed: usize },
    /// A line passed the limit; its bytes are being discarded up to the next LF, and the
    /// line after it is framed normally. Reported once per long line.
    TooLong,
}

/// Splits a byte stream into lines, however it is chunked. Keeps at most `max` bytes of
/// an unfinished line buffered; a longer line is reported and skipped.
#[derive(Debug)]
pub(crate) struct LineFramer {
    max: usize,
    /// CR ends a line as LF does (a CRLF then gives an empty line after each line, which
    /// such a protocol ignores), instead of only being dropped before an LF.
    cr_ends: bool,
    /// Bytes at the start of the buffer already known to hold no LF.
    scanned: usize,
    /// Inside a too-long line: drop bytes until its LF.
    discarding: bool,
}

impl LineFramer {
    pub(crate) fn new(max: usize) -> Self {
        LineFramer {
            max,
            cr_ends: false,
            scanned: 0,
            discarding: false,
        }
    }

    /// A framer for which LF, CR and CRLF all end a line (a CRLF as a line and an empty
    /// one, so a CR and its LF may arrive apart).
    pub(crate) fn cr_or_lf(max: usize) -> Self {
        LineFramer {
            cr_ends: true,
            ..LineFramer::new(max)
        }
    }

    /// Takes the next frame out of `buf`, or `None` if more input is needed.
    pub(crate) fn next_line<B: FrameInput>(&mut self, buf: &mut B) -> Option<Line> {
        loop {
            let rest = &buf[self.scanned..];
            let found = match self.cr_ends {
                false => memchr::memchr(b'\n', rest),
                true => memchr::memchr2(b'\n', b'\r', rest),
            };
            match found {
                Some(i) => {
                    let end = self.scanned + i;
                    self.scanned = 0;
                    if self.discarding {
                        buf.advance(end + 1);
                        self.discarding = false;
                        continue;
                    }
                    let len = if !self.cr_ends && end > 0 && buf[end - 1] == b'\r' {
                        end - 1
                    } else {
                        end
                    };
                    if len > self.max {
                        buf.advance(end + 1);
                        return Some(Line::TooLong);
                    }
                    return Some(Line::Complete {
                        len,
                        consumed: end + 1,
                    });
                }
                None if self.discarding => {
                    buf.clear();
                    self.scanned = 0;
                    return None;
                }
                // One extra byte of room for the CR of a CRLF ending.
                None if buf.len() > self.max + 1 => {
                    buf.clear();
                    self.scanned = 0;
                    self.discarding = true;
                    return Some(Line::TooLong);
                }
                None => {
                    self.scanned = buf.len();
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    /// What the framer yields, with complete lines copied out as text.
    #[derive(Debug, PartialEq, Eq)]
    enum Frame {
        Line(Vec<u8>),
        TooLong,
    }

    fn frames(framer: &mut LineFramer, buf: &mut BytesMut, input: &[u8]) -> Vec<Frame> {
        buf.extend_from_slice(input);
        let mut out = Vec::new();
        while let Some(line) = framer.next_line(buf) {
            match line {
                Line::Complete { len, consumed } => {
                    out.push(Frame::Line(buf[..len].to_vec()));
                    buf.advance(consumed);
                }
                Line::TooLong => out.push(Frame::TooLong),
            }
        }
        out
    }

    fn whole(max: usize, input: &[u8]) -> Vec<Frame> {
        frames(&mut LineFramer::new(max), &mut BytesMut::new(), input)
    }

    fn complete(s: &str) -> Frame {
        Frame::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn crlf_and_bare_lf_end_lines() {
        assert_eq!(
            whole(100, b"a b\r\n\r\nc\nd\r"),
            vec![complete("a b"), complete(""), complete("c")]
        );
    }

    #[test]
    fn a_lone_cr_inside_a_line_is_kept() {
        assert_eq!(whole(100, b"a\rb\r\n"), vec![complete("a\rb")]);
    }

    #[test]
    fn every_split_gives_the_same_lines() {
        let input: &[u8] = b"uname bob\r\ncgetu\nchatm 'bob' 'al' 'hi there'\r\n\r\nx\r\n";
        let expected = whole(16, input);
        for cut in 0..=input.len() {
            let mut framer = LineFramer::new(16);
            let mut buf = BytesMut::new();
            let mut got = frames(&mut framer, &mut buf, &input[..cut]);
            got.extend(frames(&mut framer, &mut buf, &input[cut..]));
            assert_eq!(got, expected, "cut at {cut}");
        }
        let mut framer = LineFramer::new(16);
        let mut buf = BytesMut::new();
        let got: Vec<Frame> = input
            .iter()
            .flat_map(|b| frames(&mut framer, &mut buf, std::slice::from_ref(b)))
            .collect();
        assert_eq!(got, expected, "byte by byte");
    }

    #[test]
    fn a_long_line_is_reported_once_and_skipped_without_buffering_it() {
        let mut framer = LineFramer::new(8);
        let mut buf = BytesMut::new();
        assert_eq!(
            frames(&mut framer, &mut buf, b"ok\n0123456789"),
            vec![complete("ok"), Frame::TooLong]
        );
        assert!(buf.len() <= 9);
        for _ in 0..1000 {
            assert_eq!(frames(&mut framer, &mut buf, b"0123456789"), vec![]);
            assert!(buf.is_empty());
        }
        assert_eq!(
            frames(&mut framer, &mut buf, b"xx\nnext\n"),
            vec![complete("next")]
        );
    }

    #[test]
    fn the_limit_counts_the_line_without_its_ending() {
        assert_eq!(
            whole(3, b"abc\r\nabcd\r\nab\n"),
            vec![complete("abc"), Frame::TooLong, complete("ab")]
        );
        // Split at every point, the same.
        let input = b"abc\r\nabcd\r\nab\n";
        for cut in 0..=input.len() {
            let mut framer = LineFramer::new(3);
            let mut buf = BytesMut::new();
            let mut got = frames(&mut framer, &mut buf, &input[..cut]);
            got.extend(frames(&mut framer, &mut buf, &input[cut..]));
            assert_eq!(got, whole(3, input), "cut at {cut}");
        }
    }
}
