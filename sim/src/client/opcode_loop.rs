//! Virtual opcode clients and their invariants, in a run of their own: the real core
//! through a [`Pump`], clients that follow randomised valid scripts (register, log in,
//! ask for contacts, open chats, send text and media, fetch media, list, log out, drop
//! the connection) and misbehave sometimes (unknown opcodes, malformed fields, bytes that
//! are not UTF-8, over-long lines, requests before login), every byte delivered in random
//! pieces, commits and effects finishing in random order.
//!
//! Checked after every line the server sends, and at the end:
//! - every line is a well-formed opcode reply ending with CRLF;
//! - every request gets exactly one answer of its kind, in order (a `219 400` followed by
//!   its `220` echo), and `407` exactly when the client is not logged in;
//! - a `220` reaches only the members of its chat;
//! - a message acknowledged with `219 400` reaches the chat's other member exactly once
//!   (live, or at a later login); one refused never does;
//! - fetched media is byte for byte what its sender sent.
//!
//! The client codec here is written apart from proto's, so one bug cannot hide in both.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use switchboard_proto::{
    Action, Batch, Change, Config, ConnId, Effect, EffectId, EffectResult, Instant, MediaId,
    NetworkEvent, Now, PasswordHash, Peer, Protocol, Pump, Server, State,
};

use super::opcode::{decode, Expect, Listing};
use crate::choices::{Choices, Purpose, SimRng};
use crate::report::Violation;

/// Unix time at virtual zero.
const WALL_ORIGIN_MS: u64 = 1_700_000_000_000;

/// What one run did, for the tests to see it did something.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpcodeReport {
    /// Messages acknowledged with `219 400`.
    pub acked: u64,
    /// Messages delivered to the other member (live or at login).
    pub delivered: u64,
    /// Media fetched and compared.
    pub media_fetched: u64,
    /// Deliberately bad lines sent.
    pub misbehaved: u64,
}

#[derive(Debug)]
struct Client {
    name: String,
    conn: Option<ConnId>,
    registered: bool,
    logged_in: bool,
    /// Asked to log in and waiting for the answer.
    logging_in: bool,
    expect: VecDeque<Expect>,
    inbuf: Vec<u8>,
    /// After `219 400` for this token, its `220` echo must follow at once.
    echo_due: Option<u64>,
    listing: Option<Listing>,
    /// The chats this client has seen (from `112`), with the other member.
    chats: BTreeMap<u64, String>,
    /// Media ids seen in `220` lines.
    media_seen: Vec<u64>,
    /// The chat id each token was sent to (for the sender's bookkeeping).
    sending: BTreeMap<u64, u64>,
}

/// One opcode run.
struct Run {
    pump: Pump,
    now: u64,
    rng: SimRng,
    clients: Vec<Client>,
    by_conn: BTreeMap<ConnId, usize>,
    next_conn: u64,
    in_flight: Option<Batch>,
    effects: VecDeque<(EffectId, Effect)>,
    /// Committed media bytes, as the store keeps them.
    blobs: BTreeMap<MediaId, Bytes>,
    committed: State,
    /// Chat members (by name), from the changes that create chats.
    members: BTreeMap<u64, BTreeSet<String>>,
    /// Each message token: the chat it went to and its sender.
    messages: BTreeMap<u64, (u64, String)>,
    acked: BTreeSet<u64>,
    refused: BTreeSet<u64>,
    /// Deliveries per (recipient, token).
    delivered: BTreeMap<(String, u64), u32>,
    /// The message being sent now, to tie the model's delivery event to it.
    sending: Option<u64>,
    /// Messages handed live to a recipient (the model's `DirectDelivered`) and not yet
    /// read by it. Live delivery is to the connections there are: if the recipient's
    /// connection goes while the message is held behind a commit (its media's, its
    /// chat's), the message is gone with it, and only then may it never arrive.
    live: BTreeSet<(String, u64)>,
    /// Live messages lost with their recipient's connection.
    lost_with_conn: BTreeSet<(String, u64)>,
    /// Media bytes each sender sent, by token; and each media id's token.
    media_sent: BTreeMap<u64, Vec<u8>>,
    media_ids: BTreeMap<u64, u64>,
    next_token: u64,
    report: OpcodeReport,
}

/// Runs `clients` virtual opcode clients for `steps` steps with the run's `seed`; a
/// violated invariant stops it.
pub fn run(seed: u64, clients: usize, steps: u64) -> Result<OpcodeReport, Violation> {
    run_with(seed, clients, steps, Config::default())
}

