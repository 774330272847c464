//! The ordered output queue and what the server knows of each connection's transport:
//! bytes sent but not yet written, and whether it is closing.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};

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
    /// The queue position (counted from the outbox's first entry) of its queued transmit
    /// that later small transmits join, plus one; 0 for none.
    open: u64,
    /// The runtime's batch (see [`Outbox::begin_batch`]) in which it was last sent
    /// anything, and how many bytes it was sent in that batch.
    batch: u64,
    batch_sent: usize,
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

/// A transmit of at most this many bytes joins its connection's transmit still queued, if
/// it has one: a connection gets one buffer per drain of the queue, not one per reply.
/// Longer ones (a media item, a long listing) keep their own `Bytes`, never copied.
const JOIN_MAX: usize = 512;

/// Bytes sent to all connections together in one batch of a runtime's inputs before it is
/// to write them: a burst of broadcasts (each login announced to everyone) is not held in
/// thousands of queues at once. Each write is one per connection, so a small bound makes a
/// login storm cost a write per connection per few logins: 1000 logins at once took 0.35 s
/// with 1 MiB and at most 64 inputs a batch, 0.16 s with 4 MiB and 1024 (relay 0.13 s).
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The first capacity of a transmit that later ones may join.
const JOIN_FIRST: usize = 256;

/// One entry of the outbox's FIFO.
#[derive(Debug)]
enum Queued {
    /// Bytes for `conn`, which later transmits to it of at most [`JOIN_MAX`] bytes, held
    /// for no later commit, join while it is queued.
    Open {
        conn: ConnId,
        chunk: Chunk,
        after: Option<Seq>,
        /// The number of the first output it holds.
        first: u64,
    },
    /// Any other output, and its number.
    Output(Output, u64),
}

/// The bytes of a transmit others may join.
#[derive(Debug)]
enum Chunk {
    /// As sent, not copied (a broadcast's one encoding, shared by its recipients): most
    /// connections get one line per drain, and it costs them a reference count only.
    Shared(Bytes),
    /// Its own buffer, once a second transmit joined or a reply was encoded into it.
    Own(BytesMut),
}

impl Chunk {
    /// Its own buffer, the shared bytes copied into one first.
    fn own(&mut self) -> &mut BytesMut {
        if let Chunk::Shared(shared) = self {
            *self = Chunk::Own(Chunk::copy(shared));
        }
        match self {
            Chunk::Own(own) => own,
            Chunk::Shared(_) => unreachable!("made its own above"),
        }
    }

    /// A buffer of its own for `shared` and what joins it: once per connection per
    /// batch, so kept out of the path of every transmit that joins.
    #[cold]
    fn copy(shared: &Bytes) -> BytesMut {
        let mut own = BytesMut::with_capacity(JOIN_FIRST.max(2 * shared.len()));
        own.extend_from_slice(shared);
        own
    }

    fn freeze(self) -> Bytes {
        match self {
            Chunk::Shared(bytes) => bytes,
            Chunk::Own(own) => own.freeze(),
        }
    }
}

/// Bytes a transmit takes: owned (moved into the queue) or shared by a broadcast's
/// recipients (referenced only when the queue must keep them whole).
trait Shareable {
    fn bytes(&self) -> &Bytes;
    fn share(self) -> Bytes;
}

impl Shareable for Bytes {
    fn bytes(&self) -> &Bytes {
        self
    }
    fn share(self) -> Bytes {
        self
    }
}

impl Shareable for &Bytes {
    fn bytes(&self) -> &Bytes {
        self
    }
    fn share(self) -> Bytes {
        self.clone()
    }
}

impl Queued {
    fn first(&self) -> u64 {
        match self {
            Queued::Open { first, .. } | Queued::Output(_, first) => *first,
        }
    }
}

