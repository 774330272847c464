//! User names: one namespace for every protocol (the rule is in docs/names.md).
//!
//! A name is checked with the PRECIS `UsernameCasePreserved` profile (RFC 8265) plus our own
//! limits, and kept in that profile's form: width-mapped, NFC, in the case it was chosen with.
//! Names are unique under their [`UserKey`]: the `UsernameCaseMapped` form (RFC 8265) with every
//! non-ASCII character replaced by its UTS #39 confusable skeleton, so a name that differs from
//! a taken one only by case, by composition or by a look-alike letter from another script is
//! the same name.

use core::fmt;
use std::sync::Arc;

use precis_core::profile::PrecisFastInvocation;
use precis_profiles::{UsernameCaseMapped, UsernameCasePreserved};

/// Longest user name, in characters (counted after normalisation).
pub const MAX_NAME_CHARS: usize = 32;

/// The version of the rule that derives a [`UserKey`] from a name. The store records it and
/// recomputes its keys when it changes (docs/names.md says when to raise it).
///
/// 1: the name in lowercase (before the PRECIS rule). 2: PRECIS `UsernameCaseMapped`, then the
/// UTS #39 skeleton of each non-ASCII character.
pub const NAME_RULE_VERSION: u32 = 2;

/// The characters a name may not hold besides whitespace and controls: the ones an XMPP
/// local part forbids, so every name is also a valid JID local part.
const FORBIDDEN: &str = "\"&'/:<>@";

/// Whether each byte is printable ASCII and not one of [`FORBIDDEN`]: the whole rule for
/// an ASCII name's characters, looked up once per byte (every message's names pass here).
const NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x21;
    while b < 0x7f {
        table[b] = true;
        b += 1;
    }
    let forbidden = FORBIDDEN.as_bytes();
    let mut i = 0;
    while i < forbidden.len() {
        table[forbidden[i] as usize] = false;
        i += 1;
    }
    table
};

/// Whether `s` is short enough and made only of bytes a plain ASCII name may hold.
fn ascii_name_bytes(s: &str) -> bool {
    s.len() <= MAX_NAME_CHARS && s.bytes().all(|b| NAME_BYTE[usize::from(b)])
}

/// The name no one may take, on any protocol (arsc's sender of notices), nor any name that
/// looks like it.
const RESERVED: &str = "system";

/// Input longer than this many characters is refused before normalisation, which can only
/// shorten a name by composing a letter with its marks.
const MAX_INPUT_CHARS: usize = MAX_NAME_CHARS * 4;

/// A valid user name in the case it was chosen with, in PRECIS `UsernameCasePreserved` form
/// (width-mapped, NFC): 1 to 32 characters, no whitespace, no control or invisible
/// characters, none of `"&'/:<>@`, and not `System` or a look-alike of it.
///
/// The name and its key share one allocation: a clone (names are cloned into events,
/// replies and indexes on every message) is one reference count, not two. The name is
/// the start of its key's text, up to where the folded name starts (all of it when the
/// name is its own key): a name is no larger than its key, and an event that carries two
/// is moved in fewer bytes.
#[derive(Clone)]
pub struct UserName {
    key: UserKey,
}

/// The key a name is unique under: its case-mapped form with look-alike characters of other
/// scripts replaced by the characters they imitate (docs/names.md). Two names with the same
/// key are the same user.
///
/// Keys are compared on every lookup of an online user (several per message): each carries
/// its first eight bytes as an integer, so most comparisons are one integer comparison
/// and never call `memcmp`. The order is the bytes' order (names hold no NUL, so the
/// zero padding sorts a key before every longer key it begins).
#[derive(Clone)]
pub struct UserKey {
    /// The first eight bytes, big-endian, zero-padded.
    head: u64,
    /// The name, then the folded name if it differs (the text of a key made from a
    /// name is the name's too).
    text: Arc<str>,
    /// Where the folded name starts in `text`: 0 when the name is its own key.
    folded_at: usize,
}

impl UserKey {
    fn folded(&self) -> &str {
        &self.text[self.folded_at..]
    }

    /// The key `s` folds to, written into `buf`, when `s` is printable ASCII short enough
    /// to be a name: what a map of keys can be searched with for a name a peer sent,
    /// without parsing it into a new name. `None` says nothing about validity: parse it.
    /// A name already in lowercase is its own key: it is returned as it is, with no copy.
    pub(crate) fn fold_ascii<'b>(s: &'b str, buf: &'b mut [u8; MAX_NAME_CHARS]) -> Option<&'b str> {
        let folded = buf.get_mut(..s.len())?;
        let mut upper = false;
        for b in s.bytes() {
            if !b.is_ascii_graphic() {
                return None;
            }
            upper |= b.is_ascii_uppercase();
        }
        if !upper {
            return Some(s);
        }
        folded.copy_from_slice(s.as_bytes());
        folded.make_ascii_lowercase();
        core::str::from_utf8(folded).ok()
    }
}

