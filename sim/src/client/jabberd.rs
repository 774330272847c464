//! A virtual jabberd2 router and c2s with XMPP clients behind it, in a run of their own:
//! the real core through a [`Pump`], its router link dialed (and sometimes refused),
//! logged in with DIGEST-MD5 (the response checked with this file's own MD5 math),
//! restarted and bound; then XMPP sessions that start (sometimes twice on one full JID,
//! sometimes for no account), message each other (live and offline), set presence, ping,
//! end, speak on a stale session, get kicked by an administrator, and lose the whole
//! link now and then. Every byte goes to the core in random pieces; commits land in
//! random order.
//!
//! Checked after every element the server sends on the link, and at the end:
//! - the link's SASL response proves the secret (`jabberd_link_proves_the_secret`);
//! - every `start` gets one answer: `started` with a fresh `sc:sm` of 1 to 40 bytes, or,
//!   only for a start that cannot be served, the request back with `sc:failed` *and* an
//!   `sc:sm` (`jabberd_starts_are_answered`); a start on a full JID already on replaces
//!   the old session first (`jabberd_same_jid_is_replaced`);
//! - `end` gets `ended`; a stanza on a stale session gets an unsolicited `ended`, never
//!   `sc:failed` (`jabberd_no_failed_on_stanzas`);
//! - a message reaches only its recipient's sessions (`jabberd_messages_reach_their_recipient`),
//!   a live one every session the recipient had when it was sent, once
//!   (`jabberd_live_messages_arrive`), a stored one exactly once at a later login
//!   (`jabberd_stored_messages_arrive_once`);
//! - an administrator's kick ends every session of the user (`jabberd_kicks_end_sessions`);
//! - a lost link is dialed again (`jabberd_link_comes_back`).
//!
//! The client side is written apart from proto's codec: elements are cut by tags and
//! attributes picked out by hand.

use base64ct::{Base64, Encoding};
use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use md5::{Digest, Md5};
use switchboard_proto::{
    Account, Action, Batch, Change, Config, ConnId, Instant, NetworkEvent, Now, PasswordHash, Peer,
    Protocol, Pump, Secret, Server, State, UserName,
};

use crate::choices::{Choices, Purpose, SimRng};
use crate::report::Violation;

const WALL_ORIGIN_MS: u64 = 1_700_000_000_000;
const SECRET: &str = "sim-secret";
const COMP: &str = "http://jabberd.jabberstudio.org/ns/component/1.0";
const SESS: &str = "http://jabberd.jabberstudio.org/ns/session/1.0";
const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id='sim'>";

/// What one run did, for the tests to see it did something.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JabberdReport {
    /// Sessions started.
    pub started: u64,
    /// Starts failed (for no account).
    pub failed_starts: u64,
    /// Sessions replaced by a start on the same full JID.
    pub replaced: u64,
    /// Messages that arrived at a session.
    pub delivered: u64,
    /// Messages stored for an offline user.
    pub stored: u64,
    /// Links lost (and logged in again).
    pub link_drops: u64,
    /// Sessions ended by a kick.
    pub kicked: u64,
}

/// Where the virtual router's side of the link is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// No link.
    Down,
    /// Waiting for the sm's header (and then its `<auth>`).
    Opened,
    /// Challenge sent with this nonce.
    Challenged(String),
    /// Success sent; waiting for the restart's header and the bind.
    Restarting,
    /// Bound.
    Online,
}

/// An XMPP session as c2s holds it.
#[derive(Clone, Debug)]
struct Sess {
    user: usize,
    resource: String,
    sm: String,
}

