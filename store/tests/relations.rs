//! The v2 durable data in the store, with expectations written out by hand (a mistake shared
//! by the store and `State::apply` would pass the round trip): friendships and requests,
//! chats and media, message kinds, and what deleting an account takes with it, row by row.

use std::collections::BTreeSet;

use bytes::Bytes;
use switchboard_proto::{
    Account, Blob, Change, ChatId, MediaId, MessageId, MessageKind, PasswordHash, StoredMessage,
    UserKey, UserName,
};
use switchboard_store::Store;

fn name(s: &str) -> UserName {
    UserName::parse(s).expect("valid name")
}

fn key(s: &str) -> UserKey {
    name(s).key()
}

fn created(n: &str) -> Change {
    Change::AccountCreated(Account {
        name: name(n),
        password: PasswordHash("$argon2id$x".into()),
        ims_password: PasswordHash("$argon2id$y".into()),
        email: None,
        gender: None,
        level: 0,
        banned: false,
        created_ms: 1,
    })
}

/// Counts rows of each v2 table with SQL of the test's own.
fn counts(store: &Store) -> Vec<(&'static str, i64)> {
    let conn = rusqlite::Connection::open(store.path()).expect("open");
    [
        "friendships",
        "friend_requests",
        "chats",
        "chat_members",
        "media",
        "media_blobs",
    ]
    .into_iter()
    .map(|table| {
        let n = conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .expect("count");
        (table, n)
    })
    .collect()
}

fn social() -> Vec<Change> {
    vec![
        created("Ann"),
        created("Ben"),
        created("Cy"),
        // Ann asks Ben and Cy; Ben asks Cy; a repeat keeps the first time.
        Change::FriendRequested {
            from: name("ann"),
            to: name("ben"),
            since_ms: 10,
        },
        Change::FriendRequested {
            from: name("ANN"),
            to: name("cy"),
            since_ms: 11,
        },
        Change::FriendRequested {
            from: name("ben"),
            to: name("cy"),
            since_ms: 12,
        },
        Change::FriendRequested {
            from: name("ann"),
            to: name("ben"),
            since_ms: 99,
        },
        // Not accounts, or oneself: ignored.
        Change::FriendRequested {
            from: name("ann"),
            to: name("ghost"),
            since_ms: 13,
        },
        Change::FriendRequested {
            from: name("ann"),
            to: name("Ann"),
            since_ms: 13,
        },
        // Ben accepts Ann: the request is settled.
        Change::FriendshipMade {
            a: name("Ben"),
            b: name("Ann"),
            since_ms: 20,
        },
        Change::ChatCreated {
            id: ChatId(0),
            members: vec![name("ann"), name("ben")],
            created_ms: 30,
        },
        Change::ChatCreated {
            id: ChatId(1),
            members: vec![name("ann"), name("cy")],
            created_ms: 31,
        },
        Change::MediaStored {
            id: MediaId(0),
            chat: ChatId(0),
            sender: name("Ann"),
            created_ms: 40,
            bytes: Blob(Bytes::from_static(b"\x00\x01picture")),
        },
        Change::MediaStored {
            id: MediaId(1),
            chat: ChatId(1),
            sender: name("cy"),
            created_ms: 41,
            bytes: Blob(Bytes::from_static(b"only ann and cy")),
        },
        Change::OfflineQueued(StoredMessage {
            id: MessageId(0),
            from: name("ann"),
            to: name("ben"),
            body: "see picture".into(),
            sent_ms: 42,
            kind: MessageKind::Chat {
                chat: ChatId(0),
                media: Some(MediaId(0)),
            },
        }),
        Change::LevelChanged {
            name: name("cy"),
            level: 2,
        },
    ]
}

