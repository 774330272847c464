//! Entry points for the fuzz targets (feature `fuzzing`): each protocol's decoder fed the
//! same bytes whole and in pieces, and its encoders' round trips. The codecs stay private
//! to their protocols; these functions are the one door to them from outside the crate,
//! used by `switchboard_sim::fuzz` (the targets under `fuzz/` and their corpus test).
//!
//! Each check returns `Err` with a description instead of panicking, so the corpus test
//! can name the file that failed; a panic inside a codec is itself a finding.

/// Where to cut an input: `cuts` are chunk lengths taken in turn (a zero-length chunk is
/// an empty read), the rest of the input the last chunk.
fn chunks<'a>(data: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    for &cut in cuts {
        let n = usize::from(cut).min(rest.len());
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
        if rest.is_empty() {
            break;
        }
    }
    out.push(rest);
    out
}

/// Compares what a decoder found in the input whole against what it found in pieces.
fn same(what: &str, whole: Vec<String>, split: Vec<String>) -> Result<(), String> {
    if whole == split {
        return Ok(());
    }
    let at = whole
        .iter()
        .zip(&split)
        .position(|(a, b)| a != b)
        .unwrap_or(whole.len().min(split.len()));
    Err(format!(
        "{what}: frame {at} differs when the input is split: whole {:?}, split {:?} ({} frames whole, {} split)",
        whole.get(at),
        split.get(at),
        whole.len(),
        split.len()
    ))
}

/// ws2017: lines (at most `max_line` bytes) parsed as commands.
pub fn ws2017_decoder(data: &[u8], cuts: &[u16], max_line: usize) -> Result<(), String> {
    let whole = crate::protocol::ws2017::fuzz::decode(&[data], max_line)?;
    let split = crate::protocol::ws2017::fuzz::decode(&chunks(data, cuts), max_line)?;
    same("ws2017", whole, split)
}

/// opcode: CR- or LF-ended lines parsed as requests, `max_line` the framer's limit.
pub fn opcode_decoder(data: &[u8], cuts: &[u16], max_line: usize) -> Result<(), String> {
    let whole = opcode_decode(&[data], max_line)?;
    let split = opcode_decode(&chunks(data, cuts), max_line)?;
    same("opcode", whole, split)
}

/// admin: lines parsed as admin commands.
pub fn admin_decoder(data: &[u8], cuts: &[u16]) -> Result<(), String> {
    let whole = admin_decode(&[data])?;
    let split = admin_decode(&chunks(data, cuts))?;
    same("admin", whole, split)
}

/// arsc: `<arscrequest>` documents of at most `max_request` bytes.
pub fn arsc_decoder(data: &[u8], cuts: &[u16], max_request: usize) -> Result<(), String> {
    let whole = crate::protocol::arsc::fuzz::decode(&[data], max_request)?;
    let split = crate::protocol::arsc::fuzz::decode(&chunks(data, cuts), max_request)?;
    same("arsc", whole, split)
}

/// ims: back-to-back XML documents of at most `max_document` bytes, each parsed.
pub fn ims_decoder(data: &[u8], cuts: &[u16], max_document: usize) -> Result<(), String> {
    let whole = ims_decode(&[data], max_document)?;
    let split = ims_decode(&chunks(data, cuts), max_document)?;
    same("ims", whole, split)
}

