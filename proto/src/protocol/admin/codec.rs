//! Admin requests as typed commands, both ways: the CLI encodes, the server parses.

use core::fmt::Write as _;
use core::net::IpAddr;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// What percent-encoding escapes in a field: controls, space, `%` and `=`.
const FIELD: &AsciiSet = &CONTROLS.add(b' ').add(b'%').add(b'=');

/// One administrative command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    /// Create an account.
    UserAdd {
        /// Its name.
        name: String,
        /// Its password.
        password: String,
        /// Its level (0 user, 1+ operator).
        level: u8,
        /// Its email.
        email: Option<String>,
        /// Its gender.
        gender: Option<String>,
    },
    /// Delete an account (its sessions are kicked).
    UserDel {
        /// The account.
        name: String,
    },
    /// List the accounts.
    UserList,
    /// Set an account's password.
    UserPasswd {
        /// The account.
        name: String,
        /// The new password.
        password: String,
    },
    /// Whether an account exists (`ok`) or not (`err`).
    UserExists {
        /// The account.
        name: String,
    },
    /// Checks an account's password, as a login would: `ok` when it matches. Failures
    /// count against the account's failed-login bucket, and a check while it is empty is
    /// refused without looking at the password (for logins that carry no client
    /// address, such as the jabberd authreg helper's).
    UserCheck {
        /// The account.
        name: String,
        /// The password to check.
        password: String,
    },
    /// Ban an IP address (its connections are closed).
    BanIp(IpAddr),
    /// Lift an IP ban.
    UnbanIp(IpAddr),
    /// Ban an account (its sessions are kicked).
    BanUser {
        /// The account.
        name: String,
    },
    /// Lift an account ban.
    UnbanUser {
        /// The account.
        name: String,
    },
    /// List the bans.
    BanList,
    /// Close every session of a user, in its protocol's manner.
    Kick {
        /// The user.
        name: String,
    },
    /// The server's version, runtime, uptime, and connections and users online per
    /// protocol.
    Status,
}

/// Why a line is not an admin command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminParseError {
    /// Not a command this protocol has.
    Unknown,
    /// A known command with missing, extra or malformed fields.
    Malformed(&'static str),
}

impl AdminCommand {
    /// The request line for this command, without its line ending.
    pub fn to_line(&self) -> String {
        let mut line = String::new();
        let mut put = |parts: &[&str]| {
            for part in parts {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(part);
            }
        };
        match self {
            AdminCommand::UserAdd {
                name,
                password,
                level,
                email,
                gender,
            } => {
                put(&["user", "add", &field(name), &field(password)]);
                put(&[&format!("level={level}")]);
                if let Some(email) = email {
                    put(&[&format!("email={}", field(email))]);
                }
                if let Some(gender) = gender {
                    put(&[&format!("gender={}", field(gender))]);
                }
            }
            AdminCommand::UserDel { name } => put(&["user", "del", &field(name)]),
            AdminCommand::UserList => put(&["user", "list"]),
            AdminCommand::UserPasswd { name, password } => {
                put(&["user", "passwd", &field(name), &field(password)])
            }
            AdminCommand::UserExists { name } => put(&["user", "exists", &field(name)]),
            AdminCommand::UserCheck { name, password } => {
                put(&["user", "check", &field(name), &field(password)])
            }
            AdminCommand::BanIp(ip) => put(&["ban", "ip", &ip.to_string()]),
            AdminCommand::UnbanIp(ip) => put(&["unban", "ip", &ip.to_string()]),
            AdminCommand::BanUser { name } => put(&["ban", "user", &field(name)]),
            AdminCommand::UnbanUser { name } => put(&["unban", "user", &field(name)]),
            AdminCommand::BanList => put(&["ban", "list"]),
            AdminCommand::Kick { name } => put(&["kick", &field(name)]),
            AdminCommand::Status => put(&["status"]),
        }
        line
    }