struct Run {
    pump: Pump,
    now: u64,
    rng: SimRng,
    users: Vec<String>,
    link: Option<ConnId>,
    phase: Phase,
    inbuf: Vec<u8>,
    next_conn: u64,
    next_c2s: u64,
    /// Starts sent and not yet answered: c2s id to (user, resource); `None` user for a
    /// start for no account.
    pending: BTreeMap<String, (Option<usize>, String)>,
    /// Live sessions by c2s id.
    sessions: BTreeMap<String, Sess>,
    /// Ended sessions (c2s id, sm id), to speak on as stale.
    stale: Vec<(String, String)>,
    /// `end`s sent and not yet answered.
    ending: BTreeSet<String>,
    in_flight: Option<Batch>,
    /// Each token: its sender and recipient (user indices).
    tokens: BTreeMap<u64, (usize, usize)>,
    next_token: u64,
    sending: Option<u64>,
    /// Tokens the model stored for an offline recipient.
    stored: BTreeSet<u64>,
    /// Tokens the model relayed live (its `DirectDelivered`).
    relayed: BTreeSet<u64>,
    /// Arrivals per (sm id, token) and per (recipient, token).
    got: BTreeMap<(String, u64), u32>,
    got_user: BTreeMap<(usize, u64), u32>,
    /// Live messages owed to sessions while the link's output is held behind a commit
    /// (every XMPP session shares the one link): (sm id, token).
    owed: Vec<(String, u64)>,
    /// Sessions (c2s ids) an administrator kicked, whose `ended` may wait with the rest
    /// of the link's output.
    owed_kicks: Vec<(String, usize)>,
    /// When the link was lost, if it is down now.
    down_since: Option<u64>,
    report: JabberdReport,
}

/// Runs a virtual c2s with `users` XMPP users for `steps` steps with the run's `seed`; a
/// violated invariant stops it.
pub fn run(seed: u64, users: usize, steps: u64) -> Result<JabberdReport, Violation> {
    run_with(seed, users, steps, Config::default())
}

/// [`run`] with a core configuration (a planted bug, say).
pub fn run_with(
    seed: u64,
    users: usize,
    steps: u64,
    mut config: Config,
) -> Result<JabberdReport, Violation> {
    config.seed = switchboard_proto::Seed::number(seed);
    config.jabberd.router = Some(core::net::SocketAddr::from(([10, 0, 0, 9], 5347)));
    config.jabberd.secret = Secret(SECRET.into());
    config.offline_share_percent = 100;
    let names: Vec<String> = (0..users).map(|i| format!("u{i}")).collect();
    let mut state = State::default();
    for name in &names {
        let Ok(name) = UserName::parse(name) else {
            continue;
        };
        state.apply(&Change::AccountCreated(Account {
            name,
            password: PasswordHash("sim".into()),
            ims_password: PasswordHash("sim".into()),
            email: None,
            gender: None,
            level: 0,
            banned: false,
            created_ms: 0,
        }));
    }
    let mut run = Run {
        pump: Pump::new(Server::new(config, state)),
        now: 0,
        rng: SimRng::derive(seed, Purpose::Client, 3 << 32),
        users: names,
        link: None,
        phase: Phase::Down,
        inbuf: Vec::new(),
        next_conn: 1,
        next_c2s: 1,
        pending: BTreeMap::new(),
        sessions: BTreeMap::new(),
        stale: Vec::new(),
        ending: BTreeSet::new(),
        in_flight: None,
        tokens: BTreeMap::new(),
        next_token: 0,
        sending: None,
        stored: BTreeSet::new(),
        relayed: BTreeSet::new(),
        got: BTreeMap::new(),
        got_user: BTreeMap::new(),
        owed: Vec::new(),
        owed_kicks: Vec::new(),
        down_since: Some(0),
        report: JabberdReport::default(),
    };
    run.pump.record_events();
    for _ in 0..steps {
        run.step(true)?;
    }
    run.finish()?;
    Ok(run.report)
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize());
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of attribute `name` (written `name='v'`), if present.
fn attr<'a>(unit: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!(" {name}='");
    let at = unit.find(&needle)? + needle.len();
    let end = unit[at..].find('\'')? + at;
    Some(&unit[at..end])
}

/// A `key="value"` or `key=value` field of a DIGEST-MD5 response.
fn field(text: &str, key: &str) -> String {
    for part in text.split(',') {
        if let Some(v) = part.trim().strip_prefix(&format!("{key}=")) {
            return v.trim_matches('"').to_owned();
        }
    }
    String::new()
}

