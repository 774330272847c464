//! Incremental framers: find complete frames in partial input, with a size bound.

pub(crate) mod lines;

use bytes::{Buf, Bytes, BytesMut};

/// Input a framer reads from and consumes: a connection's buffer of unfinished input, or
/// bytes just received, framed where they arrived so that only an unfinished frame at
/// their end is copied into the buffer (copying every read into the buffer first cost a
/// copy of each byte, and the buffer's growth an allocation per read).
pub(crate) trait FrameInput: core::ops::Deref<Target = [u8]> {
    /// Drops the first `n` bytes.
    fn advance(&mut self, n: usize);
    /// Drops everything.
    fn clear(&mut self);
}

impl FrameInput for BytesMut {
    fn advance(&mut self, n: usize) {
        Buf::advance(self, n);
    }
    fn clear(&mut self) {
        BytesMut::clear(self);
    }
}

impl FrameInput for Bytes {
    fn advance(&mut self, n: usize) {
        Buf::advance(self, n);
    }
    fn clear(&mut self) {
        Bytes::clear(self);
    }
}

impl FrameInput for &[u8] {
    fn advance(&mut self, n: usize) {
        *self = &self[n..];
    }
    fn clear(&mut self) {
        *self = &[];
    }
}

/// Frames the bytes that `arrived` after what `buffer` holds, with `frame`, which consumes
/// the complete frames from the front of the input it is lent: when nothing is buffered,
/// where they arrived, so that only what `frame` leaves is copied into `buffer`.
pub(crate) fn read_through(buffer: &mut BytesMut, arrived: &[u8], frame: impl FnOnce(&mut &[u8])) {
    if buffer.is_empty() {
        let mut input = arrived;
        frame(&mut input);
        buffer.extend_from_slice(input);
    } else {
        buffer.extend_from_slice(arrived);
        take_frames(buffer, |buffer| {
            let mut input: &[u8] = buffer;
            frame(&mut input);
            let consumed = buffer.len() - input.len();
            Buf::advance(buffer, consumed);
        });
    }
}

/// Lends `buffer` to `frame`, which takes whole frames off its front, then gives back the
/// memory of what was taken ([`shrink_to_leftover`]) if anything was.
pub(crate) fn take_frames(buffer: &mut BytesMut, frame: impl FnOnce(&mut BytesMut)) {
    let held = buffer.len();
    frame(buffer);
    if buffer.len() < held {
        shrink_to_leftover(buffer);
    }
}

/// Gives back the memory of a connection's input buffer beyond what it still holds, once
/// frames were taken off its front: a buffer keeps the allocation its largest frame needed
/// (a drained `BytesMut` takes it up again at the next bytes it is given), so a peer that
/// sent one frame of the largest size in pieces and then went quiet would hold that much
/// for as long as it stayed connected. What is left (the start of the next frame) is
/// copied once into a buffer of its own size; only after a frame was taken, so a large
/// frame arriving in many pieces is not copied again with each.
pub(crate) fn shrink_to_leftover(buffer: &mut BytesMut) {
    *buffer = match buffer.is_empty() {
        true => BytesMut::new(),
        false => BytesMut::from(&buffer[..]),
    };
}

/// Input a framer can split whole frames off as [`Bytes`] that share its memory.
pub(crate) trait SplitInput: FrameInput {
    /// Takes the first `len` bytes off as their own value.
    fn split_front(&mut self, len: usize) -> Bytes;
}

impl SplitInput for BytesMut {
    fn split_front(&mut self, len: usize) -> Bytes {
        self.split_to(len).freeze()
    }
}

impl SplitInput for Bytes {
    fn split_front(&mut self, len: usize) -> Bytes {
        self.split_to(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames whole lines off the front of `input`.
    fn lines(input: &mut &[u8], seen: &mut Vec<Vec<u8>>) {
        while let Some(end) = input.iter().position(|&b| b == b'\n') {
            seen.push(input[..end].to_vec());
            FrameInput::advance(input, end + 1);
        }
    }

    #[test]
    fn a_frame_that_arrives_in_pieces_leaves_no_larger_buffer_once_it_is_complete() {
        let mut buffer = BytesMut::new();
        let mut seen = Vec::new();
        let long = vec![b'x'; 6000];
        read_through(&mut buffer, &long[..4000], |input| lines(input, &mut seen));
        assert_eq!(buffer.len(), 4000);
        let mut rest = long[4000..].to_vec();
        rest.extend_from_slice(b"\nnext\n");
        read_through(&mut buffer, &rest, |input| lines(input, &mut seen));
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].len(), 6000);
        assert_eq!(seen[1], b"next");
        assert_eq!(buffer.capacity(), 0, "an empty buffer holds nothing");
        // A piece left over stays, in a buffer of its own size.
        read_through(&mut buffer, b"ab\ncd", |input| lines(input, &mut seen));
        assert_eq!(&buffer[..], b"cd");
    }
}
