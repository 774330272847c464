//! The virtual clients' own ws2017 codec, written from `docs/protocols/ws2017.md` and not
//! from proto's code, so a bug shared by both sides cannot hide.

use core::fmt::Write as _;

/// Why an administrator closed a session, from the `+OK cquit '...'` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KickKind {
    /// `kick`.
    Kicked,
    /// `ban user` or `ban ip`.
    Banned,
    /// `user del`.
    Deleted,
}

/// One line from the server, borrowed from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ServerLine<'a> {
    /// `+OK <server> ws2017 ready`.
    Greeting,
    /// `+OK uname you are <name>`: the name is set, at login or by a rename alike.
    NameSet(&'a str),
    /// `-ERR uname suggested <suggestion>`.
    NameTaken(&'a str),
    /// `nuser <name>`.
    UserJoined(&'a str),
    /// `+OK nuser <old> <new>`.
    UserRenamed(&'a str, &'a str),
    /// `cquit <name>`.
    UserLeft(&'a str),
    /// `+OK cgetu <names...>`: the names, space separated (maybe empty).
    Users(&'a str),
    /// `+OK cgetg`.
    Games,
    /// `+OK chatm 'message relayed'`. A `chatw` gets no `+OK` line: its echo answers it.
    Relayed,
    /// `+OK chatm 'message stored'`. For a `chatw` the echo, held until the commit.
    Stored,
    /// `chatm <from> <to> '<body>'` (or chatw; for a chatw, also the echo that answers it).
    Chat {
        whisper: bool,
        from: &'a str,
        to: &'a str,
        body: &'a str,
    },
    /// `chatr <from> <to>`.
    Receipt { from: &'a str, to: &'a str },
    /// `cping`.
    Ping,
    /// `+OK cpong`.
    Pong,
    /// `+OK cquit 'terminating tasks and disconnecting'`.
    Bye,
    /// `+OK cquit '<kicked, banned or deleted> by an administrator'`.
    Kicked(KickKind),
    /// `-ERR [<command>] '<text>'`.
    Error {
        command: Option<&'a str>,
        text: &'a str,
    },
}

/// The text the server sends a connection from a banned address before closing it.
pub(crate) const BANNED_IP: &str = "your IP address is banned";

/// Parses one line without its CRLF. `None`: no line a ws2017 client understands.
pub(crate) fn decode(line: &[u8]) -> Option<ServerLine<'_>> {
    let line = std::str::from_utf8(line).ok()?;
    if let Some(rest) = line.strip_prefix("+OK ") {
        return positive(rest);
    }
    if let Some(rest) = line.strip_prefix("-ERR ") {
        return negative(rest);
    }
    let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
    match keyword {
        "cping" if rest.is_empty() => Some(ServerLine::Ping),
        "nuser" if is_word(rest) => Some(ServerLine::UserJoined(rest)),
        "cquit" if is_word(rest) => Some(ServerLine::UserLeft(rest)),
        "chatr" => {
            let (from, to) = rest.split_once(' ')?;
            (is_word(from) && is_word(to)).then_some(ServerLine::Receipt { from, to })
        }
        "chatm" | "chatw" => {
            let (from, rest) = rest.split_once(' ')?;
            let (to, quoted) = rest.split_once(' ')?;
            let body = quoted.strip_prefix('\'')?.strip_suffix('\'')?;
            Some(ServerLine::Chat {
                whisper: keyword == "chatw",
                from,
                to,
                body,
            })
        }
        _ => None,
    }
}

fn positive(rest: &str) -> Option<ServerLine<'_>> {
    let line = match rest {
        "cgetg" => ServerLine::Games,
        "cpong" => ServerLine::Pong,
        "cquit 'terminating tasks and disconnecting'" => ServerLine::Bye,
        "cquit 'kicked by an administrator'" => ServerLine::Kicked(KickKind::Kicked),
        "cquit 'banned by an administrator'" => ServerLine::Kicked(KickKind::Banned),
        "cquit 'account deleted by an administrator'" => ServerLine::Kicked(KickKind::Deleted),
        "chatm 'message relayed'" => ServerLine::Relayed,
        "chatm 'message stored'" => ServerLine::Stored,
        _ => {
            if let Some(names) = rest.strip_prefix("cgetu") {
                if names.is_empty() {
                    return Some(ServerLine::Users(""));
                }
                return names.strip_prefix(' ').map(ServerLine::Users);
            }
            if let Some(name) = rest.strip_prefix("uname you are ") {
                return is_word(name).then_some(ServerLine::NameSet(name));
            }
            if let Some(names) = rest.strip_prefix("nuser ") {
                let (old, new) = names.split_once(' ')?;
                return (is_word(old) && is_word(new)).then_some(ServerLine::UserRenamed(old, new));
            }
            if rest.ends_with(" ws2017 ready") {
                return Some(ServerLine::Greeting);
            }
            return None;
        }
    };
    Some(line)
}

fn negative(rest: &str) -> Option<ServerLine<'_>> {
    if let Some(text) = quoted(rest) {
        return Some(ServerLine::Error {
            command: None,
            text,
        });
    }
    let (command, rest) = rest.split_once(' ')?;
    if let Some(text) = quoted(rest) {
        return Some(ServerLine::Error {
            command: Some(command),
            text,
        });
    }
    let suggestion = rest.strip_prefix("suggested ")?;
    (command == "uname" && is_word(suggestion)).then_some(ServerLine::NameTaken(suggestion))
}

fn quoted(s: &str) -> Option<&str> {
    s.strip_prefix('\'')?.strip_suffix('\'')
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && !s.contains(' ')
}

/// Whether `name` follows the naming rules of the docs (docs/names.md) as far as the names
/// the simulated clients ask for go: 1-32 characters, no whitespace, no control characters,
/// none of `"&'/:<>@`. (They ask for no invisible, look-alike or reserved names.)
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 32
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"&'/:<>@".contains(c))
}

