//! The admin socket: a Unix socket in the data directory, readable and writable by its
//! owner only (bound by [`switchboard_store::admin_socket`]), whose connections speak the
//! core's admin protocol.

use std::path::PathBuf;

use smol::Async;
use std::os::unix::net::UnixListener;
use tracing::info;

use crate::Error;
use switchboard_store::data_dir::DataDir;

pub(crate) use switchboard_store::admin_socket::remove as remove_socket;

/// The bound admin socket.
#[derive(Debug)]
pub(crate) struct AdminSocket {
    pub(crate) socket: Async<UnixListener>,
    pub(crate) path: PathBuf,
}

/// Binds `<data-dir>/admin.sock` with mode 0600 (see [`switchboard_store::admin_socket::bind`]).
pub(crate) fn bind(data_dir: &DataDir) -> Result<AdminSocket, Error> {
    let path = data_dir.admin_socket();
    let context = |source| Error::AdminSocket {
        path: path.clone(),
        source,
    };
    let listener = switchboard_store::admin_socket::bind(data_dir).map_err(context)?;
    let socket = Async::new(listener).map_err(context)?;
    info!(path = %path.display(), "admin socket listening");
    Ok(AdminSocket { socket, path })
}
