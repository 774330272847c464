//! Who may log in and how: accounts, and the kinds of login each protocol chooses.

use core::net::IpAddr;

use super::{Network, UserKey};
use crate::persist::Account;

/// How a protocol's sessions behave in the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LoginKind {
    /// The name must not be online already (a nick held by one connection); otherwise the session joins
    /// the user's other sessions.
    pub(crate) exclusive: bool,
    /// The session answers delivered direct messages with receipts;
    /// otherwise the sender is told of delivery at once.
    pub(crate) sends_receipts: bool,
}

/// The name is held by someone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NameTaken;

impl Network {
    /// The registered account of a name.
    pub(crate) fn account(&self, key: &UserKey) -> Option<&Account> {
        self.state.account(key)
    }

    /// Whether a name is in use: online, or registered to an account.
    pub(crate) fn name_taken(&self, key: &UserKey) -> bool {
        self.users.contains_key(key) || self.state.accounts.contains_key(key)
    }

    pub(crate) fn ip_banned(&self, ip: IpAddr) -> bool {
        self.state.ip_bans.contains(&ip)
    }
}
