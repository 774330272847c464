//! Failed logins: a run of failed password checks of one account, or from one address,
//! locks its logins for a while, so password guessing goes no faster than a handful of
//! guesses per lockout, and a locked login costs no hash. Protocol-neutral: a session asks
//! [`Cx::login_allowed`] before its password check and reports the outcome with
//! [`Cx::login_failed`] or [`Cx::login_succeeded`]; each protocol phrases the refusal.
//!
//! Bounded: accounts are the store's (a failure is only counted for an existing account),
//! addresses at most `Limits::max_ip_buckets`, runs that have expired dropped to make room.

use crate::config::Limits;
use crate::cx::Cx;
use crate::limits::IpKey;
use crate::names::UserKey;
use crate::time::Instant;

/// A run of failures.
#[derive(Clone, Copy, Debug)]
struct Run {
    failures: u32,
    /// The last failure.
    last: Instant,
    /// Logins refused until then.
    locked_until: Option<Instant>,
}

impl Run {
    fn expired(&self, limits: &Limits, now: Instant) -> bool {
        let lockout = limits.login_lockout;
        now >= self.last + lockout && self.locked_until.is_none_or(|until| now >= until)
    }

    fn locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }
}

/// Keyed by account names and addresses peers try: seeded per server.
type Map<K, V> = crate::hashing::PeerMap<K, V>;

/// Why a login is refused before its password is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Locked {
    /// The account had `failed_logins_per_account` failures.
    Account,
    /// The address had `failed_logins_per_ip` failures.
    Address,
}

/// Failed logins per account and per address.
#[derive(Debug, Default)]
pub(crate) struct LoginGuard {
    accounts: Map<UserKey, Run>,
    ips: Map<IpKey, Run>,
    /// Logins refused by a lockout since start.
    refused: u64,
}

impl LoginGuard {
    /// A guard whose maps hash with `hasher` (see [`crate::hashing`]).
    pub(crate) fn seeded(hasher: crate::hashing::Seeded) -> LoginGuard {
        LoginGuard {
            accounts: crate::hashing::peer_map(hasher.clone()),
            ips: crate::hashing::peer_map(hasher.clone()),
            refused: 0,
        }
    }

    /// Whether a login of `account` from `ip` may have its password checked now.
    pub(crate) fn allowed(
        &mut self,
        account: &UserKey,
        ip: Option<IpKey>,
        now: Instant,
    ) -> Result<(), Locked> {
        let refusal = if self.accounts.get(account).is_some_and(|r| r.locked(now)) {
            Some(Locked::Account)
        } else if ip
            .and_then(|ip| self.ips.get(&ip))
            .is_some_and(|r| r.locked(now))
        {
            Some(Locked::Address)
        } else {
            None
        };
        match refusal {
            Some(locked) => {
                self.refused += 1;
                Err(locked)
            }
            None => Ok(()),
        }
    }

    /// A password check of `account` from `ip` failed.
    pub(crate) fn failed(
        &mut self,
        limits: &Limits,
        account: &UserKey,
        ip: Option<IpKey>,
        now: Instant,
    ) {
        count(
            &mut self.accounts,
            account.clone(),
            limits,
            limits.failed_logins_per_account,
            now,
        );
        if let Some(ip) = ip {
            if !self.ips.contains_key(&ip) && self.ips.len() >= limits.max_ip_buckets {
                self.ips.retain(|_, run| !run.expired(limits, now));
            }
            if self.ips.len() < limits.max_ip_buckets || self.ips.contains_key(&ip) {
                count(&mut self.ips, ip, limits, limits.failed_logins_per_ip, now);
            }
        }
    }

    /// A password check of `account` succeeded: its run ends (the address's does not).
    pub(crate) fn succeeded(&mut self, account: &UserKey) {
        self.accounts.remove(account);
    }

    /// Logins refused by a lockout since start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }
}

