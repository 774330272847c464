//! End to end: `switchboard jabberd-authreg`, driven on its stdin/stdout as jabberd2's c2s
//! drives it (spec: jabberd2-sm-c2s.md, "Authenticating XMPP users against Switchboard's
//! accounts"), against a running server: every command's OK and NO, in-band registration
//! making a Switchboard account, malformed and truncated lines answered at once, the
//! failed-login throttle, and NO (never a hang) while the server is down.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use common::{admin, ServerOptions, Switchboard, BIN, WAIT};

const GREETING: &str = "OK USER-EXISTS CHECK-PASSWORD SET-PASSWORD CREATE-USER DELETE-USER FREE";

/// The helper as c2s runs it: commands on stdin, replies read from stdout as they come.
struct Authreg {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Every chunk its stdout gave, in order.
    out: Receiver<Vec<u8>>,
    /// Bytes read from stdout and not yet taken as a line.
    buffered: Vec<u8>,
    stderr: Receiver<String>,
}

impl Authreg {
    fn start(data_dir: &Path, flags: &[&str]) -> Authreg {
        let mut child = Command::new(BIN)
            .arg("jabberd-authreg")
            .arg("--data-dir")
            .arg(data_dir)
            .args(flags)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start jabberd-authreg");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let (tx, out) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                let _ = tx.send(buf[..n].to_vec());
            }
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, err) = mpsc::channel();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            for line in text.lines() {
                eprintln!("[authreg] {line}");
                let _ = tx.send(line.to_owned());
            }
        });
        let mut helper = Authreg {
            stdin: child.stdin.take(),
            child,
            out,
            buffered: Vec::new(),
            stderr: err,
        };
        assert_eq!(helper.line(), GREETING);
        helper
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write to the helper");
        stdin.flush().expect("flush");
    }

    /// The next reply line, within `WAIT` (a helper that waits for more input fails here,
    /// as c2s would freeze).
    fn line(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(end) = self.buffered.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffered.drain(..=end).take(end).collect();
                return String::from_utf8(line).expect("UTF-8 reply");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(chunk) => self.buffered.extend_from_slice(&chunk),
                Err(_) => panic!("no reply within {WAIT:?}: c2s would be frozen"),
            }
        }
    }

    /// Sends one command line and returns the reply.
    fn ask(&mut self, command: &str) -> String {
        self.send_raw(format!("{command}\n").as_bytes());
        let reply = self.line();
        assert!(
            reply == "OK" || reply == "NO",
            "reply {reply:?} to {command:?}"
        );
        reply
    }

    /// Nothing more on stdout for a moment (no second reply to one command).
    fn expect_quiet(&mut self) {
        assert!(self.buffered.is_empty(), "extra output {:?}", self.buffered);
        if let Ok(chunk) = self.out.recv_timeout(Duration::from_millis(200)) {
            panic!("extra output {:?}", String::from_utf8_lossy(&chunk));
        }
    }

    /// Waits for the process to exit by itself.
    fn exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the helper did not exit");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its stderr, once it has exited.
    fn stderr_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(WAIT) {
            lines.push(line);
        }
        lines
    }
}

