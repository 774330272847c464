//! The admin socket's file: a Unix socket in the data directory, readable and writable by
//! its owner only, bound so that no other user can ever connect to it. Std-only, shared by
//! every runtime (each wraps the listener in its own event loop).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

use tracing::warn;

use crate::data_dir::DataDir;

/// Binds `<data-dir>/admin.sock` with mode 0600, replacing a stale one. Only the holder of
/// the data directory's lock calls this, so a socket found there belongs to no live server.
///
/// The socket is bound under a temporary name, restricted, then renamed into place, so
/// there is no moment at which it accepts connections from other users.
///
/// # Errors
/// The OS error of binding, restricting or renaming the socket.
pub fn bind(data_dir: &DataDir) -> io::Result<UnixListener> {
    let path = data_dir.admin_socket();
    let temporary = data_dir
        .path()
        .join(format!(".admin.sock.{}", std::process::id()));
    remove_if_present(&temporary)?;
    let listener = UnixListener::bind(&temporary)?;
    let placed = fs::set_permissions(&temporary, fs::Permissions::from_mode(0o600))
        .and_then(|()| fs::rename(&temporary, &path));
    if let Err(e) = placed {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    Ok(listener)
}

/// Removes the socket file at shutdown, so an admin command finds no socket of a server
/// that is gone.
pub fn remove(path: &Path) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_is_its_owners_only_and_removed_at_the_end() {
        let dir = tempfile::tempdir().expect("temporary dir");
        let data_dir = DataDir::lock(&dir.path().join("data")).expect("lock");
        let _listener = bind(&data_dir).expect("bind");
        let path = data_dir.admin_socket();
        let mode = fs::metadata(&path)
            .expect("socket exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        remove(&path);
        assert!(!path.exists());
    }
}
