//! Each protocol's adapter at tiny sizes, against the real binary and its own null relay:
//! every mode `compare` runs for that protocol finishes, counts every delivery it should,
//! and sees no error reply, so the figures in docs/performance.md measure what they say.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use switchboard_bench::compare::{self, Mode, Sizes};
use switchboard_bench::load::{Report, Target};
use switchboard_bench::proto::Proto;
use switchboard_bench::relay::Relay;

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

fn tiny() -> Sizes {
    Sizes {
        direct_clients: 10,
        direct_messages: 20,
        idle_clients: 20,
        login_clients: 15,
        storm_clients: 20,
        offline_messages: 1000,
        room_clients: 12,
        room_senders: 3,
        room_posts: 10,
        paced_rate: 100_000.0,
    }
}

fn target(proto: Proto, addr: SocketAddr, pid: Option<u32>) -> Target {
    Target {
        proto,
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
    fn start(proto: Proto) -> RelayThread {
        let mut relay =
            Relay::bind("127.0.0.1:0".parse().expect("addr"), proto).expect("bind relay");
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
fn check(proto: Proto, mode: Mode, report: &Report, sizes: &Sizes, who: &str) {
    let what = format!("{proto:?} {mode:?} {who}");
    assert_eq!(report.errors, 0, "{what}: {:?}", report.first_error);
    let get = |key: &str| {
        report
            .get(key)
            .unwrap_or_else(|| panic!("{what}: no {key} in {report:?}"))
    };
    match mode {
        Mode::Direct | Mode::Direct8 | Mode::Paced => {
            let p = mode.name();
            // Every message reaches its partner once: the echoes ims and opcode send
            // back to the sender are not deliveries.
            let total = (sizes.direct_clients * sizes.direct_messages) as f64;
            assert_eq!(get(&format!("{p}.delivered")), total, "{what}");
            assert!(get(&format!("{p}.p99_ms")) >= get(&format!("{p}.p50_ms")));
        }
        Mode::Idle => assert_eq!(get("idle.held"), sizes.idle_clients as f64, "{what}"),
        Mode::Logins => assert!(get("logins.total_s") > 0.0, "{what}"),
        Mode::Room => {
            // Every post reaches every member of the room, the poster included.
            let total = (sizes.room_clients * sizes.room_senders * sizes.room_posts) as f64;
            assert_eq!(get("room.delivered"), total, "{what}");
        }
        Mode::Storm | Mode::Offline => {}
    }
}

fn every_mode(proto: Proto) {
    let sizes = tiny();
    let relay = RelayThread::start(proto);
    for mode in Mode::for_proto(proto) {
        let accounts = compare::accounts_for(proto, mode, &sizes);
        let server =
            compare::start_server_for(Path::new(BIN), proto, &accounts).expect("server starts");
        let report = compare::run_mode(
            mode,
            &target(proto, server.addr, Some(server.pid())),
            &sizes,
        )
        .unwrap_or_else(|e| panic!("server {proto:?} {mode:?}: {e}"));
        check(proto, mode, &report, &sizes, "server");
        drop(server);
        let report = compare::run_mode(mode, &target(proto, relay.addr, None), &sizes)
            .unwrap_or_else(|e| panic!("relay {proto:?} {mode:?}: {e}"));
        check(proto, mode, &report, &sizes, "relay");
    }
}

#[test]
fn arsc_modes_run_against_the_server_and_its_null_relay() {
    every_mode(Proto::Arsc);
}

#[test]
fn ims_modes_run_against_the_server_and_its_null_relay() {
    every_mode(Proto::Ims);
}

#[test]
fn opcode_modes_run_against_the_server_and_its_null_relay() {
    every_mode(Proto::Opcode);
}

/// The bench gives the server its own caps out of the way: arsc's `idle` puts every
/// client in a room of its own, more rooms than the default `arsc.max_rooms` (1000),
/// which refused the 1001st client and left `compare --proto arsc` waiting out its
/// timeout.
#[test]
fn arsc_idle_opens_more_rooms_than_the_default_cap() {
    let clients = 1100;
    let limit = switchboard_bench::stats::raise_fd_limit(4096);
    assert!(limit > 2 * clients as u64, "descriptor limit {limit}");
    let sizes = Sizes {
        idle_clients: clients,
        ..tiny()
    };
    let server =
        compare::start_server_for(Path::new(BIN), Proto::Arsc, &[]).expect("server starts");
    let report = compare::run_mode(
        Mode::Idle,
        &target(Proto::Arsc, server.addr, Some(server.pid())),
        &sizes,
    )
    .unwrap_or_else(|e| panic!("arsc idle at {clients}: {e}"));
    check(Proto::Arsc, Mode::Idle, &report, &sizes, "server");
}
