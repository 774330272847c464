//! The oracle's reading of opcode lines, as the server emits them (one per CRLF line).
//!
//! The opcode client ([`OpcodeClient`](crate::client::opcode::OpcodeClient)) checks every
//! answer against what it asked (one request at a time). What needs the world's view is
//! judged here, in the server's order, before the commit gate:
//! - each request gets exactly one answer line that opens its reply (`210` to `232`,
//!   without the list elements and pushes); a `219 400` answers a MessageSend with the
//!   message it carries, and one the model stored for an offline member must wait on the
//!   very change that stores it (`acknowledgements_wait_on_their_change`) and leave the
//!   gate only committed (`acknowledged_changes_are_committed`);
//! - a `220` carries a message as it was sent (its token's text), reaches only a
//!   connection logged in as its recipient (or the sender's own, as the echo), from any
//!   protocol (`direct_messages_reach_only_their_recipient`), and comes in a chat of which
//!   both are members: a chat of the store, or one for this login only, with an id from
//!   2^62 up (`opcode_chat_membership_respected`);
//! - nothing may reach a connection refused past the connection caps.

use switchboard_proto::{ChatId, Seq, UserKey};

use super::{check, EmitCx, Oracle};
use crate::client::opcode::decode;
use crate::client::ws2017_codec as codec;
use crate::client::Heard;
use crate::net::Conn;
use crate::report::Violation;

/// Chat ids from here up are chats for one login only (with a sender without an account).
const EPHEMERAL_CHATS: u64 = 1 << 62;

/// The first line of the answer to a request (list elements and pushes are not).
fn opens_answer(op: u16) -> bool {
    matches!(
        op,
        210..=214 | 217..=219 | 222 | 223 | 227 | 228 | 232
    )
}

impl Oracle {
    /// One line the server emitted on an opcode connection.
    pub(super) fn opcode_line(
        &mut self,
        conn: &mut Conn,
        raw: &[u8],
        after: Option<Seq>,
        end: u64,
        cx: &EmitCx<'_>,
    ) -> Result<Heard, Violation> {
        let mut heard = raw.to_vec();
        heard.push(b'\n');
        let unreadable = || {
            Violation::new(
                "server_lines_are_understood",
                format!("{}: {:?}", conn.id, String::from_utf8_lossy(raw)),
            )
        };
        let line = std::str::from_utf8(raw).map_err(|_| unreadable())?;
        let line = line.strip_suffix('\r').ok_or_else(unreadable)?;
        if let Some(cap) = conn.o.over_cap {
            return Err(Violation::new(
                "connection_caps_are_kept",
                format!(
                    "{}: past the cap ({cap}) an opcode connection is closed in silence, got {line:?}",
                    conn.id
                ),
            ));
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let op: u16 = fields[0].parse().map_err(|_| unreadable())?;
        if opens_answer(op) {
            let Some(token) = conn.o.login_asked.pop_front() else {
                return Err(Violation::new(
                    "replies_answer_requests",
                    format!("{}: {line:?} answers nothing", conn.id),
                ));
            };
            match (op, token) {
                (219, Some(token)) => {
                    let ok = fields.get(1) == Some(&"400");
                    self.login_message_answered(conn, token, ok, after, end, cx)?;
                }
                (219, None) => {
                    let problem = format!(
                        "{}: {line:?} answers a request that sent no message",
                        conn.id
                    );
                    check!(opcode_chat_membership_respected(Some(problem)))?;
                }
                (_, Some(token)) => {
                    self.login_message_answered(conn, token, false, after, end, cx)?
                }
                _ => {}
            }
        } else if op == 220 && fields.len() >= 4 {
            self.opcode_message(conn, &fields, line, cx)?;
        }
        Ok(Heard::Line(heard))
    }

    /// A `220`: the echo of this connection's own message, or a delivery.
    fn opcode_message(
        &mut self,
        conn: &mut Conn,
        fields: &[&str],
        line: &str,
        cx: &EmitCx<'_>,
    ) -> Result<(), Violation> {
        let me = self.sessions.get(&conn.id).cloned();
        let text = String::from_utf8(decode(fields[3])).unwrap_or_default();
        let token = codec::token_of(&text);
        let msg = token.and_then(|t| self.ledger.get(t)).cloned();
        let msg = msg.as_ref();
        let token = token.unwrap_or_default();
        let intact = match msg {
            Some(_) if text == codec::body(token) => Ok(()),
            Some(m) => Err(format!("{m:?} arrived as {line:?}")),
            None => Err(format!("unknown message {line:?}")),
        };
        let echo = msg.is_some_and(|m| m.sender == conn.id);
        let mine = echo || msg.is_some_and(|m| me.as_deref() == Some(codec::key(&m.to).as_str()));
        if !echo {
            self.step_delivered(token, conn.id);
        }
        let describe = || format!("m{token} {line:?} (on {})", conn.id);
        check!(direct_messages_reach_only_their_recipient(
            mine, intact, &describe
        ))?;
        // The chat: one of the store's with both users (unless deleted since the message
        // was stored), or one for this login only.
        let chat: u64 = fields[1].parse().unwrap_or_default();
        let problem = match (chat >= EPHEMERAL_CHATS, cx.state.chats.get(&ChatId(chat))) {
            (true, _) | (false, None) => None,
            (false, Some(c)) => {
                let member = |name: &str| UserKey::of(name).is_ok_and(|k| c.members.contains(&k));
                let (from, to) = msg.map_or((String::new(), String::new()), |m| {
                    (m.from.clone(), m.to.clone())
                });
                let ok = member(&from) && member(&to);
                (!ok).then(|| {
                    format!(
                        "m{token} from {from} to {to} came in chat {chat} on {}",
                        conn.id
                    )
                })
            }
        };
        check!(opcode_chat_membership_respected(problem))
    }
}
