//! The virtual administrator: one connection to the admin socket, one command at a time
//! (`AdminCommand::to_line`), waiting for each `ok`/`err` before the next. It creates,
//! deletes and re-keys accounts, bans and unbans users and the clients' addresses, kicks
//! online users and lists things. In the liveness phase it lifts every IP ban it may
//! have left, retrying while the store fails.

use std::collections::VecDeque;

use switchboard_proto::{AdminCommand, ConnId};

use super::{Act, Directory, Heard, Link, Sent};
use crate::choices::Choices;

/// The administrator.
pub(crate) struct AdminClient<C> {
    rng: C,
    /// Its connection.
    pub(crate) link: Link,
    /// The command waiting for its answer.
    waiting: Option<AdminCommand>,
    /// A command whose answer was lost with its connection: tried again, sometimes,
    /// as an administrator would (its first try may have landed or not).
    lost: Option<AdminCommand>,
    /// The command waited on is the front of the script.
    waiting_script: bool,
    script: VecDeque<AdminCommand>,
    healing: bool,
    /// Generation of its wake-up timer.
    pub(crate) gen: u32,
    every_ms: u64,
    passwords: u64,
}

impl<C: Choices> AdminClient<C> {
    pub(crate) fn new(rng: C, every_ms: u64) -> Self {
        AdminClient {
            rng,
            link: Link::Offline,
            waiting: None,
            lost: None,
            waiting_script: false,
            script: VecDeque::new(),
            healing: false,
            gen: 0,
            every_ms,
            passwords: 0,
        }
    }

    /// The simulator opened connection `conn` for it.
    pub(crate) fn connecting(&mut self, conn: ConnId) {
        self.link = Link::Connecting(conn);
    }

    /// Whether its liveness work is done: every ban it may have left is lifted.
    pub(crate) fn healed(&self) -> bool {
        self.healing && self.script.is_empty()
    }

    /// A short description for failure reports.
    pub(crate) fn describe(&self) -> String {
        format!(
            "admin link={:?} waiting={:?} healing={} script={:?}",
            self.link, self.waiting, self.healing, self.script
        )
    }

    fn wake_in(&mut self, mean: u64, acts: &mut Vec<Act>) {
        let ms = self.rng.around(mean).max(1);
        acts.push(Act::Wake(ms));
    }

    /// Its timer fired.
    pub(crate) fn on_wake(&mut self, dir: &Directory, acts: &mut Vec<Act>) {
        match self.link {
            Link::Offline => {
                acts.push(Act::Connect);
                self.wake_in(self.every_ms, acts);
            }
            Link::Connecting(conn) => {
                // The admin protocol has no greeting: connected once accepted.
                self.link = Link::Open(conn);
                self.wake_in(10, acts);
            }
            Link::Open(_) if self.waiting.is_some() => self.wake_in(self.every_ms, acts),
            Link::Open(_) => {
                let command = if self.healing {
                    match self.script.front() {
                        Some(command) => command.clone(),
                        None => return,
                    }
                } else {
                    match self.lost.take() {
                        Some(again) if self.rng.ratio(1, 2) => again,
                        _ => self.command(dir),
                    }
                };
                let mut line = command.to_line().into_bytes();
                line.extend_from_slice(b"\r\n");
                self.waiting = Some(command.clone());
                self.waiting_script = self.healing;
                acts.push(Act::Send {
                    conn: self.link.conn().unwrap_or(ConnId(0)),
                    bytes: line,
                    sent: Sent::Admin(command),
                });
                self.wake_in(self.every_ms, acts);
            }
        }
    }

    fn name(&mut self, dir: &Directory) -> String {
        if self.rng.ratio(1, 6) {
            let online: Vec<&String> = dir.names.iter().flatten().collect();
            if !online.is_empty() {
                return (*self.rng.pick(&online)).clone();
            }
        }
        self.rng.pick(&dir.accounts).clone()
    }

    fn password(&mut self) -> String {
        self.passwords += 1;
        match self.rng.below(3) {
            0 => format!("pw{}", self.passwords),
            1 => format!("p w%{}=x", self.passwords),
            _ => format!("pässwört{}", self.passwords),
        }
    }

    fn command(&mut self, dir: &Directory) -> AdminCommand {
        let ip = *self.rng.pick(&dir.ips);
        match self.rng.weighted(&[20, 6, 8, 4, 4, 3, 6, 6, 3, 2]) {
            0 => AdminCommand::UserAdd {
                name: self.name(dir),
                password: self.password(),
                level: self.rng.below(3) as u8,
                email: self
                    .rng
                    .ratio(1, 3)
                    .then(|| format!("x{}@example.org", self.rng.below(100))),
                gender: self.rng.ratio(1, 3).then(|| "n b".to_owned()),
            },
            1 => AdminCommand::UserDel {
                name: self.name(dir),
            },
            2 => AdminCommand::UserPasswd {
                name: self.name(dir),
                password: self.password(),
            },
            3 => AdminCommand::BanUser {
                name: self.name(dir),
            },
            4 => AdminCommand::UnbanUser {
                name: self.name(dir),
            },
            5 => AdminCommand::BanIp(ip),
            6 => AdminCommand::UnbanIp(ip),
            7 => AdminCommand::Kick {
                name: self.name(dir),
            },
            8 => AdminCommand::UserList,
            _ => AdminCommand::BanList,
        }
    }

    /// It heard a line: an answer ends the command it waited on.
    pub(crate) fn on_heard(&mut self, heard: &Heard, acts: &mut Vec<Act>) {
        if let Heard::AdminAnswer { ok } = *heard {
            self.waiting = None;
            if self.healing {
                if ok && std::mem::take(&mut self.waiting_script) {
                    self.script.pop_front();
                }
                self.wake_in(20, acts);
            }
        }
    }

    /// Its connection is gone; the command it waited on may or may not have happened.
    pub(crate) fn on_closed(&mut self, acts: &mut Vec<Act>) {
        self.link = Link::Offline;
        self.lost = self.waiting.take();
        self.waiting_script = false;
        self.wake_in(if self.healing { 50 } else { self.every_ms }, acts);
    }

    /// The liveness phase: lift every IP ban.
    pub(crate) fn heal(&mut self, dir: &Directory, acts: &mut Vec<Act>) {
        self.healing = true;
        self.script = dir
            .ips
            .iter()
            .map(|&ip| AdminCommand::UnbanIp(ip))
            .collect();
        self.wake_in(20, acts);
    }
}
