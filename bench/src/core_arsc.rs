//! The core alone for arsc, in memory: a pump with a crowd of connected arsc clients, each
//! pair in a room of its own, whispering to each other, and the drain a runtime does. The
//! `switchboard-bench core --proto arsc` instruction-count run (for callgrind: figures the
//! machine's load does not move), as [`crate::core`] is for ws2017.
//!
//! Everything is set up over the protocol itself, with the TCP generator's own requests
//! ([`Proto::login`], [`Proto::message`]): `connect` as `a<i>` into room `p<i / 2>`, then
//! every post a `/msg` to the partner, named by the session id the connect answered.

use bytes::Bytes;
use switchboard_proto::{ConnId, Instant, Now, Protocol, Pump, Server, State};

use crate::core::peer;
use crate::proto::Proto;

/// A crowd of arsc clients: the pump, the time, and each client's session id.
pub struct Crowd {
    /// The pump, every setup output drained.
    pub pump: Pump,
    /// The one instant everything happens at.
    pub now: Now,
    /// Client `i`'s session id, as its connect was answered.
    pub sids: Vec<Vec<u8>>,
}

/// A pump with `clients` (even) connected arsc clients `a0`, `a1`, ...; pairs `2k`,
/// `2k + 1` share room `p<k>`; limits out of the way.
pub fn crowd(clients: u64) -> Result<Crowd, String> {
    crowd_in(clients, |i| format!("p{}", i / 2))
}

/// A pump with `clients` connected arsc clients `a0`, `a1`, ..., client `i` in room
/// `room(i)`; limits out of the way.
pub fn crowd_in(clients: u64, room: impl Fn(u64) -> String) -> Result<Crowd, String> {
    let mut pump = Pump::new(Server::new(crate::core::unlimited(), State::default()));
    let now = Now::at(Instant::ZERO, 1_700_000_000_000);
    let mut sids = Vec::new();
    for i in 0..clients {
        let conn = ConnId(i);
        pump.accepted(now, conn, Protocol::Arsc, peer(i));
        let mut login = Vec::new();
        Proto::Arsc.login(&mut login, &format!("a{i}"), &room(i));
        pump.received(now, conn, Bytes::from(login));
        let mut answer = Vec::new();
        crate::core::drain_with(&mut pump, now, |to, bytes| {
            if to == conn {
                answer.extend_from_slice(bytes);
            }
        });
        sids.push(sid(&answer).ok_or_else(|| {
            format!(
                "a{i}'s connect was not answered with a sid: {}",
                String::from_utf8_lossy(&answer)
            )
        })?);
    }
    Ok(Crowd { pump, now, sids })
}

/// The session id in a connect's answer.
fn sid(answer: &[u8]) -> Option<Vec<u8>> {
    let start = memchr::memmem::find(answer, b"<sid>")? + b"<sid>".len();
    let len = memchr::memchr(b'<', &answer[start..])?;
    Some(answer[start..start + len].to_vec())
}

/// One read per client of `per_read` whispers to its partner, each with a body like the
/// TCP generator's (`t<ns>.<sender>`).
pub fn reads(crowd: &Crowd, per_read: usize) -> Vec<Bytes> {
    (0..crowd.sids.len())
        .map(|i| {
            let mut read = Vec::new();
            for k in 0..per_read {
                let ns = 1_700_000_000_000_000_000 + k as u64;
                let (from, to) = (format!("a{i}"), format!("a{}", i ^ 1));
                Proto::Arsc.message(&mut read, &from, &to, &crowd.sids[i], ns, i);
            }
            Bytes::from(read)
        })
        .collect()
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

    /// Whether `action` is a transmit to `conn` holding `text`.
    fn transmits(action: &Action, conn: ConnId, text: &str) -> bool {
        matches!(action, Action::Transmit { conn: c, bytes } if *c == conn
            && String::from_utf8_lossy(bytes).contains(text))
    }

    /// Every whisper of a round reaches the partner from its sender, and the sender hears
    /// `post ok` and its echo.
    #[test]
    fn every_whisper_reaches_the_partner() {
        let mut crowd = crowd(4).expect("the crowd connects");
        assert_eq!(crowd.sids.len(), 4);
        assert!(crowd.sids.iter().all(|s| !s.is_empty()));
        let reads = reads(&crowd, 3);
        let mut to_partner = 0;
        for (i, bytes) in reads.iter().enumerate() {
            let me = ConnId(i as u64);
            crowd.pump.received(crowd.now, me, bytes.clone());
            let mut echoed = false;
            while let Some(action) = crowd.pump.poll_action() {
                let partner = ConnId(i as u64 ^ 1);
                let from = format!("<sender>a{i}</sender>");
                echoed |= transmits(&action, me, "You whispered to");
                if transmits(&action, partner, &from) {
                    if let Action::Transmit { bytes, .. } = &action {
                        to_partner += String::from_utf8_lossy(bytes)
                            .matches("<type>whisper</type>")
                            .count();
                    }
                }
                if let Action::Transmit { conn, bytes } = action {
                    crowd.pump.written(crowd.now, conn, bytes.len());
                }
            }
            assert!(echoed, "a{i} heard its echo");
        }
        assert_eq!(to_partner, 4 * 3);
    }
}