/// [`run`] with a core configuration (a planted bug, say).
pub fn run_with(
    seed: u64,
    clients: usize,
    steps: u64,
    mut config: Config,
) -> Result<OpcodeReport, Violation> {
    config.seed = switchboard_proto::Seed::number(seed);
    config.opcode.max_line_bytes = 256;
    config.opcode.max_media_bytes = 64;
    // The scripts send faster than a person; the rates are not what is tested here.
    config.limits.broadcast_per_conn.burst = 1_000_000;
    config.limits.broadcast_per_ip.burst = 1_000_000;
    config.limits.durable_per_conn.burst = 1_000_000;
    config.limits.durable_per_ip.burst = 1_000_000;
    config.offline_share_percent = 100;
    let mut run = Run {
        pump: Pump::new(Server::new(config, State::default())),
        now: 0,
        rng: SimRng::derive(seed, Purpose::Client, 1 << 32),
        clients: (0..clients)
            .map(|i| Client {
                name: format!("u{i}"),
                conn: None,
                registered: false,
                logged_in: false,
                logging_in: false,
                expect: VecDeque::new(),
                inbuf: Vec::new(),
                echo_due: None,
                listing: None,
                chats: BTreeMap::new(),
                media_seen: Vec::new(),
                sending: BTreeMap::new(),
            })
            .collect(),
        by_conn: BTreeMap::new(),
        next_conn: 1,
        in_flight: None,
        effects: VecDeque::new(),
        blobs: BTreeMap::new(),
        committed: State::default(),
        members: BTreeMap::new(),
        messages: BTreeMap::new(),
        acked: BTreeSet::new(),
        refused: BTreeSet::new(),
        delivered: BTreeMap::new(),
        sending: None,
        live: BTreeSet::new(),
        lost_with_conn: BTreeSet::new(),
        media_sent: BTreeMap::new(),
        media_ids: BTreeMap::new(),
        next_token: 0,
        report: OpcodeReport::default(),
    };
    run.pump.record_events();
    for _ in 0..steps {
        run.step(true)?;
    }
    run.finish()?;
    Ok(run.report)
}

impl Run {
    fn now(&self) -> Now {
        Now::at(Instant::from_millis(self.now), WALL_ORIGIN_MS + self.now)
    }

    /// One step: time moves on, then a client acts, a commit lands or an effect ends.
    fn step(&mut self, act: bool) -> Result<(), Violation> {
        self.now += self.rng.range(0..=20);
        let now = self.now();
        if self.pump.poll_timeout().is_some_and(|at| at <= now.mono) {
            self.pump.handle_timeout(now);
            self.drain()?;
        }
        match self.rng.weighted(&[if act { 6 } else { 0 }, 2, 2]) {
            0 => {
                let i = self.rng.below(self.clients.len() as u64) as usize;
                self.act(i)?;
            }
            1 => self.land_commit()?,
            _ => self.run_effect()?,
        }
        Ok(())
    }

    fn land_commit(&mut self) -> Result<(), Violation> {
        let Some(batch) = self.in_flight.take() else {
            return Ok(());
        };
        for change in &batch.changes {
            self.committed.apply(change);
            match change {
                Change::MediaStored { id, bytes, .. } => {
                    self.blobs.insert(*id, bytes.0.clone());
                }
                Change::ChatCreated { id, members, .. } => {
                    let names = members.iter().map(|m| m.as_str().to_owned()).collect();
                    self.members.insert(id.0, names);
                }
                _ => {}
            }
        }
        let media = &self.committed.media;
        self.blobs.retain(|id, _| media.contains_key(id));
        let now = self.now();
        self.pump.commit_finished(now);
        self.drain()
    }

    fn run_effect(&mut self) -> Result<(), Violation> {
        let Some((id, effect)) = self.effects.pop_front() else {
            return Ok(());
        };
        let result = match effect {
            Effect::HashPassword { password } => EffectResult::Hashed {
                password: PasswordHash(format!("sim${}", password.0)),
                ims_password: PasswordHash(format!("sim-ims${}", password.0)),
            },
            Effect::VerifyPassword { hash, password } => {
                EffectResult::Verified(hash.0 == format!("sim${}", password.0))
            }
            Effect::ReadMedia { id } => EffectResult::Media(self.blobs.get(&id).cloned()),
        };
        let now = self.now();
        self.pump.effect_done(now, id, result);
        self.drain()
    }

