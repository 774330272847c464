//! Opening, migrating, refusing and failing: nothing is ever half applied.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use rusqlite::Connection;
use switchboard_proto::{
    Account, Change, MessageId, MessageKind, PasswordHash, State, StoredMessage, UserName,
};
use switchboard_store::schema::SCHEMA_VERSION;
use switchboard_store::{
    ErrorKind, Store, StoreError, APPLICATION_ID, DB_FILE_NAME, MARKER_FILE_NAME,
};

fn name(s: &str) -> UserName {
    UserName::parse(s).expect("test names are valid")
}

fn account(n: &str) -> Account {
    Account {
        name: name(n),
        password: PasswordHash("$argon2id$a".into()),
        ims_password: PasswordHash("$argon2id$b".into()),
        email: None,
        gender: None,
        level: 0,
        banned: false,
        created_ms: 1,
    }
}

fn queued(id: u64, to: &str) -> Change {
    Change::OfflineQueued(StoredMessage {
        id: MessageId(id),
        from: name("sender"),
        to: name(to),
        body: format!("message {id}"),
        sent_ms: 2,
        kind: MessageKind::Direct,
    })
}

fn raw(dir: &Path) -> Connection {
    Connection::open(dir.join(DB_FILE_NAME)).expect("raw connection")
}

fn user_version(conn: &Connection) -> i64 {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("user_version")
}

fn state_of(changes: &[Change]) -> State {
    let mut state = State::default();
    for change in changes {
        state.apply(change);
    }
    state
}

#[test]
fn opening_creates_directory_and_migrates_to_current_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("nested").join("data");
    let store = Store::open(&data).expect("open");
    assert_eq!(store.path(), data.join(DB_FILE_NAME));
    assert_eq!(store.load().expect("load"), State::default());
    drop(store);
    let conn = raw(&data);
    assert_eq!(user_version(&conn), i64::from(SCHEMA_VERSION));
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
}

#[test]
fn refuses_an_empty_database_file_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join(DB_FILE_NAME);
    fs::write(&db, b"").expect("empty file");
    let error = Store::open(dir.path()).expect_err("an empty database must be refused");
    assert!(
        matches!(&error, StoreError::Empty { path } if *path == db),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&db.display().to_string()),
        "{error}"
    );
    assert_eq!(
        fs::metadata(&db).expect("still there").len(),
        0,
        "left as found"
    );

    // The same after a store was made there and the file truncated (with its WAL gone).
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path()).expect("open");
    store.commit(&[queued(3, "amy")]).expect("commit");
    drop(store);
    fs::write(db_of(dir.path()), b"").expect("truncate");
    let error = Store::open(dir.path()).expect_err("a truncated database must be refused");
    assert!(matches!(error, StoreError::Empty { .. }), "{error:?}");
}

fn db_of(dir: &Path) -> std::path::PathBuf {
    dir.join(DB_FILE_NAME)
}

#[test]
fn an_initialised_data_dir_without_its_database_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path()).expect("open");
    store.commit(&[queued(3, "amy")]).expect("commit");
    drop(store);
    let marker = dir.path().join(MARKER_FILE_NAME);
    assert!(marker.is_file(), "opening wrote the marker");
    let db = db_of(dir.path());
    fs::remove_file(&db).expect("remove the database");
    let error = Store::open(dir.path()).expect_err("a lost database must be refused");
    assert!(
        matches!(&error, StoreError::Missing { path, .. } if *path == db),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&db.display().to_string()),
        "{error}"
    );
    assert!(!db.exists(), "no new database was made");
}

#[test]
fn open_existing_never_creates_a_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let typo = dir.path().join("some-typo");
    let error = Store::open_existing(&typo).expect_err("no directory");
    assert!(
        matches!(&error, StoreError::NoStore { dir } if *dir == typo),
        "{error:?}"
    );
    assert!(!typo.exists(), "the directory was created");
    let error = Store::open_existing(dir.path()).expect_err("no store in it");
    assert!(matches!(error, StoreError::NoStore { .. }), "{error:?}");
    assert!(!db_of(dir.path()).exists(), "a database was created");
    assert!(!Store::exists_in(dir.path()));

    drop(Store::open(dir.path()).expect("create"));
    assert!(Store::exists_in(dir.path()));
    Store::open_existing(dir.path()).expect("an existing store opens");
}

