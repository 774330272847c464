//! The virtual network and the clients at its ends: connections opened, chunks carried
//! each way after their delays, written bytes reported, closes and resets, and what
//! clients ask for carried out.

use core::net::SocketAddr;

use bytes::Bytes;
use switchboard_proto::{ConnId, Input, Peer, Protocol};

use super::{fail_into, ms, Ev, Phase, Sim};
use crate::choices::{ChoiceSource, Choices};
use crate::client::ims::{Do, Seen, ALIVE_MS};
use crate::client::{Act, Heard, Sent};
use crate::net::Owner;
use crate::oracle::check;
use crate::oracle::ledger::Fate;
use crate::report::Violation;
use crate::trace::Record;

impl<S: ChoiceSource> Sim<S> {
    pub(super) fn schedule_up(&mut self, id: ConnId) {
        let delay = self.delay();
        let Some(c) = self.net.get_mut(id) else {
            return;
        };
        if c.up_scheduled || !c.accepted {
            return;
        }
        c.up_scheduled = true;
        let at = (self.now + ms(delay)).max(c.hold_until);
        self.queue.push(at, Ev::Up(id));
    }

    pub(super) fn schedule_down(&mut self, id: ConnId) {
        let delay = self.delay();
        let Some(c) = self.net.get_mut(id) else {
            return;
        };
        if c.down_scheduled || !c.client_open || !c.reading || c.cut {
            return;
        }
        c.down_scheduled = true;
        let at = (self.now + ms(delay)).max(c.hold_until);
        self.queue.push(at, Ev::Down(id));
    }

    pub(super) fn chunk(&mut self, pending: u64) -> u64 {
        if pending > 1 && self.net_rng.ratio(self.opts.split_per_mille, 1000) {
            1 + self.net_rng.below(pending)
        } else {
            pending
        }
    }

    pub(super) fn accept(&mut self, id: ConnId) {
        let Some(c) = self.net.get_mut(id) else {
            return;
        };
        if c.accepted || !c.client_open && c.up.is_empty() && !c.up_fin {
            return;
        }
        if self.server.is_none() {
            let at = self.now + ms(self.delay());
            self.queue.push(at, Ev::Refused(id));
            return;
        }
        c.accepted = true;
        c.server_open = true;
        self.oracle.accepted(c);
        c.boot = self.boot;
        let peer = match c.ip {
            Some(ip) => Peer::Net(SocketAddr::new(ip, c.port)),
            None => Peer::Local,
        };
        let protocol = match c.owner {
            Owner::Client(_) => Protocol::Ws2017,
            Owner::Admin => Protocol::Admin,
            Owner::Login(_, protocol) => protocol,
        };
        c.last_up = self.now;
        let pending = !c.up.is_empty() || c.up_fin;
        let established = c.client_open;
        self.server_open += 1;
        self.counters.accepted += 1;
        if established {
            self.net.establish(id);
        }
        self.feed(Input::Accepted {
            conn: id,
            protocol,
            peer,
        });
        if pending {
            self.schedule_up(id);
        }
    }

    pub(super) fn up(&mut self, id: ConnId) {
        let (now, boot) = (self.now, self.boot);
        let Some(c) = self.net.get_mut(id) else {
            return;
        };
        c.up_scheduled = false;
        if !c.server_open || c.boot != boot || c.cut {
            c.drop_up();
            return;
        }
        if now < c.hold_until {
            c.up_scheduled = true;
            let at = c.hold_until;
            self.queue.push(at, Ev::Up(id));
            return;
        }
        if !c.up.is_empty() {
            let len = c.up.len() as u64;
            let n = self.chunk(len);
            let Some(c) = self.net.get_mut(id) else {
                return;
            };
            let bytes = if n == len {
                Bytes::from(std::mem::take(&mut c.up))
            } else {
                let head = Bytes::copy_from_slice(&c.up[..n as usize]);
                c.up.drain(..n as usize);
                head
            };
            let more = !c.up.is_empty() || c.up_fin;
            // A `cpong` the server now reads answers its pings.
            // (On an ims connection: where each document ends; the server has it now.)
            c.up_delivered += n;
            while c.pongs.front().is_some_and(|&end| end <= c.up_delivered) {
                c.pongs.pop_front();
                c.o.ping_since = None;
                c.last_up = now;
            }
            self.feed(Input::Received { conn: id, bytes });
            if more {
                self.schedule_up(id);
            }
        } else if c.up_fin {
            c.up_fin = false;
            self.peer_closed(id);
        }
    }