    /// Carries out the pump's actions; delivers what the server sends to the clients.
    fn drain(&mut self) -> Result<(), Violation> {
        while let Some(event) = self.pump.poll_event() {
            if let (NetworkEvent::DirectDelivered { to, .. }, Some(token)) = (event, self.sending) {
                self.live.insert((to.as_str().to_owned(), token));
            }
        }
        while let Some(action) = self.pump.poll_action() {
            let now = self.now();
            match action {
                Action::Commit(batch) => self.in_flight = Some(batch),
                Action::Effect { id, effect } => self.effects.push_back((id, effect)),
                Action::Connect { .. } => {}
                Action::Transmit { conn, bytes } => {
                    self.pump.written(now, conn, bytes.len());
                    if let Some(&i) = self.by_conn.get(&conn) {
                        self.clients[i].inbuf.extend_from_slice(&bytes);
                        self.read(i)?;
                    }
                }
                Action::Close { conn, .. } => {
                    if let Some(i) = self.by_conn.remove(&conn) {
                        self.gone(i);
                    }
                }
            }
        }
        Ok(())
    }

    /// Client `i`'s connection is gone: its session with it.
    fn gone(&mut self, i: usize) {
        let name = self.clients[i].name.clone();
        // Only output held behind a commit can be lost this way: with nothing
        // uncommitted, a live message not yet read was never sent.
        let held = self.pump.uncommitted() > 0;
        let lost: Vec<(String, u64)> = (self.live.iter())
            .filter(|(to, _)| held && *to == name)
            .cloned()
            .collect();
        for key in lost {
            self.live.remove(&key);
            self.lost_with_conn.insert(key);
        }
        let c = &mut self.clients[i];
        c.conn = None;
        c.logged_in = false;
        c.logging_in = false;
        c.expect.clear();
        c.inbuf.clear();
        c.echo_due = None;
        c.listing = None;
    }

