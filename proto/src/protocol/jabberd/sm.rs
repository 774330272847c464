//! The session manager on a bound link: component presence, the sm-c2s session
//! protocol (`start`/`started`, `end`/`ended`, `create`/`created`, `delete`/`deleted`,
//! unsolicited `ended` and `replaced`), and the XMPP stanzas of each session, translated
//! to and from the shared model.
//!
//! Pitfalls of c2s 2.7.0 this follows (spec section 2): a failed `start` or `create`
//! carries an `sc:sm` (c2s drops it otherwise and the client hangs); no stanza ever
//! carries `sc:failed` (c2s would drop its router link); a stanza naming an unknown
//! `sc:sm` is answered with an unsolicited `ended`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use bytes::Bytes;

use super::xml::{self, esc, Element, NS_CLIENT, NS_COMP, NS_SESS};
use crate::cx::{Cx, Handout, Px};
use crate::ids::{ConnId, Protocol, Seq};
use crate::limits::{ConnLimits, Cost};
use crate::model::{
    Capabilities, DirectKind, Event, Identity, Item, LoginKind, MailboxLimits, Outcome, Outgoing,
    Route, SessionId, Shown, Status, Undeliverable, UserKey, UserName,
};
use crate::persist::MessageKind;

/// XMPP sessions log in to accounts whose password c2s checked (through the authreg
/// helper); several at once (resources), beside the user's sessions on other protocols.
const LOGIN: LoginKind = LoginKind {
    identity: Identity::Account,
    exclusive: false,
    caps: Capabilities {
        receipts: false,
        told_of_delivery: false,
    },
    protocol: Protocol::Jabberd,
};

const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const NS_ROSTER: &str = "jabber:iq:roster";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_PING: &str = "urn:xmpp:ping";
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";

/// One XMPP session: a resource a client of c2s bound.
#[derive(Clone, Debug)]
struct Xs {
    session: SessionId,
    /// The router name of the c2s that holds the client.
    c2s: String,
    /// c2s's id of the client (`sc:c2s`).
    c2s_id: String,
    /// Our id (`sc:sm`).
    sm_id: String,
    /// The account, as registered.
    user: UserName,
    /// The JID's local part as c2s bound it (nodeprepped: lower case).
    node: String,
    resource: String,
    /// The client sent its initial presence, and no unavailable one since.
    available: bool,
}

/// What jabberd keeps across its link's connections: the link and the XMPP sessions it
/// carries.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The sessions by `sc:sm`.
    sessions: BTreeMap<String, Xs>,
    /// The `sc:sm` of each model session.
    by_session: BTreeMap<SessionId, String>,
    /// The link's connection: dialing or up.
    link: Option<ConnId>,
    /// The link is bound.
    bound: bool,
    /// Failed or lost links since the last bound one.
    failures: u32,
    /// Components the router says are there.
    components: BTreeSet<String>,
    /// Sessions whose mailbox is not all handed out yet, in order: the first is paused
    /// on the link, the others wait behind it.
    waiting: VecDeque<SessionId>,
    /// Each session's rate buckets: every XMPP session is held to the per-connection
    /// rates (`Limits::message_per_conn`, `durable_per_conn`), as a client of any other
    /// protocol; all of them share one link, so there is no address to charge.
    buckets: BTreeMap<SessionId, ConnLimits>,
    /// The last `end`s answered for sessions the sm did not know, by `(sc:c2s, sc:sm)`:
    /// the same one again gets no answer. c2s answers a packet for an `sc:sm` it has not
    /// bound with an `end`; if neither side knows the session (a kick crossing an
    /// unbind), answering each `end` with `ended` would go back and forth for good.
    unknown_ends: VecDeque<(String, String)>,
}

/// How many [`Shared::unknown_ends`] are remembered.
const UNKNOWN_ENDS: usize = 64;

impl Shared {
    /// The server starts, or the backoff is over: dials the router, if configured and
    /// not already linked.
    pub(crate) fn on_protocol_timer(&mut self, px: &mut Px<'_>) {
        if let (Some(addr), None) = (px.config.jabberd.router, self.link) {
            self.link = Some(px.connect(Protocol::Jabberd, addr));
        }
    }

    /// The dial failed: try again after the backoff.
    pub(crate) fn on_connect_failed(&mut self, px: &mut Px<'_>, conn: ConnId) {
        if self.link == Some(conn) {
            self.retry(px);
        }
    }

    fn retry(&mut self, px: &mut Px<'_>) {
        self.link = None;
        self.bound = false;
        let config = &px.config.jabberd;
        let backoff = (config.reconnect_min)
            .saturating_mul(1u32 << self.failures.min(16))
            .min(config.reconnect_max);
        self.failures = self.failures.saturating_add(1);
        let at = px.now.mono + backoff;
        px.set_protocol_timer(Protocol::Jabberd, at);
    }