/// Cuts the next unit out of what the server sent: its stream header, or a complete
/// top-level element (the server escapes `>` in attribute values, so tags can be cut
/// at `>`).
fn next_unit(buf: &mut Vec<u8>) -> Option<String> {
    let text = std::str::from_utf8(buf).ok()?;
    if text.starts_with("<?xml") {
        let end = text.find("version='1.0'>")? + "version='1.0'>".len();
        let unit = text[..end].to_owned();
        buf.drain(..end);
        return Some(unit);
    }
    let mut depth = 0i32;
    let mut i = 0;
    while let Some(open) = text[i..].find('<') {
        let start = i + open;
        let close = start + text[start..].find('>')?;
        let tag = &text[start..=close];
        if tag.starts_with("</") {
            depth -= 1;
        } else if !tag.ends_with("/>") {
            depth += 1;
        }
        i = close + 1;
        if depth == 0 {
            let unit = text[..i].to_owned();
            buf.drain(..i);
            return Some(unit);
        }
    }
    None
}

impl Run {
    fn now(&self) -> Now {
        Now::at(Instant::from_millis(self.now), WALL_ORIGIN_MS + self.now)
    }

    /// One step: time moves on, then the c2s acts, a commit lands, or the link drops.
    fn step(&mut self, act: bool) -> Result<(), Violation> {
        self.now += self.rng.range(0..=20);
        let now = self.now();
        if self.pump.poll_timeout().is_some_and(|at| at <= now.mono) {
            self.pump.handle_timeout(now);
            self.drain()?;
        }
        match self
            .rng
            .weighted(&[if act { 8 } else { 0 }, 3, u64::from(act)])
        {
            0 => self.act(),
            1 => self.land_commit(),
            _ if self.rng.ratio(1, 20) => self.drop_link(),
            _ => Ok(()),
        }
    }

    /// With nothing held, every live message owed to a session still there has arrived,
    /// once.
    fn check_owed(&mut self) -> Result<(), Violation> {
        if self.pump.held() > 0 {
            return Ok(());
        }
        for (c2s, user) in std::mem::take(&mut self.owed_kicks) {
            if self.sessions.contains_key(&c2s) {
                return Err(Violation::new(
                    "jabberd_kicks_end_sessions",
                    format!("{} still on c2s {c2s} after a kick", self.users[user]),
                ));
            }
        }
        for (sm, token) in std::mem::take(&mut self.owed) {
            let still = self.sessions.values().any(|x| x.sm == sm);
            let got = self.got.get(&(sm.clone(), token)).copied().unwrap_or(0);
            if still && got != 1 {
                return Err(Violation::new(
                    "jabberd_live_messages_arrive",
                    format!("t{token} reached session {sm} {got} times"),
                ));
            }
        }
        Ok(())
    }

    fn land_commit(&mut self) -> Result<(), Violation> {
        if self.in_flight.take().is_none() {
            return Ok(());
        }
        let now = self.now();
        self.pump.commit_finished(now);
        self.drain()?;
        self.check_owed()
    }

    fn drop_link(&mut self) -> Result<(), Violation> {
        let Some(link) = self.link.take() else {
            return Ok(());
        };
        self.report.link_drops += 1;
        self.lose_sessions();
        let now = self.now();
        self.pump.peer_closed(now, link);
        self.drain()
    }

    /// c2s closes its clients when the sm's link goes.
    fn lose_sessions(&mut self) {
        self.owed.clear();
        self.owed_kicks.clear();
        self.phase = Phase::Down;
        self.inbuf.clear();
        self.down_since = Some(self.now);
        for (c2s, s) in std::mem::take(&mut self.sessions) {
            self.stale.push((c2s, s.sm));
        }
        self.pending.clear();
        self.ending.clear();
    }

    /// Sends `text` on the link in random pieces.
    fn send(&mut self, text: &str) -> Result<(), Violation> {
        let Some(link) = self.link else {
            return Ok(());
        };
        let bytes = text.as_bytes();
        let mut rest = bytes;
        while !rest.is_empty() {
            let cut = 1 + self.rng.below(rest.len() as u64) as usize;
            let (piece, tail) = rest.split_at(cut);
            rest = tail;
            let now = self.now();
            self.pump.received(now, link, Bytes::copy_from_slice(piece));
            self.drain()?;
            if self.link != Some(link) {
                break;
            }
        }
        Ok(())
    }