#[test]
fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let conn = raw(dir.path());
        conn.pragma_update(None, "application_id", 0x1234_i32)
            .expect("id");
        conn.execute_batch("CREATE TABLE theirs (x INTEGER)")
            .expect("table");
    }
    let error = Store::open(dir.path()).expect_err("foreign file");
    assert!(matches!(error, StoreError::Foreign { .. }), "{error:?}");
    assert!(error.to_string().contains("0x1234"), "{error}");

    // An SQLite file with neither the id nor a schema.
    let dir = tempfile::tempdir().expect("temp dir");
    raw(dir.path())
        .execute_batch("CREATE TABLE theirs (x INTEGER)")
        .expect("table");
    let error = Store::open(dir.path()).expect_err("foreign file");
    assert!(matches!(error, StoreError::Foreign { .. }), "{error:?}");
}

#[test]
fn a_store_gets_switchboards_application_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(Store::open(dir.path()).expect("open"));
    let id: i32 = raw(dir.path())
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .expect("application_id");
    assert_eq!(id, APPLICATION_ID);
    assert!(
        !dir.path().join(".switchboard.db.new").exists(),
        "the temporary file is gone"
    );
}

#[cfg(unix)]
#[test]
fn database_files_and_the_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut store = Store::open(&data).expect("open");
    store.commit(&[queued(0, "amy")]).expect("commit");
    let mode = |path: &Path| fs::metadata(path).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for name in [
        DB_FILE_NAME,
        "switchboard.db-wal",
        "switchboard.db-shm",
        MARKER_FILE_NAME,
    ] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    drop(store);
    // A database left readable by others (an older build, a copy) is restricted on open.
    fs::set_permissions(data.join(DB_FILE_NAME), fs::Permissions::from_mode(0o644))
        .expect("loosen");
    drop(Store::open(&data).expect("reopen"));
    assert_eq!(mode(&data.join(DB_FILE_NAME)), 0o600);
}

#[test]
fn refuses_a_newer_schema_without_touching_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let newer = i64::from(SCHEMA_VERSION) + 1;
    {
        let conn = raw(dir.path());
        conn.pragma_update(None, "user_version", newer)
            .expect("set version");
        conn.execute_batch("CREATE TABLE from_the_future (x INTEGER)")
            .expect("table");
    }
    let error = Store::open(dir.path()).expect_err("newer schema must be refused");
    assert!(
        matches!(error, StoreError::NewerSchema { found, supported, .. }
            if found == newer && supported == SCHEMA_VERSION),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::NewerSchema);
    let conn = raw(dir.path());
    assert_eq!(user_version(&conn), newer);
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(tables, 1, "no migration ran");
}

#[test]
fn refuses_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(
        dir.path().join(DB_FILE_NAME),
        "this is not an SQLite database\n".repeat(200),
    )
    .expect("garbage");
    let error = Store::open(dir.path()).expect_err("garbage must be refused");
    assert_eq!(error.kind(), ErrorKind::Corrupt, "{error:?}");
    let db = dir.path().join(DB_FILE_NAME).display().to_string();
    assert!(error.to_string().contains(&db), "{error}");
}

