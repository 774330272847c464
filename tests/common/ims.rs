//! An ims client over TCP for the end-to-end tests: documents out, newline-ended
//! documents in, read by a thread so the test can take its time between steps.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use super::{Switchboard, WAIT};

/// One ims connection.
pub struct ImsClient {
    pub name: String,
    docs: Receiver<String>,
    writer: TcpStream,
}

impl ImsClient {
    pub fn connect(addr: SocketAddr, name: &str) -> ImsClient {
        let writer = TcpStream::connect(addr).expect("connect");
        let reader = writer.try_clone().expect("clone the stream");
        let (tx, docs) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            loop {
                let mut doc = Vec::new();
                match reader.read_until(b'\n', &mut doc) {
                    Ok(n) if n > 0 => {}
                    _ => return,
                }
                let text = String::from_utf8_lossy(&doc).into_owned();
                let text = match text.strip_suffix('\n') {
                    Some(text) => text.to_owned(),
                    None => format!("(no newline) {text}"),
                };
                if tx.send(text).is_err() {
                    return;
                }
            }
        });
        ImsClient {
            name: name.to_owned(),
            docs,
            writer,
        }
    }

    /// Sends `doc` as is.
    pub fn send(&self, doc: &str) {
        (&self.writer).write_all(doc.as_bytes()).expect("send");
    }

    /// Sends `doc` and checks that its echo comes back first.
    pub fn ask(&self, doc: &str) {
        self.send(doc);
        self.expect(doc);
    }

    /// The next document the server sent.
    pub fn next(&self) -> String {
        match self.docs.recv_timeout(WAIT) {
            Ok(doc) => doc,
            Err(RecvTimeoutError::Timeout) => panic!("{}: nothing within {WAIT:?}", self.name),
            Err(RecvTimeoutError::Disconnected) => panic!("{}: connection closed", self.name),
        }
    }

    pub fn expect(&self, want: &str) {
        assert_eq!(
            self.next(),
            want,
            "{} got an unexpected document",
            self.name
        );
    }

    /// Nothing arrives for `wait`.
    pub fn expect_nothing(&self, wait: Duration) {
        if let Ok(doc) = self.docs.recv_timeout(wait) {
            panic!("{}: expected nothing, got {doc:?}", self.name);
        }
    }

    /// The server closes the connection within `wait`, with no more documents first.
    pub fn expect_closed_within(&self, wait: Duration) {
        match self.docs.recv_timeout(wait) {
            Err(RecvTimeoutError::Disconnected) => {}
            Ok(doc) => panic!("{}: expected the close, got {doc:?}", self.name),
            Err(RecvTimeoutError::Timeout) => panic!("{}: still open after {wait:?}", self.name),
        }
    }

    /// The LOGIN document of `name` with password `password`, as a client sends it.
    pub fn login_doc(name: &str, password: &str) -> String {
        let md5 = switchboard_store::credentials::md5_hex(password);
        format!("<LOGIN user=\"{name}\" pass=\"{md5}\"/>")
    }

    /// Connects and logs in as `name` with `password`.
    pub fn login(server: &Switchboard, name: &str, password: &str) -> ImsClient {
        let client = ImsClient::connect(server.ims_addr, name);
        client.ask(&ImsClient::login_doc(name, password));
        client.expect(&format!("<LOGIN user=\"{name}\" result=\"1\"/>"));
        client
    }
}
