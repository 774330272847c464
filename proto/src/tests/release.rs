//! Each held acknowledgement is released exactly when its change commits: not one change
//! early, not with the next batch. Several connections each hold several acknowledgements
//! (each followed by a reply that needs no commit), batches of 1, 2, 3 and 2 changes commit
//! one after another through the pump, a commit fails in between, and after every step each connection has
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
    // wait behind the acknowledgement all the same. The pump commits one batch at a time
    // and gathers the next meanwhile, so sending the messages in groups between commits
    // makes batches of 1, 2, 3 and 2 changes; the second fails once before it commits.
    let order = [0usize, 1, 0, 2, 1, 0, 2, 2];
    let groups = [0..1, 1..3, 3..6, 6..8];
    // Which change carries which message: the seq of each message, per connection.
    let mut seqs: BTreeMap<ConnId, Vec<Seq>> = BTreeMap::new();
    let mut seen = Seq(0);
    let send =
        |h: &mut Harness, seqs: &mut BTreeMap<ConnId, Vec<Seq>>, seen: &mut Seq, k: usize| {
            let (conn, name) = &conns[order[k]];
            h.send(*conn, format!("chatm {name} bob 'm{k}'\r\ncgetu\r\n"));
            for (seq, change) in h.uncommitted() {
                if seq <= *seen {
                    continue;
                }
                *seen = seq;
                let Change::OfflineQueued(message) = change else {
                    panic!("unexpected change {change:?}");
                };
                assert_eq!(message.from.as_str(), name.as_str(), "#{}", seq.0);
                seqs.entry(*conn).or_default().push(seq);
            }
        };

    // What a connection must have received once everything through `through` commits:
    // an acknowledgement and a `cgetu` answer per committed message, in order, stopping
    // at the first message not committed.
    let mut heard: BTreeMap<ConnId, String> = BTreeMap::new();
    let check = |h: &mut Harness,
                 heard: &mut BTreeMap<ConnId, String>,
                 seqs: &BTreeMap<ConnId, Vec<Seq>>,
                 through: Seq| {
        for (conn, name) in &conns {
            let text = heard.entry(*conn).or_default();
            text.push_str(&h.take(*conn));
            let committed = seqs
                .get(conn)
                .map_or(0, |s| s.iter().filter(|seq| **seq <= through).count());
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

    for k in groups[0].clone() {
        send(&mut h, &mut seqs, &mut seen, k);
    }
    let first = seen;
    let mut through = Seq(first.0 - 1);
    check(&mut h, &mut heard, &seqs, through);
    for (g, fail_before) in [(1usize, false), (2, true), (3, false)] {
        for k in groups[g].clone() {
            send(&mut h, &mut seqs, &mut seen, k);
        }
        check(&mut h, &mut heard, &seqs, through);
        if fail_before {
            h.fail_commit();
            check(&mut h, &mut heard, &seqs, through);
        }
        // The batch in flight ends where the previous group ended.
        through = Seq(first.0 - 1 + groups[g - 1].end as u64);
        h.commit_through(through);
        check(&mut h, &mut heard, &seqs, through);
    }
    through = seen;
    h.commit_through(through);
    check(&mut h, &mut heard, &seqs, through);
    assert_eq!(through.0 - first.0 + 1, order.len() as u64);
    assert_eq!(seqs.values().map(Vec::len).sum::<usize>(), order.len());
    assert!(h.uncommitted().is_empty());
}
