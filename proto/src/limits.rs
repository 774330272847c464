//! Limits on what one peer may make the server do: connections per address and in
//! total, and token buckets for requests that cost every other user something (a
//! broadcast) or cost the store something (durable work).
//!
//! Protocol-neutral: a session names the [`Cost`] of a request and asks
//! [`Cx::charge`](crate::cx::Cx::charge); each protocol only phrases the refusal. Time is
//! the `now.mono` of the input, never a clock.

use core::net::IpAddr;

use crate::config::{Limits, RateLimit};
use crate::time::Instant;

/// What a rate-limited request costs the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cost {
    /// It is broadcast to every connection (a login, a rename).
    Broadcast,
    /// It makes durable work for the store (a message stored for an offline account).
    Durable,
    /// It is a chat message: a post to a room (fanned out to every member) or a direct
    /// message to an online user.
    Message,
}

impl Cost {
    const ALL: usize = 3;

    fn index(self) -> usize {
        match self {
            Cost::Broadcast => 0,
            Cost::Durable => 1,
            Cost::Message => 2,
        }
    }
}

/// Why a request or a connection is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// This connection's bucket for the cost is empty.
    ConnRate,
    /// The bucket of the connection's address for the cost is empty.
    IpRate,
    /// The server holds `Limits::max_connections` network connections.
    TooManyConnections,
    /// The address holds `Limits::max_connections_per_ip` connections.
    TooManyFromIp,
}

/// The address a limit is kept for: an IPv4 address, or the /64 network of an IPv6
/// address (one subscriber usually holds a whole /64, so counting single IPv6 addresses
/// would let one peer take 2^64 shares).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum IpKey {
    V4([u8; 4]),
    V6Net([u8; 8]),
}

impl IpKey {
    pub(crate) fn of(ip: IpAddr) -> IpKey {
        match ip {
            IpAddr::V4(v4) => IpKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey::V4(v4.octets()),
                None => {
                    let mut net = [0; 8];
                    net.copy_from_slice(&v6.octets()[..8]);
                    IpKey::V6Net(net)
                }
            },
        }
    }
}

/// A bucket counts sixty-thousandths of a token: a rate of `r` tokens a minute refills
/// `r` of them a millisecond, so integers suffice.
const UNIT: u64 = 60_000;

/// A token bucket: `level` thousandths of a token as of `at`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    level: u64,
    at: Instant,
}

impl Bucket {
    fn full(limit: RateLimit, now: Instant) -> Bucket {
        Bucket {
            level: capacity(limit),
            at: now,
        }
    }

    /// The level at `now`, refilled since the last look.
    fn level(&self, limit: RateLimit, now: Instant) -> u64 {
        let elapsed = now.as_millis().saturating_sub(self.at.as_millis());
        let refill = elapsed.saturating_mul(u64::from(limit.per_minute));
        self.level.saturating_add(refill).min(capacity(limit))
    }

    /// The level is `level` as of `now`.
    fn set(&mut self, level: u64, now: Instant) {
        self.level = level;
        self.at = now;
    }

    fn is_full(&self, limit: RateLimit, now: Instant) -> bool {
        self.level(limit, now) >= capacity(limit)
    }
}

fn capacity(limit: RateLimit) -> u64 {
    u64::from(limit.burst).saturating_mul(UNIT)
}

/// One bucket per [`Cost`].
type Buckets = [Option<Bucket>; Cost::ALL];

/// What the limiter keeps per open connection, in its record of the connection table.
#[derive(Debug, Default)]
pub(crate) struct ConnLimits {
    ip: Option<IpKey>,
    /// Whether it counts against the connection caps (admitted network connections).
    counted: bool,
    /// Why it was refused at its admission, if it was.
    refused: Option<Refusal>,
    buckets: Buckets,
}

/// Looked up per request, keyed by addresses: seeded per server.
type Map<K, V> = crate::hashing::PeerMap<K, V>;

/// The server's limiter: connection counts and every token bucket.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    /// Admitted network connections.
    counted: usize,
    /// Admitted connections per address; an entry goes with its last connection.
    per_ip: Map<IpKey, usize>,
    /// Buckets per address. Bounded by `Limits::max_ip_buckets`: a bucket that has
    /// refilled is the same as none, so full ones are dropped when room is needed.
    ip_buckets: Map<IpKey, Buckets>,
    /// Shared by addresses that find the bucket table full of busy addresses.
    overflow: Buckets,
    /// When the table was last swept for full buckets; sweeps are at least the longest
    /// refill time apart, so a flood of new addresses costs no walk per request.
    last_sweep: Option<Instant>,
    /// Requests refused by a rate limit since start, for the runtime's log.
    refused: u64,
    /// Failed password checks per account and address, and their lockouts.
    pub(crate) logins: crate::logins::LoginGuard,
}

