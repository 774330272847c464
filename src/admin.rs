//! The admin subcommands: each becomes one [`AdminCommand`] line of the core's admin
//! protocol, answered by the running server through its admin socket, or, when no server
//! holds the data directory, by the same core started here on the store itself. Either way
//! the core carries the command out; nothing here knows what a command does.

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use switchboard_proto::{
    Action, AdminCommand, Config, ConnId, EffectResult, Peer, Protocol, Pump, Server,
};
use switchboard_store::clock::Clock;
use switchboard_store::credentials::{self, Cost};
use switchboard_store::data_dir::{DataDir, LockError};
use switchboard_store::StoreError;

use crate::cli::{AdminArgs, BanCommand, NewPassword, PasswordSource, UnbanCommand, UserCommand};

/// How long an admin command keeps trying when the data directory is locked but has no
/// admin socket (a server starting or stopping, or another admin command).
const BUSY_PATIENCE: Duration = Duration::from_secs(3);

/// The server's answer to one command.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    /// The data lines (a listing), without line endings.
    pub data: Vec<String>,
    /// `ok` or `err`.
    pub ok: bool,
    /// The text of the final line, after `ok `/`err `.
    pub text: String,
}

/// Why an admin command could not be carried out (as opposed to an `err` answer).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The password could not be read from standard input.
    #[error("cannot read the password from standard input")]
    ReadPassword(#[source] io::Error),
    /// Standard input ended before a password line.
    #[error("no password on standard input")]
    NoPassword,
    /// The data directory could not be taken.
    #[error(transparent)]
    DataDir(#[from] LockError),
    /// The store could not be opened, loaded or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data directory is locked, but nothing listens on its admin socket.
    #[error(
        "{dir} is locked by another process but has no admin socket at {socket}; \
         a server may be starting or stopping, or another admin command is running: try again"
    )]
    NoSocket {
        /// The data directory.
        dir: PathBuf,
        /// Its admin socket.
        socket: PathBuf,
    },
    /// Connecting to the admin socket failed.
    #[error("could not connect to the admin socket {socket}")]
    Connect {
        /// The admin socket.
        socket: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Talking to the running server failed after connecting.
    #[error("connected to the admin socket {socket}, then the exchange failed")]
    Socket {
        /// The admin socket.
        socket: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The admin socket is not what the server makes (a socket owned by this user or root,
    /// for its owner only): another user may have put it there. Nothing was sent.
    #[error("refusing to use the admin socket {socket}: {why}; nothing was sent")]
    Untrusted {
        /// The admin socket.
        socket: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The server took the command but did not answer in time.
    #[error(
        "connected to the admin socket {socket} and sent the command, but no answer came \
         within {} s; the command may still take effect (see the server's log)",
        after.as_secs_f64()
    )]
    Timeout {
        /// The admin socket.
        socket: PathBuf,
        /// How long the command waited.
        after: Duration,
    },
    /// The server closed the connection before its final line.
    #[error("the server closed the admin connection without answering")]
    NoAnswer,
}

impl AdminError {
    /// Whether the command line was at fault (exit status 2), not the system.
    pub fn is_usage(&self) -> bool {
        matches!(self, AdminError::NoPassword)
    }
}

/// The admin-protocol command of `switchboard user ...`. Reads the password from standard
/// input where the flags say so.
pub fn user_command(command: UserCommand) -> Result<AdminCommand, AdminError> {
    user(command)
}

/// The admin-protocol command of `switchboard ban ...`.
pub fn ban_command(command: BanCommand) -> AdminCommand {
    match command {
        BanCommand::Ip { addr } => AdminCommand::BanIp(addr),
        BanCommand::User { name } => AdminCommand::BanUser { name },
        BanCommand::List => AdminCommand::BanList,
    }
}

/// The admin-protocol command of `switchboard unban ...`.
pub fn unban_command(command: UnbanCommand) -> AdminCommand {
    match command {
        UnbanCommand::Ip { addr } => AdminCommand::UnbanIp(addr),
        UnbanCommand::User { name } => AdminCommand::UnbanUser { name },
    }
}

fn user(command: UserCommand) -> Result<AdminCommand, AdminError> {
    Ok(match command {
        UserCommand::Add {
            name,
            password: NewPassword { password, .. },
            level,
            email,
            gender,
        } => AdminCommand::UserAdd {
            name,
            // The group requires one of the two flags: no --password means --password-stdin.
            password: match password {
                Some(password) => password,
                None => read_password()?,
            },
            level,
            email,
            gender,
        },
        UserCommand::Del { name } => AdminCommand::UserDel { name },
        UserCommand::List => AdminCommand::UserList,
        UserCommand::Passwd {
            name,
            password: PasswordSource { password, .. },
        } => AdminCommand::UserPasswd {
            name,
            password: match password {
                Some(password) => password,
                None => read_password()?,
            },
        },
    })
}

/// The first line of standard input, without its line ending.
fn read_password() -> Result<String, AdminError> {
    let mut line = String::new();
    let n = io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(AdminError::ReadPassword)?;
    if n == 0 {
        return Err(AdminError::NoPassword);
    }
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_owned())
}

