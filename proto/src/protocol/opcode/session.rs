//! One opcode connection: requests one at a time (a request waiting for its password hash
//! or its media holds back the lines after it), over the shared network model.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

use super::codec::{self, ParseError, Reply, Request, Status};
use crate::cx::{Cx, Handout};
use crate::effect::{Effect, EffectResult, Secret};
use crate::frame::lines::{Line, LineFramer};
use crate::frame::{read_through, FrameInput};
use crate::ids::{EffectId, Protocol, Seq};
use crate::io::CloseReason;
use crate::limits::Cost;
use crate::model::{
    Body, Capabilities, DirectKind, Event, FriendError, Identity, Item, KickReason, LoginKind,
    MailboxLimits, Network, Outcome, Outgoing, SessionId, Undeliverable, UserKey, UserName,
};
use crate::persist::{Account, Blob, Change, ChatId, MediaId, MessageKind, State};
use crate::protocol::Kept;

/// Account logins; one opcode session per user (405), others may be live on other
/// protocols; no receipts.
const LOGIN: LoginKind = LoginKind {
    identity: Identity::Account,
    exclusive: false,
    caps: Capabilities {
        receipts: false,
        told_of_delivery: false,
    },
    protocol: Protocol::Opcode,
};

/// The first id of a chat kept for one connection only: with a user who has no account
/// (a ws2017 nick, an arsc guest), which no durable chat can hold. Durable chat ids stay
/// far below it.
pub(crate) const TRANSIENT_CHAT_BASE: u64 = 1 << 62;

/// Longest password, email or gender accepted (bytes); a longer password is 402, a longer
/// email or gender 211.
const MAX_FIELD: usize = 1024;

/// A request waiting for its effect.
#[derive(Debug)]
enum Waiting {
    Register {
        name: UserName,
        email: Option<String>,
        gender: Option<String>,
    },
    Login {
        name: UserName,
    },
    Media,
}

/// One opcode connection.
#[derive(Debug)]
pub(crate) struct Session {
    framer: LineFramer,
    inbound: BytesMut,
    /// The network session and the account's name, once logged in.
    user: Option<(SessionId, UserName)>,
    waiting: Option<(EffectId, Waiting)>,
    /// Chats with users who have no account, for this login only.
    transient: Vec<(ChatId, UserName)>,
    next_transient: u64,
}

impl Session {
    /// A new connection: no greeting (the table has none). A banned address or a
    /// connection over the caps is closed at once.
    pub(crate) fn open(cx: &mut Cx<'_>) -> Session {
        let session = Session {
            framer: LineFramer::cr_or_lf(frame_limit(cx)),
            inbound: BytesMut::new(),
            user: None,
            waiting: None,
            transient: Vec::new(),
            next_transient: TRANSIENT_CHAT_BASE,
        };
        if cx.peer.ip().is_some_and(|ip| cx.net.ip_banned(ip)) {
            cx.close(CloseReason::Banned);
        } else if cx.admission().is_err() {
            cx.close(CloseReason::TooManyConnections);
        } else {
            cx.set_timer(cx.now.mono + cx.config.limits.login_timeout);
        }
        session
    }

    /// The login timeout: a connection not logged in `Limits::login_timeout` after it
    /// opened is closed (the table has no line to say so).
    pub(crate) fn on_timer(&mut self, cx: &mut Cx<'_>) {
        if self.user.is_some() {
            return;
        }
        if self.waiting.is_some() {
            // A login or registration is being checked: a second more.
            return cx.set_timer(cx.now.mono + core::time::Duration::from_secs(1));
        }
        cx.close(CloseReason::LoginTimeout);
    }

    #[cfg(test)]
    pub(crate) fn input_capacity(&self) -> usize {
        self.inbound.capacity()
    }

    pub(crate) fn buffered(&self) -> usize {
        self.inbound.len()
    }

    pub(crate) fn on_bytes(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, bytes: &Bytes) {
        self.run_with(cx, shared, bytes);
    }

    /// Handles buffered lines until one waits for an effect.
    fn run(&mut self, cx: &mut Cx<'_>, shared: &mut Shared) {
        self.run_with(cx, shared, &[]);
    }

    /// Handles the lines buffered and those in `arrived` until one waits for an effect.
    fn run_with(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, arrived: &[u8]) {
        let mut inbound = std::mem::take(&mut self.inbound);
        read_through(&mut inbound, arrived, |input| self.lines(cx, shared, input));
        self.inbound = inbound;
        self.bound_waiting(cx);
    }

