//! The ordered output queue and what the server knows of each connection's transport:
//! bytes sent but not yet written, and whether it is closing.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::conns::{Conn, Slot, Table};
use crate::effect::Effect;
use crate::ids::{ConnId, EffectId, Seq};
use crate::io::{CloseReason, Output};
use crate::model::OutputCount;
use crate::persist::Change;

/// What the outbox knows of one connection's transport, kept in its record of the
/// connection [`Table`].
#[derive(Debug, Default)]
pub(crate) struct Link {
    /// Transmitted bytes the runtime has not yet reported written.
    unwritten: usize,
    /// Set once the connection is to close; nothing more is sent on it.
    closing: bool,
    /// The highest sequence number a transmit on it waited for.
    waits_for: Seq,
    /// Bytes queued for it since it opened: the offset just past the last transmit.
    sent: u64,
    /// Bytes the runtime reported written since it opened.
    written: u64,
}

impl Link {
    /// Whether the connection is open (not closing).
    pub(crate) fn is_open(&self) -> bool {
        !self.closing
    }

    /// Bytes sent and not yet reported written.
    pub(crate) fn unwritten(&self) -> usize {
        self.unwritten
    }

    /// The offset just past the last bytes queued on it: once [`Link::written`] reaches
    /// it, the runtime has written them.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// Bytes reported written since it opened.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }
}

/// One FIFO of outputs, plus the totals over the connections' [`Link`]s.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: VecDeque<Output>,
    /// Outputs queued so far, shared with the model's event journal.
    pushed: OutputCount,
    /// Outputs taken so far: the number of the next one.
    popped: u64,
    /// Connections to close, in the order they were marked; `None` when the peer is
    /// already gone and no `Close` output is needed.
    closing: VecDeque<(ConnId, Option<CloseReason>)>,
    limit: usize,
    /// Most unwritten bytes over all open links together.
    budget: usize,
    /// Unwritten bytes over all links not closing: what the runtime holds in memory for
    /// peers that will still get it.
    total: usize,
    /// The last sequence number handed out.
    seq: Seq,
    /// The highest sequence number reported committed.
    committed: Seq,
    next_effect: u64,
    /// Which connection asked for each running effect.
    effects: BTreeMap<EffectId, ConnId>,
}

