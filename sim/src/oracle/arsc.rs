//! The oracle's reading of arsc lines, as the server emits them (one per line).
//!
//! The arsc client ([`ArscClient`](crate::client::arsc::ArscClient)) checks every answer
//! against what it asked. What needs the world's view is judged here, in the server's
//! order, before the commit gate:
//! - an `<arscrespond>` answers the oldest unanswered request of its connection; the `ok`
//!   of a `/msg` the model stored for an offline account must wait on the very change
//!   that stores it and leave the gate only once it is committed (the claim a ws2017
//!   `stored` makes: `acknowledged_changes_are_committed`);
//! - a `whisper` from a user carries a message as it was sent, from the sender it names,
//!   and reaches only a connection logged in as its recipient, from any protocol
//!   (`direct_messages_reach_only_their_recipient`); the `System` confirmation
//!   `You whispered to NAME: TEXT` reaches only the sender;
//! - no direct message shows in a room: no `normal`, `me`, `system` or `whisperops` line
//!   carries a message's token (`whispers_stay_out_of_rooms`);
//! - a connection refused past the connection caps gets only the cap's `system` message.

use switchboard_proto::{Change, Seq};

use super::ledger::Fate;
use super::{check, EmitCx, Oracle};
use crate::client::arsc::{parse_line, Line};
use crate::client::ws2017_codec as codec;
use crate::client::Heard;
use crate::net::{Claim, Conn};
use crate::report::Violation;

impl Oracle {
    /// One line the server emitted on an arsc connection.
    pub(super) fn arsc_line(
        &mut self,
        conn: &mut Conn,
        raw: &[u8],
        after: Option<Seq>,
        end: u64,
        cx: &EmitCx<'_>,
    ) -> Result<Heard, Violation> {
        let mut heard = raw.to_vec();
        heard.push(b'\n');
        let parsed = std::str::from_utf8(raw).ok().and_then(parse_line);
        let Some(line) = parsed else {
            return Err(Violation::new(
                "server_lines_are_understood",
                format!("{}: {:?}", conn.id, String::from_utf8_lossy(raw)),
            ));
        };
        if let Some(cap) = conn.o.over_cap {
            // Past a cap an arsc connection gets the cap's `system` message, then the close.
            if let Line::Message { kind, content, .. } = &line {
                let told = content.trim_end_matches('.').to_lowercase();
                if kind == "system" && told == cap {
                    return Ok(Heard::Line(heard));
                }
            }
            return Err(Violation::new(
                "connection_caps_are_kept",
                format!(
                    "{}: past the cap ({cap}) an arsc connection is closed in silence, got {line:?}",
                    conn.id
                ),
            ));
        }
        match line {
            Line::Respond { ok, .. } => {
                // A request the client does not follow (a typeless one) is answered by a
                // `system` message; everything else by its response, in order.
                let token = conn.o.login_asked.pop_front().flatten();
                if let Some(token) = token {
                    self.login_message_answered(conn, token, ok, after, end, cx)?;
                }
            }
            Line::Message {
                kind,
                sender,
                content,
            } => self.arsc_message(conn, &kind, &sender, &content)?,
        }
        Ok(Heard::Line(heard))
    }

