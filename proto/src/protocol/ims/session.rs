//! The ims connection state machine: a guest until LOGIN succeeds (only echoes), then
//! online until LOGOUT (nothing more) or a close. Every document is echoed before its
//! answer. A connection that sends no document for `ImsConfig::alive_timeout` is closed.

use bytes::{Bytes, BytesMut};

use super::codec::{self, FriendAction, Reply, Request, StatusAction, Terminator};
use super::framer::{Frame, Framer};
use crate::cx::{Cx, Handout};
use crate::effect::{Effect, EffectResult, Secret};
use crate::frame::SplitInput;
use crate::ids::{EffectId, Protocol, Seq};
use crate::io::CloseReason;
use crate::limits::Cost;
use crate::model::{
    Capabilities, DirectKind, Event, Identity, Item, KickReason, LoginError, LoginKind,
    MailboxLimits, Outcome, Outgoing, Route, SessionId, Shown, Status, UserKey, UserName,
};
use crate::persist::MessageKind;
use crate::time::Instant;

/// ims logs in to accounts, several sessions of a user at once; its clients send no
/// receipts.
const LOGIN: LoginKind = LoginKind {
    identity: Identity::Account,
    exclusive: false,
    caps: Capabilities {
        receipts: false,
        told_of_delivery: false,
    },
    protocol: Protocol::Ims,
};

/// How many documents' worth of input may wait, unframed, while a LOGIN's password is
/// checked; past it the client is flooding and the connection is closed.
const WAITING_DOCUMENTS: usize = 4;

/// Where a connection is.
#[derive(Debug)]
enum State {
    /// No successful LOGIN yet: documents get their echo only.
    Guest,
    /// A LOGIN's password is being checked (an effect); the documents after it wait.
    Verifying {
        effect: EffectId,
        /// The account, as registered.
        name: UserName,
        /// The name as the client wrote it, for the reply.
        user: String,
    },
    /// Logged in.
    Online { session: SessionId },
    /// Logged out: nothing more is said.
    Gone,
}

/// One ims connection.
#[derive(Debug)]
pub(crate) struct Session {
    framer: Framer,
    inbound: BytesMut,
    state: State,
    /// When the last document arrived (or the connection opened).
    last_document: Instant,
    /// When the connection opened, for the login timeout.
    opened: Instant,
}

impl Session {
    /// Admits the connection (a banned address or one past the caps is closed: ims has
    /// no greeting to refuse it with) and arms the ALIVE deadline.
    pub(crate) fn open(cx: &mut Cx<'_>) -> Session {
        let session = Session {
            framer: Framer::new(cx.config.ims.max_document_bytes)
                .with_trailer(codec::end_byte(cx.config.ims.terminator)),
            inbound: BytesMut::new(),
            state: State::Guest,
            last_document: cx.now.mono,
            opened: cx.now.mono,
        };
        if cx.peer.ip().is_some_and(|ip| cx.net.ip_banned(ip)) {
            cx.close(CloseReason::Banned);
            return session;
        }
        if cx.admission().is_err() {
            cx.close(CloseReason::TooManyConnections);
            return session;
        }
        let login = session.opened + cx.config.limits.login_timeout;
        cx.set_timer(login.min(session.last_document + cx.config.ims.alive_timeout));
        session
    }

    #[cfg(test)]
    pub(crate) fn input_capacity(&self) -> usize {
        self.inbound.capacity()
    }

    pub(crate) fn buffered(&self) -> usize {
        self.inbound.len()
    }

    pub(crate) fn on_bytes(&mut self, cx: &mut Cx<'_>, bytes: &Bytes) {
        if self.inbound.is_empty() {
            // Documents are framed where they arrived (sharing the read's memory); only
            // an unfinished one at the end is copied and kept.
            let mut arrived = bytes.clone();
            self.documents(cx, &mut arrived);
            self.inbound.extend_from_slice(&arrived);
        } else {
            self.inbound.extend_from_slice(bytes);
            self.frame(cx);
        }
    }

