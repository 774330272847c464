//! The v2 durable data (schema versions 2 and 3): friendships and friend requests, chats
//! and their members, media with their senders, message kinds and the id counters. Loaded
//! into [`State`] and changed with exactly [`State::apply`]'s rules; rows name accounts by
//! `accounts.id`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use switchboard_proto::{
    Chat, ChatId, FriendRequest, Friendship, Media, MediaId, MessageKind, State, UserKey, UserName,
};

use crate::StoreError;

/// Wraps an SQLite error during a commit.
fn commit_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Commit {
        path: path.to_owned(),
        source,
    }
}

/// Wraps an SQLite error during a load.
fn load_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Load {
        path: path.to_owned(),
        source,
    }
}

/// An id for the database: it and the next id (`id + 1`) must fit an i64.
pub(crate) fn id_to_db(what: &'static str, id: u64) -> Result<i64, StoreError> {
    i64::try_from(id)
        .ok()
        .filter(|id| *id < i64::MAX)
        .ok_or(StoreError::OutOfRange { what, value: id })
}

/// A u64 field for the database.
fn to_db(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

/// A stored integer back to a u64 field.
fn from_db(path: &Path, what: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        path: path.to_owned(),
        detail: format!("{what} is negative ({value})"),
    })
}

/// Reads a counter (`None` if missing, which the callers report as corruption).
pub(crate) fn counter(conn: &Connection, name: &str) -> Result<Option<i64>, rusqlite::Error> {
    conn.prepare_cached("SELECT value FROM counters WHERE name = ?1")
        .and_then(|mut statement| statement.query_row([name], |row| row.get(0)).optional())
}

/// Takes `id` from counter `name`, as `State::apply` does: false if it is below the counter
/// (taken before: the change is a replay), else moves the counter past it and returns true.
pub(crate) fn take_id(
    tx: &Transaction<'_>,
    path: &Path,
    name: &str,
    id: i64,
) -> Result<bool, StoreError> {
    let next = counter(tx, name).map_err(commit_error(path))?;
    let Some(next) = next else {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("the {name} counter is missing"),
        });
    };
    if id < next {
        return Ok(false);
    }
    tx.prepare_cached("UPDATE counters SET value = ?1 WHERE name = ?2")
        .and_then(|mut statement| statement.execute(params![id + 1, name]))
        .map_err(commit_error(path))?;
    Ok(true)
}

/// The row id of an account, if it exists.
fn account_id(
    tx: &Transaction<'_>,
    path: &Path,
    name: &UserName,
) -> Result<Option<i64>, StoreError> {
    tx.prepare_cached("SELECT id FROM accounts WHERE key = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([name.key().as_str()], |row| row.get(0))
                .optional()
        })
        .map_err(commit_error(path))
}

/// The row ids of two distinct accounts, if both exist.
fn two_accounts(
    tx: &Transaction<'_>,
    path: &Path,
    a: &UserName,
    b: &UserName,
) -> Result<Option<(i64, i64)>, StoreError> {
    if a.key() == b.key() {
        return Ok(None);
    }
    match (account_id(tx, path, a)?, account_id(tx, path, b)?) {
        (Some(a), Some(b)) => Ok(Some((a, b))),
        _ => Ok(None),
    }
}

