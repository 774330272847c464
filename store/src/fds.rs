//! File descriptors: the soft limit raised to the hard one at start, the listen backlog,
//! and the share of descriptors client connections may take, so that a crowd of clients
//! never leaves the admin socket, the store or an accept without one.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tracing::{info, warn};

/// The listen backlog asked for when the system's `somaxconn` is unknown or lower.
pub const MIN_BACKLOG: i32 = 1024;

/// The default descriptor reserve of every runtime: kept free of client connections, for
/// admin connections, the store's files and accepting.
pub const DEFAULT_FD_RESERVE: usize = 64;

/// The descriptor limit before and after [`raise_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The soft limit found at start.
    pub was: u64,
    /// The soft limit in force (the hard limit, when raising it worked).
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (on Linux, to `fs.nr_open` when the
/// hard limit is unlimited), and returns both. `None` where there is no such limit.
pub fn raise_limit() -> Option<Limit> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given, which lives on this stack.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        let was = limit.rlim_cur;
        let mut want = limit.rlim_max;
        if want == libc::RLIM_INFINITY {
            want = std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(was);
        }
        if want > was {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: setrlimit reads the struct it is given.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit.rlim_cur = want;
            } else {
                warn!(
                    soft = was,
                    hard = limit.rlim_max,
                    error = %std::io::Error::last_os_error(),
                    "cannot raise the file descriptor limit"
                );
            }
        }
        #[allow(clippy::useless_conversion)]
        Some(Limit {
            was: u64::from(was),
            soft: u64::from(limit.rlim_cur),
            hard: u64::from(limit.rlim_max),
        })
    }
    #[cfg(not(unix))]
    None
}

/// The listen backlog to ask for: the system's `net.core.somaxconn` when it is readable and
/// higher than [`MIN_BACKLOG`], else `MIN_BACKLOG` (the kernel caps it at `somaxconn`).
/// Returns the backlog and the `somaxconn` read, if any.
pub fn backlog() -> (i32, Option<i32>) {
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    (somaxconn.unwrap_or(0).max(MIN_BACKLOG), somaxconn)
}

/// Sets the backlog of a listening socket: listen(2) again on a socket that listens
/// already changes its backlog (std binds with 128).
pub fn set_backlog(listener: &TcpListener, backlog: i32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: listen on a descriptor this listener owns.
        if unsafe { libc::listen(listener.as_raw_fd(), backlog) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(unix))]
    let _ = (listener, backlog);
    Ok(())
}

/// How many descriptors this process has open now; `None` where that cannot be counted.
pub fn open_now() -> Option<usize> {
    ["/proc/self/fd", "/dev/fd"]
        .iter()
        .find_map(|dir| std::fs::read_dir(dir).ok())
        .map(|entries| entries.count().saturating_sub(1)) // the directory's own descriptor
}

/// How many client connections may be open at once, and how many are: a connection takes a
/// [`Slot`], which it gives back when its socket is closed.
#[derive(Clone, Debug)]
pub struct Capacity {
    open: Arc<AtomicUsize>,
    max: usize,
}

impl Capacity {
    /// Room for `max` client connections.
    pub fn new(max: usize) -> Capacity {
        Capacity {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// The room left below `limit` descriptors once `in_use` (open now) and `reserve` (kept
    /// for the admin socket, the store, accepts) are set aside.
    pub fn below_limit(limit: u64, in_use: usize, reserve: usize) -> Capacity {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Capacity::new(limit.saturating_sub(in_use).saturating_sub(reserve))
    }

    /// The most client connections at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for one more client connection, or `None` when all are taken.
    pub fn try_take(&self) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            })
            .ok()
            .map(|_| Slot(self.open.clone()))
    }

    /// How many slots are taken.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// One client connection's share of the descriptors, given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The client connections' share of `limit` (from [`raise_limit`]): what is open now
/// (stdio, the lock, the store's files, the listeners, the event loop) stays open; the rest,
/// less `reserve`, is for clients.
pub fn client_capacity(limit: Option<Limit>, reserve: usize) -> Capacity {
    match (limit, open_now()) {
        (Some(limit), Some(open)) => Capacity::below_limit(limit.soft, open, reserve),
        (Some(limit), None) => Capacity::below_limit(limit.soft, 32, reserve),
        (None, _) => Capacity::new(usize::MAX),
    }
}

/// Logs the limit, the backlog and the client connections' share at start.
pub fn log_start(limit: Option<Limit>, capacity: &Capacity, reserve: usize) {
    match limit {
        Some(limit) => info!(
            soft = limit.soft,
            hard = limit.hard,
            soft_at_start = limit.was,
            client_connections = capacity.max(),
            reserve,
            "file descriptor limit"
        ),
        None => info!(
            client_connections = capacity.max(),
            "file descriptor limit unknown"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_given_back() {
        let capacity = Capacity::new(2);
        let a = capacity.try_take().expect("first");
        let b = capacity.try_take().expect("second");
        assert!(capacity.try_take().is_none(), "a third past the max");
        assert_eq!(capacity.open(), 2);
        drop(a);
        let c = capacity.try_take().expect("room again");
        drop((b, c));
        assert_eq!(capacity.open(), 0);
    }

    #[test]
    fn the_room_leaves_the_reserve_and_what_is_open() {
        assert_eq!(Capacity::below_limit(256, 20, 64).max(), 172);
        assert_eq!(Capacity::below_limit(50, 20, 64).max(), 0);
        assert_eq!(
            Capacity::below_limit(u64::MAX, 20, 64).max(),
            usize::MAX - 84
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit read and write a struct on this stack.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
            if limit.rlim_max != libc::RLIM_INFINITY && limit.rlim_max <= 300 {
                eprintln!("skipped: the hard limit is too low to lower the soft one");
                return;
            }
            let lowered = libc::rlimit {
                rlim_cur: 300,
                rlim_max: limit.rlim_max,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lowered), 0);
        }
        let raised = raise_limit().expect("a limit");
        assert_eq!(raised.was, 300);
        assert!(raised.soft > 300, "{raised:?}");
        if limit.rlim_max != libc::RLIM_INFINITY {
            #[allow(clippy::useless_conversion)]
            let hard = u64::from(limit.rlim_max);
            assert_eq!((raised.soft, raised.hard), (hard, hard));
        }
    }

    #[test]
    fn the_backlog_is_at_least_1024() {
        let (backlog, somaxconn) = backlog();
        assert!(backlog >= MIN_BACKLOG);
        if let Some(somaxconn) = somaxconn {
            assert!(backlog >= somaxconn);
        }
    }
}
