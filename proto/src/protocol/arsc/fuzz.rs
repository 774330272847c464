//! arsc's decoder for the fuzz targets (feature `fuzzing`, see `crate::fuzzing`).

use bytes::BytesMut;

use super::codec::{escape, Decoder, Frame};

/// The frames of `pieces`, pushed one piece at a time and drained after each, as text.
/// Checks the decoder never holds more than a request and one read.
pub(crate) fn decode(pieces: &[&[u8]], max_request: usize) -> Result<Vec<String>, String> {
    let mut decoder = Decoder::new(max_request);
    let mut out = Vec::new();
    for piece in pieces {
        decoder.push(piece);
        while let Some(frame) = decoder.next_frame() {
            out.push(format!("{frame:?}"));
        }
        let most = max_request.max(16) + piece.len();
        if decoder.buffered() > most {
            return Err(format!(
                "{} bytes held after framing, at most {most}",
                decoder.buffered()
            ));
        }
    }
    Ok(out)
}

/// `text` escaped into a post's `<content>` is read back as `text` (for text the escape
/// keeps: no control characters but tab).
pub(crate) fn round_trip(text: &str) -> Result<(), String> {
    let text: String = text
        .chars()
        .filter(|c| *c == '\t' || !c.is_control())
        .collect();
    let mut doc = BytesMut::from(&b"<arscrequest><type>post</type><content>"[..]);
    escape(&text, &mut doc);
    doc.extend_from_slice(b"</content></arscrequest>");
    let mut decoder = Decoder::new(doc.len() + 16);
    decoder.push(&doc);
    match decoder.next_frame() {
        Some(Frame::Request(request)) if request.content.as_deref() == Some(text.as_str()) => {
            Ok(())
        }
        other => Err(format!(
            "arsc: {text:?} escaped as {:?} reads back as {other:?}",
            String::from_utf8_lossy(&doc)
        )),
    }
}
