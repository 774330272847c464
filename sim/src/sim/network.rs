//! The virtual network and the clients at its ends: connections opened, chunks carried
//! each way after their delays, written bytes reported, closes and resets, and what
//! clients ask for carried out.

use core::net::SocketAddr;

use bytes::Bytes;
use switchboard_proto::{ConnId, Input, Peer, Protocol};

use super::{fail_into, ms, Ev, Sim};
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
            Owner::Ims(_) => Protocol::Ims,
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
        let mut heard = Vec::new();
        while c.heard.front().is_some_and(|(end, _)| *end <= c.delivered) {
            if let Some((_, h)) = c.heard.pop_front() {
                heard.push(h);
            }
        }
        let more = c.released > c.delivered || c.down_close == Some(true);
        self.note(|| Record::Delivered(id, n as usize));
        self.written(id);
        for h in heard {
            self.hears(id, h);
        }
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
        match c.owner {
            Owner::Client(i) => {
                let client = &mut self.clients[i as usize];
                if client.link.conn() != Some(id) {
                    self.acts = acts;
                    return;
                }
                if let Heard::Chat { .. } = heard {
                    if let Err(v) = self.oracle.client_read_chat(id, &client.held, &heard) {
                        fail_into(&mut self.failure, self.step, self.now, v);
                    }
                }
                client.on_heard(&heard, &self.dir, &mut acts);
                self.apply(Owner::Client(i), &mut acts);
            }
            Owner::Admin => {
                self.admin.on_heard(&heard, &mut acts);
                self.apply(Owner::Admin, &mut acts);
            }
            Owner::Ims(i) => {
                if let Heard::Line(bytes) = heard {
                    self.ims_heard(i as usize, id, &bytes);
                }
            }
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
            Owner::Ims(i) => {
                let i = i as usize;
                if self.ims[i].conn == Some(id) {
                    self.ims[i].lost(self.now);
                    self.ims_schedule(i);
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
                        Owner::Ims(i) => Some(self.ims[i as usize].ip),
                    };
                    let id = self.net.open(who, ip);
                    match who {
                        Owner::Client(i) => self.clients[i as usize].connecting(id),
                        Owner::Admin => self.admin.connecting(id),
                        Owner::Ims(i) => self.ims[i as usize].connected(id, self.now),
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
                    c.up.extend_from_slice(&bytes);
                    if self.trace.on() {
                        self.trace
                            .push(self.step, self.now, Record::Wrote(conn, bytes.into()));
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
                        Owner::Ims(i) => {
                            let client = &mut self.ims[i as usize];
                            client.gen += 1;
                            self.queue.push(at, Ev::ImsWake(i, client.gen));
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

    // ---- ims clients ----

    /// Schedules ims client `i`'s next turn at its `next_at`.
    pub(super) fn ims_schedule(&mut self, i: usize) {
        let client = &mut self.ims[i];
        client.gen += 1;
        let at = client.next_at.max(self.now);
        self.queue.push(at, Ev::ImsWake(i as u32, client.gen));
    }

    /// ims client `i`'s turn. One that stayed silent past the ALIVE timeout must have
    /// been dropped by now, unless the server heard from it since.
    pub(super) fn ims_turn(&mut self, i: usize) {
        let client = &self.ims[i];
        if let (true, Some(id)) = (client.silent, client.conn) {
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
        let dos = self.ims[i].act(self.now, &self.dir);
        for d in dos {
            let conn = self.ims[i].conn;
            let mut acts = std::mem::take(&mut self.acts);
            match d {
                Do::Connect => acts.push(Act::Connect),
                Do::Send {
                    bytes,
                    message,
                    doc,
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
                    let sent = match message {
                        Some((token, from, to)) => Sent::Chat {
                            token,
                            whisper: false,
                            from,
                            to,
                        },
                        None => Sent::Blank,
                    };
                    acts.push(Act::Send { conn, bytes, sent });
                }
                Do::Close => {
                    let Some(conn) = conn else { continue };
                    acts.push(Act::Close { conn, abort: false });
                    self.ims[i].lost(self.now);
                }
            }
            self.apply(Owner::Ims(i as u32), &mut acts);
            self.acts = acts;
        }
        if self.ims[i].conn.is_some() && !self.ims[i].online() {
            // Connecting: the first documents go once the connection is up.
            self.ims[i].next_at = self.ims[i].next_at.min(self.now + ms(self.delay() + 1));
        }
        self.ims_schedule(i);
    }

    /// ims client `i` reads a line on `id`.
    pub(super) fn ims_heard(&mut self, i: usize, id: ConnId, bytes: &[u8]) {
        if self.ims[i].conn != Some(id) {
            return;
        }
        let seen = match self.ims[i].on_bytes(bytes) {
            Ok(seen) => seen,
            Err(e) => {
                return self.fail(Violation::new(
                    "replies_answer_requests",
                    format!("{id}: {e}"),
                ))
            }
        };
        for s in seen {
            let Seen::Pushed { from, token, text } = s;
            let Some(token) = token else {
                let name = &self.ims[i].name;
                return self.fail(Violation::new(
                    "direct_messages_reach_only_their_recipient",
                    format!("{name} read a message from {from} that was never sent: {text:?}"),
                ));
            };
            let stored = (self.oracle.ledger.get(token)).is_some_and(|m| {
                matches!(m.fate, Fate::Committed | Fate::Delivered | Fate::Dropped)
            });
            self.counters.ims_stored_reads += u64::from(stored);
            self.counters.ws2017_to_ims += u64::from(!self.oracle.ledger.sent_by_account(token));
            if let Err(e) = self.oracle.ledger.read_by_account(token, id) {
                return self.fail(Violation::new("offline_messages_exactly_once_in_order", e));
            }
        }
    }
}
