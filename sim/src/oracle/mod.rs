//! The oracle: a model of what the server must do, fed with everything that crosses its
//! doors, that calls the [`invariants`](crate::invariants) when each can be decided.
//!
//! It reads the server's output in the server's order, as emitted (before the commit
//! gate), so its view of who holds which name is exact at every line: a name is held
//! from the line that confirms it until the connection is closed by either side. What a
//! line must be is judged against that view; what a line promises (a stored message, a
//! committed account) is checked when the gate lets it go; what the store holds is
//! checked at every commit and restart.

mod admin;
mod arsc;
pub(crate) mod durable;
pub(crate) mod ims;
pub(crate) mod ledger;
mod opcode;
mod ws2017;

use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet};

use switchboard_proto::{Change, Config, ConnId, Limits, NetworkEvent, Protocol, Seq, State};

use crate::client::ws2017_codec;
use crate::client::{Heard, Sent};
use crate::net::{Claim, Conn, Net, Owner};
use crate::report::Violation;
use crate::store::StoreModel;
use durable::{key_of, DurableModel};
use ledger::Ledger;

/// Runs an invariant function and names it in the violation.
macro_rules! check {
    ($f:ident ( $($arg:expr),* $(,)? )) => {
        $crate::invariants::$f($($arg),*).map_err(|detail| $crate::report::Violation::new(stringify!($f), detail))
    };
}
pub(crate) use check;

/// What happened in the current step that later lines of the same step must match.
#[derive(Debug, Default)]
pub(crate) struct StepLog {
    /// Relays acknowledged to their sender: (token, connection that must get it).
    relays: Vec<(u64, ConnId)>,
    /// Direct messages handed to a connection in this step: (token, connection). A
    /// login client's relay acknowledged after its delivery was emitted is owed nothing.
    delivered: Vec<(u64, ConnId)>,
    /// Direct messages the model handed to every live session of their recipient in
    /// this step, as its events told: (sender, recipient), folded.
    direct_delivered: Vec<(String, String)>,
    /// Connections an administrator's command kicks.
    kicks: Vec<ConnId>,
    /// IP bans answered, with the number of connections the answer says it closed.
    ip_bans: Vec<(IpAddr, u64)>,
    /// Connections that got a kick line.
    kicked: Vec<ConnId>,
    /// Connections the server forgot (closed by it, by the peer, or a crash).
    pub(crate) closed: Vec<ConnId>,
    /// Names that came online, left, or were renamed (old, new), as the model's events
    /// told: what presence notices are judged against.
    joined: Vec<String>,
    left: Vec<String>,
    renamed: Vec<(String, String)>,
    /// The last presence notice verified (broadcasts repeat one line to everyone).
    last_notice: Vec<u8>,
}

impl StepLog {
    /// Empties the log for the next step, keeping its memory.
    fn clear(&mut self) {
        self.relays.clear();
        self.delivered.clear();
        self.direct_delivered.clear();
        self.kicks.clear();
        self.ip_bans.clear();
        self.kicked.clear();
        self.closed.clear();
        self.joined.clear();
        self.left.clear();
        self.renamed.clear();
        self.last_notice.clear();
    }
}

/// What an emitted line is judged against besides the oracle's own state.
pub(crate) struct EmitCx<'a> {
    /// The store model: this boot's persisted changes.
    pub(crate) store: &'a StoreModel,
    /// The server's durable state as it sees it (committed plus queued).
    pub(crate) state: &'a State,
    /// Virtual time.
    pub(crate) now: switchboard_proto::Instant,
}

