//! The admin socket, bound by [`switchboard_store::admin_socket`] (mode 0600, renamed into
//! place, so no other user ever reaches it) and accepted on by the loop.

use std::path::PathBuf;

use tracing::info;

use crate::Error;
use switchboard_store::data_dir::DataDir;

/// The bound admin socket.
#[derive(Debug)]
pub(crate) struct AdminSocket {
    pub(crate) socket: mio::net::UnixListener,
    pub(crate) path: PathBuf,
}

/// Binds `<data-dir>/admin.sock`, non-blocking.
pub(crate) fn bind(data_dir: &DataDir) -> Result<AdminSocket, Error> {
    let path = data_dir.admin_socket();
    let context = |source| Error::AdminSocket {
        path: path.clone(),
        source,
    };
    let listener = switchboard_store::admin_socket::bind(data_dir).map_err(context)?;
    listener.set_nonblocking(true).map_err(context)?;
    info!(path = %path.display(), "admin socket listening");
    Ok(AdminSocket {
        socket: mio::net::UnixListener::from_std(listener),
        path,
    })
}
