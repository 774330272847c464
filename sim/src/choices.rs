//! Where every decision of a simulation comes from: the [`Choices`] trait, a seeded
//! generator ([`SimRng`]) and a byte tape ([`ByteTape`]) so a fuzzer can drive whole runs.
//!
//! A run asks a [`ChoiceSource`] for one stream per purpose (options, network, faults,
//! store, each client, each server boot), so a decision of one purpose never shifts
//! another's: adding a client does not change which connections the network cuts.

use core::cell::RefCell;
use core::ops::RangeInclusive;
use std::rc::Rc;

/// A source of decisions. Everything but [`next_u64`](Self::next_u64) is derived from it,
/// with integer arithmetic only, so a seed means the same run on every platform.
pub trait Choices {
    /// The next 64 raw bits.
    fn next_u64(&mut self) -> u64;

    /// A number in `0..n` (0 when `n` is 0 or 1).
    fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `num / den`.
    fn ratio(&mut self, num: u64, den: u64) -> bool {
        num > 0 && self.below(den.max(1)) < num
    }

    /// A number in the range, both ends included.
    fn range(&mut self, range: RangeInclusive<u64>) -> u64 {
        let (lo, hi) = (*range.start(), *range.end());
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// One element of a non-empty slice.
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index drawn by weight: `weights[i]` chances in their sum. All zero picks 0.
    fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut x = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        0
    }

    /// A duration around `mean` (milliseconds): uniform in `[mean/2, 3*mean/2]`, and one
    /// time in eight four times longer, so waits have a tail without floating point.
    fn around(&mut self, mean: u64) -> u64 {
        let base = mean / 2 + self.below(mean + 1);
        if self.ratio(1, 8) {
            base.saturating_mul(4)
        } else {
            base
        }
    }
}

/// What a stream of decisions is for; with an index, names one stream of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Purpose {
    /// Drawing the run's [`SimOptions`](crate::SimOptions).
    Options = 1,
    /// Chunk sizes and delays of the virtual network.
    Network = 2,
    /// When and where faults strike.
    Faults = 3,
    /// Commit latencies and outcomes of the store model, and effect results.
    Store = 4,
    /// One ws2017 client's behaviour (index: the client).
    Client = 5,
    /// The administrator's behaviour.
    Admin = 6,
    /// The seed of each server boot (index: the boot).
    ServerBoot = 7,
}

/// Hands out the streams of one run.
pub trait ChoiceSource {
    /// The stream type.
    type Stream: Choices + core::fmt::Debug + 'static;
    /// The stream for `purpose` and `index`.
    fn stream(&mut self, purpose: Purpose, index: u64) -> Self::Stream;
    /// A source that makes the same decisions again from the start (to replay a run).
    fn fresh(&self) -> Self;
}

/// xoshiro256++ seeded through splitmix64: fast, small, and the same on every platform.
#[derive(Clone, Debug)]
pub struct SimRng {
    s: [u64; 4],
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SimRng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SimRng {
        let mut x = seed;
        let s = [
            splitmix(&mut x),
            splitmix(&mut x),
            splitmix(&mut x),
            splitmix(&mut x),
        ];
        SimRng { s }
    }