/// Maps of keys are searched with a folded name as it is: a key's order, equality and
/// hash are its folded name's.
impl core::borrow::Borrow<str> for UserKey {
    fn borrow(&self) -> &str {
        self.folded()
    }
}

/// A name and its key (`None`: the name is its own key), in one allocation.
fn name_and_key(name: &str, folded: Option<&str>) -> UserName {
    let (text, folded_at): (Arc<str>, usize) = match folded {
        Some(folded) if folded != name => {
            let mut text = String::with_capacity(name.len() + folded.len());
            text.push_str(name);
            text.push_str(folded);
            (Arc::from(text), name.len())
        }
        _ => (Arc::from(name), 0),
    };
    let folded = &text[folded_at..];
    let mut head = [0u8; 8];
    let n = folded.len().min(8);
    head[..n].copy_from_slice(&folded.as_bytes()[..n]);
    UserName {
        key: UserKey {
            head: u64::from_be_bytes(head),
            text,
            folded_at,
        },
    }
}

impl PartialEq for UserName {
    fn eq(&self, other: &UserName) -> bool {
        self.as_str() == other.as_str() && self.key == other.key
    }
}

impl Eq for UserName {}

impl PartialOrd for UserName {
    fn partial_cmp(&self, other: &UserName) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UserName {
    fn cmp(&self, other: &UserName) -> core::cmp::Ordering {
        (self.as_str().cmp(other.as_str())).then_with(|| self.key.cmp(&other.key))
    }
}

impl core::hash::Hash for UserName {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
        self.key.hash(state);
    }
}

impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserName")
            .field("name", &self.as_str())
            .field("key", &self.key)
            .finish()
    }
}

impl PartialEq for UserKey {
    /// Equal heads hold the same first eight bytes: keys of equal length are equal when
    /// the rest is (nothing left for a key of up to eight bytes, most of them).
    fn eq(&self, other: &UserKey) -> bool {
        let (a, b) = (self.folded().as_bytes(), other.folded().as_bytes());
        self.head == other.head && a.len() == b.len() && a.get(8..) == b.get(8..)
    }
}

impl Eq for UserKey {}

impl PartialOrd for UserKey {
    fn partial_cmp(&self, other: &UserKey) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UserKey {
    fn cmp(&self, other: &UserKey) -> core::cmp::Ordering {
        self.head
            .cmp(&other.head)
            .then_with(|| self.folded().cmp(other.folded()))
    }
}

impl core::hash::Hash for UserKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.folded().hash(state);
    }
}

impl fmt::Debug for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UserKey").field(&self.folded()).finish()
    }
}

/// Why a string is not a valid user name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_CHARS`].
    TooLong,
    /// The name holds whitespace, a control or invisible character, one of `"&'/:<>@`, or
    /// anything else the PRECIS `UsernameCasePreserved` profile refuses.
    InvalidCharacter,
    /// The name is `System`, or looks like it: reserved on every protocol.
    Reserved,
}

