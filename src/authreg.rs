//! `switchboard jabberd-authreg`: the program jabberd2's c2s runs as its `pipe` authreg
//! module, so that XMPP users log in with their Switchboard accounts (docs/operations.md,
//! "jabberd-authreg").
//!
//! c2s writes one command line on our stdin and then blocks, all of it, in one `read()` of
//! our stdout: every command gets exactly one `OK` or `NO` line, promptly, and the helper
//! never exits except on `FREE` or end of input (c2s never restarts it). Every question
//! goes to the running server over its admin socket (`user exists`, `user check`,
//! `user add`, `user passwd`, `user del`); the store is never opened here, so the name
//! rules, the password hashes and the failed-login throttling stay in the server. When the
//! server does not answer in `--timeout`, the answer is `NO` and a line goes to stderr.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use switchboard_proto::{AdminCommand, UserKey, UserName};
use switchboard_store::start::error_chain;

use crate::admin::{self, Answer};
use crate::cli::AuthregArgs;

/// The first line: every capability c2s 2.7.0 uses except `GET-PASSWORD`, which would
/// need the cleartext password (Switchboard keeps argon2id hashes).
pub const GREETING: &str =
    "OK USER-EXISTS CHECK-PASSWORD SET-PASSWORD CREATE-USER DELETE-USER FREE\n";

/// c2s formats a command into a 1024-byte buffer: a longer one arrives cut to 1023 bytes
/// without its newline. So many bytes pending without a newline are one truncated
/// command, answered `NO` at once (waiting for a newline would freeze c2s for good).
pub const MAX_COMMAND: usize = 1023;

/// How long a name reserved by `CREATE-USER` waits for the `SET-PASSWORD` that creates
/// the account (c2s sends it right after; it never rolls back a failed one).
const RESERVATION: Duration = Duration::from_secs(60);

/// Most names reserved at once (c2s is synchronous: it has at most one registration
/// under way, so more are stale).
const MAX_RESERVATIONS: usize = 64;

/// One command of c2s, its fields checked.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    UserExists(UserName),
    CheckPassword(UserName, String),
    SetPassword(UserName, String),
    CreateUser(UserName),
    DeleteUser(UserName),
    Free,
}

/// Why a line is answered `NO` without asking the server.
#[derive(Debug, PartialEq, Eq)]
enum Malformed {
    /// Not UTF-8.
    Encoding,
    /// An unknown command (or `GET-PASSWORD`, never advertised), or the wrong number of
    /// fields for a known one.
    Shape,
    /// The realm is not `--realm`.
    Realm,
    /// The user is empty or breaks Switchboard's name rules.
    Name,
    /// The password is not standard padded base64 of non-empty UTF-8.
    Password,
}

/// Parses one command line (without its newline). Fields are separated by single
/// spaces and counted exactly; the realm, the last field, may be empty (`realm=''`).
fn parse(line: &[u8], realm: Option<&str>) -> Result<Request, Malformed> {
    let line = std::str::from_utf8(line).map_err(|_| Malformed::Encoding)?;
    let fields: Vec<&str> = line.split(' ').collect();
    let (command, user, password, their_realm) = match fields.as_slice() {
        ["FREE"] => return Ok(Request::Free),
        [command @ ("USER-EXISTS" | "CREATE-USER" | "DELETE-USER"), user, realm] => {
            (*command, *user, None, *realm)
        }
        [command @ ("CHECK-PASSWORD" | "SET-PASSWORD"), user, password, realm] => {
            (*command, *user, Some(*password), *realm)
        }
        _ => return Err(Malformed::Shape),
    };
    if realm.is_some_and(|realm| realm != their_realm) {
        return Err(Malformed::Realm);
    }
    let user = UserName::parse(user).map_err(|_| Malformed::Name)?;
    let password = password.map(decode_password).transpose()?;
    Ok(match (command, password) {
        ("USER-EXISTS", None) => Request::UserExists(user),
        ("CREATE-USER", None) => Request::CreateUser(user),
        ("DELETE-USER", None) => Request::DeleteUser(user),
        ("CHECK-PASSWORD", Some(password)) => Request::CheckPassword(user, password),
        ("SET-PASSWORD", Some(password)) => Request::SetPassword(user, password),
        _ => return Err(Malformed::Shape),
    })
}

