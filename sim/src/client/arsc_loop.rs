//! Virtual arsc clients, and a run of them against the real core with this protocol's
//! invariants.
//!
//! The clients follow randomised valid scripts (connect with the seed's padding, post,
//! `/me`, `/msg` to anyone, `/msgops`, `/room`, `/kick` as operators, `userlist`, posts
//! on a fresh connection as the original clients made them, disconnects) and misbehave
//! sometimes (junk between requests, malformed XML, unknown request types and sids,
//! over-long requests, a connection cut mid-request). Bytes reach the server in random
//! pieces, connections in random interleavings; commits and password checks finish at
//! random later steps.
//!
//! The run drives a [`Pump`] itself rather than the main simulator's loop, so it has no
//! crashes or store faults; its parser of the server's lines is written here,
//! independently of proto's codec. arsc clients also run in the main world
//! ([`ArscClient`](crate::client::arsc::ArscClient)); this loop stays for operators'
//! kicks and `/msgops`, guests and posts on fresh connections, which those do not do.
//! Invariants, checked as lines arrive and at the end:
//!
//! - no whisper reaches a third user: the token of a `/msg` appears only at its recipient
//!   (as a `whisper` from the sender) and at its sender (the `System` confirmation);
//! - a room's members all see its posts in one order: any two clients saw the posts
//!   they both saw in the same order;
//! - every post answered `ok` reaches its poster, whose session is alive at the end;
//! - every request is answered, exactly once, on the connection it came on.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use bytes::Bytes;
use switchboard_proto::{
    Account, Action, Change, Config, ConnId, Effect, EffectResult, Instant, Now, PasswordHash,
    Peer, Protocol, Pump, Server, State, UserName,
};

use super::arsc::{parse_line, Line};
use crate::choices::{Choices, SimRng};

/// Unix time of the run's origin.
const WALL_ORIGIN_MS: u64 = 1_700_000_000_000;
/// The rooms clients choose among.
const ROOMS: [&str; 3] = ["lounge", "hall", "Free For All"];
/// The frame limit the run's server has, so over-long requests are cheap to make.
const MAX_REQUEST: usize = 1024;

/// What a run of arsc clients is made of.
#[derive(Clone, Copy, Debug)]
pub struct ArscOptions {
    /// Virtual clients (the first two log in to operator accounts).
    pub clients: usize,
    /// Steps of the run.
    pub steps: usize,
    /// Sets a planted bug in the server's config (`planted-bugs`).
    pub plant: Option<fn(&mut Config)>,
}

impl Default for ArscOptions {
    fn default() -> Self {
        ArscOptions {
            clients: 6,
            steps: 3000,
            plant: None,
        }
    }
}

/// What a clean run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArscReport {
    /// Sessions opened.
    pub connects: u64,
    /// Posts answered `ok` and seen by their posters.
    pub posts: u64,
    /// Whispers delivered to their recipients.
    pub whispers: u64,
    /// Kicks that closed their target.
    pub kicks: u64,
    /// Misbehaving requests sent.
    pub misbehaved: u64,
    /// A hash of every byte the server sent, in order (two runs of a seed agree).
    pub hash: u64,
}

/// A client's state.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State_ {
    Offline,
    /// A connect sent on `conn`.
    Connecting {
        conn: ConnId,
    },
    Online {
        conn: ConnId,
        sid: String,
    },
}

#[derive(Debug)]
struct Client {
    name: String,
    password: Option<&'static str>,
    operator: bool,
    state: State_,
    /// Posts of this client answered `ok` (the answer comes before the post itself, on
    /// whichever connection), not yet seen.
    unseen_posts: BTreeSet<u64>,
    /// Room post tokens seen, in order.
    seen: Vec<u64>,
    /// Whether the current session was kicked (its close is expected).
    kicked: bool,
}

/// A connection as the run sees it.
#[derive(Debug)]
struct Conn {
    client: usize,
    /// Bytes written by the client, not yet delivered, in pieces.
    up: VecDeque<Vec<u8>>,
    /// Bytes the server sent, not yet a whole line.
    down: Vec<u8>,
    /// Requests written and not yet answered, with the post token they carry.
    asked: VecDeque<Asked>,
    /// The client closes it once its requests are answered (a fresh post connection).
    close_when_answered: bool,
    closed: bool,
}

