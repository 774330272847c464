//! The text of a direct message: held in place when short, shared when long.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A direct message's text. Most chat lines are short: those of at most [`Body::INLINE`]
/// bytes are held in the value itself, so a message costs no allocation (its body's
/// allocation and free were a twentieth of a relayed message's CPU over TCP, and in a
/// busy read many bodies are freed together, past the allocator's fast per-size cache).
/// Longer ones are shared by every session they are handed to, as an `Arc<str>`.
#[derive(Clone)]
pub(crate) struct Body(Repr);

#[derive(Clone)]
enum Repr {
    /// `bytes[..len]` is the text (a whole UTF-8 string).
    Inline {
        len: u8,
        bytes: [u8; Body::INLINE],
    },
    Shared(Arc<str>),
}

impl Body {
    /// The most bytes held in place: the value stays 48 bytes.
    pub(crate) const INLINE: usize = 46;
}

impl From<&str> for Body {
    fn from(text: &str) -> Self {
        match u8::try_from(text.len()) {
            Ok(len) if text.len() <= Body::INLINE => {
                let mut bytes = [0; Body::INLINE];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                Body(Repr::Inline { len, bytes })
            }
            _ => Body(Repr::Shared(Arc::from(text))),
        }
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body::from(text.as_str())
    }
}

impl Deref for Body {
    type Target = str;

    fn deref(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                let text = &bytes[..usize::from(*len)];
                // SAFETY: `bytes[..len]` was copied whole from a `&str` by `From` and is
                // never changed (the fields are private to this module), so it is UTF-8.
                // Checking it again cost more than the allocation it saves: a body is read
                // for its length, its encoding and its escapes.
                unsafe { std::str::from_utf8_unchecked(text) }
            }
            Repr::Shared(text) => text,
        }
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Body {}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length reads back as given, in place up to the limit and shared past it;
    /// equal texts are equal however held, and a clone of a long one shares its text.
    #[test]
    fn a_body_reads_back_as_given_in_place_or_shared() {
        for len in 0..=Body::INLINE + 2 {
            for fill in ["x", "é", "€"] {
                let text: String = fill.repeat(len).chars().take(len).collect();
                let body = Body::from(text.as_str());
                assert_eq!(&*body, text);
                assert_eq!(body, Body::from(text.as_str()));
                assert_eq!(
                    matches!(body.0, Repr::Inline { .. }),
                    text.len() <= Body::INLINE
                );
                if let (Repr::Shared(a), Repr::Shared(b)) = (&body.0, &body.clone().0) {
                    assert!(Arc::ptr_eq(a, b));
                }
            }
        }
        assert_eq!(std::mem::size_of::<Body>(), 48);
    }
}