    /// The link connection is up.
    pub(crate) fn connected(&mut self, conn: ConnId) {
        self.link = Some(conn);
        self.components.clear();
    }

    /// The link is bound: the domain is served.
    pub(crate) fn online(&mut self, _cx: &mut Cx<'_>) {
        self.bound = true;
        self.failures = 0;
    }

    /// Whether the link is bound (for tests and stats).
    #[cfg(test)]
    pub(crate) fn is_bound(&self) -> bool {
        self.bound
    }

    /// The number of XMPP sessions.
    #[cfg(test)]
    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The link's connection is gone: c2s has closed its clients of our domain, so
    /// every session ends here too; the router is dialed again after the backoff.
    pub(crate) fn link_closed(&mut self, cx: &mut Cx<'_>, redial: bool) {
        if self.link != Some(cx.conn) {
            return;
        }
        let all: Vec<Xs> = std::mem::take(&mut self.sessions).into_values().collect();
        self.by_session.clear();
        self.waiting.clear();
        self.buckets.clear();
        for x in all {
            end_locally(cx, x.session);
        }
        if !redial {
            self.link = None;
            self.bound = false;
            return;
        }
        let mut px = cx.px();
        self.retry(&mut px);
    }

    /// A depth-1 element of the bound stream.
    pub(crate) fn on_element(&mut self, cx: &mut Cx<'_>, e: &Element) {
        if e.is(NS_COMP, "presence") {
            return self.on_advertisement(cx, e);
        }
        if !e.is(NS_COMP, "route") {
            return;
        }
        // Bounces (`error`) and broadcasts (`type`) are nothing for the sm to act on.
        if e.attr("error").is_some() || e.attr("type").is_some() {
            return;
        }
        let (Some(from), Some(payload)) = (e.attr("from"), e.elements().next()) else {
            return;
        };
        let from = from.to_owned();
        if payload.is(NS_SESS, "session") {
            self.on_session(cx, &from, payload);
            self.tidy(cx);
        } else if payload.ns == NS_CLIENT {
            self.on_stanza(cx, &from, payload);
        }
    }

    /// A component came or went; advertisements arrive once per name we bound, so a
    /// repeat changes nothing. When a c2s goes, its sessions end.
    fn on_advertisement(&mut self, cx: &mut Cx<'_>, e: &Element) {
        let Some(name) = e.attr("from") else {
            return;
        };
        if e.attr("type") != Some("unavailable") {
            self.components.insert(name.to_owned());
            return;
        }
        if !self.components.remove(name) {
            return;
        }
        let gone: Vec<String> = (self.sessions.values())
            .filter(|x| x.c2s == name)
            .map(|x| x.sm_id.clone())
            .collect();
        for sm_id in gone {
            if let Some(x) = self.remove(&sm_id) {
                end_locally(cx, x.session);
            }
        }
        self.tidy(cx);
    }

    /// Forgets a session (the caller ends it in the model). A drain waiting for it is
    /// dropped; the next waiting drain goes on once this one's session is gone, at the
    /// next write report on the link (or the next start).
    fn remove(&mut self, sm_id: &str) -> Option<Xs> {
        let x = self.sessions.remove(sm_id)?;
        self.by_session.remove(&x.session);
        self.buckets.remove(&x.session);
        if self.waiting.front() != Some(&x.session) {
            self.waiting.retain(|s| *s != x.session);
        }
        Some(x)
    }

