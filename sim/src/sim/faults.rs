//! Faults as scheduled events (cuts, stalls, crashes; storage failures are in the
//! dispatcher), and the phases: healing into liveness, and the final judgement.

use switchboard_proto::{ConnId, Protocol, Pump, Seq};

use super::{ms, Ev, Phase, Sim};
use crate::choices::{ChoiceSource, Choices};
use crate::net::Owner;
use crate::oracle::check;
use crate::oracle::ledger::Fate;
use crate::trace::Record;

impl<S: ChoiceSource> Sim<S> {
    pub(super) fn pick_established(&mut self) -> Option<ConnId> {
        let est = self.net.established();
        if est.is_empty() {
            return None;
        }
        let i = self.fault_rng.below(est.len() as u64) as usize;
        Some(est[i])
    }

    pub(super) fn cut(&mut self) {
        self.schedule_fault(self.opts.cut_every_ms, Ev::Cut);
        if self.phase != Phase::Safety {
            return;
        }
        let Some(id) = self.pick_established() else {
            return;
        };
        self.counters.cuts += 1;
        self.note(|| Record::Note(format!("cut {id}")));
        if let Some(c) = self.net.get_mut(id) {
            c.cut = true;
            c.drop_up();
            c.drop_down();
        }
        self.net.unestablish(id);
        let (a, b) = (self.delay(), self.delay());
        self.queue.push(self.now + ms(a), Ev::ServerReset(id));
        self.queue.push(self.now + ms(b), Ev::ClientReset(id));
    }

    pub(super) fn stall(&mut self) {
        self.schedule_fault(self.opts.hold_every_ms, Ev::Hold);
        if self.phase != Phase::Safety {
            return;
        }
        let Some(id) = self.pick_established() else {
            return;
        };
        let len = self.fault_rng.range(100..=self.opts.hold_max_ms.max(100));
        self.counters.stalls += 1;
        self.note(|| Record::Note(format!("stall {id} for {len}ms")));
        let until = self.now + ms(len);
        if let Some(c) = self.net.get_mut(id) {
            c.hold_until = until;
        }
    }

    pub(super) fn crash(&mut self) {
        self.schedule_fault(self.opts.crash_every_ms, Ev::Crash);
        if self.phase != Phase::Safety || self.server.is_none() {
            return;
        }
        self.counters.crashes += 1;
        let lands = self.store.inflight.is_some()
            && self.store_rng.ratio(self.opts.crash_lands_per_mille, 1000);
        let uncommitted = self.store.uncommitted();
        let landing = if lands {
            ", the batch in flight lands"
        } else {
            ""
        };
        self.note(|| {
            Record::Note(format!(
                "crash ({uncommitted} uncommitted changes{landing})"
            ))
        });
        if lands {
            self.counters.crash_landed += 1;
            let first = Seq(self.store.committed_through.0 + 1);
            let batch = self.store.land();
            if let Err(v) = self.oracle.committed(first, &batch, &self.store.committed) {
                self.fail(v);
            }
        }
        self.server = None;
        self.in_flight = None;
        self.store.crash();
        self.oracle.ledger.crashed();
        self.oracle.store_failing = false;
        self.effects_running = 0;
        // Every connection of this boot dies with it, unless the server's close already
        // left (then the client reads what is in flight and the end of the stream).
        let boot = self.boot;
        let open: Vec<ConnId> = self
            .net
            .iter()
            .filter(|c| c.server_open || c.accepted && c.boot == boot && c.down_close.is_none())
            .map(|c| c.id)
            .collect();
        for id in open {
            self.forget(id);
            self.net.unestablish(id);
            let delay = self.delay();
            if let Some(c) = self.net.get_mut(id) {
                c.drop_up();
                if c.client_open {
                    c.drop_down();
                    self.queue.push(self.now + ms(delay), Ev::ClientReset(id));
                }
            }
        }
        self.server_open = 0;
        let (lo, hi) = self.opts.restart_ms;
        let at = self.now + ms(self.fault_rng.range(lo..=hi));
        self.queue.push(at, Ev::Restart);
    }

    // ---- phases ----

    pub(super) fn heal(&mut self) {
        self.note(|| Record::Note("heal: faults off, everyone back".into()));
        if self.opts.bench {
            // The benchmark measures the safety phase's workload only.
            self.phase = Phase::Done;
            self.tally();
            return;
        }
        self.phase = Phase::Liveness;
        self.dir.healed = true;
        self.fail_until = self.now;
        if self.server.is_none() {
            self.boot_server();
        }
        let held: Vec<ConnId> = self
            .net
            .iter()
            .filter(|c| c.hold_until > self.now)
            .map(|c| c.id)
            .collect();
        for id in held {
            if let Some(c) = self.net.get_mut(id) {
                c.hold_until = self.now;
                c.up_scheduled = false;
                c.down_scheduled = false;
            }
            self.schedule_up(id);
            self.schedule_down(id);
        }
        for i in 0..self.clients.len() {
            let mut acts = std::mem::take(&mut self.acts);
            self.clients[i].heal(&mut acts);
            self.apply(Owner::Client(i as u32), &mut acts);
            self.acts = acts;
        }
        // Every login client (ims, arsc, opcode) comes back on a fresh connection, so its
        // mailbox is drained.
        for i in 0..self.logins.len() {
            self.logins[i].heal();
            if let Some(conn) = self.logins[i].conn() {
                let mut acts = std::mem::take(&mut self.acts);
                acts.push(crate::client::Act::Close { conn, abort: false });
                let owner = Owner::Login(i as u32, self.logins[i].protocol());
                self.apply(owner, &mut acts);
                self.acts = acts;
                self.logins[i].lost(self.now);
            }
            self.login_schedule(i);
        }
        let mut acts = std::mem::take(&mut self.acts);
        self.admin.heal(&self.dir, &mut acts);
        self.apply(Owner::Admin, &mut acts);
        self.acts = acts;
    }

