//! `Arbitrary` for the durable types (feature `arbitrary`), shaped for the store's round-trip
//! test: names come mostly from a small pool (with case and composition variants of one
//! key), ids mostly small, so arbitrary changes collide on the same accounts, queues, chats
//! and friendships often enough to exercise every rule of `State::apply`. Every number stays
//! inside what the database holds (below `i64::MAX`).

use core::cell::Cell;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::{Arbitrary, Result, Unstructured};

use crate::names::UserName;
use crate::persist::{ChatId, MediaId};

/// The pool: three keys, `alice` in three spellings, `Émile` composed and decomposed, `bob`
/// in two cases; few enough that friendships, requests and chats find their accounts.
const NAMES: &[&str] = &[
    "alice",
    "Alice",
    "ALICE",
    "bob",
    "Bob",
    "\u{c9}mile",
    "E\u{301}mile",
];

impl<'a> Arbitrary<'a> for UserName {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        // Now and then a name of the input's own, when the rule accepts it.
        if u.ratio(1, 32)? {
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

thread_local! {
    /// The last chat and media ids handed out on this thread.
    static LAST: Cell<[u64; 2]> = const { Cell::new([0; 2]) };
}

/// A new id for `slot`: one past the last handed out, so a creation is not a replay; now and
/// then one near the largest the database holds.
fn fresh(u: &mut Unstructured<'_>, slot: usize) -> Result<u64> {
    if u.ratio(1, 100)? {
        return u.int_in_range(i64::MAX as u64 - 4..=i64::MAX as u64 - 1);
    }
    let mut last = LAST.with(Cell::get);
    last[slot] = (last[slot] + 1) % (1 << 40);
    LAST.with(|cell| cell.set(last));
    Ok(last[slot])
}

/// An id of `slot` handed out lately (up to two below the last), so a deletion, a media
/// item or a message meets a chat just created; sometimes a fresh one.
fn recent(u: &mut Unstructured<'_>, slot: usize) -> Result<u64> {
    if u.ratio(1, 5)? {
        return fresh(u, slot);
    }
    let last = LAST.with(Cell::get)[slot];
    Ok(last.saturating_sub(u.int_in_range(0..=2)?))
}

/// The id of a new chat.
pub(crate) fn new_chat(u: &mut Unstructured<'_>) -> Result<ChatId> {
    fresh(u, 0).map(ChatId)
}

/// The id of a new media item.
pub(crate) fn new_media(u: &mut Unstructured<'_>) -> Result<MediaId> {
    fresh(u, 1).map(MediaId)
}

/// A chat id other than a new chat's: mostly a recent one.
pub(crate) fn chat_id(u: &mut Unstructured<'_>) -> Result<u64> {
    recent(u, 0)
}

/// A media id other than a new item's: mostly a recent one.
pub(crate) fn media_id(u: &mut Unstructured<'_>) -> Result<u64> {
    recent(u, 1)
}

/// A chat's members: one to three names from the pool (opcode's chats have two).
pub(crate) fn members(u: &mut Unstructured<'_>) -> Result<Vec<UserName>> {
    let count = u.int_in_range(1..=3)?;
    (0..count).map(|_| UserName::arbitrary(u)).collect()
}