    /// A session action from c2s.
    fn on_session(&mut self, cx: &mut Cx<'_>, c2s: &str, e: &Element) {
        let Some(c2s_id) = e.attr_ns(NS_SESS, "c2s").filter(|v| v.len() <= 64) else {
            return;
        };
        let sm_id = e.attr_ns(NS_SESS, "sm");
        let target = e.attr("target");
        let id = e.attr("id");
        let reply = Reply {
            c2s,
            c2s_id,
            sm_id,
            target,
            id,
        };
        match e.attr("action") {
            Some("start") => self.start(cx, &reply),
            Some("end") => {
                let known = sm_id.and_then(|sm_id| {
                    let ours = self.sessions.get(sm_id).is_some_and(|x| x.c2s_id == c2s_id);
                    ours.then(|| self.remove(sm_id)).flatten()
                });
                match known {
                    Some(x) => end_locally(cx, x.session),
                    None => {
                        let key = (c2s_id.to_owned(), sm_id.unwrap_or_default().to_owned());
                        if self.unknown_ends.contains(&key) {
                            return;
                        }
                        if self.unknown_ends.len() == UNKNOWN_ENDS {
                            self.unknown_ends.pop_front();
                        }
                        self.unknown_ends.push_back(key);
                    }
                }
                let bytes = reply.action(cx, "ended", None);
                cx.send(bytes);
            }
            Some("create") => {
                let account = target.and_then(|t| bare(cx, t)).and_then(|user| {
                    let key = UserKey::of(&user).ok()?;
                    cx.net.account(&key).map(|_| key)
                });
                match account {
                    Some(key) => {
                        let bytes = reply.action(cx, "created", None);
                        cx.send_about(&Item::Account(key), bytes);
                    }
                    None => {
                        let bytes = reply.failed(cx, "create");
                        cx.send(bytes);
                    }
                }
            }
            Some("delete") => {
                if let Some(key) = target
                    .and_then(|t| bare(cx, t))
                    .and_then(|u| UserKey::of(&u).ok())
                {
                    let theirs: Vec<String> = (self.sessions.values())
                        .filter(|x| x.user.key_ref() == &key)
                        .map(|x| x.sm_id.clone())
                        .collect();
                    for sm_id in theirs {
                        if let Some(x) = self.remove(&sm_id) {
                            let bytes = unsolicited(cx, &x, "ended");
                            cx.send(bytes);
                            end_locally(cx, x.session);
                        }
                    }
                }
                let bytes = reply.action(cx, "deleted", None);
                cx.send(bytes);
            }
            // `started`, `ended` and the rest are ours to send, not to receive.
            _ => {}
        }
    }