    fn lines(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, input: &mut &[u8]) {
        while cx.is_open() && self.waiting.is_none() {
            match self.framer.next_line(input) {
                None => break,
                Some(Line::TooLong) => reply(cx, &Reply::Invalid),
                Some(Line::Complete { len, consumed }) => {
                    self.on_line(cx, shared, &input[..len]);
                    input.advance(consumed);
                }
            }
        }
    }

    fn bound_waiting(&mut self, cx: &mut Cx<'_>) {
        // While a request waits for its effect the next lines wait too; a client that
        // keeps sending meanwhile is cut off before its input grows without bound.
        let limit = frame_limit(cx).saturating_add(cx.config.opcode.max_line_bytes);
        if self.inbound.len() > limit {
            cx.close(CloseReason::ProtocolError);
        }
    }

    fn on_line(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, line: &[u8]) {
        // Only a message with media may pass the line limit (up to the media limit).
        if line.len() > cx.config.opcode.max_line_bytes && !line.starts_with(b"115 ") {
            return reply(cx, &Reply::Invalid);
        }
        match codec::parse(line) {
            Err(ParseError::Empty) => {}
            Err(ParseError::Unknown) => reply(cx, &Reply::Unknown),
            Err(ParseError::Invalid) => reply(cx, &Reply::Invalid),
            Ok(request) => self.request(cx, shared, request),
        }
    }

    fn request(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, request: Request<'_>) {
        // A message, the request that matters for speed, borrows the user rather than
        // cloning its name (see `on_event`).
        let request = match (&self.user, request) {
            (
                Some((session, me)),
                Request::MessageSend {
                    chat,
                    message,
                    media,
                },
            ) => return message_send(cx, &self.transient, *session, me, chat, &message, media),
            (_, request) => request,
        };
        let Some((session, me)) = self.user.clone() else {
            return match request {
                Request::Register {
                    name,
                    password,
                    email,
                    gender,
                } => {
                    let owned = |f: Option<Cow<'_, str>>| f.map(Cow::into_owned);
                    let (email, gender) = (owned(email), owned(gender));
                    self.register(cx, &name, password.into_owned(), email, gender)
                }
                Request::Login { name, password } => self.login(cx, &name, password.into_owned()),
                // The table: 112 before login gets a bare 211.
                Request::ChatList => reply(cx, &Reply::Invalid),
                other => reply(cx, &not_logged_in(&other)),
            };
        };
        match request {
            Request::Register { .. } => reply(cx, &Reply::Register(Status::ClientLoggedIn)),
            Request::Login { name, .. } => reply(
                cx,
                &Reply::Login {
                    status: Status::ClientLoggedIn,
                    name: &name,
                },
            ),
            Request::Logout => {
                self.logout(cx);
                reply(cx, &Reply::Logout(Status::Ok));
            }
            Request::ChatList => self.chat_list(cx, &me),
            Request::ChatCreate { contact } => chat_create(cx, &me, &contact),
            Request::ChatDelete { chat } => self.chat_delete(cx, &me, chat),
            Request::MessageSend {
                chat,
                message,
                media,
            } => message_send(cx, &self.transient, session, &me, chat, &message, media),
            Request::OwnContacts => own_contacts(cx, &me),
            Request::Contacts => shared.contacts(cx),
            Request::Media { id } => self.media(cx, &me, id),
            Request::ConfirmContact { name } => confirm_contact(cx, &me, &name),
        }
    }

    fn register(
        &mut self,
        cx: &mut Cx<'_>,
        name: &str,
        password: String,
        email: Option<String>,
        gender: Option<String>,
    ) {
        let Ok(name) = UserName::parse(name) else {
            return reply(cx, &Reply::Register(Status::UsernameInvalid));
        };
        if !password_ok(&password) {
            return reply(cx, &Reply::Register(Status::PasswordInvalid));
        }
        let too_long = |f: &Option<String>| f.as_ref().is_some_and(|f| f.len() > MAX_FIELD);
        if too_long(&email) || too_long(&gender) {
            return reply(cx, &Reply::Invalid);
        }
        if cx.net.name_taken(name.key_ref()) {
            let taken = codec::line(&Reply::Register(Status::UsernameTaken));
            return cx.send_about(&Item::Account(name.key()), taken);
        }
        if !cx.store_ok() || cx.charge(Cost::Durable).is_err() {
            return reply(cx, &Reply::Invalid);
        }
        let id = cx.effect(Effect::HashPassword {
            password: Secret(password),
        });
        let waiting = Waiting::Register {
            name,
            email,
            gender,
        };
        self.waiting = Some((id, waiting));
    }

