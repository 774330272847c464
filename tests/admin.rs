//! The admin subcommands of the real binary, against a stopped server (straight on the
//! store) and against a running one (through its admin socket).

#![cfg(unix)]

mod common;

use std::fs::{self, OpenOptions};
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{admin, admin_exact, AdminRun, Client, ServerOptions, Switchboard, BIN};
use switchboard_store::credentials;
use switchboard_store::Store;

/// The password hash of `name` in the store verifies `password`.
fn password_is(data_dir: &Path, name: &str, password: &str) -> bool {
    let state = Store::open(data_dir)
        .and_then(|store| store.load())
        .expect("load the store");
    let account = state
        .accounts
        .values()
        .find(|a| a.name.as_str() == name)
        .unwrap_or_else(|| panic!("no account {name} in the store"));
    credentials::verify(&account.password, password).expect("a valid hash")
}

/// The account lines of `user list` without their creation times.
fn accounts(data_dir: &Path) -> Vec<String> {
    let run = admin(data_dir, &["user", "list"], None);
    run.ok()
        .into_iter()
        .map(|line| {
            line.split(' ')
                .filter(|field| !field.starts_with("created="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The same account and ban commands give the same answers whether a server runs or not.
fn accounts_and_bans(data_dir: &Path) {
    assert_eq!(
        admin(
            data_dir,
            &["user", "add", "alice", "--password", "pw1"],
            None
        )
        .ok(),
        ["account alice created"]
    );
    let run = admin(
        data_dir,
        &[
            "user",
            "add",
            "Bob",
            "--password-stdin",
            "--level",
            "2",
            "--email",
            "bob@example.org",
            "--gender",
            "m",
        ],
        Some("s3cret word\n"),
    );
    assert_eq!(run.ok(), ["account Bob created"]);
    assert_eq!(
        admin(data_dir, &["user", "add", "alice", "--password", "x"], None).refused(),
        ["account alice exists"]
    );
    // Empty passwords are refused, from the flag and from standard input.
    assert_eq!(
        admin(data_dir, &["user", "add", "eve", "--password", ""], None).refused(),
        ["the password is empty"]
    );
    assert_eq!(
        admin(
            data_dir,
            &["user", "add", "eve", "--password-stdin"],
            Some("\n")
        )
        .refused(),
        ["the password is empty"]
    );
    assert_eq!(
        admin(data_dir, &["user", "passwd", "Bob", "--password", ""], None).refused(),
        ["the password is empty"]
    );
    assert!(password_is(data_dir, "Bob", "s3cret word"));
    assert_eq!(
        accounts(data_dir),
        [
            "user alice level=0 banned=no email= gender=",
            "user Bob level=2 banned=no email=bob@example.org gender=m",
            "2 accounts",
        ]
    );
    assert!(password_is(data_dir, "Bob", "s3cret word"));

    // passwd from the flag, from --password-stdin, and from a bare stdin line.
    let run = admin(
        data_dir,
        &["user", "passwd", "alice", "--password", "pw2"],
        None,
    );
    assert_eq!(run.ok(), ["password of alice changed"]);
    assert!(password_is(data_dir, "alice", "pw2"));
    let run = admin(
        data_dir,
        &["user", "passwd", "alice", "--password-stdin"],
        Some("pw3\r\n"),
    );
    assert_eq!(run.ok(), ["password of alice changed"]);
    assert!(password_is(data_dir, "alice", "pw3"));
    let run = admin(data_dir, &["user", "passwd", "ALICE"], Some("pw4\n"));
    assert_eq!(run.ok(), ["password of alice changed"]);
    assert!(password_is(data_dir, "alice", "pw4"));
    let run = admin(
        data_dir,
        &["user", "passwd", "carol", "--password", "x"],
        None,
    );
    assert_eq!(run.refused(), ["no account carol"]);

    // Bans.
    assert_eq!(
        admin(data_dir, &["ban", "ip", "10.1.2.3"], None).ok(),
        ["10.1.2.3 banned"]
    );
    assert_eq!(
        admin(data_dir, &["ban", "ip", "2001:db8::1"], None).ok(),
        ["2001:db8::1 banned"]
    );
    assert_eq!(
        admin(data_dir, &["ban", "user", "bob"], None).ok(),
        ["Bob banned"]
    );
    assert_eq!(
        admin(data_dir, &["ban", "list"], None).ok(),
        ["ip 10.1.2.3", "ip 2001:db8::1", "user Bob", "bans listed"]
    );
    assert_eq!(
        admin(data_dir, &["unban", "ip", "10.1.2.3"], None).ok(),
        ["10.1.2.3 not banned"]
    );
    assert_eq!(
        admin(data_dir, &["unban", "user", "Bob"], None).ok(),
        ["Bob not banned"]
    );
    assert_eq!(
        admin(data_dir, &["ban", "list"], None).ok(),
        ["ip 2001:db8::1", "bans listed"]
    );
    assert_eq!(
        admin(data_dir, &["ban", "user", "nobody"], None).refused(),
        ["no account nobody"]
    );

    // Nobody is online under an account.
    assert_eq!(
        admin(data_dir, &["kick", "alice"], None).refused(),
        ["alice is not online"]
    );

    assert_eq!(
        admin(data_dir, &["user", "del", "alice"], None).ok(),
        ["account alice deleted"]
    );
    assert_eq!(
        admin(data_dir, &["user", "del", "alice"], None).refused(),
        ["no account alice"]
    );
    assert_eq!(
        accounts(data_dir),
        [
            "user Bob level=2 banned=no email=bob@example.org gender=m",
            "1 account"
        ]
    );
}

#[test]
fn admin_commands_work_on_a_stopped_server() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    accounts_and_bans(&data_dir);
    assert!(
        !data_dir.join("admin.sock").exists(),
        "an admin command made a socket"
    );

    // Usage errors exit with 2, say what is wrong, and change nothing.
    let before = accounts(&data_dir);
    let run = admin(&data_dir, &["user", "add", "dave"], None);
    assert_eq!(run.status, Some(2), "{run:?}");
    assert_eq!(
        run.stderr.lines().take(2).collect::<Vec<_>>(),
        [
            "error: the following required arguments were not provided:",
            "  <--password <PW>|--password-stdin>"
        ],
        "{run:?}"
    );
    let run = admin(&data_dir, &["user", "passwd", "Bob"], Some(""));
    assert_eq!(run.status, Some(2), "{run:?}");
    assert_eq!(run.stderr, "switchboard: no password on standard input\n");
    let run = admin(&data_dir, &["ban", "ip", "not-an-address"], None);
    assert_eq!(run.status, Some(2), "{run:?}");
    assert_eq!(
        run.stderr.lines().next(),
        Some("error: invalid value 'not-an-address' for '<ADDR>': invalid IP address syntax"),
        "{run:?}"
    );
    assert!(run.stdout.is_empty(), "{run:?}");
    assert_eq!(accounts(&data_dir), before);

    // What was done offline is what a server starts with.
    let mut server = Switchboard::start(&data_dir);
    let lines = admin(&data_dir, &["ban", "list"], None);
    assert_eq!(lines.ok(), ["ip 2001:db8::1", "bans listed"]);
    assert!(server.stop().success());
}

#[test]
fn admin_commands_work_on_a_running_server() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    let mut server = Switchboard::start(&data_dir);

    // The same commands, through the socket.
    accounts_and_bans(&data_dir);

    // Kick a live ws2017 user: it is told in its protocol's manner and closed.
    let carol = Client::login(&server, "carol");
    let dave = Client::login(&server, "dave");
    carol.expect("nuser dave");
    assert_eq!(
        admin(&data_dir, &["kick", "CAROL"], None).ok(),
        ["carol kicked, 1 session closed"]
    );
    carol.expect("+OK cquit 'kicked by an administrator'");
    carol.expect_closed();
    dave.expect("cquit carol");

    // Ban loopback: live connections are closed, new ones refused.
    let erin = Client::login(&server, "erin");
    dave.expect("nuser erin");
    assert_eq!(
        admin(&data_dir, &["ban", "ip", "127.0.0.1"], None).ok(),
        ["127.0.0.1 banned, 2 connections closed"]
    );
    for client in [&dave, &erin] {
        client.expect("+OK cquit 'banned by an administrator'");
        client.expect_closed();
    }
    let refused = server.connect("frank");
    refused.expect("-ERR 'your IP address is banned'");
    refused.expect_closed();
    assert_eq!(
        admin(&data_dir, &["unban", "ip", "127.0.0.1"], None).ok(),
        ["127.0.0.1 not banned"]
    );
    let frank = Client::login(&server, "frank");

    // A second server on the same data dir is refused, and the first one goes on.
    let second = common::Switchboard::command(&data_dir, &Default::default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run a second server");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("is in use by another switchboard process"),
        "{stderr}"
    );
    frank.send("cgetu");
    frank.expect("+OK cgetu frank");
    server.assert_running();

    // Admin connections are not logged at info: the only line about the admin socket is
    // the one saying where it listens, whole and well formed.
    assert_eq!(server.log_count("local connection"), 0);
    let admin_lines: Vec<String> = server
        .log_lines()
        .into_iter()
        .filter(|line| line.contains("admin"))
        .collect();
    assert_eq!(admin_lines.len(), 1, "{admin_lines:#?}");
    let (stamp, rest) = admin_lines[0]
        .split_once(' ')
        .expect("a timestamp, then the event");
    assert!(
        stamp.len() == "2026-01-01T00:00:00.000000Z".len()
            && stamp.ends_with('Z')
            && stamp.as_bytes()[10] == b'T',
        "{stamp:?}"
    );
    assert_eq!(
        rest,
        format!(
            " INFO {}::admin: admin socket listening path={}",
            common::runtime_crate(),
            data_dir.join("admin.sock").display()
        )
    );

    drop(frank);
    assert!(server.stop().success());
    // The running server's changes are in the store.
    assert_eq!(
        accounts(&data_dir),
        [
            "user Bob level=2 banned=no email=bob@example.org gender=m",
            "1 account"
        ]
    );
}

#[test]
fn a_locked_data_dir_without_an_admin_socket_is_reported() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    drop(switchboard_store::Store::open(dir.path()).expect("a store"));
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.path().join("switchboard.lock"))
        .expect("lock file");
    lock.try_lock().expect("take the lock");
    let started = Instant::now();
    let run = admin(dir.path(), &["user", "list"], None);
    assert_eq!(run.status, Some(1), "{run:?}");
    assert!(run.stderr.contains("has no admin socket"), "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Runs an admin command and fails the test if it has not exited within `limit`.
fn admin_within(limit: Duration, data_dir: &Path, args: &[&str]) -> AdminRun {
    let (done, result) = std::sync::mpsc::channel();
    let dir = data_dir.to_owned();
    let owned: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    std::thread::spawn(move || {
        let args: Vec<&str> = owned.iter().map(String::as_str).collect();
        let _ = done.send(admin_exact(&dir, &args, None));
    });
    result.recv_timeout(limit).unwrap_or_else(|_| {
        panic!(
            "`switchboard {}` took longer than {limit:?}",
            args.join(" ")
        )
    })
}

/// Whether this test runs as root (needed to give files to another user).
fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("exists").permissions().mode() & 0o777
}

/// Runs a server on `data_dir` to its end, expecting it to refuse to start.
fn serve_refused(data_dir: &Path) -> String {
    let output = Switchboard::command(data_dir, &ServerOptions::default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run the server");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
    stderr
}

#[test]
fn the_admin_socket_answers_when_clients_took_every_descriptor() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    let options = ServerOptions {
        // Slow pings: the silent clients below must stay connected.
        ping_interval: Some("10"),
        ..ServerOptions::default()
    };
    let mut command = Switchboard::command(&data_dir, &options);
    // SAFETY: setrlimit is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut server = Switchboard::spawn(command, &data_dir);
    let limit = server.wait_for_log("file descriptor limit");
    assert!(limit.contains("soft=256 hard=256"), "{limit}");

    let clients: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    // The first clients are served.
    let mut first = clients
        .first()
        .expect("a client")
        .try_clone()
        .expect("clone");
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut greeting = [0; 4];
    first.read_exact(&mut greeting).expect("greeted");
    assert_eq!(&greeting, b"+OK ");
    // Let the server take in the rest.
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let run = admin_within(
        Duration::from_secs(10),
        &data_dir,
        &["ban", "ip", "10.9.9.9", "--timeout", "5"],
    );
    assert_eq!(run.ok(), ["10.9.9.9 banned"]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Those past the limit were closed at once, and that was logged.
    let mut last = clients
        .last()
        .expect("a client")
        .try_clone()
        .expect("clone");
    last.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut byte = [0; 1];
    assert_eq!(last.read(&mut byte).expect("closed, not reset"), 0);
    let warning = server.wait_for_log("at the client connection limit");
    assert!(warning.contains("WARN"), "{warning}");
    drop(clients);
    assert!(server.stop().success());
}

#[test]
fn admin_commands_never_create_a_data_dir_or_a_store() {
    let dir = tempfile::tempdir().expect("temporary dir");
    let typo = dir.path().join("some-typo");
    let run = admin_exact(&typo, &["user", "list"], None);
    assert_eq!(run.status, Some(1), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "switchboard: data directory {0} does not exist; check the path, or start the \
             server once with `switchboard serve --data-dir {0}` to create it\n",
            typo.display()
        )
    );
    assert!(!typo.exists(), "the typo was created");

    // An existing directory with no store in it: refused, left as it was.
    let run = admin_exact(
        dir.path(),
        &["user", "add", "bob", "--password", "pw"],
        None,
    );
    assert_eq!(run.status, Some(1), "{run:?}");
    assert!(
        run.stderr.starts_with(&format!(
            "switchboard: {} holds no Switchboard store",
            dir.path().display()
        )),
        "{run:?}"
    );
    assert_eq!(
        fs::read_dir(dir.path()).expect("list").count(),
        0,
        "a file was created"
    );
}

#[test]
fn serve_creates_the_default_data_dir_and_logs_where() {
    let dir = tempfile::tempdir().expect("temporary working dir");
    let start = |expect: &str| {
        let mut command = Command::new(BIN);
        command
            .args([
                "serve",
                "--ws2017",
                "127.0.0.1:0",
                "--arsc",
                "127.0.0.1:0",
                "--ims",
                "127.0.0.1:0",
                "--opcode",
                "127.0.0.1:0",
            ])
            .args(["--runtime", common::runtime()])
            .args(["--hash-cost", "cheap"])
            .current_dir(dir.path())
            .env("RUST_LOG", "info");
        let mut server = Switchboard::spawn(command, &dir.path().join("switchboard-data"));
        let line = server
            .log_lines()
            .into_iter()
            .find(|line| line.contains("data directory"))
            .expect("the data dir is logged");
        let absolute = dir.path().join("switchboard-data");
        assert!(
            line.ends_with(&format!(
                "data directory {expect} path={}",
                absolute.display()
            )),
            "{line}"
        );
        assert!(server.stop().success());
    };
    start("created");
    assert!(dir.path().join("switchboard-data/switchboard.db").is_file());
    start("opened");
}

#[test]
fn an_emptied_or_lost_database_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    admin(&data_dir, &["user", "add", "bob", "--password", "pw"], None).ok();
    let db = data_dir.join("switchboard.db");

    fs::write(&db, b"").expect("truncate the database");
    let stderr = serve_refused(&data_dir);
    assert!(
        stderr.contains(&format!("database {} is empty (0 bytes)", db.display())),
        "{stderr}"
    );
    let run = admin_exact(&data_dir, &["user", "list"], None);
    assert_eq!(run.status, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("database {} is empty", db.display())),
        "{run:?}"
    );
    assert_eq!(
        fs::metadata(&db).expect("still there").len(),
        0,
        "left as it was"
    );

    fs::remove_file(&db).expect("lose the database");
    let stderr = serve_refused(&data_dir);
    assert!(
        stderr.contains(&format!("database {} is missing", db.display())),
        "{stderr}"
    );
    assert!(!db.exists(), "no empty network was started in its place");

    fs::write(&db, "not a database\n".repeat(100)).expect("garbage");
    let stderr = serve_refused(&data_dir);
    assert!(stderr.contains(&db.display().to_string()), "{stderr}");
}

