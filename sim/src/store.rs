//! The store model: durable state is the committed transactions and nothing else.
//!
//! Each boot of the server numbers its `Persist` outputs from 1. The model keeps this
//! boot's changes in order and commits the batches the server's
//! [`Pump`](switchboard_proto::Pump) asks for (group commit: whatever accumulated while the
//! previous commit ran) after a random latency, and sometimes fails a commit for a while;
//! the pump asks for the same batch again after its backoff until it lands. A crash loses
//! every change not committed; a crash while a batch is in flight either lands the whole
//! batch (durable, but its acknowledgements never leave) or none of it.

use switchboard_proto::{Change, Seq, State};

/// What the store holds and what it is doing.
#[derive(Debug, Default)]
pub(crate) struct StoreModel {
    /// Everything committed, over all boots.
    pub(crate) committed: State,
    /// This boot's changes, `Seq(n)` at index `n - 1`.
    pub(crate) boot_log: Vec<Change>,
    /// This boot's changes committed so far.
    pub(crate) committed_through: Seq,
    /// The batch being committed: everything through this sequence number.
    pub(crate) inflight: Option<Seq>,
    /// The last commit attempt failed and the server was told.
    pub(crate) failing: bool,
    /// Transactions committed, over all boots.
    pub(crate) commits: u64,
    /// The bytes of committed media, kept apart from `committed` as the real store does.
    pub(crate) blobs: std::collections::BTreeMap<switchboard_proto::MediaId, bytes::Bytes>,
}

impl StoreModel {
    /// The change persisted as `seq` in this boot, if any.
    pub(crate) fn change(&self, seq: Seq) -> Option<&Change> {
        let i = usize::try_from(seq.0).ok()?.checked_sub(1)?;
        self.boot_log.get(i)
    }

    /// Records a `Persist` output; `Err` if its sequence number is not the next one.
    pub(crate) fn persist(&mut self, seq: Seq, change: Change) -> Result<(), String> {
        let want = self.boot_log.len() as u64 + 1;
        if seq.0 != want {
            return Err(format!("persist #{} out of order: expected #{want}", seq.0));
        }
        self.boot_log.push(change);
        Ok(())
    }

    /// Starts committing the batch of everything after the last commit through
    /// `through`, as the pump asked.
    pub(crate) fn begin(&mut self, through: Seq) {
        debug_assert!(self.inflight.is_none(), "one commit at a time");
        debug_assert!(through.0 <= self.boot_log.len() as u64);
        self.inflight = Some(through);
    }

    /// The in-flight batch lands: applies it and returns its changes in order.
    pub(crate) fn land(&mut self) -> Vec<Change> {
        let Some(through) = self.inflight.take() else {
            return Vec::new();
        };
        let from = self.committed_through.0 as usize;
        let batch: Vec<Change> = self.boot_log[from..through.0 as usize].to_vec();
        for change in &batch {
            self.committed.apply(change);
            if let Change::MediaStored { id, bytes, .. } = change {
                self.blobs.insert(*id, bytes.0.clone());
            }
        }
        let media = &self.committed.media;
        self.blobs.retain(|id, _| media.contains_key(id));
        self.committed_through = through;
        self.failing = false;
        self.commits += 1;
        batch
    }

    /// The server crashed: this boot's uncommitted changes are gone.
    pub(crate) fn crash(&mut self) {
        self.boot_log.clear();
        self.committed_through = Seq(0);
        self.inflight = None;
        self.failing = false;
    }

    /// The sequence number of this boot's last persisted change (0 before the first).
    pub(crate) fn persisted(&self) -> Seq {
        Seq(self.boot_log.len() as u64)
    }

    /// Changes persisted and not yet committed.
    pub(crate) fn uncommitted(&self) -> u64 {
        self.boot_log.len() as u64 - self.committed_through.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{IpAddr, Ipv4Addr};

    fn ban(n: u8) -> Change {
        Change::IpBanned(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)))
    }

    #[test]
    fn only_committed_batches_survive_a_crash() {
        let mut s = StoreModel::default();
        s.persist(Seq(1), ban(1)).unwrap();
        s.persist(Seq(2), ban(2)).unwrap();
        s.begin(Seq(2));
        s.persist(Seq(3), ban(3)).unwrap();
        assert_eq!(s.land(), vec![ban(1), ban(2)]);
        s.begin(Seq(3));
        s.crash();
        assert_eq!(s.committed.ip_bans.len(), 2);
        assert_eq!(s.uncommitted(), 0);
        assert!(
            s.persist(Seq(2), ban(4)).is_err(),
            "each boot counts from 1"
        );
        assert!(s.persist(Seq(1), ban(4)).is_ok());
        assert_eq!(s.change(Seq(1)), Some(&ban(4)));
        assert_eq!(s.change(Seq(0)), None);
    }
}
