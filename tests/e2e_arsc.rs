//! End to end: the real `switchboard` binary, several arsc clients (and a ws2017 one)
//! over TCP on loopback, in two rooms.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use common::{admin, Client, Switchboard};

/// How long a test waits for an expected line.
const WAIT: Duration = Duration::from_secs(10);

/// An arsc client: a thread reads its `\n`-terminated lines.
struct Arsc {
    stream: TcpStream,
    lines: Receiver<String>,
}

impl Arsc {
    fn open(addr: SocketAddr) -> Arsc {
        let stream = TcpStream::connect(addr).expect("connect");
        let reader = stream.try_clone().expect("clone the stream");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(n) if n > 0 => {}
                    _ => return,
                }
                let line = match line.strip_suffix('\n') {
                    Some(line) => line.to_owned(),
                    None => format!("(no LF) {line}"),
                };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Arsc { stream, lines }
    }

    /// Connects `user` (with `password`, if registered) into `room`, as the seed's
    /// client does (padded to 200 bytes); returns the client and its sid, the welcome
    /// and the enter notice read.
    fn connect(addr: SocketAddr, user: &str, password: Option<&str>, room: &str) -> (Arsc, String) {
        let mut client = Arsc::open(addr);
        let password = password.map_or(String::new(), |p| format!("<password>{p}</password>"));
        let request = format!("<arscrequest><type>connect</type><user>{user}</user>{password}<room>{room}</room><language>english</language><template>xml</template></arscrequest>");
        let padding = "dummy".repeat(200usize.saturating_sub(request.len()) / 5 + 1);
        client.send(&format!("{request}{padding}"));
        let answer = client.next();
        let sid = answer
            .strip_prefix("<arscrespond><type>connect</type><status>ok</status><sid>")
            .and_then(|rest| rest.strip_suffix("</sid><version>0.1</version></arscrespond>"))
            .unwrap_or_else(|| panic!("{user} did not connect: {answer}"))
            .to_owned();
        client.expect_message(&message("whisper", "System", "Welcome to Switchboard!"));
        client.expect_message(&system(&format!("User {user} enters the room {room}.")));
        (client, sid)
    }

    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).expect("write");
    }

    fn next(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("no line from the server: {e}"))
    }

    fn expect(&self, want: &str) {
        assert_eq!(self.next(), want);
    }

    fn expect_nothing(&self) {
        if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(300)) {
            panic!("unexpected line: {line}");
        }
    }

    /// The server closed the connection.
    fn expect_closed(&self) {
        match self.lines.recv_timeout(WAIT) {
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
            other => panic!("expected the connection closed, got {other:?}"),
        }
    }

    fn post(&mut self, sid: &str, content: &str) {
        self.send(&format!("<arscrequest><type>post</type><sid>{sid}</sid><content>{content}</content></arscrequest>"));
    }

    fn userlist(&mut self, sid: &str) -> String {
        self.send(&format!(
            "<arscrequest><type>userlist</type><sid>{sid}</sid></arscrequest>"
        ));
        self.next()
    }
}

const POST_OK: &str = "<arscrespond><type>post</type><status>ok</status></arscrespond>";

/// A pushed message, with any `sendtime` (the wall clock's `HH:MM`) accepted by
/// [`Arsc::expect_message`].
fn message(kind: &str, sender: &str, content: &str) -> String {
    format!("<arscmessage><type>{kind}</type><sendtime>*</sendtime><sender>{sender}</sender><content>{content}</content></arscmessage>")
}

fn system(content: &str) -> String {
    message("system", "System", content)
}

impl Arsc {
    /// Like [`Arsc::expect`], with the `sendtime` checked for its shape only.
    fn expect_message(&self, want: &str) {
        let line = self.next();
        let masked = mask_sendtime(&line);
        assert_eq!(masked, want, "{line}");
    }
}

fn mask_sendtime(line: &str) -> String {
    let (Some(start), Some(end)) = (line.find("<sendtime>"), line.find("</sendtime>")) else {
        return line.to_owned();
    };
    let time = &line[start + "<sendtime>".len()..end];
    let ok = time.len() == 5
        && time.as_bytes()[2] == b':'
        && time
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 2 || b.is_ascii_digit());
    assert!(ok, "sendtime is not HH:MM: {line}");
    format!("{}<sendtime>*{}", &line[..start], &line[end..])
}