    /// Handles every complete document buffered, until a LOGIN makes the rest wait.
    fn frame(&mut self, cx: &mut Cx<'_>) {
        let mut inbound = std::mem::take(&mut self.inbound);
        crate::frame::take_frames(&mut inbound, |input| self.documents(cx, input));
        self.inbound = inbound;
    }

    fn documents<B: SplitInput>(&mut self, cx: &mut Cx<'_>, input: &mut B) {
        while cx.is_open() {
            if matches!(self.state, State::Verifying { .. }) {
                let most = WAITING_DOCUMENTS.saturating_mul(cx.config.ims.max_document_bytes);
                if input.len() > most {
                    cx.close(CloseReason::ProtocolError);
                }
                return;
            }
            match self.framer.next(input) {
                None => return,
                // Malformed or oversized input gets no answer (PROTOCOLS.md): it is
                // skipped, and the next document is read normally.
                Some(Frame::Malformed(_) | Frame::TooLarge) => {}
                Some(Frame::Document(doc)) => self.on_document(cx, doc),
            }
        }
    }

    /// One framed document (with the framer's trailer when one followed it).
    fn on_document(&mut self, cx: &mut Cx<'_>, doc: Bytes) {
        let trailer = match doc.last() {
            Some(&b) if b != b'>' => Some(b),
            _ => None,
        };
        let element = &doc[..doc.len() - usize::from(trailer.is_some())];
        let Ok(request) = codec::parse(element) else {
            return;
        };
        if matches!(self.state, State::Gone) {
            return;
        }
        self.last_document = cx.now.mono;
        // The echo is the document as it arrived when it came with the terminator the
        // server ends documents with (no copy); otherwise the element and the terminator.
        if trailer == Some(codec::end_byte(cx.config.ims.terminator)) {
            cx.send(doc.clone());
        } else {
            reply(cx, &Reply::Echo(element));
        }
        match (&self.state, request) {
            (State::Guest, Request::Login { user, pass }) => {
                self.start_login(cx, user.into_owned(), &pass)
            }
            (State::Guest | State::Verifying { .. } | State::Gone, _) => {}
            (State::Online { session }, request) => {
                let session = *session;
                self.online(cx, session, request);
            }
        }
    }

