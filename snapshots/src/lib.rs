//! Transcript harness.