fn decode_password(field: &str) -> Result<String, Malformed> {
    let bytes = STANDARD.decode(field).map_err(|_| Malformed::Password)?;
    match String::from_utf8(bytes) {
        Ok(password) if !password.is_empty() => Ok(password),
        _ => Err(Malformed::Password),
    }
}

/// What the helper keeps between commands.
struct Helper {
    socket: PathBuf,
    timeout: Duration,
    realm: Option<String>,
    /// Names `CREATE-USER` answered `OK` for, waiting for their `SET-PASSWORD`.
    reserved: HashMap<UserKey, Instant>,
}

impl Helper {
    /// The server's answer to `command`, or `None` (and a line on stderr) when it could
    /// not be asked.
    fn ask(&self, command: &AdminCommand) -> Option<Answer> {
        match admin::online(command, &self.socket, self.timeout) {
            Ok(answer) => Some(answer),
            Err(e) => {
                eprintln!(
                    "switchboard jabberd-authreg: answering NO: {}",
                    error_chain(&e)
                );
                None
            }
        }
    }

    fn ok(&self, command: &AdminCommand) -> bool {
        self.ask(command).is_some_and(|answer| answer.ok)
    }

    /// The answer to one request (`None` for `FREE`: no answer, exit).
    fn answer(&mut self, request: Request) -> Option<bool> {
        let now = Instant::now();
        self.reserved
            .retain(|_, at| now.duration_since(*at) < RESERVATION);
        let name = |user: &UserName| user.as_str().to_owned();
        Some(match request {
            Request::Free => return None,
            Request::UserExists(user) => self.ok(&AdminCommand::UserExists { name: name(&user) }),
            Request::CheckPassword(user, password) => self.ok(&AdminCommand::UserCheck {
                name: name(&user),
                password,
            }),
            Request::CreateUser(user) => {
                // c2s creates password-less, then sets the password: the account is made
                // (hashed) by that SET-PASSWORD; here the name is only checked and held.
                let free = self
                    .ask(&AdminCommand::UserExists { name: name(&user) })
                    .is_some_and(|a| !a.ok && a.text.starts_with("no account "));
                if free && self.reserved.len() < MAX_RESERVATIONS {
                    self.reserved.insert(user.key(), now);
                }
                free && self.reserved.contains_key(&user.key())
            }
            Request::SetPassword(user, password) => {
                if self.reserved.remove(&user.key()).is_some() {
                    self.ok(&AdminCommand::UserAdd {
                        name: name(&user),
                        password,
                        level: 0,
                        email: None,
                        gender: None,
                    })
                } else {
                    // c2s sends it for the logged-in user's own name only.
                    self.ok(&AdminCommand::UserPasswd {
                        name: name(&user),
                        password,
                    })
                }
            }
            Request::DeleteUser(user) => {
                let held = self.reserved.remove(&user.key()).is_some();
                let deleted = self.ok(&AdminCommand::UserDel { name: name(&user) });
                // A name that was only held had no account to delete.
                deleted || held
            }
        })
    }
}

/// Writes one reply line with a single `write()`.
fn reply(out: &mut impl Write, line: &str) -> io::Result<()> {
    out.write_all(line.as_bytes())?;
    out.flush()
}

/// The next reply owed for the bytes in `pending`, taking its command out of them:
/// `Some(None)` for `FREE`, `None` while a command is still incomplete.
fn next(helper: &mut Helper, pending: &mut Vec<u8>) -> Option<Option<bool>> {
    let window = &pending[..pending.len().min(MAX_COMMAND)];
    if let Some(end) = window.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).take(end).collect();
        return Some(match parse(&line, helper.realm.as_deref()) {
            Ok(request) => helper.answer(request),
            Err(_) => Some(false),
        });
    }
    if pending.len() >= MAX_COMMAND {
        // A truncated command: exactly what c2s sent, so the next command starts clean.
        pending.drain(..MAX_COMMAND);
        return Some(Some(false));
    }
    None
}

