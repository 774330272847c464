//! The null relays of arsc, ims and opcode: each answers the requests the bench sends with
//! the server's bytes (docs/protocols/*.md) and finds the recipients, nothing more: no
//! checks, no accounts, no store, no limits.
//!
//! - arsc: `connect` is answered `ok` with a sid (the slot in hex), the `System` welcome
//!   whisper and the enter notice to the room, the newcomer included; a `post` is
//!   answered `ok` and sent as `normal` to every member of the poster's room, the poster
//!   included, or with `/msg NAME TEXT` as a `whisper` to NAME and the `System`
//!   confirmation to the poster.
//! - ims: every document is echoed; `LOGIN` answers `result="1"`; a `MESSAGE` goes to its
//!   recipient as it came and answers `result="1"` (`0` when nobody by that name is here).
//! - opcode: `110` answers `212 400`; `121` answers `232 400` and pushes `233` to the
//!   other; `113` opens a chat (`217 400`), `112` lists the caller's chats; `115` answers
//!   `219 400` and sends `220` to both members.

use crate::proto::between;
use crate::relay::{split_word, Relay};

impl Relay {
    fn name_of(&self, slot: usize) -> Box<[u8]> {
        self.conns
            .get(slot)
            .and_then(|c| c.as_ref())
            .and_then(|c| c.name.clone())
            .unwrap_or_default()
    }

    fn arsc_message(&self, out: &mut Vec<u8>, kind: &[u8], sender: &[u8], content: &[&[u8]]) {
        out.extend_from_slice(b"<arscmessage><type>");
        out.extend_from_slice(kind);
        out.extend_from_slice(b"</type><sendtime>");
        out.extend_from_slice(&self.hhmm);
        out.extend_from_slice(b"</sendtime><sender>");
        out.extend_from_slice(sender);
        out.extend_from_slice(b"</sender><content>");
        for part in content {
            out.extend_from_slice(part);
        }
        out.extend_from_slice(b"</content></arscmessage>\n");
    }

