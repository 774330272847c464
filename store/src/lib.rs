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

#![warn(missing_docs)]

pub mod credentials;
mod error;
mod rekey;
mod relations;
pub mod schema;
mod store;

pub use error::{ErrorKind, StoreError};
pub use store::{Store, APPLICATION_ID, DB_FILE_NAME, MARKER_FILE_NAME};
