//! The oracle: a model of what the server must do, fed with everything that crosses its
//! doors, that calls the [`invariants`](crate::invariants) when each can be decided.
//!
//! It reads the server's output in the server's order, as emitted (before the commit
//! gate), so its view of who holds which name is exact at every line: a name is held
//! from the line that confirms it until the connection is closed by either side. What a
//! line must be is judged against that view; what a line promises (a stored message, a
//! committed account) is checked when the gate lets it go; what the store holds is
//! checked at every commit and restart.

pub(crate) mod durable;
pub(crate) mod ledger;

use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet};

use switchboard_proto::{AdminCommand, Change, ConnId, Seq, State};

use crate::client::ws2017_codec::{self as codec, ServerLine};
use crate::client::{Heard, Sent};
use crate::invariants;
use crate::net::{Claim, Conn, Net, Owner};
use crate::report::Violation;
use crate::store::StoreModel;
use durable::{fake_hash, fake_ims_hash, key_of, DurableModel};
use ledger::{Fate, Ledger};

/// Runs an invariant function and names it in the violation.
macro_rules! check {
    ($f:ident ( $($arg:expr),* $(,)? )) => {
        $crate::invariants::$f($($arg),*).map_err(|detail| Violation::new(stringify!($f), detail))
    };
}
pub(crate) use check;

/// What happened in the current step that later lines of the same step must match.
#[derive(Debug, Default)]
pub(crate) struct StepLog {
    /// Relays acknowledged to their sender: (token, connection that must get it).
    relays: Vec<(u64, ConnId)>,
    /// Whisper echoes owed to the sender's connection.
    echoes: Vec<(u64, ConnId)>,
    /// Connections an administrator's command kicks.
    kicks: Vec<ConnId>,
    /// IP bans answered, with the number of connections the answer says it closed.
    ip_bans: Vec<(IpAddr, u64)>,
    /// Connections that got a kick line.
    kicked: Vec<ConnId>,
    /// Connections the server forgot (closed by it, by the peer, or a crash).
    pub(crate) closed: Vec<ConnId>,
    /// Names that came online, left, or were renamed (old, new).
    joined: Vec<String>,
    left: Vec<String>,
    /// Connections without a name the server forgot in this step.
    closed_unnamed: usize,
    renamed: Vec<(String, String)>,
    /// The last presence notice verified (broadcasts repeat one line to everyone).
    last_notice: Vec<u8>,
}

impl StepLog {
    /// Empties the log for the next step, keeping its memory.
    fn clear(&mut self) {
        self.relays.clear();
        self.echoes.clear();
        self.kicks.clear();
        self.ip_bans.clear();
        self.kicked.clear();
        self.closed.clear();
        self.joined.clear();
        self.left.clear();
        self.closed_unnamed = 0;
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
}

/// The oracle.
pub(crate) struct Oracle {
    /// Names held on the server: folded name -> (connection, name as chosen).
    pub(crate) holders: BTreeMap<String, (ConnId, String)>,
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
    pub(crate) fn new(clients: u32, max_line: usize) -> Oracle {
        Oracle {
            holders: BTreeMap::new(),
            ledger: Ledger::new(clients),
            durable: DurableModel::default(),
            ip_banned: BTreeSet::new(),
            store_failing: false,
            step: StepLog::default(),
            receipts: BTreeMap::new(),
            longest_admin_line: 0,
            max_line,
        }
    }

