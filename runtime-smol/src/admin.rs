//! The admin socket: a Unix socket in the data directory, readable and writable by its
//! owner only, whose connections speak the core's admin protocol.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use smol::Async;
use tracing::{info, warn};

use crate::Error;
use switchboard_store::data_dir::DataDir;

/// The bound admin socket.
#[derive(Debug)]
pub(crate) struct AdminSocket {
    pub(crate) socket: Async<UnixListener>,
    pub(crate) path: PathBuf,
}

/// Binds `<data-dir>/admin.sock` with mode 0600, replacing a stale one. Only the holder of
/// the data directory's lock calls this, so a socket found there belongs to no live server.
///
/// The socket is bound under a temporary name, restricted, then renamed into place, so
/// there is no moment at which it accepts connections from other users.
pub(crate) fn bind(data_dir: &DataDir) -> Result<AdminSocket, Error> {
    let path = data_dir.admin_socket();
    let temporary = data_dir
        .path()
        .join(format!(".admin.sock.{}", std::process::id()));
    let context = |source: io::Error| Error::AdminSocket {
        path: path.clone(),
        source,
    };
    remove_if_present(&temporary).map_err(context)?;
    let listener = UnixListener::bind(&temporary).map_err(context)?;
    let placed = fs::set_permissions(&temporary, fs::Permissions::from_mode(0o600))
        .and_then(|()| fs::rename(&temporary, &path));
    if let Err(source) = placed {
        let _ = fs::remove_file(&temporary);
        return Err(context(source));
    }
    let socket = Async::new(listener).map_err(context)?;
    info!(path = %path.display(), "admin socket listening");
    Ok(AdminSocket { socket, path })
}

/// Removes the socket file at shutdown, so an admin command finds no socket of a server
/// that is gone.
pub(crate) fn remove_socket(path: &Path) {
    if let Err(e) = remove_if_present(path) {
        warn!(path = %path.display(), error = %e, "cannot remove the admin socket");
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
