//! End to end: the real `switchboard` binary and opcode clients over TCP on loopback:
//! register, log in, make a contact, open a chat, exchange text and media with a contact
//! online and offline (across a hard kill and a restart), list chats and contacts, and a
//! ws2017 user in the conversation.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{Client, Switchboard, WAIT};

/// An opcode client: writes lines, reads CRLF-ended lines with a timeout.
struct Opcode {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Opcode {
    fn connect(addr: SocketAddr) -> Opcode {
        let stream = TcpStream::connect(addr).expect("connect to the opcode listener");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone the stream"));
        Opcode { stream, reader }
    }

    fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write a line");
    }

    /// The next line, which must end with CRLF; returned without it.
    fn next(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read a line");
        assert!(n > 0, "the server closed the connection");
        assert!(line.ends_with("\r\n"), "not CRLF-ended: {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    fn expect(&mut self, want: &str) {
        assert_eq!(self.next(), want);
    }

    /// Sends `line` and expects `answer`.
    fn ask(&mut self, line: &str, answer: &str) {
        self.send(line);
        self.expect(answer);
    }

    /// The fields of the next `220` line: chat, timestamp, message, media.
    fn message(&mut self) -> (String, u64, String, Option<String>) {
        let line = self.next();
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[0], "220", "{line:?}");
        let ms = fields[2].parse().expect("a timestamp");
        (
            fields[1].to_owned(),
            ms,
            fields[3].to_owned(),
            fields.get(4).map(|s| (*s).to_owned()),
        )
    }

    fn expect_nothing(&mut self) {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("read timeout");
        let mut line = String::new();
        let got = self.reader.read_line(&mut line);
        assert!(got.is_err(), "unexpected: {line:?}");
        self.stream
            .set_read_timeout(Some(WAIT))
            .expect("read timeout");
    }
}

/// Percent-encodes every byte, as a client may.
fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02x}")).collect()
}

/// Decodes what the server sent.
fn decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn login(addr: SocketAddr, name: &str) -> Opcode {
    let mut c = Opcode::connect(addr);
    c.ask(&format!("110 {name} pw"), &format!("212 400 {name}"));
    c
}

#[test]
fn register_contact_chat_text_and_media_online_and_offline_across_a_restart() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let dir = data_dir.path().join("data");
    let mut server = Switchboard::start(&dir);
    let addr = server.opcode_addr();

    let mut hans = Opcode::connect(addr);
    hans.ask("112", "211");
    hans.ask("118", "223 407");
    hans.ask("117 hans pw hans%40example.org m", "222 400");
    hans.ask("117 HANS pw", "222 403");
    hans.ask("110 hans nope", "212 406 hans");
    hans.ask("110 hans pw", "212 400 hans");
    let mut grete = Opcode::connect(addr);
    grete.ask("117 grete pw", "222 400");
    grete.ask("110 grete pw", "212 400 grete");
    let mut again = Opcode::connect(addr);
    again.ask("110 grete pw", "212 405 grete");

    // Contacts: ask, the push, ask back.
    hans.ask("113 grete", "217 411");
    hans.ask("121 grete", "232 400");
    grete.expect("233 hans");
    grete.ask("121 hans", "232 400");
    hans.expect("233 grete");
    hans.send("118");
    hans.expect("223 400");
    hans.expect("224 1");
    let since = hans.next();
    assert!(since.starts_with("225 grete 1"), "{since}");
    hans.expect("226");
    hans.send("120");
    for line in ["228 400", "229 2", "230 grete", "230 hans", "231"] {
        hans.expect(line);
    }

    // A chat and a message to both members.
    hans.ask("113 grete", "217 400");
    hans.send("112");
    hans.expect("214 1");
    let element = hans.next();
    let chat = element.split(' ').nth(1).expect("a chat id").to_owned();
    assert_eq!(element, format!("215 {chat} hans grete"));
    hans.expect("216");
    hans.ask(&format!("115 {chat} hallo%20grete"), "219 400");
    let (c, ms, text, media) = hans.message();
    assert_eq!(
        (c.as_str(), text.as_str(), media),
        (chat.as_str(), "hallo%20grete", None)
    );
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    assert!(
        ms <= wall && wall - ms < 60_000,
        "TimeStamp is Unix ms: {ms}"
    );
    assert_eq!(grete.message(), (chat.clone(), ms, text, None));

    // Media, 200 KiB of every byte value, up and down.
    let blob: Vec<u8> = (0..200 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    hans.ask(&format!("115 {chat} bild {}", encode(&blob)), "219 400");
    let (_, _, _, media) = hans.message();
    let media = media.expect("a media id");
    assert_eq!(grete.message().3.as_deref(), Some(media.as_str()));
    grete.send(&format!("119 {media}"));
    let line = grete.next();
    let fetched = line
        .strip_prefix("227 400 ")
        .unwrap_or_else(|| panic!("{}", &line[..line.len().min(40)]));
    assert_eq!(decode(fetched), blob);
    grete.ask("119 999", "227 412");
    // Over the limit (256 KiB by default): 211, and the connection goes on.
    let big = vec![b'x'; 300 * 1024];
    hans.ask(&format!("115 {chat} zu%20gross {}", encode(&big)), "211");
    hans.ask("111", "213 400");
    hans.ask("110 hans pw", "212 400 hans");

    // grete goes offline; hans writes; the acknowledged messages survive a hard kill.
    grete.ask("111", "213 400");
    hans.ask(&format!("115 {chat} eins"), "219 400");
    hans.message();
    hans.ask(&format!("115 {chat} zwei mit%20bild"), "219 400");
    let (_, _, _, offline_media) = hans.message();
    let offline_media = offline_media.expect("a media id");
    drop(grete);
    drop(again);
    server.kill9();
    let server = Switchboard::start(&dir);
    let addr = server.opcode_addr();
    let mut grete = login(addr, "grete");
    assert_eq!(grete.message().2, "eins");
    let (c, _, text, media) = grete.message();
    assert_eq!((c.as_str(), text.as_str()), (chat.as_str(), "zwei"));
    assert_eq!(media.as_deref(), Some(offline_media.as_str()));
    grete.ask(&format!("119 {offline_media}"), "227 400 mit%20bild");
    grete.expect_nothing();
    // Delivered once.
    grete.ask("111", "213 400");
    grete.ask("110 grete pw", "212 400 grete");
    grete.expect_nothing();
}