/// A request awaiting its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Asked {
    Connect,
    /// A post; `Some(token)` for a room post whose ok means it was said.
    Post(Option<u64>),
    Userlist,
    /// Misbehaviour: an error of its type, or a system message when none can be told.
    Error(Option<&'static str>),
}

/// Whisper token -> (sender, recipient as named).
type Whispers = BTreeMap<u64, (usize, String)>;

/// The run.
struct Run {
    rng: SimRng,
    pump: Pump,
    now: u64,
    clients: Vec<Client>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: u64,
    next_token: u64,
    whispers: Whispers,
    /// Post tokens and who posted them.
    posts: BTreeMap<u64, usize>,
    /// Commits asked for and effects to run, finished at a later step.
    committing: bool,
    effects: VecDeque<(switchboard_proto::EffectId, Effect)>,
    report: ArscReport,
    /// Print every write, delivery and answer to stderr (`ARSC_TRACE=1`), to read a
    /// failing seed.
    trace: bool,
    /// An invariant broken where it could not be returned at once.
    failure: Option<String>,
}

/// Runs `options.clients` arsc clients for `options.steps` steps from `seed`; the report,
/// or the first invariant broken.
///
/// # Errors
/// A description of the broken invariant, with the step.
pub fn run_arsc(seed: u64, options: ArscOptions) -> Result<ArscReport, String> {
    let mut config = Config {
        seed: switchboard_proto::Seed::number(seed),
        ..Config::default()
    };
    config.arsc.max_request_bytes = MAX_REQUEST;
    // The clients post several times a second, faster than the message rate lets a
    // person; that limit has its own tests (proto's arsc tests), so it is out of the way.
    let unlimited = switchboard_proto::RateLimit {
        per_minute: 1_000_000,
        burst: 1_000_000,
    };
    config.limits.message_per_conn = unlimited;
    config.limits.message_per_ip = unlimited;
    if let Some(plant) = options.plant {
        plant(&mut config);
    }
    let mut state = State::default();
    let accounts = [("Oper", 2u8), ("mod", 1), ("reg", 0)];
    for (name, level) in accounts {
        state.apply(&Change::AccountCreated(Account {
            name: UserName::parse(name).map_err(|e| e.to_string())?,
            password: PasswordHash(format!("sim${name}pw")),
            ims_password: PasswordHash("-".into()),
            email: None,
            gender: None,
            level,
            banned: false,
            created_ms: 0,
        }));
    }
    let clients = (0..options.clients.max(2))
        .map(|i| {
            let (name, password, operator) = match i {
                0 => ("Oper".to_owned(), Some("Operpw"), true),
                1 => ("mod".to_owned(), Some("modpw"), true),
                2 => ("reg".to_owned(), Some("regpw"), false),
                i => (format!("g{i}"), None, false),
            };
            Client {
                name,
                password,
                operator,
                state: State_::Offline,
                unseen_posts: BTreeSet::new(),
                seen: Vec::new(),
                kicked: false,
            }
        })
        .collect();
    let mut run = Run {
        rng: SimRng::new(seed ^ 0xa25c),
        pump: Pump::new(Server::new(config, state)),
        now: 0,
        clients,
        conns: BTreeMap::new(),
        next_conn: 1,
        next_token: 1,
        whispers: BTreeMap::new(),
        posts: BTreeMap::new(),
        committing: false,
        effects: VecDeque::new(),
        report: ArscReport::default(),
        trace: std::env::var_os("ARSC_TRACE").is_some(),
        failure: None,
    };
    for step in 0..options.steps {
        run.step()
            .map_err(|e| format!("seed {seed} step {step}: {e}"))?;
    }
    run.quiesce()
        .map_err(|e| format!("seed {seed} at the end: {e}"))?;
    run.check_order().map_err(|e| format!("seed {seed}: {e}"))?;
    run.check_posts_seen()
        .map_err(|e| format!("seed {seed}: {e}"))?;
    Ok(run.report)
}

