//! Reads opcode media for the core's [`Effect::ReadMedia`](switchboard_proto::Effect),
//! shared by the runtimes: through a second connection to the store, opened at the first
//! read (the committer's connection is busy with commits, and SQLite's WAL lets a reader
//! run beside them).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use switchboard_proto::{EffectId, EffectResult, MediaId};
use tracing::warn;

use crate::start::error_chain;
use crate::Store;

/// A reader of media bytes; clones share one connection.
#[derive(Clone, Debug)]
pub struct MediaReader {
    dir: PathBuf,
    store: Arc<Mutex<Option<Store>>>,
}

impl MediaReader {
    /// A reader of the store in the data directory `dir` (opened at the first read).
    pub fn new(dir: PathBuf) -> MediaReader {
        MediaReader {
            dir,
            store: Arc::new(Mutex::new(None)),
        }
    }

    /// The answer to effect `effect`: the bytes of media `id` (`None` if not stored), or
    /// `Failed` (logged) if the store cannot be read.
    pub fn read(&self, effect: EffectId, id: MediaId) -> EffectResult {
        let mut store = match self.store.lock() {
            Ok(store) => store,
            Err(poisoned) => poisoned.into_inner(),
        };
        if store.is_none() {
            match Store::open_existing(&self.dir) {
                Ok(opened) => *store = Some(opened),
                Err(e) => {
                    warn!(effect = effect.0, error = %error_chain(&e), "media store unreadable");
                    return EffectResult::Failed;
                }
            }
        }
        match store.as_ref().map(|s| s.media(id)) {
            Some(Ok(bytes)) => EffectResult::Media(bytes.map(Bytes::from)),
            Some(Err(e)) => {
                warn!(effect = effect.0, error = %error_chain(&e), "media read failed");
                EffectResult::Failed
            }
            None => EffectResult::Failed,
        }
    }
}