    /// Checks a LOGIN: the name, the account, the form of the MD5 hex, then (off the
    /// event loop) the password.
    fn start_login(&mut self, cx: &mut Cx<'_>, user: String, pass: &str) {
        let refuse = |cx: &mut Cx<'_>, item: Option<Item>, user: &str| {
            reply_about(cx, item, &Reply::Login { user, result: 0 });
        };
        let Ok(name) = UserName::parse(&user) else {
            return refuse(cx, None, &user);
        };
        let item = Some(Item::Account(name.key()));
        // A login is told to everyone (it comes online) and costs a password check.
        if cx.charge(Cost::Broadcast).is_err() {
            return refuse(cx, None, &user);
        }
        let Some(account) = cx.net.account(name.key_ref()) else {
            return refuse(cx, item, &user);
        };
        let pass = pass.to_ascii_lowercase();
        if pass.len() != 32 || !pass.bytes().all(|b| b.is_ascii_hexdigit()) {
            return refuse(cx, item, &user);
        }
        let (name, hash) = (account.name.clone(), account.ims_password.clone());
        // Locked after failed logins: refused as a wrong password, with no hash made.
        if cx.login_allowed(name.key_ref()).is_err() {
            return refuse(cx, item, &user);
        }
        let effect = cx.effect(Effect::VerifyPassword {
            hash,
            password: Secret(pass),
        });
        self.state = State::Verifying { effect, name, user };
    }

    pub(crate) fn on_effect(&mut self, cx: &mut Cx<'_>, id: EffectId, result: EffectResult) {
        let State::Verifying { effect, .. } = &self.state else {
            return;
        };
        if *effect != id {
            return;
        }
        let State::Verifying { name, user, .. } = std::mem::replace(&mut self.state, State::Guest)
        else {
            return;
        };
        let item = Some(Item::Account(name.key()));
        match result {
            EffectResult::Verified(true) => cx.login_succeeded(name.key_ref()),
            EffectResult::Verified(false) => cx.login_failed(name.key_ref()),
            _ => {}
        }
        if result != EffectResult::Verified(true) {
            reply_about(
                cx,
                item,
                &Reply::Login {
                    user: &user,
                    result: 0,
                },
            );
        } else {
            self.log_in(cx, &name, &user);
        }
        // The documents that waited for the answer.
        self.frame(cx);
    }

    /// The password matched: a session (unless the account is gone or banned meanwhile),
    /// the answer, then the mailbox.
    fn log_in(&mut self, cx: &mut Cx<'_>, name: &UserName, user: &str) {
        let item = Some(Item::Account(name.key()));
        let session = match cx.net.login(name, cx.conn, LOGIN) {
            Ok(session) => session,
            Err(e) => {
                let result = if e == LoginError::Banned { 2 } else { 0 };
                return reply_about(cx, item, &Reply::Login { user, result });
            }
        };
        self.state = State::Online { session };
        cx.place_here(session);
        reply_about(cx, item, &Reply::Login { user, result: 1 });
        self.drain_mailbox(cx, session);
    }

    /// Hands out (or goes on handing out) the mailbox of `session`: stored messages as
    /// MESSAGE documents, then friend requests as invites.
    pub(crate) fn drain_mailbox(&mut self, cx: &mut Cx<'_>, session: SessionId) {
        let term = cx.config.ims.terminator;
        let Some(me) = cx.net.session_name(session).cloned() else {
            return;
        };
        cx.drain_mailbox(session, None, |item| match item {
            Handout::Message(m) => match m.kind {
                // Nothing in ims says "your request was accepted": the friend simply
                // shows in FRIENDS. The item is still handed (and so removed).
                MessageKind::FriendAccepted => Bytes::new(),
                MessageKind::Direct | MessageKind::Whisper | MessageKind::Chat { .. } => encoded(
                    term,
                    &Reply::Message {
                        from: m.from.as_str(),
                        to: m.to.as_str(),
                        body: &m.body,
                    },
                ),
            },
            Handout::FriendRequest { from, .. } => encoded(
                term,
                &Reply::Invite {
                    to: me.as_str(),
                    from,
                },
            ),
        });
    }

    fn online(&mut self, cx: &mut Cx<'_>, session: SessionId, request: Request<'_>) {
        // A MESSAGE, the request sent most, looks at the owner's name without a copy of it.
        if let Request::Message { from, to, body } = &request {
            let Some(me) = cx.net.session_name(session) else {
                return;
            };
            return match me.key_ref().is_key_of(from) {
                true => message(cx, session, to, body),
                false => reply(cx, &Reply::MessageResult(0)),
            };
        }
        let Some(me) = cx.net.session_name(session).cloned() else {
            return;
        };
        let mine = |name: &str| me.key_ref().is_key_of(name);
        match request {
            // One session per connection: a second LOGIN changes nothing.
            Request::Login { user, .. } => reply(
                cx,
                &Reply::Login {
                    user: &user,
                    result: 0,
                },
            ),
            Request::Logout { user } if mine(&user) => {
                reply(
                    cx,
                    &Reply::Logout {
                        user: &user,
                        result: 1,
                    },
                );
                cx.px().forget(session);
                cx.net.logout(session);
                self.state = State::Gone;
                cx.close(CloseReason::Quit);
            }
            Request::Logout { user } => reply(
                cx,
                &Reply::Logout {
                    user: &user,
                    result: 0,
                },
            ),
            // Handled above.
            Request::Message { .. } => {}
            Request::Status { action, user } => status(cx, session, &me, &user, action),
            Request::Friend { user, action } if mine(&user) => friend(cx, &me, action),
            Request::Friend {
                action: FriendAction::Request,
                ..
            } => reply(cx, &Reply::Friends(&[])),
            Request::Friend { action, .. } => reply(
                cx,
                &Reply::Friend {
                    action: action.name(),
                    result: 0,
                },
            ),
            Request::Alive | Request::Unknown => {}
        }
    }

    /// The server is stopping: a logged-in user gets its LOGOUT, as after a kick.
    pub(crate) fn on_shutdown(&mut self, cx: &mut Cx<'_>) {
        if let State::Online { session } = self.state {
            if let Some(me) = cx.net.session_name(session).cloned() {
                reply(
                    cx,
                    &Reply::Logout {
                        user: me.as_str(),
                        result: 1,
                    },
                );
            }
        }
        cx.close(CloseReason::Shutdown);
    }

    /// A network event for this connection's session.
    pub(crate) fn on_event(&mut self, cx: &mut Cx<'_>, event: &Event) {
        let State::Online { session } = self.state else {
            // Not logged in: only a kick of the whole connection (its address banned)
            // concerns it.
            if let Event::Kicked { session: None, .. } = event {
                cx.close(CloseReason::Banned);
            }
            return;
        };
        match event {
            Event::Direct { message, .. } => reply(
                cx,
                &Reply::Message {
                    from: message.from.as_str(),
                    to: message.to.as_str(),
                    body: &message.body,
                },
            ),
            // Shown once the request is committed.
            Event::FriendNews {
                from,
                to,
                accepted: false,
                ..
            } => reply_about(
                cx,
                Some(Item::Friends(to.key())),
                &Reply::Invite {
                    to: to.as_str(),
                    from: from.as_str(),
                },
            ),
            Event::Kicked { reason, .. } => {
                if let Some(me) = cx.net.session_name(session).cloned() {
                    let user = me.as_str();
                    reply(cx, &Reply::Logout { user, result: 1 });
                }
                cx.close(match reason {
                    KickReason::Banned => CloseReason::Banned,
                    KickReason::Kicked | KickReason::AccountDeleted => CloseReason::Kicked,
                });
            }
            // ims pushes no presence, rooms or receipts: statuses show in FRIENDS.
            Event::UserOnline { .. }
            | Event::UserOffline { .. }
            | Event::UserRenamed { .. }
            | Event::Delivered { .. }
            | Event::Presence { .. }
            | Event::RoomJoined { .. }
            | Event::RoomLeft { .. }
            | Event::RoomKicked { .. }
            | Event::MemberKicked { .. }
            | Event::RoomMessage { .. }
            // An acceptance is seen in the next FRIENDS list; ims pushes none.
            | Event::FriendNews { accepted: true, .. } => {}
        }
    }

    /// The ALIVE deadline: closes a connection that sent no document for the timeout;
    /// otherwise sleeps until the deadline of its last document (no timer work per
    /// document).
    ///
    /// Also the login timeout: a connection still without a LOGIN (nor one being checked)
    /// `Limits::login_timeout` after it opened is closed, however many ALIVEs it sends.
    pub(crate) fn on_timer(&mut self, cx: &mut Cx<'_>) {
        let deadline = self.last_document + cx.config.ims.alive_timeout;
        if cx.now.mono >= deadline {
            return cx.close(CloseReason::Timeout);
        }
        let login = match self.state {
            State::Guest => Some(self.opened + cx.config.limits.login_timeout),
            _ => None,
        };
        if login.is_some_and(|at| cx.now.mono >= at) {
            return cx.close(CloseReason::LoginTimeout);
        }
        cx.set_timer(login.map_or(deadline, |at| at.min(deadline)));
    }

    pub(crate) fn on_close(&mut self, cx: &mut Cx<'_>) {
        if let State::Online { session } = std::mem::replace(&mut self.state, State::Gone) {
            cx.px().forget(session);
            cx.net.logout(session);
        }
    }
}