impl Run {
    fn clock(&self) -> Now {
        Now::at(Instant::from_millis(self.now), WALL_ORIGIN_MS)
    }

    fn step(&mut self) -> Result<(), String> {
        self.now += self.rng.below(50);
        let now = self.clock();
        self.pump.handle_timeout(now);
        self.carry_out()?;
        match self.rng.weighted(&[4, 6, 1, 1]) {
            0 => {
                let i = self.rng.below(self.clients.len() as u64) as usize;
                self.act(i);
                if let Some(failure) = self.failure.take() {
                    return Err(failure);
                }
            }
            1 => self.deliver_one()?,
            2 if self.committing => {
                self.committing = false;
                self.pump.commit_finished(now);
            }
            _ => {
                if let Some((id, effect)) = self.effects.pop_front() {
                    let result = run_effect(&effect);
                    self.pump.effect_done(now, id, result);
                }
            }
        }
        self.carry_out()
    }

    /// Delivers everything, finishes every commit and check, until nothing moves.
    fn quiesce(&mut self) -> Result<(), String> {
        for _ in 0..100_000 {
            let now = self.clock();
            let pending = self.conns.values().any(|c| !c.up.is_empty());
            if pending {
                self.deliver_one()?;
            } else if self.committing {
                self.committing = false;
                self.pump.commit_finished(now);
            } else if let Some((id, effect)) = self.effects.pop_front() {
                self.pump.effect_done(now, id, run_effect(&effect));
            } else {
                break;
            }
            self.carry_out()?;
        }
        for (id, conn) in &self.conns {
            if !conn.closed && !conn.asked.is_empty() {
                return Err(format!("{id} has unanswered requests: {:?}", conn.asked));
            }
        }
        Ok(())
    }

    /// Carries out the pump's actions: bytes to clients, closes, commits, effects.
    fn carry_out(&mut self) -> Result<(), String> {
        while let Some(action) = self.pump.poll_action() {
            let now = self.clock();
            match action {
                Action::Transmit { conn, bytes } => {
                    for b in bytes.iter() {
                        self.report.hash =
                            (self.report.hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
                    }
                    self.pump.written(now, conn, bytes.len());
                    self.heard(conn, &bytes)?;
                }
                Action::Close { conn, .. } => self.server_closed(conn),
                Action::Commit(_) => self.committing = true,
                Action::Effect { id, effect } => self.effects.push_back((id, effect)),
                Action::Connect { .. } => return Err("arsc dials nothing".into()),
            }
        }
        Ok(())
    }

    /// Opens a connection for client `i`.
    fn open(&mut self, i: usize, close_when_answered: bool) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(
            id,
            Conn {
                client: i,
                up: VecDeque::new(),
                down: Vec::new(),
                asked: VecDeque::new(),
                close_when_answered,
                closed: false,
            },
        );
        let peer = Peer::Net(core::net::SocketAddr::from((
            [10, 0, 0, (i % 200) as u8 + 1],
            40000,
        )));
        let now = self.clock();
        self.pump.accepted(now, id, Protocol::Arsc, peer);
        id
    }

    /// Queues `bytes` on `conn` in random pieces, as `asked`.
    fn write(&mut self, conn: ConnId, bytes: &[u8], asked: Option<Asked>) {
        let pieces = self.rng.below(3) + 1;
        let mut cuts: Vec<usize> = (1..pieces)
            .map(|_| self.rng.below(bytes.len() as u64 + 1) as usize)
            .collect();
        cuts.sort_unstable();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut from = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            if cut > from {
                c.up.push_back(bytes[from..cut].to_vec());
                from = cut;
            }
        }
        if self.trace {
            eprintln!(
                "{conn} write {:?} {asked:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        if let Some(asked) = asked {
            c.asked.push_back(asked);
        }
    }