    fn login(&mut self, cx: &mut Cx<'_>, name: &str, password: String) {
        let wrong = |cx: &mut Cx<'_>, item: Option<Item>| {
            let line = codec::line(&Reply::Login {
                status: Status::PasswordWrong,
                name,
            });
            match item {
                Some(item) => cx.send_about(&item, line),
                None => cx.send(line),
            }
        };
        let Ok(parsed) = UserName::parse(name) else {
            return wrong(cx, None);
        };
        let key = parsed.key();
        let Some(account) = cx.net.account(&key).filter(|a| !a.banned) else {
            return wrong(cx, Some(Item::Account(key)));
        };
        if cx.net.has_session_over(&key, Protocol::Opcode) {
            return reply(
                cx,
                &Reply::Login {
                    status: Status::UserLoggedIn,
                    name,
                },
            );
        }
        let hash = account.password.clone();
        // A login is told to the lobby, and its password check is costly: both are
        // rationed per connection and address, as ws2017's names are.
        if cx.charge(Cost::Broadcast).is_err() {
            return reply(cx, &Reply::Invalid);
        }
        // Locked after failed logins: refused as a rate limit is, with no hash made.
        if cx.login_allowed(&key).is_err() {
            return reply(cx, &Reply::Invalid);
        }
        let id = cx.effect(Effect::VerifyPassword {
            hash,
            password: Secret(password),
        });
        self.waiting = Some((id, Waiting::Login { name: parsed }));
    }

    pub(crate) fn on_effect(
        &mut self,
        cx: &mut Cx<'_>,
        shared: &mut Shared,
        id: EffectId,
        result: EffectResult,
    ) {
        let Some((waiting_id, waiting)) = self.waiting.take() else {
            return;
        };
        if waiting_id != id {
            self.waiting = Some((waiting_id, waiting));
            return;
        }
        match (waiting, result) {
            (
                Waiting::Register {
                    name,
                    email,
                    gender,
                },
                EffectResult::Hashed {
                    password,
                    ims_password,
                },
            ) => {
                let key = name.key();
                if cx.net.name_taken(&key) {
                    let taken = codec::line(&Reply::Register(Status::UsernameTaken));
                    cx.send_about(&Item::Account(key), taken);
                } else if !cx.store_ok() {
                    reply(cx, &Reply::Invalid);
                } else {
                    let account = Account {
                        name,
                        password,
                        ims_password,
                        email,
                        gender,
                        level: 0,
                        banned: false,
                        created_ms: cx.now.wall_ms,
                    };
                    let seq = cx.persist(Change::AccountCreated(account));
                    cx.send_after(codec::line(&Reply::Register(Status::Ok)), seq);
                }
            }
            (Waiting::Login { name }, EffectResult::Verified(true)) => {
                cx.login_succeeded(name.key_ref());
                self.logged_in(cx, &name)
            }
            (Waiting::Login { name }, EffectResult::Verified(false)) => {
                cx.login_failed(name.key_ref());
                reply(
                    cx,
                    &Reply::Login {
                        status: Status::PasswordWrong,
                        name: name.as_str(),
                    },
                )
            }
            (Waiting::Media, EffectResult::Media(Some(bytes))) => reply(
                cx,
                &Reply::Media {
                    status: Status::Ok,
                    bytes: Some(&bytes),
                },
            ),
            (Waiting::Media, EffectResult::Media(None)) => reply(
                cx,
                &Reply::Media {
                    status: Status::MediaNotFound,
                    bytes: None,
                },
            ),
            // The effect failed (a malformed stored hash, an unreadable store).
            _ => reply(cx, &Reply::Invalid),
        }
        self.run(cx, shared);
    }

    /// The password matched: the session starts, then the mailbox is handed over (each
    /// stored message as a `220` in its chat, each friend request or acceptance as `233`).
    fn logged_in(&mut self, cx: &mut Cx<'_>, name: &UserName) {
        let key = name.key();
        let refuse = |cx: &mut Cx<'_>, status| {
            let line = codec::line(&Reply::Login {
                status,
                name: name.as_str(),
            });
            cx.send_about(&Item::Account(name.key()), line);
        };
        let Some(account) = cx.net.account(&key).filter(|a| !a.banned) else {
            return refuse(cx, Status::PasswordWrong);
        };
        let registered = account.name.clone();
        if cx.net.has_session_over(&key, Protocol::Opcode) {
            return refuse(cx, Status::UserLoggedIn);
        }
        let Ok(session) = cx.net.login(&registered, cx.conn, LOGIN) else {
            return refuse(cx, Status::PasswordWrong);
        };
        cx.place_here(session);
        self.user = Some((session, registered.clone()));
        let ok = codec::line(&Reply::Login {
            status: Status::Ok,
            name: registered.as_str(),
        });
        self.hand_out_mailbox(cx, session, Some((ok, Item::Account(key))));
    }

    /// The chats the stored direct messages of a mailbox show in, one per sender, made
    /// now where there is none; with the last change that made one.
    fn mailbox_chats(
        &mut self,
        cx: &mut Cx<'_>,
        me: &UserName,
        drain: &crate::model::Drain,
    ) -> (BTreeMap<UserKey, ChatId>, Option<Seq>) {
        let mut chats: BTreeMap<UserKey, ChatId> = BTreeMap::new();
        let mut last: Option<Seq> = None;
        for message in &drain.messages {
            if matches!(message.kind, MessageKind::Direct | MessageKind::Whisper) {
                let from = message.from.key();
                if let std::collections::btree_map::Entry::Vacant(entry) = chats.entry(from) {
                    let (chat, seq) = self.chat_with(cx, me, &message.from);
                    entry.insert(chat);
                    last = last.max(seq);
                }
            }
        }
        (chats, last)
    }

    /// Goes on handing out the mailbox of `session` (paused for room on the connection).
    pub(crate) fn drain_mailbox(&mut self, cx: &mut Cx<'_>, session: SessionId) {
        self.hand_out_mailbox(cx, session, None);
    }

    /// Hands out the mailbox of `session`: stored messages as 220 in their chats (made
    /// on first use), accepted requests and friend requests as 233. `login`, the answer
    /// to the login and the item it reveals, goes first, after the chats' commit.
    fn hand_out_mailbox(
        &mut self,
        cx: &mut Cx<'_>,
        session: SessionId,
        login: Option<(Bytes, Item)>,
    ) {
        let Some(me) = cx.net.session_name(session).cloned() else {
            return;
        };
        let drain = cx.net.drain_mailbox(session);
        let (chats, last) = self.mailbox_chats(cx, &me, &drain);
        if let Some((ok, item)) = login {
            match last {
                Some(seq) => cx.send_after(ok, seq),
                None => cx.send_about(&item, ok),
            }
        }
        cx.drain_mailbox(session, last, |item| match item {
            Handout::Message(m) => match m.kind {
                MessageKind::Chat { chat, media } => codec::line(&Reply::MessageSended {
                    chat: chat.0,
                    ms: m.sent_ms,
                    message: &m.body,
                    media: media.map(|m| m.0),
                }),
                MessageKind::FriendAccepted => {
                    codec::line(&Reply::ConfirmContactAdd(m.from.as_str()))
                }
                MessageKind::Direct | MessageKind::Whisper => {
                    let chat = chats.get(m.from.key_ref()).map_or(0, |c| c.0);
                    codec::line(&Reply::MessageSended {
                        chat,
                        ms: m.sent_ms,
                        message: &m.body,
                        media: None,
                    })
                }
            },
            Handout::FriendRequest { from, .. } => codec::line(&Reply::ConfirmContactAdd(from)),
        });
    }

    fn logout(&mut self, cx: &mut Cx<'_>) {
        if let Some((session, _)) = self.user.take() {
            cx.px().forget(session);
            cx.net.logout(session);
        }
        self.transient.clear();
    }

    /// The chat between `me` and `other`, for a message that arrives from `other`: their
    /// durable chat, made now (its change's `Seq` returned) when both are accounts and
    /// none exists; otherwise one kept for this login.
    fn chat_with(
        &mut self,
        cx: &mut Cx<'_>,
        me: &UserName,
        other: &UserName,
    ) -> (ChatId, Option<Seq>) {
        let (mine, theirs) = (me.key(), other.key());
        let accounts = cx.net.account(&theirs).is_some() && cx.net.account(&mine).is_some();
        if accounts && mine != theirs {
            if let Some(chat) = find_chat(cx.net.state(), &mine, &theirs) {
                return (chat, None);
            }
            if cx.store_ok() {
                let id = ChatId(cx.net.state().next_chat_id);
                let seq = cx.persist(Change::ChatCreated {
                    id,
                    members: vec![me.clone(), other.clone()],
                    created_ms: cx.now.wall_ms,
                });
                return (id, Some(seq));
            }
        }
        if let Some((chat, _)) = self.transient.iter().find(|(_, n)| n.key() == theirs) {
            return (*chat, None);
        }
        let chat = ChatId(self.next_transient);
        self.next_transient += 1;
        self.transient.push((chat, other.clone()));
        (chat, None)
    }

    fn chat_list(&mut self, cx: &mut Cx<'_>, me: &UserName) {
        let state = cx.net.state();
        let mine = me.key();
        let mut rows: Vec<(u64, String)> = (state.chats.iter())
            .filter(|(_, chat)| chat.members.contains(&mine))
            .map(|(id, chat)| {
                let other = chat.members.iter().find(|k| **k != mine);
                // A member whose account is gone has left: shown as an empty name.
                let other = other.map_or(String::new(), |k| state.shown_name(k).to_owned());
                (id.0, other)
            })
            .collect();
        rows.extend((self.transient.iter()).map(|(id, name)| (id.0, name.as_str().to_owned())));
        let mut out = BytesMut::new();
        codec::encode(&Reply::ChatListBegin(rows.len()), &mut out);
        for (chat, other) in &rows {
            let element = Reply::ChatListElement {
                chat: *chat,
                me: me.as_str(),
                other,
            };
            codec::encode(&element, &mut out);
        }
        codec::encode(&Reply::ChatListEnd, &mut out);
        cx.send_about_all(out.freeze());
    }

    fn chat_delete(&mut self, cx: &mut Cx<'_>, me: &UserName, chat: u64) {
        if let Some(i) = self.transient.iter().position(|(id, _)| id.0 == chat) {
            self.transient.remove(i);
            return reply(cx, &Reply::ChatDelete(Status::Ok));
        }
        let id = ChatId(chat);
        let status = match cx.net.state().chats.get(&id) {
            None => Status::ChatNotFound,
            Some(c) if !c.members.contains(me.key_ref()) => Status::PermissionDenied,
            Some(_) => {
                if !cx.store_ok() || !fits(cx, &Reply::ChatDelete(Status::Ok)) {
                    return store_refused(cx);
                }
                let seq = cx.persist(Change::ChatDeleted { id });
                return cx.send_after(codec::line(&Reply::ChatDelete(Status::Ok)), seq);
            }
        };
        cx.send_about(&Item::Chat(id), codec::line(&Reply::ChatDelete(status)));
    }
}