impl Drop for Authreg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn b64(password: &str) -> String {
    // The test's own encoder, independent of the helper's decoder.
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = password.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn server_with_alice(dir: &Path, flags: &[&str]) -> Switchboard {
    let server = Switchboard::start_with_flags(dir, ServerOptions::default(), flags);
    admin(
        dir,
        &["user", "add", "Alice", "--password", "wonderland"],
        None,
    )
    .ok();
    server
}

#[test]
fn the_encoder_matches_the_spec() {
    assert_eq!(b64("wonderland"), "d29uZGVybGFuZA==");
    assert_eq!(b64("pw one"), "cHcgb25l");
    assert_eq!(b64("x"), "eA==");
}

#[test]
fn logins_and_existence_follow_the_accounts_and_the_name_rules() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let _server = server_with_alice(&dir, &[]);
    let mut c2s = Authreg::start(&dir, &[]);
    assert_eq!(c2s.ask("USER-EXISTS alice localhost"), "OK");
    // SASL PLAIN keeps the case; Switchboard's key is case-mapped, as nodeprep is.
    assert_eq!(c2s.ask("USER-EXISTS ALICE localhost"), "OK");
    assert_eq!(c2s.ask("USER-EXISTS bob localhost"), "NO");
    assert_eq!(
        c2s.ask("CHECK-PASSWORD alice d29uZGVybGFuZA== localhost"),
        "OK"
    );
    assert_eq!(
        c2s.ask("CHECK-PASSWORD ALICE d29uZGVybGFuZA== localhost"),
        "OK"
    );
    // realm='' leaves the line ending in a space.
    assert_eq!(c2s.ask("CHECK-PASSWORD alice d29uZGVybGFuZA== "), "OK");
    assert_eq!(c2s.ask("USER-EXISTS alice "), "OK");
    assert_eq!(c2s.ask("CHECK-PASSWORD alice d3Jvbmc= localhost"), "NO");
    assert_eq!(c2s.ask("CHECK-PASSWORD bob eA== localhost"), "NO");
    // Never advertised, never answered OK.
    assert_eq!(c2s.ask("GET-PASSWORD alice localhost"), "NO");
    // A banned account cannot log in.
    admin(&dir, &["ban", "user", "alice"], None).ok();
    assert_eq!(
        c2s.ask("CHECK-PASSWORD alice d29uZGVybGFuZA== localhost"),
        "NO"
    );
    admin(&dir, &["unban", "user", "alice"], None).ok();
    assert_eq!(
        c2s.ask("CHECK-PASSWORD alice d29uZGVybGFuZA== localhost"),
        "OK"
    );
    c2s.expect_quiet();
    c2s.send_raw(b"FREE\n");
    assert!(c2s.exit().success());
}

#[test]
fn in_band_registration_makes_a_switchboard_account() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let _server = server_with_alice(&dir, &[]);
    let mut c2s = Authreg::start(&dir, &[]);
    // c2s's sequence for XEP-0077 (spec P.4): USER-EXISTS, CREATE-USER, SET-PASSWORD.
    assert_eq!(c2s.ask("USER-EXISTS carol localhost"), "NO");
    assert_eq!(c2s.ask("CREATE-USER carol localhost"), "OK");
    assert_eq!(c2s.ask("SET-PASSWORD carol cHcgb25l localhost"), "OK");
    let list = admin(&dir, &["user", "list"], None);
    assert!(
        list.ok()
            .iter()
            .any(|l| l.starts_with("user carol level=0 ")),
        "{list:?}"
    );
    assert_eq!(c2s.ask("CHECK-PASSWORD carol cHcgb25l localhost"), "OK");
    // The account is the same one every protocol logs in with.
    assert_eq!(c2s.ask("USER-EXISTS Carol localhost"), "OK");
    // A name that is taken (also by case), or breaks the name rules, is not created.
    assert_eq!(c2s.ask("CREATE-USER ALICE localhost"), "NO");
    assert_eq!(c2s.ask("CREATE-USER system localhost"), "NO");
    assert_eq!(c2s.ask("CREATE-USER a:b localhost"), "NO");
    // A password change by the logged-in user (c2s sends only its own name).
    assert_eq!(
        c2s.ask(&format!("SET-PASSWORD carol {} localhost", b64("pw2"))),
        "OK"
    );
    assert_eq!(c2s.ask("CHECK-PASSWORD carol cHcgb25l localhost"), "NO");
    assert_eq!(
        c2s.ask(&format!("CHECK-PASSWORD carol {} localhost", b64("pw2"))),
        "OK"
    );
    // SET-PASSWORD for a name with no account and no CREATE-USER makes nothing.
    assert_eq!(c2s.ask("SET-PASSWORD dave cHcgb25l localhost"), "NO");
    assert_eq!(c2s.ask("USER-EXISTS dave localhost"), "NO");
    // Unregistration.
    assert_eq!(c2s.ask("DELETE-USER carol localhost"), "OK");
    assert_eq!(c2s.ask("USER-EXISTS carol localhost"), "NO");
    assert_eq!(
        c2s.ask(&format!("CHECK-PASSWORD carol {} localhost", b64("pw2"))),
        "NO"
    );
    assert_eq!(c2s.ask("DELETE-USER carol localhost"), "NO");
    // End of input is a shutdown too.
    c2s.stdin = None;
    assert!(c2s.exit().success());
}