/// The key of a name, for comparing names as the network does: proto's own
/// [`UserKey::of`](switchboard_proto::UserKey::of) (case, composition and look-alikes are
/// the rule of docs/names.md, not something to write twice). An invalid name gets a key no
/// valid name has, so it equals only itself.
///
/// Memoised per thread: the oracle folds the same few thousand names for every line it
/// reads (a chat's sender and recipient, twice each), and proto's rule (PRECIS, a
/// skeleton, an allocation) was a few per cent of the benchmark. [`UserKey::of`] is a pure
/// function, so a cached key is the key.
///
/// [`UserKey::of`]: switchboard_proto::UserKey::of
pub(crate) fn key(name: &str) -> String {
    /// Names kept before the cache starts again (a fuzzer's or a long run's names
    /// cannot make it grow without bound).
    const MAX_CACHED: usize = 1 << 16;
    type Keys = std::collections::HashMap<Box<str>, Box<str>, BuildFnv>;
    thread_local! {
        static KEYS: core::cell::RefCell<Keys> = core::cell::RefCell::new(Keys::default());
    }
    KEYS.with_borrow_mut(|keys| {
        if let Some(key) = keys.get(name) {
            return String::from(&**key);
        }
        let key = fold(name);
        if keys.len() >= MAX_CACHED {
            keys.clear();
        }
        keys.insert(name.into(), key.as_str().into());
        key
    })
}

/// FNV-1a, for the cache of [`key`]: names are a few bytes, where SipHash's setup costs
/// more than the hashing, and the simulator's own names need no defence against floods.
#[derive(Default)]
struct BuildFnv;

struct Fnv(u64);

impl core::hash::BuildHasher for BuildFnv {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xCBF2_9CE4_8422_2325)
    }
}

impl core::hash::Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// [`key`] without the cache.
fn fold(name: &str) -> String {
    match switchboard_proto::UserKey::of(name) {
        Ok(key) => key.as_str().to_owned(),
        Err(_) => format!("\0{name}"),
    }
}

/// How a client spells a request: every spelling the docs allow means the same.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Spelling {
    /// Keyword in capitals.
    pub(crate) upper: bool,
    /// A bare LF instead of CRLF.
    pub(crate) lf: bool,
    /// Arguments in single quotes.
    pub(crate) quote: bool,
}

