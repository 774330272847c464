//! The ws2017 connection state machine: AUTHORIZATION until a name is set, then
//! TRANSACTION until `cquit` (UPDATE is the close itself).

use bytes::{Bytes, BytesMut};

use super::codec::{self, Command, ParseError, Reply};
use crate::cx::Cx;
use crate::frame::lines::{Line, LineFramer};
use crate::frame::{read_through, FrameInput};
use crate::ids::Protocol;
use crate::io::CloseReason;
use crate::limits::{Cost, Refusal};
use crate::model::{
    Body, Capabilities, DirectKind, Event, Identity, Item, KickReason, LoginKind, MailboxLimits,
    NameError, Network, Outcome, Outgoing, Route, SessionId, Undeliverable, UserName,
    MAX_NAME_CHARS,
};
use crate::protocol::Kept;
use crate::time::Instant;

/// ws2017 names are nicks held by one connection, and its clients answer with `chatr`.
const LOGIN: LoginKind = LoginKind {
    identity: Identity::Nick,
    exclusive: true,
    caps: Capabilities {
        receipts: true,
        told_of_delivery: true,
    },
    protocol: Protocol::Ws2017,
};

/// One ws2017 connection.
#[derive(Debug)]
pub(crate) struct Session {
    framer: LineFramer,
    inbound: BytesMut,
    /// `None` in AUTHORIZATION; the network session once a name is set (TRANSACTION).
    session: Option<SessionId>,
    /// When the next `cping` is due.
    next_ping: Instant,
    /// When the oldest unanswered `cping` was sent.
    unanswered_ping: Option<Instant>,
    /// Closed at this time if still without a name (`Limits::login_timeout`), put off
    /// by each answer to a ping: the original client connects (and answers pings) while
    /// its user is still typing a name, and a connection that stops answering is closed
    /// by the ping timeout anyway. A name costs nothing on ws2017, so waiting for one
    /// gives a peer nothing it could not have by sending it.
    login_deadline: Instant,
}

/// The goodbye of a connection that named itself too late.
const LOGIN_TIMEOUT: &str = "no uname in time, goodbye";

/// What ws2017 keeps across its connections: the `cgetu` answer as last encoded.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// `+OK cgetu ...` of a lobby version ([`Network::lobby_version`]). A listing walks
    /// and sorts everyone online: rebuilt for every `cgetu`, a 7-byte request cost the
    /// core 330 us at 5000 users (`--example listing`); now that is paid once per change
    /// of the lobby.
    listing: Kept,
}

impl Shared {
    /// The `cgetu` answer for the lobby as it is now.
    fn listing(&mut self, net: &Network) -> Bytes {
        self.listing.get(net.lobby_version(), || {
            let names: Vec<&str> = net.online_names().map(UserName::as_str).collect();
            let mut out = BytesMut::new();
            codec::encode(&Reply::Users { names: &names }, &mut out);
            out.freeze()
        })
    }
}

/// The line every ws2017 connection, named or not, is sent for a lobby event (a login,
/// a leave, a rename: `nuser`, `cquit`, `+OK nuser`), encoded once into `encoded` for all
/// of them; `None` for any other event.
#[inline(always)]
pub(crate) fn lobby_news<'e>(event: &Event, encoded: &'e mut Option<Bytes>) -> Option<&'e Bytes> {
    if !matches!(
        event,
        Event::UserOnline { .. } | Event::UserOffline { .. } | Event::UserRenamed { .. }
    ) {
        return None;
    }
    // Made by the first recipient of this event (an entry of `Encoded` is of one event):
    // the others cost no look at the names.
    if encoded.is_some() {
        return encoded.as_ref();
    }
    let news = match event {
        Event::UserOnline { name } => Reply::UserJoined {
            name: name.as_str(),
        },
        Event::UserOffline { name } => Reply::UserLeft {
            name: name.as_str(),
        },
        Event::UserRenamed { old, new } => Reply::UserRenamed {
            old: old.as_str(),
            new: new.as_str(),
        },
        _ => return None,
    };
    Some(encoded.get_or_insert_with(|| {
        let mut out = BytesMut::new();
        codec::encode(&news, &mut out);
        out.freeze()
    }))
}

