//! ws2017 lines to [`Command`]s, and [`Reply`]s to lines.

use bytes::{BufMut, BytesMut};

/// A client command, its arguments unvalidated beyond their shape.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Command<'a> {
    /// `uname <name>`: pick or change the name.
    Uname { name: &'a str },
    /// `cgetu`: list online users.
    Cgetu,
    /// `cgetg`: list games (there are none).
    Cgetg,
    /// `chatm <sender> <recipient> '<message>'` or `chatw ...` (whisper).
    Chat {
        whisper: bool,
        sender: &'a str,
        recipient: &'a str,
        message: &'a str,
    },
    /// `chatr <sender> <recipient>`: the recipient confirms a message.
    Chatr { sender: &'a str, recipient: &'a str },
    /// `cping`: the client checks the server is there.
    Cping,
    /// `cpong` or `+OK cpong`: the answer to the server's `cping`.
    Cpong,
    /// `cquit`: leave.
    Cquit,
}

/// Why a line is not a command.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ParseError {
    /// A blank line; ignored.
    Empty,
    /// A known keyword with the wrong arguments, or a line that is not ASCII/UTF-8 text.
    Malformed { keyword: String },
    /// A keyword no command has.
    Unknown,
}

/// The keywords of the commands, as [`parse`] folds them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Uname,
    Cgetu,
    Cgetg,
    Cping,
    Cpong,
    Cquit,
    Chatr,
    Chatm,
    Chatw,
    Ok,
}

impl Keyword {
    /// The keyword of `folded` (lower case), if a command has it.
    fn of(folded: &[u8]) -> Option<Keyword> {
        Some(match folded {
            b"uname" => Keyword::Uname,
            b"cgetu" => Keyword::Cgetu,
            b"cgetg" => Keyword::Cgetg,
            b"cping" => Keyword::Cping,
            b"cpong" => Keyword::Cpong,
            b"cquit" => Keyword::Cquit,
            b"chatr" => Keyword::Chatr,
            b"chatm" => Keyword::Chatm,
            b"chatw" => Keyword::Chatw,
            b"+ok" => Keyword::Ok,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Keyword::Uname => "uname",
            Keyword::Cgetu => "cgetu",
            Keyword::Cgetg => "cgetg",
            Keyword::Cping => "cping",
            Keyword::Cpong => "cpong",
            Keyword::Cquit => "cquit",
            Keyword::Chatr => "chatr",
            Keyword::Chatm => "chatm",
            Keyword::Chatw => "chatw",
            Keyword::Ok => "+ok",
        }
    }
}

/// Parses one line (without its line ending). The keyword decides first: a keyword that
/// is no command is [`ParseError::Unknown`] whatever follows it (bytes that are not UTF-8
/// included); only a known one can be [`ParseError::Malformed`].
pub(super) fn parse(line: &[u8]) -> Result<Command<'_>, ParseError> {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = line.iter().position(|b| !blank(b)).unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    let line = &line[start..end];
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    let (keyword, rest) = match line.iter().position(blank) {
        Some(i) => {
            let rest = &line[i..];
            let skip = rest.iter().position(|b| !blank(b)).unwrap_or(rest.len());
            (&line[..i], &rest[skip..])
        }
        None => (line, &[][..]),
    };
    // Keywords are at most five letters: fold them on the stack, not in a new String.
    let mut folded = [0u8; 5];
    let Some(k) = folded.get_mut(..keyword.len()) else {
        return Err(ParseError::Unknown);
    };
    k.copy_from_slice(keyword);
    k.make_ascii_lowercase();
    let Some(keyword) = Keyword::of(k) else {
        return Err(ParseError::Unknown);
    };
    let Ok(rest) = std::str::from_utf8(rest) else {
        if keyword == Keyword::Ok {
            return Err(ParseError::Unknown);
        }
        return Err(ParseError::Malformed {
            keyword: keyword.as_str().to_owned(),
        });
    };
    let malformed = || ParseError::Malformed {
        keyword: keyword.as_str().to_owned(),
    };
    let args = |n: usize| -> Result<Vec<&str>, ParseError> {
        let args = split_args(rest).ok_or_else(malformed)?;
        if args.len() == n {
            Ok(args)
        } else {
            Err(malformed())
        }
    };
    let command = match keyword {
        Keyword::Uname => {
            let mut a = args(1)?;
            Command::Uname { name: a.remove(0) }
        }
        Keyword::Cgetu => args(0).map(|_| Command::Cgetu)?,
        Keyword::Cgetg => args(0).map(|_| Command::Cgetg)?,
        Keyword::Cping => args(0).map(|_| Command::Cping)?,
        Keyword::Cpong => args(0).map(|_| Command::Cpong)?,
        Keyword::Cquit => args(0).map(|_| Command::Cquit)?,
        Keyword::Ok if rest.eq_ignore_ascii_case("cpong") => Command::Cpong,
        Keyword::Chatr => {
            let mut a = args(2)?;
            let recipient = a.pop().unwrap_or_default();
            let sender = a.pop().unwrap_or_default();
            Command::Chatr { sender, recipient }
        }
        Keyword::Chatm | Keyword::Chatw => {
            let (sender, rest) = next_arg(rest).ok_or_else(malformed)?;
            let (recipient, rest) = next_arg(rest).ok_or_else(malformed)?;
            let message = unquote(rest).ok_or_else(malformed)?;
            Command::Chat {
                whisper: keyword == Keyword::Chatw,
                sender,
                recipient,
                message,
            }
        }
        _ => return Err(ParseError::Unknown),
    };
    Ok(command)
}

