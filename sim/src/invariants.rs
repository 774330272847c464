//! The invariants, one function each. The oracle calls them at the moment they can be
//! decided (when the server emits a line, when the commit gate releases it, when a batch
//! commits, when the server restarts, at the end of every step, at the end of the run),
//! which is after every step; a failure names the function.
//!
//! Each returns `Err(detail)` when the invariant does not hold.

use switchboard_proto::{Change, Seq, Stats};

use crate::client::ws2017_codec::{self as codec, ServerLine};
use crate::client::Sent;

/// Result of an invariant check: `Err` holds what was seen.
pub(crate) type Check<T = ()> = Result<T, String>;

/// Everything the server sends parses as a line of its protocol, and ends with CRLF.
pub(crate) fn server_lines_are_understood(line: &[u8]) -> Check<ServerLine<'_>> {
    let Some(body) = line.strip_suffix(b"\r") else {
        return Err(format!(
            "line without CRLF: {:?}",
            String::from_utf8_lossy(line)
        ));
    };
    codec::decode(body).ok_or_else(|| {
        format!(
            "no ws2017 client understands {:?}",
            String::from_utf8_lossy(body)
        )
    })
}

/// The refusal of a request past a rate limit.
pub(crate) const SLOW_DOWN: &str = "too many requests, slow down";
/// The refusal of a connection past `Limits::max_connections`.
pub(crate) const TOO_MANY_CONNECTIONS: &str = "too many connections, try again later";
/// The refusal of a connection past `Limits::max_connections_per_ip`.
pub(crate) const TOO_MANY_FROM_IP: &str = "too many connections from your address";

/// A connection is refused, with the cap's reason instead of a greeting, exactly when
/// the server already holds its most connections in all or from that address.
pub(crate) fn connection_caps_are_kept(over_cap: Option<&str>, first: &ServerLine<'_>) -> Check {
    let refusal = match first {
        ServerLine::Error {
            command: None,
            text,
        } if [TOO_MANY_CONNECTIONS, TOO_MANY_FROM_IP].contains(text) => Some(*text),
        _ => None,
    };
    if refusal == over_cap {
        Ok(())
    } else {
        Err(format!(
            "first line {first:?} where the caps call for {}",
            over_cap.unwrap_or("a greeting")
        ))
    }
}

/// What the oracle knows when it judges a reply.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReplyView<'a> {
    /// The connection's name on the server, if it has one.
    pub own: Option<&'a str>,
    /// Whether the name the request is about (asked for, or the recipient) is held by
    /// this connection or by another.
    pub held_by_self: bool,
    /// Held by another connection.
    pub held_by_other: bool,
    /// That name is a registered account (the server's state).
    pub registered: bool,
    /// The last commit failed and none has succeeded since.
    pub store_failing: bool,
    /// The connection, or its address, has made at least a burst of requests of this
    /// kind: the server's bucket may be empty.
    pub rate_spent: bool,
    /// The connection's name holds its share of the recipient's mailbox.
    pub share_used: bool,
    /// The name is online but its mailbox is still being handed out at its login
    /// (`NetworkEvent::MailboxPaused`): messages to it are stored behind the mailbox.
    pub behind_mailbox: bool,
}