    /// A client wrote a request on `conn`.
    pub(crate) fn wrote(
        &mut self,
        conn: &mut Conn,
        mut sent: Sent,
        bytes: &[u8],
    ) -> Result<(), Violation> {
        let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let len = bytes.len();
        match &sent {
            Sent::Chat {
                token,
                whisper,
                from,
                to,
            } => self
                .ledger
                .sent(*token, from, to, *whisper, conn.id)
                .map_err(|e| Violation::new("direct_messages_reach_only_their_recipient", e))?,
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

    /// The server forgot `conn` (it closed it, the peer closed it, or it crashed): its
    /// name is free, its unanswered requests will never be answered.
    pub(crate) fn forgotten(&mut self, conn: &mut Conn) {
        if let Some((key, name)) = conn.o.name.take() {
            if self.holders.get(&key).is_some_and(|(c, _)| *c == conn.id) {
                self.holders.remove(&key);
            }
            self.step.left.push(name);
        } else {
            self.step.closed_unnamed += 1;
        }
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
        };
        if heard != Heard::Other {
            conn.heard.push_back((end, heard));
        }
        Ok(())
    }

    fn ws2017_line(
        &mut self,
        conn: &mut Conn,
        raw: &[u8],
        after: Option<Seq>,
        end: u64,
        cx: &EmitCx<'_>,
    ) -> Result<Heard, Violation> {
        // The lines every client hears most, judged without decoding: a ping, and the
        // same presence notice the server just sent to someone else.
        if conn.o.greeted {
            if raw == b"cping\r" {
                return Ok(Heard::Ping);
            }
            if raw == self.step.last_notice.as_slice() {
                return Ok(Heard::Other);
            }
        }
        let parsed = check!(server_lines_are_understood(raw))?;
        if !conn.o.greeted {
            conn.o.greeted = true;
            let banned = conn.ip.is_some_and(|ip| self.ip_banned.contains(&ip));
            check!(banned_get_no_session(banned, Some(&parsed), false))?;
            if banned {
                conn.o.done = true;
                return Ok(Heard::Banned);
            }
            return Ok(Heard::Greeting);
        }
        use ServerLine as L;
        match parsed {
            L::Greeting => Err(Violation::new(
                "replies_answer_requests",
                format!("{} greeted twice", conn.id),
            )),
            L::UserJoined(_) | L::UserLeft(_) | L::UserRenamed(..) => {
                self.notice(raw, &parsed)?;
                Ok(Heard::Other)
            }
            L::Chat {
                whisper,
                from,
                to,
                body,
            } => self.chat_line(conn, whisper, from, to, body),
            L::Receipt { from, to } => {
                let to_sender = conn
                    .o
                    .name
                    .as_ref()
                    .is_some_and(|(k, _)| *k == codec::key(from));
                let pair = self.receipts.entry((conn.id, codec::key(to))).or_default();
                pair.1 += 1;
                check!(receipts_follow_messages(to_sender, pair.0, pair.1))?;
                Ok(Heard::Other)
            }
            L::Ping => Ok(Heard::Ping),
            L::Kicked(_) => {
                let expected = self.step.kicks.iter().position(|&c| c == conn.id);
                let by_ip = conn
                    .ip
                    .is_some_and(|ip| self.step.ip_bans.iter().any(|b| b.0 == ip));
                let unexpected = match expected {
                    Some(i) => {
                        self.step.kicks.swap_remove(i);
                        None
                    }
                    None if by_ip => None,
                    None => Some(conn.id.0),
                };
                check!(kicks_reach_their_targets(unexpected, &[], None))?;
                self.step.kicked.push(conn.id);
                conn.o.done = true;
                Ok(Heard::Goodbye)
            }
            _ => self.ws2017_reply(conn, parsed, after, end, cx),
        }
    }

    fn notice(&mut self, raw: &[u8], parsed: &ServerLine<'_>) -> Result<(), Violation> {
        // A connection closed in this step for reading too slowly may have lost the
        // reply to its own `uname`: its login or rename still happened, and it left.
        let s = &mut self.step;
        let seen = match *parsed {
            ServerLine::UserJoined(n) => {
                let implied = !s.joined.iter().any(|j| j == n) && s.closed_unnamed > 0;
                if implied {
                    s.closed_unnamed -= 1;
                    s.left.push(n.to_owned());
                }
                implied || s.joined.iter().any(|j| j == n)
            }
            ServerLine::UserLeft(n) => s.left.iter().any(|l| l == n),
            ServerLine::UserRenamed(old, new) => {
                let known = s.renamed.iter().any(|(o, n)| o == old && n == new);
                let implied = !known && s.left.iter().any(|l| l == old);
                if implied {
                    s.renamed.push((old.to_owned(), new.to_owned()));
                    s.left.push(new.to_owned());
                }
                known || implied
            }
            _ => false,
        };
        check!(presence_notices_are_true(seen, parsed))?;
        self.step.last_notice.clear();
        self.step.last_notice.extend_from_slice(raw);
        Ok(())
    }

    fn chat_line(
        &mut self,
        conn: &mut Conn,
        whisper: bool,
        from: &str,
        to: &str,
        body: &str,
    ) -> Result<Heard, Violation> {
        let token = codec::token_of(body);
        let msg = token.and_then(|t| self.ledger.get(t));
        let intact = match (token, msg) {
            (Some(t), Some(m)) => {
                if body == codec::body(t)
                    && whisper == m.whisper
                    && codec::key(from) == codec::key(&m.from)
                    && codec::key(to) == codec::key(&m.to)
                {
                    Ok(())
                } else {
                    Err(format!(
                        "{:?} arrived as chat{} {from} {to} '{body}'",
                        m,
                        if whisper { "w" } else { "m" }
                    ))
                }
            }
            _ => Err(format!("unknown message '{body}' from {from} to {to}")),
        };
        let token = token.unwrap_or_default();
        let take = |list: &mut Vec<(u64, ConnId)>| match list
            .iter()
            .position(|&e| e == (token, conn.id))
        {
            Some(i) => {
                list.swap_remove(i);
                true
            }
            None => false,
        };
        let mut expected = take(&mut self.step.relays) || (whisper && take(&mut self.step.echoes));
        if !expected {
            // The acknowledgement may have been dropped with its sender's connection (a
            // slow reader closed by it in this step): the message still goes to whoever
            // holds the recipient's name.
            let sender_gone = msg.is_some_and(|m| self.step.closed.contains(&m.sender));
            let holds = conn
                .o
                .name
                .as_ref()
                .is_some_and(|(k, _)| *k == codec::key(to));
            expected = sender_gone && holds;
            if expected {
                if let Some(m) = self.ledger.get_mut(token) {
                    m.fate = Fate::Relayed;
                }
            }
        }
        let describe = || format!("m{token} from {from} to {to} (on {})", conn.id);
        check!(direct_messages_reach_only_their_recipient(
            expected, intact, &describe
        ))?;
        Ok(Heard::Chat {
            whisper,
            from: from.to_owned(),
            to: to.to_owned(),
            token,
        })
    }

    fn ws2017_reply(
        &mut self,
        conn: &mut Conn,
        parsed: ServerLine<'_>,
        after: Option<Seq>,
        end: u64,
        cx: &EmitCx<'_>,
    ) -> Result<Heard, Violation> {
        use ServerLine as L;
        let sent = loop {
            let Some(sent) = conn.o.sent.pop_front() else {
                return Err(Violation::new(
                    "replies_answer_requests",
                    format!("{parsed:?} on {} answers no request", conn.id),
                ));
            };
            if invariants::answers(&sent, &parsed) {
                break sent;
            }
        };
        let subject = match &sent {
            Sent::Uname(name) => Some(name.as_str()),
            Sent::Chat { to, .. } => Some(to.as_str()),
            _ => None,
        };
        let holder = subject
            .and_then(|s| self.holders.get(&codec::key(s)))
            .map(|(c, _)| *c);
        let own = conn.o.name.as_ref().map(|(_, n)| n.clone());
        let view = invariants::ReplyView {
            own: own.as_deref(),
            held_by_self: holder == Some(conn.id),
            held_by_other: holder.is_some_and(|c| c != conn.id),
            registered: subject.is_some_and(|s| registered(cx.state, s)),
            store_failing: self.store_failing,
        };
        check!(replies_answer_requests(&sent, &parsed, &view))?;
        let heard = match (&sent, parsed) {
            (Sent::Uname(_), L::NameSet(name)) => {
                let key = codec::key(name);
                check!(nicks_are_exclusive(name, holder.map(|c| c.0), conn.id.0))?;
                let banned = conn.ip.is_some_and(|ip| self.ip_banned.contains(&ip));
                check!(banned_get_no_session(banned, None, true))?;
                self.holders.insert(key.clone(), (conn.id, name.to_owned()));
                conn.o.name = Some((key, name.to_owned()));
                self.step.joined.push(name.to_owned());
                Heard::NameSet(name.to_owned())
            }
            (Sent::Uname(_), L::Renamed(name)) => {
                check!(nicks_are_exclusive(name, holder.map(|c| c.0), conn.id.0))?;
                if let Some((old_key, old)) = conn.o.name.take() {
                    self.holders.remove(&old_key);
                    self.step.renamed.push((old, name.to_owned()));
                }
                let key = codec::key(name);
                self.holders.insert(key.clone(), (conn.id, name.to_owned()));
                conn.o.name = Some((key, name.to_owned()));
                Heard::Renamed(name.to_owned())
            }
            (Sent::Uname(_), L::NameTaken(suggestion)) => {
                let free = !self.holders.contains_key(&codec::key(suggestion))
                    && !registered(cx.state, suggestion);
                if !free {
                    return Err(Violation::new(
                        "replies_answer_requests",
                        format!("suggested name {suggestion} is taken"),
                    ));
                }
                Heard::NameTaken(suggestion.to_owned())
            }
            (Sent::Uname(_), _) => Heard::NameRefused,
            (
                Sent::Chat {
                    token, whisper, to, ..
                },
                reply,
            ) => {
                let echo = *whisper
                    && own
                        .as_deref()
                        .is_some_and(|o| codec::key(o) != codec::key(to));
                match reply {
                    L::Relayed { .. } => {
                        if let Some(recipient) = holder {
                            self.step.relays.push((*token, recipient));
                        }
                        if echo {
                            self.step.echoes.push((*token, conn.id));
                        }
                        if let Some(m) = self.ledger.get_mut(*token) {
                            m.fate = Fate::Relayed;
                        }
                        self.receipts
                            .entry((conn.id, codec::key(to)))
                            .or_default()
                            .0 += 1;
                    }
                    L::Stored { .. } => {
                        let ledger = &self.ledger;
                        let claims = |c: &Change| matches!(c, Change::OfflineQueued(m) if ledger.matches(*token, m));
                        let change = after.and_then(|seq| cx.store.change(seq));
                        check!(acknowledgements_wait_on_their_change(
                            after,
                            change,
                            &claims,
                            &format!("m{token} stored")
                        ))?;
                        self.ledger.stored(*token, after.unwrap_or_default());
                        conn.claims.push_back((end, Claim::Stored(*token)));
                        if echo {
                            self.step.echoes.push((*token, conn.id));
                        }
                    }
                    L::Error { text, .. } => {
                        if let Some(m) = self.ledger.get_mut(*token) {
                            m.fate = if text.contains("mailbox") {
                                Fate::Full
                            } else {
                                Fate::Refused
                            };
                        }
                    }
                    _ => {}
                }
                Heard::Other
            }
            (Sent::Cgetu, L::Users(list)) => {
                let names = self.holders.values().map(|(_, n)| n.as_str());
                let same = if self.holders.len() <= 2000 {
                    names.eq(list.split(' ').filter(|s| !s.is_empty()))
                } else {
                    list.split(' ').count() == self.holders.len()
                };
                if !same {
                    return Err(Violation::new(
                        "replies_answer_requests",
                        format!(
                            "cgetu listed [{list}] while {} names are held",
                            self.holders.len()
                        ),
                    ));
                }
                Heard::Other
            }
            (Sent::Cquit, _) => {
                conn.o.done = true;
                Heard::Goodbye
            }
            _ => Heard::Other,
        };
        Ok(heard)
    }

    fn admin_line(
        &mut self,
        conn: &mut Conn,
        raw: &[u8],
        after: Option<Seq>,
        end: u64,
        cx: &EmitCx<'_>,
    ) -> Result<Heard, Violation> {
        let text = std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.strip_suffix('\r'));
        let (ok, text) = match text {
            Some(t) if t.starts_with("ok ") => (true, &t[3..]),
            Some(t) if t.starts_with("err ") => (false, &t[4..]),
            Some(t) if t.starts_with("user ") || t.starts_with("ip ") => {
                conn.o.rows += 1;
                return Ok(Heard::Other);
            }
            _ => {
                return Err(Violation::new(
                    "server_lines_are_understood",
                    format!("admin line {:?}", String::from_utf8_lossy(raw)),
                ))
            }
        };
        let Some(Sent::Admin(cmd)) = conn.o.sent.pop_front() else {
            return Err(Violation::new(
                "replies_answer_requests",
                format!("admin answer {text:?} to no command"),
            ));
        };
        let rows = std::mem::take(&mut conn.o.rows);
        self.admin_answer(conn, &cmd, ok, text, rows, after, end, cx)?;
        Ok(Heard::AdminAnswer { ok })
    }