    fn route(payload: &str, to: &str) -> String {
        format!("<route xmlns='{COMP}' to='{to}' from='c2s'>{payload}</route>")
    }

    fn session_action(&mut self, c2s: &str, rest: &str) -> Result<(), Violation> {
        let payload = format!("<sc:session xmlns:sc='{SESS}' sc:c2s='{c2s}' {rest}></sc:session>");
        self.send(&Run::route(&payload, "localhost"))
    }

    fn stanza(&mut self, c2s: &str, sm: &str, name: &str, rest: &str) -> Result<(), Violation> {
        let payload = format!(
            "<{name} xmlns='jabber:client' xmlns:sc='{SESS}' sc:c2s='{c2s}' sc:sm='{sm}'{rest}"
        );
        self.send(&Run::route(&payload, "localhost"))
    }

    /// The c2s does one thing.
    fn act(&mut self) -> Result<(), Violation> {
        if self.phase != Phase::Online {
            return Ok(());
        }
        let n = self.users.len() as u64;
        let live: Vec<(String, Sess)> = (self.sessions.iter())
            .map(|(c, s)| (c.clone(), s.clone()))
            .collect();
        match self.rng.weighted(&[6, 10, 2, 2, 3, 2, 1, 1]) {
            0 => {
                let c2s = format!("{}", self.next_c2s);
                self.next_c2s += 1;
                let resource = (*self.rng.pick(&["home", "work"])).to_owned();
                let user = if self.rng.ratio(1, 10) {
                    None
                } else {
                    Some(self.rng.below(n) as usize)
                };
                let node = user.map_or("nobody".to_owned(), |u| self.users[u].clone());
                self.pending.insert(c2s.clone(), (user, resource.clone()));
                let rest = format!("action='start' target='{node}@localhost/{resource}' id='x'");
                self.session_action(&c2s, &rest)
            }
            1 if !live.is_empty() => {
                let (c2s, s) = self.rng.pick(&live).clone();
                let to = self.rng.below(n) as usize;
                let token = self.next_token;
                self.next_token += 1;
                self.tokens.insert(token, (s.user, to));
                let before: Vec<String> = (self.sessions.values())
                    .filter(|x| x.user == to)
                    .map(|x| x.sm.clone())
                    .collect();
                self.sending = Some(token);
                let rest = format!(
                    " to='{}@localhost' type='chat'><body>t{token}</body></message>",
                    self.users[to]
                );
                self.stanza(&c2s, &s.sm, "message", &rest)?;
                self.sending = None;
                // A message from a session the server already ended (its `ended` held
                // behind a commit) is not relayed at all.
                if self.relayed.contains(&token) && self.link.is_some() {
                    // Live: every session the recipient had (and still has) gets it,
                    // once the link's output is no longer held behind a commit.
                    self.owed.extend(before.into_iter().map(|sm| (sm, token)));
                }
                self.check_owed()
            }
            2 if !live.is_empty() => {
                let (c2s, s) = self.rng.pick(&live).clone();
                let rest = *self.rng.pick(&[
                    "/>",
                    "><show>away</show></presence>",
                    "><show>dnd</show></presence>",
                    " type='unavailable'/>",
                ]);
                self.stanza(&c2s, &s.sm, "presence", rest)
            }
            3 if !live.is_empty() => {
                let (c2s, s) = self.rng.pick(&live).clone();
                let rest = *self.rng.pick(&[
                    " type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
                    " type='get' id='v'><query xmlns='jabber:iq:version'/></iq>",
                    " type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>",
                ]);
                self.stanza(&c2s, &s.sm, "iq", rest)
            }
            4 if !live.is_empty() => {
                let (c2s, s) = self.rng.pick(&live).clone();
                self.ending.insert(c2s.clone());
                let rest = format!("sc:sm='{}' action='end'", s.sm);
                self.session_action(&c2s, &rest)
            }
            5 if !self.stale.is_empty() => {
                let (c2s, sm) = self.rng.pick(&self.stale).clone();
                self.stanza(
                    &c2s,
                    &sm,
                    "message",
                    " to='u0@localhost'><body>stale</body></message>",
                )
            }
            6 => {
                let user = self.rng.below(n) as usize;
                self.kick(user)
            }
            7 => {
                // Advertisements, repeated and of another component.
                let name = *self.rng.pick(&["c2s", "s2s"]);
                self.send(&format!("<presence xmlns='{COMP}' from='{name}'/> "))
            }
            _ => Ok(()),
        }
    }