#[test]
fn a_failing_statement_rolls_back_the_whole_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path()).expect("open");
    let first = [Change::AccountCreated(account("Ann"))];
    store.commit(&first).expect("first batch");

    // Make the last statement of the next batch fail inside SQLite.
    raw(dir.path())
        .execute_batch(
            "CREATE TRIGGER fail BEFORE INSERT ON ip_bans \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .expect("trigger");
    let batch = [
        Change::PasswordChanged {
            name: name("ann"),
            password: PasswordHash("new".into()),
            ims_password: PasswordHash("new-ims".into()),
        },
        queued(0, "ann"),
        Change::AccountCreated(account("Ben")),
        Change::IpBanned(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
    ];
    let error = store
        .commit(&batch)
        .expect_err("the trigger fails the batch");
    assert!(matches!(error, StoreError::Commit { .. }), "{error:?}");
    assert!(std::error::Error::source(&error).is_some(), "cause kept");
    assert_eq!(store.load().expect("load"), state_of(&first));

    // The runtime retries the same batch once the cause is gone.
    raw(dir.path())
        .execute_batch("DROP TRIGGER fail")
        .expect("drop trigger");
    store.commit(&batch).expect("retry");
    let all: Vec<Change> = first.iter().chain(&batch).cloned().collect();
    assert_eq!(store.load().expect("load"), state_of(&all));
}

#[test]
fn a_value_out_of_range_rolls_back_the_whole_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path()).expect("open");
    let batch = [
        Change::AccountCreated(account("Cy")),
        queued(i64::MAX as u64, "cy"),
    ];
    let error = store.commit(&batch).expect_err("id too large");
    assert!(
        matches!(
            error,
            StoreError::OutOfRange {
                what: "message id",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::OutOfRange);
    assert_eq!(store.load().expect("load"), State::default());

    let too_old = Change::AccountCreated(Account {
        created_ms: u64::MAX,
        ..account("Di")
    });
    let error = store.commit(&[too_old]).expect_err("timestamp too large");
    assert_eq!(error.kind(), ErrorKind::OutOfRange);
    assert_eq!(store.load().expect("load"), State::default());
}

#[test]
fn invalid_content_fails_the_load_instead_of_panicking() {
    for (label, sql) in [
        (
            "invalid name",
            "INSERT INTO accounts (key, name, password, ims_password, level, banned, created_ms) \
             VALUES ('a b', 'a b', 'x', 'y', 0, 0, 0)",
        ),
        (
            "key not the name's key",
            "INSERT INTO accounts (key, name, password, ims_password, level, banned, created_ms) \
             VALUES ('someone', 'Else', 'x', 'y', 0, 0, 0)",
        ),
        ("not an ip", "INSERT INTO ip_bans (ip) VALUES ('999.1.1.1')"),
        (
            "recipient key mismatch",
            "INSERT INTO offline_messages (id, recipient_key, sender, recipient, body, sent_ms) \
             VALUES (0, 'x', 'a', 'y', 'b', 0)",
        ),
        (
            "missing counter",
            "DELETE FROM counters WHERE name = 'next_message_id'",
        ),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        raw(dir.path()).execute_batch(sql).expect(label);
        let error = store.load().expect_err(label);
        assert_eq!(error.kind(), ErrorKind::Corrupt, "{label}: {error:?}");
        let db = dir.path().join(DB_FILE_NAME).display().to_string();
        assert!(error.to_string().contains(&db), "{label}: {error}");
    }
}

#[test]
fn backup_is_a_loadable_copy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(&dir.path().join("live")).expect("open");
    let changes = [
        Change::AccountCreated(account("Eve")),
        queued(0, "eve"),
        Change::IpBanned(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 3))),
    ];
    store.commit(&changes).expect("commit");
    let copy = dir.path().join("copy");
    fs::create_dir(&copy).expect("copy dir");
    store.backup_to(&copy.join(DB_FILE_NAME)).expect("backup");
    // The live store goes on; the copy keeps the snapshot.
    store
        .commit(&[queued(1, "eve")])
        .expect("commit after backup");
    let restored = Store::open(&copy).expect("open copy");
    assert_eq!(restored.load().expect("load copy"), state_of(&changes));
}

#[test]
fn a_store_from_before_the_marker_and_application_id_is_adopted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(dir.path()).expect("open");
    store.commit(&[queued(3, "amy")]).expect("commit");
    drop(store);
    // As an older build left it: no application_id, no marker.
    raw(dir.path())
        .pragma_update(None, "application_id", 0)
        .expect("clear the id");
    fs::remove_file(dir.path().join(MARKER_FILE_NAME)).expect("remove the marker");

    let store = Store::open_existing(dir.path()).expect("an older store opens");
    assert_eq!(store.load().expect("load"), state_of(&[queued(3, "amy")]));
    drop(store);
    let id: i32 = raw(dir.path())
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .expect("application_id");
    assert_eq!(id, APPLICATION_ID);
    assert!(dir.path().join(MARKER_FILE_NAME).is_file());
}
