//! Drives the core over smol.