impl ConnLimits {
    /// Why the connection was refused at its admission, if it was.
    pub(crate) fn admission(&self) -> Result<(), Refusal> {
        match self.refused {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }
}

impl Limiter {
    /// A limiter whose maps hash with `hasher` (see [`crate::hashing`]).
    pub(crate) fn seeded(hasher: crate::hashing::Seeded) -> Limiter {
        Limiter {
            per_ip: crate::hashing::peer_map(hasher.clone()),
            ip_buckets: crate::hashing::peer_map(hasher.clone()),
            logins: crate::logins::LoginGuard::seeded(hasher.clone()),
            ..Limiter::default()
        }
    }

    /// Counts a connection from `ip` (none for the admin socket) and returns what the
    /// limiter keeps for it, to be handed back at its close. Network connections past
    /// the caps are refused (and kept uncounted); admin ones are never refused and have
    /// no address buckets.
    pub(crate) fn admit(&mut self, limits: &Limits, ip: Option<IpAddr>) -> ConnLimits {
        let ip = ip.map(IpKey::of);
        let refusal = match ip {
            None => None,
            Some(_) if self.counted >= limits.max_connections => Some(Refusal::TooManyConnections),
            Some(key)
                if self.per_ip.get(&key).copied().unwrap_or(0) >= limits.max_connections_per_ip =>
            {
                Some(Refusal::TooManyFromIp)
            }
            Some(_) => None,
        };
        let counted = ip.is_some() && refusal.is_none();
        if let (true, Some(key)) = (counted, ip) {
            self.counted += 1;
            *self.per_ip.entry(key).or_default() += 1;
        }
        ConnLimits {
            ip,
            counted,
            refused: refusal,
            buckets: Buckets::default(),
        }
    }

    /// Forgets a closed connection and its buckets; its address's buckets stay.
    pub(crate) fn disconnected(&mut self, entry: &ConnLimits) {
        if let (true, Some(key)) = (entry.counted, entry.ip) {
            self.counted -= 1;
            if let Some(n) = self.per_ip.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&key);
                }
            }
        }
    }

    /// Takes a token for `cost` from the bucket of `conn` and of its address, or from
    /// neither when either is empty.
    pub(crate) fn charge(
        &mut self,
        limits: &Limits,
        entry: &mut ConnLimits,
        cost: Cost,
        now: Instant,
    ) -> Result<(), Refusal> {
        let i = cost.index();
        let (conn_limit, ip_limit) = match cost {
            Cost::Broadcast => (limits.broadcast_per_conn, limits.broadcast_per_ip),
            Cost::Durable => (limits.durable_per_conn, limits.durable_per_ip),
            Cost::Message => (limits.message_per_conn, limits.message_per_ip),
        };
        let mine = entry.buckets[i].get_or_insert_with(|| Bucket::full(conn_limit, now));
        // Each bucket's level is worked out once: looked at, then taken from.
        let my_level = mine.level(conn_limit, now);
        if my_level < UNIT {
            self.refused += 1;
            return Err(Refusal::ConnRate);
        }
        if let Some(key) = entry.ip {
            let theirs = match self.ip_buckets.get_mut(&key) {
                Some(buckets) => buckets,
                None => {
                    if self.ip_buckets.len() >= limits.max_ip_buckets {
                        sweep(&mut self.ip_buckets, &mut self.last_sweep, limits, now);
                    }
                    if self.ip_buckets.len() >= limits.max_ip_buckets {
                        &mut self.overflow
                    } else {
                        self.ip_buckets.entry(key).or_default()
                    }
                }
            };
            let bucket = theirs[i].get_or_insert_with(|| Bucket::full(ip_limit, now));
            let level = bucket.level(ip_limit, now);
            if level < UNIT {
                self.refused += 1;
                return Err(Refusal::IpRate);
            }
            bucket.set(level - UNIT, now);
        }
        mine.set(my_level - UNIT, now);
        Ok(())
    }

    /// Address bucket sets held, for the memory bound.
    pub(crate) fn ip_buckets(&self) -> usize {
        self.ip_buckets.len()
    }

    /// Requests refused by a rate limit since start (logins refused by a lockout
    /// included).
    pub(crate) fn refused(&self) -> u64 {
        self.refused + self.logins.refused()
    }
}