/// Counts one failure in `key`'s run, starting a new run if the last one expired, and
/// locks it at `most` failures.
fn count<K: Eq + core::hash::Hash>(
    runs: &mut Map<K, Run>,
    key: K,
    limits: &Limits,
    most: u32,
    now: Instant,
) {
    let run = runs.entry(key).or_insert(Run {
        failures: 0,
        last: now,
        locked_until: None,
    });
    if run.expired(limits, now) {
        *run = Run {
            failures: 0,
            last: now,
            locked_until: None,
        };
    }
    run.failures = run.failures.saturating_add(1);
    run.last = now;
    if run.failures >= most.max(1) {
        run.locked_until = Some(now + limits.login_lockout);
    }
}

impl Cx<'_> {
    /// Whether a login of `account` on this connection may have its password checked:
    /// refused while the account or the connection's address is locked out.
    pub(crate) fn login_allowed(&mut self, account: &UserKey) -> Result<(), Locked> {
        let ip = self.peer.ip().map(IpKey::of);
        self.limits.logins.allowed(account, ip, self.now.mono)
    }

    /// The password check of `account` on this connection failed.
    pub(crate) fn login_failed(&mut self, account: &UserKey) {
        let ip = self.peer.ip().map(IpKey::of);
        let limits = &self.config.limits;
        self.limits
            .logins
            .failed(limits, account, ip, self.now.mono);
    }

    /// The password check of `account` succeeded.
    pub(crate) fn login_succeeded(&mut self, account: &UserKey) {
        self.limits.logins.succeeded(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Instant {
        Instant::from_millis(secs * 1000)
    }

    #[test]
    fn a_run_of_failures_locks_for_the_lockout_then_starts_afresh() {
        let limits = Limits {
            failed_logins_per_account: 3,
            failed_logins_per_ip: 100,
            ..Limits::default()
        };
        let mut g = LoginGuard::default();
        let bob = UserKey::of("bob").expect("a name");
        let ip = Some(IpKey::of([10, 0, 0, 1].into()));
        for s in 0..3 {
            assert_eq!(g.allowed(&bob, ip, at(s)), Ok(()));
            g.failed(&limits, &bob, ip, at(s));
        }
        assert_eq!(g.allowed(&bob, ip, at(3)), Err(Locked::Account));
        // From another address too: the account is locked, not the address.
        let other = Some(IpKey::of([10, 0, 0, 2].into()));
        assert_eq!(g.allowed(&bob, other, at(3)), Err(Locked::Account));
        // Another account from the same address is not.
        let carol = UserKey::of("carol").expect("a name");
        assert_eq!(g.allowed(&carol, ip, at(3)), Ok(()));
        // Five minutes after the third failure, logins are checked again, and one failure
        // does not lock.
        assert_eq!(g.allowed(&bob, ip, at(2 + 299)), Err(Locked::Account));
        assert_eq!(g.allowed(&bob, ip, at(2 + 300)), Ok(()));
        g.failed(&limits, &bob, ip, at(302));
        assert_eq!(g.allowed(&bob, ip, at(302)), Ok(()));
        assert_eq!(g.refused(), 3);
    }

    #[test]
    fn an_address_guessing_many_accounts_is_locked() {
        let limits = Limits {
            failed_logins_per_ip: 4,
            max_ip_buckets: 2,
            ..Limits::default()
        };
        let mut g = LoginGuard::default();
        let ip = Some(IpKey::of([10, 0, 0, 1].into()));
        for i in 0..4 {
            let key = UserKey::of(&format!("u{i}")).expect("a name");
            g.failed(&limits, &key, ip, at(i));
        }
        let fresh = UserKey::of("fresh").expect("a name");
        assert_eq!(g.allowed(&fresh, ip, at(5)), Err(Locked::Address));
        assert_eq!(g.allowed(&fresh, None, at(5)), Ok(()), "the admin socket");
        // The address table stays bounded.
        for i in 2..10u8 {
            g.failed(
                &limits,
                &fresh,
                Some(IpKey::of([10, 0, 1, i].into())),
                at(6),
            );
            assert!(g.ips.len() <= 2);
        }
    }
}
