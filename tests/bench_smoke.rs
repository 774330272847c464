//! The benchmark's modes at tiny sizes against the real binary and the null relay: every
//! mode finishes, counts what it sent, and sees no error, so `compare` keeps measuring
//! what it says as the server changes. (The figures themselves: `docs/performance.md`.)

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use switchboard_bench::compare::{self, Mode, Sizes};
use switchboard_bench::load::Target;
use switchboard_bench::relay::Relay;

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// Starts the server on the runtime under test (`SWITCHBOARD_TEST_RUNTIME`, as the other
/// end-to-end tests; the binary's default when unset).
fn start_server(accounts: usize) -> compare::Running {
    let runtime = std::env::var("SWITCHBOARD_TEST_RUNTIME").ok();
    let runtime = runtime.as_deref().filter(|r| !r.is_empty());
    compare::start_server_on(Path::new(BIN), accounts, runtime).expect("server starts")
}

fn tiny() -> Sizes {
    Sizes {
        direct_clients: 20,
        direct_messages: 20,
        idle_clients: 30,
        login_clients: 30,
        storm_clients: 30,
        offline_messages: 2000,
        room_clients: 10,
        room_senders: 2,
        room_posts: 5,
        paced_rate: 100_000.0,
    }
}

fn target(addr: SocketAddr, pid: Option<u32>) -> Target {
    Target {
        proto: switchboard_bench::proto::Proto::Ws2017,
        addr,
        pid,
        sources: 4,
        timeout: Duration::from_secs(10),
    }
}

