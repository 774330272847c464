use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::{Config, PasswordHash, State};

const WALL: u64 = 1_700_000_000_000;

fn at(ms: u64) -> Now {
    Now::at(Instant::from_millis(ms), WALL)
}

fn admin(pump: &mut Pump, conn: u64) -> ConnId {
    admin_at(pump, 0, conn)
}

fn admin_at(pump: &mut Pump, ms: u64, conn: u64) -> ConnId {
    let conn = ConnId(conn);
    pump.accepted(at(ms), conn, Protocol::Admin, Peer::Local);
    conn
}

fn send(pump: &mut Pump, now: Now, conn: ConnId, text: &str) {
    pump.received(now, conn, Bytes::copy_from_slice(text.as_bytes()));
}

fn actions(pump: &mut Pump) -> Vec<Action> {
    std::iter::from_fn(|| pump.poll_action()).collect()
}

fn tx(conn: ConnId, text: &str) -> Action {
    Action::Transmit {
        conn,
        bytes: Bytes::copy_from_slice(text.as_bytes()),
    }
}

fn commits(actions: &[Action]) -> Vec<(Seq, usize)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Commit(batch) => Some((batch.through, batch.changes.len())),
            _ => None,
        })
        .collect()
}

fn batch_of(actions: Vec<Action>) -> Batch {
    actions
        .into_iter()
        .find_map(|a| match a {
            Action::Commit(batch) => Some(batch),
            _ => None,
        })
        .expect("a commit")
}

fn pump() -> Pump {
    Pump::new(Server::new(Config::default(), State::default()))
}

#[test]
fn one_commit_is_in_flight_while_the_next_batch_gathers() {
    let mut p = pump();
    let c = admin(&mut p, 1);
    send(&mut p, at(1), c, "ban ip 10.0.0.1\r\n");
    let first = actions(&mut p);
    assert_eq!(commits(&first), [(Seq(1), 1)], "{first:?}");
    assert!(
        !first.iter().any(|a| matches!(a, Action::Transmit { .. })),
        "acknowledged before the commit: {first:?}"
    );
    send(&mut p, at(2), c, "ban ip 10.0.0.2\r\nban ip 10.0.0.3\r\n");
    assert_eq!(
        actions(&mut p),
        [],
        "a second commit started while one is in flight"
    );
    assert_eq!(p.uncommitted(), 3);
    assert_eq!(
        p.gathering().map(|(seq, _)| seq).collect::<Vec<_>>(),
        [Seq(2), Seq(3)]
    );
    p.commit_finished(at(3));
    let next = actions(&mut p);
    assert_eq!(
        next,
        [
            tx(c, "ok 10.0.0.1 banned\r\n"),
            Action::Commit(Batch {
                through: Seq(3),
                changes: vec![
                    Change::IpBanned([10, 0, 0, 2].into()),
                    Change::IpBanned([10, 0, 0, 3].into()),
                ],
            }),
        ]
    );
    p.commit_finished(at(4));
    assert_eq!(
        actions(&mut p),
        [
            tx(c, "ok 10.0.0.2 banned\r\n"),
            tx(c, "ok 10.0.0.3 banned\r\n"),
        ]
    );
    assert!(!p.committing());
    assert_eq!(p.uncommitted(), 0);
}

#[test]
fn a_failed_batch_is_asked_for_again_unchanged_after_a_doubling_backoff() {
    let mut p = pump();
    let c = admin(&mut p, 1);
    send(&mut p, at(0), c, "ban ip 10.0.0.1\r\n");
    let batch = batch_of(actions(&mut p));
    let mut now = 0;
    for wait in [50u64, 100, 200, 400, 800, 1600, 2000, 2000] {
        p.commit_failed(at(now), batch.clone(), "disk full".into());
        assert_eq!(actions(&mut p), []);
        assert_eq!(p.poll_timeout(), Some(Instant::from_millis(now + wait)));
        p.handle_timeout(at(now + wait - 1));
        assert_eq!(actions(&mut p), [], "retried before its backoff was over");
        now += wait;
        p.handle_timeout(at(now));
        assert_eq!(actions(&mut p), [Action::Commit(batch.clone())]);
    }
    assert_eq!(Duration::from_millis(2000), MAX_RETRY);
    // While it fails, new durable work is refused, and nothing else gathers.
    let d = admin_at(&mut p, now, 2);
    send(&mut p, at(now), d, "ban ip 10.0.0.9\r\n");
    assert_eq!(
        actions(&mut p),
        [tx(
            d,
            "err the store is failing; nothing was changed, try again later\r\n"
        )]
    );
    p.commit_finished(at(now));
    assert_eq!(actions(&mut p), [tx(c, "ok 10.0.0.1 banned\r\n")]);
    // The backoff starts over after a success.
    send(&mut p, at(now), c, "ban ip 10.0.0.2\r\n");
    let batch = batch_of(actions(&mut p));
    p.commit_failed(at(now), batch, "disk full".into());
    assert_eq!(p.poll_timeout(), Some(Instant::from_millis(now + 50)));
}