/// 115: a message (with media or not) in one of the user's chats, `transient` the
/// chats of this login with users who have no account.
fn message_send(
    cx: &mut Cx<'_>,
    transient: &[(ChatId, UserName)],
    session: SessionId,
    me: &UserName,
    chat: u64,
    message: &str,
    media: Option<Vec<u8>>,
) {
    if media
        .as_ref()
        .is_some_and(|m| m.len() > cx.config.opcode.max_media_bytes)
    {
        return reply(cx, &Reply::Invalid);
    }
    let id = ChatId(chat);
    let refuse = |cx: &mut Cx<'_>, status| {
        cx.send_about(&Item::Chat(id), codec::line(&Reply::MessageSend(status)));
    };
    // Who the message goes to, and how the other side sees it.
    let (to, kind) = match transient.iter().find(|(c, _)| *c == id) {
        Some((_, peer)) if media.is_none() => (peer.clone(), None),
        // A chat with a user who has no account keeps no media.
        Some(_) => return refuse(cx, Status::PermissionDenied),
        None => {
            let state = cx.net.state();
            let Some(found) = state.chats.get(&id) else {
                return refuse(cx, Status::ChatNotFound);
            };
            if !found.members.contains(me.key_ref()) {
                return refuse(cx, Status::PermissionDenied);
            }
            // Every member has an account (deleting one takes it out of its chats): an
            // online one is found by hash, only an offline one in the accounts' ordered
            // map (its name comparisons were a twelfth of a delivered message).
            let other = found.members.iter().find(|k| *k != me.key_ref());
            let name = other.and_then(|k| {
                (cx.net.online_name(k)).or_else(|| state.account(k).map(|a| &a.name))
            });
            let Some(name) = name else {
                return refuse(cx, Status::ContactNotFound);
            };
            let media_id = media.as_ref().map(|_| MediaId(state.next_media_id));
            (name.clone(), Some(media_id))
        }
    };
    let limits = MailboxLimits {
        cap: cx.config.offline_cap,
        share: cx.config.offline_share(),
    };
    let route = match cx.net.route_direct(session, &to, limits) {
        Err(why) => {
            cx.net.refused_direct(session, &to, &why);
            return undeliverable(cx, id, &why);
        }
        Ok(route) => route,
    };
    let stored = matches!(route, crate::model::Route::Mailbox(_));
    // The sender's total of stored media, past which a new item is refused.
    if let (Some(bytes), Some(_)) = (&media, kind.flatten()) {
        let limit = cx.config.opcode.max_media_bytes_per_user;
        if cx
            .net
            .admit_media(session, bytes.len() as u64, limit)
            .is_err()
        {
            return reply(cx, &Reply::Invalid);
        }
    }
    if (stored || media.is_some()) && (!cx.store_ok() || cx.charge(Cost::Durable).is_err()) {
        return store_refused(cx);
    }
    let now = cx.now.wall_ms;
    let media_id = kind.flatten();
    let sent = Reply::MessageSend(Status::Ok);
    let sended = Reply::MessageSended {
        chat,
        ms: now,
        message,
        media: media_id.map(|m| m.0),
    };
    let mut short = codec::Short::new();
    let replies = codec::encoded(&[sent, sended], &mut short);
    if !cx.room_for(replies.len()) {
        return;
    }
    let mut held = None;
    if let (Some(bytes), Some(media_id)) = (media, media_id) {
        held = Some(cx.persist(Change::MediaStored {
            id: media_id,
            chat: id,
            sender: me.clone(),
            created_ms: now,
            bytes: Blob(Bytes::from(bytes)),
        }));
    }
    let outgoing = Outgoing {
        from: session,
        body: Body::from(message),
        kind: match kind {
            Some(media) => DirectKind::InChat { chat: id, media },
            None => DirectKind::Chat,
        },
        sent_ms: now,
    };
    // The gates above changed no routing state (media accounting, rates, the media
    // stored; a close they caused waits for the end of this input), so the route
    // still holds and is not looked up again.
    match cx.deliver_routed(outgoing, route) {
        Outcome::Refused(why) => return undeliverable(cx, id, &why),
        Outcome::Delivered => {}
        Outcome::Stored { seq, .. } => held = held.max(Some(seq)),
    }
    let after = match held {
        Some(seq) => Some(seq),
        None => cx.net.wait_for(&Item::Chat(id)),
    };
    send_lines(cx, replies, after);
}