/// The oracle.
pub(crate) struct Oracle {
    /// Names held on the server: folded name -> (connection, name as chosen).
    pub(crate) holders: BTreeMap<String, (ConnId, String)>,
    /// Earlier sessions of a user that holds several at once (ims): folded name -> its
    /// other connections. One of them holds the name again when the holder leaves.
    pub(crate) other_sessions: BTreeMap<String, Vec<(ConnId, String)>>,
    /// The folded name each connection of a login protocol (not ws2017) is logged in as,
    /// from the model's events: whom a line on it may be for.
    pub(crate) sessions: BTreeMap<ConnId, String>,
    /// Whether live deliveries are followed (there are arsc or opcode clients).
    pub(crate) track_direct: bool,
    /// Online names whose mailbox is still being handed out (folded).
    pub(crate) behind_mailbox: BTreeSet<String>,
    /// Messages from ims clients the server handed to ws2017 connections.
    pub(crate) ims_to_ws2017: u64,
    pub(crate) ledger: Ledger,
    pub(crate) durable: DurableModel,
    /// Addresses banned in the server's memory, as its answers told.
    pub(crate) ip_banned: BTreeSet<IpAddr>,
    /// A commit failed and none has succeeded since (the server was told).
    pub(crate) store_failing: bool,
    pub(crate) step: StepLog,
    /// Per (sender's connection, recipient's folded name): messages relayed, receipts
    /// relayed.
    receipts: BTreeMap<(ConnId, String), (u64, u64)>,
    /// The longest admin line sent (the server may buffer it whole).
    pub(crate) longest_admin_line: usize,
    /// The server's longest ws2017 line: a longer one is refused whatever it says.
    max_line: usize,
    /// The server's limits (connection caps, rate bursts) and mailbox share.
    limits: Limits,
    share: usize,
    /// Admitted ws2017 connections the server holds, in all and per address.
    admitted: usize,
    admitted_per_ip: BTreeMap<IpAddr, usize>,
    /// Rate-limited requests written from each address: (`uname`s, chats).
    requests_per_ip: BTreeMap<IpAddr, (u64, u64)>,
}

fn registered(state: &State, name: &str) -> bool {
    switchboard_proto::UserName::parse(name).is_ok_and(|n| state.account(&n.key()).is_some())
}

