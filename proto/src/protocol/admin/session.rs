//! One admin connection: reads commands one at a time, answers each once the durable
//! change it made is committed.

use bytes::{Bytes, BytesMut};

use super::codec::{put_pair, AdminCommand, AdminParseError};
use crate::cx::Cx;
use crate::effect::{Effect, EffectResult, Secret};
use crate::frame::lines::{Line, LineFramer};
use crate::ids::{EffectId, Seq};
use crate::model::{Event, KickReason, UserName};
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

    pub(crate) fn buffered(&self) -> usize {
        self.inbound.len()
    }

    pub(crate) fn on_bytes(&mut self, cx: &mut Cx<'_>, bytes: &Bytes) {
        self.inbound.extend_from_slice(bytes);
        self.run(cx);
    }

    /// Handles buffered lines until one waits for an effect.
    fn run(&mut self, cx: &mut Cx<'_>) {
        while cx.is_open() && self.waiting.is_none() {
            match self.framer.next_line(&mut self.inbound) {
                None => break,
                Some(Line::TooLong) => answer(cx, Err("line is too long".into()), None),
                Some(Line::Complete(line)) => match std::str::from_utf8(&line) {
                    Ok(line) if line.trim().is_empty() => {}
                    Ok(line) => self.on_line(cx, line.trim_end()),
                    Err(_) => answer(cx, Err("the line is not UTF-8".into()), None),
                },
            }
        }
        if self.inbound.len() > MAX_BUFFERED {
            answer(cx, Err("too much input while a command runs".into()), None);
            cx.close(crate::io::CloseReason::ProtocolError);
        }
    }

    fn on_line(&mut self, cx: &mut Cx<'_>, line: &str) {
        let command = match AdminCommand::parse(line) {
            Ok(command) => command,
            Err(AdminParseError::Unknown) => {
                return answer(cx, Err("unknown command".into()), None);
            }
            Err(AdminParseError::Malformed(why)) => return answer(cx, Err(why.into()), None),
        };
        if let Err(why) = self.execute(cx, command) {
            answer(cx, Err(why), None);
        }
    }

    fn execute(&mut self, cx: &mut Cx<'_>, command: AdminCommand) -> Result<(), String> {
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
                if cx.net.account(&name.key()).is_some() {
                    return Err(format!("account {name} exists"));
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
            AdminCommand::UserDel { name } => {
                let name = account_name(cx, &name)?;
                durable(cx)?;
                let seq = cx.persist(Change::AccountDeleted { name: name.clone() });
                let kicked = cx.net.kick_user(&name.key(), KickReason::AccountDeleted);
                answer(
                    cx,
                    Ok(format!("account {name} deleted{}", sessions(kicked))),
                    Some(seq),
                );
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
                let count = accounts.len();
                cx.send(Bytes::from(rows));
                answer(cx, Ok(format!("{count} accounts")), None);
            }
            AdminCommand::BanIp(ip) => {
                let seq = if cx.net.ip_banned(ip) {
                    None
                } else {
                    durable(cx)?;
                    Some(cx.persist(Change::IpBanned(ip)))
                };
                let kicked = cx.net.kick_ip(ip);
                let closed = match kicked {
                    0 => String::new(),
                    1 => ", 1 connection closed".to_owned(),
                    n => format!(", {n} connections closed"),
                };
                answer(cx, Ok(format!("{ip} banned{closed}")), seq);
            }
            AdminCommand::UnbanIp(ip) => {
                let seq = if cx.net.ip_banned(ip) {
                    durable(cx)?;
                    Some(cx.persist(Change::IpUnbanned(ip)))
                } else {
                    None
                };
                answer(cx, Ok(format!("{ip} not banned")), seq);
            }
            AdminCommand::BanUser { name } => {
                let name = account_name(cx, &name)?;
                durable(cx)?;
                let seq = cx.persist(Change::UserBanned {
                    name: name.clone(),
                    banned: true,
                });
                let kicked = cx.net.kick_user(&name.key(), KickReason::Banned);
                answer(
                    cx,
                    Ok(format!("{name} banned{}", sessions(kicked))),
                    Some(seq),
                );
            }
            AdminCommand::UnbanUser { name } => {
                let name = account_name(cx, &name)?;
                durable(cx)?;
                let seq = cx.persist(Change::UserBanned {
                    name: name.clone(),
                    banned: false,
                });
                answer(cx, Ok(format!("{name} not banned")), Some(seq));
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
                cx.send(Bytes::from(rows));
                answer(cx, Ok("bans listed".into()), None);
            }
            AdminCommand::Kick { name } => {
                let name = parse_name(&name)?;
                let Some(online) = cx.net.online_name(&name.key()).cloned() else {
                    return Err(format!("{name} is not online"));
                };
                let n = cx.net.kick_user(&name.key(), KickReason::Kicked);
                answer(cx, Ok(format!("{online} kicked{}", sessions(n))), None);
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
        let EffectResult::Hashed {
            password,
            ims_password,
        } = result
        else {
            answer(cx, Err("the password could not be hashed".into()), None);
            return self.run(cx);
        };
        let outcome = durable(cx).and_then(|()| match waiting {
            Waiting::Add {
                name,
                level,
                email,
                gender,
            } => {
                if cx.net.account(&name.key()).is_some() {
                    return Err(format!("account {name} exists"));
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
                let seq = cx.persist(Change::AccountCreated(account));
                Ok((format!("account {name} created"), seq))
            }
            Waiting::Passwd { name } => {
                if cx.net.account(&name.key()).is_none() {
                    return Err(format!("no account {name}"));
                }
                let change = Change::PasswordChanged {
                    name: name.clone(),
                    password,
                    ims_password,
                };
                Ok((format!("password of {name} changed"), cx.persist(change)))
            }
        });
        match outcome {
            Ok((text, seq)) => answer(cx, Ok(text), Some(seq)),
            Err(why) => answer(cx, Err(why), None),
        }
        self.run(cx);
    }

    pub(crate) fn on_event(&mut self, _cx: &mut Cx<'_>, _event: &Event) {}
}

fn parse_name(name: &str) -> Result<UserName, String> {
    UserName::parse(name).map_err(|e| format!("{name:?}: {e}"))
}

/// The registered name of an account, as registered.
fn account_name(cx: &Cx<'_>, name: &str) -> Result<UserName, String> {
    let name = parse_name(name)?;
    match cx.net.account(&name.key()) {
        Some(account) => Ok(account.name.clone()),
        None => Err(format!("no account {name}")),
    }
}

fn check_field(what: &str, value: &str, may_be_empty: bool) -> Result<(), String> {
    if value.is_empty() && !may_be_empty {
        return Err(format!("the {what} is empty"));
    }
    if value.len() > MAX_FIELD {
        return Err(format!("the {what} is longer than {MAX_FIELD} bytes"));
    }
    Ok(())
}

/// Refuses durable work while the store is failing.
fn durable(cx: &Cx<'_>) -> Result<(), String> {
    if cx.store_ok() {
        Ok(())
    } else {
        Err("the store is failing; nothing was changed, try again later".into())
    }
}

fn sessions(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => ", 1 session closed".to_owned(),
        n => format!(", {n} sessions closed"),
    }
}

/// Sends the closing `ok`/`err` line of a command, held until `after` is committed.
fn answer(cx: &mut Cx<'_>, outcome: Result<String, String>, after: Option<Seq>) {
    let line = match outcome {
        Ok(text) => format!("ok {text}\r\n"),
        Err(text) => format!("err {text}\r\n"),
    };
    match after {
        Some(seq) => cx.send_after(Bytes::from(line), seq),
        None => cx.send(Bytes::from(line)),
    }
}