#[test]
fn a_data_dir_others_can_write_is_refused_by_serve_and_admin_commands() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    admin(&data_dir, &["user", "add", "bob", "--password", "pw"], None).ok();
    fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o777)).expect("chmod 777");
    let fix = format!("run `chmod 700 {}`", data_dir.display());
    let stderr = serve_refused(&data_dir);
    assert!(
        stderr.contains("is writable by group and others (mode 777)"),
        "{stderr}"
    );
    assert!(stderr.contains(&fix), "{stderr}");
    let run = admin_exact(&data_dir, &["user", "list"], None);
    assert_eq!(run.status, Some(1), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(run.stderr.contains(&fix), "{run:?}");

    if root() {
        fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700)).expect("chmod 700");
        std::os::unix::fs::chown(&data_dir, Some(65534), None).expect("chown");
        let stderr = serve_refused(&data_dir);
        assert!(
            stderr.contains("is owned by uid 65534, not by this user"),
            "{stderr}"
        );
        std::os::unix::fs::chown(&data_dir, Some(0), None).expect("chown back");
    }

    // Fixed as told, it serves, and every file it keeps is for its owner only.
    fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700)).expect("chmod 700");
    let mut server = Switchboard::start(&data_dir);
    assert_eq!(
        admin(&data_dir, &["ban", "ip", "10.1.2.3"], None).ok(),
        ["10.1.2.3 banned"]
    );
    for name in [
        "switchboard.db",
        "switchboard.db-wal",
        "switchboard.db-shm",
        "switchboard.lock",
        "switchboard.marker",
        "admin.sock",
    ] {
        assert_eq!(mode(&data_dir.join(name)), 0o600, "{name}");
    }
    assert!(server.stop().success());
}

