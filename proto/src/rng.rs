//! The server's only source of randomness: one seeded ChaCha20 stream.

use core::fmt;

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng};

/// What the server's random generator starts from, and so what its session ids and the
/// keys of its hash maps are drawn from. A served server takes 256 bits from the
/// operating system ([`Seed::from_bytes`]), which nobody can guess and nobody is shown
/// (its `Debug` hides them). A number ([`Seed::number`]) is for tests and the simulator:
/// the same number gives the same ids on every run and platform, so anyone who knows it
/// can predict them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Seed(Repr);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Repr {
    Number(u64),
    Bytes([u8; 32]),
}

impl Seed {
    /// A seed from a number: a reproducible run.
    #[must_use]
    pub const fn number(n: u64) -> Seed {
        Seed(Repr::Number(n))
    }

    /// A seed of 32 random bytes: a served server.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Seed {
        Seed(Repr::Bytes(bytes))
    }

    /// The number of a seed made by [`Seed::number`]; `None` for random bytes.
    #[must_use]
    pub const fn as_number(&self) -> Option<u64> {
        match self.0 {
            Repr::Number(n) => Some(n),
            Repr::Bytes(_) => None,
        }
    }
}

impl Default for Seed {
    /// The number 0.
    fn default() -> Seed {
        Seed::number(0)
    }
}

impl From<u64> for Seed {
    fn from(n: u64) -> Seed {
        Seed::number(n)
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Repr::Number(n) => f.debug_tuple("Seed").field(&n).finish(),
            Repr::Bytes(_) => f.write_str("Seed(<32 random bytes>)"),
        }
    }
}

/// Seeded generator for session ids and anything else the core randomises. The same
/// seed gives the same sequence on every platform.
pub(crate) struct Rng(ChaCha20Rng);

impl Rng {
    /// The generator of `seed`'s stream `stream`: streams of one seed are independent,
    /// so a part of the server drawing from its own stream leaves the others' draws as
    /// they were. A numbered seed's stream 0 is the number's generator as it always was
    /// (the simulator's recorded runs and the transcripts depend on it); its other
    /// streams start from the number mixed with the stream's.
    pub(crate) fn new(seed: Seed, stream: Stream) -> Self {
        match (seed.0, stream) {
            (Repr::Number(n), Stream::Sessions) => Rng(ChaCha20Rng::seed_from_u64(n)),
            (Repr::Number(n), Stream::HashKeys) => {
                Rng(ChaCha20Rng::seed_from_u64(n ^ HASH_KEYS_MIX))
            }
            (Repr::Bytes(bytes), stream) => {
                let mut rng = ChaCha20Rng::from_seed(bytes);
                rng.set_stream(stream as u64);
                Rng(rng)
            }
        }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

/// The independent streams drawn from one [`Seed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Session ids, nonces and everything else protocols draw.
    Sessions = 0,
    /// The keys of the maps peers choose the keys of ([`crate::hashing`]).
    HashKeys = 1,
}

/// What a numbered seed is mixed with for its hash keys' stream ("hash_key").
const HASH_KEYS_MIX: u64 = 0x6861_7368_5f6b_6579;

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(seed: Seed, stream: Stream) -> [u64; 4] {
        let mut rng = Rng::new(seed, stream);
        [(); 4].map(|()| rng.next_u64())
    }

    #[test]
    fn a_numbered_seed_draws_what_it_always_drew() {
        // The first draws of seed 1 before seeds could be bytes: recorded simulator runs
        // and transcripts depend on them.
        let mut old = ChaCha20Rng::seed_from_u64(1);
        let mut old_keys = ChaCha20Rng::seed_from_u64(1 ^ HASH_KEYS_MIX);
        assert_eq!(
            draws(Seed::number(1), Stream::Sessions),
            [(); 4].map(|()| old.next_u64())
        );
        assert_eq!(
            draws(Seed::number(1), Stream::HashKeys),
            [(); 4].map(|()| old_keys.next_u64())
        );
    }

    #[test]
    fn every_byte_of_a_random_seed_counts() {
        let base = [7u8; 32];
        let first = draws(Seed::from_bytes(base), Stream::Sessions);
        for i in 0..32 {
            let mut changed = base;
            changed[i] ^= 1;
            assert_ne!(
                draws(Seed::from_bytes(changed), Stream::Sessions),
                first,
                "byte {i}"
            );
        }
    }

    #[test]
    fn the_streams_of_a_seed_differ() {
        for seed in [Seed::number(3), Seed::from_bytes([3; 32])] {
            assert_ne!(draws(seed, Stream::Sessions), draws(seed, Stream::HashKeys));
        }
    }

    #[test]
    fn random_bytes_are_never_shown() {
        let shown = format!("{:?}", Seed::from_bytes([0xab; 32]));
        assert_eq!(shown, "Seed(<32 random bytes>)");
        assert_eq!(format!("{:?}", Seed::number(42)), "Seed(42)");
    }
}
