//! Interop: Debian's jabberd2 router and c2s on 127.0.0.1, configured into a temporary
//! directory (shared/specs/jabberd2-interop.md), with the real `switchboard` binary as
//! their session manager and `switchboard jabberd-authreg` as c2s's authreg pipe, and
//! a small XMPP client written here (plain TCP, SASL PLAIN, no TLS) beside ws2017 and
//! ims clients: login, messages both ways with a ws2017 user, presence seen by an ims
//! friend, an offline message handed at XMPP login, a kick, and a failed start.
//!
//! Skipped, loudly, when the jabberd2 binaries are missing (`apt-get install jabberd2`;
//! `.ci/run` installs them).

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use common::ims::ImsClient;
use common::{admin, Client, ServerOptions, Switchboard, BIN};

const ROUTER_BIN: &str = "/usr/sbin/jabberd2-router";
const C2S_BIN: &str = "/usr/sbin/jabberd2-c2s";
const AUTHREG_DIR: &str = "/usr/lib/x86_64-linux-gnu/jabberd2";
const SECRET: &str = "link-s3cret";
/// How long the jabberd2 side may take (it starts, links and retries in seconds).
const SLOW: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// A jabberd2 daemon, killed when dropped; its log printed if the test failed.
struct Daemon(Child, PathBuf);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if thread::panicking() {
            let log = std::fs::read_to_string(&self.1).unwrap_or_default();
            eprintln!("--- {} ---\n{log}", self.1.display());
        }
    }
}

fn daemon(bin: &'static str, config: &Path, lab: &Path, name: &'static str) -> Daemon {
    let log = std::fs::File::create(lab.join(format!("log/{name}.stdout"))).expect("log file");
    let child = Command::new(bin)
        .arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {bin}: {e}"));
    Daemon(child, lab.join(format!("log/{name}.log")))
}

/// The lab's configs (the interop spec's, on the test's own ports), and the authreg
/// helper's wrapper script (c2s execs it without arguments).
fn configure(lab: &Path, data_dir: &Path, router: u16, c2s: u16) {
    for sub in ["log", "run"] {
        std::fs::create_dir_all(lab.join(sub)).expect("lab dirs");
    }
    let l = lab.display();
    std::fs::write(
        lab.join("router.xml"),
        format!(
            "<router><id>router</id><pidfile>{l}/run/router.pid</pidfile>
  <log type='file'><ident>jabberd/router</ident><file>{l}/log/router.log</file></log>
  <local><ip>127.0.0.1</ip><port>{router}</port><users>{l}/router-users.xml</users></local>
  <check><interval>60</interval><keepalive>0</keepalive></check>
  <io><max_fds>256</max_fds><limits><bytes>0</bytes><connects>0</connects></limits>
    <access><order>deny,allow</order><allow ip='127.0.0.1'/></access></io>
  <aliases/>
  <aci><acl type='all'><user>jabberd</user></acl><filter>{l}/router-filter.xml</filter></aci>
</router>"
        ),
    )
    .expect("router.xml");
    std::fs::write(
        lab.join("router-users.xml"),
        format!("<users><user><name>jabberd</name><secret>{SECRET}</secret></user></users>"),
    )
    .expect("router-users.xml");
    std::fs::write(lab.join("router-filter.xml"), "<filter>\n</filter>\n").expect("filter");
    std::fs::write(lab.join("secret"), format!("{SECRET}\n")).expect("secret");
    let helper = lab.join("authreg.sh");
    let script = format!(
        "#!/bin/sh\nexec '{BIN}' jabberd-authreg --data-dir '{}'\n",
        data_dir.display()
    );
    std::fs::write(&helper, script).expect("authreg wrapper");
    set_executable(&helper);
    std::fs::write(
        lab.join("c2s.xml"),
        format!(
            "<c2s><id>c2s</id><pidfile>{l}/run/c2s.pid</pidfile>
  <router><ip>127.0.0.1</ip><port>{router}</port><user>jabberd</user><pass>{SECRET}</pass>
    <retry><init>-1</init><lost>-1</lost><sleep>1</sleep></retry></router>
  <log type='file'><ident>jabberd/c2s</ident><file>{l}/log/c2s.log</file></log>
  <local><id register-enable='true'>localhost</id><ip>127.0.0.1</ip><port>{c2s}</port></local>
  <io><max_fds>256</max_fds>
    <limits><bytes>0</bytes><stanzas>0</stanzas><connects>0</connects><stanzasize>65535</stanzasize></limits>
    <access><order>deny,allow</order><allow ip='127.0.0.1'/></access>
    <check><interval>0</interval><idle>0</idle><keepalive>0</keepalive></check></io>
  <authreg><path>{AUTHREG_DIR}</path><module>pipe</module>
    <mechanisms><traditional/><sasl><plain/></sasl></mechanisms>
    <ssl-mechanisms><traditional/><sasl><plain/></sasl></ssl-mechanisms>
    <pipe><exec>{}</exec></pipe></authreg>
</c2s>",
            helper.display()
        ),
    )
    .expect("c2s.xml");
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut perms = std::fs::metadata(path).expect("metadata").permissions();
    perms.set_mode(0o755);
    std::fs::set_permissions(path, perms).expect("chmod");
}

