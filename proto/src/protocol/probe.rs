//! A protocol for the core's own tests: its sessions live apart from connections, as
//! arsc's do (a session outlives the connection it logged in on, and any connection may
//! take it up again) and as a jabberd router link's do (one connection, many sessions).
//! Lines in, lines out:
//!
//! - `login NAME [MS]`: a session for NAME on this connection, its timer armed MS from
//!   now; answers `ok N` (N the session's number).
//! - `account NAME`: a session for the account NAME (the password taken as checked),
//!   handed its mailbox first: `mail ID FROM BODY` per stored message, `request FROM` per
//!   pending friend request; then `ok N`.
//! - `take N`: session N's events and timer go to this connection from now on; `ok N`.
//! - `poke N TEXT`: an event for session N, wherever it is when handed out; `ok`.
//! - `end N`: session N ends; `ok`.
//! - `dial ADDR`: keep a link to ADDR (as jabberd keeps one to its router): the server
//!   asks the runtime to connect, tries again after a failure or a loss with a backoff
//!   of 100 ms doubling to 1.6 s, and sends `hello` on each new link; `ok`.
//!
//! An event for a session on a connection arrives as `msg N TEXT`, its timer as
//! `tick N`. While a session has no connection, the protocol's shared state notes them.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::cx::{Cx, Handout, Px};
use crate::ids::{ConnId, Protocol};
use crate::model::{
    Capabilities, DirectKind, DirectMessage, Event, Identity, LoginKind, SessionId, UserName,
};

/// Several sessions of a user at once; no receipts.
const LOGIN: LoginKind = LoginKind {
    identity: Identity::Guest,
    exclusive: false,
    caps: Capabilities {
        receipts: false,
        told_of_delivery: false,
    },
    protocol: Protocol::Probe,
};

/// Account logins, several at once, as an instant messenger's.
const ACCOUNT: LoginKind = LoginKind {
    identity: Identity::Account,
    exclusive: false,
    caps: Capabilities {
        receipts: false,
        told_of_delivery: false,
    },
    protocol: Protocol::Probe,
};

/// What the probe protocol keeps across connections.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Every live session, by number.
    pub(crate) sessions: BTreeMap<u64, SessionId>,
    /// What happened to sessions while they had no connection, and to the link, in
    /// order.
    pub(crate) held: Vec<String>,
    /// Where the link goes, once asked for.
    target: Option<core::net::SocketAddr>,
    /// The link's connection: dialing or up.
    link: Option<ConnId>,
    /// Failures since the link was last up.
    failures: u32,
}

impl Shared {
    fn dial(&mut self, px: &mut Px<'_>) {
        if let (Some(addr), None) = (self.target, self.link) {
            self.link = Some(px.connect(Protocol::Probe, addr));
            (self.held).push(format!("dial at {}", px.now.mono.as_millis()));
        }
    }

    /// The link is down: try again after the backoff, from now.
    fn retry(&mut self, px: &mut Px<'_>) {
        self.link = None;
        let backoff = 100u64 << self.failures.min(4);
        self.failures += 1;
        let at = px.now.mono + core::time::Duration::from_millis(backoff);
        px.set_protocol_timer(Protocol::Probe, at);
    }

    /// The protocol's own timer: time to dial again.
    pub(crate) fn on_protocol_timer(&mut self, px: &mut Px<'_>) {
        self.dial(px);
    }

    /// The link could not be established.
    pub(crate) fn on_connect_failed(&mut self, px: &mut Px<'_>, conn: ConnId, error: &str) {
        if self.link == Some(conn) {
            self.held.push(format!("failed: {error}"));
            self.retry(px);
        }
    }

    /// A session's timer: to its connection if it has one, else noted.
    pub(crate) fn on_timer(&mut self, px: &mut Px<'_>, session: SessionId) {
        let line = format!("tick {}", session.number());
        match px.home(session).and_then(|h| h.conn) {
            Some(conn) => px.send_to(conn, Bytes::from(format!("{line}\n"))),
            None => self.held.push(line),
        }
    }

    /// An event for a session that has no connection: noted.
    pub(crate) fn on_event(&mut self, _px: &mut Px<'_>, session: SessionId, event: &Event) {
        if let Event::Direct { message, .. } = event {
            (self.held).push(format!("msg {} {}", session.number(), message.body));
        }
    }
}

/// One probe connection.
#[derive(Debug, Default)]
pub(crate) struct Session {
    inbound: Vec<u8>,
    /// The sessions whose home is this connection.
    here: Vec<SessionId>,
    /// Whether this is the link the protocol asked for.
    link: bool,
}

