//! ws2017's decoder for the fuzz targets (feature `fuzzing`, see `crate::fuzzing`).

use crate::frame::lines::LineFramer;

/// The lines of `pieces`, framed as the session frames them and parsed, each as text.
pub(crate) fn decode(pieces: &[&[u8]], max_line: usize) -> Result<Vec<String>, String> {
    let mut framer = LineFramer::new(max_line);
    crate::fuzzing::lines(&mut framer, pieces, max_line, |line| {
        format!("{:?}", super::codec::parse(line))
    })
}
