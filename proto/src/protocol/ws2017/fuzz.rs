//! ws2017's decoder for the fuzz targets (feature `fuzzing`, see `crate::fuzzing`).

use crate::frame::lines::LineFramer;

/// The lines of `pieces`, framed as the session frames them and parsed, each as text.
pub(crate) fn decode(pieces: &[&[u8]], max_line: usize) -> Result<Vec<String>, String> {
    let mut framer = LineFramer::new(max_line);
    crate::fuzzing::lines(&mut framer, pieces, max_line, |line| {
        format!("{:?}", super::codec::parse(line))
    })
}

/// A `chatm`/`chatw` line the server writes (a message for this client, `from` and `to`
/// as the server holds them) and a `chatr` receipt read back, by the parser that reads
/// clients, as the same command: the original client relays these lines in the same
/// syntax. The encoder replaces control characters by spaces, the one change expected.
pub(crate) fn round_trip(whisper: bool, from: &str, to: &str, body: &str) -> Result<(), String> {
    use super::codec::{encode, Command, Reply};
    let line = |reply: &Reply<'_>| {
        let mut out = bytes::BytesMut::new();
        encode(reply, &mut out);
        out
    };
    let body_sent: String = (body.chars())
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let chat = line(&Reply::Chat {
        whisper,
        from,
        to,
        body,
    });
    let expected = Command::Chat {
        whisper,
        sender: from,
        recipient: to,
        message: &body_sent,
    };
    check(&chat, &expected)?;
    let receipt = line(&Reply::Receipt { from, to });
    let expected = Command::Chatr {
        sender: from,
        recipient: to,
    };
    check(&receipt, &expected)
}

/// `out` is one CRLF-ended line that the client parser reads as `expected`.
fn check(out: &[u8], expected: &super::codec::Command<'_>) -> Result<(), String> {
    use super::codec::parse;
    let shown = String::from_utf8_lossy(out);
    let Some(line) = out.strip_suffix(b"\r\n") else {
        return Err(format!("ws2017: {shown:?} does not end with CRLF"));
    };
    if line.contains(&b'\r') || line.contains(&b'\n') {
        return Err(format!("ws2017: {shown:?} is more than one line"));
    }
    match parse(line) {
        Ok(back) if back == *expected => Ok(()),
        other => Err(format!(
            "ws2017: {expected:?} written as {shown:?} parses as {other:?}"
        )),
    }
}