/// MESSAGE from the owner: 1 delivered live (on any protocol), -1 stored (sent once the
/// message is committed), 0 no such user, or refused (a full mailbox, the sender's share
/// of it used, a failing store, too many stored or live messages sent too fast).
fn message(cx: &mut Cx<'_>, session: SessionId, to: &str, body: &str) {
    let limits = MailboxLimits {
        cap: cx.config.offline_cap,
        share: cx.config.offline_share(),
    };
    let Ok(route) = cx.net.route_as_sent(session, to, limits) else {
        return reply(cx, &Reply::MessageResult(0));
    };
    let ack = match &route {
        Route::Live(_) => {
            if cx.charge(Cost::Message).is_err() {
                return reply(cx, &Reply::MessageResult(0));
            }
            Reply::MessageResult(1)
        }
        Route::Mailbox(_) => {
            if cx.charge(Cost::Durable).is_err() {
                return reply(cx, &Reply::MessageResult(0));
            }
            Reply::MessageResult(-1)
        }
    };
    if !room_for(cx, &ack) {
        return;
    }
    let outgoing = Outgoing {
        from: session,
        body: body.into(),
        kind: DirectKind::Chat,
        sent_ms: cx.now.wall_ms,
    };
    // The gates above changed no routing state (a close they caused waits for the end
    // of this input), so the route still holds: it is not looked up again.
    match cx.deliver_routed(outgoing, route) {
        Outcome::Delivered => reply(cx, &Reply::MessageResult(1)),
        Outcome::Stored { seq, .. } => reply_after(cx, seq, &Reply::MessageResult(-1)),
        Outcome::Refused(_) => reply(cx, &Reply::MessageResult(0)),
    }
}

