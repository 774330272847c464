//! Judging ws2017 output: greetings and refusals, replies matched to requests, presence
//! notices, direct messages and receipts, kicks; and what a ws2017 client reads.

use switchboard_proto::{Change, ConnId, Seq};

use super::ledger::Fate;
use super::{check, registered, EmitCx, Oracle};
use crate::client::ws2017_codec::{self as codec, ServerLine};
use crate::client::{Heard, Sent};
use crate::invariants;
use crate::net::{Claim, Conn};
use crate::report::Violation;

impl Oracle {
    pub(super) fn ws2017_line(
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
                conn.o.ping_since.get_or_insert(cx.now);
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
            if !banned {
                check!(connection_caps_are_kept(conn.o.over_cap, &parsed))?;
                if conn.o.over_cap.is_some() {
                    conn.o.done = true;
                    return Ok(Heard::Banned);
                }
            }
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
            } => {
                let heard = self.chat_line(conn, whisper, from, to, body)?;
                if self.answers_whisper(conn, whisper, body) {
                    let token = codec::token_of(body).unwrap_or_default();
                    let passed = conn.o.self_whispers.iter().position(|&t| t == token);
                    match passed {
                        Some(i) => {
                            conn.o.self_whispers.swap_remove(i);
                        }
                        None => {
                            self.ws2017_reply(conn, parsed, after, end, cx)?;
                        }
                    }
                }
                Ok(heard)
            }
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
            L::Ping => {
                conn.o.ping_since.get_or_insert(cx.now);
                Ok(Heard::Ping)
            }
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
        // Judged against the model's events of this step, so a login whose reply was
        // lost (its connection closed for reading too slowly) still counts.
        let s = &self.step;
        let seen = match *parsed {
            ServerLine::UserJoined(n) => s.joined.iter().any(|j| j == n),
            ServerLine::UserLeft(n) => s.left.iter().any(|l| l == n),
            ServerLine::UserRenamed(old, new) => {
                s.renamed.iter().any(|(o, n)| o == old && n == new)
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
        // The echo of one's own whisper (or its only copy, sent to oneself) answers it.
        let holds = conn
            .o
            .name
            .as_ref()
            .is_some_and(|(k, _)| *k == codec::key(to));
        // A message from an account's client (ims) gets no relay line to match: it must
        // reach whoever holds the recipient's name.
        let from_account = msg.is_some() && self.ledger.sent_by_account(token);
        if self.track_direct {
            self.step.delivered.push((token, conn.id));
        }
        let mut expected = take(&mut self.step.relays)
            || (whisper && msg.is_some_and(|m| m.sender == conn.id))
            || (from_account && holds);
        self.ims_to_ws2017 += u64::from(from_account);
        if !expected {
            // The acknowledgement may have been dropped with its sender's connection (a
            // slow reader closed by it in this step): the message still goes to whoever
            // holds the recipient's name.
            let sender_gone = msg.is_some_and(|m| self.step.closed.contains(&m.sender));
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

    /// Whether a `chatw` line on `conn` is the answer to this connection's own whisper:
    /// its echo, or its only copy when sent to oneself. A whisper gets no `+OK` line.
    fn answers_whisper(&self, conn: &Conn, whisper: bool, body: &str) -> bool {
        whisper
            && codec::token_of(body)
                .and_then(|t| self.ledger.get(t))
                .is_some_and(|m| m.sender == conn.id)
    }

    /// A whisper of this connection's own name to itself always succeeds, and its only
    /// line, the copy, comes with the deliveries after the replies to the rest of the
    /// same read. A reply that is not that copy passes it over: the copy is then owed to
    /// this connection within the step, like any relayed message.
    fn self_whisper_passed(
        &mut self,
        conn: &mut Conn,
        sent: &Sent,
        reply: &ServerLine<'_>,
    ) -> bool {
        let Sent::Chat {
            token,
            whisper: true,
            from,
            to,
        } = sent
        else {
            return false;
        };
        let Some((own, _)) = conn.o.name.as_ref() else {
            return false;
        };
        if codec::key(from) != *own || codec::key(to) != *own {
            return false;
        }
        if let ServerLine::Chat { body, .. } = reply {
            if codec::token_of(body) == Some(*token) {
                return false;
            }
        }
        self.step.relays.push((*token, conn.id));
        if let Some(m) = self.ledger.get_mut(*token) {
            m.fate = Fate::Relayed;
        }
        self.receipts.entry((conn.id, own.clone())).or_default().0 += 1;
        conn.o.self_whispers.push(*token);
        true
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
            if self.self_whisper_passed(conn, &sent, &parsed) {
                continue;
            }
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
        // A bucket starts full: it can be empty only after its burst of requests. Worked
        // out only for a refusal (the rest of the time it is not needed).
        let l = &self.limits;
        let slow_down = matches!(&parsed, L::Error { text, .. } if *text == invariants::SLOW_DOWN);
        let from_ip = (conn.ip.filter(|_| slow_down))
            .and_then(|ip| self.requests_per_ip.get(&ip))
            .copied();
        let (from_ip_unames, from_ip_chats) = from_ip.unwrap_or_default();
        let rate_spent = match &sent {
            _ if !slow_down => false,
            Sent::Uname(_) => {
                conn.o.unames >= u64::from(l.broadcast_per_conn.burst)
                    || from_ip_unames >= u64::from(l.broadcast_per_ip.burst)
            }
            // A chat to another online user takes a token from the message buckets, one
            // stored for an offline account from the durable ones; either can be empty
            // only after its burst of chats (the count is of both kinds).
            Sent::Chat { .. } => {
                let conn_burst = l.durable_per_conn.burst.min(l.message_per_conn.burst);
                let ip_burst = l.durable_per_ip.burst.min(l.message_per_ip.burst);
                conn.o.chats >= u64::from(conn_burst) || from_ip_chats >= u64::from(ip_burst)
            }
            _ => false,
        };
        // The sender's share, counted by walking the server's mailbox (not its counts).
        let share_refusal =
            matches!(&parsed, L::Error { text, .. } if text.starts_with("your share of"));
        let share_used = match (&sent, own.as_deref()) {
            (Sent::Chat { to, .. }, Some(me)) if share_refusal => {
                let me = codec::key(me);
                let held = switchboard_proto::UserName::parse(to)
                    .ok()
                    .and_then(|to| cx.state.offline.get(&to.key()))
                    .map_or(0, |q| {
                        q.iter()
                            .filter(|m| codec::key(m.from.as_str()) == me)
                            .count()
                    });
                held >= self.share
            }
            _ => false,
        };
        let view = invariants::ReplyView {
            rate_spent,
            share_used,
            own: own.as_deref(),
            held_by_self: holder == Some(conn.id),
            held_by_other: holder.is_some_and(|c| c != conn.id),
            registered: subject.is_some_and(|s| registered(cx.state, s)),
            store_failing: self.store_failing,
            behind_mailbox: subject.is_some_and(|s| self.behind_mailbox.contains(&codec::key(s))),
        };
        check!(replies_answer_requests(&sent, &parsed, &view))?;
        let heard = match (&sent, parsed) {
            (Sent::Uname(_), L::NameSet(name)) if conn.o.name.is_none() => {
                let key = codec::key(name);
                check!(nicks_are_exclusive(name, holder.map(|c| c.0), conn.id.0))?;
                let banned = conn.ip.is_some_and(|ip| self.ip_banned.contains(&ip));
                check!(banned_get_no_session(banned, None, true))?;
                conn.o.name = Some((key, name.to_owned()));
                Heard::NameSet(name.to_owned())
            }
            (Sent::Uname(_), L::NameSet(name)) => {
                check!(nicks_are_exclusive(name, holder.map(|c| c.0), conn.id.0))?;
                let key = codec::key(name);
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
            (Sent::Uname(_), L::Error { text, .. }) if text == invariants::SLOW_DOWN => {
                Heard::SlowDown
            }
            (Sent::Uname(_), _) => Heard::NameRefused,
            (
                Sent::Chat {
                    token, whisper, to, ..
                },
                reply,
            ) => {
                // A whisper's echo (its answer) came with an online recipient, or, held
                // until the commit, for an offline account.
                // (A recipient whose mailbox is still being handed out counts as offline.)
                let stored_echo = *whisper && (holder.is_none() || view.behind_mailbox);
                match reply {
                    L::Relayed | L::Chat { .. } if !stored_echo => {
                        // The copy to oneself is this very line.
                        if let Some(recipient) = holder.filter(|&c| c != conn.id || !*whisper) {
                            self.step.relays.push((*token, recipient));
                        }
                        if let Some(m) = self.ledger.get_mut(*token) {
                            m.fate = Fate::Relayed;
                        }
                        self.receipts
                            .entry((conn.id, codec::key(to)))
                            .or_default()
                            .0 += 1;
                    }
                    L::Stored | L::Chat { .. } => {
                        let ledger = &self.ledger;
                        let claims = |c: &Change| matches!(c, Change::OfflineQueued(m) if ledger.matches(*token, m));
                        let change = after.and_then(|seq| cx.store.change(seq));
                        check!(acknowledgements_wait_on_their_change(
                            after,
                            change,
                            &claims,
                            &format!("m{token} stored")
                        ))?;
                        // The ledger heard of the storing from the model's event.
                        conn.claims.push_back((end, Claim::Stored(*token)));
                    }
                    L::Error { text, .. } => {
                        if let Some(m) = self.ledger.get_mut(*token) {
                            m.fate = if text.contains("mailbox") {
                                Fate::Full
                            } else if text == invariants::SLOW_DOWN {
                                Fate::SlowedDown
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
