//! Switchboard's benchmarks: a one-thread load generator over real TCP with the modes
//! `direct`, `idle`, `logins`, `storm`, `offline` and `room`; a null relay per protocol
//! with no logic beyond finding the line and the recipient, so each figure comes with its
//! ratio to this machine's limit; and `compare`, which runs both interleaved. Each
//! protocol's bytes are in its adapter ([`proto`]). See `docs/performance.md`.

pub mod compare;
pub mod core;
pub mod core_arsc;
pub mod core_ims;
pub mod core_opcode;
pub mod load;
pub mod net;
pub mod pace;
pub mod proto;
pub mod relay;
mod relay_more;
pub mod stats;