/// Sends encoded `replies`, held until `after` is committed if given: short ones copied
/// straight into the connection's queued transmit, so the lines of a delivered message
/// cost no buffer of their own.
fn send_lines(cx: &mut Cx<'_>, replies: codec::Lines<'_>, after: Option<Seq>) {
    match (replies, after) {
        (codec::Lines::Short(short), after) => {
            cx.send_encoded(after, short.len(), |out| out.extend_from_slice(short));
        }
        (codec::Lines::Long(bytes), Some(seq)) => cx.send_after(bytes, seq),
        (codec::Lines::Long(bytes), None) => cx.send(bytes),
    }
}

impl Session {
    fn media(&mut self, cx: &mut Cx<'_>, me: &UserName, id: u64) {
        let id = MediaId(id);
        let state = cx.net.state();
        let status = match state.media.get(&id) {
            None => Status::MediaNotFound,
            Some(media) => {
                let member = (state.chats.get(&media.chat))
                    .is_some_and(|c| c.members.contains(me.key_ref()));
                if member {
                    let effect = cx.effect(Effect::ReadMedia { id });
                    self.waiting = Some((effect, Waiting::Media));
                    return;
                }
                Status::PermissionDenied
            }
        };
        let refusal = Reply::Media {
            status,
            bytes: None,
        };
        cx.send_about_all(codec::line(&refusal));
    }