impl UserName {
    /// Checks `s` against the naming rules and returns it in its enforced form.
    pub fn parse(s: &str) -> Result<UserName, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        // Printable ASCII (the common case, parsed for every message's recipient): one
        // pass over the bytes; the rule is the same as below (the tests check they agree).
        if ascii_name_bytes(s) {
            let name = ascii_name(s);
            if name.key.folded() == RESERVED {
                return Err(NameError::Reserved);
            }
            return Ok(name);
        }
        let count = s.chars().count();
        if count > MAX_INPUT_CHARS {
            return Err(NameError::TooLong);
        }
        if s.chars().any(forbidden) {
            return Err(NameError::InvalidCharacter);
        }
        let name = if s.bytes().all(|b| b.is_ascii_graphic()) {
            // What both profiles give for printable ASCII, without their tables
            // (`ascii_fast_path_agrees_with_precis` checks it).
            ascii_name(s)
        } else {
            let name = UsernameCasePreserved::enforce(s)
                .map_err(|_| NameError::InvalidCharacter)?
                .into_owned();
            let mapped = UsernameCaseMapped::enforce(name.as_str())
                .map_err(|_| NameError::InvalidCharacter)?;
            name_and_key(&name, Some(&skeleton(&mapped)))
        };
        if name.as_str().chars().count() > MAX_NAME_CHARS {
            return Err(NameError::TooLong);
        }
        // Width mapping may have turned a fullwidth `＠` into `@`.
        if name.as_str().chars().any(forbidden) {
            return Err(NameError::InvalidCharacter);
        }
        if name.key.folded() == RESERVED {
            return Err(NameError::Reserved);
        }
        Ok(name)
    }

    /// A name stored before the current rule (a sender of an offline message queued by an
    /// older build), which the rule may now refuse: checked only against the rule of then
    /// (1 to 32 characters, no whitespace or control characters, none of `<>&'"@/`) and kept
    /// as it was. Its key is its lowercase NFC form with the skeleton of each non-ASCII
    /// character, invisible characters dropped. Never for names that arrive from a peer.
    pub fn parse_legacy(s: &str) -> Result<UserName, NameError> {
        if let Ok(name) = UserName::parse(s) {
            return Ok(name);
        }
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.chars().count() > MAX_NAME_CHARS {
            return Err(NameError::TooLong);
        }
        if s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>&'\"@/".contains(c))
        {
            return Err(NameError::InvalidCharacter);
        }
        use unicode_normalization::UnicodeNormalization;
        let folded: String = s.nfc().flat_map(char::to_lowercase).nfc().collect();
        Ok(name_and_key(s, Some(&skeleton(&folded))))
    }

    /// The name as chosen (in its enforced form).
    pub fn as_str(&self) -> &str {
        match self.key.folded_at {
            0 => &self.key.text,
            name_len => &self.key.text[..name_len],
        }
    }

    /// The key the name is unique under.
    pub fn key(&self) -> UserKey {
        self.key.clone()
    }

    /// The key the name is unique under, borrowed.
    pub fn key_ref(&self) -> &UserKey {
        &self.key
    }
}

impl UserKey {
    /// The key of the name `s`, if `s` is a valid name: what every comparison of a name a
    /// peer sent with a known one goes through.
    pub fn of(s: &str) -> Result<UserKey, NameError> {
        UserName::parse(s).map(|name| name.key)
    }

    /// Whether `s` is a valid name with this key: how a peer's claim to a name (a
    /// sender it gives) is checked. Printable ASCII is compared in place; anything else
    /// is parsed.
    pub fn is_key_of(&self, s: &str) -> bool {
        if ascii_name_bytes(s) {
            let folded = self.folded();
            return s.len() == folded.len()
                && (s.bytes().zip(folded.bytes())).all(|(a, b)| a.to_ascii_lowercase() == b)
                && folded != RESERVED;
        }
        UserKey::of(s).as_ref() == Ok(self)
    }

    /// The folded name.
    pub fn as_str(&self) -> &str {
        self.folded()
    }
}

/// Whitespace, a control character, or one of [`FORBIDDEN`].
fn forbidden(c: char) -> bool {
    c.is_whitespace() || c.is_control() || FORBIDDEN.contains(c)
}

