//! The model of durable administrator state: for every account and address the
//! administrator touched, the set of values the committed store may hold.
//!
//! The administrator sends one command at a time. A command in flight may or may not
//! have landed, so its key may hold the value before or after it; an acknowledged
//! command (its `ok` released after its commit) narrows the key to the value after it;
//! a refused one (`err`) to the value before; a command whose answer was lost (a cut, a
//! crash) leaves both possible until a later acknowledgement settles the key.

use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet};

use switchboard_proto::{Account, AdminCommand, Change, State, UserName};

use crate::client::ws2017_codec as codec;

/// The fake password hash the simulator's effect runner gives (the core treats hashes as
/// opaque strings).
pub(crate) fn fake_hash(password: &str) -> String {
    format!("sim${password}")
}

/// The fake hash of a password's MD5 hex, which ims logins check (with [`fake_hash`]'s
/// rule, as the store hashes both alike).
pub(crate) fn fake_ims_hash(password: &str) -> String {
    fake_hash(&crate::client::ims::md5_hex(password))
}

/// A durable key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    /// An account, by folded name.
    Account(String),
    /// An address.
    Ip(IpAddr),
}

/// An account as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct AccountValue {
    name: String,
    password: String,
    level: u8,
    email: Option<String>,
    gender: Option<String>,
    banned: bool,
}

impl AccountValue {
    fn of(a: &Account) -> Option<AccountValue> {
        let password = a.password.0.strip_prefix("sim$")?.to_owned();
        if a.ims_password.0 != fake_ims_hash(&password) {
            return None;
        }
        Some(AccountValue {
            name: a.name.as_str().to_owned(),
            password,
            level: a.level,
            email: a.email.clone(),
            gender: a.gender.clone(),
            banned: a.banned,
        })
    }
}

/// The value of a key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Value {
    /// An account, or none.
    Account(Option<AccountValue>),
    /// Banned or not.
    Ip(bool),
    /// An account whose stored hashes are not the simulator's (never expected).
    Corrupt,
}

/// The key a command changes, if it changes one.
pub(crate) fn key_of(cmd: &AdminCommand) -> Option<Key> {
    let account = |name: &str| Some(Key::Account(codec::key(name)));
    match cmd {
        AdminCommand::UserAdd { name, .. }
        | AdminCommand::UserDel { name }
        | AdminCommand::UserPasswd { name, .. }
        | AdminCommand::BanUser { name }
        | AdminCommand::UnbanUser { name } => account(name),
        AdminCommand::BanIp(ip) | AdminCommand::UnbanIp(ip) => Some(Key::Ip(*ip)),
        AdminCommand::UserList
        | AdminCommand::BanList
        | AdminCommand::Kick { .. }
        | AdminCommand::UserExists { .. }
        | AdminCommand::UserCheck { .. }
        | AdminCommand::Status => None,
    }
}

/// The value `cmd` leaves when it succeeds on `v`; `None` if it cannot succeed there.
fn apply(cmd: &AdminCommand, v: &Value) -> Option<Value> {
    let existing = match v {
        Value::Account(Some(a)) => Some(a),
        _ => None,
    };
    let with = |f: &dyn Fn(&mut AccountValue)| {
        existing.map(|a| {
            let mut a = a.clone();
            f(&mut a);
            Value::Account(Some(a))
        })
    };
    match cmd {
        AdminCommand::UserAdd {
            name,
            password,
            level,
            email,
            gender,
        } => match v {
            Value::Account(None) => Some(Value::Account(Some(AccountValue {
                name: name.clone(),
                password: password.clone(),
                level: *level,
                email: email.clone(),
                gender: gender.clone(),
                banned: false,
            }))),
            _ => None,
        },
        AdminCommand::UserDel { .. } => existing.map(|_| Value::Account(None)),
        AdminCommand::UserPasswd { password, .. } => with(&|a| a.password = password.clone()),
        AdminCommand::BanUser { .. } => with(&|a| a.banned = true),
        AdminCommand::UnbanUser { .. } => with(&|a| a.banned = false),
        AdminCommand::BanIp(_) => Some(Value::Ip(true)),
        AdminCommand::UnbanIp(_) => Some(Value::Ip(false)),
        _ => None,
    }
}

/// The committed value of `key`.
pub(crate) fn committed_value(state: &State, key: &Key) -> Value {
    match key {
        Key::Account(k) => {
            let found = UserName::parse(k)
                .ok()
                .and_then(|name| state.account(&name.key()));
            match found {
                None => Value::Account(None),
                Some(a) => AccountValue::of(a).map_or(Value::Corrupt, |a| Value::Account(Some(a))),
            }
        }
        Key::Ip(ip) => Value::Ip(state.ip_bans.contains(ip)),
    }
}

fn initial(key: &Key) -> Value {
    match key {
        Key::Account(_) => Value::Account(None),
        Key::Ip(_) => Value::Ip(false),
    }
}

#[derive(Debug)]
struct Candidates {
    now: BTreeSet<Value>,
    /// The values before the command in flight.
    before: Option<BTreeSet<Value>>,
}

/// Candidates per key.
#[derive(Debug, Default)]
pub(crate) struct DurableModel {
    keys: BTreeMap<Key, Candidates>,
}

