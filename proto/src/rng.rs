//! The server's only source of randomness: one seeded ChaCha20 stream.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng};

/// Seeded generator for session ids and anything else the core randomises. The same
/// seed gives the same sequence on every platform.
pub(crate) struct Rng(ChaCha20Rng);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(ChaCha20Rng::seed_from_u64(seed))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}
