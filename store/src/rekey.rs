//! Keys under the current name rule (docs/names.md).
//!
//! Every row that names a user stores the name and its [`UserKey`]. The `name_rule` counter
//! records which [`NAME_RULE_VERSION`] derived the keys; a database without it was written
//! before the PRECIS rule, when a key was the lowercase name (version 1). When the counter is
//! older than this build's rule, [`ensure`] recomputes every key (and brings every name to its
//! enforced form) in one transaction, and refuses, naming them, names the rule no longer
//! accepts and accounts the rule would merge: an operator decides, nothing is lost or joined
//! silently. When the counter is current, a key that differs from its name's at load is
//! drift (the file was edited, or the Unicode tables changed without raising the rule) and
//! the load reports corrupt instead of splitting an account.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use switchboard_proto::{UserName, NAME_RULE_VERSION};

use crate::StoreError;

/// The `counters` row that holds the name rule the keys were derived with.
const COUNTER: &str = "name_rule";

/// The rule a database without a [`COUNTER`] row used: the name in lowercase.
const LEGACY_RULE: i64 = 1;

/// Brings the stored keys to this build's name rule, if they are older.
pub(crate) fn ensure(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let load = |source| StoreError::Load {
        path: path.to_owned(),
        source,
    };
    let found = rule(conn).map_err(load)?;
    let current = i64::from(NAME_RULE_VERSION);
    if found == current {
        return Ok(());
    }
    if found > current {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!(
                "user names are keyed by name rule {found}, newer than this build's \
                 ({current}); run a newer Switchboard"
            ),
        });
    }
    // IMMEDIATE: two processes opening the same old file cannot both rekey it.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(load)?;
    if rule(&tx).map_err(load)? != found {
        return Ok(());
    }
    let accounts = accounts(&tx, path, found)?;
    let messages = messages(&tx, path, found)?;
    let write = |source| StoreError::Migrate {
        path: path.to_owned(),
        version: crate::schema::SCHEMA_VERSION,
        source,
    };
    // Keys are unique: first move every row out of the way, then give it its new key.
    tx.execute("UPDATE accounts SET key = char(0) || id", [])
        .map_err(write)?;
    for (id, name) in &accounts {
        tx.prepare_cached("UPDATE accounts SET key = ?2, name = ?3 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, name.key().as_str(), name.as_str()]))
            .map_err(write)?;
    }
    for (seq, sender, recipient) in &messages {
        tx.prepare_cached(
            "UPDATE offline_messages SET recipient_key = ?2, sender = ?3, recipient = ?4 \
             WHERE seq = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                seq,
                recipient.key().as_str(),
                sender.as_str(),
                recipient.as_str()
            ])
        })
        .map_err(write)?;
    }
    tx.execute(
        "INSERT INTO counters (name, value) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![COUNTER, current],
    )
    .map_err(write)?;
    tx.commit().map_err(write)
}

/// The rule the stored keys were derived with.
fn rule(conn: &Connection) -> rusqlite::Result<i64> {
    let value: Option<i64> = conn
        .query_row(
            "SELECT value FROM counters WHERE name = ?1",
            [COUNTER],
            |row| row.get(0),
        )
        .optional()?;
    Ok(value.unwrap_or(LEGACY_RULE))
}

/// Every account's row id and its name under the current rule; refuses a name the rule does
/// not accept, a stored key the old rule did not give, and two accounts that become one.
fn accounts(
    conn: &Connection,
    path: &Path,
    found: i64,
) -> Result<Vec<(i64, UserName)>, StoreError> {
    let load = |source| StoreError::Load {
        path: path.to_owned(),
        source,
    };
    let mut statement = conn
        .prepare("SELECT id, key, name FROM accounts ORDER BY id")
        .map_err(load)?;
    let mut rows = statement.query([]).map_err(load)?;
    let mut accounts = Vec::new();
    let mut by_key: HashMap<String, String> = HashMap::new();
    while let Some(row) = rows.next().map_err(load)? {
        let id: i64 = row.get(0).map_err(load)?;
        let key: String = row.get(1).map_err(load)?;
        let stored: String = row.get(2).map_err(load)?;
        let name = current_name(path, "account", &stored)?;
        check_old_key(path, "account", &stored, &key, found)?;
        if let Some(other) = by_key.insert(name.key().as_str().to_owned(), stored.clone()) {
            return Err(StoreError::Corrupt {
 path: path.to_owned(),
                detail: format!(
                    "accounts {other:?} and {stored:?} are one name under the name rule \
                     (docs/names.md); delete one with the older build (`switchboard user del`) first"
                ),
            });
        }
        accounts.push((id, name));
    }
    Ok(accounts)
}

/// Every offline message's sequence number, sender and recipient under the current rule. A
/// sender the rule now refuses (an anonymous ws2017 name) is kept as it was.
fn messages(
    conn: &Connection,
    path: &Path,
    found: i64,
) -> Result<Vec<(i64, UserName, UserName)>, StoreError> {
    let load = |source| StoreError::Load {
        path: path.to_owned(),
        source,
    };
    let mut statement = conn
        .prepare("SELECT seq, recipient_key, sender, recipient FROM offline_messages ORDER BY seq")
        .map_err(load)?;
    let mut rows = statement.query([]).map_err(load)?;
    let mut messages = Vec::new();
    while let Some(row) = rows.next().map_err(load)? {
        let seq: i64 = row.get(0).map_err(load)?;
        let key: String = row.get(1).map_err(load)?;
        let sender: String = row.get(2).map_err(load)?;
        let recipient: String = row.get(3).map_err(load)?;
        let what = format!("recipient of offline message {seq}");
        let recipient_name = current_name(path, &what, &recipient)?;
        check_old_key(path, &what, &recipient, &key, found)?;
        let sender = UserName::parse_legacy(&sender).map_err(|error| StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("sender {sender:?} is not a valid user name ({error})"),
        })?;
        messages.push((seq, sender, recipient_name));
    }
    Ok(messages)
}

/// `stored` under the current rule, or why the database cannot be loaded with it.
fn current_name(path: &Path, what: &str, stored: &str) -> Result<UserName, StoreError> {
    UserName::parse(stored).map_err(|error| StoreError::Corrupt {
        path: path.to_owned(),
        detail: format!(
            "{what} {stored:?} is not a valid user name under the name rule \
             (docs/names.md): {error}; delete it with the older build (`switchboard user del`) \
             first"
        ),
    })
}

/// The drift check for the rule the keys were stored with.
fn check_old_key(
    path: &Path,
    what: &str,
    name: &str,
    key: &str,
    found: i64,
) -> Result<(), StoreError> {
    // A later rule's keys cannot be derived by this build; they are recomputed all the same.
    if found != LEGACY_RULE {
        return Ok(());
    }
    let expected = name.to_lowercase();
    if key == expected {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!(
                "{what} {name:?} is stored under key {key:?}, but its key under name rule \
                 {found} is {expected:?}"
            ),
        })
    }
}