#[test]
fn malformed_and_truncated_lines_are_answered_no_at_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let _server = server_with_alice(&dir, &[]);
    let mut c2s = Authreg::start(&dir, &["--realm", "localhost"]);
    for line in [
        "",
        "HELLO",
        "USER-EXISTS alice",
        "USER-EXISTS alice localhost extra",
        // An authcid with a space arrives as an extra field.
        "CHECK-PASSWORD alice x d29uZGVybGFuZA== localhost",
        // An empty authcid.
        "CHECK-PASSWORD  eA== localhost",
        "CHECK-PASSWORD alice not-base64! localhost",
        "CHECK-PASSWORD alice d29uZGVybGFuZA== localhost\r",
        // Another realm than --realm.
        "CHECK-PASSWORD alice d29uZGVybGFuZA== example.org",
    ] {
        assert_eq!(c2s.ask(line), "NO", "{line:?}");
    }
    // c2s cuts a long command to 1023 bytes without its newline (a 600-character
    // authcid and password): answered at once, and the next command is read cleanly.
    let long = format!(
        "CHECK-PASSWORD {} {} localhost\n",
        "a".repeat(600),
        b64(&"p".repeat(600))
    );
    c2s.send_raw(&long.as_bytes()[..1023]);
    assert_eq!(c2s.line(), "NO");
    c2s.expect_quiet();
    assert_eq!(
        c2s.ask("CHECK-PASSWORD alice d29uZGVybGFuZA== localhost"),
        "OK"
    );
    // A truncated command arriving in pieces is still one command.
    c2s.send_raw(&[b'x'; 500]);
    c2s.expect_quiet();
    c2s.send_raw(&[b'x'; 523]);
    assert_eq!(c2s.line(), "NO");
    c2s.expect_quiet();
    assert_eq!(c2s.ask("USER-EXISTS alice localhost"), "OK");
    // Not UTF-8.
    c2s.send_raw(b"USER-EXISTS \xff localhost\n");
    assert_eq!(c2s.line(), "NO");
    c2s.expect_quiet();
}

#[test]
fn repeated_wrong_passwords_throttle_the_account() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let _server = server_with_alice(&dir, &["--failed-logins-per-account", "3"]);
    admin(&dir, &["user", "add", "bob", "--password", "builder"], None).ok();
    let mut c2s = Authreg::start(&dir, &[]);
    let right = "CHECK-PASSWORD alice d29uZGVybGFuZA== localhost";
    assert_eq!(c2s.ask(right), "OK");
    for _ in 0..3 {
        assert_eq!(c2s.ask("CHECK-PASSWORD alice d3Jvbmc= localhost"), "NO");
    }
    // The right password is refused while the account is throttled, however it is spelt.
    assert_eq!(c2s.ask(right), "NO");
    assert_eq!(
        c2s.ask("CHECK-PASSWORD ALICE d29uZGVybGFuZA== localhost"),
        "NO"
    );
    // Other accounts log in.
    assert_eq!(
        c2s.ask(&format!("CHECK-PASSWORD bob {} localhost", b64("builder"))),
        "OK"
    );
}