    /// Parses a request line (without its line ending).
    pub fn parse(line: &str) -> Result<AdminCommand, AdminParseError> {
        let words: Vec<&str> = line.split(' ').filter(|w| !w.is_empty()).collect();
        let command = match words.as_slice() {
            // An empty field is written as no word at all (percent-encoding has no empty
            // form): a password that is missing, or whose place holds an option (a raw `=`,
            // which an encoded field never holds), is the empty password, which the
            // session refuses.
            ["user", "add", name, options @ ..]
                if options.first().is_none_or(|word| word.contains('=')) =>
            {
                let mut line = vec!["user", "add", name, ""];
                line.extend_from_slice(options);
                return AdminCommand::parse_words(&line);
            }
            ["user", "passwd", name] => AdminCommand::UserPasswd {
                name: decode(name)?,
                password: String::new(),
            },
            ["user", "check", name] => AdminCommand::UserCheck {
                name: decode(name)?,
                password: String::new(),
            },
            _ => return AdminCommand::parse_words(&words),
        };
        Ok(command)
    }

    fn parse_words(words: &[&str]) -> Result<AdminCommand, AdminParseError> {
        let malformed = AdminParseError::Malformed;
        let command = match words {
            ["user", "add", name, password, options @ ..] => {
                let mut level = 0;
                let (mut email, mut gender) = (None, None);
                for option in options {
                    match option.split_once('=') {
                        Some(("level", v)) => {
                            level = v.parse().map_err(|_| malformed("level must be 0-255"))?
                        }
                        Some(("email", v)) => email = Some(decode(v)?),
                        Some(("gender", v)) => gender = Some(decode(v)?),
                        _ => return Err(malformed("unknown option; use level=, email=, gender=")),
                    }
                }
                AdminCommand::UserAdd {
                    name: decode(name)?,
                    password: decode(password)?,
                    level,
                    email,
                    gender,
                }
            }
            ["user", "del", name] => AdminCommand::UserDel {
                name: decode(name)?,
            },
            ["user", "list"] => AdminCommand::UserList,
            ["user", "passwd", name, password] => AdminCommand::UserPasswd {
                name: decode(name)?,
                password: decode(password)?,
            },
            ["user", "exists", name] => AdminCommand::UserExists {
                name: decode(name)?,
            },
            ["user", "check", name, password] => AdminCommand::UserCheck {
                name: decode(name)?,
                password: decode(password)?,
            },
            ["ban", "ip", ip] => AdminCommand::BanIp(parse_ip(ip)?),
            ["unban", "ip", ip] => AdminCommand::UnbanIp(parse_ip(ip)?),
            ["ban", "user", name] => AdminCommand::BanUser {
                name: decode(name)?,
            },
            ["unban", "user", name] => AdminCommand::UnbanUser {
                name: decode(name)?,
            },
            ["ban", "list"] => AdminCommand::BanList,
            ["kick", name] => AdminCommand::Kick {
                name: decode(name)?,
            },
            ["status"] => AdminCommand::Status,
            ["user" | "ban" | "unban" | "kick" | "status", ..] => {
                return Err(malformed("wrong number of fields"))
            }
            _ => return Err(AdminParseError::Unknown),
        };
        Ok(command)
    }
}

/// Percent-encodes one field.
pub(super) fn field(s: &str) -> String {
    utf8_percent_encode(s, FIELD).to_string()
}

fn decode(s: &str) -> Result<String, AdminParseError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| AdminParseError::Malformed("a field is not UTF-8"))
}

fn parse_ip(s: &str) -> Result<IpAddr, AdminParseError> {
    s.parse()
        .map_err(|_| AdminParseError::Malformed("not an IP address"))
}

/// Appends `key=value` with the value percent-encoded.
pub(super) fn put_pair(out: &mut String, key: &str, value: &str) {
    let _ = write!(out, " {key}={}", field(value));
}
