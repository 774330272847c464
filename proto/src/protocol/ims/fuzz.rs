//! ims's encoder round trip for the fuzz targets (feature `fuzzing`, see `crate::fuzzing`).

use bytes::BytesMut;

use super::codec::{self, Reply, Request, Terminator};
use super::framer::{Frame, Framer};

/// A MESSAGE the server pushes to its recipient (`from`, `to` and `body` as the server
/// holds them) is framed as one document and parsed back, by the same framer and parser
/// that read clients, as the same message: the escaping loses nothing but NUL and the
/// control characters other than tab, LF and CR, which XML 1.0 cannot carry and which
/// the server writes as U+FFFD.
pub(crate) fn round_trip(from: &str, to: &str, body: &str, nul: bool) -> Result<(), String> {
    let term = if nul {
        Terminator::Nul
    } else {
        Terminator::Newline
    };
    let mut out = BytesMut::new();
    codec::encode(&Reply::Message { from, to, body }, term, &mut out);
    let mut framer = Framer::new(out.len() + 16);
    let mut buf = out.clone();
    let mut frames = Vec::new();
    while let Some(frame) = framer.next(&mut buf) {
        frames.push(frame);
    }
    let shown = || String::from_utf8_lossy(&out).into_owned();
    let doc = match &frames[..] {
        [Frame::Document(doc)] => doc,
        _ => {
            return Err(format!(
                "ims: {shown:?} frames as {frames:?}",
                shown = shown()
            ))
        }
    };
    let expected = Request::Message {
        from: from.into(),
        to: to.into(),
        body: body
            .replace(
                |c: char| c < ' ' && !matches!(c, '\t' | '\n' | '\r'),
                "\u{FFFD}",
            )
            .into(),
    };
    match codec::parse(doc) {
        Ok(back) if back == expected => Ok(()),
        other => Err(format!(
            "ims: {expected:?} written as {:?} parses as {other:?}",
            shown()
        )),
    }
}