/// Splits arguments on spaces; an argument starting with `'` runs to the next `'` that is
/// followed by a space or the end. `None` if a quote is never closed.
fn split_args(mut rest: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (arg, tail) = next_arg(rest)?;
        out.push(arg);
        rest = tail;
    }
    Some(out)
}

/// The first argument of `s` and what follows it (leading spaces removed). Scanned byte by
/// byte: the separators and the quote are ASCII, which UTF-8 never uses inside another
/// character, so every position found is a character boundary (the `char` patterns
/// decoded every character, 6 % of the core's instructions per direct message).
fn next_arg(s: &str) -> Option<(&str, &str)> {
    // By index over the bytes: blanks and quotes are ASCII, so every cut is at a
    // character boundary (`get` checks it all the same).
    let b = s.as_bytes();
    let blanks_from = |mut i: usize| {
        while b.get(i).copied().is_some_and(is_blank) {
            i += 1;
        }
        i
    };
    let start = blanks_from(0);
    let first = *b.get(start)?;
    let (arg, after) = if first == b'\'' {
        // The closing quote is one followed by a blank or the end.
        let mut end = start + 1;
        loop {
            match b.get(end) {
                None => return None,
                Some(b'\'') if b.get(end + 1).is_none_or(|&n| is_blank(n)) => break,
                Some(_) => end += 1,
            }
        }
        (s.get(start + 1..end)?, end + 1)
    } else {
        let mut end = start + 1;
        while b.get(end).is_some_and(|&c| !is_blank(c)) {
            end += 1;
        }
        (s.get(start..end)?, end)
    };
    Some((arg, s.get(blanks_from(after)..)?))
}

/// A space or a tab: what separates arguments.
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A message body: the rest of the line, without one pair of enclosing quotes. `None`
/// if it is empty, or opens a quote it never closes (`'text` or a lone `'`).
fn unquote(s: &str) -> Option<&str> {
    if s.is_empty() {
        return None;
    }
    match s.strip_prefix('\'') {
        Some(inner) => inner.strip_suffix('\''),
        None => Some(s),
    }
}

