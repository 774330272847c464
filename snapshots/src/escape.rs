//! The one escaping both directions of a transcript share: `\\`, `\r`, `\n` and `\xNN`.

use std::fmt::Write as _;

/// Bytes as transcript text: printable UTF-8 as is, a backslash doubled, CR and LF as `\r`
/// and `\n`, every other control character or byte that is not UTF-8 as `\xNN`.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\r' => out.push_str("\\r"),
                '\n' => out.push_str("\\n"),
                c if c.is_control() => {
                    for b in c.encode_utf8(&mut [0; 4]).bytes() {
                        hex(&mut out, b);
                    }
                }
                c => out.push(c),
            }
        }
        for &b in chunk.invalid() {
            hex(&mut out, b);
        }
    }
    out
}

fn hex(out: &mut String, b: u8) {
    // Writing to a String cannot fail.
    let _ = write!(out, "\\x{b:02x}");
}

/// The bytes a scenario's text stands for: the inverse of [`escape`], also accepting
/// upper-case hex digits. `Err` names the first bad escape.
pub(crate) fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            continue;
        }
        match chars.next() {
            Some((_, '\\')) => out.push(b'\\'),
            Some((_, 'r')) => out.push(b'\r'),
            Some((_, 'n')) => out.push(b'\n'),
            Some((_, 'x')) => {
                let digits: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
                match u8::from_str_radix(&digits, 16) {
                    Ok(b) if digits.len() == 2 => out.push(b),
                    _ => {
                        return Err(format!(
                            "bad escape at column {}: \\x needs two hex digits",
                            at + 1
                        ))
                    }
                }
            }
            Some((_, other)) => {
                return Err(format!(
                    "unknown escape \\{other} at column {} (use \\\\, \\r, \\n or \\xNN)",
                    at + 1
                ))
            }
            None => return Err("a lone backslash ends the line (write \\\\)".to_owned()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_stays_and_the_rest_is_escaped() {
        assert_eq!(escape(b"uname alice"), "uname alice");
        assert_eq!(escape("Ünïcödé".as_bytes()), "Ünïcödé");
        assert_eq!(escape(b"a\\b\r\n\t\x00\x7f"), "a\\\\b\\r\\n\\x09\\x00\\x7f");
        assert_eq!(escape(b"\xff\xfe ok"), "\\xff\\xfe ok");
        assert_eq!(escape("\u{85}".as_bytes()), "\\xc2\\x85");
    }

    #[test]
    fn unescape_inverts_escape() {
        for bytes in [
            &b"plain"[..],
            b"a\\b\r\n\t\x00\x7f",
            b"\xff\xfe ok",
            "Ünïcödé \u{85}".as_bytes(),
        ] {
            assert_eq!(unescape(&escape(bytes)).as_deref(), Ok(bytes));
        }
        assert_eq!(
            unescape("\\X").unwrap_err(),
            "unknown escape \\X at column 1 (use \\\\, \\r, \\n or \\xNN)"
        );
        assert!(unescape("\\x4").is_err());
        assert!(unescape("\\xzz").is_err());
        assert!(unescape("ab\\").is_err());
        assert_eq!(unescape("\\x4A\\x4b").as_deref(), Ok(&b"JK"[..]));
    }
}