    pub(super) fn peer_closed(&mut self, id: ConnId) {
        if !self.net.get(id).is_some_and(|c| c.server_open) {
            return;
        }
        self.forget(id);
        // The pump drops what its gate held for the connection.
        self.net.unestablish(id);
        self.feed(Input::PeerClosed { conn: id });
        self.net.retire(id);
    }

    pub(super) fn server_reset(&mut self, id: ConnId) {
        let boot = self.boot;
        let Some(c) = self.net.get_mut(id) else {
            return;
        };
        c.drop_up();
        if c.server_open && c.boot == boot {
            self.peer_closed(id);
        }
    }

    pub(super) fn down(&mut self, id: ConnId) {
        let now = self.now;
        let Some(c) = self.net.get_mut(id) else {
            return;
        };
        c.down_scheduled = false;
        if !c.client_open || !c.reading || c.cut {
            return;
        }
        if now < c.hold_until {
            c.down_scheduled = true;
            let at = c.hold_until;
            self.queue.push(at, Ev::Down(id));
            return;
        }
        let pending = c.released - c.delivered;
        if pending == 0 {
            if c.down_close == Some(true) {
                self.client_closed(id);
            }
            return;
        }
        let n = self.chunk(pending);
        let Some(c) = self.net.get_mut(id) else {
            return;
        };
        c.delivered += n;
        // The lines now read, in a buffer kept across steps (one allocation per run, not
        // one per delivery).
        let mut heard = std::mem::take(&mut self.heard);
        while c.heard.front().is_some_and(|(end, _)| *end <= c.delivered) {
            if let Some((_, h)) = c.heard.pop_front() {
                heard.push(h);
            }
        }
        let more = c.released > c.delivered || c.down_close == Some(true);
        self.note(|| Record::Delivered(id, n as usize));
        self.written(id);
        for h in heard.drain(..) {
            self.hears(id, h);
        }
        self.heard = heard;
        if more {
            self.schedule_down(id);
        }
    }

    /// The client at the end of `id` reads one line.
    pub(super) fn hears(&mut self, id: ConnId, heard: Heard) {
        let Some(c) = self.net.get(id) else {
            return;
        };
        if !c.client_open {
            return;
        }
        let mut acts = std::mem::take(&mut self.acts);
        let mut routed = None;
        match c.owner {
            Owner::Client(i) => {
                let client = &mut self.clients[i as usize];
                if client.link.conn() != Some(id) {
                    self.acts = acts;
                    return;
                }
                if let Heard::Chat { token, .. } = heard {
                    if let Err(v) = self.oracle.client_read_chat(id, &client.held, &heard) {
                        fail_into(&mut self.failure, self.step, self.now, v);
                    }
                    routed = Some(token);
                }
                client.on_heard(&heard, &self.dir, &mut acts);
                self.apply(Owner::Client(i), &mut acts);
            }
            Owner::Admin => {
                self.admin.on_heard(&heard, &mut acts);
                self.apply(Owner::Admin, &mut acts);
            }
            Owner::Login(i, _) => {
                if let Heard::Line(bytes) = heard {
                    self.login_heard(i as usize, id, &bytes);
                }
            }
        }
        if let Some(token) = routed {
            let from = self.route_of(token);
            self.counters.routes[from][0] += 1;
        }
        self.acts = acts;
    }

    /// The client at the end of `id` learns the connection is over (an end of stream, a
    /// reset, a refusal).
    pub(super) fn client_closed(&mut self, id: ConnId) {
        let Some(c) = self.net.get_mut(id) else {
            return;
        };
        if !c.client_open {
            return;
        }
        c.client_open = false;
        c.drop_down();
        let owner = c.owner;
        self.net.unestablish(id);
        let mut acts = std::mem::take(&mut self.acts);
        match owner {
            Owner::Client(i) => {
                if self.clients[i as usize].link.conn() == Some(id) {
                    self.clients[i as usize].on_closed(&self.dir, &mut acts);
                    self.apply(owner, &mut acts);
                }
            }
            Owner::Admin => {
                if self.admin.link.conn() == Some(id) {
                    self.admin.on_closed(&mut acts);
                    self.apply(owner, &mut acts);
                }
            }
            Owner::Login(i, _) => {
                let i = i as usize;
                if self.logins[i].conn() == Some(id) {
                    self.logins[i].lost(self.now);
                    self.login_schedule(i);
                }
            }
        }
        self.acts = acts;
        self.net.retire(id);
    }

