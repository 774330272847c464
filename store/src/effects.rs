//! The effect pool both runtimes run the core's [`Effect`]s on: a few threads beside the
//! event loop, taking effects in the order they were asked for from one queue. Password
//! hashes and checks are CPU-bound and take 19 MiB each at the recommended cost, and media
//! reads share one store connection, so the threads are few and fixed: a flood of logins
//! or media requests waits its turn in the queue (a few bytes each, at most one per
//! connection) instead of taking a thread and a hash's memory each.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use switchboard_proto::{Effect, EffectId, EffectResult};
use tracing::warn;

use crate::credentials::{self, Cost};
use crate::media_reader::MediaReader;
use crate::start::error_chain;

/// Threads at most, however many cores: each running hash holds 19 MiB.
pub const MAX_THREADS: usize = 4;

/// Threads at least, so one slow hash does not hold up everything behind it.
const MIN_THREADS: usize = 2;

/// The running pool. Dropping it lets its threads end once the effect each one runs is
/// done; effects still queued are dropped unrun (their connections are closing).
pub struct EffectPool {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when an effect is queued or the pool is dropped.
    ready: Condvar,
}

struct Queue {
    jobs: VecDeque<(EffectId, Effect)>,
    closed: bool,
}

/// What the threads do with each finished effect: hand it to the loop and wake it.
pub type Done = dyn Fn(EffectId, EffectResult) + Send + Sync;

impl EffectPool {
    /// Starts one thread per core (at least 2, at most [`MAX_THREADS`]) that hash at
    /// `cost`, read media with `media`, and give each result to `done`. An error only if
    /// no thread at all could be started: effects would then wait forever.
    pub fn start(cost: Cost, media: MediaReader, done: Arc<Done>) -> io::Result<EffectPool> {
        let threads = thread::available_parallelism()
            .map_or(MIN_THREADS, |n| n.get())
            .clamp(MIN_THREADS, MAX_THREADS);
        EffectPool::with_threads(threads, cost, media, done)
    }

    fn with_threads(
        threads: usize,
        cost: Cost,
        media: MediaReader,
        done: Arc<Done>,
    ) -> io::Result<EffectPool> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
        });
        let mut started = 0;
        let mut failure = None;
        for i in 0..threads {
            let worker = Worker {
                shared: shared.clone(),
                cost: cost.clone(),
                media: media.clone(),
                done: done.clone(),
            };
            let spawned = thread::Builder::new()
                .name(format!("switchboard-effect-{i}"))
                .spawn(move || worker.run());
            match spawned {
                Ok(_) => started += 1,
                Err(e) => {
                    warn!(error = %e, "cannot start an effect thread");
                    failure = Some(e);
                }
            }
        }
        match (started, failure) {
            (0, Some(e)) => Err(e),
            _ => Ok(EffectPool { shared }),
        }
    }

    /// Queues `effect`; its result goes to the pool's `done` as `id`.
    pub fn run(&self, id: EffectId, effect: Effect) {
        self.shared.lock().jobs.push_back((id, effect));
        self.shared.ready.notify_one();
    }
}

impl Drop for EffectPool {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.closed = true;
        queue.jobs.clear();
        drop(queue);
        self.shared.ready.notify_all();
    }
}

impl Shared {
    /// The queue, even if a thread panicked holding it: it holds only plain data.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One of the pool's threads.
struct Worker {
    shared: Arc<Shared>,
    cost: Cost,
    media: MediaReader,
    done: Arc<Done>,
}

impl Worker {
    fn run(self) {
        while let Some((id, effect)) = self.next() {
            let result = match effect {
                Effect::ReadMedia { id: media } => self.media.read(id, media),
                effect => {
                    credentials::try_run_effect_with(&self.cost, &effect).unwrap_or_else(|e| {
                        warn!(effect = id.0, error = %error_chain(&e), "effect failed");
                        EffectResult::Failed
                    })
                }
            };
            (self.done)(id, result);
        }
    }

    /// The next effect to run, waiting for one; `None` once the pool is dropped.
    fn next(&self) -> Option<(EffectId, Effect)> {
        let mut queue = self.shared.lock();
        loop {
            if queue.closed {
                return None;
            }
            if let Some(job) = queue.jobs.pop_front() {
                return Some(job);
            }
            queue = (self.shared.ready)
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;
    use switchboard_proto::{PasswordHash, Secret};

    fn media() -> MediaReader {
        MediaReader::new(std::env::temp_dir().join("switchboard-no-such-dir"))
    }

    fn verify(hash: &str) -> Effect {
        Effect::VerifyPassword {
            hash: PasswordHash(hash.to_owned()),
            password: Secret("pw".to_owned()),
        }
    }

    #[test]
    fn every_effect_is_answered_once_under_its_own_id() {
        let (hash, _) = credentials::hash_password_with(&Cost::cheap(), "pw").expect("a hash");
        let hash = hash.0;
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let done: Arc<Done> = Arc::new(move |id, result| {
            let _ = tx.lock().expect("sender").send((id, result));
        });
        let pool = EffectPool::start(Cost::cheap(), media(), done).expect("a pool");
        for i in 0..20 {
            let effect = if i % 2 == 0 {
                verify(&hash)
            } else {
                verify("not a hash")
            };
            pool.run(EffectId(i), effect);
        }
        let mut answers: Vec<_> = (0..20)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("an answer"))
            .collect();
        answers.sort_by_key(|(id, _)| id.0);
        for (i, (id, result)) in answers.into_iter().enumerate() {
            assert_eq!(id, EffectId(i as u64));
            let expected = match i % 2 {
                0 => EffectResult::Verified(true),
                _ => EffectResult::Failed,
            };
            assert_eq!(result, expected, "effect {i}");
        }
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
    }

    #[test]
    fn no_more_effects_run_at_once_than_the_pool_has_threads() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let (r, m) = (running.clone(), most.clone());
        // The hash of each effect is checked on a worker; `done` runs on that worker too,
        // so a slow `done` holds the worker the way a slow hash would.
        let done: Arc<Done> = Arc::new(move |id, _| {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(30));
            r.fetch_sub(1, Ordering::SeqCst);
            let _ = tx.lock().expect("sender").send(id);
        });
        let pool = EffectPool::with_threads(2, Cost::cheap(), media(), done).expect("a pool");
        for i in 0..6 {
            pool.run(EffectId(i), verify("not a hash"));
        }
        for _ in 0..6 {
            rx.recv_timeout(Duration::from_secs(10)).expect("an answer");
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(running.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_dropped_pool_runs_nothing_it_had_queued() {
        let ran = Arc::new(AtomicUsize::new(0));
        let (r, gate) = (ran.clone(), Arc::new(Mutex::new(())));
        let held = gate.lock().expect("gate");
        let g = gate.clone();
        let done: Arc<Done> = Arc::new(move |_, _| {
            drop(g.lock());
            r.fetch_add(1, Ordering::SeqCst);
        });
        let pool = EffectPool::with_threads(1, Cost::cheap(), media(), done).expect("a pool");
        for i in 0..5 {
            pool.run(EffectId(i), verify("not a hash"));
        }
        // The one thread holds the first effect (its `done` waits on the gate).
        thread::sleep(Duration::from_millis(100));
        drop(pool);
        drop(held);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }
}