/// Carries out `command` on the data directory of `args`: through the running server's
/// admin socket when one holds the directory, else on the store directly.
pub fn run(command: &AdminCommand, args: &AdminArgs) -> Result<Answer, AdminError> {
    let dir = &args.data_dir;
    let socket = switchboard_store::data_dir::admin_socket_path(dir);
    let started = std::time::Instant::now();
    loop {
        // Never creates a data dir or a store: a typo in --data-dir is an error.
        match DataDir::lock_existing(dir) {
            Ok(data_dir) => return offline(command, &data_dir, &args.hash_cost.cost()),
            Err(LockError::Busy { .. }) => match online(command, &socket, args.timeout.0) {
                Err(AdminError::Connect { source, .. })
                    if matches!(
                        source.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    if started.elapsed() > BUSY_PATIENCE {
                        return Err(AdminError::NoSocket {
                            dir: dir.clone(),
                            socket,
                        });
                    }
                    thread::sleep(Duration::from_millis(50));
                }
                answered => return answered,
            },
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sends the command to the running server and reads its answer (never the store itself:
/// `jabberd-authreg` uses it alone), once the socket has
/// passed [`check_socket`] and the process listening on it [`check_peer`].
#[cfg(unix)]
pub(crate) fn online(
    command: &AdminCommand,
    socket: &Path,
    timeout: Duration,
) -> Result<Answer, AdminError> {
    use std::os::unix::net::UnixStream;

    check_socket(socket)?;
    let mut stream = UnixStream::connect(socket).map_err(|source| AdminError::Connect {
        socket: socket.to_owned(),
        source,
    })?;
    check_peer(&stream, socket)?;
    let error = |source| AdminError::Socket {
        socket: socket.to_owned(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(error)?;
    stream.set_write_timeout(Some(timeout)).map_err(error)?;
    stream
        .write_all(format!("{}\r\n", command.to_line()).as_bytes())
        .map_err(error)?;
    let mut reader = BufReader::new(stream);
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return Err(AdminError::NoAnswer),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(AdminError::Timeout {
                    socket: socket.to_owned(),
                    after: timeout,
                })
            }
            Err(e) => return Err(error(e)),
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        match final_line(line) {
            Some((ok, text)) => {
                return Ok(Answer {
                    data,
                    ok,
                    text: text.to_owned(),
                })
            }
            None => data.push(line.to_owned()),
        }
    }
}

/// This process's effective uid.
#[cfg(unix)]
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The admin socket file must be a socket, owned by this user or root, and closed to group
/// and others (the server makes it 0600): anything else was put there by someone else.
#[cfg(unix)]
fn check_socket(socket: &Path) -> Result<(), AdminError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    let meta = std::fs::symlink_metadata(socket).map_err(|source| AdminError::Connect {
        socket: socket.to_owned(),
        source,
    })?;
    let untrusted = |why: String| AdminError::Untrusted {
        socket: socket.to_owned(),
        why,
    };
    if !meta.file_type().is_socket() {
        return Err(untrusted("it is not a socket".to_owned()));
    }
    let uid = euid();
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(untrusted(format!(
            "it is owned by uid {}, not by this user (uid {uid}) or root",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(untrusted(format!(
            "its mode is {mode:03o}, open to group or others (the server makes it 600)"
        )));
    }
    Ok(())
}

/// The process listening on the admin socket must run as this user or root, as the
/// kernel reports it (`SO_PEERCRED` on Linux, `getpeereid` on the BSDs and macOS).
#[cfg(unix)]
fn check_peer(stream: &std::os::unix::net::UnixStream, socket: &Path) -> Result<(), AdminError> {
    let peer = peer_uid(stream).map_err(|source| AdminError::Socket {
        socket: socket.to_owned(),
        source,
    })?;
    let uid = euid();
    match peer {
        Some(peer) if peer != uid && peer != 0 => Err(AdminError::Untrusted {
            socket: socket.to_owned(),
            why: format!(
                "the process listening on it runs as uid {peer}, not as this user (uid {uid}) \
                 or root"
            ),
        }),
        _ => Ok(()),
    }
}

/// The uid of the process at the other end of `stream`; `None` where the OS cannot tell.
#[cfg(target_os = "linux")]
fn peer_uid(stream: &std::os::unix::net::UnixStream) -> io::Result<Option<u32>> {
    use std::os::fd::AsRawFd;

    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which lives on this stack.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(cred.uid))
}

#[cfg(all(
    unix,
    not(target_os = "linux"),
    any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    )
))]
fn peer_uid(stream: &std::os::unix::net::UnixStream) -> io::Result<Option<u32>> {
    use std::os::fd::AsRawFd;

    let (mut uid, mut gid) = (0, 0);
    // SAFETY: getpeereid writes the two ids it is given.
    if unsafe { libc::getpeereid(stream.as_raw_fd(), &mut uid, &mut gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(uid))
}

#[cfg(all(
    unix,
    not(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    ))
))]
fn peer_uid(_stream: &std::os::unix::net::UnixStream) -> io::Result<Option<u32>> {
    Ok(None)
}