/// Runs the helper on stdin/stdout until `FREE` or end of input.
pub fn run(args: AuthregArgs) -> ExitCode {
    let mut helper = Helper {
        socket: switchboard_store::data_dir::admin_socket_path(&args.data_dir),
        timeout: args.timeout.0,
        realm: args.realm,
        reserved: HashMap::new(),
    };
    let mut out = io::stdout().lock();
    if reply(&mut out, GREETING).is_err() {
        return ExitCode::FAILURE;
    }
    let mut input = io::stdin().lock();
    let mut pending = Vec::new();
    let mut buf = [0; 4096];
    loop {
        while let Some(answer) = next(&mut helper, &mut pending) {
            let Some(ok) = answer else {
                return ExitCode::SUCCESS;
            };
            if reply(&mut out, if ok { "OK\n" } else { "NO\n" }).is_err() {
                // c2s is gone.
                return ExitCode::SUCCESS;
            }
        }
        match input.read(&mut buf) {
            Ok(0) => return ExitCode::SUCCESS,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("switchboard jabberd-authreg: reading stdin: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Result<Request, Malformed> {
        parse(line.as_bytes(), None)
    }

    fn name(s: &str) -> UserName {
        UserName::parse(s).expect("a valid name")
    }

    #[test]
    fn commands_parse_with_exact_field_counts_and_an_empty_realm() {
        assert_eq!(
            parsed("CHECK-PASSWORD alice d29uZGVybGFuZA== localhost"),
            Ok(Request::CheckPassword(name("alice"), "wonderland".into()))
        );
        assert_eq!(
            parsed("CHECK-PASSWORD alice d29uZGVybGFuZA== "),
            Ok(Request::CheckPassword(name("alice"), "wonderland".into()))
        );
        assert_eq!(
            parsed("SET-PASSWORD carol cHcgb25l localhost"),
            Ok(Request::SetPassword(name("carol"), "pw one".into()))
        );
        assert_eq!(
            parsed("USER-EXISTS alice "),
            Ok(Request::UserExists(name("alice")))
        );
        assert_eq!(parsed("FREE"), Ok(Request::Free));
        // An authcid with a space arrives as an extra field; an empty one as an empty field.
        assert_eq!(
            parsed("CHECK-PASSWORD alice x d29uZGVybGFuZA== localhost"),
            Err(Malformed::Shape)
        );
        assert_eq!(
            parsed("CHECK-PASSWORD  eA== localhost"),
            Err(Malformed::Name)
        );
        assert_eq!(parsed("USER-EXISTS alice"), Err(Malformed::Shape));
        assert_eq!(
            parsed("GET-PASSWORD alice localhost"),
            Err(Malformed::Shape)
        );
        assert_eq!(parsed("FREE "), Err(Malformed::Shape));
        assert_eq!(parsed(""), Err(Malformed::Shape));
        assert_eq!(
            parsed("CHECK-PASSWORD alice d29uZGVybGFuZA localhost"),
            Err(Malformed::Password)
        );
        assert_eq!(
            parsed("CHECK-PASSWORD alice  localhost"),
            Err(Malformed::Password)
        );
        assert_eq!(parsed("USER-EXISTS a:b localhost"), Err(Malformed::Name));
        assert_eq!(
            parse(b"USER-EXISTS \xff localhost", None),
            Err(Malformed::Encoding)
        );
        assert_eq!(
            parse(b"USER-EXISTS alice example.org", Some("localhost")),
            Err(Malformed::Realm)
        );
        assert_eq!(
            parse(b"USER-EXISTS alice ", Some("")),
            Ok(Request::UserExists(name("alice")))
        );
    }

    #[test]
    fn the_greeting_never_offers_get_password() {
        assert!(GREETING.starts_with("OK "));
        assert!(GREETING.ends_with('\n') && !GREETING.contains('\r'));
        assert!(!GREETING.contains("GET-PASSWORD"));
        for capability in ["USER-EXISTS", "CHECK-PASSWORD", "CREATE-USER", "FREE"] {
            assert!(GREETING.contains(capability), "{capability}");
        }
    }

    #[test]
    fn a_truncated_command_is_answered_and_the_next_one_starts_clean() {
        let mut helper = Helper {
            socket: PathBuf::from("/nonexistent/switchboard.sock"),
            timeout: Duration::from_millis(100),
            realm: None,
            reserved: HashMap::new(),
        };
        let mut pending = vec![b'A'; MAX_COMMAND - 1];
        assert_eq!(next(&mut helper, &mut pending), None);
        pending.push(b'A');
        assert_eq!(next(&mut helper, &mut pending), Some(Some(false)));
        assert!(pending.is_empty());
        pending.extend_from_slice(b"FREE\n");
        assert_eq!(next(&mut helper, &mut pending), Some(None));
    }
}
