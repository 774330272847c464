//! Plays a [`Scenario`] against a [`Server`] in virtual time and writes the transcript.

use std::collections::BTreeMap;

use switchboard_proto::{ConnId, Input, Instant, Now, Output, Protocol, Server};

use crate::escape::escape;
use crate::scenario::{Scenario, ScenarioError, SendMode, StepKind};

/// Unix time at virtual time zero (2023-11-14T22:13:20Z), for protocol timestamps.
pub const WALL_ORIGIN_MS: u64 = 1_700_000_000_000;

/// How many times the server may ask for a timeout at one instant without its deadline
/// moving before the harness calls it a livelock.
const MAX_FIRES_PER_INSTANT: usize = 10_000;

/// How clients' bytes reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// As the scenario says: each `c:` and `c~:` in one delivery, each `c/:` byte by byte.
    AsWritten,
    /// Every byte of every send in its own delivery. The transcript must not change:
    /// codecs are split-insensitive.
    Bytewise,
}

/// One scenario client: a name with its current connection.
#[derive(Debug)]
struct Client {
    protocol: Protocol,
    /// The open connection; `None` once it closed (either side).
    conn: Option<ConnId>,
    /// Whether transmits are acknowledged with `Input::Written` (false after `!stall`).
    reading: bool,
    /// Bytes transmitted and not acknowledged while stalled.
    unread: usize,
}

struct Player<'s> {
    scenario: &'s Scenario,
    delivery: Delivery,
    server: Server,
    now: Instant,
    next_conn: u64,
    clients: BTreeMap<String, Client>,
    /// Every connection ever opened, to its client; ids are never reused.
    owners: BTreeMap<ConnId, String>,
    /// The instant of the timer being fired, printed before its first output.
    firing: Option<Instant>,
    transcript: String,
}

/// Plays `scenario` against a fresh server (seed 0, `Config::default()` changed by the
/// scenario's `!config` lines) and returns its transcript. Deterministic: the same scenario gives the same
/// transcript, byte for byte.
///
/// Errors name the scenario's file and line: a send on a closed connection, a `!cut` of a
/// client that is not connected, or a server output the harness cannot place.
pub fn play(scenario: &Scenario, delivery: Delivery) -> Result<String, ScenarioError> {
    let mut player = Player {
        scenario,
        delivery,
        server: Server::new(scenario.config.clone()),
        now: Instant::ZERO,
        next_conn: 1,
        clients: BTreeMap::new(),
        owners: BTreeMap::new(),
        firing: None,
        transcript: String::new(),
    };
    for step in &scenario.steps {
        player.step(step.line, &step.kind)?;
    }
    Ok(player.transcript)
}