/// admin round trip: the command built from `fields` (the variant chosen by `which`),
/// written as a line by `AdminCommand::to_line`, parses back to itself.
pub fn admin_round_trip(which: u8, fields: &[String]) -> Result<(), String> {
    use crate::protocol::admin::AdminCommand;
    let field = |i: usize| fields.get(i).cloned().unwrap_or_default();
    // A name is never empty (an empty field is written as no word at all, and the CLI
    // refuses an empty name before it writes a line); the rest may be.
    let name = |i: usize| {
        let name = field(i);
        if name.is_empty() {
            "x".to_owned()
        } else {
            name
        }
    };
    let ip = |i: usize| -> core::net::IpAddr {
        let seed = field(i)
            .bytes()
            .fold(0u32, |h, b| h.rotate_left(5) ^ u32::from(b));
        if seed % 2 == 0 {
            core::net::IpAddr::from(seed.to_be_bytes())
        } else {
            core::net::IpAddr::from(core::net::Ipv6Addr::from(u128::from(seed) * 0x1_0000_0001))
        }
    };
    let command = match which % 10 {
        0 => AdminCommand::UserAdd {
            name: name(0),
            password: field(1),
            level: fields.len() as u8,
            email: fields.get(2).cloned(),
            gender: fields.get(3).cloned(),
        },
        1 => AdminCommand::UserDel { name: name(0) },
        2 => AdminCommand::UserList,
        3 => AdminCommand::UserPasswd {
            name: name(0),
            password: field(1),
        },
        4 => AdminCommand::BanIp(ip(0)),
        5 => AdminCommand::UnbanIp(ip(0)),
        6 => AdminCommand::BanUser { name: name(0) },
        7 => AdminCommand::UnbanUser { name: name(0) },
        8 => AdminCommand::BanList,
        _ => AdminCommand::Kick { name: name(0) },
    };
    let line = command.to_line();
    if line.contains(['\r', '\n']) {
        return Err(format!(
            "admin: {command:?} written as more than one line: {line:?}"
        ));
    }
    match AdminCommand::parse(&line) {
        Ok(back) if back == command => Ok(()),
        other => Err(format!(
            "admin: {command:?} written as {line:?} parses as {other:?}"
        )),
    }
}

/// opcode round trip: a `Str` field percent-encoded as the server writes it decodes back
/// to its bytes, and the encoding holds no byte that would end or split a line.
pub fn opcode_round_trip(bytes: &[u8]) -> Result<(), String> {
    use crate::protocol::opcode::codec;
    let mut out = bytes::BytesMut::new();
    codec::put_encoded(&mut out, bytes);
    if let Some(bad) = out.iter().find(|&&b| b == b' ' || b == b'\r' || b == b'\n') {
        return Err(format!(
            "opcode: {bytes:?} encoded as {out:?} holds byte {bad}"
        ));
    }
    if std::str::from_utf8(&out).is_err() {
        return Err(format!(
            "opcode: {bytes:?} encoded as {out:?}, which is not UTF-8"
        ));
    }
    let back = codec::decode(&out);
    if back != bytes {
        return Err(format!(
            "opcode: {bytes:?} encoded as {out:?} decodes as {back:?}"
        ));
    }
    Ok(())
}

/// The frames of `pieces` as the opcode session reads them, each as text.
fn opcode_decode(pieces: &[&[u8]], max_line: usize) -> Result<Vec<String>, String> {
    use crate::frame::lines::LineFramer;
    use crate::protocol::opcode::codec;
    let mut framer = LineFramer::cr_or_lf(max_line);
    lines(&mut framer, pieces, max_line, |line| {
        format!("{:?}", codec::parse(line))
    })
}

/// The frames of `pieces` as the admin session reads them, each as text.
fn admin_decode(pieces: &[&[u8]]) -> Result<Vec<String>, String> {
    use crate::frame::lines::LineFramer;
    use crate::protocol::admin::AdminCommand;
    // The admin session's line limit (`MAX_LINE` there).
    let max = 16 * 1024;
    let mut framer = LineFramer::new(max);
    lines(&mut framer, pieces, max, |line| {
        match std::str::from_utf8(line) {
            Ok(line) if line.trim().is_empty() => "empty".to_owned(),
            Ok(line) => format!("{:?}", AdminCommand::parse(line.trim_end())),
            Err(_) => "not UTF-8".to_owned(),
        }
    })
}

