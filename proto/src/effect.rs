//! Work the server hands out because it is too slow for the event loop (password hashing)
//! or needs the outside world; the result comes back as `Input::EffectDone`.

use bytes::Bytes;

use crate::persist::MediaId;
use crate::secret::PasswordHash;
pub use crate::secret::Secret;

/// An effect to run off the event loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Hash a new password: answer [`EffectResult::Hashed`] with an argon2id hash of the
    /// password and one of its lowercase MD5 hex.
    HashPassword {
        /// The password.
        password: Secret,
    },
    /// Check a password against a stored hash: answer [`EffectResult::Verified`].
    VerifyPassword {
        /// The stored hash.
        hash: PasswordHash,
        /// The password the client gave.
        password: Secret,
    },
    /// Read a media item's bytes from the store (they are never in the core's memory
    /// but for this one read): answer [`EffectResult::Media`].
    ReadMedia {
        /// The media item.
        id: MediaId,
    },
}

/// The outcome of an [`Effect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EffectResult {
    /// For [`Effect::HashPassword`].
    Hashed {
        /// Hash of the password.
        password: PasswordHash,
        /// Hash of the password's MD5 hex.
        ims_password: PasswordHash,
    },
    /// For [`Effect::VerifyPassword`]: whether the password matched.
    Verified(bool),
    /// For [`Effect::ReadMedia`]: the bytes, or `None` if the store holds no such item.
    Media(Option<Bytes>),
    /// The effect could not run (a malformed stored hash, say).
    Failed,
}
