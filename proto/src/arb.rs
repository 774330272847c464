//! `Arbitrary` for the durable types (feature `arbitrary`), shaped for the store's round-trip
//! test: names come mostly from a small pool (with case and composition variants of one
//! key), ids mostly small, so arbitrary changes collide on the same accounts, queues, chats
//! and friendships often enough to exercise every rule of `State::apply`. Every number stays
//! inside what the database holds (below `i64::MAX`).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::{Arbitrary, Result, Unstructured};

use crate::names::UserName;

/// The pool: `alice` in three spellings of one key, `Émile` composed and decomposed, and a
/// few others.
const NAMES: &[&str] = &[
    "alice",
    "Alice",
    "ALICE",
    "bob",
    "Bob",
    "carol",
    "dave",
    "\u{c9}mile",
    "E\u{301}mile",
    "zo\u{eb}",
];

impl<'a> Arbitrary<'a> for UserName {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        // Now and then a name of the input's own, when the rule accepts it.
        if u.ratio(1, 16)? {
            let text = <&str>::arbitrary(u)?;
            if let Ok(name) = UserName::parse(text) {
                return Ok(name);
            }
        }
        let text = u.choose(NAMES)?;
        UserName::parse(text).map_err(|_| arbitrary::Error::IncorrectFormat)
    }
}

/// An id or counter value: mostly below 64, sometimes near the largest the database holds.
pub(crate) fn id(u: &mut Unstructured<'_>) -> Result<u64> {
    if u.ratio(1, 50)? {
        u.int_in_range(i64::MAX as u64 - 4..=i64::MAX as u64 - 1)
    } else {
        u.int_in_range(0..=63)
    }
}

/// Unix milliseconds, anywhere the database holds.
pub(crate) fn ms(u: &mut Unstructured<'_>) -> Result<u64> {
    if u.ratio(1, 20)? {
        u.int_in_range(0..=i64::MAX as u64)
    } else {
        u.int_in_range(1_700_000_000_000..=1_700_000_100_000)
    }
}

/// An IP address from a small pool, so bans and unbans meet.
pub(crate) fn ip(u: &mut Unstructured<'_>) -> Result<IpAddr> {
    Ok(*u.choose(&[
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped()),
    ])?)
}