/// Lines of `pieces` through `framer`, each named by `show`; checks the framer keeps at
/// most `max` bytes (and the CR of a CRLF) of an unfinished line.
pub(crate) fn lines(
    framer: &mut crate::frame::lines::LineFramer,
    pieces: &[&[u8]],
    max: usize,
    mut show: impl FnMut(&[u8]) -> String,
) -> Result<Vec<String>, String> {
    use crate::frame::lines::Line;
    use bytes::Buf;
    let mut buf = bytes::BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        while let Some(line) = framer.next_line(&mut buf) {
            match line {
                Line::TooLong => out.push("too long".to_owned()),
                Line::Complete { len, consumed } => {
                    if len > max {
                        return Err(format!("a line of {len} bytes passed the limit {max}"));
                    }
                    out.push(show(&buf[..len]));
                    buf.advance(consumed);
                }
            }
        }
        if buf.len() > max + 1 {
            return Err(format!("{} bytes held unframed, limit {max}", buf.len()));
        }
    }
    Ok(out)
}

/// The frames of `pieces` as the ims session reads them: framed, then parsed.
fn ims_decode(pieces: &[&[u8]], max_document: usize) -> Result<Vec<String>, String> {
    use crate::protocol::ims::codec;
    use crate::protocol::ims::framer::{Frame, Framer};
    let mut framer = Framer::new(max_document);
    let mut buf = bytes::BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        while let Some(frame) = framer.next(&mut buf) {
            out.push(match frame {
                Frame::Document(doc) => {
                    if doc.len() > max_document {
                        return Err(format!(
                            "a document of {} bytes passed the limit {max_document}",
                            doc.len()
                        ));
                    }
                    format!(
                        "{:?} {:?}",
                        String::from_utf8_lossy(&doc),
                        codec::parse(&doc)
                    )
                }
                other => format!("{other:?}"),
            });
        }
        // The framer keeps at most one document (plus what arrived in the same read).
        if buf.len() > max_document + piece.len() + 1 {
            return Err(format!(
                "{} bytes held unframed, limit {max_document}",
                buf.len()
            ));
        }
    }
    Ok(out)
}

/// arsc round trip: text escaped as the server writes it into a request's field is read
/// back by the decoder as the same text.
pub fn arsc_round_trip(text: &str) -> Result<(), String> {
    crate::protocol::arsc::fuzz::round_trip(text)
}

/// jabberd: the router link's stream (header, depth-1 elements, its end) read by
/// `StreamReader`, elements of at most `max_stanza` bytes.
pub fn jabberd_decoder(data: &[u8], cuts: &[u16], max_stanza: usize) -> Result<(), String> {
    let whole = crate::protocol::jabberd::fuzz::decode(&[data], max_stanza)?;
    let split = crate::protocol::jabberd::fuzz::decode(&chunks(data, cuts), max_stanza)?;
    same("jabberd", whole, split)
}

/// The name the server would hold for `raw`: itself if it is a valid user name, else a
/// fixed one (the server never writes an invalid name).
fn held_name(raw: &str) -> String {
    crate::names::UserName::parse(raw)
        .map(|n| n.as_str().to_owned())
        .unwrap_or_else(|_| "x".to_owned())
}

/// ws2017 round trip: a chat line and a receipt the server writes for `from` and `to`
/// (made valid names) parse back, as a client's command, to the same fields.
pub fn ws2017_round_trip(whisper: bool, from: &str, to: &str, body: &str) -> Result<(), String> {
    let (from, to) = (held_name(from), held_name(to));
    crate::protocol::ws2017::fuzz::round_trip(whisper, &from, &to, body)
}

/// ims round trip: a MESSAGE the server pushes (names made valid, any body) frames as
/// one document and parses back to the same message.
pub fn ims_round_trip(from: &str, to: &str, body: &str, nul: bool) -> Result<(), String> {
    let (from, to) = (held_name(from), held_name(to));
    crate::protocol::ims::fuzz::round_trip(&from, &to, body, nul)
}
