//! User names: one namespace for every protocol, compared case-insensitively.

use core::fmt;

/// Longest user name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// A valid user name in the case it was chosen with: 1 to 32 characters, no whitespace,
/// no control characters, none of `<>&'"@/`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserName(String);

/// The case-folded form of a name, under which names are unique.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserKey(String);

/// Why a string is not a valid user name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_CHARS`].
    TooLong,
    /// The name holds whitespace, a control character or one of `<>&'"@/`.
    InvalidCharacter,
}

impl UserName {
    /// Checks `s` against the naming rules.
    pub fn parse(s: &str) -> Result<UserName, NameError> {
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
        Ok(UserName(s.to_owned()))
    }

    /// The name as chosen.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key the name is unique under.
    pub fn key(&self) -> UserKey {
        UserKey(self.0.to_lowercase())
    }
}

impl UserKey {
    /// The smallest key, below every real one.
    pub(crate) fn min() -> UserKey {
        UserKey(String::new())
    }

    /// The folded name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::Empty => "username is empty",
            NameError::TooLong => "username is too long",
            NameError::InvalidCharacter => "username contains invalid characters",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_keep_their_case_and_fold_for_keys() {
        let n = UserName::parse("HanSolo").unwrap();
        assert_eq!(n.as_str(), "HanSolo");
        assert_eq!(n.key(), UserName::parse("hansolo").unwrap().key());
        assert!(UserName::parse("Ünïcödé_-.1").is_ok());
        assert!(UserName::parse(&"x".repeat(32)).is_ok());
    }

    #[test]
    fn invalid_names_say_why() {
        assert_eq!(UserName::parse(""), Err(NameError::Empty));
        assert_eq!(UserName::parse(&"x".repeat(33)), Err(NameError::TooLong));
        for bad in [
            "a b", "a\tb", "a<b", "a>b", "a&b", "a'b", "a\"b", "a@b", "a/b", "a\u{7}",
        ] {
            assert_eq!(
                UserName::parse(bad),
                Err(NameError::InvalidCharacter),
                "{bad:?}"
            );
        }
    }
}
