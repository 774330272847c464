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
        let mut input: &[u8] = buffer;
        frame(&mut input);
        let consumed = buffer.len() - input.len();
        Buf::advance(buffer, consumed);
    }
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
