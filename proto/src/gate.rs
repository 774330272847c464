//! [`CommitGate`]: the drive loop's rule for durable acknowledgements, written once for
//! every runtime, the simulator and tests.

use std::collections::{BTreeMap, VecDeque};

use crate::ids::{ConnId, Seq};
use crate::io::Output;

/// Holds back each [`Output::Transmit`] that waits on a change not yet committed, and
/// everything after it on the same connection (its [`Output::Close`] included), so a
/// client never sees an acknowledgement a crash could take back, and each connection's
/// bytes stay in order. Other connections' traffic passes at once.
///
/// `Persist` and `Effect` outputs pass through untouched.
#[derive(Debug, Default)]
pub struct CommitGate {
    committed: Seq,
    held: VecDeque<Output>,
    /// Held outputs per connection.
    blocked: BTreeMap<ConnId, usize>,
}

impl CommitGate {
    /// A gate with nothing committed yet.
    pub fn new() -> Self {
        CommitGate::default()
    }

    /// Returns `output` if it may be carried out now; otherwise keeps it for
    /// [`committed`](Self::committed) to release.
    pub fn admit(&mut self, output: Output) -> Option<Output> {
        let (conn, after) = match &output {
            Output::Transmit { conn, after, .. } => (*conn, *after),
            Output::Close { conn, .. } => (*conn, None),
            Output::Persist { .. } | Output::Effect { .. } | Output::Connect { .. } => {
                return Some(output)
            }
        };
        let waits = after.is_some_and(|seq| seq > self.committed);
        // Most traffic: nothing waits anywhere, and this output does not either.
        if !waits && self.blocked.is_empty() {
            return Some(output);
        }
        if waits || self.blocked.contains_key(&conn) {
            *self.blocked.entry(conn).or_default() += 1;
            self.held.push_back(output);
            return None;
        }
        Some(output)
    }

    /// Records that everything through `through` is committed and returns the outputs
    /// that may now go, in order.
    pub fn committed(&mut self, through: Seq) -> Vec<Output> {
        self.committed = self.committed.max(through);
        let mut released = Vec::new();
        let mut still_blocked: BTreeMap<ConnId, usize> = BTreeMap::new();
        for output in std::mem::take(&mut self.held) {
            let (conn, after) = match &output {
                Output::Transmit { conn, after, .. } => (*conn, *after),
                Output::Close { conn, .. } => (*conn, None),
                Output::Persist { .. } | Output::Effect { .. } | Output::Connect { .. } => {
                    released.push(output);
                    continue;
                }
            };
            if still_blocked.contains_key(&conn) || after.is_some_and(|seq| seq > self.committed) {
                *still_blocked.entry(conn).or_default() += 1;
                self.held.push_back(output);
            } else {
                released.push(output);
            }
        }
        self.blocked = still_blocked;
        released
    }

    /// Drops everything held for `conn` (it is gone).
    pub fn forget(&mut self, conn: ConnId) {
        if self.blocked.remove(&conn).is_some() {
            self.held.retain(|o| match o {
                Output::Transmit { conn: c, .. } | Output::Close { conn: c, .. } => *c != conn,
                _ => true,
            });
        }
    }

    /// Whether no connection has output held: a transmit then passes when its commit is
    /// through.
    pub(crate) fn holds_nothing(&self) -> bool {
        self.blocked.is_empty()
    }

    /// The highest committed sequence number seen.
    pub fn committed_through(&self) -> Seq {
        self.committed
    }

    /// How many outputs are held.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::CloseReason;
    use bytes::Bytes;

    fn tx(conn: u64, text: &'static str, after: Option<u64>) -> Output {
        Output::Transmit {
            conn: ConnId(conn),
            bytes: Bytes::from_static(text.as_bytes()),
            after: after.map(Seq),
        }
    }

    #[test]
    fn holds_only_what_waits_and_what_follows_it_on_the_same_connection() {
        let mut gate = CommitGate::new();
        assert_eq!(gate.admit(tx(1, "a", None)), Some(tx(1, "a", None)));
        assert_eq!(gate.admit(tx(1, "stored", Some(1))), None);
        assert_eq!(gate.admit(tx(1, "after", None)), None);
        let close = Output::Close {
            conn: ConnId(1),
            reason: CloseReason::Quit,
        };
        assert_eq!(gate.admit(close.clone()), None);
        // Another connection is not held up.
        assert_eq!(gate.admit(tx(2, "b", None)), Some(tx(2, "b", None)));
        assert_eq!(gate.admit(tx(2, "c", Some(2))), None);
        assert_eq!(gate.held(), 4);
        assert_eq!(
            gate.committed(Seq(1)),
            vec![tx(1, "stored", Some(1)), tx(1, "after", None), close]
        );
        assert_eq!(
            gate.admit(tx(1, "later", Some(1))),
            Some(tx(1, "later", Some(1)))
        );
        assert_eq!(gate.committed(Seq(2)), vec![tx(2, "c", Some(2))]);
        assert_eq!(gate.held(), 0);
    }

    #[test]
    fn forgetting_a_connection_drops_its_held_outputs() {
        let mut gate = CommitGate::new();
        assert_eq!(gate.admit(tx(1, "x", Some(1))), None);
        assert_eq!(gate.admit(tx(2, "y", Some(1))), None);
        gate.forget(ConnId(1));
        assert_eq!(gate.committed(Seq(1)), vec![tx(2, "y", Some(1))]);
        assert_eq!(gate.admit(tx(1, "z", None)), Some(tx(1, "z", None)));
    }
}