    /// The drain is over: the liveness expectations.
    pub(super) fn finish(&mut self) {
        self.phase = Phase::Done;
        self.tally();
        let mut problems = Vec::new();
        if self.server.is_none() {
            problems.push("the server is down".to_owned());
        }
        for client in &self.clients {
            if !client.settled() {
                problems.push(format!("not back: {}", client.describe()));
            }
        }
        for client in &self.logins {
            if !client.online() || !client.settled() {
                problems.push(format!(
                    "{:?} {} not back: {:?}, logged in {}, settled {}",
                    client.protocol(),
                    client.name(),
                    client.conn(),
                    client.online(),
                    client.settled()
                ));
            }
            problems.extend(client.end_problem());
        }
        // Every message acknowledged as stored for a login user was handed to it at its
        // login (at least once) and removed.
        problems.extend(self.oracle.ledger.undelivered(&self.dir.login_accounts));
        if !self.admin.healed() {
            problems.push(format!("administrator not done: {}", self.admin.describe()));
        }
        for c in self.net.iter() {
            if !(c.client_open && c.server_open) {
                continue;
            }
            if let Some(sent) = c.o.sent.iter().find(|s| !s.may_be_silent()) {
                problems.push(format!("{}: {sent:?} never answered", c.id));
            }
            if c.emitted != c.released || c.released != c.delivered || !c.o.partial.is_empty() {
                problems.push(format!(
                    "{}: {} bytes emitted, {} released, {} delivered",
                    c.id, c.emitted, c.released, c.delivered
                ));
            }
        }
        let held = self.server.as_ref().map_or(0, Pump::held);
        if held != 0 || self.store.uncommitted() != 0 {
            problems.push(format!(
                "{} outputs held, {} changes uncommitted",
                held,
                self.store.uncommitted()
            ));
        }
        for client in &self.clients {
            for &(token, to_account) in &client.final_tokens {
                self.counters.final_messages += 1;
                let Some(m) = self.oracle.ledger.get(token) else {
                    continue;
                };
                // A message to an account may be refused (no such account, a full
                // mailbox: the oracle judged the reason); one to a client must arrive,
                // unless a rate limit refused it (clients of one address share its
                // buckets, and the final round comes from all of them at once).
                let ok = match m.fate {
                    Fate::SlowedDown => true,
                    Fate::Relayed => m.received == 1,
                    Fate::Committed => m.ack_released,
                    Fate::Full | Fate::Refused => to_account,
                    _ => false,
                };
                if !ok {
                    problems.push(format!("final message m{token} to {}: {m:?}", m.to));
                }
            }
        }
        // A room's members all saw its posts in one order.
        let seen: Vec<(&str, &[u64])> = (self.logins.iter())
            .map(|c| (c.name(), c.room_posts()))
            .filter(|(_, posts)| !posts.is_empty())
            .collect();
        if let Err(v) = check!(room_posts_in_one_order(room_order_problem(&seen))) {
            self.fail(v);
            return;
        }
        let result = check!(liveness_expectations_met(&problems));
        if let Err(v) = result {
            self.fail(v);
            return;
        }
        let mut durable = self.oracle.durable.check_all(&self.store.committed);
        durable.extend(self.oracle.ledger.check_all(&self.store.committed));
        if let Err(v) = check!(acknowledged_changes_survive_restarts(&durable)) {
            self.fail(v);
        }
        self.check_stats();
    }

    pub(super) fn tally(&mut self) {
        let logins = |p: Protocol| -> u64 {
            let of = self.logins.iter().filter(|c| c.protocol() == p);
            of.map(|c| u64::from(c.logins())).sum()
        };
        self.counters.ims_logins = logins(Protocol::Ims);
        self.counters.arsc_logins = logins(Protocol::Arsc);
        self.counters.opcode_logins = logins(Protocol::Opcode);
        self.counters.ims_to_ws2017 = self.oracle.ims_to_ws2017;
        self.counters.stored = self.oracle.ledger.stored_count() as u64;
        let (relayed, full) = self.oracle.ledger.fates();
        self.counters.relayed = relayed;
        self.counters.mailbox_full = full;
    }
}

/// Any two clients saw the room posts both saw in the same order (each client's reads
/// are in the order its connection delivered them); the first disagreement, if any.
fn room_order_problem(seen: &[(&str, &[u64])]) -> Option<String> {
    let index: Vec<std::collections::BTreeMap<u64, usize>> = (seen.iter())
        .map(|(_, posts)| posts.iter().enumerate().map(|(n, t)| (*t, n)).collect())
        .collect();
    for (a, (name_a, posts_a)) in seen.iter().enumerate() {
        for (b, (name_b, _)) in seen.iter().enumerate().skip(a + 1) {
            let mut last = None;
            for token in *posts_a {
                let Some(&at) = index[b].get(token) else {
                    continue;
                };
                if last.is_some_and(|l| at < l) {
                    return Some(format!(
                        "{name_a} and {name_b} saw the room posts in different orders (at p{token})"
                    ));
                }
                last = Some(at);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::room_order_problem;

    #[test]
    fn the_order_check_catches_two_members_disagreeing() {
        let a: &[u64] = &[1, 2, 3];
        assert_eq!(room_order_problem(&[("a", a), ("b", &[1, 3])]), None);
        assert_eq!(room_order_problem(&[("a", a), ("b", &[4, 2, 5])]), None);
        let problem = room_order_problem(&[("a", a), ("b", &[3, 2, 1])]);
        assert!(problem.is_some_and(|p| p.contains("a and b")));
    }
}