fn keyword(out: &mut Vec<u8>, kw: &str, sp: Spelling) {
    if sp.upper {
        out.extend(kw.bytes().map(|b| b.to_ascii_uppercase()));
    } else {
        out.extend_from_slice(kw.as_bytes());
    }
}

fn arg(out: &mut Vec<u8>, value: &str, sp: Spelling) {
    out.push(b' ');
    if sp.quote {
        out.push(b'\'');
        out.extend_from_slice(value.as_bytes());
        out.push(b'\'');
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

fn end(out: &mut Vec<u8>, sp: Spelling) {
    out.extend_from_slice(if sp.lf { b"\n" } else { b"\r\n" });
}

/// A request without arguments (`cgetu`, `cgetg`, `cping`, `cpong`, `cquit`).
pub(crate) fn bare(kw: &str, sp: Spelling) -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    keyword(&mut out, kw, sp);
    end(&mut out, sp);
    out
}

/// `uname <name>`.
pub(crate) fn uname(name: &str, sp: Spelling) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + name.len());
    keyword(&mut out, "uname", sp);
    arg(&mut out, name, sp);
    end(&mut out, sp);
    out
}

/// `chatm <from> <to> '<body>'` or `chatw ...`; unquoted names, the body quoted unless
/// the spelling says otherwise (then it is the rest of the line).
pub(crate) fn chat(whisper: bool, from: &str, to: &str, body: &str, sp: Spelling) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + from.len() + to.len() + body.len());
    keyword(&mut out, if whisper { "chatw" } else { "chatm" }, sp);
    let plain = Spelling { quote: false, ..sp };
    arg(&mut out, from, plain);
    arg(&mut out, to, plain);
    arg(
        &mut out,
        body,
        Spelling {
            quote: !sp.quote,
            ..sp
        },
    );
    end(&mut out, sp);
    out
}

/// `chatr <from> <to>`: this client (`to`) confirms a message from `from`.
pub(crate) fn chatr(from: &str, to: &str, sp: Spelling) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + from.len() + to.len());
    keyword(&mut out, "chatr", sp);
    arg(&mut out, from, Spelling { quote: false, ..sp });
    arg(&mut out, to, Spelling { quote: false, ..sp });
    end(&mut out, sp);
    out
}

/// Words message bodies are made of; some with an apostrophe, some not ASCII.
const WORDS: [&str; 16] = [
    "hello",
    "it's",
    "me",
    "again",
    "grüße",
    "ok",
    "see",
    "you",
    "at",
    "the",
    "lobby",
    "don't",
    "wait",
    "ready?",
    "go!",
    "ünïcödé",
];

/// The body of message `token`: the token first (`m<token>`), then words chosen by the
/// token, so the receiver can check the text arrived intact without storing it.
pub(crate) fn body(token: u64) -> String {
    let mut s = String::with_capacity(40);
    let _ = write!(s, "m{token}");
    let mut h = token.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let words = 1 + (h % 5);
    for _ in 0..words {
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        s.push(' ');
        s.push_str(WORDS[(h >> 60) as usize]);
    }
    s
}