    /// `start`: a client bound a resource. The account must exist (c2s checked its
    /// password) and not be banned; the same full JID already on replaces the old one.
    fn start(&mut self, cx: &mut Cx<'_>, reply: &Reply<'_>) {
        let fail = |cx: &mut Cx<'_>| {
            let bytes = reply.failed(cx, "start");
            cx.send(bytes);
        };
        let Some((node, resource)) = reply.target.and_then(|t| full(cx, t)) else {
            return fail(cx);
        };
        let Some(name) = UserKey::of(&node)
            .ok()
            .and_then(|key| cx.net.account(&key))
            .map(|a| a.name.clone())
        else {
            return fail(cx);
        };
        let same = (self.sessions.values())
            .find(|x| x.user.key_ref() == name.key_ref() && x.resource == resource)
            .map(|x| x.sm_id.clone());
        if same.is_none() && self.sessions.len() >= cx.config.jabberd.max_sessions {
            return fail(cx);
        }
        if let Some(old) = same.and_then(|sm_id| self.remove(&sm_id)) {
            let bytes = unsolicited(cx, &old, "replaced");
            cx.send(bytes);
            end_locally(cx, old.session);
        }
        let Ok(session) = cx.net.login(&name, cx.conn, LOGIN) else {
            return fail(cx);
        };
        cx.px().place(Protocol::Jabberd, session, None);
        let sm_id = loop {
            let id = format!(
                "{:016x}{:016x}{:08x}",
                cx.rng.next_u64(),
                cx.rng.next_u64(),
                cx.rng.next_u64() as u32
            );
            if !self.sessions.contains_key(&id) {
                break id;
            }
        };
        let x = Xs {
            session,
            c2s: reply.c2s.to_owned(),
            c2s_id: reply.c2s_id.to_owned(),
            sm_id: sm_id.clone(),
            user: name.clone(),
            node,
            resource,
            available: false,
        };
        let bytes = reply.action(cx, "started", Some(&sm_id));
        cx.send_about(&Item::Account(name.key()), bytes);
        self.by_session.insert(session, sm_id.clone());
        self.sessions.insert(sm_id, x);
        // The mailbox: stored messages, then the friend requests waiting. Drains on the
        // link go one at a time (the connection knows of one paused drain): behind
        // another's, this one waits, its user's new messages stored behind the old.
        if self.waiting.is_empty() {
            if !self.drain(cx, session) {
                self.waiting.push_back(session);
            }
        } else {
            cx.net.pause_drain(session);
            self.waiting.push_back(session);
        }
    }

    /// Hands `session` its mailbox (or the rest of it); whether it is all out.
    fn drain(&self, cx: &mut Cx<'_>, session: SessionId) -> bool {
        let Some(x) = self
            .by_session
            .get(&session)
            .and_then(|id| self.sessions.get(id))
        else {
            return true;
        };
        let domain = cx.config.jabberd.domain.clone();
        cx.drain_mailbox(session, None, |item| match item {
            Handout::Message(m) => match m.kind {
                MessageKind::FriendAccepted => {
                    let from = jid(m.from.as_str(), &domain);
                    stanza(x, &domain, "presence", &from, Some("subscribed"), "")
                }
                MessageKind::Direct | MessageKind::Whisper | MessageKind::Chat { .. } => {
                    let from = jid(m.from.as_str(), &domain);
                    let mut body = format!("<body>{}</body>", esc(&m.body));
                    let stamp = iso8601(m.sent_ms);
                    let _ = write!(
                        body,
                        "<delay xmlns='urn:xmpp:delay' from='{}' stamp='{stamp}'/>",
                        esc(&domain)
                    );
                    stanza(x, &domain, "message", &from, Some("chat"), &body)
                }
            },
            Handout::FriendRequest { from, .. } => {
                let from = jid(from, &domain);
                stanza(x, &domain, "presence", &from, Some("subscribe"), "")
            }
        })
    }

    /// The runtime wrote enough of the link's output for the paused drain of `session`
    /// to go on; the drains waiting behind it follow, as long as each finishes.
    pub(crate) fn on_drain(&mut self, cx: &mut Cx<'_>, session: SessionId) {
        if self.waiting.front() == Some(&session) && !self.drain(cx, session) {
            return;
        }
        self.waiting.retain(|s| *s != session);
        self.resume(cx);
    }

    /// The first waiting drain's session ended: the next one goes on now.
    fn tidy(&mut self, cx: &mut Cx<'_>) {
        if let Some(front) = self.waiting.front() {
            if !self.by_session.contains_key(front) {
                self.waiting.pop_front();
                self.resume(cx);
            }
        }
    }

    /// Drains the sessions waiting, in order, until one pauses.
    fn resume(&mut self, cx: &mut Cx<'_>) {
        while let Some(&next) = self.waiting.front() {
            if !self.drain(cx, next) {
                return;
            }
            self.waiting.pop_front();
        }
    }

    /// A stanza from a client, forwarded by c2s.
    fn on_stanza(&mut self, cx: &mut Cx<'_>, c2s: &str, e: &Element) {
        let (Some(c2s_id), Some(sm_id)) = (e.attr_ns(NS_SESS, "c2s"), e.attr_ns(NS_SESS, "sm"))
        else {
            return;
        };
        let Some(x) = self.sessions.get(sm_id) else {
            // A stale session: tell c2s it ended (never `sc:failed` on a stanza).
            if c2s_id.len() <= 64 && sm_id.len() <= 64 {
                let domain = &cx.config.jabberd.domain;
                let bytes = ended(c2s, c2s_id, sm_id, "ended", domain);
                cx.send(bytes);
            }
            return;
        };
        if x.c2s_id != c2s_id {
            return;
        }
        let x = x.clone();
        let bucket = self.buckets.entry(x.session).or_default();
        match e.name.as_str() {
            "message" => message(cx, bucket, &x, e),
            "presence" => {
                // After an unavailable presence the next available one is an initial
                // presence again (RFC 6121 4.2): the contacts' presences are sent anew.
                if let Some(available) = presence(cx, bucket, &x, e) {
                    if let Some(rec) = self.sessions.get_mut(sm_id) {
                        rec.available = available;
                    }
                }
            }
            "iq" => iq(cx, bucket, &x, e),
            _ => {}
        }
    }

    /// A network event for an XMPP session.
    pub(crate) fn on_event(&mut self, px: &mut Px<'_>, session: SessionId, event: &Event) {
        let Some(x) = self
            .by_session
            .get(&session)
            .and_then(|id| self.sessions.get(id))
        else {
            return;
        };
        let Some(link) = self.link.filter(|_| self.bound) else {
            return;
        };
        let domain = px.config.jabberd.domain.clone();
        match event {
            Event::Direct { message, .. } => {
                let from = jid(message.from.as_str(), &domain);
                let body = format!("<body>{}</body>", esc(&message.body));
                let bytes = stanza(x, &domain, "message", &from, Some("chat"), &body);
                px.send_to(link, bytes);
            }
            Event::Presence { name, shown } => {
                let from = jid(name.as_str(), &domain);
                let bytes = presence_of(x, &domain, &from, *shown);
                px.send_to(link, bytes);
            }
            Event::FriendNews {
                from, to, accepted, ..
            } => {
                let kind = if *accepted { "subscribed" } else { "subscribe" };
                let from = jid(from.as_str(), &domain);
                let bytes = stanza(x, &domain, "presence", &from, Some(kind), "");
                let after = px.net.wait_for(&Item::Friends(to.key()));
                px.send_to_after(link, bytes, after);
            }
            Event::Kicked {
                session: Some(_), ..
            } => {
                let x = x.clone();
                let bytes = ended(&x.c2s, &x.c2s_id, &x.sm_id, "ended", &domain);
                px.send_to(link, bytes);
                if let Some(x) = self.remove(&x.sm_id) {
                    px.forget(x.session);
                    px.net.logout(x.session);
                }
            }
            _ => {}
        }
    }

    /// An event for the link's connection: a kick or a friend's news names its session.
    /// Kept out of line: the dispatch of events to connections is inlined (a hot path).
    #[inline(never)]
    pub(crate) fn on_conn_event(&mut self, cx: &mut Cx<'_>, event: &Event) {
        let session = match event {
            Event::Kicked {
                session: Some(s), ..
            } => *s,
            Event::FriendNews { session, .. } => *session,
            Event::Direct { session, .. } => *session,
            // Broadcasts to every connection (the lobby) and a ban of the router's
            // address concern no XMPP user.
            _ => return,
        };
        let mut px = cx.px();
        self.on_event(&mut px, session, event);
        self.tidy(cx);
    }
}

