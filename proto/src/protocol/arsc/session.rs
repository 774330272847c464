//! The arsc connection state machine and the table of sids shared by all connections.
//!
//! A `connect` opens a network session on its connection, which gets all of the
//! session's output from then on. A `post` or `userlist` names its session by sid and may
//! come on any connection, also one that never connected (the original clients opened a
//! new connection per post): its answer goes there, and what it causes goes to the
//! connection that connected. The session ends when that connection closes.

use std::borrow::Cow;
use std::collections::BTreeSet;

use bytes::Bytes;

use super::codec::{self, Decoder, Frame, MessageType, Reply, Request, SYSTEM};
use crate::cx::{Cx, Handout};
use crate::effect::{Effect, EffectResult};
use crate::ids::{ConnId, EffectId, Protocol, Seq};
use crate::io::CloseReason;
use crate::limits::{Cost, Refusal};
use crate::model::{
    Body, Capabilities, DirectKind, Event, Identity, Item, KickError, KickReason, KickRule,
    LoginError, LoginKind, MailboxLimits, NameError, Outcome, Outgoing, RoomName, RoomSay, Route,
    SessionId, Undeliverable, UserKey, UserName,
};
use crate::secret::Secret;

/// A registered name logs in with its password; a user online on another protocol may
/// have an arsc session too.
const ACCOUNT: LoginKind = LoginKind {
    identity: Identity::Account,
    exclusive: false,
    caps: Capabilities {
        receipts: false,
        told_of_delivery: false,
    },
    protocol: Protocol::Arsc,
};

/// An unregistered name is a guest, refused while the name is online anywhere.
const GUEST: LoginKind = LoginKind {
    identity: Identity::Guest,
    exclusive: true,
    caps: Capabilities {
        receipts: false,
        told_of_delivery: false,
    },
    protocol: Protocol::Arsc,
};

/// Connect errors (the original's language file where it had the text).
const DOUBLE_USER: &str = "A user with this name is already logged in!";
const WRONG_CREDENTIALS: &str = "Access denied! Are your credentials correct?";
/// The goodbye of a connection idle since it opened (`Limits::login_timeout`).
const LOGIN_TIMEOUT: &str = "No connect in time, goodbye.";
/// A connect of an account, or from an address, locked after failed logins.
const LOCKED_OUT: &str = "Too many failed logins, try again later.";
const IP_BANNED: &str = "Your IP is banned!";
const USER_BANNED: &str = "Access is temporarily denied.";
const UNKNOWN_TEMPLATE: &str = "Unknown template";
const NO_NAME: &str = "You must enter an username!";
const BAD_NAME: &str = "This name is not allowed!";
const BAD_ROOM: &str = "This room name is not allowed!";
/// A connect or `/room` into a room holding `ArscConfig::max_room_members`.
const ROOM_FULL: &str = "This room is full!";
/// A connect or `/room` into a new room while `ArscConfig::max_rooms` exist.
const TOO_MANY_ROOMS: &str = "No more rooms can be opened, try an existing one!";
const CONNECTED: &str = "This connection is connected already";
/// Errors of any request.
const NOT_KNOWN: &str = "This session is not known";
const NOT_HANDLED: &str = "Message could not be handled";
const UNKNOWN_TYPE: &str = "Unknown request type";
const MALFORMED: &str = "Malformed request";
const TOO_LONG: &str = "Request too long";
/// What `/opcall` sends to the operators.
const OPCALL: &str = "[OPCALL] I need help!";
/// A sid's length, to size the answer before the sid is drawn.
const SID_SHAPE: &str = "00000000000000000000000000000000";
/// A sid's length in bytes: 128 random bits in hex.
const SID_LEN: usize = SID_SHAPE.len();
/// Longest room name, in characters.
const MAX_ROOM_CHARS: usize = 64;

/// What arsc keeps across its connections: the live sessions by sid and by name.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Looked up for every request. The keys are drawn by the server (128 random bits),
    /// so the compiler's unseeded hasher serves: a peer chooses what it looks up, never
    /// what is stored. Never iterated.
    sids: rustc_hash::FxHashMap<Sid, Entry>,
    /// The names with an arsc session (one each).
    names: BTreeSet<UserKey>,
}

/// A session id as the client holds it, 32 hex digits, in place: a session's three
/// copies (its entry's key, its connection's, the answer) cost no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Sid([u8; SID_LEN]);

impl Sid {
    /// `s` as a sid, if it has a sid's length (what is not can name no session).
    fn parse(s: &str) -> Option<Sid> {
        s.as_bytes().try_into().ok().map(Sid)
    }

    fn as_str(&self) -> &str {
        // Drawn as hex digits (`new_sid`), or taken from a `&str` whole (`parse`).
        std::str::from_utf8(&self.0).unwrap_or(SID_SHAPE)
    }
}

/// A live arsc session.
#[derive(Debug)]
struct Entry {
    live: Live,
    /// The `<language>` of its connect, kept with the session.
    #[allow(dead_code)] // only English texts exist
    language: String,
}

