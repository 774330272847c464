//! Incremental framers: find complete frames in partial input, with a size bound.

pub(crate) mod lines;