/// Ends a model session held by jabberd (no bytes: c2s already knows, or is told).
fn end_locally(cx: &mut Cx<'_>, session: SessionId) {
    cx.px().forget(session);
    cx.net.logout(session);
}

/// The fields of a session request, for its reply.
struct Reply<'a> {
    c2s: &'a str,
    c2s_id: &'a str,
    sm_id: Option<&'a str>,
    target: Option<&'a str>,
    id: Option<&'a str>,
}

impl Reply<'_> {
    /// The request answered with `action` (and our `sc:sm`, for `started`).
    fn action(&self, cx: &Cx<'_>, action: &str, started: Option<&str>) -> Bytes {
        let sm = started.or(self.sm_id);
        self.element(cx, action, sm, false)
    }

    /// The request sent back failed: `sc:failed='1'`, and always an `sc:sm` (c2s drops
    /// a failure without one, leaving its client's bind unanswered).
    fn failed(&self, cx: &Cx<'_>, action: &str) -> Bytes {
        let sm = self.sm_id.unwrap_or("0");
        self.element(cx, action, Some(sm), true)
    }

    fn element(&self, cx: &Cx<'_>, action: &str, sm: Option<&str>, failed: bool) -> Bytes {
        let mut s = format!(
            "<sc:session xmlns:sc='{NS_SESS}' sc:c2s='{}'",
            esc(self.c2s_id)
        );
        if let Some(sm) = sm {
            let _ = write!(s, " sc:sm='{}'", esc(sm));
        }
        let _ = write!(s, " action='{action}'");
        if let Some(t) = self.target {
            let _ = write!(s, " target='{}'", esc(t));
        }
        if let Some(id) = self.id {
            let _ = write!(s, " id='{}'", esc(id));
        }
        if failed {
            s.push_str(" sc:failed='1'");
        }
        s.push_str("/>");
        route(self.c2s, &cx.config.jabberd.domain, &s)
    }
}

/// `<route>` from our domain to the c2s `to`, around `payload`.
fn route(to: &str, domain: &str, payload: &str) -> Bytes {
    xml::bytes(format!(
        "<route xmlns='{NS_COMP}' to='{}' from='{}'>{payload}</route>",
        esc(to),
        esc(domain)
    ))
}

/// An unsolicited `ended` or `replaced` for session `x`.
fn unsolicited(cx: &Cx<'_>, x: &Xs, action: &str) -> Bytes {
    ended(
        &x.c2s,
        &x.c2s_id,
        &x.sm_id,
        action,
        &cx.config.jabberd.domain,
    )
}

/// An unsolicited session `action` for the c2s client `c2s_id` and our `sm_id`.
fn ended(c2s: &str, c2s_id: &str, sm_id: &str, action: &str, domain: &str) -> Bytes {
    let payload = format!(
        "<sc:session xmlns:sc='{NS_SESS}' sc:c2s='{}' sc:sm='{}' action='{action}'/>",
        esc(c2s_id),
        esc(sm_id)
    );
    route(c2s, domain, &payload)
}

impl Xs {
    /// The session's full JID.
    fn full_jid(&self, domain: &str) -> String {
        format!("{}@{domain}/{}", self.node, self.resource)
    }
}

/// A stanza to session `x`: `name` from `from` with `type` and inner XML `inner`.
fn stanza(x: &Xs, domain: &str, name: &str, from: &str, kind: Option<&str>, inner: &str) -> Bytes {
    let mut s = format!(
        "<{name} xmlns='{NS_CLIENT}' xmlns:sm='{NS_SESS}' sm:c2s='{}' sm:sm='{}' from='{}' to='{}'",
        esc(&x.c2s_id),
        esc(&x.sm_id),
        esc(from),
        esc(&x.full_jid(domain))
    );
    if let Some(kind) = kind {
        let _ = write!(s, " type='{kind}'");
    }
    if inner.is_empty() {
        s.push_str("/>");
    } else {
        let _ = write!(s, ">{inner}</{name}>");
    }
    route(&x.c2s, domain, &s)
}