#[cfg(not(unix))]
pub(crate) fn online(
    _command: &AdminCommand,
    socket: &Path,
    _timeout: Duration,
) -> Result<Answer, AdminError> {
    Err(AdminError::Connect {
        socket: socket.to_owned(),
        source: io::Error::new(
            io::ErrorKind::Unsupported,
            "admin sockets need a Unix system",
        ),
    })
}

/// `ok <text>` or `err <text>`: whether it is ok, and the text.
fn final_line(line: &str) -> Option<(bool, &str)> {
    if let Some(text) = line.strip_prefix("ok ") {
        Some((true, text))
    } else if let Some(text) = line.strip_prefix("err ") {
        Some((false, text))
    } else if line == "ok" || line == "err" {
        Some((line == "ok", ""))
    } else {
        None
    }
}

/// Runs the command through a core started on the store, with no server running: the
/// same [`Pump`] as the runtime's, driven synchronously. Effects run inline, each batch the
/// pump asks for is committed at once (a failure is the command's error: nothing is
/// retried), and the answer is read once the pump releases it.
fn offline(command: &AdminCommand, data_dir: &DataDir, cost: &Cost) -> Result<Answer, AdminError> {
    if *command == AdminCommand::Status {
        return Ok(Answer {
            data: Vec::new(),
            ok: false,
            text: format!("no server is running on {}", data_dir.path().display()),
        });
    }
    let mut store = data_dir.open_existing_store()?;
    let mut pump = Pump::new(Server::new(Config::default(), store.load()?));
    let clock = Clock::start();
    let conn = ConnId(1);
    pump.accepted(clock.now(), conn, Protocol::Admin, Peer::Local);
    let line = format!("{}\r\n", command.to_line());
    pump.received(clock.now(), conn, line.into());
    let mut reply = Vec::new();
    while let Some(action) = pump.poll_action() {
        match action {
            Action::Transmit { bytes, .. } => reply.extend_from_slice(&bytes),
            // The admin protocol asks for no outbound connection.
            Action::Close { .. } | Action::Connect { .. } => {}
            Action::Commit(batch) => {
                store.commit(&batch.changes)?;
                pump.commit_finished(clock.now());
            }
            Action::Effect { id, effect } => {
                let result = credentials::try_run_effect_with(cost, &effect).unwrap_or_else(|e| {
                    eprintln!("warning: {}", switchboard_store::start::error_chain(&e));
                    EffectResult::Failed
                });
                pump.effect_done(clock.now(), id, result);
            }
        }
    }
    parse_reply(&reply).ok_or(AdminError::NoAnswer)
}

/// The answer in the bytes of a reply: data lines, then the final line.
fn parse_reply(reply: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(reply);
    let mut data = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        match final_line(line) {
            Some((ok, text)) => {
                return Some(Answer {
                    data,
                    ok,
                    text: text.to_owned(),
                })
            }
            None => data.push(line.to_owned()),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_split_into_data_and_the_final_line() {
        let answer = parse_reply(b"ip 10.0.0.1\r\nuser bob\r\nok bans listed\r\n");
        assert_eq!(
            answer,
            Some(Answer {
                data: vec!["ip 10.0.0.1".into(), "user bob".into()],
                ok: true,
                text: "bans listed".into(),
            })
        );
        let answer = parse_reply(b"err no account bob\r\n").expect("an answer");
        assert!(!answer.ok);
        assert_eq!(answer.text, "no account bob");
        assert_eq!(parse_reply(b"user bob\r\n"), None);
    }
}
