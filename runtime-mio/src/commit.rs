//! What a finished commit means for the pump, with the same logs as the smol runtime: each
//! batch at debug, a run of failures once when it starts and once when it ends.

use std::time::Instant;

use switchboard_proto::Batch;
use switchboard_store::start::error_chain;
use switchboard_store::StoreError;
use tracing::{debug, error, info};

/// A run of failed attempts.
#[derive(Default)]
pub(crate) struct Failures {
    since: Option<(Instant, u32)>,
}

impl Failures {
    /// Logs the attempt; `Err` gives the failed batch back with its cause, for the pump.
    pub(crate) fn finish(
        &mut self,
        batch: Batch,
        result: Result<(), StoreError>,
    ) -> Result<(), (Batch, String)> {
        match result {
            Ok(()) => {
                if let Some((since, attempts)) = self.since.take() {
                    info!(
                        attempts = attempts + 1,
                        after = ?since.elapsed(),
                        "the store works again; the held batch is committed"
                    );
                }
                debug!(
                    changes = batch.changes.len(),
                    through = batch.through.0,
                    "committed"
                );
                Ok(())
            }
            Err(e) => {
                let cause = error_chain(&e);
                match &mut self.since {
                    None => {
                        error!(
                            error = %cause,
                            kind = ?e.kind(),
                            changes = batch.changes.len(),
                            "commit failed; retrying it, and refusing new durable requests \
                             until it succeeds"
                        );
                        self.since = Some((Instant::now(), 1));
                    }
                    Some((_, attempts)) => {
                        *attempts += 1;
                        debug!(error = %cause, attempts = *attempts, "commit failed again");
                    }
                }
                Err((batch, cause))
            }
        }
    }
}
