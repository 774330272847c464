//! Judging admin output: each `ok`/`err` matched to its command, the change it reveals,
//! the sessions it closes.

use switchboard_proto::{AdminCommand, Change, Seq};

use super::durable::{fake_hash, fake_ims_hash, key_of};
use super::{check, closed_count, EmitCx, Oracle};
use crate::client::ws2017_codec as codec;
use crate::client::{Heard, Sent};
use crate::net::{Claim, Conn};
use crate::report::Violation;

impl Oracle {
    pub(super) fn admin_line(
        &mut self,
        conn: &mut Conn,
        raw: &[u8],
        after: Option<Seq>,
        end: u64,
        cx: &EmitCx<'_>,
    ) -> Result<Heard, Violation> {
        let text = std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.strip_suffix('\r'));
        let (ok, text) = match text {
            Some(t) if t.starts_with("ok ") => (true, &t[3..]),
            Some(t) if t.starts_with("err ") => (false, &t[4..]),
            Some(t) if t.starts_with("user ") || t.starts_with("ip ") => {
                conn.o.rows += 1;
                conn.claims
                    .push_back((end, Claim::Listing(cx.store.persisted())));
                return Ok(Heard::Other);
            }
            _ => {
                return Err(Violation::new(
                    "server_lines_are_understood",
                    format!("admin line {:?}", String::from_utf8_lossy(raw)),
                ))
            }
        };
        let Some(Sent::Admin(cmd)) = conn.o.sent.pop_front() else {
            return Err(Violation::new(
                "replies_answer_requests",
                format!("admin answer {text:?} to no command"),
            ));
        };
        let rows = std::mem::take(&mut conn.o.rows);
        if ok && matches!(cmd, AdminCommand::UserList | AdminCommand::BanList) {
            conn.claims
                .push_back((end, Claim::Listing(cx.store.persisted())));
        }
        self.admin_answer(conn, &cmd, ok, text, rows, after, end, cx)?;
        Ok(Heard::AdminAnswer { ok })
    }

    #[allow(clippy::too_many_arguments)]
    fn admin_answer(
        &mut self,
        conn: &mut Conn,
        cmd: &AdminCommand,
        ok: bool,
        text: &str,
        rows: u64,
        after: Option<Seq>,
        end: u64,
        cx: &EmitCx<'_>,
    ) -> Result<(), Violation> {
        let holder = |name: &str| self.holders.get(&codec::key(name)).map(|(c, _)| *c);
        let answer_error = |why: String| Violation::new("replies_answer_requests", why);
        if !ok {
            if let AdminCommand::Kick { name } = cmd {
                if text.ends_with(" is not online") && holder(name).is_some() {
                    return Err(answer_error(format!("{name} is online, yet: {text}")));
                }
            }
            self.durable.refused(cmd);
            return Ok(());
        }
        let change = after.and_then(|seq| cx.store.change(seq));
        let link = |claims: &dyn Fn(&Change) -> bool| {
            check!(acknowledgements_wait_on_their_change(
                after,
                change,
                claims,
                &format!("ok {text}")
            ))
        };
        let same =
            |a: &switchboard_proto::UserName, b: &str| codec::key(a.as_str()) == codec::key(b);
        let mut kick = None;
        match cmd {
            AdminCommand::UserAdd {
                name,
                password,
                level,
                email,
                gender,
            } => link(&|c| {
                matches!(c, Change::AccountCreated(a)
                    if a.name.as_str() == name
                        && a.password.0 == fake_hash(password)
                        && a.ims_password.0 == fake_ims_hash(password)
                        && a.level == *level
                        && a.email == *email
                        && a.gender == *gender
                        && !a.banned)
            })?,
            AdminCommand::UserDel { name } => {
                link(&|c| matches!(c, Change::AccountDeleted { name: n } if same(n, name)))?;
                kick = Some(name);
            }
            AdminCommand::UserPasswd { name, password } => link(&|c| {
                matches!(c, Change::PasswordChanged { name: n, password: p, ims_password: i }
                    if same(n, name) && p.0 == fake_hash(password) && i.0 == fake_ims_hash(password))
            })?,
            AdminCommand::BanUser { name } => {
                link(
                    &|c| matches!(c, Change::UserBanned { name: n, banned: true } if same(n, name)),
                )?;
                kick = Some(name);
            }
            AdminCommand::UnbanUser { name } => link(
                &|c| matches!(c, Change::UserBanned { name: n, banned: false } if same(n, name)),
            )?,
            AdminCommand::BanIp(ip) => {
                if after.is_some() {
                    link(&|c| *c == Change::IpBanned(*ip))?;
                } else if !self.ip_banned.contains(ip) {
                    return Err(answer_error(format!("ok {text} without banning {ip}")));
                }
                self.ip_banned.insert(*ip);
                self.step.ip_bans.push((*ip, closed_count(text)));
            }
            AdminCommand::UnbanIp(ip) => {
                if after.is_some() {
                    link(&|c| *c == Change::IpUnbanned(*ip))?;
                } else if self.ip_banned.contains(ip) {
                    return Err(answer_error(format!("ok {text} but {ip} stays banned")));
                }
                self.ip_banned.remove(ip);
            }
            AdminCommand::Kick { name } => {
                if holder(name).is_none() {
                    return Err(answer_error(format!("ok {text} but {name} is not online")));
                }
                kick = Some(name);
            }
            AdminCommand::UserList => {
                let counted = match rows {
                    1 => "1 account".to_owned(),
                    n => format!("{n} accounts"),
                };
                if text != counted {
                    return Err(answer_error(format!("ok {text} after {rows} rows")));
                }
            }
            // Read-only, and the simulator sends neither (the jabberd authreg helper's).
            AdminCommand::BanList
            | AdminCommand::Status
            | AdminCommand::UserExists { .. }
            | AdminCommand::UserCheck { .. } => {}
        }
        if let Some(name) = kick {
            let target = holder(name);
            let count = closed_count(text);
            if count != u64::from(target.is_some()) {
                return Err(answer_error(format!(
                    "ok {text} but {name} is held by {target:?}"
                )));
            }
            self.step.kicks.extend(target);
        }
        if key_of(cmd).is_some() {
            conn.claims.push_back((end, Claim::Admin(cmd.clone())));
        }
        Ok(())
    }
}
