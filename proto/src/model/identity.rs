//! Who may log in and how: accounts, and the kinds of login each protocol chooses.

use core::net::IpAddr;

use super::{Network, UserKey};
use crate::ids::Protocol;
use crate::persist::Account;

/// What a login proves about the name it takes. Each protocol chooses its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Identity {
    /// A registered account whose password the protocol has checked (through an effect:
    /// hashing is no work for the core). The account must exist and not be banned.
    Account,
    /// An unregistered name, for as long as the session lasts: refused when the name is
    /// registered to an account. Others may hold it at once unless the login is
    /// exclusive.
    Guest,
    /// A nick: an unregistered name nobody else holds, online or as an account.
    Nick,
}

/// What a session can do beyond the common ground, told by its protocol at login.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    /// The session answers delivered direct messages with receipts; otherwise the sender
    /// is told of delivery at once.
    pub(crate) receipts: bool,
    /// The session is told when a direct message it sent is delivered
    /// ([`Event::Delivered`](super::Event::Delivered), a delivery receipt); a protocol that
    /// shows no such thing is not sent the event at all.
    pub(crate) told_of_delivery: bool,
}

/// How a protocol's sessions behave in the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LoginKind {
    /// What the login proves about its name.
    pub(crate) identity: Identity,
    /// The name must not be online already (a nick held by one connection); otherwise
    /// the session joins the user's other sessions.
    pub(crate) exclusive: bool,
    /// What the session can do.
    pub(crate) caps: Capabilities,
    /// The protocol whose login this is (for [`NetworkEvent`](super::NetworkEvent)s).
    pub(crate) protocol: Protocol,
}

/// Why a login was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoginError {
    /// The name is held by someone else (online, or registered for a guest or a nick).
    NameTaken,
    /// An account login for a name with no account.
    NoAccount,
    /// The account is banned.
    Banned,
}

impl Network {
    /// The registered account of a name.
    pub(crate) fn account(&self, key: &UserKey) -> Option<&Account> {
        self.state.account(key)
    }

    /// Whether a name is in use: online, or registered to an account.
    pub(crate) fn name_taken(&self, key: &UserKey) -> bool {
        self.users.contains_key(key) || self.state.accounts.contains_key(key)
    }

    /// Whether an address is banned.
    pub(crate) fn ip_banned(&self, ip: IpAddr) -> bool {
        self.state.ip_bans.contains(&ip)
    }

    /// Whether `key` may log in as `kind` now, and the level its sessions get.
    pub(super) fn admit(&self, key: &UserKey, kind: LoginKind) -> Result<u8, LoginError> {
        if kind.exclusive && self.users.contains_key(key) {
            return Err(LoginError::NameTaken);
        }
        let account = self.state.account(key);
        match (kind.identity, account) {
            (Identity::Account, None) => Err(LoginError::NoAccount),
            (Identity::Account, Some(a)) if a.banned => Err(LoginError::Banned),
            (Identity::Account, Some(a)) => Ok(a.level),
            (Identity::Guest | Identity::Nick, Some(_)) => Err(LoginError::NameTaken),
            (Identity::Nick, None) if self.users.contains_key(key) => Err(LoginError::NameTaken),
            (Identity::Guest | Identity::Nick, None) => Ok(0),
        }
    }
}
