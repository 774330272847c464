//! The ledger of direct messages: every message a client sent, by its token, from the
//! request to its fate (refused, relayed, stored, committed, lost with an uncommitted
//! batch, dropped with its account, delivered), and a mirror of each account's committed
//! offline queue, kept from the committed changes alone.
//!
//! Tokens are `client << 32 | n`, n counting that client's messages, so the ledger is a
//! vector per client and a message is found without a map.

use std::collections::{BTreeMap, VecDeque};

use switchboard_proto::{Change, ConnId, MessageKind, Seq, State, StoredMessage, UserName};

use crate::client::ws2017_codec as codec;

/// Where a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Sent, no answer yet.
    Sent,
    /// Refused with an error.
    Refused,
    /// Refused: the recipient's mailbox is full.
    Full,
    /// Refused by a rate limit (the oracle judged the bucket could be spent): answered,
    /// and the client may try again later.
    SlowedDown,
    /// Relayed to an online recipient.
    Relayed,
    /// Stored as change `seq` of this boot, not yet committed.
    Stored(Seq),
    /// In the committed store.
    Committed,
    /// Stored but never committed: lost in a crash (its `stored` never left).
    Lost,
    /// Removed with its recipient's account.
    Dropped,
    /// Delivered from the store to its recipient.
    Delivered,
}

/// One message.
#[derive(Clone, Debug)]
pub(crate) struct Message {
    /// The sender as named in the request.
    pub(crate) from: String,
    /// The recipient as named in the request.
    pub(crate) to: String,
    pub(crate) whisper: bool,
    /// The connection it was sent on.
    pub(crate) sender: ConnId,
    pub(crate) fate: Fate,
    /// Its `stored` left the server (after the commit).
    pub(crate) ack_released: bool,
    /// Times the recipient's client read it.
    pub(crate) received: u8,
    /// Times the sender's client read the echo of its whisper.
    pub(crate) echoes: u8,
}

/// Every message and every committed offline queue.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    by_client: Vec<Vec<Message>>,
    /// Committed offline messages per folded recipient name: (token, message id).
    queues: BTreeMap<String, VecDeque<(u64, u64)>>,
    /// Messages stored in this boot and not yet committed.
    uncommitted: Vec<u64>,
    /// Clients from this index on log in to accounts (ims): their messages are judged
    /// by the recipient's name, as they get no relay acknowledgement to match.
    first_account_client: usize,
    /// Crashes so far.
    crashes: u64,
    /// Messages read by an account's client: the crash count and the connection at the
    /// last read (a second read is allowed only on a later login: after a crash, or on
    /// another connection, as a message is removed only once the server hears it was
    /// written).
    account_reads: BTreeMap<u64, (u64, ConnId)>,
}

/// The token in the mirror of an item that carries none (a friend's acceptance).
const NO_TOKEN: u64 = u64::MAX;

/// The token a message body carries, if any.
pub(crate) fn token_of(body: &str) -> Option<u64> {
    codec::token_of(body)
}

fn split(token: u64) -> (usize, usize) {
    ((token >> 32) as usize, (token & 0xFFFF_FFFF) as usize)
}

fn user_key(key: &str) -> Option<switchboard_proto::UserKey> {
    UserName::parse(key).ok().map(|n| n.key())
}

impl Ledger {
    /// A ledger for `clients` ws2017 clients and then `account_clients` clients that log
    /// in to accounts.
    pub(crate) fn new(clients: u32, account_clients: u32) -> Ledger {
        Ledger {
            by_client: (0..clients + account_clients).map(|_| Vec::new()).collect(),
            first_account_client: clients as usize,
            ..Ledger::default()
        }
    }

    /// Whether message `token` was sent by a client logged in to an account.
    pub(crate) fn sent_by_account(&self, token: u64) -> bool {
        split(token).0 >= self.first_account_client
    }