/// Every reply answers the oldest request not yet answered, in the way the protocol says
/// that request is answered given the state of the network: a name is confirmed only if
/// free (`you are`, at login and rename alike), a message is "relayed" only to an online
/// name and "stored" only for an offline account, a whisper is answered by its echo
/// alone (never a `+OK chatw` line), an error names the right command and the right
/// reason.
pub(crate) fn replies_answer_requests(
    sent: &Sent,
    reply: &ServerLine<'_>,
    v: &ReplyView<'_>,
) -> Check {
    use ServerLine as L;
    let bad = || Err(format!("{reply:?} does not answer {sent:?} (given {v:?})"));
    let not_allowed = |kw: &str| {
        matches!(reply, L::Error { command: Some(c), text: "not allowed before uname" } if *c == kw)
            && v.own.is_none()
    };
    let ok = match sent {
        Sent::Uname(asked) => match *reply {
            L::NameSet(n) if v.own.is_none() => {
                n == asked && codec::valid_name(asked) && !v.held_by_other && !v.registered
            }
            L::NameSet(n) => {
                v.own.is_some_and(|o| o != asked)
                    && n == asked
                    && codec::valid_name(asked)
                    && !v.held_by_other
            }
            L::NameTaken(s) => {
                let same_key = v.own.is_some_and(|o| codec::key(o) == codec::key(asked));
                codec::valid_name(asked)
                    && codec::valid_name(s)
                    && (v.held_by_other || (v.registered && !same_key))
            }
            L::Error {
                command: Some("uname"),
                text,
            } => match text {
                "same username entered" => v.own == Some(asked.as_str()),
                "username is empty"
                | "username is too long"
                | "username contains invalid characters" => !codec::valid_name(asked),
                // Refused where it would have been confirmed (broadcast).
                SLOW_DOWN => {
                    v.rate_spent
                        && codec::valid_name(asked)
                        && !v.held_by_other
                        && v.own != Some(asked.as_str())
                        && !(v.registered
                            && v.own.is_none_or(|o| codec::key(o) != codec::key(asked)))
                }
                _ => false,
            },
            _ => false,
        },
        Sent::Chat {
            whisper, from, to, ..
        } => {
            let kw = if *whisper { "chatw" } else { "chatm" };
            let mine = v.own.is_some_and(|o| codec::key(o) == codec::key(from));
            // Reached live; a name behind its mailbox is treated as offline.
            let online = (v.held_by_self || v.held_by_other) && !v.behind_mailbox;
            match *reply {
                _ if not_allowed(kw) => true,
                L::Relayed => !*whisper && mine && online,
                L::Stored => !*whisper && mine && !online && v.registered && !v.store_failing,
                // The echo of a whisper: to the recipient online, or stored for it.
                L::Chat {
                    whisper: true,
                    from: f,
                    to: t,
                    ..
                } => {
                    *whisper
                        && mine
                        && codec::key(f) == codec::key(from)
                        && codec::key(t) == codec::key(to)
                        && (online || (v.registered && !v.store_failing))
                }
                L::Error {
                    command: Some(c),
                    text,
                } if c == kw => {
                    if text == format!("sender name {from} is not yours") {
                        v.own.is_some() && !mine
                    } else if text == format!("recipient name {to} does not exist") {
                        v.own.is_some()
                            && mine
                            && !online
                            && (!v.registered || !codec::valid_name(to))
                    } else if text.starts_with("the mailbox of ") && text.ends_with(" is full") {
                        mine && !online && v.registered
                    } else if text == format!("your share of the mailbox of {to} is used up")
                        || text.starts_with("your share of the mailbox of ")
                            && text.ends_with(" is used up")
                    {
                        mine && !online && v.registered && v.share_used
                    } else if text == SLOW_DOWN {
                        // Refused where it would have been relayed (a chat message) or
                        // stored (durable work).
                        mine && v.rate_spent && (online || (v.registered && !v.store_failing))
                    } else if text == "message could not be stored, try again later" {
                        mine && !online && v.registered && v.store_failing
                    } else {
                        false
                    }
                }
                _ => false,
            }
        }
        Sent::Chatr => {
            not_allowed("chatr")
                || matches!(*reply, L::Error { command: Some("chatr"), text }
                    if v.own.is_some() && (text.ends_with(" is not yours") || text.ends_with(" does not exist")))
        }
        Sent::Cgetu => not_allowed("cgetu") || matches!(reply, L::Users(_) if v.own.is_some()),
        Sent::Cgetg => not_allowed("cgetg") || matches!(reply, L::Games if v.own.is_some()),
        Sent::Cping => not_allowed("cping") || matches!(reply, L::Pong if v.own.is_some()),
        Sent::Cquit => matches!(reply, L::Bye),
        Sent::Garbage => matches!(reply, L::Error { command: None, .. }),
        Sent::Cpong | Sent::Blank | Sent::Partial | Sent::Admin(_) | Sent::Login { .. } => false,
    };
    if ok {
        Ok(())
    } else {
        bad()
    }
}

/// Whether `reply` may be the answer to `sent`, for requests that may also get none
/// (a receipt is answered only when refused).
pub(crate) fn answers(sent: &Sent, reply: &ServerLine<'_>) -> bool {
    match sent {
        Sent::Chatr => matches!(
            reply,
            ServerLine::Error {
                command: Some("chatr"),
                ..
            }
        ),
        _ => !sent.may_be_silent(),
    }
}

/// No two connections hold the same name (compared case-insensitively) at once.
pub(crate) fn nicks_are_exclusive(name: &str, holder: Option<u64>, conn: u64) -> Check {
    match holder {
        Some(other) if other != conn => Err(format!(
            "{name} confirmed to c{conn} while c{other} holds it"
        )),
        _ => Ok(()),
    }
}