/// A data dir whose lock is held (as by a running server) and whose admin socket is
/// `listener`: what an admin command meets when something else took the socket's place.
fn fake_server(data_dir: &Path) -> fs::File {
    drop(switchboard_store::Store::open(data_dir).expect("a store"));
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(data_dir.join("switchboard.lock"))
        .expect("lock file");
    lock.try_lock().expect("take the lock");
    lock
}

#[test]
fn an_unanswered_command_says_it_was_sent_and_not_answered() {
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    let _lock = fake_server(&data_dir);
    let socket = data_dir.join("admin.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o600)).expect("chmod");
    let run = admin_within(
        Duration::from_secs(10),
        &data_dir,
        &["ban", "list", "--timeout", "0.5"],
    );
    assert_eq!(run.status, Some(1), "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "switchboard: connected to the admin socket {} and sent the command, but no answer \
             came within 0.5 s; the command may still take effect (see the server's log)\n",
            socket.display()
        )
    );
    let (mut taken, _) = listener.accept().expect("the connection waited");
    let mut sent = String::new();
    taken.read_to_string(&mut sent).expect("read");
    assert_eq!(sent, "ban list\r\n");
}

#[test]
fn an_admin_socket_of_another_user_is_sent_nothing() {
    if !root() {
        eprintln!("skipped: needs root to act as another user");
        return;
    }
    let dir = tempfile::tempdir().expect("temporary data dir");
    let data_dir = dir.path().join("data");
    let _lock = fake_server(&data_dir);
    let socket = data_dir.join("admin.sock");

    // A socket left open to others.
    let listener = UnixListener::bind(&socket).expect("bind");
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).expect("chmod");
    let run = admin_within(Duration::from_secs(10), &data_dir, &["user", "list"]);
    assert_eq!(run.status, Some(1), "{run:?}");
    assert!(run.stderr.contains("its mode is 666"), "{run:?}");
    // A socket file owned by another user.
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(&socket, Some(65534), None).expect("chown");
    let run = admin_within(Duration::from_secs(10), &data_dir, &["user", "list"]);
    assert!(run.stderr.contains("it is owned by uid 65534"), "{run:?}");
    drop(listener);
    fs::remove_file(&socket).expect("remove");

    // A socket file that looks right, but another user's process listens on it: the
    // kernel's word (SO_PEERCRED) decides. The process binds in a directory it may write
    // to; the file is then moved into place and given to root.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("traversable");
    let public = dir.path().join("public");
    fs::create_dir(&public).expect("dir");
    fs::set_permissions(&public, fs::Permissions::from_mode(0o777)).expect("chmod");
    let bound = public.join("s");
    let path = std::ffi::CString::new(bound.to_str().expect("utf-8")).expect("no NUL");
    let mut impostor = Command::new("/bin/sleep");
    impostor.arg("30");
    // SAFETY: only async-signal-safe calls between fork and exec; the listening socket
    // (not close-on-exec) stays open in `sleep`.
    unsafe {
        impostor.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return fail();
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if fd < 0 {
                return fail();
            }
            let mut addr: libc::sockaddr_un = std::mem::zeroed();
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            for (i, b) in path.as_bytes().iter().enumerate() {
                addr.sun_path[i] = *b as libc::c_char;
            }
            let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            if libc::bind(fd, (&raw const addr).cast(), len) != 0 || libc::listen(fd, 8) != 0 {
                return fail();
            }
            Ok(())
        });
    }
    let mut impostor = impostor.spawn().expect("start the impostor");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !bound.exists() {
        assert!(Instant::now() < deadline, "the impostor did not bind");
        std::thread::sleep(Duration::from_millis(10));
    }
    fs::rename(&bound, &socket).expect("move into place");
    std::os::unix::fs::chown(&socket, Some(0), Some(0)).expect("chown");
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o600)).expect("chmod");
    let run = admin_within(
        Duration::from_secs(10),
        &data_dir,
        &["user", "add", "victim", "--password", "TopSecretPW"],
    );
    let _ = impostor.kill();
    let _ = impostor.wait();
    assert_eq!(run.status, Some(1), "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "switchboard: refusing to use the admin socket {}: the process listening on it runs \
             as uid 65534, not as this user (uid 0) or root; nothing was sent\n",
            socket.display()
        )
    );
}