/// The number in an answer's ", N sessions closed" / ", N connections closed" tail.
fn closed_count(text: &str) -> u64 {
    text.split_once(", ")
        .and_then(|(_, tail)| tail.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl Oracle {
    pub(crate) fn new(clients: u32, ims_clients: u32, config: &Config) -> Oracle {
        Oracle {
            holders: BTreeMap::new(),
            other_sessions: BTreeMap::new(),
            sessions: BTreeMap::new(),
            track_direct: false,
            behind_mailbox: BTreeSet::new(),
            ims_to_ws2017: 0,
            ledger: Ledger::new(clients, ims_clients),
            durable: DurableModel::default(),
            ip_banned: BTreeSet::new(),
            store_failing: false,
            step: StepLog::default(),
            receipts: BTreeMap::new(),
            longest_admin_line: 0,
            max_line: config.ws2017.max_line_bytes,
            limits: config.limits.clone(),
            share: config.offline_share(),
            admitted: 0,
            admitted_per_ip: BTreeMap::new(),
            requests_per_ip: BTreeMap::new(),
        }
    }

    /// The server accepts `conn`: under its caps it counts it, past them it must refuse
    /// it with the cap's reason (the total is checked first).
    pub(crate) fn accepted(&mut self, conn: &mut Conn) {
        let Some(ip) = conn.ip.filter(|_| conn.owner != Owner::Admin) else {
            return;
        };
        let from_ip = self.admitted_per_ip.get(&ip).copied().unwrap_or(0);
        conn.o.over_cap = if self.admitted >= self.limits.max_connections {
            Some(crate::invariants::TOO_MANY_CONNECTIONS)
        } else if from_ip >= self.limits.max_connections_per_ip {
            Some(crate::invariants::TOO_MANY_FROM_IP)
        } else {
            None
        };
        if conn.o.over_cap.is_none() {
            conn.o.counted = true;
            self.admitted += 1;
            *self.admitted_per_ip.entry(ip).or_default() += 1;
        }
    }

    /// A client wrote a request on `conn`.
    pub(crate) fn wrote(
        &mut self,
        conn: &mut Conn,
        mut sent: Sent,
        bytes: &[u8],
    ) -> Result<(), Violation> {
        if let Owner::Login(..) = conn.owner {
            // Its client checks the answers itself; the ledger learns of its messages, and
            // (arsc, opcode) the oracle of which answer is whose.
            let message = match &sent {
                Sent::Chat {
                    token, from, to, ..
                } => Some((*token, from, to)),
                Sent::Login {
                    message: Some((token, from, to)),
                    ..
                } => Some((*token, from, to)),
                _ => None,
            };
            if let Some((token, from, to)) = message {
                self.ledger
                    .sent(token, from, to, false, conn.id)
                    .map_err(|e| Violation::new("direct_messages_reach_only_their_recipient", e))?
            }
            if let Sent::Login { token, .. } = sent {
                conn.o.login_asked.push_back(token);
            }
            return Ok(());
        }
        let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let len = bytes.len();
        match &sent {
            Sent::Uname(_) => {
                conn.o.unames += 1;
                if let Some(ip) = conn.ip {
                    self.requests_per_ip.entry(ip).or_default().0 += 1;
                }
            }
            Sent::Chat {
                token,
                whisper,
                from,
                to,
            } => {
                conn.o.chats += 1;
                if let Some(ip) = conn.ip {
                    self.requests_per_ip.entry(ip).or_default().1 += 1;
                }
                self.ledger
                    .sent(*token, from, to, *whisper, conn.id)
                    .map_err(|e| Violation::new("direct_messages_reach_only_their_recipient", e))?
            }
            Sent::Admin(cmd) => {
                self.longest_admin_line = self.longest_admin_line.max(len);
                self.durable.issued(cmd);
            }
            _ => {}
        }
        if line.len() > self.max_line && conn.owner != Owner::Admin && sent != Sent::Partial {
            // Refused as too long, whatever it says.
            sent = Sent::Garbage;
        }
        // A request that is never answered has nothing to match.
        if !matches!(sent, Sent::Cpong | Sent::Blank | Sent::Partial) {
            conn.o.sent.push_back(sent);
        }
        Ok(())
    }

    /// Something happened in the network, as the model tells it: who came online, left,
    /// or changed name is taken from here, not from the lines that announce it, and so
    /// is which message was stored by which change (`state`: the server's, as the event
    /// is read).
    pub(crate) fn event(&mut self, event: &NetworkEvent, state: &State) {
        let s = &mut self.step;
        match event {
            NetworkEvent::DirectStored { to, id, seq, .. } => {
                let stored =
                    (state.offline.get(&to.key()).into_iter().flatten()).find(|m| m.id == *id);
                if let Some(token) = stored.and_then(|m| ledger::token_of(&m.body)) {
                    self.ledger.stored(token, *seq);
                }
            }
            // Only arsc and opcode answers are judged by it (the benchmark has none).
            NetworkEvent::DirectDelivered { from, to } if self.track_direct => {
                let pair = (
                    ws2017_codec::key(from.as_str()),
                    ws2017_codec::key(to.as_str()),
                );
                s.direct_delivered.push(pair);
            }
            // Who holds which name, exactly as the model says, in order with the lines.
            NetworkEvent::LoggedIn {
                name,
                conn,
                protocol,
                ..
            } => {
                let name = name.as_str();
                s.joined.push(name.to_owned());
                let key = ws2017_codec::key(name);
                // Lines of login protocols are judged by it (ws2017 keeps its own view).
                if *protocol != Protocol::Ws2017 {
                    self.sessions.insert(*conn, key.clone());
                }
                let before = self.holders.insert(key.clone(), (*conn, name.to_owned()));
                if let Some(before) = before.filter(|(c, _)| c != conn) {
                    self.other_sessions.entry(key).or_default().push(before);
                }
            }
            NetworkEvent::LoggedOut { name, conn, .. } => {
                let name = name.as_str();
                s.left.push(name.to_owned());
                let key = ws2017_codec::key(name);
                if self.sessions.get(conn) == Some(&key) {
                    self.sessions.remove(conn);
                }
                if self.holders.get(&key).is_some_and(|(c, _)| c == conn) {
                    self.holders.remove(&key);
                    if let Some(other) = self.other_sessions.get_mut(&key).and_then(Vec::pop) {
                        self.holders.insert(key.clone(), other);
                    }
                } else if let Some(others) = self.other_sessions.get_mut(&key) {
                    others.retain(|(c, _)| c != conn);
                }
                if self.other_sessions.get(&key).is_some_and(Vec::is_empty) {
                    self.other_sessions.remove(&key);
                }
            }
            NetworkEvent::MailboxPaused { to } => {
                self.behind_mailbox.insert(ws2017_codec::key(to.as_str()));
            }
            NetworkEvent::MailboxResumed { to } => {
                self.behind_mailbox.remove(&ws2017_codec::key(to.as_str()));
            }
            NetworkEvent::Renamed { old, new, .. } => {
                let (old, new) = (old.as_str(), new.as_str());
                s.renamed.push((old.to_owned(), new.to_owned()));
                if let Some((conn, _)) = self.holders.remove(&ws2017_codec::key(old)) {
                    self.holders
                        .insert(ws2017_codec::key(new), (conn, new.to_owned()));
                }
            }
            _ => {}
        }
    }

    /// The server forgot `conn` (it closed it, the peer closed it, or it crashed): its
    /// name is free, its unanswered requests will never be answered.
    pub(crate) fn forgotten(&mut self, conn: &mut Conn) {
        if let (true, Some(ip)) = (std::mem::take(&mut conn.o.counted), conn.ip) {
            self.admitted -= 1;
            if let Some(n) = self.admitted_per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.admitted_per_ip.remove(&ip);
                }
            }
        }
        conn.o.name = None;
        for sent in conn.o.sent.drain(..) {
            if let Sent::Admin(cmd) = sent {
                self.durable.abandoned(&cmd);
            }
        }
        conn.o.done = true;
        self.step.closed.push(conn.id);
    }

    /// The server emitted `bytes` for `conn`.
    pub(crate) fn transmit(
        &mut self,
        conn: &mut Conn,
        bytes: &[u8],
        after: Option<Seq>,
        cx: &EmitCx<'_>,
    ) -> Result<(), Violation> {
        let mut offset = conn.emitted;
        conn.emitted += bytes.len() as u64;
        let mut rest = bytes;
        if !conn.o.partial.is_empty() {
            let Some(i) = rest.iter().position(|&b| b == b'\n') else {
                conn.o.partial.extend_from_slice(rest);
                return Ok(());
            };
            let mut line = std::mem::take(&mut conn.o.partial);
            line.extend_from_slice(&rest[..i]);
            offset += i as u64 + 1;
            self.line(conn, &line, after, offset, cx)?;
            rest = &rest[i + 1..];
        }
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            offset += i as u64 + 1;
            self.line(conn, &rest[..i], after, offset, cx)?;
            rest = &rest[i + 1..];
        }
        conn.o.partial.extend_from_slice(rest);
        Ok(())
    }

    fn line(
        &mut self,
        conn: &mut Conn,
        raw: &[u8],
        after: Option<Seq>,
        end: u64,
        cx: &EmitCx<'_>,
    ) -> Result<(), Violation> {
        if conn.o.done {
            return Err(Violation::new(
                "replies_answer_requests",
                format!(
                    "{} sent {:?} after its goodbye",
                    conn.id,
                    String::from_utf8_lossy(raw)
                ),
            ));
        }
        let heard = match conn.owner {
            Owner::Admin => self.admin_line(conn, raw, after, end, cx)?,
            Owner::Client(_) => self.ws2017_line(conn, raw, after, end, cx)?,
            Owner::Login(_, Protocol::Arsc) => self.arsc_line(conn, raw, after, end, cx)?,
            Owner::Login(_, Protocol::Opcode) => self.opcode_line(conn, raw, after, end, cx)?,
            Owner::Login(..) => self.ims_line(conn, raw, after, end, cx)?,
        };
        if heard != Heard::Other {
            conn.heard.push_back((end, heard));
        }
        Ok(())
    }

    /// The gate released bytes of `conn` up to `conn.released`: what they promised must
    /// be committed.
    pub(crate) fn released(
        &mut self,
        conn: &mut Conn,
        store: &StoreModel,
    ) -> Result<(), Violation> {
        let committed = &store.committed;
        while conn
            .claims
            .front()
            .is_some_and(|(end, _)| *end <= conn.released)
        {
            let Some((_, claim)) = conn.claims.pop_front() else {
                break;
            };
            match claim {
                Claim::Stored(token) => {
                    let ok = self.ledger.ack_released(token);
                    let fate = self.ledger.get(token).map(|m| m.fate);
                    let what = || format!("m{token} stored ({fate:?})");
                    check!(acknowledged_changes_are_committed(ok, &what))?;
                }
                Claim::Admin(cmd) => {
                    self.durable
                        .acknowledged(&cmd)
                        .map_err(|e| Violation::new("replies_answer_requests", e))?;
                    if let Some(key) = key_of(&cmd) {
                        let result = self.durable.check(committed, &key);
                        let what =
                            || format!("{cmd:?}: {}", result.clone().err().unwrap_or_default());
                        check!(acknowledged_changes_are_committed(result.is_ok(), &what))?;
                    }
                }
                Claim::Listing(through) => {
                    check!(listings_wait_for_every_change(
                        store.committed_through,
                        through
                    ))?;
                }
            }
        }
        Ok(())
    }

    /// A batch committed: the changes in order, and the committed state after it.
    pub(crate) fn committed(
        &mut self,
        first: Seq,
        batch: &[Change],
        state: &State,
    ) -> Result<(), Violation> {
        let mut queues = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for (i, change) in batch.iter().enumerate() {
            let seq = Seq(first.0 + i as u64);
            let touched = self.ledger.committed(seq, change);
            match touched {
                Ok(Some(key)) => {
                    queues.insert(key);
                }
                Ok(None) => {}
                Err(e) => return check!(offline_messages_exactly_once_in_order(Some(e))),
            }
            keys.extend(DurableModel::touched(change));
        }
        for key in &queues {
            let problem = self.ledger.check_queue(state, key).err();
            check!(offline_messages_exactly_once_in_order(problem))?;
        }
        let problems: Vec<String> = keys
            .iter()
            .filter_map(|k| self.durable.check(state, k).err())
            .collect();
        check!(acknowledged_changes_survive_restarts(&problems))
    }

    /// The server restarts from `state`: everything acknowledged must be there.
    pub(crate) fn restarted(&mut self, state: &State) -> Result<(), Violation> {
        self.holders.clear();
        self.other_sessions.clear();
        self.sessions.clear();
        self.behind_mailbox.clear();
        self.store_failing = false;
        self.ip_banned = state.ip_bans.clone();
        let mut problems = self.durable.check_all(state);
        problems.extend(self.ledger.check_all(state));
        check!(acknowledged_changes_survive_restarts(&problems))
    }

    /// The checks that wait for the end of a step.
    pub(crate) fn end_step(&mut self, net: &Net) -> Result<(), Violation> {
        let result = self.judge_step(net);
        self.step.clear();
        result
    }

    fn judge_step(&self, net: &Net) -> Result<(), Violation> {
        let step = &self.step;
        if step.relays.is_empty() && step.kicks.is_empty() && step.ip_bans.is_empty() {
            return Ok(());
        }
        let closed: BTreeSet<ConnId> = step.closed.iter().copied().collect();
        let missing: Vec<(u64, u64)> = (step.relays.iter())
            .filter(|(_, c)| !closed.contains(c))
            .map(|&(t, c)| (t, c.0))
            .collect();
        check!(relayed_messages_are_delivered(&missing))?;
        let unkicked: Vec<u64> = (step.kicks.iter())
            .filter(|c| !closed.contains(c))
            .map(|c| c.0)
            .collect();
        check!(kicks_reach_their_targets(None, &unkicked, None))?;
        for &(ip, count) in &step.ip_bans {
            let gone: BTreeSet<ConnId> = (step.kicked.iter().chain(&step.closed))
                .copied()
                .filter(|&c| net.get(c).is_some_and(|c| c.ip == Some(ip)))
                .collect();
            let miscounted = (gone.len() as u64 != count)
                .then(|| format!("ban of {ip} says {count} closed, {} were", gone.len()));
            check!(kicks_reach_their_targets(None, &[], miscounted))?;
            let still = net
                .iter()
                .any(|c| c.server_open && c.ip == Some(ip) && c.owner != Owner::Admin);
            check!(banned_get_no_session(still, None, true))?;
        }
        Ok(())
    }
}
