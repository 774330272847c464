//! The runtime's half of group commit: the [`Pump`](switchboard_proto::Pump) decides what
//! to commit and when; this committer runs each batch it is handed in one transaction on
//! smol's blocking pool and gives the attempt back, for
//! [`CommitLog`](switchboard_store::commit_log::CommitLog) (shared with every runtime) to
//! log and report to the pump.

use smol::future;
use smol::{LocalExecutor, Task};
use switchboard_proto::Batch;
use switchboard_store::{Store, StoreError};

/// A finished commit attempt, bringing the store back.
pub(crate) struct Attempt {
    /// Boxed, so a finished attempt is small to move through the driver's wake-ups.
    store: Box<Store>,
    batch: Batch,
    result: Result<(), StoreError>,
}

/// The runtime's side of the store: the attempt in flight.
pub(crate) struct Committer {
    /// `None` while an attempt has it.
    store: Option<Box<Store>>,
    in_flight: Option<Task<Attempt>>,
}

impl Committer {
    pub(crate) fn new(store: Store) -> Committer {
        Committer {
            store: Some(Box::new(store)),
            in_flight: None,
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

    /// Takes a finished attempt back: the store is ready for the next batch; the batch
    /// and how its commit went are returned.
    pub(crate) fn finish(&mut self, attempt: Attempt) -> (Batch, Result<(), StoreError>) {
        self.in_flight = None;
        let Attempt {
            store,
            batch,
            result,
        } = attempt;
        self.store = Some(store);
        (batch, result)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use switchboard_proto::{Change, Seq};

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
                let (batch, result) = committer.finish(attempt);
                assert_eq!(batch.through, Seq(through));
                if let Err(e) = result {
                    panic!("commit failed: {e}");
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