    /// A client sent message `token`.
    pub(crate) fn sent(
        &mut self,
        token: u64,
        from: &str,
        to: &str,
        whisper: bool,
        sender: ConnId,
    ) -> Result<(), String> {
        let (client, n) = split(token);
        let list = self
            .by_client
            .get_mut(client)
            .ok_or_else(|| format!("message m{token} of an unknown client"))?;
        if list.len() > n {
            return Err(format!("message m{token} sent twice"));
        }
        let message = Message {
            from: from.to_owned(),
            to: to.to_owned(),
            whisper,
            sender,
            fate: Fate::Sent,
            ack_released: false,
            received: 0,
            echoes: 0,
        };
        // Messages the client wrote on a connection already gone never left it.
        list.resize(n, message.clone());
        list.push(message);
        Ok(())
    }

    pub(crate) fn get(&self, token: u64) -> Option<&Message> {
        let (client, n) = split(token);
        self.by_client.get(client)?.get(n)
    }

    pub(crate) fn get_mut(&mut self, token: u64) -> Option<&mut Message> {
        let (client, n) = split(token);
        self.by_client.get_mut(client)?.get_mut(n)
    }

    /// The model stored `token` by change `seq` (not yet committed), as its
    /// [`NetworkEvent::DirectStored`](switchboard_proto::NetworkEvent) told.
    pub(crate) fn stored(&mut self, token: u64, seq: Seq) {
        if let Some(m) = self.get_mut(token) {
            m.fate = Fate::Stored(seq);
            self.uncommitted.push(token);
        }
    }

    /// Does `m` carry message `token` as it was sent?
    pub(crate) fn matches(&self, token: u64, m: &StoredMessage) -> bool {
        self.get(token).is_some_and(|rec| {
            m.body == codec::body(token)
                && codec::key(m.from.as_str()) == codec::key(&rec.from)
                && codec::key(m.to.as_str()) == codec::key(&rec.to)
        })
    }

    /// A committed change that concerns offline messages, applied to the mirror; returns
    /// the recipient whose queue it touched.
    pub(crate) fn committed(
        &mut self,
        seq: Seq,
        change: &Change,
    ) -> Result<Option<String>, String> {
        match change {
            Change::OfflineQueued(m) if m.kind == MessageKind::FriendAccepted => {
                let key = codec::key(m.to.as_str());
                let queue = self.queues.entry(key.clone()).or_default();
                queue.push_back((NO_TOKEN, m.id.0));
                Ok(Some(key))
            }
            Change::OfflineQueued(m) => {
                let token = codec::token_of(&m.body)
                    .ok_or_else(|| format!("stored message {} has no token", m.id.0))?;
                if !self.matches(token, m) {
                    return Err(format!("stored message {m:?} is not m{token} as sent"));
                }
                let rec = self.get_mut(token).ok_or("unknown message")?;
                // The model's event set `Stored(seq)`, even when the `stored` reply was
                // dropped with its connection.
                if rec.fate != Fate::Stored(seq) {
                    return Err(format!(
                        "m{token} committed as #{} but its fate was {:?}",
                        seq.0, rec.fate
                    ));
                }
                rec.fate = Fate::Committed;
                let key = codec::key(m.to.as_str());
                let queue = self.queues.entry(key.clone()).or_default();
                if let Some(&(_, last)) = queue.back() {
                    if last >= m.id.0 {
                        let id = m.id.0;
                        return Err(format!(
                            "m{token} (id {id}) stored after id {last} for {key}"
                        ));
                    }
                }
                queue.push_back((token, m.id.0));
                Ok(Some(key))
            }
            Change::OfflineDelivered { to, through } => {
                let key = codec::key(to.as_str());
                let queue = self.queues.entry(key.clone()).or_default();
                let mut gone = Vec::new();
                while let Some(&(token, id)) = queue.front() {
                    if id > through.0 {
                        break;
                    }
                    queue.pop_front();
                    gone.push(token);
                }
                // Written to a connection of the recipient (the server heard so): delivered,
                // whether or not the client read it before a cut.
                for token in gone.into_iter().filter(|&t| t != NO_TOKEN) {
                    match self.get_mut(token) {
                        Some(m) if matches!(m.fate, Fate::Committed | Fate::Delivered) => {
                            m.fate = Fate::Delivered;
                        }
                        m => {
                            return Err(format!(
                                "m{token} marked delivered to {key} while {:?}",
                                m.map(|m| m.fate)
                            ))
                        }
                    }
                }
                Ok(Some(key))
            }
            Change::AccountDeleted { name } => {
                let key = codec::key(name.as_str());
                for (token, _) in self.queues.remove(&key).unwrap_or_default() {
                    if let Some(m) = self.get_mut(token) {
                        if m.fate == Fate::Committed {
                            m.fate = Fate::Dropped;
                        }
                    }
                }
                Ok(Some(key))
            }
            _ => Ok(None),
        }
    }