/// A banned address or account gets no session: a connection from a banned address is
/// refused with the protocol's error and nothing else, a name is never confirmed to one,
/// and banning an address closes every connection from it at once.
pub(crate) fn banned_get_no_session(
    ip_banned: bool,
    first_line: Option<&ServerLine<'_>>,
    named: bool,
) -> Check {
    if let Some(line) = first_line {
        let refused =
            matches!(line, ServerLine::Error { command: None, text } if *text == codec::BANNED_IP);
        return match (ip_banned, refused, line) {
            (true, true, _) | (false, false, ServerLine::Greeting) => Ok(()),
            (true, false, _) => Err(format!("banned address greeted with {line:?}")),
            _ => Err(format!(
                "first line {line:?} is neither greeting nor refusal"
            )),
        };
    }
    if ip_banned && named {
        return Err("a connection from a banned address holds a name".to_owned());
    }
    Ok(())
}

/// A reply that reveals a durable change (`message stored`, an admin `ok`) waits on that
/// very change: its `after` names a `Persist` of this boot whose change is what the
/// reply claims.
pub(crate) fn acknowledgements_wait_on_their_change(
    after: Option<Seq>,
    persisted: Option<&Change>,
    claims: &dyn Fn(&Change) -> bool,
    what: &str,
) -> Check {
    let Some(seq) = after else {
        return Err(format!("{what} sent without waiting on its change"));
    };
    match persisted {
        Some(change) if claims(change) => Ok(()),
        Some(change) => Err(format!("{what} waits on #{} which is {change:?}", seq.0)),
        None => Err(format!(
            "{what} waits on #{} which was never persisted in this boot",
            seq.0
        )),
    }
}

/// A direct message, whisper or its echo reaches only the connection that held the
/// recipient's name when the server accepted it, or the sender's own connection (the
/// echo of a whisper); its sender, recipient and text arrive intact.
pub(crate) fn direct_messages_reach_only_their_recipient(
    expected_here: bool,
    intact: Result<(), String>,
    describe: &dyn Fn() -> String,
) -> Check {
    intact?;
    if expected_here {
        Ok(())
    } else {
        Err(format!(
            "{} reached a connection it was not for",
            describe()
        ))
    }
}

/// A room's members all see its posts in one order (arsc): any two clients saw the posts
/// both saw in the same order, across rooms, sessions and restarts.
pub(crate) fn room_posts_in_one_order(disagreement: Option<String>) -> Check {
    match disagreement {
        None => Ok(()),
        Some(problem) => Err(problem),
    }
}

/// A direct message reaches no room (arsc): its token shows in no `normal`, `me`,
/// `system` or `whisperops` line, only as the whisper to its recipient and the sender's
/// `System` confirmation.
pub(crate) fn whispers_stay_out_of_rooms(leak: Option<String>) -> Check {
    match leak {
        None => Ok(()),
        Some(problem) => Err(problem),
    }
}

/// An opcode `220` comes in a chat of which the connection's user is a member (a chat of
/// the store with both users, or one for this login only), and a `219` answers a
/// MessageSend.
pub(crate) fn opcode_chat_membership_respected(problem: Option<String>) -> Check {
    match problem {
        None => Ok(()),
        Some(problem) => Err(problem),
    }
}

/// A message the sender was told was relayed reaches the connection that held the
/// recipient's name, in the same step, unless that connection closed in that step.
pub(crate) fn relayed_messages_are_delivered(missing: &[(u64, u64)]) -> Check {
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing
        .iter()
        .map(|(token, conn)| format!("m{token} for c{conn}"))
        .collect();
    Err(format!(
        "acknowledged as relayed but never delivered: {}",
        list.join(", ")
    ))
}

/// An administrator's kick, user ban, account deletion or IP ban closes exactly the
/// sessions it names (the number in its answer), each told why; nobody else is kicked.
pub(crate) fn kicks_reach_their_targets(
    unexpected: Option<u64>,
    missing: &[u64],
    miscounted: Option<String>,
) -> Check {
    if let Some(conn) = unexpected {
        return Err(format!("c{conn} kicked without a command that names it"));
    }
    if !missing.is_empty() {
        return Err(format!("kick never reached {missing:?}"));
    }
    if let Some(why) = miscounted {
        return Err(why);
    }
    Ok(())
}