impl Player<'_> {
    fn now(&self) -> Now {
        Now::at(self.now, WALL_ORIGIN_MS)
    }

    fn step(&mut self, line: usize, kind: &StepKind) -> Result<(), ScenarioError> {
        if let Some(echo) = kind.echo() {
            self.transcript.push_str(&echo);
            self.transcript.push('\n');
        }
        match kind {
            StepKind::Blank | StepKind::Comment(_) | StepKind::Config(_) => Ok(()),
            StepKind::Advance(d) => self.advance(line, self.now + *d),
            StepKind::Connect { client, protocol } => self.connect(line, client, *protocol),
            StepKind::Send {
                client,
                protocol,
                mode,
                bytes,
            } => self.send(line, client, *protocol, *mode, bytes),
            StepKind::Cut(client) => {
                let conn = self.open_conn(line, client)?;
                if let Some(c) = self.clients.get_mut(client) {
                    c.conn = None;
                }
                self.input(line, Input::PeerClosed { conn })
            }
            StepKind::Stall(client) => {
                self.open_conn(line, client)?;
                if let Some(c) = self.clients.get_mut(client) {
                    c.reading = false;
                }
                Ok(())
            }
            StepKind::Resume(client) => {
                let conn = self.open_conn(line, client)?;
                let Some(c) = self.clients.get_mut(client) else {
                    return Ok(());
                };
                c.reading = true;
                let n = std::mem::take(&mut c.unread);
                if n > 0 {
                    self.input(line, Input::Written { conn, n })?;
                }
                Ok(())
            }
        }
    }

    /// The open connection of `client`, or an error naming the line.
    fn open_conn(&self, line: usize, client: &str) -> Result<ConnId, ScenarioError> {
        match self.clients.get(client) {
            Some(Client {
                conn: Some(conn), ..
            }) => Ok(*conn),
            Some(Client { protocol, .. }) => Err(self.scenario.error(
                line,
                format!("{client} is closed; reconnect it first with !connect:{client}/{protocol}"),
            )),
            None => Err(self
                .scenario
                .error(line, format!("{client} has not connected yet"))),
        }
    }

    fn connect(
        &mut self,
        line: usize,
        client: &str,
        protocol: Protocol,
    ) -> Result<(), ScenarioError> {
        if let Some(Client { conn: Some(_), .. }) = self.clients.get(client) {
            return Err(self
                .scenario
                .error(line, format!("{client} is already connected")));
        }
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.owners.insert(conn, client.to_owned());
        self.clients.insert(
            client.to_owned(),
            Client {
                protocol,
                conn: Some(conn),
                reading: true,
                unread: 0,
            },
        );
        let port = 40_000u16.wrapping_add(u16::try_from(conn.0).unwrap_or(u16::MAX));
        let peer = ([127, 0, 0, 1], port).into();
        self.input(
            line,
            Input::Accepted {
                conn,
                protocol,
                peer,
            },
        )
    }

    fn send(
        &mut self,
        line: usize,
        client: &str,
        protocol: Option<Protocol>,
        mode: SendMode,
        bytes: &[u8],
    ) -> Result<(), ScenarioError> {
        match (self.clients.get(client), protocol) {
            // A client's first line connects it; the greeting comes before the line.
            (None, Some(protocol)) => self.connect(line, client, protocol)?,
            (Some(c), Some(protocol)) if c.protocol != protocol => {
                return Err(self.scenario.error(
                    line,
                    format!(
                        "{client} speaks {}, not {protocol}; reconnect it with !connect",
                        c.protocol
                    ),
                ))
            }
            _ => {}
        }
        let conn = self.open_conn(line, client)?;
        let label = self.label(client);
        self.print(&label, mode.marker(), &StepKind::send_text(mode, bytes));
        let bytewise = mode == SendMode::Bytewise || self.delivery == Delivery::Bytewise;
        if bytewise {
            for &b in bytes {
                self.input(
                    line,
                    Input::Received {
                        conn,
                        bytes: vec![b].into(),
                    },
                )?;
            }
            Ok(())
        } else {
            self.input(
                line,
                Input::Received {
                    conn,
                    bytes: bytes.to_vec().into(),
                },
            )
        }
    }

    /// Moves time to `target`, firing every deadline on the way in order.
    fn advance(&mut self, line: usize, target: Instant) -> Result<(), ScenarioError> {
        let mut fired_at = (self.now, 0);
        while let Some(at) = self.server.poll_timeout().filter(|&at| at <= target) {
            self.now = self.now.max(at);
            if fired_at.0 == self.now {
                fired_at.1 += 1;
                if fired_at.1 > MAX_FIRES_PER_INSTANT {
                    return Err(self.scenario.error(
                        line,
                        format!(
                            "the server keeps asking for a timeout at {} (livelock)",
                            self.now
                        ),
                    ));
                }
            } else {
                fired_at = (self.now, 1);
            }
            self.firing = Some(self.now);
            let now = self.now();
            self.server.handle_timeout(now);
            let drained = self.drain(line);
            self.firing = None;
            drained?;
        }
        self.now = target;
        Ok(())
    }

    fn input(&mut self, line: usize, input: Input) -> Result<(), ScenarioError> {
        let now = self.now();
        self.server.handle(now, input);
        self.drain(line)
    }

    /// Prints every output in the order the server produced it, acknowledging transmits
    /// to clients that read.
    fn drain(&mut self, line: usize) -> Result<(), ScenarioError> {
        while let Some(output) = self.server.poll_output() {
            match output {
                Output::Transmit { conn, bytes } => {
                    let client = self.owner(line, conn, "a transmit")?;
                    let label = self.label(&client);
                    for (marker, text) in received_lines(&bytes) {
                        self.print(&label, marker, &text);
                    }
                    let Some(c) = self.clients.get_mut(&client) else {
                        continue;
                    };
                    if c.reading {
                        let now = self.now();
                        let n = bytes.len();
                        self.server.handle(now, Input::Written { conn, n });
                    } else {
                        c.unread += bytes.len();
                    }
                }
                Output::Close { conn, reason } => {
                    let client = self.owner(line, conn, "a close")?;
                    let label = self.label(&client);
                    self.print(&label, "s:", &format!("(closed: {})", reason.as_str()));
                    if let Some(c) = self.clients.get_mut(&client) {
                        c.conn = None;
                    }
                }
            }
        }
        Ok(())
    }

    /// The client whose open connection `conn` is; an error if the server addresses a
    /// connection it never had or one that has closed.
    fn owner(&self, line: usize, conn: ConnId, what: &str) -> Result<String, ScenarioError> {
        let client = self.owners.get(&conn).ok_or_else(|| {
            self.scenario.error(
                line,
                format!("the server sent {what} on unknown connection {conn}"),
            )
        })?;
        match self.clients.get(client) {
            Some(c) if c.conn == Some(conn) => Ok(client.clone()),
            _ => Err(self.scenario.error(
                line,
                format!("the server sent {what} on {client}'s connection {conn} after it closed"),
            )),
        }
    }

    fn label(&self, client: &str) -> String {
        match self.clients.get(client) {
            Some(c) => format!("{client}/{}", c.protocol),
            None => client.to_owned(),
        }
    }

    fn print(&mut self, label: &str, marker: &str, text: &str) {
        if let Some(at) = self.firing.take() {
            self.transcript.push_str(&format!("@ {at}\n"));
        }
        let width = self.scenario.width;
        let line = format!("{label:<width$}{marker} {text}");
        self.transcript.push_str(line.trim_end_matches(' '));
        self.transcript.push('\n');
    }
}

