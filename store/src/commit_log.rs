//! The runtime's half of group commit, shared by every runtime: the
//! [`switchboard_proto::Pump`] decides what to commit and when (one batch in flight
//! while the next gathers, the same batch again after a capped backoff when it failed); a
//! runtime runs each batch it is handed in one transaction off its loop (smol's blocking
//! pool, mio's committer thread), and hands the attempt to [`CommitLog`], which tells the
//! pump how it went, counts it in the metrics, logs each batch at debug and a run of
//! failures once when it starts and once when it ends.

use std::time::Instant;

use switchboard_proto::{Batch, Pump};
use tracing::{debug, error, info};

use crate::clock::Clock;
use crate::observe::Observer;
use crate::start::error_chain;
use crate::StoreError;

/// A run of failed attempts, logged once when it starts and once when it ends.
#[derive(Debug)]
struct Failing {
    since: Instant,
    attempts: u32,
}

/// What a finished attempt meant for the pump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything through the batch's `through` is durable.
    Committed,
    /// The batch failed and went back to the pump, which asks for it again after its
    /// backoff; the text names the cause.
    Failed(String),
}

/// The runtime's record of the commit in flight and of a run of failures. See the
/// module's documentation.
#[derive(Debug, Default)]
pub struct CommitLog {
    /// The size of the batch at the committer and when it was handed over.
    started: Option<(usize, Instant)>,
    failing: Option<Failing>,
}

impl CommitLog {
    /// `batch` is handed to the committer now.
    pub fn started(&mut self, batch: &Batch) {
        self.started = Some((batch.changes.len(), Instant::now()));
    }

    /// The attempt at `batch` ended with `result`: logs it, counts a commit in `observer`,
    /// and tells `pump` (which releases what waited on it, or keeps the batch for a retry).
    /// The caller then carries out the pump's actions.
    pub fn finished(
        &mut self,
        batch: Batch,
        result: Result<(), StoreError>,
        pump: &mut Pump,
        clock: &Clock,
        observer: &mut Observer,
    ) -> Outcome {
        let started = self.started.take();
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
                if let Some((changes, at)) = started {
                    observer.committed(changes, at.elapsed());
                }
                pump.commit_finished(clock.now());
                debug_assert_eq!(pump.server().committed(), batch.through);
                Outcome::Committed
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
                            since: Instant::now(),
                            attempts: 1,
                        });
                    }
                    Some(failing) => {
                        failing.attempts += 1;
                        debug!(error = %cause, attempts = failing.attempts, "commit failed again");
                    }
                }
                pump.commit_failed(clock.now(), batch, cause.clone());
                Outcome::Failed(cause)
            }
        }
    }
}
