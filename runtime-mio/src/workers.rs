//! Threads off the loop: the committer (one batch at a time, as the pump asks) and a small
//! pool for effects. Each hands its result back over a channel and wakes the loop.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use switchboard_proto::{Batch, Effect, EffectId, EffectResult};
use switchboard_store::credentials::{self, Cost};
use switchboard_store::media_reader::MediaReader;
use switchboard_store::start::error_chain;
use switchboard_store::{Store, StoreError};
use tracing::warn;

/// Effect threads at most: password hashing is CPU-bound and memory-hungry.
const MAX_EFFECT_THREADS: usize = 4;

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
    fn send(&self, done: Done) {
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

/// The effect pool: a few threads taking effects from one queue.
pub(crate) struct Effects {
    jobs: Sender<(EffectId, Effect)>,
}

impl Effects {
    /// Starts the pool; `media` reads opcode media, `cost` is the hashes' cost.
    pub(crate) fn start(cost: Cost, media: MediaReader, back: Back) -> Effects {
        let (jobs, queue) = mpsc::channel::<(EffectId, Effect)>();
        let queue = Arc::new(Mutex::new(queue));
        let threads = thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, MAX_EFFECT_THREADS);
        for i in 0..threads {
            let (queue, back, cost) = (queue.clone(), back.clone(), cost.clone());
            let media = media.clone();
            let spawned = thread::Builder::new()
                .name(format!("switchboard-effect-{i}"))
                .spawn(move || effect_loop(&queue, &back, &cost, &media));
            if let Err(e) = spawned {
                warn!(error = %e, "cannot start an effect thread");
            }
        }
        Effects { jobs }
    }

    /// Queues an effect for the pool.
    pub(crate) fn run(&self, id: EffectId, effect: Effect) {
        let _ = self.jobs.send((id, effect));
    }
}

fn effect_loop(
    queue: &Mutex<Receiver<(EffectId, Effect)>>,
    back: &Back,
    cost: &Cost,
    media: &MediaReader,
) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok((id, effect)) = job else { return };
        let result = match effect {
            Effect::ReadMedia { id: media_id } => media.read(id, media_id),
            effect => credentials::try_run_effect_with(cost, &effect).unwrap_or_else(|e| {
                warn!(effect = id.0, error = %error_chain(&e), "effect failed");
                EffectResult::Failed
            }),
        };
        back.send(Done::Effect(id, result));
    }
}
