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