/// How `from` shows, as a presence stanza to `x`.
fn presence_of(x: &Xs, domain: &str, from: &str, shown: Shown) -> Bytes {
    match shown {
        Shown::Offline => stanza(x, domain, "presence", from, Some("unavailable"), ""),
        Shown::As(Status::Online | Status::Invisible) => {
            stanza(x, domain, "presence", from, None, "")
        }
        Shown::As(Status::Away) => stanza(x, domain, "presence", from, None, "<show>away</show>"),
        Shown::As(Status::Busy) => stanza(x, domain, "presence", from, None, "<show>dnd</show>"),
    }
}

/// The bare JID of the user `name`: `name@domain` with the name's case-mapped form
/// (PROTOCOLS.md), as jabberd2's nodeprep makes the JID of every session it binds, so a
/// client sees one JID for a user whatever the case its name was registered in.
fn jid(name: &str, domain: &str) -> String {
    format!("{}@{domain}", name.to_lowercase())
}

/// The node of a JID of our domain (`node@domain`, a resource allowed and dropped).
fn bare(cx: &Cx<'_>, jid: &str) -> Option<String> {
    let jid = jid.split('/').next()?;
    let (node, domain) = jid.split_once('@')?;
    (domain.eq_ignore_ascii_case(&cx.config.jabberd.domain) && !node.is_empty())
        .then(|| node.to_owned())
}

/// The node and resource of a full JID of our domain.
fn full(cx: &Cx<'_>, jid: &str) -> Option<(String, String)> {
    let (bare_part, resource) = jid.split_once('/')?;
    if resource.is_empty() || resource.len() > 1023 {
        return None;
    }
    Some((bare(cx, bare_part)?, resource.to_owned()))
}

/// A stanza error to `x`, from `from`, for a stanza `name` with id `id`.
fn error_reply(
    cx: &mut Cx<'_>,
    x: &Xs,
    name: &str,
    from: &str,
    id: Option<&str>,
    kind: &str,
    condition: &str,
) {
    let domain = cx.config.jabberd.domain.clone();
    // A stanza with no `to` was addressed to its sender's bare JID (RFC 6120 10.3); an
    // empty `from` is no JID at all.
    let own;
    let from = match from {
        "" => {
            own = format!("{}@{domain}", x.node);
            own.as_str()
        }
        from => from,
    };
    let inner = format!("<error type='{kind}'><{condition} xmlns='{NS_STANZAS}'/></error>");
    let mut s = format!(
        "<{name} xmlns='{NS_CLIENT}' xmlns:sm='{NS_SESS}' sm:c2s='{}' sm:sm='{}' from='{}' to='{}' type='error'",
        esc(&x.c2s_id),
        esc(&x.sm_id),
        esc(from),
        esc(&x.full_jid(&domain))
    );
    if let Some(id) = id {
        let _ = write!(s, " id='{}'", esc(id));
    }
    let _ = write!(s, ">{inner}</{name}>");
    let bytes = route(&x.c2s, &domain, &s);
    cx.send(bytes);
}

/// A message from `x`: to any user of any protocol, through the model's one delivery
/// call; stored when the recipient is an offline account. XMPP acknowledges nothing, so
/// only a refusal is answered (an error stanza).
/// Takes a token for `cost` from a session's bucket.
fn charge(cx: &mut Cx<'_>, bucket: &mut ConnLimits, cost: Cost) -> bool {
    let (limits, now) = (&cx.config.limits, cx.now.mono);
    cx.limits.charge(limits, bucket, cost, now).is_ok()
}

fn message(cx: &mut Cx<'_>, bucket: &mut ConnLimits, x: &Xs, e: &Element) {
    let kind = e.attr("type").unwrap_or("normal");
    if kind == "error" {
        return;
    }
    let to_attr = e.attr("to").unwrap_or("").to_owned();
    let id = e.attr("id");
    let Some(body) = e.child(NS_CLIENT, "body").map(Element::text) else {
        // Chat states and receipts alone: nothing to deliver.
        return;
    };
    let Some(to) = bare(cx, &to_attr).and_then(|n| UserName::parse(&n).ok()) else {
        return error_reply(
            cx,
            x,
            "message",
            &to_attr,
            id,
            "cancel",
            "service-unavailable",
        );
    };
    if kind == "groupchat" {
        return error_reply(
            cx,
            x,
            "message",
            &to_attr,
            id,
            "cancel",
            "service-unavailable",
        );
    }
    let limits = MailboxLimits {
        cap: cx.config.offline_cap,
        share: cx.config.offline_share(),
    };
    let route = match cx.net.route_direct(x.session, &to, limits) {
        Ok(route) => route,
        Err(why) => {
            cx.net.refused_direct(x.session, &to, &why);
            return refused(cx, x, &to_attr, id, &why);
        }
    };
    let cost = match &route {
        Route::Live(_) => Cost::Message,
        Route::Mailbox(_) => Cost::Durable,
    };
    if !charge(cx, bucket, cost) {
        // Too many too fast: RFC 6120's condition for a rate limit.
        return error_reply(cx, x, "message", &to_attr, id, "wait", "policy-violation");
    }
    let outgoing = Outgoing {
        from: x.session,
        body: body.into(),
        kind: DirectKind::Chat,
        sent_ms: cx.now.wall_ms,
    };
    // The rate's gate changed no routing state, so the route still holds.
    if let Outcome::Refused(why) = cx.deliver_routed(outgoing, route) {
        refused(cx, x, &to_attr, id, &why);
    }
}