/// A minimal XMPP client: what c2s sends is collected as text; the test waits for
/// substrings of it.
struct Xmpp {
    name: String,
    stream: TcpStream,
    input: Receiver<Option<String>>,
    /// Received and not yet consumed by an `expect`.
    seen: String,
    /// Everything received.
    all: String,
    closed: bool,
}

const STREAM_OPEN: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

impl Xmpp {
    fn connect(addr: SocketAddr, name: &str) -> Xmpp {
        let stream = TcpStream::connect(addr).expect("connect to c2s");
        let mut reader = stream.try_clone().expect("clone");
        let (tx, input) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                    Ok(n) => {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        if tx.send(Some(text)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Xmpp {
            name: name.to_owned(),
            stream,
            input,
            seen: String::new(),
            all: String::new(),
            closed: false,
        }
    }

    fn send(&mut self, text: &str) {
        eprintln!("[{} >] {text}", self.name);
        self.stream.write_all(text.as_bytes()).expect("send to c2s");
    }

    /// Reads until `needle` has arrived; returns everything up to and including it.
    fn expect(&mut self, needle: &str) -> String {
        self.expect_within(needle, SLOW).unwrap_or_else(|| {
            panic!(
                "{}: no {needle:?} within {SLOW:?}; got {:?}",
                self.name, self.seen
            )
        })
    }

    fn expect_within(&mut self, needle: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(at) = self.seen.find(needle) {
                let rest = self.seen.split_off(at + needle.len());
                return Some(std::mem::replace(&mut self.seen, rest));
            }
            if self.closed {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.input.recv_timeout(left) {
                Ok(Some(text)) => {
                    eprintln!("[{} <] {text}", self.name);
                    self.seen.push_str(&text);
                    self.all.push_str(&text);
                }
                Ok(None) => self.closed = true,
                Err(_) => return None,
            }
        }
    }

    /// The stream ends: c2s closes it (a kick).
    fn expect_closed(&mut self) {
        let deadline = Instant::now() + SLOW;
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.input.recv_timeout(left) {
                Ok(Some(text)) => self.seen.push_str(&text),
                Ok(None) => self.closed = true,
                Err(_) => panic!("{}: still open; got {:?}", self.name, self.seen),
            }
        }
    }

    /// Opens the stream, authenticates with SASL PLAIN and restarts; `None` if c2s
    /// says the session manager is not there (yet).
    fn authenticate(addr: SocketAddr, user: &str, password: &str) -> Option<Xmpp> {
        let mut x = Xmpp::connect(addr, user);
        x.send(STREAM_OPEN);
        let features = x.expect_within("</stream:features>", SLOW);
        if features.is_none() {
            assert!(x.seen.contains("host-gone"), "{user}: {:?}", x.seen);
            return None;
        }
        let plain = STANDARD.encode(format!("\0{user}\0{password}").as_bytes());
        x.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
        ));
        x.expect("<success");
        x.send(STREAM_OPEN);
        x.expect("</stream:features>");
        Some(x)
    }

    /// Binds `resource`: returns c2s's answer.
    fn bind(&mut self, resource: &str) -> String {
        self.send(&format!("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"));
        self.expect("</iq>")
    }

    /// Logs in as `user` with `resource`, starts the session and sends the initial
    /// presence; waits for the sm to be there first.
    fn login(addr: SocketAddr, user: &str, resource: &str) -> Xmpp {
        let deadline = Instant::now() + SLOW;
        let mut x = loop {
            if let Some(x) = Xmpp::authenticate(addr, user, "pw") {
                break x;
            }
            assert!(Instant::now() < deadline, "the sm never showed up at c2s");
            thread::sleep(Duration::from_millis(200));
        };
        let bound = x.bind(resource);
        assert!(
            bound.contains(&format!("<jid>{user}@localhost/{resource}</jid>")),
            "{user} bound: {bound}"
        );
        x.send(
            "<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
        );
        x.expect("id='sess1'");
        x
    }
}

