//! Group commit: the core's `Persist` outputs accumulate into a batch; one batch at a time
//! is committed on smol's blocking pool, while the next accumulates; a failed batch is
//! retried, alone and unchanged, with a capped backoff until it succeeds.

use std::time::Duration;

use smol::future;
use smol::{LocalExecutor, Task, Timer};
use switchboard_proto::{Change, Seq};
use switchboard_store::start::error_chain;
use switchboard_store::{Store, StoreError};
use tracing::{debug, error, info};

/// The first retry of a failed batch waits this long; each further one twice as long.
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest wait between retries.
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Changes committed together, in order.
struct Batch {
    /// The sequence number of the last change.
    through: Seq,
    changes: Vec<Change>,
}

/// A finished commit attempt, bringing the store back.
pub(crate) struct Attempt {
    store: Store,
    batch: Batch,
    result: Result<(), StoreError>,
}

/// What a finished attempt means for the core.
pub(crate) enum Outcome {
    /// Everything through `through` is durable.
    Committed { through: Seq },
    /// The batch failed and will be retried; `error` names the cause.
    Failed { error: String },
}

/// A run of failed attempts, logged once when it starts and once when it ends.
struct Failing {
    since: std::time::Instant,
    attempts: u32,
}

/// The runtime's side of the store: the batch being built and the attempt in flight.
pub(crate) struct Committer {
    /// `None` while an attempt has it.
    store: Option<Store>,
    in_flight: Option<Task<Attempt>>,
    /// Changes in the batch in flight.
    in_flight_len: usize,
    /// Changes for the next batch.
    pending: Vec<Change>,
    pending_through: Seq,
    failing: Option<Failing>,
    /// The wait before the next retry.
    backoff: Duration,
}

impl Committer {
    pub(crate) fn new(store: Store) -> Committer {
        Committer {
            store: Some(store),
            in_flight: None,
            in_flight_len: 0,
            pending: Vec::new(),
            pending_through: Seq::default(),
            failing: None,
            backoff: FIRST_RETRY,
        }
    }

    /// Adds a change to the next batch. Changes come in sequence order.
    pub(crate) fn push(&mut self, seq: Seq, change: Change) {
        debug_assert!(seq > self.pending_through, "persist out of order");
        self.pending.push(change);
        self.pending_through = seq;
    }

    /// Starts committing the pending changes unless an attempt is in flight.
    pub(crate) fn start(&mut self, ex: &LocalExecutor<'_>) {
        if self.in_flight.is_some() || self.pending.is_empty() {
            return;
        }
        let Some(store) = self.store.take() else {
            return;
        };
        let batch = Batch {
            through: self.pending_through,
            changes: std::mem::take(&mut self.pending),
        };
        self.in_flight_len = batch.changes.len();
        self.in_flight = Some(spawn_attempt(ex, store, batch, None));
    }

    /// Whether anything is in flight or waiting to be committed.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight.is_some() || !self.pending.is_empty()
    }

    /// Changes not yet committed: in flight or waiting.
    pub(crate) fn uncommitted(&self) -> usize {
        self.pending.len() + self.in_flight.as_ref().map_or(0, |_| self.in_flight_len)
    }

    /// Completes when the attempt in flight finishes; never, when none is.
    pub(crate) async fn finished(&mut self) -> Attempt {
        match self.in_flight.as_mut() {
            Some(task) => task.await,
            None => future::pending().await,
        }
    }

    /// Takes a finished attempt back: logs, schedules a retry of a failed batch, and says
    /// what the core must be told. Call [`start`](Self::start) afterwards for the next batch.
    pub(crate) fn finish(&mut self, ex: &LocalExecutor<'_>, attempt: Attempt) -> Outcome {
        self.in_flight = None;
        let Attempt {
            store,
            batch,
            result,
        } = attempt;
        match result {
            Ok(()) => {
                self.store = Some(store);
                if let Some(failing) = self.failing.take() {
                    info!(
                        attempts = failing.attempts + 1,
                        after = ?failing.since.elapsed(),
                        "the store works again; the held batch is committed"
                    );
                }
                self.backoff = FIRST_RETRY;
                debug!(
                    changes = batch.changes.len(),
                    through = batch.through.0,
                    "committed"
                );
                Outcome::Committed {
                    through: batch.through,
                }
            }
            Err(e) => {
                let cause = error_chain(&e);
                match &mut self.failing {
                    None => {
                        error!(
                            error = %cause,
                            kind = ?e.kind(),
                            changes = batch.changes.len(),
                            "commit failed; retrying it, and refusing new durable requests \
                             until it succeeds"
                        );
                        self.failing = Some(Failing {
                            since: std::time::Instant::now(),
                            attempts: 1,
                        });
                    }
                    Some(failing) => {
                        failing.attempts += 1;
                        debug!(error = %cause, attempts = failing.attempts, "commit failed again");
                    }
                }
                let delay = self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_RETRY);
                self.in_flight = Some(spawn_attempt(ex, store, batch, Some(delay)));
                Outcome::Failed { error: cause }
            }
        }
    }
}

/// Commits `batch` on the blocking pool, after `delay` if given.
fn spawn_attempt(
    ex: &LocalExecutor<'_>,
    mut store: Store,
    batch: Batch,
    delay: Option<Duration>,
) -> Task<Attempt> {
    ex.spawn(async move {
        if let Some(delay) = delay {
            Timer::after(delay).await;
        }
        smol::unblock(move || {
            let result = store.commit(&batch.changes);
            Attempt {
                store,
                batch,
                result,
            }
        })
        .await
    })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn ban(n: u8) -> Change {
        Change::IpBanned(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)))
    }

    /// Awaits the attempt in flight and returns what it reports.
    async fn next(committer: &mut Committer, ex: &LocalExecutor<'_>) -> Option<Seq> {
        let attempt = committer.finished().await;
        match committer.finish(ex, attempt) {
            Outcome::Committed { through } => Some(through),
            Outcome::Failed { .. } => None,
        }
    }

    /// A batch reports exactly its own last change: not the first change of the next batch
    /// (which would release its acknowledgement one change early), not the changes that
    /// gathered meanwhile, not the batch before.
    #[test]
    fn each_commit_reports_exactly_the_last_change_of_its_batch() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Store::open(dir.path()).expect("open the store");
        let ex = LocalExecutor::new();
        smol::block_on(ex.run(async {
            let mut committer = Committer::new(store);
            committer.push(Seq(1), ban(1));
            committer.start(&ex);
            // These gather for the next batch while the first is in flight.
            committer.push(Seq(2), ban(2));
            committer.push(Seq(3), ban(3));
            committer.start(&ex);
            assert_eq!(committer.uncommitted(), 3);
            assert_eq!(next(&mut committer, &ex).await, Some(Seq(1)));
            assert_eq!(committer.uncommitted(), 2);
            committer.start(&ex);
            committer.push(Seq(4), ban(4));
            assert_eq!(next(&mut committer, &ex).await, Some(Seq(3)));
            assert_eq!(committer.uncommitted(), 1);
            committer.start(&ex);
            assert_eq!(next(&mut committer, &ex).await, Some(Seq(4)));
            committer.start(&ex);
            assert!(!committer.busy());
        }));
        let state = Store::open(dir.path())
            .and_then(|store| store.load())
            .expect("load the store");
        assert_eq!(state.ip_bans.len(), 4);
    }
}