    /// Carries out what a client asked for.
    pub(super) fn apply(&mut self, who: Owner, acts: &mut Vec<Act>) {
        for act in acts.drain(..) {
            match act {
                Act::Connect => {
                    let ip = match who {
                        Owner::Client(i) => Some(self.clients[i as usize].ip),
                        Owner::Admin => None,
                        Owner::Login(i, _) => Some(self.logins[i as usize].ip()),
                    };
                    let id = self.net.open(who, ip);
                    match who {
                        Owner::Client(i) => self.clients[i as usize].connecting(id),
                        Owner::Admin => self.admin.connecting(id),
                        Owner::Login(i, _) => self.logins[i as usize].connected(id, self.now),
                    }
                    let at = self.now + ms(self.delay());
                    self.queue.push(at, Ev::Accept(id));
                }
                Act::Send { conn, bytes, sent } => {
                    let Some(c) = self.net.get_mut(conn) else {
                        continue;
                    };
                    if !c.client_open || c.up_fin || c.cut {
                        continue;
                    }
                    let sent_cpong = sent == crate::client::Sent::Cpong;
                    if let Err(v) = self.oracle.wrote(c, sent, &bytes) {
                        fail_into(&mut self.failure, self.step, self.now, v);
                    }
                    c.up_written += bytes.len() as u64;
                    if sent_cpong {
                        c.pongs.push_back(c.up_written);
                    }
                    if self.trace.on() {
                        let record = Record::Wrote(conn, bytes.clone().into());
                        self.trace.push(self.step, self.now, record);
                    }
                    if c.up.is_empty() {
                        // Nothing waits ahead of it: the client's buffer becomes the
                        // connection's, without a copy (most writes find the way empty).
                        c.up = bytes;
                    } else {
                        c.up.extend_from_slice(&bytes);
                    }
                    self.schedule_up(conn);
                }
                Act::Close { conn, abort } => {
                    let Some(c) = self.net.get_mut(conn) else {
                        continue;
                    };
                    if !c.client_open {
                        continue;
                    }
                    c.client_open = false;
                    c.drop_down();
                    self.net.unestablish(conn);
                    if abort {
                        if let Some(c) = self.net.get_mut(conn) {
                            c.drop_up();
                        }
                        let at = self.now + ms(self.delay());
                        self.queue.push(at, Ev::ServerReset(conn));
                    } else if let Some(c) = self.net.get_mut(conn) {
                        c.up_fin = true;
                        self.schedule_up(conn);
                    }
                }
                Act::Reading { conn, on } => {
                    if let Some(c) = self.net.get_mut(conn) {
                        c.reading = on;
                        if on {
                            self.schedule_down(conn);
                        }
                    }
                }
                Act::Wake(after) => {
                    let at = self.now + ms(after);
                    match who {
                        Owner::Client(i) => {
                            let client = &mut self.clients[i as usize];
                            client.gen += 1;
                            self.queue.push(at, Ev::Wake(i, client.gen));
                        }
                        Owner::Admin => {
                            self.admin.gen += 1;
                            self.queue.push(at, Ev::AdminWake(self.admin.gen));
                        }
                        Owner::Login(i, _) => {
                            let gen = self.logins[i as usize].gen_mut();
                            *gen += 1;
                            let gen = *gen;
                            self.queue.push(at, Ev::LoginWake(i, gen));
                        }
                    }
                }
            }
        }
        if let Owner::Client(i) = who {
            let client = &self.clients[i as usize];
            let seen = &mut self.dir_seen[i as usize];
            if *seen != client.name_changes {
                *seen = client.name_changes;
                self.dir.names[i as usize] = client.name.clone();
            }
        }
    }

    // ---- login clients (ims, arsc, opcode) ----

    /// Schedules login client `i`'s next turn at its `next_at`.
    pub(super) fn login_schedule(&mut self, i: usize) {
        let client = &mut self.logins[i];
        let gen = client.gen_mut();
        *gen += 1;
        let gen = *gen;
        let at = (*client.next_at_mut()).max(self.now);
        self.queue.push(at, Ev::LoginWake(i as u32, gen));
    }

