//! One admin connection: reads commands one at a time, answers each once the durable
//! change it made is committed.

use bytes::{Buf, Bytes, BytesMut};

use super::codec::{put_pair, AdminCommand, AdminParseError};
use crate::cx::Cx;
use crate::effect::{Effect, EffectResult, Secret};
use crate::frame::lines::{Line, LineFramer};
use crate::ids::{EffectId, Protocol};
use crate::model::{Event, Item, KickReason, UserName};
use crate::persist::{Account, Change};

/// Longest admin line.
const MAX_LINE: usize = 16 * 1024;
/// Most bytes buffered while a command waits for its effect.
const MAX_BUFFERED: usize = 64 * 1024;
/// Longest password, email or gender accepted.
const MAX_FIELD: usize = 1024;

/// A command waiting for its password hash.
#[derive(Debug)]
enum Waiting {
    Add {
        name: UserName,
        level: u8,
        email: Option<String>,
        gender: Option<String>,
    },
    Passwd {
        name: UserName,
    },
    /// A `user check` waiting for its password verification.
    Check {
        name: UserName,
    },
}

/// One admin connection.
#[derive(Debug)]
pub(crate) struct Session {
    framer: LineFramer,
    inbound: BytesMut,
    waiting: Option<(EffectId, Waiting)>,
}