    fn arsc_message(
        &mut self,
        conn: &mut Conn,
        kind: &str,
        sender: &str,
        content: &str,
    ) -> Result<(), Violation> {
        let me = self.sessions.get(&conn.id).cloned();
        if kind != "whisper" {
            // No direct message in a room.
            let leak = content
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter_map(|w| w.strip_prefix('m').and_then(|t| t.parse::<u64>().ok()))
                .find(|t| self.ledger.get(*t).is_some())
                .map(|t| {
                    format!(
                        "m{t} reached {} as {kind} from {sender}: {content:?}",
                        conn.id
                    )
                });
            return check!(whispers_stay_out_of_rooms(leak));
        }
        if sender == "System" {
            // The sender's confirmation: only to the sender.
            let Some(text) = content
                .strip_prefix("You whispered to ")
                .and_then(|rest| rest.split_once(": "))
                .map(|(_, text)| text)
            else {
                return Ok(());
            };
            let Some(token) = codec::token_of(text) else {
                return Ok(());
            };
            let mine = self
                .ledger
                .get(token)
                .is_some_and(|m| me.as_deref() == Some(codec::key(&m.from).as_str()));
            let intact = match text == codec::body(token) {
                true => Ok(()),
                false => Err(format!("m{token} confirmed as {content:?}")),
            };
            let describe = || format!("the confirmation of m{token} (on {})", conn.id);
            return check!(direct_messages_reach_only_their_recipient(
                mine, intact, &describe
            ));
        }
        let token = codec::token_of(content);
        let msg = token.and_then(|t| self.ledger.get(t));
        let token = token.unwrap_or_default();
        let intact = match msg {
            Some(m)
                if content == codec::body(token) && codec::key(sender) == codec::key(&m.from) =>
            {
                Ok(())
            }
            Some(m) => Err(format!(
                "{m:?} arrived as a whisper from {sender}: {content:?}"
            )),
            None => Err(format!("unknown message {content:?} from {sender}")),
        };
        let mine = msg.is_some_and(|m| me.as_deref() == Some(codec::key(&m.to).as_str()));
        self.step_delivered(token, conn.id);
        let describe = || format!("m{token} whispered by {sender} (on {})", conn.id);
        check!(direct_messages_reach_only_their_recipient(
            mine, intact, &describe
        ))
    }

    /// Message `token` was handed to `conn` in this step: a relay owed to it is paid.
    pub(super) fn step_delivered(&mut self, token: u64, conn: switchboard_proto::ConnId) {
        if let Some(i) = (self.step.relays.iter()).position(|&e| e == (token, conn)) {
            self.step.relays.swap_remove(i);
        }
        self.step.delivered.push((token, conn));
    }

    /// The answer to a request of `conn` that carried message `token`: `ok` (arsc) or
    /// `219 400` (opcode) means relayed or stored; a stored one must wait on its change.
    pub(super) fn login_message_answered(
        &mut self,
        conn: &mut Conn,
        token: u64,
        ok: bool,
        after: Option<Seq>,
        end: u64,
        cx: &EmitCx<'_>,
    ) -> Result<(), Violation> {
        let fate = self.ledger.get(token).map(|m| m.fate);
        match (ok, fate) {
            (true, Some(Fate::Stored(_))) => {
                let ledger = &self.ledger;
                let claims =
                    |c: &Change| matches!(c, Change::OfflineQueued(m) if ledger.matches(token, m));
                let change = after.and_then(|seq| cx.store.change(seq));
                check!(acknowledgements_wait_on_their_change(
                    after,
                    change,
                    &claims,
                    &format!("m{token} stored (answered on {})", conn.id)
                ))?;
                conn.claims.push_back((end, Claim::Stored(token)));
            }
            (true, Some(Fate::Sent)) => {
                let Some(m) = self.ledger.get_mut(token) else {
                    return Ok(());
                };
                // An `ok` may also come with a refusal told as a whisper (arsc): relayed
                // is what the model's event says.
                let pair = (codec::key(&m.from), codec::key(&m.to));
                if !self.step.direct_delivered.contains(&pair) {
                    return Ok(());
                }
                m.fate = Fate::Relayed;
                // Relayed to an online recipient: its connection gets it in this step
                // (`relayed_messages_are_delivered`), unless it was emitted already.
                if let Some(&(holder, _)) = self.holders.get(&pair.1) {
                    if !self.step.delivered.contains(&(token, holder)) {
                        self.step.relays.push((token, holder));
                    }
                }
            }
            (false, Some(Fate::Sent)) => {
                if let Some(m) = self.ledger.get_mut(token) {
                    m.fate = Fate::Refused;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