#[test]
fn a_ws2017_user_talks_with_an_opcode_user() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let server = Switchboard::start(&data_dir.path().join("data"));
    let mut hans = Opcode::connect(server.opcode_addr());
    hans.ask("117 hans pw", "222 400");
    hans.ask("110 hans pw", "212 400 hans");
    let willi = Client::login(&server, "willi");
    willi.send("chatm willi hans 'hallo hans'");
    willi.expect("+OK chatm 'message relayed'");
    let (chat, _, text, _) = hans.message();
    assert_eq!(text, "hallo%20hans");
    hans.ask(&format!("115 {chat} hallo%20willi"), "219 400");
    hans.message();
    willi.skip_until(|l| l == "chatm hans willi 'hallo willi'");
    hans.send("112");
    hans.expect("214 1");
    hans.expect(&format!("215 {chat} hans willi"));
    hans.expect("216");
}

#[test]
fn a_users_stored_media_is_limited_in_total_across_a_restart_and_others_are_unaffected() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let dir = data_dir.path().join("data");
    let config = data_dir.path().join("switchboard.toml");
    std::fs::write(&config, "[opcode]\nmax_media_bytes_per_user = 10\n").expect("write");
    let config = config.display().to_string();
    let start = || {
        Switchboard::start_with_flags(
            &dir,
            common::ServerOptions::default(),
            &["--config", &config],
        )
    };
    let server = start();
    let addr = server.opcode_addr();
    let mut hans = Opcode::connect(addr);
    hans.ask("117 hans pw", "222 400");
    hans.ask("110 hans pw", "212 400 hans");
    let mut grete = Opcode::connect(addr);
    grete.ask("117 grete pw", "222 400");
    grete.ask("110 grete pw", "212 400 grete");
    hans.ask("121 grete", "232 400");
    grete.expect("233 hans");
    grete.ask("121 hans", "232 400");
    hans.expect("233 grete");
    hans.ask("113 grete", "217 400");
    hans.send("112");
    hans.expect("214 1");
    let chat = hans.next().split(' ').nth(1).expect("a chat id").to_owned();
    hans.expect("216");

    // 8 bytes fit hans's total of 10; 4 more do not: 211, and grete hears nothing.
    hans.ask(&format!("115 {chat} a {}", encode(b"12345678")), "219 400");
    hans.message();
    grete.message();
    hans.ask(&format!("115 {chat} b {}", encode(b"1234")), "211");
    let line = server.wait_for_log("media refused");
    assert!(line.contains("hans") && line.contains("limit=10"), "{line}");
    grete.expect_nothing();
    // grete's own total is untouched.
    grete.ask(&format!("115 {chat} c {}", encode(b"87654321")), "219 400");
    grete.message();
    hans.message();

    // After a restart the totals are counted again from the store.
    drop(server);
    let server = start();
    let mut hans = login(server.opcode_addr(), "hans");
    hans.ask(&format!("115 {chat} d {}", encode(b"1234")), "211");
    hans.ask(&format!("115 {chat} e {}", encode(b"12")), "219 400");
    hans.message();
}