#[test]
fn friendships_requests_chats_and_media_load_as_made() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path()).expect("open");
    store.commit(&social()).expect("commit");
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    let state = store.load().expect("load");

    assert!(state.are_friends(&key("ann"), &key("ben")));
    assert!(state.are_friends(&key("ben"), &key("ann")));
    assert_eq!(state.friends[&key("ann")][&key("ben")].since_ms, 20);
    assert_eq!(state.friends.len(), 2);
    // Cy's requests, in the order made; Ben's from Ann settled.
    let to_cy: Vec<(UserKey, u64)> = state.friend_requests[&key("cy")]
        .iter()
        .map(|r| (r.from.clone(), r.since_ms))
        .collect();
    assert_eq!(to_cy, vec![(key("ann"), 11), (key("ben"), 12)]);
    assert_eq!(state.friend_requests.len(), 1);

    let members: BTreeSet<UserKey> = [key("ann"), key("ben")].into();
    assert_eq!(state.chats[&ChatId(0)].members, members);
    assert_eq!(state.media[&MediaId(0)].size, 9);
    assert_eq!(state.media[&MediaId(0)].chat, ChatId(0));
    // Each item keeps its sender's account, for the total per user.
    assert_eq!(state.media[&MediaId(0)].sender, Some(key("ann")));
    assert_eq!(state.media[&MediaId(1)].sender, Some(key("cy")));
    assert_eq!(state.next_chat_id, 2);
    assert_eq!(state.next_media_id, 2);
    assert_eq!(
        store.media(MediaId(0)).expect("read"),
        Some(b"\x00\x01picture".to_vec())
    );
    assert_eq!(store.media(MediaId(7)).expect("read"), None);
    assert_eq!(
        state.offline[&key("ben")][0].kind,
        MessageKind::Chat {
            chat: ChatId(0),
            media: Some(MediaId(0))
        }
    );
    assert_eq!(state.accounts[&key("cy")].level, 2);
}

#[test]
fn deleting_an_account_takes_its_friendships_requests_and_emptied_chats() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path()).expect("open");
    store.commit(&social()).expect("commit");
    assert_eq!(
        counts(&store),
        vec![
            ("friendships", 1),
            ("friend_requests", 2),
            ("chats", 2),
            ("chat_members", 4),
            ("media", 2),
            ("media_blobs", 2),
        ]
    );
    store
        .commit(&[Change::AccountDeleted { name: name("ANN") }])
        .expect("delete Ann");
    // Ann's friendship and request go; Ben's to Cy stays; both chats lose Ann and keep
    // their other member, so they and their media stay.
    assert_eq!(
        counts(&store),
        vec![
            ("friendships", 0),
            ("friend_requests", 1),
            ("chats", 2),
            ("chat_members", 2),
            ("media", 2),
            ("media_blobs", 2),
        ]
    );
    // Ann's media stays with its chat, counted to no one; Cy's keeps its sender.
    let senders: Vec<Option<UserKey>> = (store.load().expect("load").media.values())
        .map(|m| m.sender.clone())
        .collect();
    assert_eq!(senders, vec![None, Some(key("cy"))]);
    store
        .commit(&[Change::AccountDeleted { name: name("cy") }])
        .expect("delete Cy");
    // Chat 1 has no member left: it goes with its media and bytes.
    assert_eq!(
        counts(&store),
        vec![
            ("friendships", 0),
            ("friend_requests", 0),
            ("chats", 1),
            ("chat_members", 1),
            ("media", 1),
            ("media_blobs", 1),
        ]
    );
    assert_eq!(store.media(MediaId(1)).expect("read"), None);
    let state = store.load().expect("load");
    assert!(state.friends.is_empty());
    assert!(state.friend_requests.is_empty());
    assert_eq!(
        state.chats.keys().copied().collect::<Vec<_>>(),
        vec![ChatId(0)]
    );
    // Ben's queued chat message stays, although Ann is gone.
    assert_eq!(state.offline[&key("ben")].len(), 1);

    // Deleting the chat takes its media; the queued message stays; the id is not reused.
    store
        .commit(&[
            Change::ChatDeleted { id: ChatId(0) },
            Change::ChatCreated {
                id: ChatId(0),
                members: vec![name("ben")],
                created_ms: 50,
            },
        ])
        .expect("delete the chat");
    assert_eq!(
        counts(&store),
        vec![
            ("friendships", 0),
            ("friend_requests", 0),
            ("chats", 0),
            ("chat_members", 0),
            ("media", 0),
            ("media_blobs", 0),
        ]
    );
    assert_eq!(store.load().expect("load").offline[&key("ben")].len(), 1);
}