/// The code of a status as ims numbers them (STATUSLIST).
fn code(status: Status) -> i8 {
    match status {
        Status::Online => 0,
        Status::Away => 1,
        Status::Busy => 2,
        Status::Invisible => 3,
    }
}

/// How a user shows, as a code; -1 offline (or invisible to others).
fn shown_code(shown: Shown) -> i8 {
    match shown {
        Shown::Offline => -1,
        Shown::As(status) => code(status),
    }
}

fn status(cx: &mut Cx<'_>, session: SessionId, me: &UserName, user: &str, action: StatusAction) {
    let key = UserKey::of(user).ok();
    let own = key.as_ref() == Some(me.key_ref());
    match action {
        StatusAction::List => reply(cx, &Reply::StatusList),
        StatusAction::Set { code } => {
            let status = match code.trim() {
                "0" => Some(Status::Online),
                "1" => Some(Status::Away),
                "2" => Some(Status::Busy),
                "3" => Some(Status::Invisible),
                _ => None,
            };
            match status.filter(|_| own) {
                Some(status) => {
                    cx.net.set_status(session, status);
                    reply(cx, &Reply::StatusSet(1));
                }
                None => reply(cx, &Reply::StatusSet(0)),
            }
        }
        StatusAction::Get => {
            let mine = me.key();
            let result = match key {
                Some(key) if own => shown_code(cx.net.shown_to(&mine, &key)),
                Some(key) if cx.net.are_friends(&mine, &key) => shown_code(cx.net.shown(&key)),
                _ => -1,
            };
            // Whether the other is a friend is durable: the answer waits for its commit.
            reply_about(cx, Some(Item::Friends(mine)), &Reply::StatusGet(result));
        }
    }
}

