//! The ims core alone, in memory: a pump with a crowd of logged-in ims clients in pairs,
//! each round one read per client of MESSAGE documents to its partner, drained as a
//! runtime would (every transmit reported written, effects run, commits finished). For
//! `switchboard-bench core --proto ims`, under callgrind an instruction count per
//! message that the machine's load does not move.

use bytes::Bytes;
use switchboard_proto::{ConnId, Instant, Now, Protocol, Pump, Server, State};
use switchboard_store::credentials::md5_hex;

use crate::core::peer;
use crate::proto::PASSWORD;

/// Why the crowd could not be built.
#[derive(Debug)]
pub enum CrowdError {
    /// The accounts could not be made (a name refused, which `u<N>` never is, or the
    /// password not hashed).
    Accounts(String),
    /// A client's LOGIN was not answered with result 1.
    Login(u64),
}

impl std::fmt::Display for CrowdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrowdError::Accounts(e) => write!(f, "making the accounts: {e}"),
            CrowdError::Login(i) => write!(f, "u{i} was not logged in"),
        }
    }
}

impl std::error::Error for CrowdError {}

/// A pump with `clients` ims clients `u0`, `u1`, ... logged in (pairs talk to each other),
/// their accounts in the state as the store's load puts them (password [`PASSWORD`],
/// hashed at the cheap cost), limits out of the way, every output of the logins drained.
pub fn crowd(clients: u64) -> Result<(Pump, Now), CrowdError> {
    let names: Vec<String> = (0..clients).map(|i| format!("u{i}")).collect();
    let changes =
        crate::compare::account_changes(&names).map_err(|e| CrowdError::Accounts(e.to_string()))?;
    let mut state = State::default();
    for change in &changes {
        state.apply(change);
    }
    let mut pump = Pump::new(Server::new(crate::core::unlimited(), state));
    let now = Now::at(Instant::ZERO, 1_700_000_000_000);
    let pass = md5_hex(PASSWORD);
    for i in 0..clients {
        pump.accepted(now, ConnId(i), Protocol::Ims, peer(i));
        let login = format!("<LOGIN user=\"u{i}\" pass=\"{pass}\"/>\n");
        pump.received(now, ConnId(i), Bytes::from(login));
        let out = collect(&mut pump, now);
        let ok = format!("<LOGIN user=\"u{i}\" result=\"1\"/>");
        if !out.windows(ok.len()).any(|w| w == ok.as_bytes()) {
            return Err(CrowdError::Login(i));
        }
    }
    Ok((pump, now))
}

/// Drains every action as a runtime does and returns the bytes transmitted, in order.
pub(crate) fn collect(pump: &mut Pump, now: Now) -> Vec<u8> {
    let mut out = Vec::new();
    crate::core::drain_with(pump, now, |_, bytes| out.extend_from_slice(bytes));
    out
}

/// One read per client of `per_read` MESSAGE documents, each from `u{i}` to its partner,
/// as the TCP generator writes them (one per line).
pub fn reads(clients: u64, per_read: usize) -> Vec<Bytes> {
    crate::core::reads_of(clients, per_read, |i, k| {
        format!(
            "<MESSAGE from=\"u{i}\" to=\"u{}\">message {k} from u{i}</MESSAGE>\n",
            i ^ 1
        )
    })
}

/// [`crate::core::round`], under this name for callgrind.
#[inline(never)]
pub fn round(pump: &mut Pump, now: Now, reads: &[Bytes]) -> usize {
    crate::core::round(pump, now, reads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_proto::Action;

    /// A round delivers every message to its partner and answers each with result 1,
    /// after the echo: what the figure counts is the real work.
    #[test]
    fn a_round_delivers_every_message_live() {
        let (mut pump, now) = crowd(4).expect("crowd");
        let reads = reads(4, 3);
        let mut per_conn: Vec<Vec<u8>> = vec![Vec::new(); 4];
        for (i, bytes) in reads.iter().enumerate() {
            pump.received(now, ConnId(i as u64), bytes.clone());
            while let Some(action) = pump.poll_action() {
                if let Action::Transmit { conn, bytes } = action {
                    per_conn[conn.0 as usize].extend_from_slice(&bytes);
                    pump.written(now, conn, bytes.len());
                }
            }
        }
        let text = String::from_utf8(per_conn[1].clone()).expect("utf-8");
        // u1's own three echoes and results, and u0's three messages.
        assert_eq!(text.matches("<MESSAGE result=\"1\"/>").count(), 3);
        for k in 0..3 {
            assert!(text.contains(&format!(
                "<MESSAGE from=\"u0\" to=\"u1\">message {k} from u0</MESSAGE>"
            )));
        }
    }
}