    /// An administrator kicks `user`: every one of its sessions ends.
    fn kick(&mut self, user: usize) -> Result<(), Violation> {
        let admin = ConnId(self.next_conn);
        self.next_conn += 1;
        let now = self.now();
        self.pump.accepted(now, admin, Protocol::Admin, Peer::Local);
        self.pump.received(
            now,
            admin,
            Bytes::from(format!("kick {}\r\n", self.users[user])),
        );
        let theirs = (self.sessions.iter())
            .filter(|(_, s)| s.user == user)
            .map(|(c, _)| (c.clone(), user));
        self.owed_kicks.extend(theirs.collect::<Vec<_>>());
        self.drain()?;
        self.check_owed()
    }

    /// Carries out the pump's actions; plays the router on what the link gets.
    fn drain(&mut self) -> Result<(), Violation> {
        loop {
            while let Some(event) = self.pump.poll_event() {
                if let Some(token) = self.sending {
                    match event {
                        NetworkEvent::DirectStored { .. } => {
                            self.stored.insert(token);
                            self.report.stored += 1;
                        }
                        NetworkEvent::DirectDelivered { .. } => {
                            self.relayed.insert(token);
                        }
                        _ => {}
                    }
                }
            }
            let Some(action) = self.pump.poll_action() else {
                return Ok(());
            };
            let now = self.now();
            match action {
                Action::Commit(batch) => self.in_flight = Some(batch),
                Action::Effect { .. } => {}
                Action::Connect { conn, .. } => {
                    if self.rng.ratio(1, 5) {
                        self.pump.connect_failed(now, conn, "refused".into());
                    } else {
                        self.link = Some(conn);
                        self.phase = Phase::Opened;
                        self.down_since = None;
                        self.pump.connected(now, conn);
                    }
                }
                Action::Transmit { conn, bytes } => {
                    self.pump.written(now, conn, bytes.len());
                    if Some(conn) == self.link {
                        self.inbuf.extend_from_slice(&bytes);
                        while let Some(unit) = next_unit(&mut self.inbuf) {
                            self.on_unit(&unit)?;
                            if self.link != Some(conn) {
                                break;
                            }
                        }
                    }
                }
                Action::Close { conn, .. } => {
                    if Some(conn) == self.link {
                        self.link = None;
                        self.report.link_drops += 1;
                        self.lose_sessions();
                    }
                }
            }
        }
    }

