//! Switchboard's benchmarks: a one-thread load generator over real TCP with the modes
//! `direct`, `idle`, `logins`, `storm` and `offline`; a null relay that speaks ws2017's
//! wire format with no logic, so each figure comes with its ratio to this machine's
//! limit; and `compare`, which runs both interleaved. See `docs/performance.md`.

pub mod compare;
pub mod load;
pub mod net;
pub mod relay;
pub mod stats;