    /// Turns a network event into this client's lines.
    pub(crate) fn on_event(&mut self, cx: &mut Cx<'_>, event: &Event) {
        // Not cloned for every event: the name's shared counts were most of the cost of
        // a delivered message here (atomic, on lines no other work has touched lately).
        let Some(mine) = self.user.as_ref().map(|(session, _)| *session) else {
            if let Event::Kicked { reason, .. } = event {
                cx.close(kick_reason(*reason));
            }
            return;
        };
        match event {
            Event::Direct { session, message } if *session == mine => {
                let (chat, media, held) = match message.kind {
                    DirectKind::InChat { chat, media } => (chat, media, None),
                    DirectKind::Chat | DirectKind::Whisper => {
                        let Some((_, me)) = self.user.clone() else {
                            return;
                        };
                        let (chat, seq) = self.chat_with(cx, &me, &message.from);
                        (chat, None, seq)
                    }
                };
                let line = Reply::MessageSended {
                    chat: chat.0,
                    ms: cx.now.wall_ms,
                    message: &message.body,
                    media: media.map(|m| m.0),
                };
                let after = match held {
                    Some(seq) => Some(seq),
                    None => cx.net.wait_for(&Item::Chat(chat)),
                };
                send_lines(cx, codec::encoded(&[line], &mut codec::Short::new()), after);
            }
            Event::FriendNews { session, from, .. } if *session == mine => {
                let line = codec::line(&Reply::ConfirmContactAdd(from.as_str()));
                if let Some((_, me)) = &self.user {
                    cx.send_about(&Item::Friends(me.key()), line);
                }
            }
            Event::Kicked { reason, .. } => cx.close(kick_reason(*reason)),
            _ => {}
        }
    }

