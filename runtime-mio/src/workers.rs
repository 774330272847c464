//! The committer thread off the loop (one batch at a time, as the pump asks), and how it
//! and the effect pool hand their results back: over a channel, waking the loop.

use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use switchboard_proto::{Batch, EffectId, EffectResult};
use switchboard_store::{Store, StoreError};
use tracing::warn;

/// A result handed back to the loop.
pub(crate) enum Done {
    /// The committer finished a batch.
    Commit(Batch, Result<(), StoreError>),
    /// An effect finished.
    Effect(EffectId, EffectResult),
}

/// Sends results to the loop and wakes it.
#[derive(Clone)]
pub(crate) struct Back {
    pub(crate) sender: Sender<Done>,
    pub(crate) waker: Arc<mio::Waker>,
}

impl Back {
    pub(crate) fn send(&self, done: Done) {
        // Fails only once the loop is gone, when nobody wants the result.
        if self.sender.send(done).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// The committer thread: owns the store, commits each batch in one transaction.
pub(crate) struct Committer {
    batches: Option<Sender<Batch>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    pub(crate) fn start(mut store: Store, back: Back) -> Committer {
        let (batches, inbox) = mpsc::channel::<Batch>();
        let thread = thread::Builder::new()
            .name("switchboard-commit".into())
            .spawn(move || {
                for batch in inbox {
                    let result = store.commit(&batch.changes);
                    back.send(Done::Commit(batch, result));
                }
            });
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(e) => {
                warn!(error = %e, "cannot start the committer thread");
                None
            }
        };
        Committer {
            batches: Some(batches),
            thread,
        }
    }

    /// Hands a batch to the thread.
    pub(crate) fn commit(&self, batch: Batch) {
        if let Some(batches) = &self.batches {
            let _ = batches.send(batch);
        }
    }

    /// Stops the thread; waits for it (and so for the store to close) unless a commit is
    /// still running, which the process exit then ends.
    pub(crate) fn stop(mut self, busy: bool) {
        self.batches = None;
        if let Some(thread) = self.thread.take() {
            if !busy {
                let _ = thread.join();
            }
        }
    }
}