/// `nuser`, `cquit <name>` and `+OK nuser` tell of a change that happened in the same
/// step: someone came online, left, or renamed.
pub(crate) fn presence_notices_are_true(seen: bool, line: &ServerLine<'_>) -> Check {
    if seen {
        Ok(())
    } else {
        Err(format!("{line:?} tells of a change that did not happen"))
    }
}

/// A receipt `chatr A B` goes to A's connection, and a connection never gets more
/// receipts from B than messages it sent that were relayed to B.
pub(crate) fn receipts_follow_messages(to_sender: bool, relayed: u64, receipts: u64) -> Check {
    if !to_sender {
        return Err("receipt sent to a connection that is not the sender's".to_owned());
    }
    if receipts > relayed {
        return Err(format!(
            "{receipts} receipts for {relayed} relayed messages"
        ));
    }
    Ok(())
}

/// A listing (admin `user list`, `ban list`: its rows and its closing `ok`) reveals all
/// durable state, so it leaves for the client only when every change the server
/// persisted before answering (`through`, this boot's numbering) is committed: an
/// administrator never reads an account or a ban that a crash could take back.
pub(crate) fn listings_wait_for_every_change(committed_through: Seq, through: Seq) -> Check {
    if committed_through >= through {
        Ok(())
    } else {
        Err(format!(
            "a listing left with change #{} persisted before it and only #{} committed",
            through.0, committed_through.0
        ))
    }
}

/// An acknowledgement leaves for the client only when the change it reveals is in the
/// committed store: a message `stored` is in its recipient's committed queue, an
/// account `created` exists with the hash of the given password, a ban is there.
pub(crate) fn acknowledged_changes_are_committed(
    committed: bool,
    what: &dyn Fn() -> String,
) -> Check {
    if committed {
        Ok(())
    } else {
        Err(format!("{} acknowledged but not committed", what()))
    }
}

/// Every acknowledged durable change survives every restart: after each commit and
/// each restart, each account and ban the administrator was told about has one of the
/// values the acknowledged and unanswered commands allow, and every message whose
/// `stored` left the server is still stored (or its account was deleted).
pub(crate) fn acknowledged_changes_survive_restarts(problems: &[String]) -> Check {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Every stored offline message is stored once, in the order the server accepted it,
/// is delivered at most once (and only while stored), and leaves the store only by
/// delivery or by its account's deletion. Checked on every commit, and in full at
/// every restart and at the end.
pub(crate) fn offline_messages_exactly_once_in_order(problem: Option<String>) -> Check {
    problem.map_or(Ok(()), Err)
}

/// The server closes a connection for not answering pings only when a `cping` has gone
/// unanswered (no `cpong` reached the server since) for at least the ping timeout.
pub(crate) fn ping_timeouts_are_earned(waited_ms: Option<u64>, timeout_ms: u64) -> Check {
    match waited_ms {
        Some(w) if w >= timeout_ms => Ok(()),
        Some(w) => Err(format!(
            "closed for silence {w}ms after an unanswered ping; the timeout is {timeout_ms}ms"
        )),
        None => Err("closed for silence with every ping answered".to_owned()),
    }
}

/// ims: a connection is closed for silence only when its client sent no document for
/// the whole ALIVE timeout (`waited_ms` since the client's last, for a close), and one
/// the server heard nothing from for longer (`still_open`) is closed.
pub(crate) fn alive_timeouts_are_kept(waited_ms: u64, timeout_ms: u64, still_open: bool) -> Check {
    if still_open {
        Err(format!(
            "an ims connection silent for {waited_ms}ms is still open; the timeout is {timeout_ms}ms"
        ))
    } else if waited_ms < timeout_ms {
        Err(format!(
            "an ims connection closed for silence {waited_ms}ms after its last document; the timeout is {timeout_ms}ms"
        ))
    } else {
        Ok(())
    }
}

/// Limits the server must keep, derived from its configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// `Config::outbound_limit_bytes`.
    pub outbound: usize,
    /// The most a connection may have buffered and unframed: the longest line plus its CR.
    pub inbound: usize,
    /// `Config::offline_cap`.
    pub offline_cap: usize,
    /// `Limits::outbound_budget_bytes`: unwritten bytes over all connections.
    pub budget: usize,
}