    /// The generator of one purpose of the run of `seed`: independent of every other.
    pub fn derive(seed: u64, purpose: Purpose, index: u64) -> SimRng {
        let mut x = seed;
        let a = splitmix(&mut x);
        let mut y = a ^ (purpose as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let b = splitmix(&mut y);
        let mut z = b ^ index.wrapping_mul(0xA076_1D64_78BD_642F);
        SimRng::new(splitmix(&mut z))
    }
}

impl Choices for SimRng {
    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

/// The seeded source: each stream is a [`SimRng`] derived from the seed and its purpose.
#[derive(Clone, Copy, Debug)]
pub struct Seeded(pub u64);

impl ChoiceSource for Seeded {
    type Stream = SimRng;
    fn stream(&mut self, purpose: Purpose, index: u64) -> SimRng {
        SimRng::derive(self.0, purpose, index)
    }
    fn fresh(&self) -> Self {
        *self
    }
}

/// Decisions read from bytes, as a fuzzer hands them over (cargo-fuzz, or
/// `arbitrary::Unstructured`'s input): eight bytes per draw, zeros once they run out, so
/// every byte string is a valid (if dull) run.
#[derive(Clone, Debug, Default)]
pub struct ByteTape {
    bytes: Vec<u8>,
    pos: usize,
}

impl ByteTape {
    /// A tape over `bytes`.
    pub fn new(bytes: impl Into<Vec<u8>>) -> ByteTape {
        ByteTape {
            bytes: bytes.into(),
            pos: 0,
        }
    }
}

impl Choices for ByteTape {
    fn next_u64(&mut self) -> u64 {
        let mut word = [0u8; 8];
        let end = (self.pos + 8).min(self.bytes.len());
        if self.pos < end {
            word[..end - self.pos].copy_from_slice(&self.bytes[self.pos..end]);
        }
        self.pos = end;
        u64::from_le_bytes(word)
    }
}

/// One shared [`ByteTape`] for every stream: a fuzzer's bytes drive the whole run in the
/// order decisions are made.
#[derive(Clone, Debug, Default)]
pub struct Tape {
    tape: Rc<RefCell<ByteTape>>,
    bytes: Rc<[u8]>,
}

impl Tape {
    /// A source reading `bytes`.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Tape {
        let bytes: Rc<[u8]> = bytes.into().into();
        Tape {
            tape: Rc::new(RefCell::new(ByteTape::new(bytes.to_vec()))),
            bytes,
        }
    }
}

impl Choices for Tape {
    fn next_u64(&mut self) -> u64 {
        self.tape.borrow_mut().next_u64()
    }
}

impl ChoiceSource for Tape {
    type Stream = Tape;
    fn stream(&mut self, _purpose: Purpose, _index: u64) -> Tape {
        self.clone()
    }
    fn fresh(&self) -> Self {
        Tape::new(self.bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_streams_and_purposes_are_independent() {
        let a: Vec<u64> = (0..4)
            .map(|_| SimRng::derive(7, Purpose::Network, 0).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut net = SimRng::derive(7, Purpose::Network, 0);
        let mut faults = SimRng::derive(7, Purpose::Faults, 0);
        let mut client1 = SimRng::derive(7, Purpose::Client, 1);
        let draws = [net.next_u64(), faults.next_u64(), client1.next_u64()];
        assert!(draws[0] != draws[1] && draws[1] != draws[2]);
    }

    #[test]
    fn derived_helpers_stay_in_range() {
        let mut r = SimRng::new(1);
        for _ in 0..10_000 {
            assert!(r.below(7) < 7);
            let x = r.range(3..=5);
            assert!((3..=5).contains(&x));
            assert!(r.weighted(&[0, 5, 0, 1]) % 2 == 1);
            let d = r.around(100);
            assert!((50..=600).contains(&d));
        }
        assert!(!r.ratio(0, 10));
        assert!(r.ratio(10, 10));
        assert_eq!(r.below(0), 0);
        let (hi, lo) = (9, 2);
        assert_eq!(r.range(hi..=lo), 9, "an empty range gives its start");
    }

    #[test]
    fn a_tape_reads_little_endian_words_then_zeros() {
        let mut t = ByteTape::new(vec![1, 0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(t.next_u64(), 1);
        assert_eq!(t.next_u64(), 2);
        assert_eq!(t.next_u64(), 0);
        let mut shared = Tape::new(vec![5; 16]);
        let mut a = shared.stream(Purpose::Network, 0);
        let mut b = shared.stream(Purpose::Faults, 0);
        assert_eq!(a.next_u64(), b.next_u64());
        assert_eq!(a.next_u64(), 0);
        assert_eq!(shared.fresh().next_u64(), u64::from_le_bytes([5; 8]));
    }
}