#[test]
fn clients_in_two_rooms_chat_whisper_across_protocols_kick_and_leave() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = data_dir.path().join("data");
    let added = admin(
        &data_dir,
        &["user", "add", "op", "--password", "pw", "--level", "1"],
        None,
    );
    assert_eq!(added.ok(), ["account op created"]);
    let mut server = Switchboard::start(&data_dir);
    let addr = server.arsc_addr;

    // Wrong password, then the right one.
    let mut bad = Arsc::open(addr);
    bad.send("<arscrequest><type>connect</type><user>op</user><password>nope</password><room>lounge</room></arscrequest>");
    bad.expect("<arscrespond><type>connect</type><status>error</status><error>Access denied! Are your credentials correct?</error><version>0.1</version></arscrespond>");

    let (mut op, op_sid) = Arsc::connect(addr, "op", Some("pw"), "lounge");
    let (mut ann, ann_sid) = Arsc::connect(addr, "ann", None, "lounge");
    op.expect_message(&system("User ann enters the room lounge."));
    let (ben, ben_sid) = Arsc::connect(addr, "ben", None, "lounge");
    op.expect_message(&system("User ben enters the room lounge."));
    ann.expect_message(&system("User ben enters the room lounge."));
    let (mut cat, cat_sid) = Arsc::connect(addr, "cat", None, "hall");
    assert_ne!(ann_sid, ben_sid);

    // A post reaches its room, not the other.
    ann.post(&ann_sid, "hello &amp; welcome");
    ann.expect(POST_OK);
    let said = message("normal", "ann", "hello &amp; welcome");
    for client in [&op, &ann, &ben] {
        client.expect_message(&said);
    }
    cat.expect_nothing();

    // The original clients post on a fresh connection per post: the answer comes there,
    // the message on ben's connecting connection.
    let mut fresh = Arsc::open(addr);
    fresh.post(&ben_sid, "/me waves");
    fresh.expect(POST_OK);
    let waved = message("me", "ben", "waves");
    for client in [&op, &ann, &ben] {
        client.expect_message(&waved);
    }
    drop(fresh);

    // A whisper reaches its recipient alone, in the other room too; on ws2017 as chatm.
    cat.post(&cat_sid, "/msg ann psst");
    cat.expect(POST_OK);
    cat.expect_message(&message("whisper", "System", "You whispered to ann: psst"));
    ann.expect_message(&message("whisper", "cat", "psst"));
    let wes = Client::login(&server, "wes");
    ann.post(&ann_sid, "/msg wes hi wes");
    ann.expect(POST_OK);
    ann.expect_message(&message(
        "whisper",
        "System",
        "You whispered to wes: hi wes",
    ));
    wes.expect("chatm ann wes 'hi wes'");
    wes.send("chatm wes ann 'hi ann'");
    wes.expect("+OK chatm 'message relayed'");
    ann.expect_message(&message("whisper", "wes", "hi ann"));
    op.expect_nothing();
    ben.expect_nothing();

    // The user list of each room, with levels.
    assert_eq!(
        ann.userlist(&ann_sid),
        "<arscrespond><type>userlist</type><status>ok</status><user><name>ann</name><level>0</level></user><user><name>ben</name><level>0</level></user><user><name>op</name><level>1</level></user></arscrespond>"
    );
    assert_eq!(
        cat.userlist(&cat_sid),
        "<arscrespond><type>userlist</type><status>ok</status><user><name>cat</name><level>0</level></user></arscrespond>"
    );

    // The operator kicks ben: ben is told and closed, the room told, the list updated.
    op.post(&op_sid, "/kick ben");
    op.expect(POST_OK);
    ben.expect_message(&message(
        "whisper",
        "System",
        "You were kicked out of the chat!",
    ));
    ben.expect_closed();
    for client in [&op, &ann] {
        client.expect_message(&system("User ben was kicked out of the chat by op."));
        client.expect_message(&system("User ben leaves the room lounge."));
    }
    ann.post(&ben_sid, "still here?");
    ann.expect("<arscrespond><type>post</type><status>error</status><error>This session is not known</error></arscrespond>");

    // ann disconnects: she leaves the room and its list.
    ann.stream.shutdown(Shutdown::Both).expect("close");
    op.expect_message(&system("User ann leaves the room lounge."));
    assert_eq!(
        op.userlist(&op_sid),
        "<arscrespond><type>userlist</type><status>ok</status><user><name>op</name><level>1</level></user></arscrespond>"
    );
    cat.expect_nothing();
    assert!(server.stop().success());
}

/// The message rate reaches the server through its flag: past the burst a post is
/// answered with the original's error, told why, not said to the room, and logged.
#[test]
fn posts_past_the_message_rate_are_refused_told_and_logged() {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = data_dir.path().join("data");
    let flags = ["--message-rate-per-conn", "0/2"];
    let server = Switchboard::start_with_flags(&data_dir, common::ServerOptions::default(), &flags);
    let addr = server.arsc_addr;
    let (mut ann, sid) = Arsc::connect(addr, "ann", None, "lounge");
    let (ben, _) = Arsc::connect(addr, "ben", None, "lounge");
    ann.expect_message(&system("User ben enters the room lounge."));
    for text in ["one", "two"] {
        ann.post(&sid, text);
        ann.expect(POST_OK);
        ann.expect_message(&message("normal", "ann", text));
        ben.expect_message(&message("normal", "ann", text));
    }
    ann.post(&sid, "three");
    ann.expect("<arscrespond><type>post</type><status>error</status><error>Message could not be handled</error></arscrespond>");
    ann.expect_message(&message(
        "whisper",
        "System",
        "Too many requests, slow down.",
    ));
    ben.expect_nothing();
    let line = server.wait_for_log("requests refused by rate limits");
    assert!(line.contains("refused=1"), "{line}");
}