    /// Delivers the next piece of a random connection with bytes waiting.
    fn deliver_one(&mut self) -> Result<(), String> {
        let waiting: Vec<ConnId> = (self.conns.iter())
            .filter(|(_, c)| !c.up.is_empty() && !c.closed)
            .map(|(id, _)| *id)
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        let id = *self.rng.pick(&waiting);
        let Some(piece) = self.conns.get_mut(&id).and_then(|c| c.up.pop_front()) else {
            return Ok(());
        };
        let now = self.clock();
        if self.trace {
            eprintln!("{id} -> {:?}", String::from_utf8_lossy(&piece));
        }
        self.pump.received(now, id, Bytes::from(piece));
        self.carry_out()
    }

    /// The server closed `conn`.
    fn server_closed(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if self.trace {
            eprintln!("{id} closed");
        }
        conn.closed = true;
        conn.up.clear();
        conn.asked.clear();
        let i = conn.client;
        let client = &mut self.clients[i];
        let home = match &client.state {
            State_::Online { conn, .. } | State_::Connecting { conn } => *conn == id,
            State_::Offline => false,
        };
        if home {
            client.state = State_::Offline;
            client.unseen_posts.clear();
            client.kicked = false;
        }
    }

    /// The client closes `conn` (its session ends if it is its home).
    fn close(&mut self, id: ConnId) {
        let now = self.clock();
        self.pump.peer_closed(now, id);
        self.server_closed(id);
    }

    /// Client `i` does something its state allows, now and then something wrong.
    fn act(&mut self, i: usize) {
        if self.clients[i].kicked {
            return;
        }
        match self.clients[i].state.clone() {
            State_::Offline => self.connect(i),
            State_::Connecting { .. } => {}
            State_::Online { conn, sid } => self.online(i, conn, &sid),
        }
    }

    fn connect(&mut self, i: usize) {
        let conn = self.open(i, false);
        let client = &self.clients[i];
        let room = *self.rng.pick(&ROOMS);
        let password = client
            .password
            .map_or(String::new(), |p| format!("<password>{p}</password>"));
        let request = format!(
            "<arscrequest><type>connect</type><user>{}</user>{password}<room>{room}</room><language>english</language><template>xml</template></arscrequest>",
            client.name
        );
        let junk = self.junk();
        let padding = "dummy".repeat(self.rng.below(30) as usize);
        self.write(
            conn,
            format!("{junk}{request}{padding}").as_bytes(),
            Some(Asked::Connect),
        );
        self.clients[i].state = State_::Connecting { conn };
    }