/// ASCII characters as they are; every other character replaced by its UTS #39 skeleton
/// (its confusable prototype, in NFD, lowercase). Restricted to non-ASCII so two ASCII names
/// never collide beyond case (`l`/`1`, `rn`/`m`, `0`/`O` stay distinct; docs/names.md).
fn skeleton(mapped: &str) -> String {
    let mut key = String::with_capacity(mapped.len());
    let mut one = [0u8; 4];
    for c in mapped.chars() {
        if c.is_ascii() {
            key.push(c);
        } else {
            let c: &str = c.encode_utf8(&mut one);
            key.extend(unicode_security::skeleton(c).flat_map(char::to_lowercase));
        }
    }
    key
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name of printable ASCII (checked by the caller): its key is its lowercase form, and
/// a name already in lowercase is its own key.
fn ascii_name(s: &str) -> UserName {
    if !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return name_and_key(s, None);
    }
    let mut lower = [0u8; MAX_NAME_CHARS];
    let lower = match lower.get_mut(..s.len()) {
        Some(lower) => {
            lower.copy_from_slice(s.as_bytes());
            lower.make_ascii_lowercase();
            lower
        }
        None => return name_and_key(s, Some(&s.to_ascii_lowercase())),
    };
    match core::str::from_utf8(lower) {
        Ok(folded) => name_and_key(s, Some(folded)),
        Err(_) => name_and_key(s, Some(&s.to_ascii_lowercase())),
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::Empty => "username is empty",
            NameError::TooLong => "username is too long",
            NameError::InvalidCharacter => "username contains invalid characters",
            NameError::Reserved => "username is reserved",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> UserKey {
        UserKey::of(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn valid_names_keep_their_case_and_fold_for_keys() {
        let n = UserName::parse("HanSolo").unwrap();
        assert_eq!(n.as_str(), "HanSolo");
        assert_eq!(n.key(), UserName::parse("hansolo").unwrap().key());
        assert!(UserName::parse("Ünïcödé_-.1").is_ok());
        assert!(UserName::parse(&"x".repeat(32)).is_ok());
        assert_eq!(key("ÜNÏCÖDÉ"), key("ünïcödé"));
        // A name is its own key's text, or the start of it: it costs no more than a key.
        for s in ["hansolo", "HanSolo", "Ünïcödé", "x"] {
            let n = UserName::parse(s).unwrap();
            assert_eq!((n.as_str(), n.to_string()), (s, s.to_string()));
        }
        assert_eq!(
            std::mem::size_of::<UserName>(),
            std::mem::size_of::<UserKey>()
        );
    }

    #[test]
    fn a_name_and_its_key_are_one_allocation_counted_once_per_clone() {
        let n = UserName::parse("HanSolo").unwrap();
        assert_eq!((n.as_str(), n.key_ref().as_str()), ("HanSolo", "hansolo"));
        let copies = (n.clone(), n.key());
        assert_eq!(Arc::strong_count(&n.key.text), 3);
        assert_eq!(
            format!("{:?}", copies.0),
            r#"UserName { name: "HanSolo", key: UserKey("hansolo") }"#
        );
        let lower = UserName::parse("leia").unwrap();
        assert_eq!((lower.as_str(), lower.key_ref().as_str()), ("leia", "leia"));
        assert_eq!(&*lower.key.text, "leia", "a lowercase name is its own key");
    }

    #[test]
    fn a_plain_name_folds_on_the_stack_to_the_key_it_parses_to() {
        let mut buf = [0; MAX_NAME_CHARS];
        for name in ["HanSolo", "leia", "R2-D2", &"X".repeat(32)] {
            let folded = UserKey::fold_ascii(name, &mut buf).map(str::to_owned);
            assert_eq!(folded.as_deref(), Some(key(name).as_str()), "{name}");
        }
        for other in ["Ünïcödé", "a b", &"x".repeat(33), ""] {
            let folded = UserKey::fold_ascii(other, &mut buf).filter(|f| !f.is_empty());
            assert_eq!(folded, None, "{other:?}");
        }
        let keys: std::collections::HashSet<UserKey> = [key("HanSolo")].into();
        assert!(
            keys.contains("hansolo"),
            "a key is found by its folded name"
        );
    }

    #[test]
    fn invalid_names_say_why() {
        assert_eq!(UserName::parse(""), Err(NameError::Empty));
        assert_eq!(UserName::parse(&"x".repeat(33)), Err(NameError::TooLong));
        for bad in [
            "a b", "a\tb", "a<b", "a>b", "a&b", "a'b", "a\"b", "a@b", "a/b", "a\u{7}", "a:b",
        ] {
            assert_eq!(
                UserName::parse(bad),
                Err(NameError::InvalidCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn invisible_and_direction_characters_are_refused() {
        for bad in [
            "evil\u{202e}gnp",    // RIGHT-TO-LEFT OVERRIDE
            "a\u{200b}b",         // ZERO WIDTH SPACE
            "a\u{200c}b",         // ZERO WIDTH NON-JOINER
            "a\u{200d}b",         // ZERO WIDTH JOINER, not after a virama
            "\u{200d}",           // only a ZERO WIDTH JOINER
            "\u{feff}alice",      // BOM prefix
            "al\u{ad}ice",        // SOFT HYPHEN
            "a\u{2060}b",         // WORD JOINER
            "a\u{2066}b\u{2069}", // isolates
            "ａ＠ｂ",             // fullwidth @ maps to @
            "a\u{3000}b",         // ideographic space
        ] {
            assert_eq!(
                UserName::parse(bad),
                Err(NameError::InvalidCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn composed_and_decomposed_forms_are_one_name() {
        let composed = UserName::parse("Jos\u{e9}").unwrap();
        let decomposed = UserName::parse("Jose\u{301}").unwrap();
        assert_eq!(composed.key(), decomposed.key());
        // Kept in NFC, so both spell the same bytes.
        assert_eq!(decomposed.as_str(), "Jos\u{e9}");
        // Fullwidth letters are their ASCII counterparts.
        assert_eq!(UserName::parse("ａｌｉｃｅ").unwrap().as_str(), "alice");
    }

    #[test]
    fn look_alikes_from_other_scripts_are_the_same_name() {
        // Cyrillic а, е, о, р, с; Greek ο and Α.
        assert_eq!(key("\u{430}lice"), key("alice"));
        assert_eq!(key("\u{410}LICE"), key("alice"));
        assert_eq!(key("b\u{3bf}b"), key("bob"));
        assert_eq!(key("\u{440}\u{435}\u{441}\u{43e}"), key("peco"));
        assert_eq!(key("\u{391}lice"), key("alice"));
        // A look-alike next to letters that are themselves in the confusable table.
        assert_eq!(key("\u{430}my"), key("amy"));
    }

    #[test]
    fn ascii_names_collide_only_by_case() {
        for (a, b) in [
            ("alice", "a1ice"),
            ("arnold", "amold"),
            ("b0b", "bob"),
            ("Il", "ll"),
        ] {
            assert_ne!(key(a), key(b), "{a} {b}");
        }
    }

    #[test]
    fn system_and_its_look_alikes_are_reserved() {
        for reserved in ["System", "system", "SYSTEM", "\u{405}ystem", "ｓｙｓｔｅｍ"] {
            assert_eq!(
                UserName::parse(reserved),
                Err(NameError::Reserved),
                "{reserved:?}"
            );
        }
        assert!(UserName::parse("System2").is_ok());
    }

    #[test]
    fn length_counts_characters_after_normalisation() {
        let decomposed = "e\u{301}".repeat(32);
        assert_eq!(
            UserName::parse(&decomposed)
                .unwrap()
                .as_str()
                .chars()
                .count(),
            32
        );
        assert_eq!(
            UserName::parse(&"e\u{301}".repeat(33)),
            Err(NameError::TooLong)
        );
        assert_eq!(UserName::parse(&"é".repeat(33)), Err(NameError::TooLong));
    }

    #[test]
    fn ascii_fast_path_agrees_with_precis() {
        for c in (0x21u8..0x7f).map(char::from) {
            for s in [format!("{c}"), format!("a{c}Z")] {
                let fast = UserName::parse(&s);
                let slow = UsernameCasePreserved::enforce(s.as_str())
                    .and_then(|p| {
                        let p = p.into_owned();
                        let m = UsernameCaseMapped::enforce(p.clone())?.into_owned();
                        Ok((p, m))
                    })
                    .ok();
                match (fast, slow) {
                    (Ok(name), Some((preserved, mapped))) => {
                        assert_eq!(name.as_str(), preserved, "{s:?}");
                        assert_eq!(name.key().as_str(), mapped, "{s:?}");
                    }
                    (Err(NameError::InvalidCharacter), _) => {
                        assert!(FORBIDDEN.contains(c), "{s:?} refused but {c:?} is allowed")
                    }
                    (fast, slow) => panic!("{s:?}: {fast:?} but PRECIS says {slow:?}"),
                }
            }
        }
    }

    #[test]
    fn legacy_names_load_with_a_key() {
        let old = UserName::parse_legacy("a\u{200b}b").unwrap();
        assert_eq!(old.as_str(), "a\u{200b}b");
        assert_eq!(old.key(), key("ab"));
        assert_eq!(
            UserName::parse_legacy("a b"),
            Err(NameError::InvalidCharacter)
        );
        assert_eq!(UserName::parse_legacy("Bob").unwrap().key(), key("bob"));
    }

    #[test]
    fn keys_order_as_their_folded_text() {
        let names = [
            "a",
            "ab",
            "abcdefgh",
            "abcdefghi",
            "abcdefghj",
            "abcdefgg",
            "abcdefgz1",
            "b",
            "Zed",
            "zed1",
            "u1",
            "u10",
            "u2",
            "ñandú",
            "ñandúes-largos",
            "éclair",
            "ü",
            "a-b",
            "a_b",
        ];
        let keys: Vec<UserKey> = names.iter().map(|n| key(n)).collect();
        for a in &keys {
            for b in &keys {
                assert_eq!(a.cmp(b), a.as_str().cmp(b.as_str()), "{a:?} against {b:?}");
                assert_eq!(a == b, a.as_str() == b.as_str());
            }
        }
    }

    #[test]
    fn is_key_of_agrees_with_parsing() {
        let names = [
            "alice",
            "Alice",
            "ALICE",
            "alicee",
            "alic",
            "al ice",
            "al@ce",
            "System",
            "system",
            "ñandú",
            "ÑANDÚ",
            "Ꭺlice",
            "аlice",
            "",
            "a/b",
            "x".repeat(40).leak(),
        ];
        for a in names {
            let Ok(key) = UserKey::of(a) else { continue };
            for b in names {
                let expected = UserKey::of(b).as_ref() == Ok(&key);
                assert_eq!(key.is_key_of(b), expected, "{a:?} against {b:?}");
            }
        }
    }
}
