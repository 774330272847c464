//! Each held acknowledgement is released exactly when its change commits: not one change
//! early, not with the next batch. Several connections each hold several acknowledgements
//! (each followed by a reply that needs no commit), batches of different sizes commit one
//! after another, a commit fails in between, and after every step each connection has
//! received exactly the replies its committed changes allow.

use std::collections::BTreeMap;

use super::harness::Harness;
use crate::{Change, Config, ConnId, Protocol, Seq};

const STORED: &str = "+OK chatm 'message stored'\r\n";

/// A ws2017 connection with a name (whatever the confirmation says).
fn join(h: &mut Harness, name: &str) -> ConnId {
    let conn = h.connect(Protocol::Ws2017);
    h.send(conn, format!("uname {name}\r\n"));
    assert!(h.take(conn).contains("+OK uname"), "{name} has no name");
    conn
}

#[test]
fn each_acknowledgement_leaves_exactly_when_its_change_commits() {
    let mut h = Harness::new(Config::default());
    let admin = h.connect(Protocol::Admin);
    h.send(admin, "user add bob pw\r\n");
    assert_eq!(h.take(admin), "ok account bob created\r\n");
    let conns: Vec<(ConnId, String)> = ["ann", "cid", "dee"]
        .iter()
        .map(|name| (join(&mut h, name), (*name).to_owned()))
        .collect();
    for (conn, _) in &conns {
        h.take(*conn);
    }
    h.auto_commit = false;

    // Interleaved: ann, cid, ann, dee, cid, ann, dee, dee. Each message is followed on
    // its connection by a request that needs no commit (`cgetu`), which must
    // wait behind the acknowledgement all the same.
    let order = [0usize, 1, 0, 2, 1, 0, 2, 2];
    for (k, &i) in order.iter().enumerate() {
        let (conn, name) = &conns[i];
        h.send(*conn, format!("chatm {name} bob 'm{k}'\r\ncgetu\r\n"));
    }
    // Which change carries which message: the seq of each message, per connection.
    let mut seqs: BTreeMap<ConnId, Vec<Seq>> = BTreeMap::new();
    for (seq, change) in &h.uncommitted {
        let Change::OfflineQueued(message) = change else {
            panic!("unexpected change {change:?}");
        };
        let i = conns
            .iter()
            .position(|(_, name)| name == message.from.as_str())
            .expect("a sender");
        seqs.entry(conns[i].0).or_default().push(*seq);
    }
    assert_eq!(seqs.values().map(Vec::len).sum::<usize>(), order.len());
    let first = h.uncommitted[0].0;
    let last = h.uncommitted[order.len() - 1].0;
    for (conn, name) in &conns {
        assert_eq!(
            h.take(*conn),
            "",
            "{name} heard something before any commit"
        );
    }

    // What a connection must have received once everything through `through` commits:
    // an acknowledgement and a `cgetu` answer per committed message, in order, stopping
    // at the first message not committed.
    let mut heard: BTreeMap<ConnId, String> = BTreeMap::new();
    let check = |h: &mut Harness, heard: &mut BTreeMap<ConnId, String>, through: Seq| {
        for (conn, name) in &conns {
            let text = heard.entry(*conn).or_default();
            text.push_str(&h.take(*conn));
            let committed = seqs[conn].iter().filter(|seq| **seq <= through).count();
            let acks = text.matches(STORED).count();
            assert_eq!(
                acks, committed,
                "{name} after the commit through #{}: {committed} of its messages committed, \
                 {acks} acknowledged: {text:?}",
                through.0
            );
            let answers = text.matches("+OK cgetu").count();
            assert_eq!(answers, committed, "{name}: {text:?}");
            assert!(
                text.lines().step_by(2).all(|l| l == STORED.trim_end()),
                "{name}: out of order: {text:?}"
            );
        }
    };

    // Batches: one change, a failure, two changes, three, then the rest.
    let mut through = Seq(first.0 - 1);
    for (n, fail_before) in [(1u64, false), (2, true), (3, false), (2, false)] {
        if fail_before {
            h.fail_commit();
            check(&mut h, &mut heard, through);
        }
        through = Seq(through.0 + n);
        h.commit_through(through);
        check(&mut h, &mut heard, through);
    }
    assert_eq!(through, last);
    assert!(h.uncommitted.is_empty());
}