    /// One unit from the sm on the link.
    fn on_unit(&mut self, unit: &str) -> Result<(), Violation> {
        match &self.phase {
            Phase::Down => Ok(()),
            Phase::Opened if unit.starts_with("<?xml") => {
                self.send(&format!("{HEADER}<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='{SASL}'><mechanism>DIGEST-MD5</mechanism></mechanisms></stream:features>"))
            }
            Phase::Opened if unit.starts_with("<auth ") => {
                let nonce = format!("n{}", self.rng.next_u64());
                self.phase = Phase::Challenged(nonce.clone());
                let challenge = format!("realm=\"jabberd-router\", nonce=\"{nonce}\", qop=\"auth\", charset=utf-8, algorithm=md5-sess");
                self.send(&format!("<challenge xmlns='{SASL}'>{}</challenge>", Base64::encode_string(challenge.as_bytes())))
            }
            Phase::Challenged(nonce) if unit.starts_with("<response") => {
                let nonce = nonce.clone();
                let b64 = unit.split('>').nth(1).and_then(|r| r.split('<').next()).unwrap_or("");
                let text = String::from_utf8_lossy(&Base64::decode_vec(b64).unwrap_or_default()).into_owned();
                let (cnonce, uri) = (field(&text, "cnonce"), field(&text, "digest-uri"));
                let inner = md5(&[format!("jabberd:jabberd-router:{SECRET}").as_bytes()]);
                let ha1 = hex(&md5(&[&inner, format!(":{nonce}:{cnonce}").as_bytes()]));
                let digest = |a2: &str| {
                    let ha2 = hex(&md5(&[a2.as_bytes()]));
                    hex(&md5(&[format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}").as_bytes()]))
                };
                if field(&text, "nonce") != nonce || field(&text, "response") != digest(&format!("AUTHENTICATE:{uri}")) {
                    return Err(Violation::new("jabberd_link_proves_the_secret", text));
                }
                self.phase = Phase::Restarting;
                let proof = Base64::encode_string(format!("rspauth={}", digest(&format!(":{uri}"))).as_bytes());
                self.send(&format!("<success xmlns='{SASL}'>{proof}</success>"))
            }
            Phase::Restarting if unit.starts_with("<?xml") => self.send(&format!(
                "{HEADER}<stream:features xmlns:stream='http://etherx.jabber.org/streams'></stream:features>"
            )),
            Phase::Restarting if unit.starts_with("<bind ") => {
                self.phase = Phase::Online;
                self.send(&format!(
                    "<bind xmlns='{COMP}'></bind><presence xmlns='{COMP}' from='c2s'></presence>"
                ))
            }
            Phase::Online if unit.starts_with("<route ") => self.on_route(unit),
            _ => Err(Violation::new(
                "jabberd_link_follows_the_protocol",
                format!("{:?}: {unit}", self.phase),
            )),
        }
    }

    fn on_route(&mut self, unit: &str) -> Result<(), Violation> {
        let payload = unit.split_once('>').map_or("", |(_, p)| p);
        if payload.starts_with("<sc:session ") {
            return self.on_session(payload);
        }
        if payload.contains("failed=") {
            return Err(Violation::new(
                "jabberd_no_failed_on_stanzas",
                unit.to_owned(),
            ));
        }
        let (Some(c2s), Some(sm)) = (attr(payload, "sm:c2s"), attr(payload, "sm:sm")) else {
            return Err(Violation::new(
                "jabberd_stanzas_name_their_session",
                unit.to_owned(),
            ));
        };
        let Some(s) = self.sessions.get(c2s).filter(|s| s.sm == sm).cloned() else {
            // For a session c2s no longer has: c2s answers `end` (not modelled).
            return Ok(());
        };
        if payload.starts_with("<message ") {
            let token = payload
                .split("<body>t")
                .nth(1)
                .and_then(|r| r.split('<').next())
                .and_then(|t| t.parse::<u64>().ok());
            if let Some(token) = token {
                let to = self.tokens.get(&token).map(|t| t.1);
                if to != Some(s.user) {
                    return Err(Violation::new(
                        "jabberd_messages_reach_their_recipient",
                        format!("t{token} for {to:?} reached {}", self.users[s.user]),
                    ));
                }
                *self.got.entry((sm.to_owned(), token)).or_default() += 1;
                let n = self.got_user.entry((s.user, token)).or_default();
                *n += 1;
                self.report.delivered += 1;
                if self.stored.contains(&token) && *n > 1 {
                    return Err(Violation::new(
                        "jabberd_stored_messages_arrive_once",
                        format!("t{token} reached {} {n} times", self.users[s.user]),
                    ));
                }
            }
        }
        Ok(())
    }

    fn on_session(&mut self, payload: &str) -> Result<(), Violation> {
        let (c2s, action) = (attr(payload, "sc:c2s"), attr(payload, "action"));
        let (Some(c2s), Some(action)) = (c2s, action) else {
            return Err(Violation::new(
                "jabberd_starts_are_answered",
                payload.to_owned(),
            ));
        };
        let c2s = c2s.to_owned();
        let sm = attr(payload, "sc:sm").map(str::to_owned);
        let failed = attr(payload, "sc:failed") == Some("1");
        match (action, failed) {
            ("started", false) => {
                let Some((Some(user), resource)) = self.pending.remove(&c2s) else {
                    return Err(Violation::new(
                        "jabberd_starts_are_answered",
                        format!("started for c2s {c2s}, which asked for no account or nothing"),
                    ));
                };
                let sm = sm.unwrap_or_default();
                let taken = self.sessions.values().any(|s| s.sm == sm);
                if sm.is_empty() || sm.len() > 40 || taken {
                    return Err(Violation::new(
                        "jabberd_starts_are_answered",
                        format!("sc:sm {sm:?} (taken: {taken})"),
                    ));
                }
                if let Some(old) =
                    (self.sessions.values()).find(|s| s.user == user && s.resource == resource)
                {
                    return Err(Violation::new(
                        "jabberd_same_jid_is_replaced",
                        format!(
                            "{}/{resource} started again while {} is on",
                            self.users[user], old.sm
                        ),
                    ));
                }
                self.report.started += 1;
                self.sessions.insert(c2s, Sess { user, resource, sm });
            }
            ("start", true) => {
                let asked = self.pending.remove(&c2s);
                if sm.is_none() || !matches!(asked, Some((None, _))) {
                    return Err(Violation::new(
                        "jabberd_starts_are_answered",
                        format!("failed start for {asked:?}: {payload}"),
                    ));
                }
                self.report.failed_starts += 1;
            }
            ("replaced", false) => {
                let s = self.sessions.remove(&c2s);
                if s.as_ref().map(|s| Some(&s.sm)) != Some(sm.as_ref()) {
                    return Err(Violation::new(
                        "jabberd_same_jid_is_replaced",
                        payload.to_owned(),
                    ));
                }
                self.report.replaced += 1;
                self.stale.push((c2s, sm.unwrap_or_default()));
            }
            ("ended", false) => {
                if self.ending.remove(&c2s) || self.sessions.get(&c2s).map(|s| &s.sm) == sm.as_ref()
                {
                    if let Some(s) = self.sessions.remove(&c2s) {
                        if !self.stale.iter().any(|(c, _)| *c == c2s) {
                            self.report.kicked += 1;
                        }
                        self.stale.push((c2s, s.sm));
                    }
                }
            }
            _ => {
                return Err(Violation::new(
                    "jabberd_starts_are_answered",
                    format!("unexpected {action} (failed {failed}): {payload}"),
                ))
            }
        }
        Ok(())
    }

    /// Everything in flight lands; the link comes back; every user logs in once more,
    /// and every stored message must have arrived, once.
    fn finish(&mut self) -> Result<(), Violation> {
        for _ in 0..20_000 {
            if self.phase == Phase::Online && self.in_flight.is_none() && self.pending.is_empty() {
                break;
            }
            self.step(false)?;
        }
        if self.phase != Phase::Online {
            return Err(Violation::new(
                "jabberd_link_comes_back",
                format!("down since {:?} ms, now {} ms", self.down_since, self.now),
            ));
        }
        for user in 0..self.users.len() {
            let c2s = format!("{}", self.next_c2s);
            self.next_c2s += 1;
            self.pending
                .insert(c2s.clone(), (Some(user), "final".into()));
            let rest = format!(
                "action='start' target='{}@localhost/final' id='f'",
                self.users[user]
            );
            self.session_action(&c2s, &rest)?;
            for _ in 0..1_000 {
                if self.in_flight.is_none() {
                    break;
                }
                self.step(false)?;
            }
        }
        if self.phase != Phase::Online {
            // The link dropped during the final logins: nothing more can be judged.
            return Ok(());
        }
        for token in &self.stored {
            let Some(&(_, to)) = self.tokens.get(token) else {
                continue;
            };
            let got = self.got_user.get(&(to, *token)).copied().unwrap_or(0);
            if got != 1 {
                return Err(Violation::new(
                    "jabberd_stored_messages_arrive_once",
                    format!("stored t{token} reached {} {got} times", self.users[to]),
                ));
            }
        }
        Ok(())
    }
}
