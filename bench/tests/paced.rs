//! The paced loop sends each message on its own, as it is stamped: against the null relay,
//! a paced run makes (at least) one write per message. A loop that queued the due messages
//! and wrote them at the end of its turn (the old generator) makes one write per client per
//! turn for several messages, and its latency is its turn's length.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchboard_bench::load::{self, DirectOpts, Target};
use switchboard_bench::proto::Proto;
use switchboard_bench::relay::Relay;

#[test]
fn a_paced_run_writes_each_message_on_its_own() {
    let mut relay = Relay::bind("127.0.0.1:0".parse().expect("addr"), Proto::Ws2017).expect("bind");
    let addr = relay.local_addr().expect("relay address");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let relay = std::thread::spawn(move || relay.run(|| flag.load(Ordering::Relaxed)));
    let target = Target {
        proto: Proto::Ws2017,
        addr,
        pid: None,
        sources: 2,
        timeout: Duration::from_secs(20),
    };
    // 20 clients at 100k msgs/s: a message every 10 us, each client's 200 us apart, so a
    // turn of even a millisecond holds five of each client's messages.
    let report = load::direct(
        &target,
        &DirectOpts {
            clients: 20,
            messages: 50,
            in_flight: None,
            rate: Some(100_000.0),
            label: "paced".into(),
        },
    )
    .expect("the run");
    stop.store(true, Ordering::Relaxed);
    relay.join().expect("no panic").expect("the relay ran");
    assert_eq!(report.errors, 0, "{:?}", report.first_error);
    assert_eq!(report.get("paced.delivered"), Some(1000.0));
    let writes = report
        .get("paced.writes_per_msg")
        .expect("writes per message");
    assert!(
        writes >= 1.0,
        "{writes} writes per message: messages were held back and sent together"
    );
    assert!(report.get("paced.send_lag_p99_ms").is_some());
}