/// Where a live session's requests go: looked up by sid for every request, so copied out
/// without the rest of its [`Entry`] (a clone of the entry cost an allocation).
#[derive(Clone, Copy, Debug)]
struct Live {
    session: SessionId,
    /// The connection that connected: the session's output goes there.
    conn: ConnId,
}

impl Shared {
    /// The session of `sid`, if it is live.
    fn lookup(&self, sid: Option<&str>) -> Option<Live> {
        self.sids.get(&Sid::parse(sid?.trim())?).map(|e| e.live)
    }

    /// How many sessions are live (for tests).
    #[cfg(test)]
    pub(crate) fn sessions(&self) -> usize {
        self.sids.len()
    }
}

/// One arsc connection.
#[derive(Debug)]
pub(crate) struct Session {
    decoder: Decoder,
    /// The session this connection connected, its sid and its user.
    own: Option<(SessionId, Sid, UserKey)>,
    /// A connect waiting for its password check; the requests after it wait too.
    pending: Option<Pending>,
    /// A request with a known sid came on it (a connection that posts for a session
    /// connected elsewhere is in use, not idle).
    active: bool,
}

/// A connect of a registered name, its password being checked.
#[derive(Debug)]
struct Pending {
    effect: EffectId,
    name: UserName,
    room: RoomName,
    language: String,
}