/// Splits received bytes into transcript lines: `s:` for a line ended by CRLF (the CRLF
/// implied), `s~:` for anything else (a bare LF, or no line end yet), with its endings
/// shown as escapes.
fn received_lines(bytes: &[u8]) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        match line.strip_suffix(b"\r\n") {
            Some(text) => lines.push(("s:", escape(text))),
            None => lines.push(("s~:", escape(line))),
        }
        rest = tail;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_bytes_split_at_line_ends() {
        assert_eq!(
            received_lines(b"+OK a\r\nb\nc\r"),
            vec![
                ("s:", "+OK a".to_owned()),
                ("s~:", "b\\n".to_owned()),
                ("s~:", "c\\r".to_owned())
            ]
        );
        assert_eq!(received_lines(b"\r\n"), vec![("s:", String::new())]);
    }

    #[test]
    fn a_scenario_plays_into_a_transcript() {
        let scenario = Scenario::parse(
            "t.scn",
            "# two clients\nalice/ws2017 c: uname alice\n!connect:bob/ws2017\n~ +2s\n!cut:alice\n",
        )
        .unwrap();
        let transcript = play(&scenario, Delivery::AsWritten).unwrap();
        assert_eq!(
            transcript,
            "# two clients\n\
             alice/ws2017  s: +OK switchboard ws2017 ready\n\
             alice/ws2017  c: uname alice\n\
             alice/ws2017  s: +OK uname 'you are' alice\n\
             !connect:bob/ws2017\n\
             bob/ws2017    s: +OK switchboard ws2017 ready\n\
             ~ +2.000s\n\
             @ 2.000s\n\
             alice/ws2017  s: cping\n\
             bob/ws2017    s: cping\n\
             !cut:alice\n\
             bob/ws2017    s: cquit alice\n"
        );
        assert_eq!(play(&scenario, Delivery::Bytewise).unwrap(), transcript);
    }

    #[test]
    fn sending_on_a_closed_connection_names_the_line() {
        let scenario = Scenario::parse("t.scn", "a/ws2017 c: cquit\na c: cgetu\n").unwrap();
        assert_eq!(
            play(&scenario, Delivery::AsWritten)
                .unwrap_err()
                .to_string(),
            "t.scn:2: a is closed; reconnect it first with !connect:a/ws2017"
        );
    }
}