impl Session {
    pub(crate) fn open() -> Session {
        Session {
            framer: LineFramer::new(MAX_LINE),
            inbound: BytesMut::new(),
            waiting: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn input_capacity(&self) -> usize {
        self.inbound.capacity()
    }

    pub(crate) fn buffered(&self) -> usize {
        self.inbound.len()
    }

    pub(crate) fn on_bytes(&mut self, cx: &mut Cx<'_>, bytes: &Bytes) {
        self.inbound.extend_from_slice(bytes);
        self.run(cx);
    }

    /// Handles buffered lines until one waits for an effect.
    fn run(&mut self, cx: &mut Cx<'_>) {
        let mut inbound = std::mem::take(&mut self.inbound);
        crate::frame::take_frames(&mut inbound, |inbound| {
            while cx.is_open() && self.waiting.is_none() {
                match self.framer.next_line(inbound) {
                    None => break,
                    Some(Line::TooLong) => refuse(cx, "line is too long".into()),
                    Some(Line::Complete { len, consumed }) => {
                        match std::str::from_utf8(&inbound[..len]) {
                            Ok(line) if line.trim().is_empty() => {}
                            Ok(line) => self.on_line(cx, line.trim_end()),
                            Err(_) => refuse(cx, "the line is not UTF-8".into()),
                        }
                        inbound.advance(consumed);
                    }
                }
            }
        });
        self.inbound = inbound;
        if self.inbound.len() > MAX_BUFFERED {
            refuse(cx, "too much input while a command runs".into());
            cx.close(crate::io::CloseReason::ProtocolError);
        }
    }

    fn on_line(&mut self, cx: &mut Cx<'_>, line: &str) {
        let command = match AdminCommand::parse(line) {
            Ok(command) => command,
            Err(AdminParseError::Unknown) => {
                return refuse(cx, "unknown command".into());
            }
            Err(AdminParseError::Malformed(why)) => return refuse(cx, why.into()),
        };
        if let Err(why) = self.execute(cx, command) {
            refuse(cx, why);
        }
    }

    fn execute(&mut self, cx: &mut Cx<'_>, command: AdminCommand) -> Result<(), Refusal> {
        match command {
            AdminCommand::UserAdd {
                name,
                password,
                level,
                email,
                gender,
            } => {
                let name = parse_name(&name)?;
                check_field("password", &password, false)?;
                for (what, value) in [("email", &email), ("gender", &gender)] {
                    if let Some(value) = value {
                        check_field(what, value, true)?;
                    }
                }
                if cx.net.account(name.key_ref()).is_some() {
                    return Err(exists(&name));
                }
                if let Some(online) = cx.net.online_name(name.key_ref()) {
                    let why = format!("{online} is online without an account; kick them first");
                    return Err(why.into());
                }
                durable(cx)?;
                let id = cx.effect(Effect::HashPassword {
                    password: Secret(password),
                });
                let waiting = Waiting::Add {
                    name,
                    level,
                    email,
                    gender,
                };
                self.waiting = Some((id, waiting));
            }
            AdminCommand::UserPasswd { name, password } => {
                let name = account_name(cx, &name)?;
                check_field("password", &password, false)?;
                durable(cx)?;
                let id = cx.effect(Effect::HashPassword {
                    password: Secret(password),
                });
                self.waiting = Some((id, Waiting::Passwd { name }));
            }
            AdminCommand::UserExists { name } => {
                let name = account_name(cx, &name)?;
                let text = format!("account {name} exists");
                answer(cx, text, About::Item(Item::Account(name.key())));
            }
            AdminCommand::UserCheck { name, password } => {
                let name = account_name(cx, &name)?;
                let key = name.key();
                // Before the password is looked at: a guesser whose tries are used up
                // makes no hash either.
                if cx.login_allowed(&key).is_err() {
                    let why = format!("too many failed logins for {name}; try again later");
                    return Err(why.into());
                }
                let hash = match cx.net.account(&key) {
                    Some(account) if account.banned => {
                        return Err(Refusal {
                            text: format!("{name} is banned"),
                            about: Some(Item::Account(key)),
                        })
                    }
                    Some(account) => account.password.clone(),
                    None => return Err(no_account(&name)),
                };
                if password.is_empty() || password.len() > MAX_FIELD {
                    cx.login_failed(&key);
                    return Err(wrong_password(&name));
                }
                let id = cx.effect(Effect::VerifyPassword {
                    hash,
                    password: Secret(password),
                });
                self.waiting = Some((id, Waiting::Check { name }));
            }
            AdminCommand::UserDel { name } => {
                let name = account_name(cx, &name)?;
                durable(cx)?;
                cx.persist(Change::AccountDeleted { name: name.clone() });
                let kicked = cx.net.kick_user(name.key_ref(), KickReason::AccountDeleted);
                let text = format!("account {name} deleted{}", sessions(kicked));
                answer(cx, text, About::Item(Item::Account(name.key())));
            }
            AdminCommand::UserList => {
                let mut rows = String::new();
                let accounts = &cx.net.state().accounts;
                for account in accounts.values() {
                    rows.push_str("user ");
                    rows.push_str(&super::codec::field(account.name.as_str()));
                    rows.push_str(&format!(" level={}", account.level));
                    rows.push_str(if account.banned {
                        " banned=yes"
                    } else {
                        " banned=no"
                    });
                    rows.push_str(&format!(" created={}", account.created_ms));
                    put_pair(&mut rows, "email", account.email.as_deref().unwrap_or(""));
                    put_pair(&mut rows, "gender", account.gender.as_deref().unwrap_or(""));
                    rows.push_str("\r\n");
                }
                let count = match accounts.len() {
                    1 => "1 account".to_owned(),
                    n => format!("{n} accounts"),
                };
                cx.send_about_all(Bytes::from(rows));
                answer(cx, count, About::All);
            }
            AdminCommand::BanIp(ip) => {
                if !cx.net.ip_banned(ip) {
                    durable(cx)?;
                    cx.persist(Change::IpBanned(ip));
                }
                let kicked = cx.kick_ip(ip);
                let closed = match kicked {
                    0 => String::new(),
                    1 => ", 1 connection closed".to_owned(),
                    n => format!(", {n} connections closed"),
                };
                answer(
                    cx,
                    format!("{ip} banned{closed}"),
                    About::Item(Item::Ip(ip)),
                );
            }
            AdminCommand::UnbanIp(ip) => {
                if cx.net.ip_banned(ip) {
                    durable(cx)?;
                    cx.persist(Change::IpUnbanned(ip));
                }
                answer(cx, format!("{ip} not banned"), About::Item(Item::Ip(ip)));
            }
            AdminCommand::BanUser { name } => {
                let name = account_name(cx, &name)?;
                durable(cx)?;
                cx.persist(Change::UserBanned {
                    name: name.clone(),
                    banned: true,
                });
                let kicked = cx.net.kick_user(name.key_ref(), KickReason::Banned);
                let text = format!("{name} banned{}", sessions(kicked));
                answer(cx, text, About::Item(Item::Account(name.key())));
            }
            AdminCommand::UnbanUser { name } => {
                let name = account_name(cx, &name)?;
                durable(cx)?;
                cx.persist(Change::UserBanned {
                    name: name.clone(),
                    banned: false,
                });
                let text = format!("{name} not banned");
                answer(cx, text, About::Item(Item::Account(name.key())));
            }
            AdminCommand::BanList => {
                let mut rows = String::new();
                let state = cx.net.state();
                for ip in &state.ip_bans {
                    rows.push_str(&format!("ip {ip}\r\n"));
                }
                let users = state.accounts.values().filter(|a| a.banned);
                for account in users {
                    rows.push_str(&format!("user {}\r\n", account.name));
                }
                cx.send_about_all(Bytes::from(rows));
                answer(cx, "bans listed".into(), About::All);
            }
            AdminCommand::Kick { name } => {
                let name = parse_name(&name)?;
                let Some(online) = cx.net.online_name(name.key_ref()).cloned() else {
                    return Err(format!("{name} is not online").into());
                };
                let n = cx.net.kick_user(name.key_ref(), KickReason::Kicked);
                answer(cx, format!("{online} kicked{}", sessions(n)), About::Now);
            }
            AdminCommand::Status => {
                let mut rows = format!(
                    "version {}\r\nruntime {}\r\nuptime {}\r\n",
                    super::codec::field(&cx.config.version),
                    super::codec::field(&cx.config.runtime),
                    // The runtimes' monotonic time starts with the server.
                    cx.now.mono.as_millis() / 1000,
                );
                let mut conns = [0_usize; Protocol::ALL.len()];
                for conn in cx.conns.iter() {
                    conns[conn.protocol.index()] += 1;
                }
                let sessions = &cx.net.counters().sessions;
                for protocol in Protocol::ALL {
                    let i = protocol.index();
                    rows.push_str(&format!(
                        "protocol {protocol} connections={} sessions={}\r\n",
                        conns[i], sessions[i]
                    ));
                }
                rows.push_str(&format!("users online={}\r\n", cx.net.online_count()));
                cx.send(Bytes::from(rows));
                answer(cx, "status".into(), About::Now);
            }
        }
        Ok(())
    }

    pub(crate) fn on_effect(&mut self, cx: &mut Cx<'_>, id: EffectId, result: EffectResult) {
        let Some((waiting_id, waiting)) = self.waiting.take() else {
            return;
        };
        if waiting_id != id {
            self.waiting = Some((waiting_id, waiting));
            return;
        }
        let waiting = match waiting {
            Waiting::Check { name } => {
                self.checked(cx, name, result == EffectResult::Verified(true));
                return self.run(cx);
            }
            waiting => waiting,
        };
        let EffectResult::Hashed {
            password,
            ims_password,
        } = result
        else {
            refuse(cx, "the password could not be hashed".into());
            return self.run(cx);
        };
        let outcome = durable(cx).and_then(|()| match waiting {
            Waiting::Add {
                name,
                level,
                email,
                gender,
            } => {
                if cx.net.account(name.key_ref()).is_some() {
                    return Err(exists(&name));
                }
                let account = Account {
                    name: name.clone(),
                    password,
                    ims_password,
                    email,
                    gender,
                    level,
                    banned: false,
                    created_ms: cx.now.wall_ms,
                };
                cx.persist(Change::AccountCreated(account));
                Ok((format!("account {name} created"), name))
            }
            Waiting::Passwd { name } => {
                if cx.net.account(name.key_ref()).is_none() {
                    return Err(no_account(&name));
                }
                let change = Change::PasswordChanged {
                    name: name.clone(),
                    password,
                    ims_password,
                };
                cx.persist(change);
                Ok((format!("password of {name} changed"), name))
            }
            Waiting::Check { name } => Err(no_account(&name)),
        });
        match outcome {
            Ok((text, name)) => answer(cx, text, About::Item(Item::Account(name.key()))),
            Err(refusal) => refuse(cx, refusal),
        }
        self.run(cx);
    }

    /// Answers a `user check` whose verification is done: a match is `ok` unless the
    /// account went or was banned meanwhile; a mismatch is counted against the account.
    fn checked(&mut self, cx: &mut Cx<'_>, name: UserName, matched: bool) {
        let key = name.key();
        let refusal = match cx.net.account(&key) {
            None => Some(no_account(&name)),
            Some(account) if account.banned => Some(Refusal {
                text: format!("{name} is banned"),
                about: Some(Item::Account(key.clone())),
            }),
            Some(_) if !matched => {
                cx.login_failed(&key);
                Some(wrong_password(&name))
            }
            Some(_) => {
                cx.login_succeeded(&key);
                None
            }
        };
        match refusal {
            Some(refusal) => refuse(cx, refusal),
            None => answer(
                cx,
                format!("password of {name} matches"),
                About::Item(Item::Account(key)),
            ),
        }
    }

    pub(crate) fn on_event(&mut self, _cx: &mut Cx<'_>, _event: &Event) {}
}

fn parse_name(name: &str) -> Result<UserName, Refusal> {
    UserName::parse(name).map_err(|e| format!("{name:?}: {e}").into())
}

/// The registered name of an account, as registered.
fn account_name(cx: &Cx<'_>, name: &str) -> Result<UserName, Refusal> {
    let name = parse_name(name)?;
    match cx.net.account(name.key_ref()) {
        Some(account) => Ok(account.name.clone()),
        None => Err(no_account(&name)),
    }
}

fn check_field(what: &str, value: &str, may_be_empty: bool) -> Result<(), Refusal> {
    if value.is_empty() && !may_be_empty {
        return Err(format!("the {what} is empty").into());
    }
    if value.len() > MAX_FIELD {
        return Err(format!("the {what} is longer than {MAX_FIELD} bytes").into());
    }
    Ok(())
}

/// Refuses durable work while the store is failing.
fn durable(cx: &Cx<'_>) -> Result<(), Refusal> {
    if cx.store_ok() {
        Ok(())
    } else {
        Err("the store is failing; nothing was changed, try again later".into())
    }
}

/// Why a command was refused, and the durable state the refusal reveals.
#[derive(Debug)]
struct Refusal {
    text: String,
    about: Option<Item>,
}

impl From<String> for Refusal {
    fn from(text: String) -> Refusal {
        Refusal { text, about: None }
    }
}

impl From<&str> for Refusal {
    fn from(text: &str) -> Refusal {
        text.to_owned().into()
    }
}

fn exists(name: &UserName) -> Refusal {
    Refusal {
        text: format!("account {name} exists"),
        about: Some(Item::Account(name.key())),
    }
}

fn wrong_password(name: &UserName) -> Refusal {
    Refusal {
        text: format!("wrong password for {name}"),
        about: Some(Item::Account(name.key())),
    }
}

fn no_account(name: &UserName) -> Refusal {
    Refusal {
        text: format!("no account {name}"),
        about: Some(Item::Account(name.key())),
    }
}

/// What durable state an answer reveals, and so which commit it waits for.
enum About {
    /// Nothing durable: it goes at once.
    Now,
    /// One item: it waits for that item's pending change.
    Item(Item),
    /// Everything (a listing): it waits for every pending change.
    All,
}

fn sessions(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => ", 1 session closed".to_owned(),
        n => format!(", {n} sessions closed"),
    }
}

/// Sends the closing `ok` line of a command once what it reveals is committed: an
/// administrator never reads state a crash could take back.
fn answer(cx: &mut Cx<'_>, text: String, about: About) {
    let line = Bytes::from(format!("ok {text}\r\n"));
    match about {
        About::Now => cx.send(line),
        About::Item(item) => cx.send_about(&item, line),
        About::All => cx.send_about_all(line),
    }
}

/// Sends the closing `err` line of a refused command.
fn refuse(cx: &mut Cx<'_>, refusal: Refusal) {
    let line = Bytes::from(format!("err {}\r\n", refusal.text));
    match refusal.about {
        Some(item) => cx.send_about(&item, line),
        None => cx.send(line),
    }
}