    /// The connection is gone: its session ends.
    pub(crate) fn on_close(&mut self, cx: &mut Cx<'_>) {
        self.logout(cx);
    }
}

/// Longest line the framer keeps: the line limit, or a message with the largest media
/// percent-encoded, whichever is longer.
fn frame_limit(cx: &Cx<'_>) -> usize {
    let config = &cx.config.opcode;
    (config.max_line_bytes).max(
        config
            .max_media_bytes
            .saturating_mul(3)
            .saturating_add(1024),
    )
}

/// The answer to a request before login: its reply with 407.
fn not_logged_in(request: &Request<'_>) -> Reply<'static> {
    let status = Status::NotLoggedIn;
    match request {
        Request::Logout => Reply::Logout(status),
        Request::ChatCreate { .. } => Reply::ChatCreate(status),
        Request::ChatDelete { .. } => Reply::ChatDelete(status),
        Request::MessageSend { .. } => Reply::MessageSend(status),
        Request::OwnContacts => Reply::OwnContacts(status),
        Request::Media { .. } => Reply::Media {
            status,
            bytes: None,
        },
        Request::Contacts => Reply::Contacts(status),
        Request::ConfirmContact { .. } => Reply::ConfirmContact(status),
        Request::Login { .. } | Request::Register { .. } | Request::ChatList => Reply::Invalid,
    }
}

/// A password: 1 to 1024 bytes, no control characters.
fn password_ok(password: &str) -> bool {
    !password.is_empty() && password.len() <= MAX_FIELD && !password.chars().any(char::is_control)
}

/// The chat whose members are exactly `a` and `b`.
fn find_chat(state: &State, a: &UserKey, b: &UserKey) -> Option<ChatId> {
    (state.chats.iter())
        .find(|(_, chat)| {
            chat.members.len() == 2 && chat.members.contains(a) && chat.members.contains(b)
        })
        .map(|(id, _)| *id)
}

fn chat_create(cx: &mut Cx<'_>, me: &UserName, contact: &str) {
    let mine = me.key();
    let Some(theirs) = UserName::parse(contact)
        .ok()
        .map(|n| n.key())
        .filter(|k| cx.net.account(k).is_some() && *k != mine)
    else {
        let about = UserName::parse(contact)
            .ok()
            .map(|n| Item::Account(n.key()));
        let line = codec::line(&Reply::ChatCreate(Status::ContactNotFound));
        return match about {
            Some(item) => cx.send_about(&item, line),
            None => cx.send(line),
        };
    };
    let about = Item::Friends(mine.clone());
    if find_chat(cx.net.state(), &mine, &theirs).is_some() {
        // No second chat: the one there is answers.
        return cx.send_about_all(codec::line(&Reply::ChatCreate(Status::Ok)));
    }
    if !cx.net.are_friends(&mine, &theirs) {
        let line = codec::line(&Reply::ChatCreate(Status::ContactNotConfirmed));
        return cx.send_about(&about, line);
    }
    if !cx.store_ok() || cx.charge(Cost::Durable).is_err() {
        return store_refused(cx);
    }
    if !fits(cx, &Reply::ChatCreate(Status::Ok)) {
        return;
    }
    let Some(other) = cx.net.account(&theirs).map(|a| a.name.clone()) else {
        return reply(cx, &Reply::ChatCreate(Status::ContactNotFound));
    };
    let seq = cx.persist(Change::ChatCreated {
        id: ChatId(cx.net.state().next_chat_id),
        members: vec![me.clone(), other],
        created_ms: cx.now.wall_ms,
    });
    cx.send_after(codec::line(&Reply::ChatCreate(Status::Ok)), seq);
}

fn own_contacts(cx: &mut Cx<'_>, me: &UserName) {
    let state = cx.net.state();
    let mine = me.key();
    let friends: Vec<(String, u64)> = (state.friends.get(&mine).into_iter().flatten())
        .map(|(k, f)| (state.shown_name(k).to_owned(), f.since_ms))
        .collect();
    let mut out = BytesMut::new();
    codec::encode(&Reply::OwnContacts(Status::Ok), &mut out);
    codec::encode(&Reply::OwnContactsBegin(friends.len()), &mut out);
    for (name, since_ms) in &friends {
        let since_ms = *since_ms;
        codec::encode(&Reply::OwnContact { name, since_ms }, &mut out);
    }
    codec::encode(&Reply::OwnContactsEnd, &mut out);
    cx.send_about(&Item::Friends(mine), out.freeze());
}

/// What opcode keeps across its connections: the `120` answer as last encoded.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Every account, `228` to `231`, of an accounts' version
    /// ([`Network::accounts_version`]): rebuilt for every `120`, a 5-byte request cost the
    /// core 53 us at 2000 accounts (`--example contacts`), and anyone may register more;
    /// now that is paid once per account created or deleted.
    contacts: Kept,
}

