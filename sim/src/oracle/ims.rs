//! The oracle's reading of ims documents, as the server emits them (one per line).
//!
//! The ims client ([`ImsClient`](crate::client::ims::ImsClient)) checks every line it
//! reads against what it sent (each document's echo, then its answer). What needs the
//! world's view is judged here, in the server's order, before the commit gate:
//! - `<MESSAGE result="-1"/>` answers the MESSAGE echoed before it; it must wait on the
//!   very change that stores it and leave the gate only once that change is committed
//!   (the same claim a ws2017 `stored` makes: `acknowledged_changes_are_committed`);
//! - a pushed `<MESSAGE from=.. to=..>` carries a message as it was sent, from the sender
//!   it names, and reaches only a connection logged in as its recipient
//!   (`direct_messages_reach_only_their_recipient`), from any protocol;
//! - nothing may reach a connection refused past the connection caps (the refusal is
//!   silent);
//! - the ALIVE timeout closes only a connection silent for the whole timeout
//!   (`alive_timeouts_are_kept`, judged where the close is seen).
//!
//! Stored messages read by an ims client are reported to the ledger
//! ([`Ledger::read_by_account`](super::ledger::Ledger::read_by_account)): at most once,
//! or again after a crash.

use switchboard_proto::{Change, Seq};

use super::ledger::Fate;
use super::{check, EmitCx, Oracle};
use crate::client::ims::attr;
use crate::client::ws2017_codec as codec;
use crate::client::Heard;
use crate::net::{Claim, Conn};
use crate::report::Violation;

impl Oracle {
    /// One line the server emitted on an ims connection.
    pub(super) fn ims_line(
        &mut self,
        conn: &mut Conn,
        raw: &[u8],
        after: Option<Seq>,
        end: u64,
        cx: &EmitCx<'_>,
    ) -> Result<Heard, Violation> {
        let mut heard = raw.to_vec();
        heard.push(b'\n');
        let Ok(line) = std::str::from_utf8(raw) else {
            return Err(Violation::new(
                "server_lines_are_understood",
                format!("{}: an ims document that is not UTF-8", conn.id),
            ));
        };
        if let Some(cap) = conn.o.over_cap {
            return Err(Violation::new(
                "connection_caps_are_kept",
                format!(
                    "{}: past the cap ({cap}) an ims connection is closed in silence, got {line:?}",
                    conn.id
                ),
            ));
        }
        if line.starts_with("<LOGIN user=") && attr(line, "result").as_deref() == Some("1") {
            if let Some(user) = attr(line, "user") {
                conn.o.name = Some((codec::key(&user), user));
            }
        } else if line.starts_with("<MESSAGE result=") {
            self.ims_message_result(conn, line, after, end, cx)?;
        } else if line.starts_with("<MESSAGE from=") {
            self.ims_message(conn, line)?;
        }
        Ok(Heard::Line(heard))
    }

    /// The answer to the MESSAGE echoed last.
    fn ims_message_result(
        &mut self,
        conn: &mut Conn,
        line: &str,
        after: Option<Seq>,
        end: u64,
        cx: &EmitCx<'_>,
    ) -> Result<(), Violation> {
        let Some(token) = conn.o.ims_echoed.pop_front() else {
            return Err(Violation::new(
                "replies_answer_requests",
                format!("{}: {line:?} answers no MESSAGE", conn.id),
            ));
        };
        match attr(line, "result").as_deref() {
            Some("-1") => {
                let ledger = &self.ledger;
                let claims =
                    |c: &Change| matches!(c, Change::OfflineQueued(m) if ledger.matches(token, m));
                let change = after.and_then(|seq| cx.store.change(seq));
                check!(acknowledgements_wait_on_their_change(
                    after,
                    change,
                    &claims,
                    &format!("m{token} stored (ims -1)")
                ))?;
                conn.claims.push_back((end, Claim::Stored(token)));
            }
            Some("1") => {
                if let Some(m) = self.ledger.get_mut(token) {
                    if m.fate == Fate::Sent {
                        m.fate = Fate::Relayed;
                    }
                }
            }
            _ => {
                if let Some(m) = self.ledger.get_mut(token) {
                    if m.fate == Fate::Sent {
                        m.fate = Fate::Refused;
                    }
                }
            }
        }
        Ok(())
    }

    /// A MESSAGE with `from`: the echo of one of this connection's own, or a delivery.
    fn ims_message(&mut self, conn: &mut Conn, line: &str) -> Result<(), Violation> {
        let text = line
            .split_once('>')
            .and_then(|(_, rest)| rest.strip_suffix("</MESSAGE>"))
            .map(crate::client::ims::unescape);
        let token = text.as_deref().and_then(codec::token_of);
        let msg = token.and_then(|t| self.ledger.get(t));
        // Its own, not yet echoed: the echo (answered next, if the session is logged in;
        // before the login a document gets its echo only).
        if let (Some(t), Some(m)) = (token, msg) {
            if m.sender == conn.id && conn.o.ims_last_echo.is_none_or(|last| t > last) {
                conn.o.ims_last_echo = Some(t);
                if conn.o.name.is_some() {
                    conn.o.ims_echoed.push_back(t);
                }
                return Ok(());
            }
        }
        let (from, to) = (attr(line, "from"), attr(line, "to"));
        let token = token.unwrap_or_default();
        let intact = match msg {
            Some(m)
                if text.as_deref() == Some(codec::body(token).as_str())
                    && from.as_deref().map(codec::key) == Some(codec::key(&m.from))
                    && to.as_deref().map(codec::key) == Some(codec::key(&m.to)) =>
            {
                Ok(())
            }
            Some(m) => Err(format!("{m:?} arrived as {line:?}")),
            None => Err(format!("unknown message {line:?}")),
        };
        // It reaches the connection logged in as its recipient, and no other.
        let mine = msg.is_some_and(|m| {
            conn.o
                .name
                .as_ref()
                .is_some_and(|(k, _)| *k == codec::key(&m.to))
        });
        self.step_delivered(token, conn.id);
        let describe = || format!("m{token} {line:?} (on {})", conn.id);
        check!(direct_messages_reach_only_their_recipient(
            mine, intact, &describe
        ))
    }
}