fn wait_for_port(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + SLOW;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{what} never listened on {addr}");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn xmpp_clients_through_jabberd2_chat_with_the_other_protocols() {
    if !Path::new(ROUTER_BIN).exists() || !Path::new(C2S_BIN).exists() {
        eprintln!();
        eprintln!("!!!!!!!! SKIPPED e2e_jabberd: {ROUTER_BIN} or {C2S_BIN} is missing");
        eprintln!("!!!!!!!! (apt-get install -y jabberd2 to run the jabberd2 interop test)");
        eprintln!();
        return;
    }
    let dir = tempfile::tempdir().expect("temporary dir");
    let lab: PathBuf = dir.path().join("lab");
    let data_dir = dir.path().join("data");
    for name in ["alice", "bob", "carol", "dave"] {
        admin(&data_dir, &["user", "add", name, "--password", "pw"], None).ok();
    }
    let (router_port, c2s_port) = (free_port(), free_port());
    configure(&lab, &data_dir, router_port, c2s_port);
    let c2s_addr = SocketAddr::from(([127, 0, 0, 1], c2s_port));

    let _router = daemon(ROUTER_BIN, &lab.join("router.xml"), &lab, "router");
    wait_for_port(
        SocketAddr::from(([127, 0, 0, 1], router_port)),
        "the router",
    );
    let router_flag = format!("127.0.0.1:{router_port}");
    let secret_file = lab.join("secret");
    let server = Switchboard::start_with_flags(
        &data_dir,
        ServerOptions::default(),
        &[
            "--jabberd-router",
            &router_flag,
            "--jabberd-domain",
            "localhost",
            "--jabberd-user",
            "jabberd",
            "--jabberd-secret-file",
            secret_file.to_str().expect("utf-8 path"),
        ],
    );
    let _c2s = daemon(C2S_BIN, &lab.join("c2s.xml"), &lab, "c2s");
    wait_for_port(c2s_addr, "c2s");
    assert!(
        !server.log_lines().iter().any(|l| l.contains(SECRET)),
        "the secret is never logged"
    );

    // In-band registration (XEP-0077) on a stream of its own makes a Switchboard
    // account (the helper asks the server; the sm answers c2s's `create`).
    let mut reg = Xmpp::connect(c2s_addr, "frank-reg");
    let deadline = Instant::now() + SLOW;
    loop {
        reg.send(STREAM_OPEN);
        if reg.expect_within("</stream:features>", SLOW).is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the sm never showed up at c2s");
        thread::sleep(Duration::from_millis(200));
        reg = Xmpp::connect(c2s_addr, "frank-reg");
    }
    reg.send("<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>frank</username><password>pw</password></query></iq>");
    let got = reg.expect("</iq>");
    assert!(
        got.contains("id='reg1'") && got.contains("type='result'"),
        "{got}"
    );
    let users = admin(&data_dir, &["user", "list"], None);
    assert!(users.stdout.contains("frank"), "{:?}", users.lines());
    drop(reg);

    // A wrong password is refused by c2s, through the authreg helper and the server.
    let deadline = Instant::now() + SLOW;
    let mut eve = loop {
        let mut x = Xmpp::connect(c2s_addr, "eve");
        x.send(STREAM_OPEN);
        if x.expect_within("</stream:features>", SLOW).is_some() {
            break x;
        }
        assert!(Instant::now() < deadline, "the sm never showed up at c2s");
        thread::sleep(Duration::from_millis(200));
    };
    let plain = STANDARD.encode(b"\0alice\0not-her-password");
    eve.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
    ));
    eve.expect("<not-authorized");

    // alice logs in over XMPP; a ws2017 user and she chat both ways.
    let mut alice = Xmpp::login(c2s_addr, "alice", "laptop");
    alice.send("<presence/>");
    alice.expect("<presence");
    let wendy = Client::login(&server, "wendy");
    wendy.send("chatm wendy alice 'hi alice'");
    wendy.expect("+OK chatm 'message relayed'");
    let got = alice.expect("</message>");
    assert!(
        got.contains("from='wendy@localhost'") && got.contains("<body>hi alice</body>"),
        "{got}"
    );
    assert!(
        !got.contains("jabberd.jabberstudio.org"),
        "c2s strips the session attributes: {got}"
    );
    alice.send("<message to='wendy@localhost' type='chat'><body>hi wendy</body></message>");
    let got = wendy.skip_until(|l| l.starts_with("chatm "));
    assert_eq!(got, "chatm alice wendy 'hi wendy'");

    // bob on ims befriends alice and sees her status, as she sets it over XMPP.
    let bob = ImsClient::login(&server, "bob", "pw");
    bob.ask("<FRIEND user=\"bob\" type=\"add\" friend=\"alice\"/>");
    bob.expect("<FRIEND type=\"add\" result=\"1\"/>");
    let got = alice.expect("type='subscribe'");
    assert!(got.contains("from='bob@localhost'"), "{got}");
    alice.send("<presence to='bob@localhost' type='subscribed'/>");
    let deadline = Instant::now() + SLOW;
    loop {
        bob.ask("<FRIEND user=\"bob\" type=\"request\"/>");
        if bob.next() == "<FRIENDS><USER status=\"0\">alice</USER></FRIENDS>" {
            break;
        }
        assert!(Instant::now() < deadline, "bob never saw alice as a friend");
        thread::sleep(Duration::from_millis(100));
    }
    alice.send("<presence><show>away</show></presence>");
    let deadline = Instant::now() + SLOW;
    loop {
        bob.ask("<STATUS user=\"alice\" type=\"get\"/>");
        if bob.next() == "<STATUS type=\"get\" result=\"1\"/>" {
            break;
        }
        assert!(Instant::now() < deadline, "bob never saw alice away");
        thread::sleep(Duration::from_millis(100));
    }

    // frank, registered over XMPP, logs in with his new account and reaches alice.
    let mut frank = Xmpp::login(c2s_addr, "frank", "desk");
    frank.send("<message to='alice@localhost' type='chat'><body>new here</body></message>");
    let got = alice.expect("new here");
    assert!(got.contains("from='frank@localhost'"), "{got}");
    drop(frank);

    // A message for carol while she is offline, handed to her at her XMPP login.
    bob.ask("<MESSAGE from=\"bob\" to=\"carol\">while you were out</MESSAGE>");
    bob.expect("<MESSAGE result=\"-1\"/>");
    let mut carol = Xmpp::login(c2s_addr, "carol", "phone");
    if !carol.all.contains("</message>") {
        carol.expect("</message>");
    }
    let got = carol.all.clone();
    assert_eq!(got.matches("while you were out").count(), 1, "once: {got}");
    assert!(
        got.contains("from='bob@localhost'") && got.contains("<body>while you were out</body>"),
        "{got}"
    );

    // A kick closes carol's stream; alice stays.
    let kicked = admin(&data_dir, &["kick", "carol"], None);
    assert!(!kicked.ok().is_empty(), "kick: {:?}", kicked.lines());
    carol.expect_closed();
    alice.send("<iq type='get' id='ping2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    alice.expect("id='ping2'");

    // A failed start: dave authenticates, is banned before binding, and his bind gets
    // internal-server-error rather than hanging.
    let mut dave = Xmpp::authenticate(c2s_addr, "dave", "pw").expect("sm is up");
    let banned = admin(&data_dir, &["ban", "user", "dave"], None);
    assert!(!banned.ok().is_empty(), "ban: {:?}", banned.lines());
    let got = dave.bind("r1");
    assert!(
        got.contains("type='error'") && got.contains("internal-server-error"),
        "{got}"
    );
}