/// FRIEND from the owner. Changes are answered once committed; an invite reaches the
/// other user's live sessions then, or waits for its next login.
fn friend(cx: &mut Cx<'_>, me: &UserName, action: FriendAction) {
    let mine = me.key();
    if action == FriendAction::Request {
        let friends: Vec<(UserName, i8)> = (cx.net.friends_of(&mine))
            .filter_map(|key| {
                let name = cx.net.account(key)?.name.clone();
                Some((name, shown_code(cx.net.shown(key))))
            })
            .collect();
        let list: Vec<(&str, i8)> = friends.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        return reply_about(cx, Some(Item::Friends(mine)), &Reply::Friends(&list));
    }
    let kind = action.name();
    let refuse = |cx: &mut Cx<'_>| {
        reply_about(
            cx,
            Some(Item::Friends(me.key())),
            &Reply::Friend {
                action: kind,
                result: 0,
            },
        )
    };
    let other = match &action {
        FriendAction::Add(n)
        | FriendAction::Delete(n)
        | FriendAction::Accept(n)
        | FriendAction::Deny(n) => n,
        FriendAction::Request => return,
    };
    // The other as registered, so lists and invites show its own spelling.
    let Some(other) = UserKey::of(other)
        .ok()
        .and_then(|key| cx.net.account(&key))
        .map(|a| a.name.clone())
    else {
        return refuse(cx);
    };
    if !cx.store_ok() || cx.charge(Cost::Durable).is_err() {
        return refuse(cx);
    }
    let now = cx.now.wall_ms;
    let change = match action {
        FriendAction::Add(_) => cx.net.ask_friend(me, &other, now),
        FriendAction::Delete(_) => cx.net.end_friendship(me, &other),
        FriendAction::Accept(_) => cx.net.answer_friend(me, &other, true, now),
        FriendAction::Deny(_) => cx.net.answer_friend(me, &other, false, now),
        FriendAction::Request => return,
    };
    let Ok(change) = change else {
        return refuse(cx);
    };
    let ack = Reply::Friend {
        action: kind,
        result: 1,
    };
    if !room_for(cx, &ack) {
        return;
    }
    let seq = cx.persist_friends(me, &other, change);
    reply_after(cx, seq, &ack);
}

/// The bytes of `reply`: shared static bytes for a fixed one, otherwise one buffer of
/// exactly its length (so freezing it allocates nothing more).
fn encoded(term: Terminator, reply: &Reply<'_>) -> Bytes {
    if let Some(bytes) = codec::fixed(reply, term) {
        return Bytes::from_static(bytes);
    }
    if let Reply::Message { from, to, body } = reply {
        let doc = codec::MessageDoc::new(from, to, body);
        let mut out = BytesMut::with_capacity(doc.len());
        doc.put(term, &mut out);
        return out.freeze();
    }
    let mut out = BytesMut::with_capacity(reply.encoded_len());
    codec::encode(reply, term, &mut out);
    out.freeze()
}

fn reply(cx: &mut Cx<'_>, r: &Reply<'_>) {
    send(cx, None, r);
}

/// Sends a reply that depends on durable `item`: it waits for the item's pending change.
fn reply_about(cx: &mut Cx<'_>, item: Option<Item>, r: &Reply<'_>) {
    let after = item.and_then(|item| cx.net.wait_for(&item));
    send(cx, after, r);
}

/// Sends a reply that reveals the durable change `seq`: it leaves once committed.
fn reply_after(cx: &mut Cx<'_>, seq: Seq, r: &Reply<'_>) {
    send(cx, Some(seq), r);
}

/// Sends `reply`, held until `after` is committed if given: a fixed one as its shared
/// static bytes, any other encoded straight into the connection's queued transmit when
/// short (a delivered message costs no buffer of its own).
fn send(cx: &mut Cx<'_>, after: Option<Seq>, reply: &Reply<'_>) {
    let term = cx.config.ims.terminator;
    if let Some(bytes) = codec::fixed(reply, term) {
        let bytes = Bytes::from_static(bytes);
        return match after {
            Some(seq) => cx.send_after(bytes, seq),
            None => cx.send(bytes),
        };
    }
    if let Reply::Message { from, to, body } = reply {
        let doc = codec::MessageDoc::new(from, to, body);
        return cx.send_encoded(after, doc.len(), |out| doc.put(term, out));
    }
    cx.send_encoded(after, reply.encoded_len(), |out| {
        codec::encode(reply, term, out)
    });
}

/// Whether the connection has room for `ack`, the answer of a request about to take
/// effect; without it the connection is closed as a slow reader and the request dropped
/// (see `Cx::room_for`).
fn room_for(cx: &mut Cx<'_>, ack: &Reply<'_>) -> bool {
    cx.room_for(ack.encoded_len())
}
