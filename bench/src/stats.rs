//! What the generator measures besides its own clock: a process's CPU time and memory
//! from /proc, its own CPU use, latency percentiles, and the descriptor limit.

use std::fs;
use std::time::Duration;

/// CPU time and memory of a process, read from /proc at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Resident set size now, in KiB.
    pub rss_kib: u64,
    /// Peak resident set size (since start or the last [`reset_peak`]), in KiB.
    pub peak_kib: u64,
}

/// Reads /proc/`pid`/stat and /proc/`pid`/status; `None` if the process is gone (or
/// this is no Linux).
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after its ')' are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = clock_ticks();
    let cpu = cpu_clock(pid)
        .unwrap_or_else(|| Duration::from_secs_f64((utime + stime) as f64 / ticks as f64));
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        cpu,
        rss_kib: kib("VmRSS:"),
        peak_kib: kib("VmHWM:"),
    })
}

/// Resets the peak RSS of `pid` to its current RSS (Linux 4.0+, needs the right to
/// write its /proc files: our own child, or root). Returns whether it worked.
pub fn reset_peak(pid: u32) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The CPU time of the process `pid`, all its threads, to the nanosecond: its CPU-time
/// clock. /proc counts in clock ticks (10 ms here), a twentieth of a direct run's 0.2 s
/// of server CPU; `None` where the clock cannot be read.
fn cpu_clock(pid: u32) -> Option<Duration> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: clock_getcpuclockid writes the clock's id into a local.
    if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } != 0 {
        return None;
    }
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the time into a local.
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(now.tv_sec).ok()?,
        u32::try_from(now.tv_nsec).ok()?,
    ))
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// This process's own CPU time (user plus system).
pub fn own_cpu() -> Duration {
    // SAFETY: getrusage writes the struct it is given, which lives on this stack.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Raises this process's descriptor limit (soft and, for root, hard) to at least `want`,
/// so it and the servers it starts can hold that many connections. Returns the soft
/// limit in force.
pub fn raise_fd_limit(want: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit read and write structs on this stack.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur >= want {
            return limit.rlim_cur;
        }
        let nr_open = fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
        let raised = libc::rlimit {
            rlim_cur: want.min(nr_open),
            rlim_max: limit.rlim_max.max(want.min(nr_open)),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return raised.rlim_cur;
        }
        // Not root: the hard limit is as far as it goes.
        let soft = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) == 0 {
            limit.rlim_max
        } else {
            limit.rlim_cur
        }
    }
}

/// Latencies in nanoseconds; percentiles on demand.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    ns: Vec<u64>,
    sorted: bool,
}

impl Latencies {
    /// Records one latency.
    pub fn push(&mut self, ns: u64) {
        self.ns.push(ns);
        self.sorted = false;
    }

    /// How many were recorded.
    pub fn len(&self) -> usize {
        self.ns.len()
    }

    /// Whether none were recorded.
    pub fn is_empty(&self) -> bool {
        self.ns.is_empty()
    }

    /// The `p`-th percentile (0 to 100), zero when empty.
    pub fn percentile(&mut self, p: f64) -> Duration {
        if self.ns.is_empty() {
            return Duration::ZERO;
        }
        if !self.sorted {
            self.ns.sort_unstable();
            self.sorted = true;
        }
        let rank = ((p / 100.0) * (self.ns.len() - 1) as f64).round() as usize;
        Duration::from_nanos(self.ns[rank.min(self.ns.len() - 1)])
    }

    /// The largest.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.ns.iter().copied().max().unwrap_or(0))
    }
}

/// The median of `values` (the lower middle one for an even count); zero when empty.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[(v.len() - 1) / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_by_rank() {
        let mut l = Latencies::default();
        for ns in (1..=100).rev() {
            l.push(ns * 1000);
        }
        assert_eq!(l.percentile(50.0), Duration::from_micros(51));
        assert_eq!(l.percentile(99.0), Duration::from_micros(99));
        assert_eq!(l.max(), Duration::from_micros(100));
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn own_process_has_cpu_and_memory() {
        let me = sample(std::process::id()).expect("own /proc entry");
        assert!(me.rss_kib > 0);
        assert!(me.peak_kib >= me.rss_kib);
    }

    #[test]
    fn a_process_cpu_time_is_read_finer_than_a_clock_tick() {
        // Spin for 3 ms of CPU, less than a tick: the clock must see it, to within what
        // the spin itself overshoots.
        let before = sample(std::process::id()).expect("own /proc entry").cpu;
        let spun = own_cpu();
        while own_cpu() - spun < Duration::from_millis(3) {
            std::hint::black_box(0);
        }
        let after = sample(std::process::id()).expect("own /proc entry").cpu;
        let seen = after.saturating_sub(before);
        assert!(
            seen >= Duration::from_millis(3) && seen < Duration::from_millis(9),
            "{seen:?}"
        );
    }
}