impl Session {
    /// Greets the client and starts pinging it.
    pub(crate) fn open(cx: &mut Cx<'_>) -> Session {
        let session = Session {
            framer: LineFramer::new(cx.config.ws2017.max_line_bytes),
            inbound: BytesMut::new(),
            session: None,
            next_ping: cx.now.mono + cx.config.ws2017.ping_interval,
            unanswered_ping: None,
            login_deadline: cx.now.mono + cx.config.limits.login_timeout,
        };
        // Whether the address is banned is durable: the answer waits for a pending ban.
        let ip = cx.peer.ip();
        if ip.is_some_and(|ip| cx.net.ip_banned(ip)) {
            let refusal = Reply::Error {
                command: None,
                text: "your IP address is banned",
            };
            reply_about(cx, ip.map(Item::Ip), &refusal);
            cx.close(CloseReason::Banned);
            return session;
        }
        if let Err(refusal) = cx.admission() {
            error(cx, None, refusal_text(refusal));
            cx.close(CloseReason::TooManyConnections);
            return session;
        }
        let server = cx.config.server_name.clone();
        reply_about(cx, ip.map(Item::Ip), &Reply::Greeting { server: &server });
        session.arm(cx);
        session
    }

    #[cfg(test)]
    pub(crate) fn input_capacity(&self) -> usize {
        self.inbound.capacity()
    }

    pub(crate) fn buffered(&self) -> usize {
        self.inbound.len()
    }

    pub(crate) fn on_bytes(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, bytes: &Bytes) {
        // Lines are read in place; the buffer is lent out meanwhile.
        let mut inbound = std::mem::take(&mut self.inbound);
        read_through(&mut inbound, bytes, |input| self.lines(cx, shared, input));
        self.inbound = inbound;
    }

    fn lines(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, input: &mut &[u8]) {
        while cx.is_open() {
            match self.framer.next_line(input) {
                None => break,
                Some(Line::TooLong) => error(cx, None, "line is too long"),
                Some(Line::Complete { len, consumed }) => {
                    self.on_line(cx, shared, &input[..len]);
                    input.advance(consumed);
                }
            }
        }
    }

    fn on_line(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, line: &[u8]) {
        let command = match codec::parse(line) {
            Ok(command) => command,
            Err(ParseError::Empty) => return,
            Err(ParseError::Unknown) => return error(cx, None, "entered command does not exist"),
            Err(ParseError::Malformed { keyword }) => {
                let text = format!("{keyword} is not a properly formatted command");
                return error(cx, None, &text);
            }
        };
        match (command, self.session) {
            (Command::Uname { name }, None) => self.login(cx, name),
            (Command::Uname { name }, Some(session)) => rename(cx, session, name),
            // The timer stays armed for the next ping; no timer work per pong.
            (Command::Cpong, session) => {
                if self.unanswered_ping.take().is_some() && session.is_none() {
                    self.login_deadline = cx.now.mono + cx.config.limits.login_timeout;
                }
            }
            (Command::Cquit, _) => {
                reply(cx, &Reply::Bye);
                cx.close(CloseReason::Quit);
            }
            (command, None) => {
                let keyword = command.keyword();
                error(cx, Some(keyword), "not allowed before uname");
            }
            (Command::Cping, Some(_)) => reply(cx, &Reply::Pong),
            (Command::Cgetu, Some(_)) => {
                let listing = shared.listing(cx.net);
                cx.send(listing);
            }
            (Command::Cgetg, Some(_)) => reply(cx, &Reply::Games),
            (
                Command::Chat {
                    whisper,
                    sender,
                    recipient,
                    message,
                },
                Some(session),
            ) => chat(cx, session, whisper, sender, recipient, message),
            (Command::Chatr { sender, recipient }, Some(session)) => {
                receipt(cx, session, sender, recipient)
            }
        }
    }