    /// Login client `i`'s turn. An ims client that stayed silent past the ALIVE timeout
    /// must have been dropped by now, unless the server heard from it since.
    pub(super) fn login_turn(&mut self, i: usize) {
        let client = &self.logins[i];
        if let (true, Some(id)) = (client.silent(), client.conn()) {
            let boot = self.boot;
            let quiet = self.net.get(id).and_then(|c| {
                let open = c.server_open && c.boot == boot && c.pongs.is_empty();
                open.then(|| self.now.as_millis() - c.last_up.as_millis())
            });
            // The deadline is the server's own, through `poll_timeout`: a second's slack
            // covers only the order of events at one instant.
            if let Some(quiet) = quiet.filter(|q| *q > ALIVE_MS + 1_000) {
                let result = check!(alive_timeouts_are_kept(quiet, ALIVE_MS, true));
                if let Err(v) = result {
                    self.fail(v);
                }
            }
        }
        // While the run drains, a client only comes back; once in, it does nothing more.
        if self.phase == Phase::Drain && self.logins[i].online() {
            return;
        }
        let protocol = self.logins[i].protocol();
        let owner = Owner::Login(i as u32, protocol);
        let dos = self.logins[i].act(self.now, &self.dir);
        for d in dos {
            let conn = self.logins[i].conn();
            let mut acts = std::mem::take(&mut self.acts);
            match d {
                Do::Connect => acts.push(Act::Connect),
                Do::Send {
                    bytes,
                    message,
                    doc,
                    asks,
                } => {
                    let Some(conn) = conn else { continue };
                    // Where the document ends (its separator may come later): the
                    // server has it once the bytes up to there arrived (see `up`).
                    let trail = match doc {
                        true => bytes.iter().rev().position(|&b| b == b'>'),
                        false => None,
                    };
                    if let (Some(trail), Some(c)) = (trail, self.net.get_mut(conn)) {
                        if c.client_open && !c.up_fin && !c.cut {
                            let end = c.up_written + bytes.len() as u64 - trail as u64;
                            c.pongs.push_back(end);
                        }
                    }
                    let sent = match (message, asks) {
                        (message, Some(token)) => Sent::Login { message, token },
                        (Some((token, from, to)), None) => Sent::Chat {
                            token,
                            whisper: false,
                            from,
                            to,
                        },
                        (None, None) => Sent::Blank,
                    };
                    acts.push(Act::Send { conn, bytes, sent });
                }
                Do::Close => {
                    let Some(conn) = conn else { continue };
                    acts.push(Act::Close { conn, abort: false });
                    self.logins[i].lost(self.now);
                }
            }
            self.apply(owner, &mut acts);
            self.acts = acts;
        }
        if self.logins[i].conn().is_some() && !self.logins[i].online() {
            // Connecting: the first requests go once the connection is up.
            let soon = self.now + ms(self.delay() + 1);
            let next = self.logins[i].next_at_mut();
            *next = (*next).min(soon);
        }
        self.login_schedule(i);
    }

    /// Login client `i` reads bytes on `id`.
    pub(super) fn login_heard(&mut self, i: usize, id: ConnId, bytes: &[u8]) {
        if self.logins[i].conn() != Some(id) {
            return;
        }
        let seen = match self.logins[i].on_bytes(bytes) {
            Ok(seen) => seen,
            Err(e) => {
                return self.fail(Violation::new(
                    "replies_answer_requests",
                    format!("{id}: {e}"),
                ))
            }
        };
        let protocol = self.logins[i].protocol();
        for s in seen {
            let Seen::Pushed { from, token, text } = s;
            let Some(token) = token else {
                let name = self.logins[i].name();
                return self.fail(Violation::new(
                    "direct_messages_reach_only_their_recipient",
                    format!("{name} read a message from {from} that was never sent: {text:?}"),
                ));
            };
            let stored = (self.oracle.ledger.get(token)).is_some_and(|m| {
                matches!(m.fate, Fate::Committed | Fate::Delivered | Fate::Dropped)
            });
            let from_ws2017 = !self.oracle.ledger.sent_by_account(token);
            let route = self.route_of(token);
            let to = match protocol {
                Protocol::Ims => 1,
                Protocol::Arsc => 2,
                _ => 3,
            };
            self.counters.routes[route][to] += 1;
            match protocol {
                Protocol::Ims => {
                    self.counters.ims_stored_reads += u64::from(stored);
                    self.counters.ws2017_to_ims += u64::from(from_ws2017);
                }
                _ => {
                    self.counters.login_stored_reads += u64::from(stored);
                    match protocol {
                        Protocol::Arsc => self.counters.to_arsc += 1,
                        _ => self.counters.to_opcode += 1,
                    }
                }
            }
            if let Err(e) = self.oracle.ledger.read_by_account(token, id) {
                return self.fail(Violation::new("offline_messages_exactly_once_in_order", e));
            }
        }
    }
}
