//! Line framing for the line protocols: LF ends a line, a CR before it is dropped.

use bytes::{Buf, Bytes, BytesMut};

/// One result of [`LineFramer::next_line`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A complete line without its line ending.
    Complete(Bytes),
    /// A line passed the limit; its bytes are being discarded up to the next LF, and the
    /// line after it is framed normally. Reported once per long line.
    TooLong,
}

/// Splits a byte stream into lines, however it is chunked. Keeps at most `max` bytes of
/// an unfinished line buffered; a longer line is reported and skipped.
#[derive(Debug)]
pub(crate) struct LineFramer {
    max: usize,
    /// Bytes at the start of the buffer already known to hold no LF.
    scanned: usize,
    /// Inside a too-long line: drop bytes until its LF.
    discarding: bool,
}

impl LineFramer {
    pub(crate) fn new(max: usize) -> Self {
        LineFramer {
            max,
            scanned: 0,
            discarding: false,
        }
    }

    /// Takes the next frame out of `buf`, or `None` if more input is needed.
    pub(crate) fn next_line(&mut self, buf: &mut BytesMut) -> Option<Line> {
        loop {
            match memchr::memchr(b'\n', &buf[self.scanned..]) {
                Some(i) => {
                    let end = self.scanned + i;
                    self.scanned = 0;
                    if self.discarding {
                        buf.advance(end + 1);
                        self.discarding = false;
                        continue;
                    }
                    let mut line = buf.split_to(end + 1);
                    line.truncate(end);
                    if line.last() == Some(&b'\r') {
                        line.truncate(end - 1);
                    }
                    if line.len() > self.max {
                        return Some(Line::TooLong);
                    }
                    return Some(Line::Complete(line.freeze()));
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

    fn frames(framer: &mut LineFramer, buf: &mut BytesMut, input: &[u8]) -> Vec<Line> {
        buf.extend_from_slice(input);
        let mut out = Vec::new();
        while let Some(line) = framer.next_line(buf) {
            out.push(line);
        }
        out
    }

    fn whole(max: usize, input: &[u8]) -> Vec<Line> {
        frames(&mut LineFramer::new(max), &mut BytesMut::new(), input)
    }

    fn complete(s: &str) -> Line {
        Line::Complete(Bytes::copy_from_slice(s.as_bytes()))
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
        let got: Vec<Line> = input
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
            vec![complete("ok"), Line::TooLong]
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
            vec![complete("abc"), Line::TooLong, complete("ab")]
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