    fn online(&mut self, i: usize, home: ConnId, sid: &str) {
        let token = self.next_token;
        self.next_token += 1;
        let others: Vec<String> = (self.clients.iter().enumerate())
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| c.name.clone())
            .collect();
        let choice = self.rng.weighted(&[10, 3, 5, 2, 2, 2, 2, 3, 1, 2]);
        let (content, asked) = match choice {
            0 => (format!("p{token} says &amp; hi"), Asked::Post(Some(token))),
            1 => (format!("/me p{token}"), Asked::Post(Some(token))),
            2 => {
                let to = self.rng.pick(&others).clone();
                self.whispers.insert(token, (i, to.clone()));
                (format!("/msg {to} w{token}"), Asked::Post(None))
            }
            3 => (format!("/msgops o{token}"), Asked::Post(None)),
            4 => {
                let room = *self.rng.pick(&ROOMS);
                (format!("/room {room}"), Asked::Post(None))
            }
            5 if self.clients[i].operator => {
                let target = self.rng.pick(&others).clone();
                (format!("/kick {target}"), Asked::Post(None))
            }
            6 => {
                let request =
                    format!("<arscrequest><type>userlist</type><sid>{sid}</sid></arscrequest>");
                let junk = self.junk();
                self.write(
                    home,
                    format!("{junk}{request}").as_bytes(),
                    Some(Asked::Userlist),
                );
                return;
            }
            7 => return self.misbehave(i, home, sid),
            8 => {
                // The session ends: sometimes cut mid-request.
                if self.rng.ratio(1, 2) {
                    self.write(home, b"<arscrequest><type>post</type><sid>", None);
                    self.report.misbehaved += 1;
                }
                self.flush(home);
                // What it answered meanwhile is read before the client goes.
                if let Err(e) = self.carry_out() {
                    self.failure.get_or_insert(e);
                }
                return self.close(home);
            }
            _ => (format!("/dance d{token}"), Asked::Post(None)),
        };
        if let Asked::Post(Some(token)) = asked {
            self.posts.insert(token, i);
        }
        let request = format!(
            "<arscrequest><type>post</type><sid>{sid}</sid><content>{content}</content></arscrequest>"
        );
        // Now and then on a fresh connection, as the original clients posted.
        let conn = if self.rng.ratio(1, 4) {
            self.open(i, true)
        } else {
            home
        };
        let junk = self.junk();
        self.write(conn, format!("{junk}{request}").as_bytes(), Some(asked));
    }

    /// Delivers what waits on `conn` (before the client closes it).
    fn flush(&mut self, id: ConnId) {
        let now = self.clock();
        while let Some(piece) = self.conns.get_mut(&id).and_then(|c| c.up.pop_front()) {
            self.pump.received(now, id, Bytes::from(piece));
        }
    }

    /// Padding or junk between requests, sometimes.
    fn junk(&mut self) -> String {
        match self.rng.below(6) {
            0 => "dummydummy".into(),
            1 => "\0\r\n".into(),
            2 => "<b>junk</b> <arsc ".into(),
            _ => String::new(),
        }
    }

    fn misbehave(&mut self, i: usize, home: ConnId, sid: &str) {
        self.report.misbehaved += 1;
        let _ = i;
        let (bytes, asked) = match self.rng.below(5) {
            0 => (
                "<arscrequest><type>post</type><content>x</wrong></arscrequest>".to_owned(),
                Asked::Error(Some("post")),
            ),
            1 => (
                "<arscrequest><content>a < b</content></arscrequest>".to_owned(),
                Asked::Error(None),
            ),
            2 => (
                format!("<arscrequest><type>logout</type><sid>{sid}</sid></arscrequest>"),
                Asked::Error(Some("logout")),
            ),
            3 => (
                "<arscrequest><type>post</type><sid>00ff</sid><content>x</content></arscrequest>"
                    .to_owned(),
                Asked::Error(Some("post")),
            ),
            _ => (
                format!(
                    "<arscrequest><type>userlist</type><sid>{sid}</sid><content>{}</content></arscrequest>",
                    "x".repeat(MAX_REQUEST)
                ),
                Asked::Error(Some("userlist")),
            ),
        };
        self.write(home, bytes.as_bytes(), Some(asked));
    }

    /// Bytes from the server on `conn`: whole lines are checked and acted on.
    fn heard(&mut self, id: ConnId, bytes: &[u8]) -> Result<(), String> {
        let Some(conn) = self.conns.get_mut(&id) else {
            return Err(format!("bytes on unknown {id}"));
        };
        // The client closed it: what still comes is not read.
        if conn.closed {
            return Ok(());
        }
        if self.trace {
            eprintln!("{id} <- {:?}", String::from_utf8_lossy(bytes));
        }
        conn.down.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(at) = conn.down.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = conn.down.drain(..=at).collect();
            lines.push(String::from_utf8(line).map_err(|_| format!("{id}: not UTF-8"))?);
        }
        for line in lines {
            let text = line.trim_end_matches('\n');
            let parsed =
                parse_line(text).ok_or_else(|| format!("{id}: unreadable line {text:?}"))?;
            self.on_line(id, parsed)?;
        }
        Ok(())
    }

    fn on_line(&mut self, id: ConnId, line: Line) -> Result<(), String> {
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(());
        };
        let i = conn.client;
        match line {
            Line::Respond {
                kind,
                ok,
                sid,
                error,
            } => {
                if self.trace {
                    eprintln!("{id} asked {:?}", conn.asked);
                }
                let asked = conn
                    .asked
                    .pop_front()
                    .ok_or_else(|| format!("{id}: an answer to nothing: {kind}"))?;
                let close = conn.close_when_answered && conn.asked.is_empty();
                self.answered(i, id, asked, &kind, ok, sid, error)?;
                if close {
                    self.close(id);
                }
            }
            Line::Message {
                kind,
                sender,
                content,
            } => {
                // A system message answers a request whose type could not be told.
                if kind == "system"
                    && (content == "Malformed request" || content == "Request too long")
                {
                    let asked = conn.asked.pop_front();
                    if asked != Some(Asked::Error(None)) {
                        return Err(format!("{id}: {content} answers {asked:?}"));
                    }
                    return Ok(());
                }
                self.message(i, id, &kind, &sender, &content)?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn answered(
        &mut self,
        i: usize,
        id: ConnId,
        asked: Asked,
        kind: &str,
        ok: bool,
        sid: Option<String>,
        error: Option<String>,
    ) -> Result<(), String> {
        let expected = match &asked {
            Asked::Connect => "connect",
            Asked::Post(_) => "post",
            Asked::Userlist => "userlist",
            Asked::Error(Some(kind)) => kind,
            Asked::Error(None) => return Err(format!("{id}: {kind} answers a typeless request")),
        };
        if kind != expected {
            return Err(format!("{id}: a {kind} answer to {asked:?}"));
        }
        match asked {
            Asked::Connect => {
                let client = &mut self.clients[i];
                match (ok, sid) {
                    (true, Some(sid)) => {
                        if sid.len() != 32 || !sid.bytes().all(|b| b.is_ascii_hexdigit()) {
                            return Err(format!("{id}: sid {sid} is not 32 hex"));
                        }
                        client.state = State_::Online { conn: id, sid };
                        self.report.connects += 1;
                    }
                    // The name may still be held by a session whose close the server has
                    // not read yet; try again later.
                    (false, _)
                        if error.as_deref()
                            == Some("A user with this name is already logged in!") =>
                    {
                        self.close(id);
                    }
                    other => {
                        return Err(format!(
                            "{id}: connect of {} answered {other:?} {error:?}",
                            client.name
                        ))
                    }
                }
            }
            Asked::Post(token) => match (ok, token) {
                (true, Some(token)) => {
                    self.clients[i].unseen_posts.insert(token);
                }
                (true, None) => {}
                // The session ended meanwhile (kicked, or closed): the sid is forgotten.
                (false, _) if error.as_deref() == Some("This session is not known") => {}
                (false, _) => return Err(format!("{id}: post refused: {error:?}")),
            },
            Asked::Userlist => {
                if !ok && error.as_deref() != Some("This session is not known") {
                    return Err(format!("{id}: userlist refused: {error:?}"));
                }
            }
            Asked::Error(_) => {
                if ok {
                    return Err(format!("{id}: misbehaviour answered ok"));
                }
            }
        }
        Ok(())
    }

    /// A pushed message for client `i` on `id`.
    fn message(
        &mut self,
        i: usize,
        id: ConnId,
        kind: &str,
        sender: &str,
        content: &str,
    ) -> Result<(), String> {
        let me = self.clients[i].name.clone();
        let home = matches!(&self.clients[i].state, State_::Online { conn, .. } | State_::Connecting { conn } if *conn == id);
        if !home {
            return Err(format!(
                "{id}: {me} got a message on a connection that did not connect: {content}"
            ));
        }
        // Whisper tokens: only at the recipient, and the confirmation at the sender.
        for word in content.split(|c: char| !c.is_ascii_alphanumeric()) {
            let Some(token) = word.strip_prefix('w').and_then(|t| t.parse::<u64>().ok()) else {
                continue;
            };
            let Some((from, to)) = self.whispers.get(&token).cloned() else {
                continue;
            };
            let sender_name = &self.clients[from].name;
            let to_me = to.eq_ignore_ascii_case(&me) && kind == "whisper" && sender == sender_name;
            let confirmation = i == from
                && kind == "whisper"
                && sender == "System"
                && content.starts_with("You whispered to ");
            if !(to_me || confirmation) {
                return Err(format!(
                    "whisper w{token} from {sender_name} to {to} reached {me} as {kind} from {sender}: {content}"
                ));
            }
            if to_me {
                self.report.whispers += 1;
            }
        }
        match kind {
            "normal" | "me" => {
                let token = content
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .find_map(|w| w.strip_prefix('p').and_then(|t| t.parse::<u64>().ok()));
                if let Some(token) = token {
                    if !self.posts.contains_key(&token) {
                        return Err(format!("{me} got a post nobody made: {content}"));
                    }
                    let client = &mut self.clients[i];
                    if client.seen.contains(&token) {
                        return Err(format!("{me} got post p{token} twice"));
                    }
                    client.seen.push(token);
                    if client.unseen_posts.remove(&token) {
                        self.report.posts += 1;
                    }
                }
            }
            "whisper" if sender == "System" && content == "You were kicked out of the chat!" => {
                self.clients[i].kicked = true;
                self.report.kicks += 1;
            }
            "whisper" | "whisperops" | "system" => {}
            other => return Err(format!("{me}: unknown message type {other}")),
        }
        Ok(())
    }

    /// Any two clients saw the posts both saw in the same order.
    fn check_order(&self) -> Result<(), String> {
        let index: Vec<BTreeMap<u64, usize>> = (self.clients.iter())
            .map(|c| c.seen.iter().enumerate().map(|(n, t)| (*t, n)).collect())
            .collect();
        for (a, ca) in self.clients.iter().enumerate() {
            for (b, cb) in self.clients.iter().enumerate().skip(a + 1) {
                let mut last = None;
                for token in &ca.seen {
                    let Some(&at) = index[b].get(token) else {
                        continue;
                    };
                    if last.is_some_and(|l| at < l) {
                        let mut text = String::new();
                        let _ = write!(
                            text,
                            "{} and {} saw posts in different orders (p{token})",
                            ca.name, cb.name
                        );
                        return Err(text);
                    }
                    last = Some(at);
                }
            }
        }
        Ok(())
    }

    /// Every post answered ok reached its poster, if its session is alive.
    fn check_posts_seen(&self) -> Result<(), String> {
        for client in &self.clients {
            if !matches!(client.state, State_::Online { .. }) || client.kicked {
                continue;
            }
            if let Some(token) = client.unseen_posts.first() {
                return Err(format!(
                    "{}'s post p{token} was answered ok but never reached it",
                    client.name
                ));
            }
        }
        Ok(())
    }
}

/// The run's password check: an account's password is its name and `pw`.
fn run_effect(effect: &Effect) -> EffectResult {
    match effect {
        Effect::VerifyPassword { hash, password } => {
            EffectResult::Verified(hash.0 == format!("sim${}", password.0))
        }
        // No account is made and no media sent in these runs.
        Effect::HashPassword { .. } | Effect::ReadMedia { .. } => EffectResult::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_parser_reads_both_kinds() {
        assert_eq!(
            parse_line("<arscmessage><type>me</type><sendtime>01:02</sendtime><sender>a</sender><content>x &amp; y</content></arscmessage>"),
            Some(Line::Message {
                kind: "me".into(),
                sender: "a".into(),
                content: "x & y".into()
            })
        );
        assert_eq!(
            parse_line("<arscmessage><type>me</type><sendtime>1700000000</sendtime><sender>a</sender><content>x</content></arscmessage>"),
            None,
            "sendtime is HH:MM"
        );
    }

    #[test]
    fn the_order_check_catches_two_members_disagreeing() {
        let client = |name: &str, seen: Vec<u64>| Client {
            name: name.into(),
            password: None,
            operator: false,
            state: State_::Offline,
            unseen_posts: BTreeSet::new(),
            seen,
            kicked: false,
        };
        let mut run = Run {
            rng: SimRng::new(1),
            pump: Pump::new(Server::new(Config::default(), State::default())),
            now: 0,
            clients: vec![client("a", vec![1, 2, 3]), client("b", vec![1, 3])],
            conns: BTreeMap::new(),
            next_conn: 1,
            next_token: 1,
            whispers: BTreeMap::new(),
            posts: BTreeMap::new(),
            committing: false,
            effects: VecDeque::new(),
            report: ArscReport::default(),
            trace: false,
            failure: None,
        };
        assert_eq!(run.check_order(), Ok(()));
        run.clients[1].seen = vec![3, 2, 1];
        assert!(run.check_order().is_err());
    }
}