    fn login(&mut self, cx: &mut Cx<'_>, name: &str) {
        let name = match UserName::parse(name) {
            Ok(name) => name,
            Err(e) => return name_error(cx, e),
        };
        if cx.net.name_taken(name.key_ref()) {
            return name_taken(cx, &name);
        }
        if let Err(refusal) = cx.charge(Cost::Broadcast) {
            return error(cx, Some("uname"), refusal_text(refusal));
        }
        if !room_for(
            cx,
            &[&Reply::NameSet {
                name: name.as_str(),
            }],
        ) {
            return;
        }
        match cx.net.login(&name, cx.conn, LOGIN) {
            Ok(session) => {
                self.session = Some(session);
                // Events addressed to the session come to this connection, its only one.
                cx.place_here(session);
                let account = Some(Item::Account(name.key()));
                reply_about(
                    cx,
                    account,
                    &Reply::NameSet {
                        name: name.as_str(),
                    },
                );
            }
            Err(_) => name_taken(cx, &name),
        }
    }

    /// Turns a network event into this client's line. Presence news reads the same for
    /// every ws2017 client, so it is encoded once into `encoded` and shared.
    pub(crate) fn on_event(&mut self, cx: &mut Cx<'_>, event: &Event, encoded: &mut Option<Bytes>) {
        if let Some(bytes) = lobby_news(event, encoded) {
            return cx.send_shared(bytes);
        }
        match event {
            Event::UserOnline { .. } | Event::UserOffline { .. } | Event::UserRenamed { .. } => {}
            // ws2017 shows no statuses and has no friends or rooms: its nicks get none of
            // these.
            Event::Presence { .. }
            | Event::RoomJoined { .. }
            | Event::RoomLeft { .. }
            | Event::RoomKicked { .. }
            | Event::MemberKicked { .. }
            | Event::RoomMessage { .. }
            | Event::FriendNews { .. } => {}
            Event::Direct { message, .. } => reply(
                cx,
                &Reply::Chat {
                    whisper: message.kind == DirectKind::Whisper,
                    from: message.from.as_str(),
                    to: message.to.as_str(),
                    body: &message.body,
                },
            ),
            Event::Kicked { reason, .. } => {
                let text = match reason {
                    KickReason::Kicked => "kicked by an administrator",
                    KickReason::Banned => "banned by an administrator",
                    KickReason::AccountDeleted => "account deleted by an administrator",
                };
                let bye = format!("+OK cquit '{text}'\r\n");
                cx.send(Bytes::from(bye));
                // The runtime logs the reason: a ban (of the address or the user) as such.
                cx.close(match reason {
                    KickReason::Banned => CloseReason::Banned,
                    KickReason::Kicked | KickReason::AccountDeleted => CloseReason::Kicked,
                });
            }
            Event::Delivered { session, to } => {
                if let Some(me) = cx.net.session_name(*session).cloned() {
                    reply(
                        cx,
                        &Reply::Receipt {
                            from: me.as_str(),
                            to: to.as_str(),
                        },
                    );
                }
            }
        }
    }

    /// Closes a connection whose ping went unanswered for the timeout, sends the next
    /// ping when it is due, and re-arms the timer for whichever comes first. Waking early
    /// (after a pong cleared the deadline) does nothing but re-arm.
    pub(crate) fn on_timer(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now.mono;
        if self.session.is_none() && now >= self.login_deadline {
            error(cx, None, LOGIN_TIMEOUT);
            return cx.close(CloseReason::LoginTimeout);
        }
        let (interval, timeout) = (
            cx.config.ws2017.ping_interval,
            cx.config.ws2017.ping_timeout,
        );
        if self
            .unanswered_ping
            .is_some_and(|since| now >= since + timeout)
        {
            if !cx.output_held() {
                return cx.close(CloseReason::Timeout);
            }
            // While this connection's output waits behind a commit, the client has not
            // heard our pings: start counting again rather than blame it.
            self.unanswered_ping = Some(now);
        }
        if now >= self.next_ping {
            self.unanswered_ping.get_or_insert(now);
            self.next_ping = now + interval;
            reply(cx, &Reply::Ping);
        }
        self.arm(cx);
    }

    /// Arms the timer for the next ping or the ping deadline, whichever is first.
    fn arm(&self, cx: &mut Cx<'_>) {
        let timeout = cx.config.ws2017.ping_timeout;
        let deadline = self.unanswered_ping.map(|since| since + timeout);
        let at = deadline.map_or(self.next_ping, |d| d.min(self.next_ping));
        let at = match self.session {
            None => at.min(self.login_deadline),
            Some(_) => at,
        };
        cx.set_timer(at);
    }