impl Session {
    /// Hands out (or goes on handing out) the mailbox of `session`.
    pub(crate) fn drain_mailbox(&mut self, cx: &mut Cx<'_>, session: SessionId) {
        cx.drain_mailbox(session, None, |item| {
            Bytes::from(match item {
                Handout::Message(m) => format!("mail {} {} {}\n", m.id.0, m.from, m.body),
                Handout::FriendRequest { from, .. } => format!("request {from}\n"),
            })
        });
    }

    /// The link is up: say hello.
    pub(crate) fn connected(cx: &mut Cx<'_>, shared: &mut Shared) -> Session {
        shared.failures = 0;
        shared
            .held
            .push(format!("up at {}", cx.now.mono.as_millis()));
        cx.send(Bytes::from_static(b"hello\n"));
        Session {
            link: true,
            ..Session::default()
        }
    }

    pub(crate) fn on_bytes(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, bytes: &Bytes) {
        self.inbound.extend_from_slice(bytes);
        while let Some(end) = self.inbound.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.inbound.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim().to_owned();
            let reply = self.on_line(cx, shared, &line);
            cx.send(Bytes::from(format!("{reply}\n")));
        }
    }

    fn on_line(&mut self, cx: &mut Cx<'_>, shared: &mut Shared, line: &str) -> String {
        let words: Vec<&str> = line.splitn(3, ' ').collect();
        let session = |n: Option<&&str>| {
            let n: u64 = n?.parse().ok()?;
            shared.sessions.get(&n).copied()
        };
        match words.as_slice() {
            ["login", name, rest @ ..] => {
                let Ok(name) = UserName::parse(name) else {
                    return "err name".into();
                };
                let Ok(session) = cx.net.login(&name, cx.conn, LOGIN) else {
                    return "err taken".into();
                };
                shared.sessions.insert(session.number(), session);
                self.here.push(session);
                cx.place_here(session);
                if let Some(ms) = rest.first().and_then(|ms| ms.parse().ok()) {
                    let at = cx.now.mono + core::time::Duration::from_millis(ms);
                    cx.px().set_session_timer(Protocol::Probe, session, at);
                }
                format!("ok {}", session.number())
            }
            ["account", name] => {
                let Ok(name) = UserName::parse(name) else {
                    return "err name".into();
                };
                let Ok(session) = cx.net.login(&name, cx.conn, ACCOUNT) else {
                    return "err login".into();
                };
                shared.sessions.insert(session.number(), session);
                self.here.push(session);
                cx.place_here(session);
                self.drain_mailbox(cx, session);
                format!("ok {}", session.number())
            }
            ["take", n] => match session(Some(n)) {
                Some(session) => {
                    self.here.push(session);
                    cx.place_here(session);
                    format!("ok {}", session.number())
                }
                None => "err session".into(),
            },
            ["poke", n, text] => match session(Some(n)) {
                Some(session) => {
                    let name = cx.net.session_name(session).cloned();
                    let Some(name) = name else {
                        return "err session".into();
                    };
                    let message = DirectMessage {
                        from: name.clone(),
                        to: name,
                        body: (*text).into(),
                        kind: DirectKind::Chat,
                    };
                    cx.px().notify(session, Event::Direct { session, message });
                    "ok".into()
                }
                None => "err session".into(),
            },
            ["dial", addr] => match addr.parse() {
                Ok(addr) => {
                    shared.target = Some(addr);
                    shared.dial(&mut cx.px());
                    "ok".into()
                }
                Err(_) => "err addr".into(),
            },
            ["end", n] => match session(Some(n)) {
                Some(session) => {
                    shared.sessions.remove(&session.number());
                    cx.px().forget(session);
                    cx.net.logout(session);
                    "ok".into()
                }
                None => "err session".into(),
            },
            _ => "err".into(),
        }
    }

    /// An event for a session placed on this connection.
    pub(crate) fn on_conn_event(&mut self, cx: &mut Cx<'_>, event: &Event) {
        if let Event::Direct { session, message } = event {
            let line = format!("msg {} {}\n", session.number(), message.body);
            cx.send(Bytes::from(line));
        }
    }

    /// The connection is gone; its sessions are not: they stay, on no connection, until
    /// another takes them up or they end.
    pub(crate) fn on_close(&mut self, cx: &mut Cx<'_>, shared: &mut Shared) {
        let conn = cx.conn;
        let mut px = cx.px();
        if self.link && shared.link == Some(conn) {
            shared
                .held
                .push(format!("down at {}", px.now.mono.as_millis()));
            shared.retry(&mut px);
        }
        for session in self.here.drain(..) {
            let still_here = px.home(session).is_some_and(|h| h.conn == Some(conn));
            if still_here && shared.sessions.contains_key(&session.number()) {
                px.place(Protocol::Probe, session, None);
            }
        }
    }
}
