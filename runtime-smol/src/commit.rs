//! The runtime's half of group commit: the [`Pump`](switchboard_proto::Pump) decides what
//! to commit and when (one batch in flight while the next gathers, the same batch again
//! after a capped backoff when it failed); this committer runs each batch it is handed in
//! one transaction on smol's blocking pool and logs a run of failures once when it starts
//! and once when it ends.

use smol::future;
use smol::{LocalExecutor, Task};
use switchboard_proto::{Batch, Seq};
use switchboard_store::start::error_chain;
use switchboard_store::{Store, StoreError};
use tracing::{debug, error, info};

/// A finished commit attempt, bringing the store back.
pub(crate) struct Attempt {
    store: Store,
    batch: Batch,
    result: Result<(), StoreError>,
}

/// What a finished attempt means for the pump.
pub(crate) enum Outcome {
    /// Everything through `through` is durable.
    Committed { through: Seq },
    /// The batch failed; it goes back to the pump, which asks for it again after its
    /// backoff. `error` names the cause.
    Failed { batch: Batch, error: String },
}

/// A run of failed attempts, logged once when it starts and once when it ends.
struct Failing {
    since: std::time::Instant,
    attempts: u32,
}

/// The runtime's side of the store: the attempt in flight.
pub(crate) struct Committer {
    /// `None` while an attempt has it.
    store: Option<Store>,
    in_flight: Option<Task<Attempt>>,
    failing: Option<Failing>,
}

impl Committer {
    pub(crate) fn new(store: Store) -> Committer {
        Committer {
            store: Some(store),
            in_flight: None,
            failing: None,
        }
    }

    /// Starts committing `batch` (the pump never asks for two at once).
    pub(crate) fn start(&mut self, ex: &LocalExecutor<'_>, batch: Batch) {
        let Some(mut store) = self.store.take() else {
            debug_assert!(false, "a commit was asked for while one is in flight");
            return;
        };
        self.in_flight = Some(ex.spawn(smol::unblock(move || {
            let result = store.commit(&batch.changes);
            Attempt {
                store,
                batch,
                result,
            }
        })));
    }

    /// Whether an attempt is running.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Completes when the attempt in flight finishes; never, when none is.
    pub(crate) async fn finished(&mut self) -> Attempt {
        match self.in_flight.as_mut() {
            Some(task) => task.await,
            None => future::pending().await,
        }
    }

    /// Takes a finished attempt back, logs it, and says what the pump must be told.
    pub(crate) fn finish(&mut self, attempt: Attempt) -> Outcome {
        self.in_flight = None;
        let Attempt {
            store,
            batch,
            result,
        } = attempt;
        self.store = Some(store);
        match result {
            Ok(()) => {
                if let Some(failing) = self.failing.take() {
                    info!(
                        attempts = failing.attempts + 1,
                        after = ?failing.since.elapsed(),
                        "the store works again; the held batch is committed"
                    );
                }
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
                Outcome::Failed {
                    batch,
                    error: cause,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use switchboard_proto::Change;

    use super::*;

    fn ban(n: u8) -> Change {
        Change::IpBanned(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)))
    }

    /// Each attempt reports exactly the last change of the batch it was handed, and the
    /// store it used comes back for the next.
    #[test]
    fn each_commit_reports_exactly_the_last_change_of_its_batch() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Store::open(dir.path()).expect("open the store");
        let ex = LocalExecutor::new();
        smol::block_on(ex.run(async {
            let mut committer = Committer::new(store);
            for (through, changes) in [(1, vec![ban(1)]), (3, vec![ban(2), ban(3)])] {
                committer.start(
                    &ex,
                    Batch {
                        through: Seq(through),
                        changes,
                    },
                );
                assert!(committer.busy());
                let attempt = committer.finished().await;
                match committer.finish(attempt) {
                    Outcome::Committed { through: got } => assert_eq!(got, Seq(through)),
                    Outcome::Failed { error, .. } => panic!("commit failed: {error}"),
                }
                assert!(!committer.busy());
            }
        }));
        let state = Store::open(dir.path())
            .and_then(|store| store.load())
            .expect("load the store");
        assert_eq!(state.ip_bans.len(), 3);
    }
}