/// A line the server sends.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reply<'a> {
    /// `+OK <text>` on connect.
    Greeting { server: &'a str },
    /// `+OK uname you are <name>`: the name is set, first or by a rename alike. The
    /// original client accepts a name only on this prefix, without quotes.
    NameSet { name: &'a str },
    /// `-ERR uname suggested <suggestion>`: the name is taken (the original's bytes; its
    /// client offers the word after `suggested `).
    NameTaken { suggestion: &'a str },
    /// `nuser <name>`: someone joined.
    UserJoined { name: &'a str },
    /// `+OK nuser <old> <new>`: someone renamed.
    UserRenamed { old: &'a str, new: &'a str },
    /// `cquit <name>`: someone left.
    UserLeft { name: &'a str },
    /// `+OK cgetu <names...>`.
    Users { names: &'a [&'a str] },
    /// `+OK cgetg`: no games.
    Games,
    /// `+OK chatm 'message relayed'`. A `chatw` gets no `+OK` line: its echo is the answer.
    Relayed,
    /// `+OK chatm 'message stored'`: kept for an offline account.
    Stored,
    /// `chatm <from> <to> '<body>'` (or `chatw`): a message for this client.
    Chat {
        whisper: bool,
        from: &'a str,
        to: &'a str,
        body: &'a str,
    },
    /// `chatr <from> <to>`: the message from this client reached `to`.
    Receipt { from: &'a str, to: &'a str },
    /// `cping`.
    Ping,
    /// `+OK cpong`.
    Pong,
    /// `+OK cquit 'terminating tasks and disconnecting'`.
    Bye,
    /// `-ERR [<command>] '<text>'`.
    Error {
        command: Option<&'a str>,
        text: &'a str,
    },
}

/// Appends `reply` as one CRLF-terminated line. Text from other protocols that holds
/// line breaks or control characters has them replaced by spaces, so a reply is always
/// exactly one line.
pub(super) fn encode(reply: &Reply<'_>, out: &mut BytesMut) {
    write(reply, out);
}

/// The most bytes [`encode`] appends for `reply` (control characters it replaces can
/// only shorten it): what a connection must have room for, without encoding.
pub(super) fn encoded_len(reply: &Reply<'_>) -> usize {
    let mut len = Len(0);
    write(reply, &mut len);
    len.0
}

/// Where [`write()`] puts a reply's parts.
trait Sink {
    /// Appends `parts`, control characters replaced by spaces.
    fn put(&mut self, parts: &[&str]);
    /// Appends the line's end.
    fn end(&mut self);
    /// Appends `parts` as a whole line, its end included.
    fn line(&mut self, parts: &[&str]) {
        self.put(parts);
        self.end();
    }
}

/// Appends `parts` to `out`, control characters replaced by spaces, then the line's end
/// if `end`, in one extension.
fn append(out: &mut BytesMut, parts: &[&str], end: bool) {
    let start = out.len();
    let crlf = if end { 2 } else { 0 };
    crate::protocol::scan::put_joined(out, parts, &b"\r\n"[..crlf]);
    let len = out.len() - start - crlf;
    // Control characters are C0, DEL and C1 (U+0080..U+009F, which UTF-8 writes as 0xC2
    // and a second byte): one scan of the parts appended finds every candidate, and only
    // a real one makes them written again, character by character.
    let clean = !may_hold_control(&out[start..start + len])
        || !parts.iter().any(|p| p.chars().any(char::is_control));
    if clean {
        return;
    }
    out.truncate(start);
    for part in parts {
        for c in part.chars() {
            let c = if c.is_control() { ' ' } else { c };
            out.put_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
    }
    out.put_slice(&b"\r\n"[..crlf]);
}

impl Sink for BytesMut {
    fn put(&mut self, parts: &[&str]) {
        append(self, parts, false);
    }

    fn end(&mut self) {
        self.put_slice(b"\r\n");
    }

    fn line(&mut self, parts: &[&str]) {
        append(self, parts, true);
    }
}

/// Whether `bytes` hold a byte that may begin a control character: C0 (below 0x20), DEL,
/// or 0xC2 (the lead byte of C1 in UTF-8). Every reply's text passes through here.
fn may_hold_control(bytes: &[u8]) -> bool {
    crate::protocol::scan::any_byte(bytes, |b| (b < 0x20) | (b == 0x7f) | (b == 0xc2))
}

/// Counts the bytes a reply takes, at most.
struct Len(usize);

impl Sink for Len {
    fn put(&mut self, parts: &[&str]) {
        self.0 += parts.iter().map(|p| p.len()).sum::<usize>();
    }

    fn end(&mut self) {
        self.0 += 2;
    }
}

/// Writes `reply` as one CRLF-terminated line to `out`.
fn write(reply: &Reply<'_>, out: &mut impl Sink) {
    match *reply {
        Reply::Greeting { server } => push(out, &["+OK ", server, " ws2017 ready"]),
        Reply::NameSet { name } => push(out, &["+OK uname you are ", name]),
        Reply::NameTaken { suggestion } => push(out, &["-ERR uname suggested ", suggestion]),
        Reply::UserJoined { name } => push(out, &["nuser ", name]),
        Reply::UserRenamed { old, new } => push(out, &["+OK nuser ", old, " ", new]),
        Reply::UserLeft { name } => push(out, &["cquit ", name]),
        Reply::Users { names } => {
            out.put(&["+OK cgetu"]);
            for name in names {
                out.put(&[" ", name]);
            }
            out.end();
        }
        Reply::Games => push(out, &["+OK cgetg"]),
        Reply::Stored => push(out, &["+OK chatm 'message stored'"]),
        Reply::Relayed => push(out, &["+OK chatm 'message relayed'"]),
        Reply::Chat {
            whisper,
            from,
            to,
            body,
        } => push(
            out,
            &[chat_keyword(whisper), from, " ", to, " '", body, "'"],
        ),
        Reply::Receipt { from, to } => push(out, &["chatr ", from, " ", to]),
        Reply::Ping => push(out, &["cping"]),
        Reply::Pong => push(out, &["+OK cpong"]),
        Reply::Bye => push(out, &["+OK cquit 'terminating tasks and disconnecting'"]),
        Reply::Error {
            command: Some(command),
            text,
        } => push(out, &["-ERR ", command, " '", text, "'"]),
        Reply::Error {
            command: None,
            text,
        } => push(out, &["-ERR '", text, "'"]),
    }
}

/// The line of a reply that never varies, to send without encoding or allocating.
pub(super) fn constant(reply: &Reply<'_>) -> Option<&'static [u8]> {
    Some(match reply {
        Reply::Ping => b"cping\r\n",
        Reply::Pong => b"+OK cpong\r\n",
        Reply::Games => b"+OK cgetg\r\n",
        Reply::Bye => b"+OK cquit 'terminating tasks and disconnecting'\r\n",
        Reply::Relayed => b"+OK chatm 'message relayed'\r\n",
        _ => return None,
    })
}

/// The keyword of a relayed message, and the space after it.
fn chat_keyword(whisper: bool) -> &'static str {
    if whisper {
        "chatw "
    } else {
        "chatm "
    }
}

/// Appends `parts` and a CRLF.
fn push(out: &mut impl Sink, parts: &[&str]) {
    out.line(parts);
}

#[cfg(test)]
mod scan {
    fn naive(bytes: &[u8]) -> bool {
        bytes.iter().any(|&b| b < 0x20 || b == 0x7f || b == 0xc2)
    }

    #[test]
    fn the_step_scan_finds_every_byte_the_byte_scan_finds() {
        use super::may_hold_control;
        // Every byte value at every position of lines around the word size, among
        // neighbours just above and below the thresholds.
        for len in 1..=35 {
            for at in 0..len {
                for fill in [b'a', 0x20, 0x7e, 0x80, 0xc1, 0xc3, 0xff] {
                    for b in 0..=255u8 {
                        let mut line = vec![fill; len];
                        line[at] = b;
                        assert_eq!(may_hold_control(&line), naive(&line), "{line:?}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod args {
    /// The argument split as it was written with `char` patterns: the reference.
    fn by_chars(s: &str) -> Option<(&str, &str)> {
        let s = s.trim_start_matches([' ', '\t']);
        if s.is_empty() {
            return None;
        }
        let (arg, tail) = if let Some(quoted) = s.strip_prefix('\'') {
            let end = quoted
                .match_indices('\'')
                .map(|(i, _)| i)
                .find(|&i| matches!(quoted.as_bytes().get(i + 1), None | Some(b' ' | b'\t')))?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            s.split_once([' ', '\t']).unwrap_or((s, ""))
        };
        Some((arg, tail.trim_start_matches([' ', '\t'])))
    }

    #[test]
    fn the_byte_scan_splits_every_line_as_the_char_scan_does() {
        // Every string of up to 6 pieces from an alphabet of separators, quotes, ASCII
        // and multi-byte characters (a quote or a blank right after one of them too).
        const PIECES: [&str; 8] = [" ", "\t", "'", "a", "é", "\u{2003}", "日本", "'x y'"];
        let checked = crate::tests::fixtures::every_text(&PIECES, 6, |line| {
            let mut rest = line;
            loop {
                let got = super::next_arg(rest);
                assert_eq!(got, by_chars(rest), "{rest:?}");
                match got {
                    Some((_, tail)) if tail.len() < rest.len() => rest = tail,
                    _ => break,
                }
            }
        });
        assert_eq!(checked, 299_593); // 8^0 + 8^1 + ... + 8^6
    }
}
