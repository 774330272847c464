//! Virtual time: the core never reads a clock; every input carries a [`Now`].

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

/// A point on the server's monotonic timeline, in milliseconds since an origin chosen by
/// whoever drives the server (the runtime's start, or zero in the simulator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the timeline.
    pub const ZERO: Instant = Instant(0);

    /// The instant `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ms))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

impl fmt::Display for Instant {
    /// Seconds with millisecond precision, as transcripts show time: `15.000s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// The time of an input: monotonic time for deadlines, wall-clock time for protocol
/// timestamps (opcode TimeStamp, ARSC sendtime).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time; must never go backwards between calls.
    pub mono: Instant,
    /// Unix time in milliseconds.
    pub wall_ms: u64,
}

impl Now {
    /// A `Now` whose wall clock is `wall_origin_ms` plus the monotonic time, as the
    /// simulator and tests build it.
    pub fn at(mono: Instant, wall_origin_ms: u64) -> Self {
        Now {
            mono,
            wall_ms: wall_origin_ms.saturating_add(mono.as_millis()),
        }
    }
}