/// A null relay in a thread, stopped when the guard drops.
struct RelayThread {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl RelayThread {
    fn start() -> RelayThread {
        let mut relay = Relay::bind(
            "127.0.0.1:0".parse().expect("addr"),
            switchboard_bench::proto::Proto::Ws2017,
        )
        .expect("bind relay");
        let addr = relay.local_addr().expect("relay address");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            relay
                .run(|| flag.load(Ordering::Relaxed))
                .expect("relay runs");
        });
        RelayThread {
            addr,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for RelayThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What each mode must have counted at the tiny sizes.
fn check(mode: Mode, report: &switchboard_bench::load::Report, sizes: &Sizes, who: &str) {
    assert_eq!(report.errors, 0, "{who} {mode:?}: {:?}", report.first_error);
    let get = |key: &str| {
        report
            .get(key)
            .unwrap_or_else(|| panic!("{who} {mode:?}: no {key} in {report:?}"))
    };
    match mode {
        Mode::Direct | Mode::Direct8 | Mode::Paced => {
            let p = mode.name();
            let total = (sizes.direct_clients * sizes.direct_messages) as f64;
            assert_eq!(get(&format!("{p}.delivered")), total, "{who} {mode:?}");
            assert!(get(&format!("{p}.msgs_per_s")) > 0.0);
            assert!(get(&format!("{p}.p99_ms")) >= get(&format!("{p}.p50_ms")));
            assert!(get(&format!("{p}.max_ms")) > 0.0);
        }
        Mode::Idle => {
            assert_eq!(get("idle.held"), sizes.idle_clients as f64, "{who}");
            if who == "server" {
                assert!(get("idle.server_rss_mib") > 0.0);
            }
        }
        Mode::Logins => {
            assert!(get("logins.total_s") > 0.0);
            assert!(get("logins.p99_ms") > 0.0);
        }
        Mode::Storm => {
            assert!(get("storm.all_in_s") > 0.0);
        }
        Mode::Room => {
            let total = (sizes.room_clients * sizes.room_senders * sizes.room_posts) as f64;
            assert_eq!(get("room.delivered"), total, "{who}");
        }
        Mode::Offline => {
            assert!(get("offline.acked_per_s") > 0.0);
            assert!(get("offline.p99_ack_ms") > 0.0);
        }
    }
}

#[test]
fn every_mode_runs_against_the_server_and_the_null_relay() {
    let sizes = tiny();
    let accounts = compare::offline_accounts(&sizes);
    let relay = RelayThread::start();
    for mode in Mode::ALL {
        let server = start_server(accounts);
        let report = compare::run_mode(mode, &target(server.addr, Some(server.pid())), &sizes)
            .unwrap_or_else(|e| panic!("server {mode:?}: {e}"));
        check(mode, &report, &sizes, "server");
        drop(server);
        let report = compare::run_mode(mode, &target(relay.addr, None), &sizes)
            .unwrap_or_else(|e| panic!("relay {mode:?}: {e}"));
        check(mode, &report, &sizes, "relay");
    }
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read a line");
    line
}

/// The null relay sends what the server sends for the lines the benchmark uses, byte for
/// byte (docs/protocols/ws2017.md), so the generator measures both the same way.
#[test]
fn null_relay_speaks_the_servers_bytes() {
    let relay = RelayThread::start();
    let connect = || {
        let stream = TcpStream::connect(relay.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        assert!(read_line(&mut reader).starts_with("+OK "), "greeting");
        (stream, reader)
    };
    let (mut alice, mut alice_in) = connect();
    let (mut bob, mut bob_in) = connect();
    alice.write_all(b"uname alice\r\n").expect("write");
    assert_eq!(read_line(&mut alice_in), "+OK uname you are alice\r\n");
    assert_eq!(read_line(&mut bob_in), "nuser alice\r\n");
    bob.write_all(b"uname bob\r\n").expect("write");
    assert_eq!(read_line(&mut bob_in), "+OK uname you are bob\r\n");
    assert_eq!(read_line(&mut alice_in), "nuser bob\r\n");
    alice
        .write_all(b"chatm alice bob 'hi there'\r\n")
        .expect("write");
    assert_eq!(read_line(&mut alice_in), "+OK chatm 'message relayed'\r\n");
    assert_eq!(read_line(&mut bob_in), "chatm alice bob 'hi there'\r\n");
    bob.write_all(b"chatr alice bob\r\n").expect("write");
    assert_eq!(read_line(&mut alice_in), "chatr alice bob\r\n");
    alice
        .write_all(b"chatm alice carol 'later'\r\n")
        .expect("write");
    assert_eq!(read_line(&mut alice_in), "+OK chatm 'message stored'\r\n");
    alice.write_all(b"cping\r\n").expect("write");
    assert_eq!(read_line(&mut alice_in), "+OK cpong\r\n");
}

/// An idle logged-in client costs the server little memory: no read buffer is held for
/// a connection with nothing to read (it was a zeroed 16 KiB buffer per connection,
/// about 21 KiB of RSS per idle client in all), and on smol no task or reactor
/// registration either (1.0-1.4 KiB per client in this debug build from 200 to 800
/// clients, 1.5-2.7 with a reader task per connection; release figures in
/// docs/performance.md). Measured as the slope between two crowds, each on a fresh
/// server: what the process reserves once (its threads' allocator arenas, the runtime)
/// is no cost per client. 600 clients make a noisy slope, so the bound is loose.
#[test]
fn an_idle_client_costs_the_server_under_4_kib() {
    let rss_with = |clients: usize| {
        let server = start_server(0);
        let report = switchboard_bench::load::idle(
            &target(server.addr, Some(server.pid())),
            &switchboard_bench::load::IdleOpts {
                clients,
                connect_only: false,
                hold: Duration::from_millis(300),
            },
        )
        .expect("idle run");
        assert_eq!(report.errors, 0, "{:?}", report.first_error);
        assert_eq!(report.get("idle.held"), Some(clients as f64));
        report.get("idle.server_rss_mib").expect("RSS read") * 1024.0
    };
    let (few, many) = (200, 800);
    let per_client = (rss_with(many) - rss_with(few)) / (many - few) as f64;
    assert!(
        per_client < 4.0,
        "{per_client:.1} KiB of server RSS per idle client"
    );
}