    /// The server is stopping: an `-ERR` line, then the close.
    pub(crate) fn on_shutdown(&mut self, cx: &mut Cx<'_>) {
        cx.send(Bytes::from_static(
            b"-ERR 'the server is shutting down'\r\n",
        ));
        cx.close(CloseReason::Shutdown);
    }

    pub(crate) fn on_close(&mut self, cx: &mut Cx<'_>) {
        if let Some(session) = self.session.take() {
            cx.px().forget(session);
            cx.net.logout(session);
        }
    }
}

impl Command<'_> {
    fn keyword(&self) -> &'static str {
        match self {
            Command::Uname { .. } => "uname",
            Command::Cgetu => "cgetu",
            Command::Cgetg => "cgetg",
            Command::Chat { whisper: true, .. } => "chatw",
            Command::Chat { whisper: false, .. } => "chatm",
            Command::Chatr { .. } => "chatr",
            Command::Cping => "cping",
            Command::Cpong => "cpong",
            Command::Cquit => "cquit",
        }
    }
}

fn rename(cx: &mut Cx<'_>, session: SessionId, name: &str) {
    let name = match UserName::parse(name) {
        Ok(name) => name,
        Err(e) => return name_error(cx, e),
    };
    let own = cx.net.session_name(session).cloned();
    if own.as_ref() == Some(&name) {
        return error(cx, Some("uname"), "same username entered");
    }
    if own.is_none_or(|own| own.key_ref() != name.key_ref()) && cx.net.name_taken(name.key_ref()) {
        return name_taken(cx, &name);
    }
    if let Err(refusal) = cx.charge(Cost::Broadcast) {
        return error(cx, Some("uname"), refusal_text(refusal));
    }
    if !room_for(
        cx,
        &[&Reply::NameSet {
            name: name.as_str(),
        }],
    ) {
        return;
    }
    match cx.net.rename(session, &name) {
        Ok(_) => {
            let account = Some(Item::Account(name.key()));
            reply_about(
                cx,
                account,
                &Reply::NameSet {
                    name: name.as_str(),
                },
            );
        }
        Err(_) => name_taken(cx, &name),
    }
}

