//! Switchboard's durable store: the only crate that touches the database file.
//!
//! [`Store`] keeps `<data-dir>/switchboard.db`, an SQLite database in WAL mode with
//! `synchronous=FULL`. [`Store::load`] reads everything durable as a
//! [`State`](switchboard_proto::State); [`Store::commit`] applies a batch of
//! [`Change`](switchboard_proto::Change)s in one transaction with exactly the semantics of
//! [`State::apply`](switchboard_proto::State::apply), so memory and disk never disagree.
//! The schema is versioned (`PRAGMA user_version`) and grows by migrations; see [`schema`].
//!
//! [`credentials`] hashes and verifies passwords (argon2id) for the core's password effects.
//!
//! What every runtime needs besides the database lives here too, std-only, so no runtime
//! imports another's crate: the data directory and its lock ([`data_dir`]), the start
//! sequence of seed, lock, load and listeners and the runtimes' one error type
//! ([`start`]), the logging and reporting of commit attempts ([`commit_log`]), the clock
//! mapping ([`clock`]), file descriptors: limit, reserve and listen backlog ([`fds`]), the
//! admin socket's file ([`admin_socket`], on Unix), the log line of rate-limit refusals
//! ([`refusals`]), the reader of opcode media for the core's media effect
//! ([`media_reader`]), the threads that run the core's effects ([`effects`]), and the
//! runtimes' shared [`options`].

#![warn(missing_docs)]

#[cfg(unix)]
pub mod admin_socket;
pub mod backup;
pub mod clock;
pub mod commit_log;
pub mod credentials;
pub mod data_dir;
pub mod effects;
mod error;
pub mod fds;
mod mailboxes;
pub mod media_reader;
pub mod memory;
pub mod metrics;
pub mod observe;
pub mod options;
pub mod refusals;
mod rekey;
mod relations;
pub mod schema;
pub mod start;
mod store;

pub use error::{ErrorKind, StoreError};
pub use store::{Store, APPLICATION_ID, DB_FILE_NAME, MARKER_FILE_NAME};