/// One FIFO of outputs, plus the totals over the connections' [`Link`]s.
///
/// Consecutive small transmits to one connection share one queued transmit: the runtime
/// gets one `Bytes` per connection per drain, however many replies and deliveries it
/// holds. Numbered as the server produced them (each transmit its own output), so events
/// recorded between them keep their place.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: VecDeque<Queued>,
    /// Entries taken from `queue` so far: the position of its front.
    taken: u64,
    /// Outputs produced so far (each transmit one, joined or not), shared with the
    /// model's event journal.
    pushed: OutputCount,
    /// With a tap: a copy of every output as produced, before any joined another, for
    /// the simulator's oracles; and how many were taken.
    log: Option<VecDeque<Output>>,
    logged_taken: u64,
    /// Connections to close, in the order they were marked; `None` when the peer is
    /// already gone and no `Close` output is needed.
    closing: VecDeque<(ConnId, Option<CloseReason>)>,
    limit: usize,
    /// Most unwritten bytes over all open links together.
    budget: usize,
    /// The runtime's current batch of inputs, counted from 0, the most bytes any one link
    /// was sent in it, and the bytes all links were sent in it.
    batch: u64,
    batch_peak: usize,
    batch_total: usize,
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
        self.transmit_any(conns, slot, bytes, after);
    }

    /// [`transmit`](Self::transmit) of bytes shared by many recipients (a broadcast's one
    /// encoding): copied into the connection's queued transmit when they join one, and
    /// only referenced (a reference count) when they start one, so most recipients cost
    /// no count taken and dropped again.
    pub(crate) fn transmit_shared(
        &mut self,
        conns: &mut Table,
        slot: Slot,
        bytes: &Bytes,
        after: Option<Seq>,
    ) {
        self.transmit_any(conns, slot, bytes, after);
    }

    fn transmit_any(
        &mut self,
        conns: &mut Table,
        slot: Slot,
        bytes: impl Shareable,
        after: Option<Seq>,
    ) {
        let Some(conn) = conns.at_mut(slot) else {
            return;
        };
        let link = &mut conn.link;
        let len = bytes.bytes().len();
        if link.closing || len == 0 {
            return;
        }
        let id = conn.id;
        if !self.count(link, id, len, after) {
            return;
        }
        if let Some(log) = self.log.as_mut() {
            log.push_back(Output::Transmit {
                conn: id,
                bytes: bytes.bytes().clone(),
                after,
            });
        }
        if len > JOIN_MAX {
            link.open = 0;
            let number = self.pushed.get();
            self.pushed.bump();
            self.queue.push_back(Queued::Output(
                Output::Transmit {
                    conn: id,
                    bytes: bytes.share(),
                    after,
                },
                number,
            ));
        } else if let Some(at) = self.open_for(link, id, after) {
            if let Some(Queued::Open { chunk, .. }) = self.queue.get_mut(at) {
                // Most joins (a broadcast's line to a queue that has its own buffer
                // already) take the first arm, with no call.
                match chunk {
                    Chunk::Own(own) => own.extend_from_slice(bytes.bytes()),
                    Chunk::Shared(_) => chunk.own().extend_from_slice(bytes.bytes()),
                }
            }
            self.pushed.bump();
        } else {
            self.push_open(link, id, Chunk::Shared(bytes.share()), after);
        }
        if self.total > self.budget {
            self.shed(conns);
        }
    }

    /// Encodes bytes for the connection in `slot` straight into its queued transmit (a
    /// new one if it has none that may take them), held until `after` is committed if
    /// given: a reply costs no buffer of its own. Limits as [`transmit`](Self::transmit):
    /// past the outbound limit the bytes are taken back and the connection closes as a
    /// slow reader.
    pub(crate) fn transmit_with(
        &mut self,
        conns: &mut Table,
        slot: Slot,
        after: Option<Seq>,
        encode: impl FnOnce(&mut BytesMut),
    ) {
        let Some(conn) = conns.at_mut(slot) else {
            return;
        };
        let link = &mut conn.link;
        if link.closing {
            return;
        }
        let id = conn.id;
        let (at, fresh) = match self.open_for(link, id, after) {
            Some(at) => (at, false),
            None => {
                let own = Chunk::Own(BytesMut::with_capacity(JOIN_FIRST));
                // Numbered below, once it holds something.
                self.queue.push_back(Queued::Open {
                    conn: id,
                    chunk: own,
                    after,
                    first: self.pushed.get(),
                });
                link.open = self.taken + self.queue.len() as u64;
                (self.queue.len() - 1, true)
            }
        };
        let Some(Queued::Open { chunk, .. }) = self.queue.get_mut(at) else {
            return;
        };
        let bytes = chunk.own();
        let start = bytes.len();
        encode(bytes);
        let n = bytes.len() - start;
        let over = link.unwritten + n > self.limit;
        if n == 0 || over {
            bytes.truncate(start);
            if fresh {
                self.queue.pop_back();
                link.open = 0;
            }
            if over {
                self.count(link, id, n, after);
            }
            return;
        }
        if let Some(log) = self.log.as_mut() {
            log.push_back(Output::Transmit {
                conn: id,
                bytes: Bytes::copy_from_slice(&bytes[start..]),
                after,
            });
        }
        self.pushed.bump();
        self.count(link, id, n, after);
        if self.total > self.budget {
            self.shed(conns);
        }
    }

    /// Queues the `len` bytes `encode` appends for the connection in `slot`, as
    /// [`transmit`](Self::transmit) would queue them: encoded straight into its queued
    /// transmit when they may join one (at most [`JOIN_MAX`]), so they cost no buffer of
    /// their own; else into a buffer of exactly their length, never copied again.
    pub(crate) fn transmit_encoded(
        &mut self,
        conns: &mut Table,
        slot: Slot,
        after: Option<Seq>,
        len: usize,
        encode: impl FnOnce(&mut BytesMut),
    ) {
        if len <= JOIN_MAX {
            return self.transmit_with(conns, slot, after, encode);
        }
        let mut own = BytesMut::with_capacity(len);
        encode(&mut own);
        self.transmit(conns, slot, own.freeze(), after);
    }

    /// Counts `n` more bytes on `link` (of `conn`), held for `after`; past the outbound
    /// limit, marks it to close as a slow reader instead and returns false.
    fn count(&mut self, link: &mut Link, conn: ConnId, n: usize, after: Option<Seq>) -> bool {
        link.waits_for = link.waits_for.max(after.unwrap_or_default());
        if link.unwritten + n > self.limit {
            self.close_link(link, conn, Some(CloseReason::SlowReader));
            return false;
        }
        link.unwritten += n;
        link.sent += n as u64;
        self.total += n;
        if link.batch != self.batch {
            link.batch = self.batch;
            link.batch_sent = 0;
        }
        link.batch_sent += n;
        self.batch_peak = self.batch_peak.max(link.batch_sent);
        self.batch_total += n;
        true
    }

    /// The runtime is writing what was sent so far: a new batch of inputs begins.
    pub(crate) fn begin_batch(&mut self) {
        self.batch += 1;
        self.batch_peak = 0;
        self.batch_total = 0;
    }

    /// Whether the runtime should write before it takes more input: a link was sent a
    /// quarter of the outbound limit in this batch (so a peer that reads is never taken
    /// for a slow reader only because its bytes waited for the rest of a batch), or all
    /// links together [`BATCH_BYTES`].
    pub(crate) fn batch_full(&self) -> bool {
        self.batch_peak >= self.limit / 4 || self.batch_total >= BATCH_BYTES
    }

    /// The index in the queue of the transmit of `conn` that bytes held for `after` may
    /// join, if any: its connection's transmit still queued, if that is held for no
    /// earlier commit (the gate holds everything after a held transmit on its connection
    /// anyway, so joining it delays nothing).
    fn open_for(&self, link: &Link, conn: ConnId, after: Option<Seq>) -> Option<usize> {
        let queued = (link.open.checked_sub(1))
            .and_then(|pos| pos.checked_sub(self.taken))
            .and_then(|at| usize::try_from(at).ok());
        if let Some(at) = queued {
            if let Some(Queued::Open {
                conn: c,
                after: held,
                ..
            }) = self.queue.get(at)
            {
                if *c == conn && after <= *held {
                    return Some(at);
                }
            }
        }
        None
    }

    /// Queues a transmit of `conn` that later ones may join.
    fn push_open(&mut self, link: &mut Link, conn: ConnId, chunk: Chunk, after: Option<Seq>) {
        let first = self.pushed.get();
        self.pushed.bump();
        self.queue.push_back(Queued::Open {
            conn,
            chunk,
            after,
            first,
        });
        link.open = self.taken + self.queue.len() as u64;
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
        self.close_link(&mut conn.link, conn.id, reason);
    }

    fn close_link(&mut self, link: &mut Link, conn: ConnId, reason: Option<CloseReason>) {
        if !link.closing {
            link.closing = true;
            self.total -= link.unwritten;
            self.closing.push_back((conn, reason));
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
        let queued = self.queue.pop_front()?;
        self.taken += 1;
        Some(match queued {
            Queued::Open {
                conn, chunk, after, ..
            } => Output::Transmit {
                conn,
                bytes: chunk.freeze(),
                after,
            },
            Queued::Output(output, _) => output,
        })
    }

    /// Pops the next output if it is a transmit that waits for nothing later than
    /// `committed`: the hot path of a drain, which moves only the connection and the bytes
    /// instead of a whole [`Output`] through each step.
    pub(crate) fn pop_ready_transmit(&mut self, committed: Seq) -> Option<(ConnId, Bytes)> {
        let ready = |after: &Option<Seq>| after.is_none_or(|seq| seq <= committed);
        match self.queue.front() {
            Some(Queued::Open { after, .. }) if ready(after) => {}
            Some(Queued::Output(Output::Transmit { after, .. }, _)) if ready(after) => {}
            _ => return None,
        }
        let front = self.queue.pop_front()?;
        self.taken += 1;
        match front {
            Queued::Open { conn, chunk, .. } => Some((conn, chunk.freeze())),
            Queued::Output(Output::Transmit { conn, bytes, .. }, _) => Some((conn, bytes)),
            Queued::Output(..) => None,
        }
    }

    /// The number (from 0) of the next output as produced: of the next one
    /// [`pop_logged`](Self::pop_logged) returns with a log, else of the first one the
    /// next [`pop`](Self::pop) returns holds (or of the next one produced).
    pub(crate) fn popped(&self) -> u64 {
        if self.log.is_some() {
            return self.logged_taken;
        }
        self.queue.front().map_or(self.pushed.get(), Queued::first)
    }

    /// Keeps a copy of every output as produced from now on, for
    /// [`pop_logged`](Self::pop_logged).
    pub(crate) fn keep_log(&mut self) {
        self.log.get_or_insert_with(VecDeque::new);
        self.logged_taken = self.pushed.get();
    }

    /// With [`keep_log`](Self::keep_log): the next output as produced, before any
    /// transmit joined another.
    pub(crate) fn pop_logged(&mut self) -> Option<Output> {
        let output = self.log.as_mut()?.pop_front()?;
        self.logged_taken += 1;
        Some(output)
    }

    /// The count of queued outputs, for the model's event journal.
    pub(crate) fn output_count(&self) -> OutputCount {
        self.pushed.clone()
    }

    /// Queues an output other than a small transmit.
    fn push(&mut self, output: Output) {
        if let Some(log) = self.log.as_mut() {
            log.push_back(output.clone());
        }
        let number = self.pushed.get();
        self.pushed.bump();
        self.queue.push_back(Queued::Output(output, number));
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
    use crate::ids::Protocol;
    use crate::io::Peer;

    fn table(ids: &[u64]) -> Table {
        let mut table = Table::default();
        for &id in ids {
            table.insert(Conn {
                id: ConnId(id),
                peer: Peer::Local,
                protocol: Protocol::Admin,
                endpoint: None,
                link: Link::default(),
                limits: Default::default(),
                timer: None,
                drain: None,
                requests_handed: 0,
            });
        }
        table
    }

    fn send(out: &mut Outbox, t: &mut Table, id: u64, bytes: Bytes, after: Option<u64>) {
        let slot = t.slot(ConnId(id)).expect("open");
        out.transmit(t, slot, bytes, after.map(Seq));
    }

    fn text(out: &mut Outbox, t: &mut Table, id: u64, text: &'static str, after: Option<u64>) {
        send(out, t, id, Bytes::from_static(text.as_bytes()), after);
    }

    fn drained(out: &mut Outbox) -> Vec<(u64, String, Option<u64>)> {
        std::iter::from_fn(|| out.pop())
            .map(|o| match o {
                Output::Transmit { conn, bytes, after } => (
                    conn.0,
                    String::from_utf8_lossy(&bytes).into_owned(),
                    after.map(|s| s.0),
                ),
                other => (0, format!("{other:?}"), None),
            })
            .collect()
    }

    #[test]
    fn a_batch_is_full_once_one_connection_was_sent_a_quarter_of_its_limit() {
        let mut t = table(&[1, 2]);
        let mut out = Outbox::new(40, usize::MAX);
        // 9 bytes to each of two connections: 18 in all, but no one link has 10.
        text(&mut out, &mut t, 1, "123456789", None);
        text(&mut out, &mut t, 2, "123456789", None);
        assert!(!out.batch_full());
        text(&mut out, &mut t, 1, "0", None);
        assert!(
            out.batch_full(),
            "10 bytes to one connection, a quarter of 40"
        );
        // Written or not, a new batch counts from nothing.
        out.begin_batch();
        assert!(!out.batch_full());
        text(&mut out, &mut t, 2, "1", None);
        assert!(
            !out.batch_full(),
            "the last batch's 9 bytes are not counted"
        );
        text(&mut out, &mut t, 2, "123456789", None);
        assert!(out.batch_full());
    }

    #[test]
    fn a_batch_is_full_once_all_connections_together_were_sent_its_bound() {
        let mut t = table(&[1, 2]);
        let mut out = Outbox::new(usize::MAX, usize::MAX);
        let half = Bytes::from(vec![b'x'; BATCH_BYTES / 2]);
        send(&mut out, &mut t, 1, half.clone(), None);
        assert!(!out.batch_full());
        send(&mut out, &mut t, 2, half, None);
        assert!(out.batch_full());
    }

    #[test]
    fn small_transmits_to_one_connection_join_its_queued_one_in_order() {
        let mut t = table(&[1, 2]);
        let mut out = Outbox::new(usize::MAX, usize::MAX);
        text(&mut out, &mut t, 1, "a1 ", None);
        text(&mut out, &mut t, 2, "b1 ", None);
        out.persist(Seq(1), Change::IpUnbanned("10.0.0.1".parse().expect("ip")));
        text(&mut out, &mut t, 1, "a2 ", None);
        text(&mut out, &mut t, 2, "b2 ", None);
        assert_eq!(out.queued(), 3, "two transmits and the change");
        let got = drained(&mut out);
        assert_eq!(got[0], (1, "a1 a2 ".into(), None));
        assert_eq!(got[1], (2, "b1 b2 ".into(), None));
        assert!(got[2].1.starts_with("Persist"));
        // Once taken, a connection's transmit is joined no more: the next one starts anew,
        // and a lone one is not copied.
        let lone = Bytes::from(b"a3 ".to_vec());
        send(&mut out, &mut t, 1, lone.clone(), None);
        let taken = out.pop_ready_transmit(Seq(0)).map(|(_, b)| b.as_ptr());
        assert_eq!(taken, Some(lone.as_ptr()), "the same buffer");
        let link = &t.get(ConnId(1)).expect("open").link;
        assert_eq!((link.sent(), link.unwritten()), (9, 9));
    }

    #[test]
    fn a_transmit_held_for_a_later_commit_joins_nothing_before_it() {
        let mut t = table(&[1]);
        let mut out = Outbox::new(usize::MAX, usize::MAX);
        text(&mut out, &mut t, 1, "free ", None);
        text(&mut out, &mut t, 1, "held ", Some(3));
        // What follows a held transmit on its connection waits for it anyway: it joins.
        text(&mut out, &mut t, 1, "after ", None);
        text(&mut out, &mut t, 1, "earlier ", Some(2));
        text(&mut out, &mut t, 1, "later ", Some(4));
        assert_eq!(
            drained(&mut out),
            [
                (1, "free ".into(), None),
                (1, "held after earlier ".into(), Some(3)),
                (1, "later ".into(), Some(4)),
            ]
        );
    }

    #[test]
    fn a_long_transmit_is_shared_not_copied_and_ends_the_joining() {
        let mut t = table(&[1]);
        let mut out = Outbox::new(usize::MAX, usize::MAX);
        let long = Bytes::from(vec![b'x'; JOIN_MAX + 1]);
        text(&mut out, &mut t, 1, "before ", None);
        send(&mut out, &mut t, 1, long.clone(), None);
        text(&mut out, &mut t, 1, "after ", None);
        assert_eq!(
            out.pop_ready_transmit(Seq(0)).map(|(_, b)| b),
            Some("before ".into())
        );
        let (_, shared) = out.pop_ready_transmit(Seq(0)).expect("the long one");
        assert_eq!(shared.as_ptr(), long.as_ptr(), "the same buffer");
        assert_eq!(
            out.pop_ready_transmit(Seq(0)).map(|(_, b)| b),
            Some("after ".into())
        );
    }

    #[test]
    fn an_encoding_joins_as_its_bytes_would_and_a_long_one_goes_whole() {
        let mut t = table(&[1]);
        let mut out = Outbox::new(usize::MAX, usize::MAX);
        let one = t.slot(ConnId(1)).expect("open");
        let long = vec![b'x'; JOIN_MAX + 1];
        let mut copy = |out: &mut Outbox, bytes: &[u8], after: Option<Seq>| {
            out.transmit_encoded(&mut t, one, after, bytes.len(), |b| {
                b.extend_from_slice(bytes);
                if bytes.len() > JOIN_MAX {
                    assert_eq!(b.capacity(), b.len(), "a buffer of its exact length");
                }
            });
        };
        copy(&mut out, b"a ", None);
        copy(&mut out, b"b ", Some(Seq(2)));
        copy(&mut out, &long, None);
        copy(&mut out, b"c ", None);
        let long = String::from_utf8(long).expect("ascii");
        assert_eq!(
            drained(&mut out),
            [
                (1, "a ".into(), None),
                (1, "b ".into(), Some(2)),
                (1, long, None),
                (1, "c ".into(), None),
            ]
        );
        let link = &t.get(ConnId(1)).expect("open").link;
        assert_eq!(link.sent(), 6 + JOIN_MAX as u64 + 1);
    }

    #[test]
    fn an_encoding_past_the_outbound_limit_is_taken_back_and_closes_the_connection() {
        let mut t = table(&[1, 2]);
        let mut out = Outbox::new(10, usize::MAX);
        out.keep_log();
        let one = t.slot(ConnId(1)).expect("open");
        out.transmit_with(&mut t, one, None, |b| b.extend_from_slice(b"hello "));
        out.transmit_with(&mut t, one, None, |_| {});
        text(&mut out, &mut t, 2, "other ", None);
        out.transmit_with(&mut t, one, None, |b| b.extend_from_slice(b"too long"));
        assert_eq!(
            out.next_closing(),
            Some((ConnId(1), Some(CloseReason::SlowReader)))
        );
        let link = &t.get(ConnId(1)).expect("open").link;
        assert_eq!(
            (link.sent(), link.unwritten(), link.is_open()),
            (6, 6, false)
        );
        // An empty encoding sends nothing; the one past the limit left nothing behind.
        assert_eq!(out.output_count().get(), 2);
        assert_eq!(
            drained(&mut out),
            [(1, "hello ".into(), None), (2, "other ".into(), None)]
        );
        let logged: Vec<_> = std::iter::from_fn(|| out.pop_logged()).collect();
        assert_eq!(logged.len(), 2);
        // A fresh transmit taken back leaves no empty one queued.
        let mut t = table(&[2]);
        let two = t.slot(ConnId(2)).expect("open");
        let mut out = Outbox::new(4, usize::MAX);
        out.transmit_with(&mut t, two, None, |b| b.extend_from_slice(b"12345"));
        assert_eq!(out.queued(), 0);
    }

    #[test]
    fn a_log_keeps_every_transmit_as_sent_and_events_keep_their_place() {
        let mut t = table(&[1, 2]);
        let mut out = Outbox::new(usize::MAX, usize::MAX);
        out.keep_log();
        text(&mut out, &mut t, 1, "a1 ", None);
        text(&mut out, &mut t, 2, "b1 ", None);
        text(&mut out, &mut t, 1, "a2 ", None);
        assert_eq!(out.output_count().get(), 3, "each transmit is an output");
        assert_eq!(drained(&mut out).len(), 2, "joined in the queue");
        let logged: Vec<_> = std::iter::from_fn(|| out.pop_logged())
            .map(|o| match o {
                Output::Transmit { bytes, after, .. } => (bytes, after),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            logged,
            [
                (Bytes::from("a1 "), None),
                (Bytes::from("b1 "), None),
                (Bytes::from("a2 "), None)
            ]
        );
        assert_eq!(out.popped(), 3);
    }

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