    #[allow(clippy::too_many_arguments)]
    fn admin_answer(
        &mut self,
        conn: &mut Conn,
        cmd: &AdminCommand,
        ok: bool,
        text: &str,
        rows: u64,
        after: Option<Seq>,
        end: u64,
        cx: &EmitCx<'_>,
    ) -> Result<(), Violation> {
        let holder = |name: &str| self.holders.get(&codec::key(name)).map(|(c, _)| *c);
        let answer_error = |why: String| Violation::new("replies_answer_requests", why);
        if !ok {
            if let AdminCommand::Kick { name } = cmd {
                if text.ends_with(" is not online") && holder(name).is_some() {
                    return Err(answer_error(format!("{name} is online, yet: {text}")));
                }
            }
            self.durable.refused(cmd);
            return Ok(());
        }
        let change = after.and_then(|seq| cx.store.change(seq));
        let link = |claims: &dyn Fn(&Change) -> bool| {
            check!(acknowledgements_wait_on_their_change(
                after,
                change,
                claims,
                &format!("ok {text}")
            ))
        };
        let same =
            |a: &switchboard_proto::UserName, b: &str| codec::key(a.as_str()) == codec::key(b);
        let mut kick = None;
        match cmd {
            AdminCommand::UserAdd {
                name,
                password,
                level,
                email,
                gender,
            } => link(&|c| {
                matches!(c, Change::AccountCreated(a)
                    if a.name.as_str() == name
                        && a.password.0 == fake_hash(password)
                        && a.ims_password.0 == fake_ims_hash(password)
                        && a.level == *level
                        && a.email == *email
                        && a.gender == *gender
                        && !a.banned)
            })?,
            AdminCommand::UserDel { name } => {
                link(&|c| matches!(c, Change::AccountDeleted { name: n } if same(n, name)))?;
                kick = Some(name);
            }
            AdminCommand::UserPasswd { name, password } => link(&|c| {
                matches!(c, Change::PasswordChanged { name: n, password: p, ims_password: i }
                    if same(n, name) && p.0 == fake_hash(password) && i.0 == fake_ims_hash(password))
            })?,
            AdminCommand::BanUser { name } => {
                link(
                    &|c| matches!(c, Change::UserBanned { name: n, banned: true } if same(n, name)),
                )?;
                kick = Some(name);
            }
            AdminCommand::UnbanUser { name } => link(
                &|c| matches!(c, Change::UserBanned { name: n, banned: false } if same(n, name)),
            )?,
            AdminCommand::BanIp(ip) => {
                if after.is_some() {
                    link(&|c| *c == Change::IpBanned(*ip))?;
                } else if !self.ip_banned.contains(ip) {
                    return Err(answer_error(format!("ok {text} without banning {ip}")));
                }
                self.ip_banned.insert(*ip);
                self.step.ip_bans.push((*ip, closed_count(text)));
            }
            AdminCommand::UnbanIp(ip) => {
                if after.is_some() {
                    link(&|c| *c == Change::IpUnbanned(*ip))?;
                } else if self.ip_banned.contains(ip) {
                    return Err(answer_error(format!("ok {text} but {ip} stays banned")));
                }
                self.ip_banned.remove(ip);
            }
            AdminCommand::Kick { name } => {
                if holder(name).is_none() {
                    return Err(answer_error(format!("ok {text} but {name} is not online")));
                }
                kick = Some(name);
            }
            AdminCommand::UserList => {
                if text != format!("{rows} accounts") {
                    return Err(answer_error(format!("ok {text} after {rows} rows")));
                }
            }
            AdminCommand::BanList => {}
        }
        if let Some(name) = kick {
            let target = holder(name);
            let count = closed_count(text);
            if count != u64::from(target.is_some()) {
                return Err(answer_error(format!(
                    "ok {text} but {name} is held by {target:?}"
                )));
            }
            self.step.kicks.extend(target);
        }
        if key_of(cmd).is_some() {
            conn.claims.push_back((end, Claim::Admin(cmd.clone())));
        }
        Ok(())
    }

