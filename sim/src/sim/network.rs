//! The virtual network and the clients at its ends: connections opened, chunks carried
//! each way after their delays, written bytes reported, closes and resets, and what
//! clients ask for carried out.

use core::net::SocketAddr;

use bytes::Bytes;
use switchboard_proto::{ConnId, Input, Peer, Protocol};

use super::{fail_into, ms, Ev, Sim};
use crate::choices::{ChoiceSource, Choices};
use crate::client::{Act, Heard};
use crate::net::Owner;
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
        };
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
            c.up_delivered += n;
            while c.pongs.front().is_some_and(|&end| end <= c.up_delivered) {
                c.pongs.pop_front();
                c.o.ping_since = None;
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
                    };
                    let id = self.net.open(who, ip);
                    match who {
                        Owner::Client(i) => self.clients[i as usize].connecting(id),
                        Owner::Admin => self.admin.connecting(id),
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
}