#[test]
fn the_server_hears_of_a_commit_before_what_waited_on_it_is_released() {
    let mut p = pump();
    let c = admin(&mut p, 1);
    let other = admin(&mut p, 2);
    send(&mut p, at(1), c, "ban ip 10.0.0.1\r\nkick nobody\r\n");
    let _ = actions(&mut p);
    // Another connection is not held up by c's commit.
    send(&mut p, at(1), other, "kick nobody\r\n");
    assert_eq!(actions(&mut p), [tx(other, "err nobody is not online\r\n")]);
    // c's second reply joined its first, held with it.
    assert_eq!(p.held(), 1);
    p.commit_finished(at(2));
    assert_eq!(p.server().committed(), Seq(1));
    assert_eq!(p.held(), 0);
    // What waited comes out in order, the acknowledgement first.
    assert_eq!(
        actions(&mut p),
        [tx(c, "ok 10.0.0.1 banned\r\nerr nobody is not online\r\n")]
    );
}

#[test]
fn a_peer_that_leaves_takes_what_was_held_for_it() {
    let mut p = pump();
    let c = admin(&mut p, 1);
    send(&mut p, at(1), c, "ban ip 10.0.0.1\r\n");
    let _ = actions(&mut p);
    p.peer_closed(at(2), c);
    assert_eq!(p.held(), 0);
    p.commit_finished(at(3));
    assert_eq!(actions(&mut p), []);
    assert_eq!(p.server().state().ip_bans.len(), 1);
}

#[test]
fn effects_go_out_and_their_results_come_back_in() {
    let mut p = pump();
    let c = admin(&mut p, 1);
    send(&mut p, at(1), c, "user add bob pw\r\n");
    let out = actions(&mut p);
    let [Action::Effect { id, effect }] = out.as_slice() else {
        panic!("expected one effect: {out:?}");
    };
    assert!(matches!(effect, Effect::HashPassword { .. }));
    p.effect_done(
        at(2),
        *id,
        EffectResult::Hashed {
            password: PasswordHash("h".into()),
            ims_password: PasswordHash("i".into()),
        },
    );
    let batch = batch_of(actions(&mut p));
    assert!(matches!(batch.changes[..], [Change::AccountCreated(_)]));
    p.commit_finished(at(3));
    assert_eq!(actions(&mut p), [tx(c, "ok account bob created\r\n")]);
}

#[test]
fn the_tap_sees_every_output_in_the_servers_order_before_the_gate() {
    let mut p = Pump::with_tap(Server::new(Config::default(), State::default()));
    let c = admin(&mut p, 1);
    send(&mut p, at(1), c, "ban ip 10.0.0.1\r\n");
    assert_eq!(
        p.poll_emitted(),
        None,
        "outputs are pulled as actions are polled"
    );
    // The acknowledgement itself is held: the first action is the commit.
    let first = p.poll_action();
    assert!(matches!(first, Some(Action::Commit(_))), "{first:?}");
    let emitted: Vec<Output> = std::iter::from_fn(|| p.poll_emitted())
        .filter_map(|e| match e {
            Emitted::Output(o) => Some(o),
            Emitted::Event(_) => None,
        })
        .collect();
    assert!(
        matches!(
            emitted.as_slice(),
            [
                Output::Persist { seq: Seq(1), .. },
                Output::Transmit {
                    after: Some(Seq(1)),
                    ..
                }
            ]
        ),
        "{emitted:?}"
    );
    assert_eq!(actions(&mut p), []);
    assert_eq!(pump().poll_emitted(), None, "no tap, nothing kept");
}

#[test]
fn the_tap_puts_each_event_between_the_outputs_queued_before_and_after_it() {
    let mut p = Pump::with_tap(Server::new(Config::default(), State::default()));
    p.record_events();
    let peer = |port| Peer::Net(([10, 0, 0, 1], port).into());
    let c = ConnId(1);
    p.accepted(at(1), c, Protocol::Ws2017, peer(1));
    send(&mut p, at(2), c, "uname alice\r\n");
    let _ = actions(&mut p);
    while p.poll_emitted().is_some() {}
    // One read, two lines: the list answers before the rename happens.
    send(&mut p, at(3), c, "cgetu\r\nuname bob\r\n");
    let mut seen = Vec::new();
    loop {
        let action = p.poll_action();
        seen.extend(std::iter::from_fn(|| p.poll_emitted()));
        if action.is_none() {
            break;
        }
    }
    let order: Vec<String> = seen
        .iter()
        .map(|e| match e {
            Emitted::Event(crate::NetworkEvent::Renamed { old, new, .. }) => {
                format!("renamed {old} {new}")
            }
            Emitted::Event(other) => format!("{other:?}"),
            Emitted::Output(Output::Transmit { bytes, .. }) => {
                String::from_utf8_lossy(bytes).trim_end().to_owned()
            }
            Emitted::Output(other) => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        order,
        [
            "+OK cgetu alice",
            "renamed alice bob",
            "+OK uname you are bob"
        ],
        "{seen:?}"
    );
}