fn chat(
    cx: &mut Cx<'_>,
    session: SessionId,
    whisper: bool,
    sender: &str,
    recipient: &str,
    body: &str,
) {
    let command = if whisper { "chatw" } else { "chatm" };
    // The sender's own name: a whisper's echo shows it; a `chatm` only compares with it,
    // in place (no reference count per message).
    let (claimed, me) = match cx.net.session_name(session) {
        None => return,
        Some(me) => (me.key_ref().is_key_of(sender), whisper.then(|| me.clone())),
    };
    if !claimed {
        return error(
            cx,
            Some(command),
            &format!("sender name {sender} is not yours"),
        );
    }
    let no_such_user = |cx: &mut Cx<'_>| {
        let text = format!("recipient name {recipient} does not exist");
        let account = UserName::parse(recipient)
            .ok()
            .map(|n| Item::Account(n.key()));
        let refusal = Reply::Error {
            command: Some(command),
            text: &text,
        };
        reply_about(cx, account, &refusal);
    };
    let kind = if whisper {
        DirectKind::Whisper
    } else {
        DirectKind::Chat
    };
    // A whisper gets no `+OK` line (the original sent none, and its client shows an error
    // for an answer it does not know): its echo answers it, and for a stored whisper the
    // echo is the acknowledgement, held until the message is committed.
    // The model decides where the message goes; ws2017's gates (room for the answer,
    // and the rate of durable work) run before it takes effect.
    let limits = MailboxLimits {
        cap: cx.config.offline_cap,
        share: cx.config.offline_share(),
    };
    let refused = |cx: &mut Cx<'_>, why: Undeliverable| match why {
        Undeliverable::NoSuchUser => no_such_user(cx),
        Undeliverable::MailboxFull(to) => mailbox_full(cx, command, &to),
        Undeliverable::ShareUsed(to) => share_used(cx, command, &to),
        Undeliverable::StoreFailing(_) => error(
            cx,
            Some(command),
            "message could not be stored, try again later",
        ),
    };
    let route = match cx.net.route_as_sent(session, recipient, limits) {
        Ok(route) => route,
        Err(why) => return refused(cx, why),
    };
    match &route {
        Route::Live(online) => {
            // A live message reaches one connection, but a flood of them fills the
            // recipient's queue: charged as a chat message, as arsc's and ims's are. One
            // to oneself reaches only one's own queue, and is not charged.
            let to_self =
                (cx.net.session_name(session)).is_some_and(|me| me.key_ref() == online.key_ref());
            if !to_self {
                if let Err(refusal) = cx.charge(Cost::Message) {
                    return error(cx, Some(command), refusal_text(refusal));
                }
            }
            if !room_for_chat(cx, me.as_ref(), online, body, Reply::Relayed) {
                return;
            }
        }
        Route::Mailbox(to) => {
            if let Err(refusal) = cx.charge(Cost::Durable) {
                return error(cx, Some(command), refusal_text(refusal));
            }
            if !room_for_chat(cx, me.as_ref(), to, body, Reply::Stored) {
                return;
            }
        }
    }
    // A whisper's echo shows the recipient as online: the route's copy of the name moves
    // into the delivery, so a whisper takes its own first (a `chatm` needs none).
    let live = match (&route, &me) {
        (Route::Live(online), Some(_)) => Some(online.clone()),
        _ => None,
    };
    let message = Outgoing {
        from: session,
        body: Body::from(body),
        kind,
        sent_ms: cx.now.wall_ms,
    };
    // The gates above changed no routing state (a close they caused waits for the end
    // of this input), so the route still holds.
    let (to, held) = match cx.deliver_routed(message, route) {
        Outcome::Refused(why) => return refused(cx, why),
        Outcome::Delivered => {
            if !whisper {
                reply(cx, &Reply::Relayed);
            }
            (live, None)
        }
        Outcome::Stored { seq, to } => {
            if !whisper {
                let mut out = BytesMut::new();
                codec::encode(&Reply::Stored, &mut out);
                cx.send_after(out.freeze(), seq);
            }
            (Some(to), Some(seq))
        }
    };
    let echo = match (&me, &to) {
        (Some(me), Some(to)) if to.key_ref() != me.key_ref() => Some((me, to)),
        _ => None,
    };
    if let Some((me, to)) = echo {
        let copy = Reply::Chat {
            whisper: true,
            from: me.as_str(),
            to: to.as_str(),
            body,
        };
        match held {
            Some(seq) => {
                let mut out = BytesMut::new();
                codec::encode(&copy, &mut out);
                cx.send_after(out.freeze(), seq);
            }
            None => reply(cx, &copy),
        }
    }
}

/// Whether the connection has room for the replies a `chatm` or `chatw` gets once it
/// takes effect: `ack` for a `chatm`; for a whisper (from `whisperer`, which gets no
/// `ack`) to someone else, its echo. Without room the connection is closed as a slow
/// reader and the message goes nowhere (see [`room_for`]).
fn room_for_chat(
    cx: &mut Cx<'_>,
    whisperer: Option<&UserName>,
    to: &UserName,
    body: &str,
    ack: Reply<'_>,
) -> bool {
    let Some(me) = whisperer else {
        return room_for(cx, &[&ack]);
    };
    if to.key_ref() == me.key_ref() {
        return true;
    }
    let echo = Reply::Chat {
        whisper: true,
        from: me.as_str(),
        to: to.as_str(),
        body,
    };
    room_for(cx, &[&echo])
}

/// Whether the connection has room under its outbound limit for `replies`, the answer
/// of a request that is about to take effect. Without room it is closed as a slow
/// reader and the request must be dropped: were it applied, its answer would overflow
/// the limit and be dropped with the connection, and the client, never told, would
/// send it again after reconnecting (storing a message twice).
fn room_for(cx: &mut Cx<'_>, replies: &[&Reply<'_>]) -> bool {
    cx.room_for(replies.iter().map(|r| codec::encoded_len(r)).sum())
}

fn mailbox_full(cx: &mut Cx<'_>, command: &str, to: &UserName) {
    let text = format!("the mailbox of {to} is full");
    let refusal = Reply::Error {
        command: Some(command),
        text: &text,
    };
    reply_about(cx, Some(Item::Mailbox(to.key())), &refusal);
}