    /// Writes `line` (CRLF added) on client `i`'s connection in random pieces.
    fn send(&mut self, i: usize, line: &[u8], expect: Expect) -> Result<(), Violation> {
        let Some(conn) = self.clients[i].conn else {
            return Ok(());
        };
        self.clients[i].expect.push_back(expect);
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\n");
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let cut = 1 + self.rng.below(rest.len() as u64) as usize;
            let (piece, tail) = rest.split_at(cut);
            rest = tail;
            let now = self.now();
            self.pump.received(now, conn, Bytes::copy_from_slice(piece));
            self.drain()?;
            if self.clients[i].conn != Some(conn) {
                break;
            }
        }
        Ok(())
    }

    fn connect(&mut self, i: usize) -> Result<(), Violation> {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.by_conn.insert(conn, i);
        self.clients[i].conn = Some(conn);
        let now = self.now();
        let peer = Peer::Net(core::net::SocketAddr::from(([10, 0, 0, 1], 1024)));
        self.pump.accepted(now, conn, Protocol::Opcode, peer);
        self.drain()
    }

    fn login(&mut self, i: usize) -> Result<(), Violation> {
        let line = format!("110 {} pw", self.clients[i].name);
        self.clients[i].logging_in = true;
        self.send(i, line.as_bytes(), Expect::Status(212))
    }

    /// Client `i` does one thing, if it is not waiting for an answer.
    fn act(&mut self, i: usize) -> Result<(), Violation> {
        let c = &self.clients[i];
        if !c.expect.is_empty() {
            return Ok(());
        }
        if c.conn.is_none() {
            return self.connect(i);
        }
        if self.rng.ratio(1, 12) {
            return self.misbehave(i);
        }
        let (registered, logged_in) = (c.registered, c.logged_in);
        if !registered {
            let line = format!("117 {} pw", self.clients[i].name);
            return self.send(i, line.as_bytes(), Expect::Status(222));
        }
        if !logged_in {
            return self.login(i);
        }
        let n = self.clients.len() as u64;
        let other = format!("u{}", self.rng.below(n));
        let chats: Vec<u64> = self.clients[i].chats.keys().copied().collect();
        match self.rng.weighted(&[3, 3, 3, 10, 2, 1, 1, 1, 1, 1]) {
            0 => self.send(i, format!("121 {other}").as_bytes(), Expect::Status(232)),
            1 => self.send(i, format!("113 {other}").as_bytes(), Expect::Status(217)),
            2 => self.send(i, b"112", Expect::ChatList),
            3 if !chats.is_empty() => {
                let chat = *self.rng.pick(&chats);
                self.message(i, chat)
            }
            3 => self.send(i, b"112", Expect::ChatList),
            4 => {
                let seen = self.clients[i].media_seen.clone();
                let id = match seen.is_empty() {
                    true => self.rng.below(4),
                    false => *self.rng.pick(&seen),
                };
                self.send(i, format!("119 {id}").as_bytes(), Expect::Media { id })
            }
            5 => self.send(i, b"118", Expect::OwnContacts),
            6 => self.send(i, b"120", Expect::Contacts),
            7 => self.send(i, b"111", Expect::Status(213)),
            8 if !chats.is_empty() && self.rng.ratio(1, 4) => {
                let chat = *self.rng.pick(&chats);
                self.clients[i].chats.remove(&chat);
                self.send(i, format!("114 {chat}").as_bytes(), Expect::Status(218))
            }
            _ => {
                // Drop the connection, at once or after half a line.
                let Some(conn) = self.clients[i].conn else {
                    return Ok(());
                };
                if self.rng.ratio(1, 2) {
                    let now = self.now();
                    self.pump
                        .received(now, conn, Bytes::from_static(b"115 0 ha"));
                    self.drain()?;
                }
                self.by_conn.remove(&conn);
                self.gone(i);
                let now = self.now();
                self.pump.peer_closed(now, conn);
                self.drain()
            }
        }
    }

    /// Sends a message (sometimes with media) to `chat`.
    fn message(&mut self, i: usize, chat: u64) -> Result<(), Violation> {
        let token = self.next_token;
        self.next_token += 1;
        let name = self.clients[i].name.clone();
        self.messages.insert(token, (chat, name));
        self.clients[i].sending.insert(token, chat);
        let mut line = format!("115 {chat} t{token}%20from%20{}", self.clients[i].name);
        if self.rng.ratio(1, 3) {
            let len = self.rng.below(65) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| self.rng.below(256) as u8).collect();
            line.push(' ');
            for b in &bytes {
                line.push_str(&format!("%{b:02X}"));
            }
            self.media_sent.insert(token, bytes);
        }
        self.sending = Some(token);
        let sent = self.send(i, line.as_bytes(), Expect::Send { token });
        self.sending = None;
        sent
    }

    fn misbehave(&mut self, i: usize) -> Result<(), Violation> {
        self.report.misbehaved += 1;
        let logged_in = self.clients[i].logged_in;
        match self.rng.below(6) {
            0 => self.send(i, b"999 what", Expect::Unknown),
            1 => self.send(i, b"114 abc", Expect::Invalid),
            2 => self.send(i, b"110 \xFF\xFE pw", Expect::Invalid),
            3 => {
                let line = format!("121 {}", "x".repeat(300));
                self.send(i, line.as_bytes(), Expect::Invalid)
            }
            4 => self.send(i, b"115 1", Expect::Invalid),
            _ if logged_in => self.send(i, b"112 extra", Expect::Invalid),
            _ => self.send(i, b"118", Expect::Status(223)),
        }
    }

    /// Reads client `i`'s complete lines and checks each.
    fn read(&mut self, i: usize) -> Result<(), Violation> {
        while let Some(end) = self.clients[i].inbuf.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.clients[i].inbuf.drain(..end + 2).collect();
            let line = String::from_utf8(line[..end].to_vec()).map_err(|_| {
                Violation::new(
                    "opcode_lines_are_utf8",
                    format!("to {}", self.clients[i].name),
                )
            })?;
            if line.contains('\r') || line.contains('\n') {
                return Err(Violation::new("opcode_lines_are_well_formed", line));
            }
            self.on_line(i, &line)?;
        }
        Ok(())
    }

    fn on_line(&mut self, i: usize, line: &str) -> Result<(), Violation> {
        let bad =
            |why: &str| Violation::new("opcode_answers_match_requests", format!("{why}: {line:?}"));
        let fields: Vec<&str> = line.split(' ').collect();
        let op: u16 = fields[0].parse().map_err(|_| bad("no opcode"))?;
        let number = |k: usize| -> Result<u64, Violation> {
            let f = fields.get(k).ok_or_else(|| bad("missing field"))?;
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("not a number"));
            }
            f.parse().map_err(|_| bad("not a number"))
        };
        // Pushes may come between answers (but not inside a list, nor before an echo).
        if op == 220 || op == 233 {
            let in_list = self.clients[i].listing.is_some();
            if op == 233 {
                if fields.len() != 2 || in_list {
                    return Err(bad("a 233 out of place"));
                }
                return Ok(());
            }
            if !(4..=5).contains(&fields.len()) || in_list {
                return Err(bad("a 220 out of place"));
            }
            let chat = number(1)?;
            number(2)?;
            let media = if fields.len() == 5 {
                Some(number(4)?)
            } else {
                None
            };
            return self.on_message(i, chat, fields[3], media);
        }
        if self.clients[i].echo_due.is_some() {
            return Err(bad("no 220 echo after 219 400"));
        }
        if let Some(mut listing) = self.clients[i].listing {
            if let Some(begin) = listing.begin {
                if op != begin || fields.len() != 2 {
                    return Err(bad("a list without its count"));
                }
                listing.begin = None;
                listing.left = number(1)?;
                self.clients[i].listing = Some(listing);
                return Ok(());
            }
            if listing.left > 0 {
                if op != listing.element {
                    return Err(bad("a list is short"));
                }
                listing.left -= 1;
                if op == 215 {
                    let chat = number(1)?;
                    let me = fields.get(2).copied().unwrap_or_default();
                    let other = fields.get(3).copied().unwrap_or_default();
                    if me != self.clients[i].name {
                        return Err(bad("215 names the caller first"));
                    }
                    self.clients[i].chats.insert(chat, other.to_owned());
                }
                self.clients[i].listing = Some(listing);
                return Ok(());
            }
            if op != listing.end || fields.len() != 1 {
                return Err(bad("a list does not end"));
            }
            self.clients[i].listing = None;
            return Ok(());
        }
        let Some(expect) = self.clients[i].expect.pop_front() else {
            return Err(bad("an answer nobody asked for"));
        };
        let logged_in = self.clients[i].logged_in;
        let status = |k: usize| -> Result<u64, Violation> {
            let code = number(k)?;
            if !(400..=412).contains(&code) {
                return Err(bad("no such status"));
            }
            Ok(code)
        };
        match expect {
            Expect::Unknown if line == "210" => Ok(()),
            Expect::Invalid if line == "211" => Ok(()),
            Expect::Status(212) if op == 212 => {
                let code = status(1)?;
                let c = &mut self.clients[i];
                c.logging_in = false;
                if code == 400 {
                    c.logged_in = true;
                    c.chats.clear();
                }
                Ok(())
            }
            Expect::Status(222) if op == 222 => {
                let code = status(1)?;
                if code == 400 || code == 403 {
                    self.clients[i].registered = true;
                }
                Ok(())
            }
            Expect::Status(want) if op == want && fields.len() == 2 => {
                let code = status(1)?;
                if (code == 407) == logged_in {
                    return Err(bad("407 exactly when not logged in"));
                }
                if want == 213 && code == 400 {
                    self.clients[i].logged_in = false;
                }
                Ok(())
            }
            Expect::Send { token } if op == 219 && fields.len() == 2 => {
                let code = status(1)?;
                if (code == 407) == logged_in {
                    return Err(bad("407 exactly when not logged in"));
                }
                if code == 400 {
                    self.acked.insert(token);
                    self.report.acked += 1;
                    self.clients[i].echo_due = Some(token);
                } else {
                    self.refused.insert(token);
                }
                Ok(())
            }
            Expect::ChatList if op == 214 && fields.len() == 2 => {
                let left = number(1)?;
                self.clients[i].chats.clear();
                self.clients[i].listing = Some(Listing {
                    begin: None,
                    element: 215,
                    left,
                    end: 216,
                });
                Ok(())
            }
            Expect::ChatList if line == "211" && !logged_in => Ok(()),
            Expect::OwnContacts | Expect::Contacts if fields.len() == 2 => {
                let (answer, begin, element, end) = match expect {
                    Expect::OwnContacts => (223, 224, 225, 226),
                    _ => (228, 229, 230, 231),
                };
                if op != answer {
                    return Err(bad("a list answered out of turn"));
                }
                let code = status(1)?;
                if (code == 407) == logged_in || (code != 400 && code != 407) {
                    return Err(bad("a list's status"));
                }
                if code == 400 {
                    self.clients[i].listing = Some(Listing {
                        begin: Some(begin),
                        element,
                        left: 0,
                        end,
                    });
                }
                Ok(())
            }
            Expect::Media { id } if op == 227 => {
                let code = status(1)?;
                if code == 400 {
                    let bytes = fields.get(2).ok_or_else(|| bad("227 400 without media"))?;
                    let got = decode(bytes);
                    let token = self.media_ids.get(&id);
                    let sent = token.and_then(|t| self.media_sent.get(t));
                    if sent.is_some_and(|sent| *sent != got) {
                        return Err(Violation::new(
                            "opcode_media_comes_back_as_sent",
                            format!("media {id}: {got:?} vs {sent:?}"),
                        ));
                    }
                    self.report.media_fetched += 1;
                }
                Ok(())
            }
            other => Err(bad(&format!("expected {other:?}"))),
        }
    }

    /// A `220` for client `i`.
    fn on_message(
        &mut self,
        i: usize,
        chat: u64,
        text: &str,
        media: Option<u64>,
    ) -> Result<(), Violation> {
        let name = self.clients[i].name.clone();
        let token: Option<u64> = text
            .strip_prefix('t')
            .and_then(|t| t.split('%').next())
            .and_then(|t| t.parse().ok());
        let Some(token) = token else {
            return Err(Violation::new(
                "opcode_messages_arrive_intact",
                text.to_owned(),
            ));
        };
        if let Some(media) = media {
            self.media_ids.insert(media, token);
            self.clients[i].media_seen.push(media);
        }
        if let Some(expected) = self.clients[i].echo_due.take() {
            if expected != token {
                return Err(Violation::new(
                    "opcode_answers_match_requests",
                    format!("{name}: the echo of t{expected} is t{token}"),
                ));
            }
            return Ok(());
        }
        let members = self.members.get(&chat);
        if members.is_some_and(|m| !m.contains(&name)) {
            return Err(Violation::new(
                "opcode_messages_reach_members_only",
                format!("t{token} in chat {chat} reached {name}"),
            ));
        }
        if self.messages.get(&token).map(|(c, _)| *c) != Some(chat) {
            return Err(Violation::new(
                "opcode_messages_arrive_intact",
                format!("t{token} arrived in chat {chat}"),
            ));
        }
        self.live.remove(&(name.clone(), token));
        *self.delivered.entry((name, token)).or_default() += 1;
        self.report.delivered += 1;
        Ok(())
    }

    /// Everything in flight finishes; then every client logs in once more, and what
    /// was acknowledged must have arrived, once.
    fn finish(&mut self) -> Result<(), Violation> {
        for _ in 0..10_000 {
            if self.in_flight.is_none() && self.effects.is_empty() {
                break;
            }
            self.step(false)?;
        }
        for i in 0..self.clients.len() {
            if let Some(conn) = self.clients[i].conn.take() {
                self.by_conn.remove(&conn);
                self.gone(i);
                let now = self.now();
                self.pump.peer_closed(now, conn);
                self.drain()?;
            }
        }
        for i in 0..self.clients.len() {
            if !self.clients[i].registered {
                continue;
            }
            self.connect(i)?;
            self.login(i)?;
            for _ in 0..10_000 {
                if self.clients[i].expect.is_empty() {
                    break;
                }
                self.step(false)?;
            }
        }
        for _ in 0..10_000 {
            if self.in_flight.is_none() && self.effects.is_empty() {
                break;
            }
            self.step(false)?;
        }
        for (token, (chat, from)) in &self.messages {
            let Some(members) = self.members.get(chat) else {
                continue;
            };
            for to in members.iter().filter(|m| *m != from) {
                let got = self
                    .delivered
                    .get(&(to.clone(), *token))
                    .copied()
                    .unwrap_or(0);
                if got > 1 || (got == 1 && self.refused.contains(token)) {
                    return Err(Violation::new(
                        "opcode_messages_arrive_once",
                        format!("t{token} from {from} reached {to} {got} times"),
                    ));
                }
                let lost = self.lost_with_conn.contains(&(to.clone(), *token));
                if got == 0 && self.acked.contains(token) && !lost {
                    return Err(Violation::new(
                        "opcode_acknowledged_messages_arrive",
                        format!("t{token} from {from} in chat {chat} never reached {to}"),
                    ));
                }
            }
        }
        Ok(())
    }
}