impl DurableModel {
    fn entry(&mut self, key: Key) -> &mut Candidates {
        self.keys.entry(key.clone()).or_insert_with(|| Candidates {
            now: BTreeSet::from([initial(&key)]),
            before: None,
        })
    }

    /// The administrator sent `cmd`: it may land from now on.
    pub(crate) fn issued(&mut self, cmd: &AdminCommand) {
        let Some(key) = key_of(cmd) else { return };
        let c = self.entry(key);
        let before = c.now.clone();
        let after: BTreeSet<Value> = before.iter().filter_map(|v| apply(cmd, v)).collect();
        c.now.extend(after);
        c.before = Some(before);
    }

    /// The server refused `cmd`: it did not land.
    pub(crate) fn refused(&mut self, cmd: &AdminCommand) {
        let Some(key) = key_of(cmd) else { return };
        let c = self.entry(key);
        if let Some(before) = c.before.take() {
            c.now = before;
        }
    }

    /// The answer to `cmd` is lost; it stays possible either way.
    pub(crate) fn abandoned(&mut self, cmd: &AdminCommand) {
        let Some(key) = key_of(cmd) else { return };
        self.entry(key).before = None;
    }

    /// The `ok` of `cmd` left after its commit: the key holds the value after it.
    /// `Err` if no value the key may have held allows the command to succeed.
    pub(crate) fn acknowledged(&mut self, cmd: &AdminCommand) -> Result<(), String> {
        let Some(key) = key_of(cmd) else {
            return Ok(());
        };
        let c = self.entry(key.clone());
        let before = c.before.take().unwrap_or_else(|| c.now.clone());
        let after: BTreeSet<Value> = before.iter().filter_map(|v| apply(cmd, v)).collect();
        if after.is_empty() {
            return Err(format!(
                "{cmd:?} acknowledged, but it could not succeed on any of {before:?}"
            ));
        }
        c.now = after;
        Ok(())
    }

    /// Whether the committed value of `key` is one the model allows.
    pub(crate) fn check(&self, state: &State, key: &Key) -> Result<(), String> {
        let Some(c) = self.keys.get(key) else {
            return Ok(());
        };
        let value = committed_value(state, key);
        if c.now.contains(&value) {
            Ok(())
        } else {
            Err(format!(
                "{key:?} is committed as {value:?}, expected one of {:?}",
                c.now
            ))
        }
    }

    /// Every key's problems against `state`.
    pub(crate) fn check_all(&self, state: &State) -> Vec<String> {
        self.keys
            .keys()
            .filter_map(|key| self.check(state, key).err())
            .collect()
    }

    /// The keys a committed change touches.
    pub(crate) fn touched(change: &Change) -> Option<Key> {
        let account = |name: &UserName| Some(Key::Account(codec::key(name.as_str())));
        match change {
            Change::AccountCreated(a) => account(&a.name),
            Change::AccountDeleted { name }
            | Change::PasswordChanged { name, .. }
            | Change::UserBanned { name, .. }
            | Change::LevelChanged { name, .. } => account(name),
            Change::IpBanned(ip) | Change::IpUnbanned(ip) => Some(Key::Ip(*ip)),
            Change::OfflineQueued(_) | Change::OfflineDelivered { .. } => None,
            // No protocol makes these yet; the oracle learns them with the protocols.
            Change::FriendRequested { .. }
            | Change::FriendRequestDropped { .. }
            | Change::FriendshipMade { .. }
            | Change::FriendshipEnded { .. }
            | Change::ChatCreated { .. }
            | Change::ChatDeleted { .. }
            | Change::MediaStored { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_proto::PasswordHash;

    fn add(name: &str, pw: &str) -> AdminCommand {
        AdminCommand::UserAdd {
            name: name.into(),
            password: pw.into(),
            level: 0,
            email: None,
            gender: None,
        }
    }

    fn state_with(name: &str, pw: &str) -> State {
        let mut s = State::default();
        s.apply(&Change::AccountCreated(Account {
            name: UserName::parse(name).unwrap(),
            password: PasswordHash(fake_hash(pw)),
            ims_password: PasswordHash(fake_ims_hash(pw)),
            email: None,
            gender: None,
            level: 0,
            banned: false,
            created_ms: 0,
        }));
        s
    }

    #[test]
    fn a_command_in_flight_allows_both_and_its_answer_settles_it() {
        let mut m = DurableModel::default();
        let key = Key::Account("bob".into());
        m.issued(&add("bob", "a"));
        assert!(m.check(&State::default(), &key).is_ok());
        assert!(m.check(&state_with("bob", "a"), &key).is_ok());
        assert!(m.check(&state_with("bob", "b"), &key).is_err());
        m.acknowledged(&add("bob", "a")).unwrap();
        assert!(m.check(&State::default(), &key).is_err());
        assert!(m.check(&state_with("bob", "a"), &key).is_ok());
        // A lost answer leaves both possible; a refusal restores the value before.
        m.issued(&AdminCommand::UserDel { name: "BOB".into() });
        m.abandoned(&AdminCommand::UserDel { name: "BOB".into() });
        assert!(m.check(&State::default(), &key).is_ok());
        m.issued(&add("bob", "c"));
        m.refused(&add("bob", "c"));
        assert!(m.check(&state_with("bob", "c"), &key).is_err());
        assert!(m
            .acknowledged(&AdminCommand::UnbanUser { name: "bob".into() })
            .is_ok());
    }
}
