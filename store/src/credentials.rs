//! Password hashing for the core's password effects ([`Effect::HashPassword`],
//! [`Effect::VerifyPassword`]).
//!
//! Every password is kept as two argon2id hashes in PHC string form: one of the password,
//! one of the lowercase hex MD5 of the password, which is what IMS clients send instead of
//! the password (so an IMS login is checked without storing MD5). A PHC string carries its
//! salt and its cost parameters, so verifying needs no configuration and a hash made at
//! one [`Cost`] still verifies after the cost changes.
//!
//! Hashing is slow on purpose; the runtime runs these functions off the event loop.

use argon2::{Algorithm, Argon2, PasswordHasher, PasswordVerifier, Version};
use md5::{Digest, Md5};
use switchboard_proto::{Effect, EffectResult, PasswordHash};

/// Why hashing or verifying failed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The stored hash is not a PHC string.
    #[error("stored password hash is not a PHC string")]
    NotPhc(#[source] argon2::password_hash::phc::Error),
    /// The stored hash has no salt or no output to compare with.
    #[error("stored password hash has no salt or no output")]
    Incomplete,
    /// The stored hash names an algorithm, version or parameters argon2 cannot use.
    #[error("stored password hash cannot be checked")]
    Unusable(#[source] argon2::password_hash::Error),
    /// Hashing failed (the OS random generator failed, or the parameters are invalid).
    #[error("password hashing failed")]
    Hashing(#[source] argon2::password_hash::Error),
    /// The cost parameters are out of argon2's range.
    #[error("invalid argon2 cost parameters")]
    InvalidCost(#[source] argon2::Error),
}

/// The argon2id cost used when hashing: memory, iterations, parallelism.
///
/// Production uses [`Cost::recommended`] (also the `Default`). Tests and the simulator use
/// [`Cost::cheap`]: they hash many passwords, and at the recommended cost each hash takes
/// tens of milliseconds and 19 MiB of memory, which would make a test suite or a simulated
/// day of registrations slow without testing anything more. A cheap hash is as correct
/// (same format, same verification) but weak against guessing: never use it for real
/// accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cost {
    params: argon2::Params,
}

impl Cost {
    /// argon2's recommended parameters (OWASP's argon2id minimum: 19 MiB of memory,
    /// 2 iterations, 1 lane).
    pub fn recommended() -> Cost {
        Cost {
            params: argon2::Params::DEFAULT,
        }
    }

    /// The cheapest parameters argon2 allows (8 KiB, 1 iteration, 1 lane), for tests and
    /// the simulator only.
    pub fn cheap() -> Cost {
        Cost {
            params: argon2::Params::new(
                argon2::Params::MIN_M_COST,
                argon2::Params::MIN_T_COST,
                argon2::Params::MIN_P_COST,
                None,
            )
            .unwrap_or(argon2::Params::DEFAULT),
        }
    }

    /// Explicit parameters: memory in KiB, iterations, lanes.
    pub fn new(memory_kib: u32, iterations: u32, lanes: u32) -> Result<Cost, CredentialError> {
        argon2::Params::new(memory_kib, iterations, lanes, None)
            .map(|params| Cost { params })
            .map_err(CredentialError::InvalidCost)
    }

    /// Memory in KiB.
    pub fn memory_kib(&self) -> u32 {
        self.params.m_cost()
    }

    /// Iterations.
    pub fn iterations(&self) -> u32 {
        self.params.t_cost()
    }

    /// Lanes.
    pub fn lanes(&self) -> u32 {
        self.params.p_cost()
    }

    /// The hasher for these parameters.
    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }
}

impl Default for Cost {
    fn default() -> Cost {
        Cost::recommended()
    }
}

/// The lowercase hex MD5 of `password`: what an IMS client sends in its place.
pub fn md5_hex(password: &str) -> String {
    Md5::digest(password.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Hashes a new password at the recommended cost: the argon2id hash of the password and
/// the argon2id hash of its [`md5_hex`], each with its own random salt from the OS.
pub fn hash_password(password: &str) -> Result<(PasswordHash, PasswordHash), CredentialError> {
    hash_password_with(&Cost::recommended(), password)
}

/// [`hash_password`] at a chosen cost.
pub fn hash_password_with(
    cost: &Cost,
    password: &str,
) -> Result<(PasswordHash, PasswordHash), CredentialError> {
    Ok((
        hash_one(cost, password)?,
        hash_one(cost, &md5_hex(password))?,
    ))
}

/// One argon2id PHC string of `secret` with a fresh salt from the OS.
fn hash_one(cost: &Cost, secret: &str) -> Result<PasswordHash, CredentialError> {
    cost.argon2()
        .hash_password(secret.as_bytes())
        .map(|hash| PasswordHash(hash.to_string()))
        .map_err(CredentialError::Hashing)
}

/// Checks `password` against a stored hash (for an IMS login, `password` is the MD5 hex
/// the client sent and `hash` the account's IMS hash). Uses the cost recorded in the hash.
/// A hash that is not an argon2 PHC string with salt and output is an error, not a
/// mismatch.
pub fn verify(hash: &PasswordHash, password: &str) -> Result<bool, CredentialError> {
    let parsed = argon2::PasswordHash::new(&hash.0).map_err(CredentialError::NotPhc)?;
    // Without a salt or an output there is nothing to compare against; argon2 would call
    // that a mismatch, which would hide a damaged hash.
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(CredentialError::Incomplete);
    }
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(error) => Err(CredentialError::Unusable(error)),
    }
}

/// Runs one of the core's effects at the recommended cost.
pub fn run_effect(effect: &Effect) -> EffectResult {
    run_effect_with(&Cost::recommended(), effect)
}

/// Runs one of the core's effects, hashing at `cost`: [`EffectResult::Hashed`] or
/// [`EffectResult::Verified`], or [`EffectResult::Failed`] when the stored hash is
/// malformed or hashing fails. Use [`try_run_effect_with`] to log why.
pub fn run_effect_with(cost: &Cost, effect: &Effect) -> EffectResult {
    try_run_effect_with(cost, effect).unwrap_or(EffectResult::Failed)
}

/// Like [`run_effect_with`], but a failure comes back as its cause instead of
/// [`EffectResult::Failed`], for the runtime to log before it answers `Failed`.
pub fn try_run_effect_with(cost: &Cost, effect: &Effect) -> Result<EffectResult, CredentialError> {
    map_large_blocks();
    run(cost, effect)
}

fn run(cost: &Cost, effect: &Effect) -> Result<EffectResult, CredentialError> {
    match effect {
        Effect::HashPassword { password } => {
            let (password, ims_password) = hash_password_with(cost, &password.0)?;
            Ok(EffectResult::Hashed {
                password,
                ims_password,
            })
        }
        Effect::VerifyPassword { hash, password } => {
            verify(hash, &password.0).map(EffectResult::Verified)
        }
        // Not a credential: the runtime reads media from its store ([`Store::media`]).
        Effect::ReadMedia { .. } => Ok(EffectResult::Failed),
    }
}

/// Makes glibc serve every block of 4 MiB or more (a hash's working memory) from its own
/// mapping, unmapped when freed. Left alone, glibc raises that threshold to the largest
/// block ever freed (up to 32 MiB), after which hash memory comes from the heap of
/// whichever thread hashes, and stays there. Set once per process. This alone gives a
/// hash's 19 MiB (at the recommended cost) back when it is freed: a `malloc_trim` after
/// each effect as well returned nothing more (100 `user add` on a running server grew its
/// RSS 0.5 MiB with it or without) and cost every login seven `madvise` calls and a walk
/// of every arena under its lock.
fn map_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes the allocator's tuning; setting M_MMAP_THRESHOLD
        // also stops glibc from moving it.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
        });
    }
}
