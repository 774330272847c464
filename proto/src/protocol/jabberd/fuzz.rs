//! jabberd's router-link decoder for the fuzz targets (feature `fuzzing`, see
//! `crate::fuzzing`).

use super::xml::{Read, StreamReader, MAX_HEADER_BYTES};

/// What [`StreamReader`] reads from `pieces`, pushed one piece at a time and drained after
/// each, as text; a stream error ends the stream (the link is dropped). Checks the reader
/// never holds more than an element (or a header) and one read.
pub(crate) fn decode(pieces: &[&[u8]], max_stanza: usize) -> Result<Vec<String>, String> {
    let mut reader = StreamReader::new(max_stanza);
    let mut out = Vec::new();
    for piece in pieces {
        reader.extend(piece);
        loop {
            match reader.next() {
                Ok(Some(read)) => out.push(show(&read)),
                Ok(None) => break,
                Err(e) => {
                    out.push(format!("error {e:?}"));
                    return Ok(out);
                }
            }
        }
        let most = max_stanza.max(MAX_HEADER_BYTES) + piece.len() + 1;
        if reader.buffered() > most {
            return Err(format!(
                "{} bytes held after reading, at most {most}",
                reader.buffered()
            ));
        }
    }
    Ok(out)
}

fn show(read: &Read) -> String {
    format!("{read:?}")
}