/// The token of a message body, if it has the shape [`body`] gives.
pub(crate) fn token_of(body: &str) -> Option<u64> {
    let digits = body.strip_prefix('m')?;
    let digits = digits.split(' ').next()?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached key is the rule's key, asked once or again, for valid names, names
    /// that fold together and invalid ones (which must stay apart from every valid one).
    #[test]
    fn cached_keys_are_the_rules_keys() {
        let names = [
            "Bob",
            "bob",
            "BOB",
            "b\u{430}b",
            "Ren\u{e9}",
            "Rene\u{301}",
            "a b",
            "",
            "x:y",
            "acct7",
        ];
        for _ in 0..2 {
            for name in names {
                assert_eq!(key(name), fold(name), "{name:?}");
            }
        }
        assert_eq!(key("Bob"), key("bOb"));
        assert_ne!(key("a b"), key("ab"));
        assert_ne!(key(""), key("x"));
    }

    #[test]
    fn every_line_of_the_docs_decodes() {
        use ServerLine::*;
        let table: &[(&str, ServerLine<'_>)] = &[
            ("+OK switchboard ws2017 ready", Greeting),
            ("+OK uname you are alice", NameSet("alice")),
            ("-ERR uname suggested alice2", NameTaken("alice2")),
            ("nuser bob", UserJoined("bob")),
            ("+OK nuser bob robert", UserRenamed("bob", "robert")),
            ("cquit bob", UserLeft("bob")),
            ("+OK cgetu alice bob", Users("alice bob")),
            ("+OK cgetu", Users("")),
            ("+OK cgetg", Games),
            ("+OK chatm 'message relayed'", Relayed),
            ("+OK chatm 'message stored'", Stored),
            (
                "chatm alice bob 'it's me'",
                Chat {
                    whisper: false,
                    from: "alice",
                    to: "bob",
                    body: "it's me",
                },
            ),
            (
                "chatr alice bob",
                Receipt {
                    from: "alice",
                    to: "bob",
                },
            ),
            ("cping", Ping),
            ("+OK cpong", Pong),
            ("+OK cquit 'terminating tasks and disconnecting'", Bye),
            (
                "+OK cquit 'banned by an administrator'",
                Kicked(KickKind::Banned),
            ),
            (
                "-ERR 'entered command does not exist'",
                Error {
                    command: None,
                    text: "entered command does not exist",
                },
            ),
            (
                "-ERR uname 'same username entered'",
                Error {
                    command: Some("uname"),
                    text: "same username entered",
                },
            ),
        ];
        for (line, want) in table {
            assert_eq!(decode(line.as_bytes()), Some(*want), "{line}");
        }
        for bad in [
            "",
            "+OK",
            "hello",
            "chatm a b c",
            "cping x",
            "\u{0}",
            "-ERR x y z",
            // The bytes of before: the original client cannot read them.
            "+OK uname 'you are' alice",
            "+OK uname alice",
            "-ERR uname alice2",
            // A whisper has no +OK line.
            "+OK chatw 'message relayed'",
            "+OK chatw 'message stored'",
        ] {
            assert_eq!(decode(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(decode(&[0xff, 0xfe]), None);
    }

    #[test]
    fn requests_in_every_spelling() {
        let sp = Spelling::default();
        assert_eq!(uname("bob", sp), b"uname bob\r\n");
        let loud = Spelling {
            upper: true,
            lf: true,
            quote: true,
        };
        assert_eq!(uname("bob", loud), b"UNAME 'bob'\n");
        assert_eq!(chat(false, "a", "b", "m1 hi", sp), b"chatm a b 'm1 hi'\r\n");
        assert_eq!(chat(true, "a", "b", "m1 hi", loud), b"CHATW a b m1 hi\n");
        assert_eq!(chatr("a", "b", sp), b"chatr a b\r\n");
        assert_eq!(bare("cpong", loud), b"CPONG\n");
    }

    #[test]
    fn bodies_carry_their_token_and_stay_one_line() {
        for token in [0u64, 1, 42, u64::MAX, 5 << 32 | 7] {
            let b = body(token);
            assert_eq!(token_of(&b), Some(token));
            assert_eq!(b, body(token));
            assert!(!b.contains(['\r', '\n']) && !b.ends_with(' '));
        }
        assert_eq!(token_of("hello"), None);
    }

    #[test]
    fn names_follow_the_docs() {
        assert!(valid_name("Ünïcödé_-.1"));
        assert!(valid_name(&"x".repeat(32)));
        for bad in [
            "",
            "a b",
            "a'b",
            "a@b",
            "a/b",
            "a:b",
            "a<b",
            "\u{7}",
            &"x".repeat(33),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(key("AliCE"), "alice");
        // Composition and look-alikes from other scripts are the same name, as for the server.
        assert_eq!(key("Jose\u{301}"), key("JOS\u{c9}"));
        assert_eq!(key("\u{430}lice"), key("alice"));
        assert_ne!(key("a b"), key("a b").trim_start_matches('\0'));
    }
}