/// Drops the address buckets that have refilled, at most once per the longest refill
/// time (a table full of busy addresses stays full that long anyway).
fn sweep(
    table: &mut Map<IpKey, Buckets>,
    last: &mut Option<Instant>,
    limits: &Limits,
    now: Instant,
) {
    let ip_limits = [
        limits.broadcast_per_ip,
        limits.durable_per_ip,
        limits.message_per_ip,
    ];
    let refill_ms = ip_limits
        .iter()
        .map(|l| capacity(*l) / u64::from(l.per_minute.max(1)))
        .max()
        .unwrap_or(0);
    if last.is_some_and(|at| now.as_millis() < at.as_millis().saturating_add(refill_ms)) {
        return;
    }
    *last = Some(now);
    table.retain(|_, buckets| {
        !(buckets.iter().zip(ip_limits)).all(|(b, limit)| b.is_none_or(|b| b.is_full(limit, now)))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConnId;
    use std::collections::BTreeMap;

    /// The limiter with the records the connection table would keep, by id.
    #[derive(Default)]
    struct Lim {
        lim: Limiter,
        conns: BTreeMap<ConnId, ConnLimits>,
    }

    impl Lim {
        fn admit(&mut self, l: &Limits, conn: ConnId, ip: Option<IpAddr>) -> Result<(), Refusal> {
            let entry = self.lim.admit(l, ip);
            let admission = entry.admission();
            self.conns.insert(conn, entry);
            admission
        }

        fn charge(
            &mut self,
            l: &Limits,
            conn: ConnId,
            cost: Cost,
            now: Instant,
        ) -> Result<(), Refusal> {
            let entry = self.conns.get_mut(&conn).expect("admitted");
            self.lim.charge(l, entry, cost, now)
        }

        fn disconnected(&mut self, conn: ConnId) {
            if let Some(entry) = self.conns.remove(&conn) {
                self.lim.disconnected(&entry);
            }
        }

        fn ip_buckets(&self) -> usize {
            self.lim.ip_buckets()
        }
    }

    fn limits() -> Limits {
        Limits {
            broadcast_per_conn: RateLimit {
                per_minute: 120,
                burst: 3,
            },
            broadcast_per_ip: RateLimit {
                per_minute: 240,
                burst: 5,
            },
            durable_per_ip: RateLimit {
                per_minute: 240,
                burst: 5,
            },
            message_per_ip: RateLimit {
                per_minute: 240,
                burst: 5,
            },
            max_ip_buckets: 2,
            ..Limits::default()
        }
    }

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let l = limits();
        let mut lim = Lim::default();
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        lim.admit(&l, ConnId(1), ip).expect("admitted");
        for _ in 0..3 {
            assert_eq!(lim.charge(&l, ConnId(1), Cost::Broadcast, at(0)), Ok(()));
        }
        assert_eq!(
            lim.charge(&l, ConnId(1), Cost::Broadcast, at(0)),
            Err(Refusal::ConnRate)
        );
        // 2 a second: one more token after 500 ms, not before.
        assert_eq!(
            lim.charge(&l, ConnId(1), Cost::Broadcast, at(499)),
            Err(Refusal::ConnRate)
        );
        assert_eq!(lim.charge(&l, ConnId(1), Cost::Broadcast, at(500)), Ok(()));
        // Another cost has its own bucket.
        assert_eq!(lim.charge(&l, ConnId(1), Cost::Durable, at(500)), Ok(()));
    }

    /// A request the address's bucket refuses takes nothing from its connection's, whose
    /// level was read first: the connection keeps its token for when the address refills.
    #[test]
    fn a_request_refused_by_its_address_takes_no_token_from_its_connection() {
        let slow = RateLimit {
            per_minute: 1,
            burst: 1,
        };
        let fast = RateLimit {
            per_minute: 60_000,
            burst: 1,
        };
        let l = Limits {
            broadcast_per_conn: slow,
            broadcast_per_ip: fast,
            ..limits()
        };
        let mut lim = Lim::default();
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        for c in 1..=2 {
            lim.admit(&l, ConnId(c), ip).expect("admitted");
        }
        assert_eq!(lim.charge(&l, ConnId(2), Cost::Broadcast, at(0)), Ok(()));
        assert_eq!(
            lim.charge(&l, ConnId(1), Cost::Broadcast, at(0)),
            Err(Refusal::IpRate)
        );
        // The address refills within a millisecond; the connection's one token is there.
        assert_eq!(lim.charge(&l, ConnId(1), Cost::Broadcast, at(10)), Ok(()));
        assert_eq!(
            lim.charge(&l, ConnId(1), Cost::Broadcast, at(20)),
            Err(Refusal::ConnRate)
        );
    }

    #[test]
    fn connections_of_one_address_share_its_bucket() {
        let l = limits();
        let mut lim = Lim::default();
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        for c in 1..=3 {
            lim.admit(&l, ConnId(c), ip).expect("admitted");
        }
        let ok = (1..=3)
            .flat_map(|c| [c, c])
            .filter(|&c| lim.charge(&l, ConnId(c), Cost::Broadcast, at(0)).is_ok())
            .count();
        assert_eq!(ok, 5, "the address's burst, not 3 connections' bursts");
        // A refused request takes no token from the connection: after the address
        // refills, the third connection still has its own two.
        assert_eq!(lim.charge(&l, ConnId(3), Cost::Broadcast, at(250)), Ok(()));
        // Reconnecting does not refill the address.
        lim.disconnected(ConnId(1));
        lim.admit(&l, ConnId(4), ip).expect("admitted");
        assert_eq!(
            lim.charge(&l, ConnId(4), Cost::Broadcast, at(250)),
            Err(Refusal::IpRate)
        );
    }

    #[test]
    fn address_buckets_stay_bounded_and_full_ones_are_dropped() {
        let l = limits();
        let mut lim = Lim::default();
        for c in 1..=10u8 {
            let ip = Some(IpAddr::from([10, 0, 0, c]));
            lim.admit(&l, ConnId(u64::from(c)), ip).expect("admitted");
            let _ = lim.charge(&l, ConnId(u64::from(c)), Cost::Broadcast, at(0));
            assert!(lim.ip_buckets() <= 2);
        }
        // The table is full of busy addresses: a new one shares the overflow bucket,
        // without a walk of the table per request.
        let ip = Some(IpAddr::from([10, 0, 0, 99]));
        lim.admit(&l, ConnId(99), ip).expect("admitted");
        assert_eq!(
            lim.charge(&l, ConnId(99), Cost::Broadcast, at(1000)),
            Ok(())
        );
        assert_eq!(lim.ip_buckets(), 2);
        // Once the buckets refilled (5 tokens at 4/s: 1250 ms) they make room.
        let ip = Some(IpAddr::from([10, 0, 1, 1]));
        lim.admit(&l, ConnId(11), ip).expect("admitted");
        assert_eq!(
            lim.charge(&l, ConnId(11), Cost::Broadcast, at(1250)),
            Ok(())
        );
        assert_eq!(lim.ip_buckets(), 1);
    }

    #[test]
    fn connection_caps_count_network_connections_only() {
        let l = Limits {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..Limits::default()
        };
        let mut lim = Lim::default();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        assert_eq!(lim.admit(&l, ConnId(1), a), Ok(()));
        assert_eq!(lim.admit(&l, ConnId(2), a), Ok(()));
        assert_eq!(lim.admit(&l, ConnId(3), a), Err(Refusal::TooManyFromIp));
        assert_eq!(lim.admit(&l, ConnId(4), b), Ok(()));
        assert_eq!(
            lim.admit(&l, ConnId(5), b),
            Err(Refusal::TooManyConnections)
        );
        assert_eq!(lim.admit(&l, ConnId(6), None), Ok(()), "the admin socket");
        // Refused connections leave no trace in the counts.
        lim.disconnected(ConnId(3));
        lim.disconnected(ConnId(5));
        lim.disconnected(ConnId(1));
        assert_eq!(lim.admit(&l, ConnId(7), a), Ok(()));
        // IPv6 addresses of one /64 are one address.
        let v6 = |last: u16| Some(IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]));
        let l = Limits {
            max_connections_per_ip: 1,
            ..Limits::default()
        };
        let mut lim = Lim::default();
        assert_eq!(lim.admit(&l, ConnId(1), v6(1)), Ok(()));
        assert_eq!(lim.admit(&l, ConnId(2), v6(2)), Err(Refusal::TooManyFromIp));
    }
}
