//! The send schedule of a paced run (`direct --rate R`, `compare`'s `paced`): message `k`
//! of the run is due `k / R` seconds after its start and is sent by client `k mod N`, so
//! the sends are spread evenly over time and over the clients (no client sends twice
//! before every other has sent once), never all of them at once.
//!
//! The generator asks [`Pacer::take`] which messages are due each time its loop comes
//! round (after at most one poll of 1 ms, or after each bounded batch of reads): about
//! `R / 1000` at a time at most of a millisecond apart. A generator that fell behind (it
//! was off the CPU, say) catches up by at most [`Pacer::burst`] messages per call, so a
//! stall is reported as late sends (the send lag) and a lower rate reached, not hidden in
//! a burst that queues up on the server.

use std::ops::Range;

/// Which messages of a paced run are due when.
#[derive(Clone, Debug)]
pub struct Pacer {
    /// Nanoseconds between two messages (1e9 / rate).
    interval_ns: f64,
    /// Messages in the run.
    total: u64,
    /// Clients the messages go round.
    clients: u64,
    /// The next message to send.
    next: u64,
    /// At most this many messages per [`take`](Self::take).
    burst: u64,
}

impl Pacer {
    /// A schedule of `total` messages at `rate` a second in all, round the `clients`
    /// clients; at most two milliseconds' worth (and at least 2) sent in one go.
    pub fn new(rate: f64, total: u64, clients: usize) -> Pacer {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        Pacer {
            interval_ns: 1e9 / rate,
            total,
            clients: clients.max(1) as u64,
            next: 0,
            burst: ((rate / 1000.0).ceil() as u64 * 2).max(2),
        }
    }

    /// When message `k` is due, in nanoseconds after the start of the run.
    pub fn due_at(&self, k: u64) -> u64 {
        (k as f64 * self.interval_ns) as u64
    }

    /// The client that sends message `k`.
    pub fn client_of(&self, k: u64) -> usize {
        (k % self.clients) as usize
    }

    /// The most messages one [`take`](Self::take) hands out.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// The messages due by `now` (nanoseconds after the start) and not yet taken, at
    /// most [`burst`](Self::burst) of them; the caller sends them now, in order.
    pub fn take(&mut self, now: u64) -> Range<u64> {
        let from = self.next;
        let mut to = from;
        while to < self.total && to - from < self.burst && self.due_at(to) <= now {
            to += 1;
        }
        self.next = to;
        from..to
    }

    /// Puts back the messages from `k` on (their client could not send yet), so the
    /// next [`take`](Self::take) hands them out again.
    pub fn put_back(&mut self, k: u64) {
        self.next = self.next.min(k);
    }

    /// When the next message is due, or `None` once every message was taken.
    pub fn next_due(&self) -> Option<u64> {
        (self.next < self.total).then(|| self.due_at(self.next))
    }

    /// Whether every message was taken.
    pub fn done(&self) -> bool {
        self.next >= self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a generator loop that comes round every `tick_ns` (and once after a stall
    /// of `stall_ns` starting at `stall_at`) would send: per call, the clients it names.
    fn drive(pacer: &mut Pacer, tick_ns: u64, stall: Option<(u64, u64)>) -> Vec<(u64, Vec<usize>)> {
        let mut calls = Vec::new();
        let mut now = 0;
        while !pacer.done() {
            let sent = pacer.take(now);
            calls.push((now, sent.map(|k| pacer.client_of(k)).collect()));
            now += tick_ns;
            if let Some((at, len)) = stall {
                if now >= at && now < at + tick_ns {
                    now += len;
                }
            }
        }
        calls
    }

    /// 2000 clients at 100k msgs/s, 200 each: every 1 ms loop turn sends 100 messages
    /// (at most 101 with rounding), each from a different client, and each client's
    /// messages are 20 ms apart; never the whole crowd at once.
    #[test]
    fn sends_are_spread_over_time_and_clients() {
        let (clients, rate, each) = (2000usize, 100_000.0, 200u64);
        let total = clients as u64 * each;
        let mut pacer = Pacer::new(rate, total, clients);
        let calls = drive(&mut pacer, 1_000_000, None);
        let mut per_client = vec![Vec::new(); clients];
        let mut count = 0u64;
        for (now, sent) in &calls {
            assert!(
                sent.len() <= 101,
                "{} messages sent at once at {now} ns (at most 101 due per ms)",
                sent.len()
            );
            let mut seen = sent.clone();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(
                seen.len(),
                sent.len(),
                "a client sent twice in one go at {now}"
            );
            for &c in sent {
                per_client[c].push(*now);
            }
            count += sent.len() as u64;
        }
        assert_eq!(count, total);
        // Over 4 s: 4000 turns of about 100, not 200 bursts of 2000.
        assert!(calls.len() >= 3999, "{} turns", calls.len());
        for times in &per_client {
            assert_eq!(times.len() as u64, each);
            for w in times.windows(2) {
                let gap = w[1] - w[0];
                assert!((19_000_000..=21_000_000).contains(&gap), "gap {gap} ns");
            }
        }
    }

    /// A loop that was off the CPU for 50 ms catches up two milliseconds' worth at a
    /// time, not 5000 messages in one burst.
    #[test]
    fn a_stall_is_caught_up_in_bounded_steps() {
        let mut pacer = Pacer::new(100_000.0, 400_000, 2000);
        let calls = drive(&mut pacer, 1_000_000, Some((100_000_000, 50_000_000)));
        let most = calls.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
        assert_eq!(most as u64, pacer.burst());
        assert_eq!(pacer.burst(), 200);
    }

    #[test]
    fn put_back_hands_the_same_messages_out_again() {
        let mut pacer = Pacer::new(1000.0, 10, 2);
        assert_eq!(pacer.take(2_500_000), 0..2);
        pacer.put_back(1);
        assert_eq!(pacer.take(2_500_000), 1..3);
        assert_eq!(pacer.next_due(), Some(3_000_000));
    }
}
