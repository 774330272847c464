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