/// The server's memory stays within its configured limits: no output left in the queue
/// after draining, no connection with more unwritten bytes than the outbound limit (nor
/// all of them together more than the outbound budget) or
/// more unframed input than the longest line, no offline queue over its cap, at most
/// two timers per connection.
pub(crate) fn memory_within_limits(s: &Stats, l: &Limits) -> Check {
    let mut problems = Vec::new();
    if s.queued_outputs != 0 {
        problems.push(format!("{} outputs left after draining", s.queued_outputs));
    }
    if s.max_unwritten_bytes > l.outbound {
        problems.push(format!(
            "{} unwritten bytes, limit {}",
            s.max_unwritten_bytes, l.outbound
        ));
    }
    if s.unwritten_bytes > l.budget {
        problems.push(format!(
            "{} unwritten bytes over all connections, budget {}",
            s.unwritten_bytes, l.budget
        ));
    }
    if s.max_inbound_bytes > l.inbound {
        problems.push(format!(
            "{} unframed bytes, limit {}",
            s.max_inbound_bytes, l.inbound
        ));
    }
    if s.max_offline_queue > l.offline_cap {
        problems.push(format!(
            "{} offline messages for one account, cap {}",
            s.max_offline_queue, l.offline_cap
        ));
    }
    if s.timers > 2 * s.connections {
        problems.push(format!(
            "{} timers for {} connections",
            s.timers, s.connections
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// What the simulator knows the server holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expected {
    /// Connections accepted and not yet closed by either side, as far as the server knows.
    pub connections: usize,
    /// Names held.
    pub online_users: usize,
    /// Effects handed out and not yet reported done.
    pub running_effects: usize,
}

/// The server forgets what is gone: its connection, online-user and running-effect
/// counts equal the simulator's.
pub(crate) fn connections_are_not_leaked(s: &Stats, e: &Expected) -> Check {
    let seen = Expected {
        connections: s.connections,
        online_users: s.online_users,
        running_effects: s.running_effects,
    };
    if seen == *e {
        Ok(())
    } else {
        Err(format!("server has {seen:?}, simulator expects {e:?}"))
    }
}

/// At the end of the liveness phase (faults healed, everyone back, time to settle):
/// every client is connected and named, every request on a live connection answered,
/// every byte the server sent delivered, every final-round message acknowledged and
/// delivered or stored, nothing left uncommitted, the administrator's work done.
pub(crate) fn liveness_expectations_met(problems: &[String]) -> Check {
    if problems.is_empty() {
        Ok(())
    } else {
        let shown: Vec<&String> = problems.iter().take(12).collect();
        Err(format!(
            "{} unmet: {}",
            problems.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(own: Option<&str>) -> ReplyView<'_> {
        ReplyView {
            own,
            held_by_self: false,
            held_by_other: false,
            registered: false,
            store_failing: false,
            rate_spent: false,
            share_used: false,
            behind_mailbox: false,
        }
    }

    #[test]
    fn limits_are_judged() {
        let err = |text| ServerLine::Error {
            command: None,
            text,
        };
        assert!(connection_caps_are_kept(None, &ServerLine::Greeting).is_ok());
        assert!(connection_caps_are_kept(None, &err(TOO_MANY_FROM_IP)).is_err());
        let cap = Some(TOO_MANY_CONNECTIONS);
        assert!(connection_caps_are_kept(cap, &err(TOO_MANY_CONNECTIONS)).is_ok());
        assert!(connection_caps_are_kept(cap, &err(TOO_MANY_FROM_IP)).is_err());
        assert!(connection_caps_are_kept(cap, &ServerLine::Greeting).is_err());

        let slow = |command| ServerLine::Error {
            command: Some(command),
            text: SLOW_DOWN,
        };
        let spent = |own| ReplyView {
            rate_spent: true,
            ..view(own)
        };
        let uname = Sent::Uname("bob".into());
        assert!(replies_answer_requests(&uname, &slow("uname"), &spent(None)).is_ok());
        assert!(replies_answer_requests(&uname, &slow("uname"), &view(None)).is_err());
        let taken = ReplyView {
            held_by_other: true,
            ..spent(None)
        };
        assert!(replies_answer_requests(&uname, &slow("uname"), &taken).is_err());
        let chat = Sent::Chat {
            token: 1,
            whisper: false,
            from: "al".into(),
            to: "bob".into(),
        };
        let offline_account = ReplyView {
            registered: true,
            ..spent(Some("al"))
        };
        assert!(replies_answer_requests(&chat, &slow("chatm"), &offline_account).is_ok());
        // A chat to an online user draws on the message bucket: refused once it is spent,
        // not before.
        let online = ReplyView {
            held_by_other: true,
            ..offline_account
        };
        assert!(replies_answer_requests(&chat, &slow("chatm"), &online).is_ok());
        let online_unspent = ReplyView {
            rate_spent: false,
            ..online
        };
        assert!(replies_answer_requests(&chat, &slow("chatm"), &online_unspent).is_err());
        let share = ServerLine::Error {
            command: Some("chatm"),
            text: "your share of the mailbox of bob is used up",
        };
        assert!(replies_answer_requests(&chat, &share, &offline_account).is_err());
        let used = ReplyView {
            share_used: true,
            ..offline_account
        };
        assert!(replies_answer_requests(&chat, &share, &used).is_ok());
    }

    #[test]
    fn replies_are_judged_against_the_request_and_the_network() {
        let uname = Sent::Uname("bob".into());
        assert!(replies_answer_requests(&uname, &ServerLine::NameSet("bob"), &view(None)).is_ok());
        assert!(replies_answer_requests(&uname, &ServerLine::NameSet("Bob"), &view(None)).is_err());
        let taken = ReplyView {
            held_by_other: true,
            ..view(None)
        };
        assert!(replies_answer_requests(&uname, &ServerLine::NameSet("bob"), &taken).is_err());
        assert!(replies_answer_requests(&uname, &ServerLine::NameTaken("bob2"), &taken).is_ok());
        let chat = Sent::Chat {
            token: 1,
            whisper: false,
            from: "al".into(),
            to: "bob".into(),
        };
        let online = ReplyView {
            held_by_other: true,
            ..view(Some("AL"))
        };
        assert!(replies_answer_requests(&chat, &ServerLine::Relayed, &online).is_ok());
        assert!(replies_answer_requests(&chat, &ServerLine::Stored, &online).is_err());
        // A whisper is answered by its echo, never by `+OK`.
        let whisper = Sent::Chat {
            token: 2,
            whisper: true,
            from: "al".into(),
            to: "bob".into(),
        };
        let echo = ServerLine::Chat {
            whisper: true,
            from: "AL",
            to: "bob",
            body: "m2",
        };
        assert!(replies_answer_requests(&whisper, &echo, &online).is_ok());
        assert!(replies_answer_requests(&whisper, &ServerLine::Relayed, &online).is_err());
        assert!(replies_answer_requests(&chat, &echo, &online).is_err());
        let offline_account = ReplyView {
            registered: true,
            ..view(Some("al"))
        };
        assert!(replies_answer_requests(&whisper, &echo, &offline_account).is_ok());
        assert!(replies_answer_requests(&whisper, &echo, &view(Some("al"))).is_err());
        // A rename is confirmed like a login.
        let rename = Sent::Uname("robert".into());
        let named = view(Some("bob"));
        assert!(replies_answer_requests(&rename, &ServerLine::NameSet("robert"), &named).is_ok());
        assert!(replies_answer_requests(&uname, &ServerLine::NameSet("bob"), &named).is_err());
        let not_allowed = ServerLine::Error {
            command: Some("chatm"),
            text: "not allowed before uname",
        };
        assert!(replies_answer_requests(&chat, &not_allowed, &view(None)).is_ok());
        assert!(replies_answer_requests(&chat, &not_allowed, &online).is_err());
        assert!(!answers(&Sent::Chatr, &ServerLine::Pong));
        assert!(answers(&Sent::Chatr, &not_allowed_chatr()));
        assert!(!answers(&Sent::Cpong, &ServerLine::Pong));
    }

    fn not_allowed_chatr() -> ServerLine<'static> {
        ServerLine::Error {
            command: Some("chatr"),
            text: "not allowed before uname",
        }
    }

    #[test]
    fn memory_limits_and_leaks() {
        let s = Stats {
            connections: 2,
            timers: 4,
            max_unwritten_bytes: 10,
            ..Stats::default()
        };
        let l = Limits {
            outbound: 10,
            inbound: 5,
            offline_cap: 1,
            budget: 100,
        };
        assert!(memory_within_limits(&s, &l).is_ok());
        let over = Stats {
            max_unwritten_bytes: 11,
            timers: 5,
            ..s
        };
        let err = memory_within_limits(&over, &l).unwrap_err();
        assert!(err.contains("unwritten") && err.contains("timers"));
        let e = Expected {
            connections: 2,
            online_users: 0,
            running_effects: 0,
        };
        assert!(connections_are_not_leaked(&s, &e).is_ok());
        assert!(connections_are_not_leaked(
            &Stats {
                connections: 3,
                ..s
            },
            &e
        )
        .is_err());
    }
}