    pub(crate) fn arsc_line(&mut self, slot: usize, line: &[u8]) {
        let Some(kind) = between(line, b"<type>", b"</type>") else {
            return;
        };
        match kind {
            b"connect" => {
                let user: Box<[u8]> = between(line, b"<user>", b"</user>")
                    .unwrap_or_default()
                    .into();
                let room: Box<[u8]> = between(line, b"<room>", b"</room>")
                    .unwrap_or(b"lounge")
                    .into();
                let reply = format!(
                    "<arscrespond><type>connect</type><status>ok</status><sid>{slot:032x}</sid><version>0.1</version></arscrespond>\n"
                );
                self.queue(slot, reply.as_bytes());
                let mut out = Vec::with_capacity(160);
                self.arsc_message(
                    &mut out,
                    b"whisper",
                    b"System",
                    &[b"Welcome to Switchboard!"],
                );
                self.queue(slot, &out);
                self.names.insert(user.clone(), slot);
                let members = self.rooms.entry(room.clone()).or_default();
                members.push(slot);
                let members = members.clone();
                if let Some(c) = self.conns[slot].as_mut() {
                    c.name = Some(user.clone());
                    c.room = Some(room.clone());
                }
                out.clear();
                self.arsc_message(
                    &mut out,
                    b"system",
                    b"System",
                    &[b"User ", &user, b" enters the room ", &room, b"."],
                );
                for m in members {
                    self.queue(m, &out);
                }
            }
            b"post" => {
                let session = between(line, b"<sid>", b"</sid>")
                    .and_then(|sid| std::str::from_utf8(sid).ok())
                    .and_then(|sid| usize::from_str_radix(sid, 16).ok())
                    .filter(|&s| self.conns.get(s).is_some_and(Option::is_some));
                let Some(session) = session else {
                    self.queue(
                        slot,
                        b"<arscrespond><type>post</type><status>error</status><error>This session is not known</error></arscrespond>\n",
                    );
                    return;
                };
                let content = between(line, b"<content>", b"</content>").unwrap_or_default();
                self.queue(
                    slot,
                    b"<arscrespond><type>post</type><status>ok</status></arscrespond>\n",
                );
                let sender = self.name_of(session);
                let mut out = Vec::with_capacity(200);
                if let Some(rest) = content.strip_prefix(b"/msg ") {
                    let (to, text) = split_word(rest);
                    if let Some(&target) = self.names.get(to) {
                        self.arsc_message(&mut out, b"whisper", &sender, &[text]);
                        self.queue(target, &out);
                        out.clear();
                        self.arsc_message(
                            &mut out,
                            b"whisper",
                            b"System",
                            &[b"You whispered to ", to, b": ", text],
                        );
                    } else {
                        self.arsc_message(
                            &mut out,
                            b"whisper",
                            b"System",
                            &[b"User ", to, b" is not known."],
                        );
                    }
                    self.queue(session, &out);
                } else {
                    self.arsc_message(&mut out, b"normal", &sender, &[content]);
                    let room = self.conns[session].as_ref().and_then(|c| c.room.clone());
                    if let Some(members) = room.and_then(|r| self.rooms.get(&r)).cloned() {
                        for m in members {
                            self.queue(m, &out);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    pub(crate) fn ims_line(&mut self, slot: usize, line: &[u8]) {
        let mut echo = Vec::with_capacity(line.len() + 1);
        echo.extend_from_slice(line);
        echo.push(b'\n');
        self.queue(slot, &echo);
        if line.starts_with(b"<LOGIN ") {
            let user: Box<[u8]> = between(line, b"user=\"", b"\"").unwrap_or_default().into();
            let mut reply = b"<LOGIN user=\"".to_vec();
            reply.extend_from_slice(&user);
            reply.extend_from_slice(b"\" result=\"1\"/>\n");
            self.queue(slot, &reply);
            self.names.insert(user.clone(), slot);
            if let Some(c) = self.conns[slot].as_mut() {
                c.name = Some(user);
            }
        } else if line.starts_with(b"<MESSAGE ") {
            let to = between(line, b"to=\"", b"\"").unwrap_or_default();
            match self.names.get(to).copied() {
                Some(target) => {
                    self.queue(target, &echo);
                    self.queue(slot, b"<MESSAGE result=\"1\"/>\n");
                }
                None => self.queue(slot, b"<MESSAGE result=\"0\"/>\n"),
            }
        }
    }

    pub(crate) fn opcode_line(&mut self, slot: usize, line: &[u8]) {
        let (code, rest) = split_word(line);
        match code {
            b"110" | b"100" => {
                let (user, _) = split_word(rest);
                let user: Box<[u8]> = user.into();
                let mut reply = b"212 400 ".to_vec();
                reply.extend_from_slice(&user);
                reply.extend_from_slice(b"\r\n");
                self.queue(slot, &reply);
                self.names.insert(user.clone(), slot);
                if let Some(c) = self.conns[slot].as_mut() {
                    c.name = Some(user);
                }
            }
            b"121" => {
                self.queue(slot, b"232 400\r\n");
                if let Some(&other) = self.names.get(rest) {
                    let mut push = b"233 ".to_vec();
                    push.extend_from_slice(&self.name_of(slot));
                    push.extend_from_slice(b"\r\n");
                    self.queue(other, &push);
                }
            }
            b"113" => {
                let me = self.name_of(slot);
                let other: Box<[u8]> = rest.into();
                let id = self.chats.len();
                self.chats_of.entry(me.clone()).or_default().push(id);
                self.chats_of.entry(other.clone()).or_default().push(id);
                self.chats.push([me, other]);
                self.queue(slot, b"217 400\r\n");
            }
            b"112" => {
                let me = self.name_of(slot);
                let ids = self.chats_of.get(&me).cloned().unwrap_or_default();
                let mut out = format!("214 {}\r\n", ids.len()).into_bytes();
                for id in ids {
                    let [a, b] = &self.chats[id];
                    let other = if **a == *me { b } else { a };
                    out.extend_from_slice(format!("215 {id} ").as_bytes());
                    out.extend_from_slice(&me);
                    out.push(b' ');
                    out.extend_from_slice(other);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"216\r\n");
                self.queue(slot, &out);
            }
            b"115" => {
                let (id, message) = split_word(rest);
                let chat = std::str::from_utf8(id)
                    .ok()
                    .and_then(|id| id.parse::<usize>().ok())
                    .and_then(|id| self.chats.get(id));
                let Some(members) = chat.cloned() else {
                    self.queue(slot, b"219 408\r\n");
                    return;
                };
                self.queue(slot, b"219 400\r\n");
                let mut out = b"220 ".to_vec();
                out.extend_from_slice(id);
                out.extend_from_slice(format!(" {} ", self.unix_ms).as_bytes());
                out.extend_from_slice(message);
                out.extend_from_slice(b"\r\n");
                for member in &members {
                    if let Some(&to) = self.names.get(member) {
                        self.queue(to, &out);
                    }
                }
            }
            _ => self.queue(slot, b"210\r\n"),
        }
    }
}
