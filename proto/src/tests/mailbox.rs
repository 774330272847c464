//! The mailbox drain at login, through the test-only probe protocol (ws2017 nicks hold
//! no mail): stored messages and pending friend requests are handed to the new session
//! in order, and a stored message leaves the mailbox only by a change committed after
//! its bytes were reported written on the connection it was handed to.

use super::fixtures;
use super::harness::Harness;
use crate::persist::{Change, State};
use crate::{Config, Protocol, UserName};

fn name(s: &str) -> UserName {
    UserName::parse(s).expect("valid name")
}

/// bob's account holds two messages from alice and her friend request.
fn mailbox_state() -> State {
    let mut state = fixtures::bob_with_mail();
    state.apply(&Change::FriendRequested {
        from: name("alice"),
        to: name("bob"),
        since_ms: 6,
    });
    state
}

fn mailbox(state: &State) -> Vec<u64> {
    let queue = state.offline.get(&name("bob").key()).into_iter().flatten();
    queue.map(|m| m.id.0).collect()
}

const HANDED: &str = "mail 0 alice one\nmail 1 alice two\nrequest alice\nok 0\n";

#[test]
fn a_stored_message_leaves_the_mailbox_once_its_bytes_are_written() {
    let mut h = Harness::with_state(Config::default(), mailbox_state());
    h.auto_written = false;
    let c = h.connect(Protocol::Probe);
    h.send(c, "account bob\n");
    assert_eq!(h.take(c), HANDED, "messages in order, then the request");
    assert_eq!(mailbox(&h.store), [0, 1], "nothing is written yet");
    h.written(c, "mail 0 alice one\n".len());
    assert_eq!(mailbox(&h.store), [1], "the first is written, and only it");
    h.written(c, "mail 1 alice two\n".len());
    assert_eq!(mailbox(&h.store), Vec::<u64>::new());
    assert!(
        h.store.friend_requests.contains_key(&name("bob").key()),
        "a request stays pending until answered"
    );
}

#[test]
fn a_message_handed_to_a_lost_connection_is_handed_again_with_its_id() {
    let mut h = Harness::with_state(Config::default(), mailbox_state());
    h.auto_written = false;
    let first = h.connect(Protocol::Probe);
    h.send(first, "account bob\n");
    assert_eq!(h.take(first), HANDED);
    // A second session meanwhile is not handed what the first may still write.
    let second = h.connect(Protocol::Probe);
    h.send(second, "account bob\n");
    assert_eq!(h.take(second), "request alice\nok 1\n");
    // The first connection goes before writing: the messages stay, for the next login.
    h.peer_close(first);
    assert_eq!(mailbox(&h.store), [0, 1]);
    let third = h.connect(Protocol::Probe);
    h.send(third, "account bob\n");
    assert_eq!(
        h.take(third),
        "mail 0 alice one\nmail 1 alice two\nrequest alice\nok 2\n"
    );
}

#[test]
fn a_crash_before_the_removal_commits_hands_the_message_again() {
    let mut h = Harness::with_state(Config::default(), mailbox_state());
    h.auto_written = false;
    let c = h.connect(Protocol::Probe);
    h.written(c, usize::MAX);
    h.send(c, "account bob\n");
    assert_eq!(h.take(c), HANDED);
    // Written, but the store has not committed the removal when the server crashes.
    h.auto_commit = false;
    h.written(c, usize::MAX);
    assert!(
        (h.uncommitted().iter()).any(|(_, ch)| matches!(ch, Change::OfflineDelivered { .. })),
        "the removal waits for its commit"
    );
    assert_eq!(mailbox(&h.store), [0, 1]);
    // The restarted server hands both again, under the same ids.
    let mut h = Harness::with_state(Config::default(), h.store.clone());
    let c = h.connect(Protocol::Probe);
    h.send(c, "account bob\n");
    assert_eq!(h.take(c), HANDED);
}