    /// The gate released bytes of `conn` up to `conn.released`: what they promised must
    /// be committed.
    pub(crate) fn released(&mut self, conn: &mut Conn, committed: &State) -> Result<(), Violation> {
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
        if step.relays.is_empty()
            && step.echoes.is_empty()
            && step.kicks.is_empty()
            && step.ip_bans.is_empty()
        {
            return Ok(());
        }
        let closed: BTreeSet<ConnId> = step.closed.iter().copied().collect();
        let missing: Vec<(u64, u64)> = (step.relays.iter().chain(&step.echoes))
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

    /// A client read a direct message on `conn` while holding `names` there.
    pub(crate) fn client_read_chat(
        &mut self,
        conn: ConnId,
        names: &[String],
        heard: &Heard,
    ) -> Result<(), Violation> {
        let Heard::Chat {
            whisper,
            from,
            to,
            token,
        } = heard
        else {
            return Ok(());
        };
        let Some(m) = self.ledger.get_mut(*token) else {
            return Err(Violation::new(
                "direct_messages_reach_only_their_recipient",
                format!("{conn} read unknown m{token}"),
            ));
        };
        let echo = *whisper && m.sender == conn && codec::key(&m.to) != codec::key(&m.from);
        let count = if echo {
            m.echoes += 1;
            m.echoes
        } else {
            m.received += 1;
            m.received
        };
        let mine = echo || names.iter().any(|n| codec::key(n) == codec::key(to));
        let intact = if count == 1 {
            Ok(())
        } else {
            Err(format!("m{token} read {count} times on {conn}"))
        };
        let describe = || format!("m{token} from {from} to {to} read on {conn} holding {names:?}");
        check!(direct_messages_reach_only_their_recipient(
            mine, intact, &describe
        ))
    }
}
