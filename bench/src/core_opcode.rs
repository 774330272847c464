//! The core alone for opcode, in memory: a pump with a crowd of logged-in opcode clients
//! in pairs, each pair contacts with a chat of its own, and the drain a runtime does. The
//! `switchboard-bench core --proto opcode` instruction-count run (for callgrind: figures
//! the machine's load does not move), as [`crate::core`] is for ws2017.
//!
//! Everything is set up over the protocol itself, as the TCP generator does
//! (`bench/src/load.rs`): `117` registers `o<i>`, `110` logs in, `121` both ways makes each
//! pair contacts, `113` opens their chat. Effects run as the store runs them (at the
//! cheap hashing cost), commits finish at once.

use bytes::Bytes;
use switchboard_proto::{ConnId, Instant, Now, Protocol, Pump, Server, State, UserName};

use crate::core::peer;

/// The password every bench account has.
const PASSWORD: &str = "pw";

/// A crowd of opcode clients: the pump, the time, and each client's chat id (the chat
/// with its partner).
pub struct Crowd {
    /// The pump, every setup output drained.
    pub pump: Pump,
    /// The one instant everything happens at.
    pub now: Now,
    /// Client `i`'s chat with client `i ^ 1`.
    pub chats: Vec<u64>,
}

/// A pump with `clients` (even) logged-in opcode clients `o0`, `o1`, ...; pairs `2k`,
/// `2k + 1` are contacts with a chat; limits out of the way.
pub fn crowd(clients: u64) -> Crowd {
    let mut pump = Pump::new(Server::new(crate::core::unlimited(), State::default()));
    let now = Now::at(Instant::ZERO, 1_700_000_000_000);
    let name = |i: u64| format!("o{i}");
    for i in 0..clients {
        pump.accepted(now, ConnId(i), Protocol::Opcode, peer(i));
        let lines = format!("117 {n} {PASSWORD}\r\n110 {n} {PASSWORD}\r\n", n = name(i));
        pump.received(now, ConnId(i), Bytes::from(lines));
        crate::core::drain(&mut pump, now);
    }
    for (from_odd, code) in [(false, "121"), (true, "121"), (false, "113")] {
        for i in (0..clients).filter(|i| (i % 2 == 1) == from_odd) {
            let line = format!("{code} {}\r\n", name(i ^ 1));
            pump.received(now, ConnId(i), Bytes::from(line));
            crate::core::drain(&mut pump, now);
        }
    }
    let state = pump.server().state();
    let chats = (0..clients)
        .map(|i| {
            let key = |i: u64| UserName::parse(&name(i)).map(|n| n.key());
            let (Ok(me), Ok(other)) = (key(i), key(i ^ 1)) else {
                panic!("o{i} is a valid name");
            };
            (state.chats.iter())
                .find(|(_, c)| c.members.contains(&me) && c.members.contains(&other))
                .map(|(id, _)| id.0)
                .unwrap_or_else(|| panic!("the setup opened no chat for o{i}"))
        })
        .collect();
    Crowd { pump, now, chats }
}

/// One read per client of `per_read` `115` lines in its chat with its partner, each with
/// a body like the TCP generator's (`t<ns>.<sender>`).
pub fn reads(crowd: &Crowd, per_read: usize) -> Vec<Bytes> {
    crate::core::reads_of(crowd.chats.len() as u64, per_read, |i, k| {
        let ns = 1_700_000_000_000_000_000 + k as u64;
        format!("115 {} t{ns}.{i}\r\n", crowd.chats[i as usize])
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

    /// Every client is in a chat with its partner, and each message of a round reaches
    /// the partner as a `220` (and its sender as `219 400` and the `220` echo).
    #[test]
    fn every_message_is_delivered_in_its_chat() {
        let mut crowd = crowd(4);
        assert_eq!(crowd.chats[0], crowd.chats[1]);
        assert_ne!(crowd.chats[0], crowd.chats[2]);
        let reads = reads(&crowd, 3);
        let mut to_partner = 0;
        for (i, bytes) in reads.iter().enumerate() {
            crowd
                .pump
                .received(crowd.now, ConnId(i as u64), bytes.clone());
            while let Some(action) = crowd.pump.poll_action() {
                let Action::Transmit { conn, bytes } = action else {
                    panic!("only transmits: {action:?}");
                };
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if conn.0 == i as u64 {
                    assert!(text.starts_with("219 400\r\n220 "), "{text}");
                } else {
                    assert_eq!(conn.0, i as u64 ^ 1);
                    let chat = crowd.chats[i];
                    assert!(text.starts_with(&format!("220 {chat} ")), "{text}");
                    to_partner += text.matches("\r\n").count();
                }
                crowd.pump.written(crowd.now, conn, bytes.len());
            }
        }
        assert_eq!(to_partner, 4 * 3);
    }
}