fn refused(cx: &mut Cx<'_>, x: &Xs, to: &str, id: Option<&str>, why: &Undeliverable) {
    let (kind, condition) = match why {
        Undeliverable::NoSuchUser => ("cancel", "item-not-found"),
        Undeliverable::MailboxFull(_) | Undeliverable::ShareUsed(_) => {
            ("wait", "resource-constraint")
        }
        Undeliverable::StoreFailing(_) => ("wait", "internal-server-error"),
    };
    error_reply(cx, x, "message", to, id, kind, condition);
}

/// A presence from `x`: without `to`, its status (available, away, dnd, unavailable)
/// for the model; with `to`, a subscription request or answer, as a friendship change.
/// Returns, for a broadcast, whether the session is now available (its next available
/// presence after an unavailable one is an initial presence again).
fn presence(cx: &mut Cx<'_>, bucket: &mut ConnLimits, x: &Xs, e: &Element) -> Option<bool> {
    let kind = e.attr("type");
    let domain = cx.config.jabberd.domain.clone();
    match e.attr("to") {
        None => {
            let status = match kind {
                None => match e.child(NS_CLIENT, "show").map(|s| s.text()) {
                    Some(show) if show.trim() == "away" || show.trim() == "xa" => Status::Away,
                    Some(show) if show.trim() == "dnd" => Status::Busy,
                    _ => Status::Online,
                },
                Some("unavailable") => Status::Invisible,
                Some(_) => return None,
            };
            cx.net.set_status(x.session, status);
            // The user's own presence, reflected to the session.
            let me = x.full_jid(&domain);
            let own = match status {
                Status::Invisible => Shown::Offline,
                status => Shown::As(status),
            };
            let bytes = presence_of(x, &domain, &me, own);
            cx.send(bytes);
            if status == Status::Invisible {
                return Some(false);
            }
            if !x.available {
                // The initial presence: the friends who show, as presences.
                let mine = x.user.key();
                let friends: Vec<(String, Shown)> = (cx.net.friends_of(&mine))
                    .filter_map(|key| {
                        let name = cx.net.account(key)?.name.as_str().to_owned();
                        Some((name, cx.net.shown(key)))
                    })
                    .filter(|(_, shown)| *shown != Shown::Offline)
                    .collect();
                let after = cx.net.wait_for(&Item::Friends(mine));
                for (name, shown) in friends {
                    let bytes = presence_of(x, &domain, &jid(&name, &domain), shown);
                    match after {
                        Some(seq) => cx.send_after(bytes, seq),
                        None => cx.send(bytes),
                    }
                }
            }
            Some(true)
        }
        Some(to) => {
            let other = bare(cx, to)
                .and_then(|n| UserKey::of(&n).ok())
                .and_then(|key| cx.net.account(&key))
                .map(|a| a.name.clone())?;
            let me = x.user.clone();
            let now = cx.now.wall_ms;
            let change = match kind {
                Some("subscribe") => cx.net.ask_friend(&me, &other, now),
                Some("subscribed") => cx.net.answer_friend(&me, &other, true, now),
                Some("unsubscribed") => match cx.net.are_friends(me.key_ref(), other.key_ref()) {
                    true => cx.net.end_friendship(&me, &other),
                    false => cx.net.answer_friend(&me, &other, false, now),
                },
                Some("unsubscribe") => cx.net.end_friendship(&me, &other),
                _ => return None,
            };
            let change = change.ok()?;
            if !cx.store_ok() || !charge(cx, bucket, Cost::Durable) {
                return None;
            }
            cx.persist_friends(&me, &other, change);
            None
        }
    }
}