impl Shared {
    /// 120: every account, held until every change made so far is committed (no account
    /// listed before it is durable).
    fn contacts(&mut self, cx: &mut Cx<'_>) {
        let net = &*cx.net;
        let listing = self.contacts.get(net.accounts_version(), || contacts(net));
        cx.send_about_all(listing);
    }
}

/// The `120` answer: every account, in key order.
fn contacts(net: &Network) -> Bytes {
    let accounts = &net.state().accounts;
    let mut out = BytesMut::new();
    codec::encode(&Reply::Contacts(Status::Ok), &mut out);
    codec::encode(&Reply::ContactsBegin(accounts.len()), &mut out);
    for account in accounts.values() {
        codec::encode(&Reply::Contact(account.name.as_str()), &mut out);
    }
    codec::encode(&Reply::ContactsEnd, &mut out);
    out.freeze()
}

/// 121: asks `name` to be a contact, or answers its request (which makes them
/// contacts). `name` hears `233 me` whenever the relation changes: live, or (a request)
/// at every login until answered, or (an answer) at its next login.
fn confirm_contact(cx: &mut Cx<'_>, me: &UserName, name: &str) {
    let Some(them) = UserName::parse(name)
        .ok()
        .and_then(|n| cx.net.account(n.key_ref()))
        .map(|a| a.name.clone())
        .filter(|n| n.key_ref() != me.key_ref())
    else {
        let about = UserName::parse(name).ok().map(|n| Item::Account(n.key()));
        let line = codec::line(&Reply::ConfirmContact(Status::ContactNotFound));
        return match about {
            Some(item) => cx.send_about(&item, line),
            None => cx.send(line),
        };
    };
    let change = match cx.net.ask_friend(me, &them, cx.now.wall_ms) {
        Ok(change) => change,
        Err(
            FriendError::AlreadyFriends
            | FriendError::AlreadyAsked
            | FriendError::NotAsked
            | FriendError::NotFriends,
        ) => {
            // Nothing changes: no push.
            let line = codec::line(&Reply::ConfirmContact(Status::Ok));
            return cx.send_about(&Item::Friends(me.key()), line);
        }
        Err(FriendError::NoSuchUser) => {
            return reply(cx, &Reply::ConfirmContact(Status::ContactNotFound))
        }
    };
    if !cx.store_ok() || cx.charge(Cost::Durable).is_err() {
        return store_refused(cx);
    }
    if !fits(cx, &Reply::ConfirmContact(Status::Ok)) {
        return;
    }
    let seq = cx.persist_friends(me, &them, change);
    cx.send_after(codec::line(&Reply::ConfirmContact(Status::Ok)), seq);
}

/// The answer to a message the model would not take.
fn undeliverable(cx: &mut Cx<'_>, chat: ChatId, why: &Undeliverable) {
    let status = match why {
        Undeliverable::NoSuchUser => Status::ContactNotFound,
        // The other member's mailbox (or this sender's share of it) is full.
        Undeliverable::MailboxFull(_) | Undeliverable::ShareUsed(_) => Status::PermissionDenied,
        Undeliverable::StoreFailing(_) => return store_refused(cx),
    };
    cx.send_about(&Item::Chat(chat), codec::line(&Reply::MessageSend(status)));
}

/// Durable work refused (the store is failing, or the connection's rate is spent): the
/// table has no code for it, so `211`, and nothing changed.
fn store_refused(cx: &mut Cx<'_>) {
    reply(cx, &Reply::Invalid);
}

/// Whether the connection has room for `answer`; without, it is closed as a slow reader
/// and the request must be dropped (see `Cx::room_for`).
fn fits(cx: &mut Cx<'_>, answer: &Reply<'_>) -> bool {
    cx.room_for(codec::line(answer).len())
}

fn kick_reason(reason: KickReason) -> CloseReason {
    match reason {
        KickReason::Banned => CloseReason::Banned,
        KickReason::Kicked | KickReason::AccountDeleted => CloseReason::Kicked,
    }
}

fn reply(cx: &mut Cx<'_>, reply: &Reply<'_>) {
    cx.send(codec::line(reply));
}
