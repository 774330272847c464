//! Hash maps keyed by what peers choose (their addresses, the account names they try):
//! looked up on every request, so a fast hasher, seeded per server so that no peer can
//! work out keys that collide.

use std::collections::HashMap;

use crate::rng::{Rng, Seed, Stream};

/// The hasher of every [`PeerMap`]: foldhash, with a per-server seed.
pub(crate) type Seeded = foldhash::fast::FixedState;

/// A hash map keyed by values peers choose. Never iterated to produce output: its order
/// depends on the seed.
pub(crate) type PeerMap<K, V> = HashMap<K, V, Seeded>;

/// The hasher for a server whose random generator is seeded with `seed`: drawn from a
/// stream of its own, so the server's other random draws (session ids) are unchanged.
pub(crate) fn seeded(seed: Seed) -> Seeded {
    Seeded::with_seed(Rng::new(seed, Stream::HashKeys).next_u64())
}

/// An empty map hashing with `hasher`.
pub(crate) fn peer_map<K, V>(hasher: Seeded) -> PeerMap<K, V> {
    HashMap::with_hasher(hasher)
}