impl Outbox {
    /// A new budget of all links together (a reload): it applies from the next transmit.
    pub(crate) fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
    }

    pub(crate) fn new(limit: usize, budget: usize) -> Self {
        Outbox {
            limit,
            budget,
            ..Outbox::default()
        }
    }

    /// Queues `bytes` for the connection in `slot`, held until `after` is committed if
    /// given. Past the outbound limit the connection is marked to close as a slow reader
    /// and the bytes are dropped. Past the budget of all links together, the largest
    /// queues are.
    pub(crate) fn transmit(
        &mut self,
        conns: &mut Table,
        slot: Slot,
        bytes: Bytes,
        after: Option<Seq>,
    ) {
        let Some(conn) = conns.at_mut(slot) else {
            return;
        };
        let link = &mut conn.link;
        if link.closing || bytes.is_empty() {
            return;
        }
        link.waits_for = link.waits_for.max(after.unwrap_or_default());
        if link.unwritten + bytes.len() > self.limit {
            link.closing = true;
            self.total -= link.unwritten;
            self.closing
                .push_back((conn.id, Some(CloseReason::SlowReader)));
            return;
        }
        link.unwritten += bytes.len();
        link.sent += bytes.len() as u64;
        self.total += bytes.len();
        self.push(Output::Transmit {
            conn: conn.id,
            bytes,
            after,
        });
        if self.total > self.budget {
            self.shed(conns);
        }
    }

    /// Whether the connection in `slot` has room for `len` more bytes under its outbound
    /// limit and under the budget of all links. Without room under its limit it is marked
    /// to close as a slow reader; near the budget the largest queues are shed first
    /// (which may close it). A session asks before a request takes effect, with the
    /// length of the reply, so no request takes effect whose own reply would then close
    /// its connection.
    pub(crate) fn room_for(&mut self, conns: &mut Table, slot: Slot, len: usize) -> bool {
        let Some(conn) = conns.at_mut(slot) else {
            return false;
        };
        if conn.link.closing {
            return false;
        }
        if conn.link.unwritten + len > self.limit {
            self.close(conn, Some(CloseReason::SlowReader));
            return false;
        }
        if self.total + len > self.budget {
            self.shed(conns);
        }
        conns.at(slot).is_some_and(|c| c.link.is_open())
    }

    /// Closes the links with the largest queues as slow readers until a quarter of the
    /// budget is free. One walk over the links frees at least a quarter of the budget,
    /// which that many bytes of transmits had to fill first: the walk's cost is
    /// amortised over them, and no transmit pays for an ordered index.
    fn shed(&mut self, conns: &mut Table) {
        let target = self.budget - self.budget / 4;
        let mut largest: Vec<(usize, ConnId)> = (conns.iter())
            .filter(|c| !c.link.closing && c.link.unwritten > 0)
            .map(|c| (c.link.unwritten, c.id))
            .collect();
        // Largest first; ties by id, so the choice does not depend on the table's order.
        largest.sort_unstable_by(|a, b| b.cmp(a));
        for (_, id) in largest {
            if self.total <= target {
                break;
            }
            if let Some(conn) = conns.get_mut(id) {
                self.close(conn, Some(CloseReason::SlowReader));
            }
        }
    }

    /// Queues the request for an outbound connection `conn` to `addr`.
    pub(crate) fn connect(&mut self, conn: ConnId, addr: core::net::SocketAddr) {
        self.push(Output::Connect { conn, addr });
    }

    /// The sequence number the next durable change gets.
    pub(crate) fn next_seq(&self) -> Seq {
        Seq(self.seq.0 + 1)
    }

    /// Queues durable change `seq`, which must be [`next_seq`](Self::next_seq).
    pub(crate) fn persist(&mut self, seq: Seq, change: Change) {
        debug_assert_eq!(seq, self.next_seq());
        self.seq = seq;
        self.push(Output::Persist {
            seq,
            change: Box::new(change),
        });
    }

    /// Everything through `through` is committed.
    pub(crate) fn committed(&mut self, through: Seq) {
        self.committed = self.committed.max(through);
    }

    /// The highest sequence number reported committed.
    pub(crate) fn committed_through(&self) -> Seq {
        self.committed
    }

    /// Whether output of `conn` waits for a change not yet committed.
    pub(crate) fn held(&self, link: &Link) -> bool {
        link.waits_for > self.committed
    }

    /// Queues an effect for `conn`; its result goes back to that connection.
    pub(crate) fn effect(&mut self, conn: ConnId, effect: Effect) -> EffectId {
        let id = EffectId(self.next_effect);
        self.next_effect += 1;
        self.effects.insert(id, conn);
        self.push(Output::Effect { id, effect });
        id
    }

    /// The connection that asked for effect `id`, forgetting the effect.
    pub(crate) fn effect_done(&mut self, id: EffectId) -> Option<ConnId> {
        self.effects.remove(&id)
    }

    /// Effects running.
    pub(crate) fn running_effects(&self) -> usize {
        self.effects.len()
    }

    pub(crate) fn written(&mut self, link: &mut Link, n: usize) {
        let n = n.min(link.unwritten);
        link.unwritten -= n;
        link.written += n as u64;
        if !link.closing {
            self.total -= n;
        }
    }

    /// Marks `conn` to close; `None` when the peer already closed it. Its unwritten
    /// bytes leave the budget: the runtime drops them or writes them out at the close.
    pub(crate) fn close(&mut self, conn: &mut Conn, reason: Option<CloseReason>) {
        let link = &mut conn.link;
        if !link.closing {
            link.closing = true;
            self.total -= link.unwritten;
            self.closing.push_back((conn.id, reason));
        }
    }

    /// The next connection marked to close, to be torn down by the server.
    pub(crate) fn next_closing(&mut self) -> Option<(ConnId, Option<CloseReason>)> {
        self.closing.pop_front()
    }

    /// Queues the `Close` output of a connection torn down (and removed from the table).
    pub(crate) fn finish_close(&mut self, conn: ConnId, reason: Option<CloseReason>) {
        if let Some(reason) = reason {
            self.push(Output::Close { conn, reason });
        }
    }

    pub(crate) fn pop(&mut self) -> Option<Output> {
        let output = self.queue.pop_front()?;
        self.popped += 1;
        Some(output)
    }

    /// The number (from 0) of the next output [`pop`](Self::pop) returns.
    /// Pops the next output if it is a transmit that waits for nothing later than
    /// `committed`: the hot path of a drain, which moves only the connection and the bytes
    /// instead of a whole [`Output`] through each step.
    pub(crate) fn pop_ready_transmit(&mut self, committed: Seq) -> Option<(ConnId, Bytes)> {
        match self.queue.front() {
            Some(Output::Transmit { after, .. }) if after.is_none_or(|seq| seq <= committed) => {}
            _ => return None,
        }
        let Some(Output::Transmit { conn, bytes, .. }) = self.queue.pop_front() else {
            return None;
        };
        self.popped += 1;
        Some((conn, bytes))
    }

    pub(crate) fn popped(&self) -> u64 {
        self.popped
    }

    /// The count of queued outputs, for the model's event journal.
    pub(crate) fn output_count(&self) -> OutputCount {
        self.pushed.clone()
    }

    fn push(&mut self, output: Output) {
        self.pushed.bump();
        self.queue.push_back(output);
    }

    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Unwritten bytes over all connections that are not closing.
    pub(crate) fn total_unwritten(&self, _conns: &Table) -> usize {
        #[cfg(test)]
        {
            let open = _conns.iter().filter(|c| !c.link.closing);
            debug_assert_eq!(self.total, open.map(|c| c.link.unwritten).sum::<usize>());
        }
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transmit(conn: u64, text: &'static str, after: Option<u64>) -> Output {
        Output::Transmit {
            conn: ConnId(conn),
            bytes: Bytes::from_static(text.as_bytes()),
            after: after.map(Seq),
        }
    }

    #[test]
    fn only_a_transmit_whose_commit_is_through_is_ready() {
        let mut out = Outbox::new(usize::MAX, usize::MAX);
        out.push(transmit(1, "stored", Some(2)));
        assert_eq!(
            out.pop_ready_transmit(Seq(1)),
            None,
            "its commit is not through"
        );
        assert_eq!(out.queued(), 1);
        let stored = (ConnId(1), Bytes::from_static(b"stored"));
        assert_eq!(out.pop_ready_transmit(Seq(2)), Some(stored));
        out.push(Output::Close {
            conn: ConnId(1),
            reason: CloseReason::Quit,
        });
        out.push(transmit(2, "after the close", None));
        assert_eq!(out.pop_ready_transmit(Seq(2)), None, "not a transmit");
        assert_eq!(out.popped(), 1);
        assert!(matches!(out.pop(), Some(Output::Close { .. })));
        let next = (ConnId(2), Bytes::from_static(b"after the close"));
        assert_eq!(out.pop_ready_transmit(Seq(0)), Some(next));
    }
}
