//! Operator experience, end to end: the config file, logs, metrics, status, backup and
//! shutdown, on the runtime `SWITCHBOARD_TEST_RUNTIME` names.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use common::{ServerOptions, Switchboard, BIN, WAIT};

/// Runs `switchboard check-config FILE`.
fn check_config(file: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(file)
        .output()
        .expect("run check-config");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The first line the server sends a fresh ws2017 connection.
fn first_line(addr: std::net::SocketAddr) -> String {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).expect("a line");
    line
}

#[test]
fn check_config_accepts_the_example_and_names_a_misspelt_key() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("switchboard.example.toml");
    let (status, stdout, stderr) = check_config(&example);
    assert_eq!(status, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("switchboard.example.toml: ok"), "{stdout}");
    assert!(stdout.contains("ws2017 127.0.0.1:1030"), "{stdout}");
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[limits]\nmax_conections = 5\n").expect("write");
    let (status, stdout, stderr) = check_config(&bad);
    assert_eq!(status, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "unknown key `limits.max_conections` (did you mean `limits.max_connections`?)"
        ),
        "{stderr}"
    );
    let (status, _, stderr) = check_config(&dir.path().join("missing.toml"));
    assert_eq!(status, Some(1));
    assert!(stderr.contains("cannot read the config file"), "{stderr}");
    // The jabberd secret file is read as `serve` reads it.
    let linked = dir.path().join("linked.toml");
    let secret = dir.path().join("secret");
    let text = format!(
        "[jabberd]\nrouter = \"127.0.0.1:5347\"\ndomain = \"example.org\"\nuser = \"sm\"\nsecret_file = \"{}\"\n",
        secret.display()
    );
    std::fs::write(&linked, text).expect("write");
    let (status, stdout, stderr) = check_config(&linked);
    assert_eq!(status, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("cannot read --jabberd-secret-file"),
        "{stderr}"
    );
    std::fs::write(&secret, "s3cret\n").expect("write");
    let (status, stdout, stderr) = check_config(&linked);
    assert_eq!(status, Some(0), "{stdout}{stderr}");
}

#[test]
fn serve_reads_its_limits_from_the_config_file_and_flags_override_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("switchboard.toml");
    // The file's ports are taken by the test's flags (port 0); its limit applies.
    std::fs::write(
        &config,
        "[listen]\nws2017 = \"127.0.0.1:1\"\n[limits]\nmax_connections_per_ip = 1\n",
    )
    .expect("write");
    let data = dir.path().join("data");
    let config_arg = config.display().to_string();
    let server =
        Switchboard::start_with_flags(&data, ServerOptions::default(), &["--config", &config_arg]);
    let _first = TcpStream::connect(server.addr).expect("connect");
    server.wait_for_log("connection opened");
    let refused = first_line(server.addr);
    assert!(
        refused.contains("too many connections from your address"),
        "{refused:?}"
    );
}

/// The JSON log lines of `server` so far.
fn json_lines(server: &Switchboard) -> Vec<serde_json::Value> {
    server
        .log_lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect()
}

#[test]
fn logins_and_kicks_are_logged_as_json_with_their_fields_and_connections_are_not_at_info() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = ServerOptions {
        log: Some("info"),
        ..ServerOptions::default()
    };
    let server =
        Switchboard::start_with_flags(&dir.path().join("data"), options, &["--log-format", "json"]);
    let alice = common::Client::login(&server, "alice");
    server.wait_for_log("\"login\"");
    let run = common::admin(&server.data_dir, &["kick", "alice"], None);
    run.ok();
    alice.expect("+OK cquit 'kicked by an administrator'");
    alice.expect_closed();
    server.wait_for_log("sessions closed");
    let lines = json_lines(&server);
    let login = lines
        .iter()
        .find(|l| l["message"] == "login")
        .expect("a login line");
    assert_eq!(login["user"], "alice");
    assert_eq!(login["protocol"], "ws2017");
    assert_eq!(login["level"], "INFO");
    assert!(
        login["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{login}"
    );
    let kick = lines
        .iter()
        .find(|l| l["message"] == "sessions closed")
        .expect("a kick line");
    assert_eq!(kick["user"], "alice");
    assert_eq!(kick["reason"], "kicked");
    assert_eq!(kick["protocol"], "ws2017");
    // At info, a connection's opening and ordinary closing are not logged.
    assert!(
        !lines.iter().any(|l| l["message"] == "connection opened"),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.to_string().contains("password")));
}