/// Runs one statement with parameters.
fn run(
    tx: &Transaction<'_>,
    path: &Path,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<usize, StoreError> {
    tx.prepare_cached(sql)
        .and_then(|mut statement| statement.execute(params))
        .map_err(commit_error(path))
}

/// Whether two account ids are friends.
fn are_friends(tx: &Transaction<'_>, path: &Path, a: i64, b: i64) -> Result<bool, StoreError> {
    tx.prepare_cached("SELECT 1 FROM friendships WHERE low = ?1 AND high = ?2")
        .and_then(|mut statement| {
            statement
                .query_row([a.min(b), a.max(b)], |_| Ok(()))
                .optional()
        })
        .map(|found| found.is_some())
        .map_err(commit_error(path))
}

/// `Change::FriendRequested`.
pub(crate) fn friend_requested(
    tx: &Transaction<'_>,
    path: &Path,
    from: &UserName,
    to: &UserName,
    since_ms: u64,
) -> Result<(), StoreError> {
    let since_ms = to_db("since_ms", since_ms)?;
    let Some((from, to)) = two_accounts(tx, path, from, to)? else {
        return Ok(());
    };
    if are_friends(tx, path, from, to)? {
        return Ok(());
    }
    // A repeated request keeps the first one's time and place.
    run(
        tx,
        path,
        "INSERT INTO friend_requests (requester, recipient, since_ms) VALUES (?1, ?2, ?3) \
         ON CONFLICT (requester, recipient) DO NOTHING",
        params![from, to, since_ms],
    )?;
    Ok(())
}

/// `Change::FriendRequestDropped`.
pub(crate) fn friend_request_dropped(
    tx: &Transaction<'_>,
    path: &Path,
    from: &UserName,
    to: &UserName,
) -> Result<(), StoreError> {
    if let Some((from, to)) = two_accounts(tx, path, from, to)? {
        run(
            tx,
            path,
            "DELETE FROM friend_requests WHERE requester = ?1 AND recipient = ?2",
            [from, to],
        )?;
    }
    Ok(())
}

/// `Change::FriendshipMade`.
pub(crate) fn friendship_made(
    tx: &Transaction<'_>,
    path: &Path,
    a: &UserName,
    b: &UserName,
    since_ms: u64,
) -> Result<(), StoreError> {
    let since_ms = to_db("since_ms", since_ms)?;
    let Some((a, b)) = two_accounts(tx, path, a, b)? else {
        return Ok(());
    };
    run(
        tx,
        path,
        "DELETE FROM friend_requests WHERE (requester = ?1 AND recipient = ?2) \
         OR (requester = ?2 AND recipient = ?1)",
        [a, b],
    )?;
    // An existing friendship keeps its time.
    run(
        tx,
        path,
        "INSERT INTO friendships (low, high, since_ms) VALUES (?1, ?2, ?3) \
         ON CONFLICT (low, high) DO NOTHING",
        params![a.min(b), a.max(b), since_ms],
    )?;
    Ok(())
}

/// `Change::FriendshipEnded`.
pub(crate) fn friendship_ended(
    tx: &Transaction<'_>,
    path: &Path,
    a: &UserName,
    b: &UserName,
) -> Result<(), StoreError> {
    if let Some((a, b)) = two_accounts(tx, path, a, b)? {
        run(
            tx,
            path,
            "DELETE FROM friendships WHERE low = ?1 AND high = ?2",
            [a.min(b), a.max(b)],
        )?;
    }
    Ok(())
}

/// `Change::ChatCreated`.
pub(crate) fn chat_created(
    tx: &Transaction<'_>,
    path: &Path,
    id: ChatId,
    members: &[UserName],
    created_ms: u64,
) -> Result<(), StoreError> {
    let id = id_to_db("chat id", id.0)?;
    let created_ms = to_db("created_ms", created_ms)?;
    if !take_id(tx, path, "next_chat_id", id)? {
        return Ok(());
    }
    let mut accounts = BTreeSet::new();
    for member in members {
        match account_id(tx, path, member)? {
            Some(account) => accounts.insert(account),
            None => return Ok(()),
        };
    }
    if accounts.is_empty() {
        return Ok(());
    }
    run(
        tx,
        path,
        "INSERT INTO chats (id, created_ms) VALUES (?1, ?2)",
        [id, created_ms],
    )?;
    for account in accounts {
        run(
            tx,
            path,
            "INSERT INTO chat_members (chat, account) VALUES (?1, ?2)",
            [id, account],
        )?;
    }
    Ok(())
}

/// `Change::ChatDeleted`: the chat, its members, its media and their bytes.
pub(crate) fn chat_deleted(
    tx: &Transaction<'_>,
    path: &Path,
    id: ChatId,
) -> Result<(), StoreError> {
    // An id past what the database holds names no chat.
    let Ok(id) = i64::try_from(id.0) else {
        return Ok(());
    };
    run(
        tx,
        path,
        "DELETE FROM media_blobs WHERE media IN (SELECT id FROM media WHERE chat = ?1)",
        [id],
    )?;
    run(tx, path, "DELETE FROM media WHERE chat = ?1", [id])?;
    run(tx, path, "DELETE FROM chat_members WHERE chat = ?1", [id])?;
    run(tx, path, "DELETE FROM chats WHERE id = ?1", [id])?;
    Ok(())
}

/// `Change::MediaStored`: the metadata (with the sender's account, or NULL if `sender`
/// has none) and, in their own table, the bytes.
pub(crate) fn media_stored(
    tx: &Transaction<'_>,
    path: &Path,
    id: MediaId,
    chat: ChatId,
    sender: &UserName,
    created_ms: u64,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let id = id_to_db("media id", id.0)?;
    let created_ms = to_db("created_ms", created_ms)?;
    if !take_id(tx, path, "next_media_id", id)? {
        return Ok(());
    }
    let Ok(chat) = i64::try_from(chat.0) else {
        return Ok(());
    };
    let size = to_db("media size", bytes.len() as u64)?;
    let sender = account_id(tx, path, sender)?;
    let stored = run(
        tx,
        path,
        "INSERT INTO media (id, chat, size, created_ms, sender) \
         SELECT ?1, id, ?3, ?4, ?5 FROM chats WHERE id = ?2",
        params![id, chat, size, created_ms, sender],
    )?;
    if stored == 1 {
        run(
            tx,
            path,
            "INSERT INTO media_blobs (media, bytes) VALUES (?1, ?2)",
            params![id, bytes],
        )?;
    }
    Ok(())
}

/// The v2 part of `Change::AccountDeleted`, before the account's row goes: its
/// friendships, requests to and from it, its chat memberships, and the chats (with media)
/// that leaves without members.
pub(crate) fn account_deleted(
    tx: &Transaction<'_>,
    path: &Path,
    name: &UserName,
) -> Result<(), StoreError> {
    let Some(account) = account_id(tx, path, name)? else {
        return Ok(());
    };
    run(
        tx,
        path,
        "DELETE FROM friendships WHERE low = ?1 OR high = ?1",
        [account],
    )?;
    run(
        tx,
        path,
        "DELETE FROM friend_requests WHERE requester = ?1 OR recipient = ?1",
        [account],
    )?;
    let chats: Vec<i64> = tx
        .prepare_cached("SELECT chat FROM chat_members WHERE account = ?1")
        .and_then(|mut statement| {
            statement
                .query_map([account], |row| row.get(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(commit_error(path))?;
    run(
        tx,
        path,
        "DELETE FROM chat_members WHERE account = ?1",
        [account],
    )?;
    // Its media in chats that remain stays, counted to no one.
    run(
        tx,
        path,
        "UPDATE media SET sender = NULL WHERE sender = ?1",
        [account],
    )?;
    for chat in chats {
        let left: i64 = tx
            .prepare_cached("SELECT COUNT(*) FROM chat_members WHERE chat = ?1")
            .and_then(|mut statement| statement.query_row([chat], |row| row.get(0)))
            .map_err(commit_error(path))?;
        if left == 0 {
            chat_deleted(tx, path, ChatId(chat as u64))?;
        }
    }
    Ok(())
}

/// A message kind as stored: the `kind` column and the chat and media ids.
pub(crate) fn kind_to_db(
    kind: MessageKind,
) -> Result<(&'static str, Option<i64>, Option<i64>), StoreError> {
    Ok(match kind {
        MessageKind::Direct => ("direct", None, None),
        MessageKind::Whisper => ("whisper", None, None),
        MessageKind::FriendAccepted => ("friend_accepted", None, None),
        MessageKind::Chat { chat, media } => (
            "chat",
            Some(to_db("chat id", chat.0)?),
            media.map(|m| to_db("media id", m.0)).transpose()?,
        ),
    })
}

/// A stored message kind back from its columns.
pub(crate) fn kind_from_db(
    path: &Path,
    seq: i64,
    kind: &str,
    chat: Option<i64>,
    media: Option<i64>,
) -> Result<MessageKind, StoreError> {
    let corrupt = || StoreError::Corrupt {
        path: path.to_owned(),
        detail: format!(
            "offline message {seq} has kind {kind:?} with chat {chat:?} and media {media:?}"
        ),
    };
    let id = |value: i64| u64::try_from(value).map_err(|_| corrupt());
    match (kind, chat, media) {
        ("direct", None, None) => Ok(MessageKind::Direct),
        ("whisper", None, None) => Ok(MessageKind::Whisper),
        ("friend_accepted", None, None) => Ok(MessageKind::FriendAccepted),
        ("chat", Some(chat), media) => Ok(MessageKind::Chat {
            chat: ChatId(id(chat)?),
            media: media.map(id).transpose()?.map(MediaId),
        }),
        _ => Err(corrupt()),
    }
}

/// Reads the v2 tables into `state` (its accounts already loaded), from the load's snapshot.
pub(crate) fn load(tx: &Connection, path: &Path, state: &mut State) -> Result<(), StoreError> {
    let load = load_error(path);
    // Rows name accounts by row id; the accounts are loaded (their keys checked) already.
    let by_text: HashMap<&str, &UserKey> = state
        .accounts
        .keys()
        .map(|key| (key.as_str(), key))
        .collect();
    let mut ids: HashMap<i64, UserKey> = HashMap::new();
    let mut statement = tx.prepare("SELECT id, key FROM accounts").map_err(&load)?;
    let mut rows = statement.query([]).map_err(&load)?;
    while let Some(row) = rows.next().map_err(&load)? {
        let id: i64 = row.get(0).map_err(&load)?;
        let text: String = row.get(1).map_err(&load)?;
        if let Some(key) = by_text.get(text.as_str()) {
            ids.insert(id, (*key).clone());
        }
    }
    drop(rows);
    drop(statement);
    let key = |id: i64| -> Result<UserKey, StoreError> {
        ids.get(&id).cloned().ok_or_else(|| StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("a row names account {id}, which was not loaded"),
        })
    };

    let mut statement = tx
        .prepare("SELECT low, high, since_ms FROM friendships")
        .map_err(&load)?;
    let mut rows = statement.query([]).map_err(&load)?;
    while let Some(row) = rows.next().map_err(&load)? {
        let a = key(row.get(0).map_err(&load)?)?;
        let b = key(row.get(1).map_err(&load)?)?;
        let friendship = Friendship {
            since_ms: from_db(path, "friendship since_ms", row.get(2).map_err(&load)?)?,
        };
        state
            .friends
            .entry(a.clone())
            .or_default()
            .insert(b.clone(), friendship);
        state.friends.entry(b).or_default().insert(a, friendship);
    }

    let mut statement = tx
        .prepare("SELECT requester, recipient, since_ms FROM friend_requests ORDER BY seq")
        .map_err(&load)?;
    let mut rows = statement.query([]).map_err(&load)?;
    while let Some(row) = rows.next().map_err(&load)? {
        let from = key(row.get(0).map_err(&load)?)?;
        let to = key(row.get(1).map_err(&load)?)?;
        let since_ms = from_db(path, "friend request since_ms", row.get(2).map_err(&load)?)?;
        state
            .friend_requests
            .entry(to)
            .or_default()
            .push(FriendRequest { from, since_ms });
    }

    let mut statement = tx
        .prepare("SELECT id, created_ms FROM chats")
        .map_err(&load)?;
    let mut rows = statement.query([]).map_err(&load)?;
    while let Some(row) = rows.next().map_err(&load)? {
        let id = ChatId(from_db(path, "chat id", row.get(0).map_err(&load)?)?);
        let created_ms = from_db(path, "chat created_ms", row.get(1).map_err(&load)?)?;
        state.chats.insert(
            id,
            Chat {
                members: BTreeSet::new(),
                created_ms,
            },
        );
    }
    let mut statement = tx
        .prepare("SELECT chat, account FROM chat_members")
        .map_err(&load)?;
    let mut rows = statement.query([]).map_err(&load)?;
    while let Some(row) = rows.next().map_err(&load)? {
        let id = ChatId(from_db(path, "chat id", row.get(0).map_err(&load)?)?);
        let member = key(row.get(1).map_err(&load)?)?;
        if let Some(chat) = state.chats.get_mut(&id) {
            chat.members.insert(member);
        }
    }
    if let Some((id, _)) = state.chats.iter().find(|(_, chat)| chat.members.is_empty()) {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("chat {} has no members", id.0),
        });
    }

    let mut statement = tx
        .prepare("SELECT id, chat, size, created_ms, sender FROM media")
        .map_err(&load)?;
    let mut rows = statement.query([]).map_err(&load)?;
    while let Some(row) = rows.next().map_err(&load)? {
        let id = MediaId(from_db(path, "media id", row.get(0).map_err(&load)?)?);
        let media = Media {
            chat: ChatId(from_db(path, "media chat", row.get(1).map_err(&load)?)?),
            size: from_db(path, "media size", row.get(2).map_err(&load)?)?,
            created_ms: from_db(path, "media created_ms", row.get(3).map_err(&load)?)?,
            sender: (row.get::<_, Option<i64>>(4).map_err(&load)?)
                .map(key)
                .transpose()?,
        };
        state.media.insert(id, media);
    }

    for (name, slot) in [
        ("next_chat_id", &mut state.next_chat_id),
        ("next_media_id", &mut state.next_media_id),
    ] {
        let value = counter(tx, name).map_err(&load)?;
        let value = value.ok_or_else(|| StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("the {name} counter is missing"),
        })?;
        *slot = from_db(path, name, value)?;
    }
    Ok(())
}

/// The bytes of a media item, if stored.
pub(crate) fn media_bytes(
    conn: &Connection,
    path: &Path,
    id: MediaId,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Ok(id) = i64::try_from(id.0) else {
        return Ok(None);
    };
    conn.prepare_cached("SELECT bytes FROM media_blobs WHERE media = ?1")
        .and_then(|mut statement| statement.query_row([id], |row| row.get(0)).optional())
        .map_err(load_error(path))
}
