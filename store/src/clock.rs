//! Real time mapped onto the core's timeline: the one clock mapping every runtime uses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchboard_proto::{Instant, Now};

/// Maps `std::time::Instant` onto [`Instant`] (milliseconds since the runtime started) and
/// reads the wall clock for protocol timestamps.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: std::time::Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn start() -> Clock {
        Clock {
            start: std::time::Instant::now(),
        }
    }

    /// The current time. The monotonic part is rounded down to the millisecond, so it never
    /// runs ahead of a deadline computed by [`deadline`](Self::deadline).
    pub fn now(&self) -> Now {
        let mono = saturating_millis(self.start.elapsed());
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, saturating_millis);
        Now {
            mono: Instant::from_millis(mono),
            wall_ms,
        }
    }

    /// The real instant of the core's `at`; `None` if it is too far away to represent.
    pub fn deadline(&self, at: Instant) -> Option<std::time::Instant> {
        self.start
            .checked_add(Duration::from_millis(at.as_millis()))
    }
}

fn saturating_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_never_before_the_instant_it_maps() {
        let clock = Clock::start();
        let now = clock.now();
        let later = now.mono + Duration::from_millis(5);
        let at = clock.deadline(later).expect("representable");
        std::thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
        assert!(clock.now().mono >= later);
    }

    #[test]
    fn wall_clock_is_unix_milliseconds() {
        // 2020-01-01 in Unix milliseconds: any machine running this is past it.
        assert!(Clock::start().now().wall_ms > 1_577_836_800_000);
    }
}