/// `GET path` on `addr`: the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics listener");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head");
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// The value of the sample `name` in `text`, if there.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The address of the metrics listener of `server`, from its log line.
fn metrics_addr(server: &Switchboard) -> String {
    let line = server
        .log_lines()
        .into_iter()
        .find(|l| l.contains("metrics listening on http://"))
        .unwrap_or_else(|| server.wait_for_log("metrics listening on http://"));
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("an address")
        .to_owned()
}

/// Scrapes `addr` until `name` has the value `want` (or the wait is over); the last scrape.
fn scrape_until(addr: &str, name: &str, want: f64) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, text) = http_get(addr, "/metrics");
        if sample(&text, name) == Some(want) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn metrics_are_served_with_help_texts_and_follow_logins_and_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Switchboard::start_with_flags(
        &dir.path().join("data"),
        ServerOptions::default(),
        &["--metrics", "127.0.0.1:0"],
    );
    let addr = metrics_addr(&server);
    let (status, before) = http_get(&addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    for (name, kind) in [
        ("switchboard_connections", "gauge"),
        ("switchboard_logins", "counter"),
        ("switchboard_sessions", "gauge"),
        ("switchboard_messages_routed", "counter"),
        ("switchboard_offline_queue_messages", "gauge"),
        ("switchboard_commit_batch_changes", "histogram"),
        ("switchboard_commit_seconds", "histogram"),
        ("switchboard_received_bytes", "counter"),
        ("switchboard_sent_bytes", "counter"),
        ("switchboard_disconnects", "counter"),
        ("switchboard_rate_refusals", "counter"),
    ] {
        assert!(
            before.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}: {before}"
        );
        let help = format!("# HELP {name} ");
        assert!(
            before
                .lines()
                .any(|l| l.starts_with(&help) && l.len() > help.len() + 10),
            "{name} has no help: {before}"
        );
    }
    assert!(before.ends_with("# EOF\n"), "{before}");
    let login = r#"switchboard_logins_total{protocol="ws2017"}"#;
    assert_eq!(sample(&before, login), Some(0.0), "{before}");
    let alice = common::Client::login(&server, "alice");
    let bob = common::Client::login(&server, "bob");
    alice.send("chatm alice bob 'hi'");
    bob.expect("chatm alice bob 'hi'");
    alice.send("cquit");
    let routed = r#"switchboard_messages_routed_total{from="ws2017",to="ws2017"}"#;
    let quit = r#"switchboard_disconnects_total{reason="quit"}"#;
    let deadline = std::time::Instant::now() + WAIT;
    let after = loop {
        let (_, after) = http_get(&addr, "/metrics");
        // A scrape reads each metric in turn while the server runs on, so it is not a
        // snapshot: wait for all of them to show the quit, not just the first.
        let sessions = sample(&after, r#"switchboard_sessions{protocol="ws2017"}"#);
        let settled = sample(&after, quit) == Some(1.0) && sessions == Some(1.0);
        if settled || std::time::Instant::now() > deadline {
            break after;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(sample(&after, login), Some(2.0), "{after}");
    assert_eq!(sample(&after, routed), Some(1.0), "{after}");
    assert_eq!(sample(&after, quit), Some(1.0), "{after}");
    assert_eq!(
        sample(&after, r#"switchboard_sessions{protocol="ws2017"}"#),
        Some(1.0),
        "{after}"
    );
    assert!(
        sample(
            &after,
            r#"switchboard_received_bytes_total{protocol="ws2017"}"#
        )
        .is_some_and(|n| n > 0.0),
        "{after}"
    );
    let (status, _) = http_get(&addr, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

/// The jabberd router link, against a stand-in router (a plain listener that accepts and
/// says nothing): established, lost, refused and established again, each logged with the
/// router's address, and counted in the connection gauge under `outbound` only while up.
#[test]
fn the_router_link_is_logged_with_its_address_and_counted_as_outbound() {
    use std::net::TcpListener;
    let dir = tempfile::tempdir().expect("temp dir");
    let router = TcpListener::bind("127.0.0.1:0").expect("bind the stand-in router");
    let router_addr = router.local_addr().expect("address").to_string();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").expect("write the secret");
    let secret_arg = secret.display().to_string();
    let server = Switchboard::start_with_flags(
        &dir.path().join("data"),
        ServerOptions::default(),
        &[
            "--metrics",
            "127.0.0.1:0",
            "--jabberd-router",
            &router_addr,
            "--jabberd-secret-file",
            &secret_arg,
        ],
    );
    let metrics = metrics_addr(&server);
    let outbound = r#"switchboard_connections{protocol="outbound"}"#;
    let (link, _) = router.accept().expect("the server dials the router");
    let up = server.wait_for_log("outbound connection established");
    assert!(up.contains(&router_addr), "{up}");
    let text = scrape_until(&metrics, outbound, 1.0);
    assert_eq!(sample(&text, outbound), Some(1.0), "{text}");
    // The link is no client: every client figure stays at 0; what the server sent the
    // router (its stream header) counts as outbound.
    for protocol in ["ws2017", "arsc", "ims", "opcode", "jabberd"] {
        let name = format!(r#"switchboard_connections{{protocol="{protocol}"}}"#);
        assert_eq!(sample(&text, &name), Some(0.0), "{name}: {text}");
        let name = format!(r#"switchboard_sent_bytes_total{{protocol="{protocol}"}}"#);
        assert_eq!(sample(&text, &name), Some(0.0), "{name}: {text}");
    }
    let sent = r#"switchboard_sent_bytes_total{protocol="outbound"}"#;
    let deadline = std::time::Instant::now() + WAIT;
    let mut text = text;
    while !sample(&text, sent).is_some_and(|n| n > 0.0) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        text = http_get(&metrics, "/metrics").1;
    }
    assert!(
        sample(&text, sent).is_some_and(|n| n > 0.0),
        "{sent}: {text}"
    );
    // The router goes away: the loss, then the refused redial, each with the address.
    drop(link);
    drop(router);
    let lost = server.wait_for_log("outbound connection closed");
    assert!(
        lost.contains(&router_addr) && lost.contains("WARN"),
        "{lost}"
    );
    let redial = server.wait_for_log("redialing outbound link");
    assert!(redial.contains(&router_addr), "{redial}");
    let refused = server.wait_for_log("outbound connection failed");
    assert!(
        refused.contains(&router_addr) && refused.contains("WARN"),
        "{refused}"
    );
    let text = scrape_until(&metrics, outbound, 0.0);
    assert_eq!(sample(&text, outbound), Some(0.0), "{text}");
    // Back on the same port: the server links again.
    let router = TcpListener::bind(&router_addr).expect("bind the router again");
    let (_link, _) = router.accept().expect("the server dials the router again");
    let again = server.wait_for_log("outbound connection established");
    assert!(again.contains(&router_addr), "{again}");
    let text = scrape_until(&metrics, outbound, 1.0);
    assert_eq!(sample(&text, outbound), Some(1.0), "{text}");
}

#[test]
fn a_drawn_seed_is_never_logged_and_a_given_one_is_warned_of() {
    // Whoever knows the seed can predict every session id (an arsc sid is a login).
    let dir = tempfile::tempdir().expect("temp dir");
    let options = ServerOptions {
        drawn_seed: true,
        ..ServerOptions::default()
    };
    let mut server = Switchboard::start_with(&dir.path().join("drawn"), options);
    let lines = server.log_lines();
    assert!(
        (lines.iter())
            .any(|l| l.contains("INFO") && l.contains("256 bits from the operating system")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("seed=")), "{lines:#?}");
    assert!(server.stop().success());
    let mut server = Switchboard::start(&dir.path().join("given"));
    let lines = server.log_lines();
    assert!(
        (lines.iter())
            .any(|l| l.contains("WARN") && l.contains("seed=1") && l.contains("predictable")),
        "{lines:#?}"
    );
    assert!(server.stop().success());
}

/// A start that fails (here: the metrics address is taken) leaves no admin socket behind.
#[test]
fn a_failed_start_leaves_no_admin_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("address").to_string();
    let output = Switchboard::command(&data, &ServerOptions::default())
        .args(["--metrics", &busy])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("metrics"), "{stderr}");
    assert!(!data.join("admin.sock").exists(), "{stderr}");
}

/// A store created in a directory that existed (a first start, or a mistyped path) is
/// said with a warning; a directory made for it, or a store opened again, is not.
#[test]
fn a_new_store_in_an_existing_directory_is_warned_of() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Switchboard::start(dir.path());
    let warned = |server: &Switchboard| {
        (server.log_lines().iter()).any(|l| l.contains("WARN") && l.contains("it held no store"))
    };
    assert!(warned(&server), "{:#?}", server.log_lines());
    assert!(server.stop().success());
    let mut server = Switchboard::start(dir.path());
    assert!(!warned(&server), "{:#?}", server.log_lines());
    assert_eq!(server.log_count("data directory opened"), 1);
    assert!(server.stop().success());
    let mut server = Switchboard::start(&dir.path().join("made"));
    assert!(!warned(&server), "{:#?}", server.log_lines());
    assert_eq!(server.log_count("data directory created"), 1);
    assert!(server.stop().success());
}

#[test]
fn status_reports_the_running_server_and_says_when_none_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut server = Switchboard::start(&data);
    let _alice = common::Client::login(&server, "alice");
    let run = common::admin(&data, &["status"], None);
    let lines = run.ok();
    assert_eq!(lines[0], format!("version {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(lines[1], format!("runtime {}", common::runtime()));
    assert!(lines[2].starts_with("uptime "), "{lines:?}");
    assert!(
        lines.contains(&"protocol ws2017 connections=1 sessions=1"),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"protocol ims connections=0 sessions=0"),
        "{lines:?}"
    );
    assert!(lines.contains(&"users online=1"), "{lines:?}");
    assert_eq!(lines.last(), Some(&"status"));
    assert!(server.stop().success());
    let run = common::admin(&data, &["status"], None);
    assert_eq!(
        run.refused(),
        [format!("no server is running on {}", data.display())]
    );
}

#[test]
fn backup_copies_the_live_store_and_the_copy_restores() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut server = Switchboard::start(&data);
    common::admin(&data, &["user", "add", "alice", "--password", "pw"], None).ok();
    let copy = dir.path().join("copy.db");
    let copy_arg = copy.display().to_string();
    let run = common::admin(&data, &["backup", &copy_arg], None);
    let lines = run.ok();
    assert!(
        lines[0].starts_with(&format!("backed up {} to {copy_arg} (", data.display())),
        "{lines:?}"
    );
    assert!(lines[0].ends_with(", 1 accounts)"), "{lines:?}");
    // The server goes on, and a backup never overwrites.
    common::admin(&data, &["user", "add", "bob", "--password", "pw"], None).ok();
    let again = common::admin(&data, &["backup", &copy_arg], None);
    assert_eq!(again.status, Some(1));
    assert!(again.stderr.contains("exists"), "{again:?}");
    // The copy is one self-contained, private database with what was committed.
    {
        let db = rusqlite::Connection::open(&copy).expect("open the copy");
        let accounts: i64 = db
            .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
            .expect("count");
        assert_eq!(accounts, 1);
        let mode: String = db
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("journal mode");
        assert_eq!(mode, "delete");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Restore as docs/operations.md says: stop, replace the database, remove the WAL
    // files, start.
    assert!(server.stop().success());
    std::fs::copy(&copy, data.join("switchboard.db")).expect("restore");
    for wal in ["switchboard.db-wal", "switchboard.db-shm"] {
        let _ = std::fs::remove_file(data.join(wal));
    }
    let _server = Switchboard::start(&data);
    let list = common::admin(&data, &["user", "list"], None);
    let lines = list.ok();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("user alice "), "{lines:?}");
    assert_eq!(lines[1], "1 account");
}

/// Everything `stream` receives until the server closes it (within [`WAIT`]).
fn read_to_close(mut stream: TcpStream) -> String {
    use std::io::Read;
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut all = Vec::new();
    stream
        .read_to_end(&mut all)
        .expect("closed by the server within the wait");
    String::from_utf8_lossy(&all).into_owned()
}

#[cfg(unix)]
#[test]
fn sigterm_tells_each_client_in_its_protocol_then_closes_and_exits_0() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    common::admin(&data, &["user", "add", "carol", "--password", "pw"], None).ok();
    let mut server = Switchboard::start(&data);
    let ws = common::Client::login(&server, "alice");
    let ims = common::ims::ImsClient::login(&server, "carol", "pw");
    let mut arsc = TcpStream::connect(server.arsc_addr).expect("arsc");
    arsc.write_all(
        b"<arscrequest><type>connect</type><user>guest</user><room>lounge</room></arscrequest>",
    )
    .expect("connect");
    server.wait_for_log("protocol=arsc");
    let opcode = TcpStream::connect(server.opcode_addr()).expect("opcode");
    server.wait_for_log("protocol=opcode");
    // Logged in everywhere; the arsc guest's login is the last line to wait for.
    let deadline = std::time::Instant::now() + WAIT;
    while server.log_count("\"login\"") + server.log_count(" login ") < 3 {
        assert!(std::time::Instant::now() < deadline, "not all logged in");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    server.signal(libc::SIGTERM);
    // (alice hears of the others' logins first.)
    ws.skip_until(|l| l == "-ERR 'the server is shutting down'");
    ws.expect_closed();
    ims.expect("<LOGOUT user=\"carol\" result=\"1\"/>");
    ims.expect_closed_within(WAIT);
    let arsc_said = read_to_close(arsc);
    assert!(
        arsc_said.contains(
            "<type>system</type><sendtime>"
        ) && arsc_said.ends_with("<sender>System</sender><content>The server is shutting down.</content></arscmessage>\n"),
        "{arsc_said}"
    );
    read_to_close(opcode);
    let status = server.wait_for_exit();
    assert!(status.success(), "{status:?}");
    assert!(
        server.log_count("reason=\"shutdown\"") >= 4,
        "{:?}",
        server.log_lines()
    );
}

#[cfg(unix)]
#[test]
fn sighup_reloads_limits_and_the_log_filter_and_never_stops_the_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("switchboard.toml");
    std::fs::write(&config, "[limits]\nmax_connections_per_ip = 64\n").expect("write");
    let config_arg = config.display().to_string();
    let mut server = Switchboard::start_with_flags(
        &dir.path().join("data"),
        ServerOptions::default(),
        &["--config", &config_arg],
    );
    let alice = common::Client::login(&server, "alice");
    server.wait_for_log("connection opened");
    std::fs::write(
        &config,
        "[limits]\nmax_connections_per_ip = 1\nlogin_timeout = 30\n[log]\nfilter = \"info\"\n",
    )
    .expect("rewrite");
    server.signal(libc::SIGHUP);
    let reloaded = server.wait_for_log("config reloaded");
    assert!(
        reloaded.contains("limits.max_connections_per_ip: 64 -> 1"),
        "{reloaded}"
    );
    assert!(
        reloaded.contains("limits.login_timeout: 60s -> 30s"),
        "{reloaded}"
    );
    assert_eq!(server.log_count("apply only at start"), 0);
    assert!(
        reloaded.contains(&format!("log.filter: {} -> info", common::CONN_LOG)),
        "{reloaded}"
    );
    assert!(!reloaded.contains("limits.max_connections:"), "{reloaded}");
    // The new cap applies to the next connection; alice stays.
    let refused = first_line(server.addr);
    assert!(
        refused.contains("too many connections from your address"),
        "{refused:?}"
    );
    alice.send("cgetu");
    alice.expect("+OK cgetu alice");
    // The new filter: connections opening are no longer logged.
    assert_eq!(server.log_count("connection opened"), 1);
    // What applies only at start is kept for the next start, and the reload says so.
    std::fs::write(
        &config,
        "[limits]\nmax_connections_per_ip = 1\nlogin_timeout = 30\n[log]\nfilter = \"info\"\n[ims]\nalive_timeout = 30\n",
    )
    .expect("rewrite");
    server.signal(libc::SIGHUP);
    let kept = server.wait_for_log("apply only at start");
    assert!(kept.contains("WARN"), "{kept}");
    // A file that no longer parses changes nothing, and the server goes on.
    std::fs::write(&config, "[limits]\nmax_conections = 5\n").expect("rewrite");
    server.signal(libc::SIGHUP);
    let failed = server.wait_for_log("config reload failed");
    assert!(failed.contains("max_conections"), "{failed}");
    server.assert_running();
    alice.send("cgetu");
    alice.expect("+OK cgetu alice");
    assert!(server.stop().success());
}
