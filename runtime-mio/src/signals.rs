//! Shutdown as one more readable source of the loop: a self-pipe (a Unix socket pair) that
//! SIGINT and SIGTERM, or a [`Trigger`], write a byte to.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// The loop's end of the self-pipe: it becomes readable when shutdown is asked.
#[derive(Debug)]
pub struct Shutdown {
    pub(crate) pipe: mio::net::UnixStream,
}

/// Asks a running loop to shut down, from any thread (a test, an embedding program).
#[derive(Clone, Debug)]
pub struct Trigger {
    pipe: Arc<UnixStream>,
}

impl Shutdown {
    /// A shutdown source and the trigger that fires it.
    ///
    /// # Errors
    /// When the OS cannot create the socket pair.
    pub fn new() -> io::Result<(Shutdown, Trigger)> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        Ok((
            Shutdown {
                pipe: mio::net::UnixStream::from_std(read),
            },
            Trigger {
                pipe: Arc::new(write),
            },
        ))
    }

    /// Reads everything written: the signal numbers the handlers wrote, `0` for a
    /// trigger, in order.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut bytes = [0_u8; 16];
        while let Ok(n @ 1..) = self.pipe.read(&mut bytes) {
            all.extend_from_slice(&bytes[..n]);
        }
        all
    }
}

impl Trigger {
    /// Fires the shutdown (again is harmless).
    pub fn fire(&self) {
        let _ = (&*self.pipe).write(&[0]);
    }
}

/// Starts watching for Ctrl-C (SIGINT) and SIGTERM, and SIGHUP; the returned source fires
/// at the first of them (SIGHUP is a reload, not a shutdown). From this call on those
/// signals no longer kill the process.
///
/// # Errors
/// When the pipe cannot be made or the handlers cannot be installed.
pub fn shutdown_signal() -> io::Result<Shutdown> {
    let (shutdown, trigger) = Shutdown::new()?;
    // The write end lives as long as the handlers, which is the rest of the process.
    let fd: RawFd = trigger.pipe.as_raw_fd();
    std::mem::forget(trigger);
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let byte = u8::try_from(signal).unwrap_or(0);
        // SAFETY: the handler only calls write(2), which is async-signal-safe, on a
        // descriptor that is never closed; a full pipe just drops the byte.
        unsafe {
            signal_hook_registry::register(signal, move || {
                let _ = libc::write(fd, std::ptr::addr_of!(byte).cast(), 1);
            })?;
        }
    }
    Ok(shutdown)
}

/// Whether a byte the handlers wrote is SIGHUP (a reload).
pub(crate) fn is_hangup(signal: u8) -> bool {
    i32::from(signal) == libc::SIGHUP
}

/// The name of a signal number the handler wrote, for the log.
pub(crate) fn name(signal: u8) -> &'static str {
    match i32::from(signal) {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "trigger",
    }
}
