//! The runtime's own life cycle, without the binary: it serves, a trigger stops it, and the
//! stop gives everything back.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use switchboard_mio::{Options, Runtime, Shutdown};
use switchboard_proto::{Config, Protocol};
use switchboard_store::credentials::Cost;

/// A client connected when shutdown comes hears the server close (after what was queued
/// for it: ws2017's greeting); once it closes too the server returns at once, not at the end
/// of the grace; the admin socket file is gone, and the data directory's lock is free for
/// the next server.
#[test]
fn a_trigger_stops_the_server_flushing_clients_and_releasing_the_data_dir() {
    let dir = tempfile::tempdir().expect("temporary dir");
    let data = dir.path().join("data");
    let options = Options {
        seed: Some(1),
        hash_cost: Cost::cheap(),
        shutdown_grace: Duration::from_secs(5),
        ..Options::default()
    };
    let listeners = [(Protocol::Ws2017, "127.0.0.1:0".parse().expect("addr"))];
    let runtime = Runtime::bind(Config::default(), &data, &listeners, options).expect("bind");
    let addr = runtime.local_addrs()[0].1;
    assert!(data.join("admin.sock").exists(), "no admin socket");
    let (shutdown, trigger) = Shutdown::new().expect("self-pipe");
    let server = std::thread::spawn(move || runtime.run_until(shutdown));

    let mut client = TcpStream::connect(addr).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut greeting = [0_u8; 4];
    client.read_exact(&mut greeting).expect("greeting");
    assert_eq!(&greeting, b"+OK ");

    let fired = std::time::Instant::now();
    trigger.fire();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("the server closes");
    drop(client);
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.ends_with("\r\n-ERR 'the server is shutting down'\r\n"),
        "told in ws2017's way before the close: {rest:?}"
    );
    server.join().expect("no panic").expect("a clean stop");
    // Everything is closed long before the grace would run out: the stop does not wait for
    // it.
    assert!(
        fired.elapsed() < Duration::from_secs(2),
        "{:?}",
        fired.elapsed()
    );
    assert!(
        !data.join("admin.sock").exists(),
        "the admin socket is left"
    );
    switchboard_store::start::lock_and_load(&data).expect("the lock is released");
}