    /// Compares one recipient's committed queue with the mirror (length and both ends).
    pub(crate) fn check_queue(&self, state: &State, key: &str) -> Result<(), String> {
        let mirror = self.queues.get(key);
        let real = user_key(key).and_then(|k| state.offline.get(&k));
        let ids = |q: Option<&VecDeque<StoredMessage>>| {
            q.map_or((0, None, None), |q| {
                (q.len(), q.front().map(|m| m.id.0), q.back().map(|m| m.id.0))
            })
        };
        let mine = mirror.map_or((0, None, None), |q| {
            (q.len(), q.front().map(|e| e.1), q.back().map(|e| e.1))
        });
        if ids(real) == mine {
            Ok(())
        } else {
            Err(format!(
                "offline queue of {key}: store has (len, first, last) {:?}, expected {mine:?}",
                ids(real)
            ))
        }
    }

    /// Every queue and every acknowledged message against the committed store.
    pub(crate) fn check_all(&self, state: &State) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, queue) in &state.offline {
            let mine: Vec<u64> = self
                .queues
                .get(key.as_str())
                .map(|q| q.iter().map(|e| e.1).collect())
                .unwrap_or_default();
            let real: Vec<u64> = queue.iter().map(|m| m.id.0).collect();
            if mine != real {
                problems.push(format!(
                    "offline queue of {}: store has {real:?}, expected {mine:?}",
                    key.as_str()
                ));
            }
        }
        for (key, queue) in &self.queues {
            let stored = user_key(key).is_some_and(|k| state.offline.contains_key(&k));
            if !queue.is_empty() && !stored {
                problems.push(format!("offline queue of {key} is gone from the store"));
            }
        }
        for (client, list) in self.by_client.iter().enumerate() {
            for (n, m) in list.iter().enumerate() {
                if m.ack_released
                    && !matches!(m.fate, Fate::Committed | Fate::Dropped | Fate::Delivered)
                {
                    let token = (client as u64) << 32 | n as u64;
                    problems.push(format!("m{token} acknowledged as stored but {:?}", m.fate));
                }
            }
        }
        problems
    }

    /// The server crashed: what this boot stored and did not commit is lost.
    pub(crate) fn crashed(&mut self) {
        self.crashes += 1;
        for token in std::mem::take(&mut self.uncommitted) {
            if let Some(m) = self.get_mut(token) {
                if matches!(m.fate, Fate::Stored(_)) {
                    m.fate = Fate::Lost;
                }
            }
        }
    }

    /// The `stored` of `token` leaves the server: it must be committed by now.
    pub(crate) fn ack_released(&mut self, token: u64) -> bool {
        match self.get_mut(token) {
            // Committed, and maybe already removed with its account since.
            Some(m) if matches!(m.fate, Fate::Committed | Fate::Dropped | Fate::Delivered) => {
                m.ack_released = true;
                true
            }
            _ => false,
        }
    }

    /// An account's client (ims) read message `token`, addressed to it, on `conn`. A
    /// message is read at most once on a connection; again only at a later login (the
    /// server removes a stored message once it hears its bytes were written, so a
    /// connection lost before that, or a crash before the removal commits, hands it out
    /// again with the same id).
    pub(crate) fn read_by_account(&mut self, token: u64, conn: ConnId) -> Result<(), String> {
        let crashes = self.crashes;
        let Some(m) = self.get_mut(token) else {
            return Err(format!("unknown message m{token} read"));
        };
        m.received = m.received.saturating_add(1);
        if m.received > 1 {
            let last = self.account_reads.get(&token).copied();
            if last == Some((crashes, conn)) {
                return Err(format!("m{token} read twice on {conn}"));
            }
        }
        self.account_reads.insert(token, (crashes, conn));
        Ok(())
    }

    /// Messages acknowledged as stored for one of `keys` (folded account names) and still
    /// in the store: at the end, after everyone logged in again, there must be none.
    pub(crate) fn undelivered(&self, keys: &[String]) -> Vec<String> {
        let mut problems = Vec::new();
        for key in keys {
            for &(token, _) in self.queues.get(key).into_iter().flatten() {
                if let Some(m) = self.get(token).filter(|m| m.ack_released) {
                    problems.push(format!(
                        "m{token} from {} to {} was acknowledged as stored and never delivered ({:?})",
                        m.from, m.to, m.fate
                    ));
                }
            }
        }
        problems
    }

    /// Messages relayed, and refused for a full mailbox.
    pub(crate) fn fates(&self) -> (u64, u64) {
        let all = self.by_client.iter().flatten();
        all.fold((0, 0), |(r, f), m| match m.fate {
            Fate::Relayed => (r + 1, f),
            Fate::Full => (r, f + 1),
            _ => (r, f),
        })
    }

    /// Messages acknowledged as stored so far.
    pub(crate) fn stored_count(&self) -> usize {
        self.by_client
            .iter()
            .flatten()
            .filter(|m| m.ack_released)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_proto::MessageId;

    fn stored(token: u64, id: u64) -> Change {
        Change::OfflineQueued(StoredMessage {
            id: MessageId(id),
            from: UserName::parse("al").unwrap(),
            to: UserName::parse("Acct").unwrap(),
            body: codec::body(token),
            sent_ms: 0,
            kind: MessageKind::Direct,
        })
    }

    #[test]
    fn stored_messages_commit_once_in_order_and_deliver_once() {
        let mut l = Ledger::new(1, 0);
        for n in 0..3 {
            l.sent(n, "al", "acct", false, ConnId(1)).unwrap();
            l.stored(n, Seq(n + 1));
        }
        assert!(!l.ack_released(0), "not committed yet");
        l.committed(Seq(1), &stored(0, 10)).unwrap();
        l.committed(Seq(2), &stored(1, 11)).unwrap();
        assert!(l.committed(Seq(2), &stored(1, 11)).is_err(), "twice");
        assert!(l.committed(Seq(3), &stored(2, 9)).is_err(), "out of order");
        assert!(l.ack_released(0));
        let acct = ["acct".to_owned()];
        assert_eq!(
            l.undelivered(&acct).len(),
            1,
            "m0 acknowledged, still stored"
        );
        // Read, then removed once written; a second read needs a crash between.
        l.read_by_account(0, ConnId(2)).unwrap();
        assert!(l.read_by_account(0, ConnId(2)).is_err());
        let through = MessageId(10);
        let to = UserName::parse("Acct").unwrap();
        l.committed(Seq(4), &Change::OfflineDelivered { to, through })
            .unwrap();
        assert_eq!(l.get(0).unwrap().fate, Fate::Delivered);
        assert!(l.undelivered(&acct).is_empty());
        l.crashed();
        l.read_by_account(0, ConnId(2)).unwrap();
        l.read_by_account(0, ConnId(3)).unwrap();
        assert_eq!(l.get(1).unwrap().fate, Fate::Committed);
    }
}