#[test]
fn while_the_server_is_down_every_answer_is_no_and_the_helper_stays() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut server = server_with_alice(&dir, &[]);
    let mut c2s = Authreg::start(&dir, &["--timeout", "1"]);
    assert_eq!(c2s.ask("USER-EXISTS alice localhost"), "OK");
    server.stop();
    let started = Instant::now();
    assert_eq!(
        c2s.ask("CHECK-PASSWORD alice d29uZGVybGFuZA== localhost"),
        "NO"
    );
    assert_eq!(c2s.ask("USER-EXISTS alice localhost"), "NO");
    assert_eq!(c2s.ask("CREATE-USER carol localhost"), "NO");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        c2s.child.try_wait().expect("wait").is_none(),
        "the helper exited"
    );
    // The store was not opened behind the server's back: no account was made offline.
    assert_eq!(c2s.ask("SET-PASSWORD carol cHcgb25l localhost"), "NO");
    // It reconnects by itself once the server is back.
    let _server = Switchboard::start(&dir);
    assert_eq!(
        c2s.ask("CHECK-PASSWORD alice d29uZGVybGFuZA== localhost"),
        "OK"
    );
    assert_eq!(c2s.ask("USER-EXISTS carol localhost"), "NO");
    c2s.send_raw(b"FREE\n");
    assert!(c2s.exit().success());
    let log = c2s.stderr_lines();
    assert!(
        log.iter()
            .any(|l| l.contains("answering NO") && l.contains("admin socket")),
        "{log:?}"
    );
}

/// Debian's c2s, when installed: it accepts the greeting (`initialized auth module
/// 'pipe'`, with in-band registration), and the helper exits when c2s shuts down. The
/// full interop test (logins through c2s) is tests/e2e_jabberd.rs's.
#[cfg(target_os = "linux")]
#[test]
fn the_real_c2s_accepts_the_greeting() {
    const C2S: &str = "/usr/sbin/jabberd2-c2s";
    if !Path::new(C2S).exists() {
        eprintln!("SKIPPED: {C2S} is not installed (apt-get install jabberd2)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = tmp.path();
    let dir = lab.join("data");
    let _server = server_with_alice(&dir, &[]);
    let free_port = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let helper = lab.join("helper.sh");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nexec '{BIN}' jabberd-authreg --data-dir '{}'\n",
            dir.display()
        ),
    )
    .expect("write the wrapper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let log = lab.join("c2s.log");
    let config = format!(
        "<c2s><id>c2s</id><pidfile>{lab}/c2s.pid</pidfile>\
         <router><ip>127.0.0.1</ip><port>{router}</port><user>jabberd</user><pass>secret</pass>\
         <retry><init>-1</init><lost>-1</lost><sleep>2</sleep></retry></router>\
         <log type='file'><ident>jabberd/c2s</ident><file>{log}</file></log>\
         <local><id register-enable='true'>localhost</id><ip>127.0.0.1</ip><port>{port}</port></local>\
         <authreg><path>/usr/lib/x86_64-linux-gnu/jabberd2</path><module>pipe</module>\
         <mechanisms><traditional><plain/></traditional><sasl><plain/></sasl></mechanisms>\
         <pipe><exec>{helper}</exec></pipe></authreg></c2s>",
        lab = lab.display(),
        router = free_port(),
        port = free_port(),
        log = log.display(),
        helper = helper.display(),
    );
    let config_path = lab.join("c2s.xml");
    std::fs::write(&config_path, config).expect("write c2s.xml");
    let mut c2s = Command::new(C2S)
        .arg("-c")
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start c2s");
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("configured;") || Instant::now() > deadline {
            break text;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(text.contains("initialized auth module 'pipe'"), "{text}");
    assert!(
        text.contains("authreg=pipe, registration enabled"),
        "{text}"
    );
    assert!(!text.contains("failed to initialise"), "{text}");
    let pid: i32 = text
        .split("running (pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no helper pid in {text}"));
    // SIGTERM: c2s sends FREE and closes the pipes; the helper exits.
    // SAFETY: kill with a child's pid and a signal number has no memory effects.
    unsafe { libc::kill(c2s.id() as i32, libc::SIGTERM) };
    let _ = c2s.wait();
    let deadline = Instant::now() + WAIT;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let gone = stat.is_empty() || stat.split(' ').nth(2) == Some("Z");
        if gone {
            break;
        }
        assert!(Instant::now() < deadline, "the helper outlived c2s: {stat}");
        thread::sleep(Duration::from_millis(50));
    }
}