/// What a `post` asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command<'a> {
    /// Text for the room (`normal`).
    Say(&'a str),
    /// `/me TEXT`.
    Me(&'a str),
    /// `/msg NAME TEXT` or `/whisper NAME TEXT`.
    Msg { to: &'a str, text: &'a str },
    /// `/msgops TEXT` or `/ops TEXT`.
    MsgOps(&'a str),
    /// `/opcall`.
    OpCall,
    /// `/kick NAME`.
    Kick(&'a str),
    /// `/room ROOM`, `/j ROOM` or `/join ROOM`.
    Room(&'a str),
    /// A command with its arguments missing: its usage.
    Usage(&'static str),
    /// `/WORD` that is no command.
    Unknown(&'a str),
}

impl Session {
    /// A new connection: nothing is sent until it asks (a refused one is told and closed).
    pub(crate) fn open(cx: &mut Cx<'_>) -> Session {
        let session = Session {
            decoder: Decoder::new(cx.config.arsc.max_request_bytes),
            own: None,
            pending: None,
            active: false,
        };
        if let Err(refusal) = cx.admission() {
            system(cx, refusal_text(refusal));
            cx.close(CloseReason::TooManyConnections);
            return session;
        }
        cx.set_timer(cx.now.mono + cx.config.limits.login_timeout);
        session
    }

    /// The login timeout: a connection that neither connected a session nor made a
    /// request with a known sid within `Limits::login_timeout` is told and closed.
    pub(crate) fn on_timer(&mut self, cx: &mut Cx<'_>) {
        if self.own.is_some() || self.active {
            return;
        }
        if self.pending.is_some() {
            // Its password is being checked: give the check a second more.
            return cx.set_timer(cx.now.mono + core::time::Duration::from_secs(1));
        }
        system(cx, LOGIN_TIMEOUT);
        cx.close(CloseReason::LoginTimeout);
    }

    #[cfg(test)]
    pub(crate) fn input_capacity(&self) -> usize {
        self.decoder.capacity()
    }

    pub(crate) fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    pub(crate) fn on_bytes(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, bytes: &Bytes) {
        self.decoder.push(bytes);
        if self.pending.is_some() {
            // Requests wait for the password check; a peer that floods meanwhile goes.
            if self.decoder.buffered() > cx.config.arsc.max_request_bytes.saturating_mul(2) {
                cx.close(CloseReason::ProtocolError);
            }
            return;
        }
        self.drain(cx, shared);
    }

    /// Handles the requests complete in the input, until one has to wait.
    fn drain(&mut self, cx: &mut Cx<'_>, shared: &mut Shared) {
        let mut taken = false;
        while cx.is_open() && self.pending.is_none() {
            let Some(frame) = self.decoder.next_frame() else {
                break;
            };
            taken = true;
            match frame {
                Frame::Request(request) => self.on_request(cx, shared, request),
                Frame::Malformed { kind } => refuse(cx, kind.as_deref(), MALFORMED),
                Frame::TooLong { kind } => refuse(cx, kind.as_deref(), TOO_LONG),
            }
        }
        if taken {
            self.decoder.shrink_to_leftover();
        }
    }

    fn on_request(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, request: Request) {
        let kind = request.kind.as_deref().unwrap_or("").trim().to_owned();
        let known = ["connect", "post", "userlist"]
            .iter()
            .find(|k| kind.eq_ignore_ascii_case(k));
        // A banned address gets nothing done, whatever the sid or the type.
        if let Some(ip) = cx.peer.ip().filter(|ip| cx.net.ip_banned(*ip)) {
            let refusal = Reply::Error {
                kind: known.copied().unwrap_or(&kind),
                text: IP_BANNED,
            };
            return cx.send_about(&Item::Ip(ip), codec::to_bytes(&refusal));
        }
        let Some(&kind) = known else {
            return reply(
                cx,
                &Reply::Error {
                    kind: &kind,
                    text: UNKNOWN_TYPE,
                },
            );
        };
        if kind != "connect" && shared.lookup(request.sid.as_deref()).is_some() {
            self.active = true;
        }
        match kind {
            "connect" => self.connect(cx, shared, &request),
            "post" => post(cx, shared, &request),
            _ => userlist(cx, shared, &request),
        }
    }

    fn connect(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, request: &Request) {
        if self.own.is_some() {
            return connect_error(cx, None, CONNECTED);
        }
        // An empty `<template></template>` is none given: `xml`.
        let template = request.template.as_deref().map(str::trim);
        if template.is_some_and(|t| !t.is_empty() && !t.eq_ignore_ascii_case("xml")) {
            return connect_error(cx, None, UNKNOWN_TEMPLATE);
        }
        let name = request.user.as_deref().map_or("", str::trim);
        if name.is_empty() {
            return connect_error(cx, None, NO_NAME);
        }
        let name = match UserName::parse(name) {
            Ok(name) => name,
            // `System` and its look-alikes count as taken, as in the original.
            Err(NameError::Reserved) => return connect_error(cx, None, DOUBLE_USER),
            Err(_) => return connect_error(cx, None, BAD_NAME),
        };
        let Some(room) = room_name(request.room.as_deref(), &cx.config.arsc.default_room) else {
            return connect_error(cx, None, BAD_ROOM);
        };
        if let Some(why) = room_refusal(cx, &room) {
            return connect_error(cx, None, why);
        }
        let language = (request.language.as_deref().map(str::trim))
            .filter(|l| !l.is_empty())
            .unwrap_or("english")
            .to_owned();
        let key = name.key();
        let account = Some(Item::Account(key.clone()));
        if shared.names.contains(&key) {
            return connect_error(cx, account, DOUBLE_USER);
        }
        // A connect is told to the room and may cost a password check: it takes its
        // token before the check, so wrong passwords cannot be tried (nor hashes made)
        // faster than the broadcast rate, as for an ims LOGIN.
        if let Err(refusal) = cx.charge(Cost::Broadcast) {
            return connect_error(cx, account, refusal_text(refusal));
        }
        match cx.net.account(&key).map(|a| a.password.clone()) {
            Some(hash) => {
                let Some(password) = request.password.clone() else {
                    return connect_error(cx, account, WRONG_CREDENTIALS);
                };
                if cx.login_allowed(&key).is_err() {
                    return connect_error(cx, account, LOCKED_OUT);
                }
                let password = Secret(password);
                let effect = cx.effect(Effect::VerifyPassword { hash, password });
                self.pending = Some(Pending {
                    effect,
                    name,
                    room,
                    language,
                });
            }
            None if !cx.config.arsc.guests => connect_error(cx, account, WRONG_CREDENTIALS),
            None => self.login(cx, shared, name, room, language, GUEST),
        }
    }

    /// The password check of a pending connect is done.
    pub(crate) fn on_effect(
        &mut self,
        cx: &mut Cx<'_>,
        shared: &mut Shared,
        id: EffectId,
        result: EffectResult,
    ) {
        let Some(pending) = self.pending.take_if(|p| p.effect == id) else {
            return;
        };
        match result {
            EffectResult::Verified(true) => {
                cx.login_succeeded(pending.name.key_ref());
                self.login(
                    cx,
                    shared,
                    pending.name,
                    pending.room,
                    pending.language,
                    ACCOUNT,
                )
            }
            _ => {
                if result == EffectResult::Verified(false) {
                    cx.login_failed(pending.name.key_ref());
                }
                let account = Some(Item::Account(pending.name.key()));
                connect_error(cx, account, WRONG_CREDENTIALS);
            }
        }
        self.drain(cx, shared);
    }

    /// Opens the session: the answer with its sid, the welcome whisper, stored messages
    /// for an account, and the room told of the newcomer (the newcomer too).
    fn login(
        &mut self,
        cx: &mut Cx<'_>,
        shared: &mut Shared,
        name: UserName,
        room: RoomName,
        language: String,
        kind: LoginKind,
    ) {
        let key = name.key();
        let account = Some(Item::Account(key.clone()));
        // Checked again: another connection may have connected the name, or filled the
        // room, meanwhile.
        if shared.names.contains(&key) {
            return connect_error(cx, account, DOUBLE_USER);
        }
        if let Some(why) = room_refusal(cx, &room) {
            return connect_error(cx, account, why);
        }
        let time = sendtime(cx);
        let welcome = format!("Welcome to {}!", cx.config.arsc.title);
        let welcome = Reply::Message {
            kind: MessageType::Whisper,
            sendtime: &time,
            sender: SYSTEM,
            content: &welcome,
        };
        let enter = enters(&name, &room);
        let enter = Reply::Message {
            kind: MessageType::System,
            sendtime: &time,
            sender: SYSTEM,
            content: &enter,
        };
        // The sid is drawn once the login succeeds; it has a fixed length.
        let replies = [Reply::ConnectOk { sid: SID_SHAPE }, welcome, enter];
        let len = replies.iter().map(|r| codec::to_bytes(r).len()).sum();
        if !cx.room_for(len) {
            return;
        }
        let session = match cx.net.login(&name, cx.conn, kind) {
            Ok(session) => session,
            Err(LoginError::NameTaken) => return connect_error(cx, account, DOUBLE_USER),
            Err(LoginError::NoAccount) => return connect_error(cx, account, WRONG_CREDENTIALS),
            Err(LoginError::Banned) => return connect_error(cx, account, USER_BANNED),
        };
        cx.place_here(session);
        let sid = new_sid(cx, shared);
        let entry = Entry {
            live: Live {
                session,
                conn: cx.conn,
            },
            language,
        };
        shared.sids.insert(sid, entry);
        shared.names.insert(key.clone());
        self.own = Some((session, sid, key.clone()));
        let [_, welcome, enter] = replies;
        let ok = Reply::ConnectOk { sid: sid.as_str() };
        cx.send_about(&Item::Account(key), codec::to_bytes(&ok));
        reply(cx, &welcome);
        if kind.identity == Identity::Account {
            self.drain_mailbox(cx, session);
        }
        cx.net.join(session, &room);
        reply(cx, &enter);
    }

    /// Hands out (or goes on handing out) the mailbox of `session`: stored messages as
    /// whispers from their senders, an acceptance of the user's friend request (made on
    /// another protocol while it was away) and then friend requests as `System` whispers.
    pub(crate) fn drain_mailbox(&mut self, cx: &mut Cx<'_>, session: SessionId) {
        let offset = cx.config.arsc.utc_offset_minutes;
        cx.drain_mailbox(session, None, |handout| match handout {
            Handout::Message(m) if m.kind == crate::persist::MessageKind::FriendAccepted => {
                codec::to_bytes(&Reply::Message {
                    kind: MessageType::Whisper,
                    sendtime: &clock(m.sent_ms, offset),
                    sender: SYSTEM,
                    content: &format!("User {} accepted your friend request.", m.from.as_str()),
                })
            }
            Handout::Message(m) => codec::to_bytes(&Reply::Message {
                kind: MessageType::Whisper,
                sendtime: &clock(m.sent_ms, offset),
                sender: m.from.as_str(),
                content: &m.body,
            }),
            Handout::FriendRequest { request, from } => codec::to_bytes(&Reply::Message {
                kind: MessageType::Whisper,
                sendtime: &clock(request.since_ms, offset),
                sender: SYSTEM,
                content: &format!("User {from} asks to be your friend."),
            }),
        });
    }

    /// A network event for the session this connection connected.
    ///
    /// What a room hears reads the same for every arsc member, so it is encoded once
    /// into `encoded` and shared.
    pub(crate) fn on_event(&mut self, cx: &mut Cx<'_>, event: &Event, encoded: &mut Option<Bytes>) {
        let room_news = match event {
            Event::RoomMessage { post } => Some(match post.kind {
                RoomSay::Text => MessageType::Normal,
                RoomSay::Action => MessageType::Me,
                RoomSay::ToOperators => MessageType::WhisperOps,
            }),
            Event::RoomJoined { .. } | Event::RoomLeft { .. } | Event::MemberKicked { .. } => {
                Some(MessageType::System)
            }
            _ => None,
        };
        if let Some(kind) = room_news {
            if self.own.is_none() {
                return;
            }
            // Its text is written once too, by the first member's endpoint.
            let bytes = encoded.get_or_insert_with(|| {
                let (sender, content) = match event {
                    Event::RoomMessage { post } => (post.from.as_str(), Cow::from(&post.body)),
                    Event::RoomJoined { room, name } => (SYSTEM, enters(name, room).into()),
                    Event::RoomLeft { room, name } => {
                        let text = format!("User {name} leaves the room {}.", room.0);
                        (SYSTEM, text.into())
                    }
                    Event::MemberKicked { name, by, .. } => {
                        let text = format!("User {name} was kicked out of the chat by {by}.");
                        (SYSTEM, text.into())
                    }
                    _ => (SYSTEM, Cow::from("")),
                };
                codec::to_bytes(&Reply::Message {
                    kind,
                    sendtime: &sendtime(cx),
                    sender,
                    content: &content,
                })
            });
            return cx.send_shared(bytes);
        }
        let time = sendtime(cx);
        // Encoded straight into the connection's queued transmit.
        let send = |cx: &mut Cx<'_>, kind, sender: &str, content: &str| {
            let message = Reply::Message {
                kind,
                sendtime: &time,
                sender,
                content,
            };
            cx.send_with(|out| codec::encode(&message, out));
        };
        match event {
            Event::RoomMessage { .. }
            | Event::RoomJoined { .. }
            | Event::RoomLeft { .. }
            | Event::MemberKicked { .. } => {}
            Event::Direct { message: m, .. } => {
                if self.own.is_some() {
                    send(cx, MessageType::Whisper, m.from.as_str(), &m.body);
                }
            }
            Event::RoomKicked { .. } => {
                send(
                    cx,
                    MessageType::Whisper,
                    SYSTEM,
                    "You were kicked out of the chat!",
                );
                cx.close(CloseReason::Kicked);
            }
            Event::Kicked { reason, .. } => {
                let text = match reason {
                    KickReason::Kicked => "You were kicked out of the chat!",
                    KickReason::Banned => "You were banned from the chat!",
                    KickReason::AccountDeleted => "Your account was deleted!",
                };
                send(cx, MessageType::Whisper, SYSTEM, text);
                cx.close(match reason {
                    KickReason::Banned => CloseReason::Banned,
                    KickReason::Kicked | KickReason::AccountDeleted => CloseReason::Kicked,
                });
            }
            // arsc shows no presence beyond its rooms, and has no receipts or friends.
            Event::FriendNews { .. }
            | Event::UserOnline { .. }
            | Event::UserOffline { .. }
            | Event::UserRenamed { .. }
            | Event::Presence { .. }
            | Event::Delivered { .. } => {}
        }
    }

    /// The connection is gone: the session it connected ends, and its room is told.
    pub(crate) fn on_close(&mut self, cx: &mut Cx<'_>, shared: &mut Shared) {
        if let Some((session, sid, key)) = self.own.take() {
            shared.sids.remove(&sid);
            shared.names.remove(&key);
            cx.px().forget(session);
            cx.net.logout(session);
        }
    }
}

fn post(cx: &mut Cx<'_>, shared: &mut Shared, request: &Request) {
    let Some(entry) = shared.lookup(request.sid.as_deref()) else {
        return reply(
            cx,
            &Reply::Error {
                kind: "post",
                text: NOT_KNOWN,
            },
        );
    };
    let content = request.content.as_deref().unwrap_or("");
    if content.trim().is_empty() || cx.net.session(entry.session).is_none() {
        return reply(
            cx,
            &Reply::Error {
                kind: "post",
                text: NOT_HANDLED,
            },
        );
    }
    if !cx.room_for(codec::POST_OK.len()) {
        return;
    }
    let (session, home) = (entry.session, entry.conn);
    // A post reaches every member of the room: it takes a token of the message rate,
    // once it would be said (a post outside any room is refused as before, free).
    let say = |cx: &mut Cx<'_>, kind, text: &str| {
        if cx.net.room_of(session).is_some() {
            if let Err(refusal) = cx.charge_for(home, Cost::Message) {
                return slow_down(cx, home, refusal);
            }
        }
        match cx.net.say_in_room(session, kind, text) {
            Some(_) => reply(cx, &Reply::PostOk),
            None => reply(
                cx,
                &Reply::Error {
                    kind: "post",
                    text: NOT_HANDLED,
                },
            ),
        }
    };
    match command(content) {
        Command::Say(text) => say(cx, RoomSay::Text, text),
        Command::Me(text) => say(cx, RoomSay::Action, text),
        Command::MsgOps(text) => say(cx, RoomSay::ToOperators, text),
        Command::OpCall => say(cx, RoomSay::ToOperators, OPCALL),
        Command::Msg { to, text } => whisper(cx, session, home, to, text),
        Command::Kick(name) => {
            reply(cx, &Reply::PostOk);
            if let Err(why) = kick(cx, session, name) {
                tell(cx, home, &why, None);
            }
        }
        Command::Room(name) => {
            reply(cx, &Reply::PostOk);
            match room_name(Some(name), "") {
                Some(room) if cx.net.room_of(session) == Some(&room) => {
                    tell(
                        cx,
                        home,
                        &format!("You are in the room {} already.", room.0),
                        None,
                    );
                }
                Some(room) if room_refusal(cx, &room).is_some() => {
                    let why = room_refusal(cx, &room).unwrap_or(BAD_ROOM);
                    tell(cx, home, why, None);
                }
                Some(room) => {
                    // Both rooms hear of the move: it costs a message like a post.
                    if let Err(refusal) = cx.charge_for(home, Cost::Message) {
                        return tell(cx, home, refusal_text(refusal), None);
                    }
                    cx.net.join(session, &room);
                    if let Some(me) = cx.net.session_name(session).cloned() {
                        let time = sendtime(cx);
                        let enter = Reply::Message {
                            kind: MessageType::System,
                            sendtime: &time,
                            sender: SYSTEM,
                            content: &enters(&me, &room),
                        };
                        cx.px().send_to(home, codec::to_bytes(&enter));
                    }
                }
                None => tell(cx, home, BAD_ROOM, None),
            }
        }
        Command::Usage(usage) => {
            reply(cx, &Reply::PostOk);
            tell(cx, home, &format!("Usage: {usage}"), None);
        }
        Command::Unknown(word) => {
            reply(cx, &Reply::PostOk);
            tell(cx, home, &format!("Unknown command: /{word}"), None);
        }
    }
}

/// `/msg NAME TEXT`: a direct message through the network, to any protocol; the sender
/// gets the confirmation `You whispered to NAME: TEXT`, or why it could not be sent.
fn whisper(cx: &mut Cx<'_>, session: SessionId, home: ConnId, to: &str, text: &str) {
    let limits = MailboxLimits {
        cap: cx.config.offline_cap,
        share: cx.config.offline_share(),
    };
    let refused = |cx: &mut Cx<'_>, why: &Undeliverable| {
        let text = match why {
            Undeliverable::NoSuchUser => format!("User {to} is not known."),
            Undeliverable::MailboxFull(to) => format!("The mailbox of {to} is full."),
            Undeliverable::ShareUsed(to) => {
                format!("Your share of the mailbox of {to} is used up.")
            }
            Undeliverable::StoreFailing(_) => {
                "The message could not be stored, try again later.".to_owned()
            }
        };
        reply(cx, &Reply::PostOk);
        tell(cx, home, &text, None);
    };
    let route = match cx.net.route_as_sent(session, to, limits) {
        Ok(route) => route,
        Err(why) => return refused(cx, &why),
    };
    match &route {
        Route::Mailbox(_) => {
            if cx.charge(Cost::Durable).is_err() {
                return reply(
                    cx,
                    &Reply::Error {
                        kind: "post",
                        text: NOT_HANDLED,
                    },
                );
            }
        }
        Route::Live(_) => {
            if let Err(refusal) = cx.charge_for(home, Cost::Message) {
                return slow_down(cx, home, refusal);
            }
        }
    }
    // The recipient as online, for the echo: the route's copy moves into the delivery.
    let live = match &route {
        Route::Live(online) => Some(online.clone()),
        Route::Mailbox(_) => None,
    };
    let message = Outgoing {
        from: session,
        body: Body::from(text),
        kind: DirectKind::Chat,
        sent_ms: cx.now.wall_ms,
    };
    // The gates above changed no routing state (rates only; a close they caused waits
    // for the end of this input), so the route still holds and is not looked up again.
    match cx.deliver_routed(message, route) {
        Outcome::Refused(why) => refused(cx, &why),
        Outcome::Delivered => {
            #[cfg(feature = "planted-bugs")]
            if cx.config.planted_bug == Some(crate::config::PlantedBug::WhisperToRoom) {
                cx.net.say_in_room(session, RoomSay::Text, text);
            }
            reply(cx, &Reply::PostOk);
            if let Some(to) = &live {
                echo(cx, home, to, text, None);
            }
        }
        Outcome::Stored { seq, to } => {
            cx.send_after(codec::to_bytes(&Reply::PostOk), seq);
            echo(cx, home, &to, text, Some(seq));
        }
    }
}

/// `/kick NAME`: an operator kicks a member of its room whose level is not higher.
fn kick(cx: &mut Cx<'_>, session: SessionId, name: &str) -> Result<(), String> {
    let not_here = || format!("User {name} is not in this room.");
    let key = UserKey::of(name).map_err(|_| not_here())?;
    let room = cx.net.room_of(session).cloned().ok_or_else(not_here)?;
    let target = (cx.net.members(&room))
        .find(|s| cx.net.session_name(*s).is_some_and(|n| *n.key_ref() == key))
        .ok_or_else(not_here)?;
    if target == session {
        return Err("You cannot kick yourself.".to_owned());
    }
    match cx.net.kick_from_room(session, target, KickRule::NotBelow) {
        Ok(()) => Ok(()),
        Err(KickError::NotHere) => Err(not_here()),
        Err(KickError::Level) => Err(format!("You are not allowed to kick {name}.")),
    }
}

fn userlist(cx: &mut Cx<'_>, shared: &mut Shared, request: &Request) {
    let Some(entry) = shared.lookup(request.sid.as_deref()) else {
        return reply(
            cx,
            &Reply::Error {
                kind: "userlist",
                text: NOT_KNOWN,
            },
        );
    };
    let Some(room) = cx.net.room_of(entry.session).cloned() else {
        return reply(cx, &Reply::UserList { users: &[] });
    };
    // The names are lent by the network while the answer is encoded into the outbox.
    let users: Vec<(&str, u8)> = (cx.net.members_by_name(&room))
        .map(|(name, level)| (name.as_str(), level))
        .collect();
    let reply = Reply::UserList { users: &users };
    (cx.out).transmit_with(cx.conns, cx.slot, None, |out| codec::encode(&reply, out));
}

/// What a post's content asks for. A command is `/` and a word of letters (or `?`)
/// followed by a space or the end; other text is said to the room as it is.
fn command(content: &str) -> Command<'_> {
    let Some(rest) = content.strip_prefix('/') else {
        return Command::Say(content);
    };
    let (word, args) = rest.split_once(' ').unwrap_or((rest, ""));
    if word.is_empty() || !(word == "?" || word.chars().all(|c| c.is_ascii_alphabetic())) {
        return Command::Say(content);
    }
    fn name_and_text(args: &str) -> (&str, &str) {
        let args = args.trim_start();
        let (name, text) = args.split_once(' ').unwrap_or((args, ""));
        (name.trim(), text)
    }
    // The command word in any case, matched without a lowercase copy (every post that
    // is a command, a whisper among them, has one).
    #[derive(Clone, Copy)]
    enum Word {
        Me,
        Msg,
        MsgOps,
        OpCall,
        Kick,
        Room,
    }
    const WORDS: [(&str, Word); 10] = [
        ("me", Word::Me),
        ("msg", Word::Msg),
        ("whisper", Word::Msg),
        ("msgops", Word::MsgOps),
        ("ops", Word::MsgOps),
        ("opcall", Word::OpCall),
        ("kick", Word::Kick),
        ("room", Word::Room),
        ("j", Word::Room),
        ("join", Word::Room),
    ];
    let Some(&(_, known)) = WORDS.iter().find(|(w, _)| w.eq_ignore_ascii_case(word)) else {
        return Command::Unknown(word);
    };
    match known {
        Word::Me if args.trim().is_empty() => Command::Usage("/me TEXT"),
        Word::Me => Command::Me(args),
        Word::Msg => match name_and_text(args) {
            (name, text) if !name.is_empty() && !text.trim().is_empty() => {
                Command::Msg { to: name, text }
            }
            _ => Command::Usage("/msg NAME TEXT"),
        },
        Word::MsgOps if args.trim().is_empty() => Command::Usage("/msgops TEXT"),
        Word::MsgOps => Command::MsgOps(args),
        Word::OpCall => Command::OpCall,
        Word::Kick => match name_and_text(args).0 {
            "" => Command::Usage("/kick NAME"),
            name => Command::Kick(name),
        },
        Word::Room => match args.trim() {
            "" => Command::Usage("/room ROOM"),
            room => Command::Room(room),
        },
    }
}

/// A room name as given (trimmed), or `default` when none is; `None` when it is empty,
/// longer than [`MAX_ROOM_CHARS`] or holds control characters.
fn room_name(given: Option<&str>, default: &str) -> Option<RoomName> {
    let name = given
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or(default);
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_ROOM_CHARS
        && !name.chars().any(char::is_control);
    ok.then(|| RoomName(name.into()))
}

fn enters(name: &UserName, room: &RoomName) -> String {
    format!("User {name} enters the room {}.", room.0)
}

/// 32 lowercase hex characters from 128 bits of the server's generator, unused.
fn new_sid(cx: &mut Cx<'_>, shared: &Shared) -> Sid {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    loop {
        let mut sid = [0; SID_LEN];
        let bits = (u128::from(cx.rng.next_u64()) << 64) | u128::from(cx.rng.next_u64());
        for (i, digit) in sid.iter_mut().enumerate() {
            *digit = HEX[(bits >> (4 * (SID_LEN - 1 - i)) & 0xf) as usize];
        }
        let sid = Sid(sid);
        if !shared.sids.contains_key(&sid) {
            return sid;
        }
    }
}

/// `HH:MM` of now in the configured time zone.
fn sendtime(cx: &Cx<'_>) -> HhMm {
    clock(cx.now.wall_ms, cx.config.arsc.utc_offset_minutes)
}

/// A time of day as `HH:MM`, on the stack: every message carries one, and `format!` cost
/// it an allocation and a pass of the formatter.
struct HhMm([u8; 5]);

impl std::ops::Deref for HhMm {
    type Target = str;

    fn deref(&self) -> &str {
        // Digits and a colon only (`clock`).
        std::str::from_utf8(&self.0).unwrap_or("00:00")
    }
}

/// `HH:MM` of the Unix time `ms`, `offset` minutes east of UTC.
fn clock(ms: u64, offset: i32) -> HhMm {
    let minutes = i64::try_from(ms / 60_000).unwrap_or(0) + i64::from(offset);
    let day = minutes.rem_euclid(24 * 60);
    let digit = |n: i64| b'0' + (n % 10) as u8;
    let (h, m) = (day / 60, day % 60);
    HhMm([digit(h / 10), digit(h), b':', digit(m / 10), digit(m)])
}

/// A `System` whisper to the connection `home`, after the change `after` if given.
fn tell(cx: &mut Cx<'_>, home: ConnId, text: &str, after: Option<Seq>) {
    let time = sendtime(cx);
    let reply = Reply::Message {
        kind: MessageType::Whisper,
        sendtime: &time,
        sender: SYSTEM,
        content: text,
    };
    cx.px()
        .send_to_with(home, after, |out| codec::encode(&reply, out));
}

/// The `System` whisper that tells the sender of a whisper to `to` what it said, after
/// the change `after` if given.
fn echo(cx: &mut Cx<'_>, home: ConnId, to: &UserName, text: &str, after: Option<Seq>) {
    let time = sendtime(cx);
    let reply = Reply::Whispered {
        sendtime: &time,
        to: to.as_str(),
        text,
    };
    cx.px()
        .send_to_with(home, after, |out| codec::encode(&reply, out));
}

impl Session {
    /// The server is stopping: a connected session hears it as a `system` message.
    pub(crate) fn on_shutdown(&mut self, cx: &mut Cx<'_>) {
        if self.own.is_some() {
            system(cx, "The server is shutting down.");
        }
        cx.close(CloseReason::Shutdown);
    }
}

/// A `system` message to this connection.
fn system(cx: &mut Cx<'_>, text: &str) {
    let time = sendtime(cx);
    reply(
        cx,
        &Reply::Message {
            kind: MessageType::System,
            sendtime: &time,
            sender: SYSTEM,
            content: text,
        },
    );
}

/// The answer to a request that could not be read: an error of its type when it can be
/// told, else a `system` message.
fn refuse(cx: &mut Cx<'_>, kind: Option<&str>, text: &str) {
    match kind {
        Some(kind) => reply(cx, &Reply::Error { kind, text }),
        None => system(cx, text),
    }
}

/// A connect error, after the pending change of `item` if any.
fn connect_error(cx: &mut Cx<'_>, item: Option<Item>, text: &str) {
    let bytes = codec::to_bytes(&Reply::Error {
        kind: "connect",
        text,
    });
    match item {
        Some(item) => cx.send_about(&item, bytes),
        None => cx.send(bytes),
    }
}

/// An answer on this connection, encoded straight into its queued transmit.
fn reply(cx: &mut Cx<'_>, reply: &Reply<'_>) {
    cx.send_with(|out| codec::encode(reply, out));
}

/// A post refused by the message rate: the error answer of a post that was not handled
/// (so a client knows it was not said) and a `System` whisper saying why.
fn slow_down(cx: &mut Cx<'_>, home: ConnId, refusal: Refusal) {
    reply(
        cx,
        &Reply::Error {
            kind: "post",
            text: NOT_HANDLED,
        },
    );
    tell(cx, home, refusal_text(refusal), None);
}

/// The text of a limit.
fn refusal_text(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::ConnRate | Refusal::IpRate => "Too many requests, slow down.",
        Refusal::TooManyConnections => "Too many connections, try again later.",
        Refusal::TooManyFromIp => "Too many connections from your address.",
    }
}