/// The sender holds its share of the mailbox (`Config::offline_share`); others still
/// have room, so this is not `mailbox full`.
fn share_used(cx: &mut Cx<'_>, command: &str, to: &UserName) {
    let text = format!("your share of the mailbox of {to} is used up");
    let refusal = Reply::Error {
        command: Some(command),
        text: &text,
    };
    reply_about(cx, Some(Item::Mailbox(to.key())), &refusal);
}

/// The `-ERR` text of a limit.
fn refusal_text(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::ConnRate | Refusal::IpRate => "too many requests, slow down",
        Refusal::TooManyConnections => "too many connections, try again later",
        Refusal::TooManyFromIp => "too many connections from your address",
    }
}

fn receipt(cx: &mut Cx<'_>, session: SessionId, sender: &str, recipient: &str) {
    let Some(me) = cx.net.session_name(session).cloned() else {
        return;
    };
    if !me.key_ref().is_key_of(recipient) {
        return error(
            cx,
            Some("chatr"),
            &format!("recipient name {recipient} is not yours"),
        );
    }
    let sender = match UserName::parse(sender) {
        Ok(sender) if cx.net.is_online(sender.key_ref()) => sender,
        _ => {
            return error(
                cx,
                Some("chatr"),
                &format!("sender name {sender} does not exist"),
            )
        }
    };
    // A receipt nobody is owed (a duplicate, or for a message never sent) is dropped.
    cx.net.receipt(session, &sender);
}

fn name_error(cx: &mut Cx<'_>, e: NameError) {
    error(cx, Some("uname"), &e.to_string());
}

/// Answers a taken name with the first free one of `name2`, `name3`, ...
/// Suffixes a taken name is suggested with in order (`2`, `3`, ...), as the original
/// suggested them, before random ones: each costs a parse and a lookup, and the names a
/// peer may hold (or register elsewhere) must not make a `uname` cost their number.
const SUGGESTED_IN_ORDER: u64 = 100;

/// Random 9-digit suffixes tried after those: a space nobody can fill.
const SUGGESTED_AT_RANDOM: usize = 8;

fn name_taken(cx: &mut Cx<'_>, name: &UserName) {
    match suggestion(cx, name) {
        Some(suggestion) => {
            let taken = Reply::NameTaken {
                suggestion: suggestion.as_str(),
            };
            reply_about(cx, Some(Item::Account(name.key())), &taken);
        }
        // Eight random names taken as well: unreachable short of a billion names.
        None => error(cx, Some("uname"), "username is taken"),
    }
}

/// A free name for one that is taken: `name` with `2`, `3`, ... appended (cut to fit),
/// then with random 9-digit numbers, at a bounded cost.
fn suggestion(cx: &mut Cx<'_>, name: &UserName) -> Option<UserName> {
    let with = |n: u64| {
        let suffix = n.to_string();
        let base: String = (name.as_str().chars())
            .take(MAX_NAME_CHARS - suffix.len())
            .collect();
        UserName::parse(&format!("{base}{suffix}")).ok()
    };
    let free = |cx: &Cx<'_>, candidate: &UserName| !cx.net.name_taken(candidate.key_ref());
    let mut in_order = (2..2 + SUGGESTED_IN_ORDER).filter_map(with);
    if let Some(found) = in_order.find(|c| free(cx, c)) {
        return Some(found);
    }
    (0..SUGGESTED_AT_RANDOM).find_map(|_| {
        let n = 100_000_000 + cx.rng.next_u64() % 900_000_000;
        with(n).filter(|c| free(cx, c))
    })
}

fn error(cx: &mut Cx<'_>, command: Option<&str>, text: &str) {
    reply(cx, &Reply::Error { command, text });
}

/// Sends a reply that depends on durable `item`: it waits for the item's pending
/// change, if any, to be committed.
fn reply_about(cx: &mut Cx<'_>, item: Option<Item>, reply: &Reply<'_>) {
    let Some(item) = item else {
        return cx.send_with(|out| codec::encode(reply, out));
    };
    let mut out = BytesMut::new();
    codec::encode(reply, &mut out);
    cx.send_about(&item, out.freeze());
}

fn reply(cx: &mut Cx<'_>, reply: &Reply<'_>) {
    if let Some(line) = codec::constant(reply) {
        return cx.send(Bytes::from_static(line));
    }
    cx.send_with(|out| codec::encode(reply, out));
}