/// An iq from `x`: session, ping, roster and disco#info are answered; every other
/// get or set gets `service-unavailable` (RFC 6120 8.4); results and errors are dropped.
fn iq(cx: &mut Cx<'_>, bucket: &mut ConnLimits, x: &Xs, e: &Element) {
    let kind = e.attr("type").unwrap_or("");
    if kind != "get" && kind != "set" {
        return;
    }
    let domain = cx.config.jabberd.domain.clone();
    let id = e.attr("id");
    let to = e.attr("to").unwrap_or(&domain).to_owned();
    let ours = to.eq_ignore_ascii_case(&domain)
        || bare(cx, &to).is_some_and(|n| UserKey::of(&n).ok().as_ref() == Some(x.user.key_ref()));
    let Some(child) = e.elements().next() else {
        return error_reply(cx, x, "iq", &to, id, "modify", "bad-request");
    };
    let result = |cx: &mut Cx<'_>, inner: &str, after: Option<Seq>| {
        let mut s = format!(
            "<iq xmlns='{NS_CLIENT}' xmlns:sm='{NS_SESS}' sm:c2s='{}' sm:sm='{}' from='{}' to='{}' type='result'",
            esc(&x.c2s_id),
            esc(&x.sm_id),
            esc(&to),
            esc(&x.full_jid(&domain))
        );
        if let Some(id) = id {
            let _ = write!(s, " id='{}'", esc(id));
        }
        if inner.is_empty() {
            s.push_str("/>");
        } else {
            let _ = write!(s, ">{inner}</iq>");
        }
        let bytes = route(&x.c2s, &domain, &s);
        match after {
            Some(seq) => cx.send_after(bytes, seq),
            None => cx.send(bytes),
        }
    };
    match (kind, child.ns.as_str(), child.name.as_str()) {
        ("set", NS_SESSION, "session") if ours => result(cx, "", None),
        ("get", NS_PING, "ping") if ours => result(cx, "", None),
        ("get", NS_DISCO_INFO, "query") if to.eq_ignore_ascii_case(&domain) => {
            let inner = format!(
                "<query xmlns='{NS_DISCO_INFO}'><identity category='server' type='im' name='{}'/><feature var='{NS_DISCO_INFO}'/><feature var='{NS_PING}'/><feature var='{NS_ROSTER}'/></query>",
                esc(&cx.config.server_name)
            );
            result(cx, &inner, None);
        }
        ("get", NS_ROSTER, "query") if ours => {
            let mine = x.user.key();
            let friends: Vec<String> = (cx.net.friends_of(&mine))
                .filter_map(|key| Some(cx.net.account(key)?.name.as_str().to_owned()))
                .collect();
            let mut inner = format!("<query xmlns='{NS_ROSTER}'>");
            for name in friends {
                let _ = write!(
                    inner,
                    "<item jid='{}' name='{}' subscription='both'/>",
                    esc(&jid(&name, &domain)),
                    esc(&name)
                );
            }
            inner.push_str("</query>");
            let after = cx.net.wait_for(&Item::Friends(mine));
            result(cx, &inner, after);
        }
        ("set", NS_ROSTER, "query") if ours => {
            let items: Vec<&Element> = child.elements().filter(|i| i.name == "item").collect();
            let [item] = items.as_slice() else {
                return error_reply(cx, x, "iq", &to, id, "modify", "bad-request");
            };
            let Some(other) = item
                .attr("jid")
                .and_then(|j| bare(cx, j))
                .and_then(|n| UserKey::of(&n).ok())
                .and_then(|key| cx.net.account(&key))
                .map(|a| a.name.clone())
            else {
                return error_reply(cx, x, "iq", &to, id, "cancel", "item-not-found");
            };
            let me = x.user.clone();
            let friends = cx.net.are_friends(me.key_ref(), other.key_ref());
            let change = match (item.attr("subscription"), friends) {
                (Some("remove"), true) => cx.net.end_friendship(&me, &other).ok(),
                (Some("remove"), false) => cx.net.answer_friend(&me, &other, false, 0).ok(),
                (_, true) => None,
                (_, false) => cx.net.ask_friend(&me, &other, cx.now.wall_ms).ok(),
            };
            match change {
                Some(_) if !cx.store_ok() => {
                    error_reply(cx, x, "iq", &to, id, "wait", "internal-server-error");
                }
                Some(_) if !charge(cx, bucket, Cost::Durable) => {
                    error_reply(cx, x, "iq", &to, id, "wait", "policy-violation");
                }
                Some(change) => {
                    let seq = cx.persist_friends(&me, &other, change);
                    result(cx, "", Some(seq));
                }
                None => {
                    let after = cx.net.wait_for(&Item::Friends(me.key()));
                    result(cx, "", after);
                }
            }
        }
        _ => error_reply(cx, x, "iq", &to, id, "cancel", "service-unavailable"),
    }
}

/// Unix milliseconds as an XEP-0082 timestamp (`2024-01-31T12:00:00Z`).
fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm), for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod unit {
    #[test]
    fn timestamps_are_xep_0082() {
        assert_eq!(super::iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::iso8601(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::iso8601(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