/// Why a session may not enter `room`: a full room, or a new room past the most rooms.
fn room_refusal(cx: &Cx<'_>, room: &RoomName) -> Option<&'static str> {
    let config = &cx.config.arsc;
    match cx.net.room_size(room) {
        0 if cx.net.room_count() >= config.max_rooms => Some(TOO_MANY_ROOMS),
        n if n >= config.max_room_members => Some(ROOM_FULL),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_their_aliases() {
        let cases = [
            ("hello", Command::Say("hello")),
            ("/me waves", Command::Me("waves")),
            ("/ME  waves", Command::Me(" waves")),
            ("/me", Command::Usage("/me TEXT")),
            (
                "/msg bob hi there",
                Command::Msg {
                    to: "bob",
                    text: "hi there",
                },
            ),
            (
                "/whisper bob hi",
                Command::Msg {
                    to: "bob",
                    text: "hi",
                },
            ),
            (
                "/WhisPer bob hi",
                Command::Msg {
                    to: "bob",
                    text: "hi",
                },
            ),
            ("/JOIN hall", Command::Room("hall")),
            ("/msg bob", Command::Usage("/msg NAME TEXT")),
            ("/msgops help me", Command::MsgOps("help me")),
            ("/ops help", Command::MsgOps("help")),
            ("/opcall", Command::OpCall),
            ("/kick bob", Command::Kick("bob")),
            ("/kick", Command::Usage("/kick NAME")),
            ("/room hall", Command::Room("hall")),
            ("/j hall", Command::Room("hall")),
            ("/join Free For All", Command::Room("Free For All")),
            ("/dance now", Command::Unknown("dance")),
            ("/?", Command::Unknown("?")),
            ("/ not a command", Command::Say("/ not a command")),
            ("//me", Command::Say("//me")),
            ("/me2 x", Command::Say("/me2 x")),
        ];
        for (content, expected) in cases {
            assert_eq!(command(content), expected, "{content}");
        }
    }

    #[test]
    fn sendtime_is_hours_and_minutes_in_the_configured_zone() {
        // 2023-11-14 22:13:20 UTC.
        let ms = 1_700_000_000_000;
        assert_eq!(&*clock(ms, 0), "22:13");
        assert_eq!(&*clock(ms, 120), "00:13");
        assert_eq!(&*clock(ms, -23 * 60), "23:13");
        assert_eq!(&*clock(0, 0), "00:00");
    }
}
