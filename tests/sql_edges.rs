//! Edges of `PostgresStore` and `SqliteStore` found by review, each pinned
//! by a test that failed before its fix: a logout racing a save leaves no
//! rows behind; a pool at a stricter isolation, or a read-only server, is
//! handled; a lock held elsewhere does not use up the pool when the pool
//! has the documented `lock_timeout`; `migrate()` on existing tables takes
//! no lock; SQLite reads never queue behind saves waiting for the write
//! lock; an in-memory SQLite path is refused.
#![cfg(all(feature = "postgres", feature = "sqlite"))]

use std::time::{Duration, Instant};

use typed_sessions::FieldMap;
use typed_sessions::sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use typed_sessions::sqlx::{AssertSqlSafe, Connection as _, Executor as _};
use typed_sessions::stores::{
    Changeset, NamespaceChange, NamespaceOp, PostgresStore, SaveMode, SaveOutcome, SessionKey,
    SessionStore, SqliteStore, StoreError,
};
use typed_sessions_test_support::sql::{
    TempDir, postgres_available, postgres_store_with, postgres_url,
};
use typed_sessions_test_support::{now_ms, numbered_key};

fn change(
    ns: &'static str,
    op: fn(FieldMap) -> NamespaceOp,
    pairs: &[(&'static str, &str)],
) -> NamespaceChange {
    let fields = pairs
        .iter()
        .map(|(k, v)| (*k, v.as_bytes().to_vec()))
        .collect();
    NamespaceChange::new(ns, 1, None, op(fields))
}

fn changes(mode: SaveMode, namespaces: Vec<NamespaceChange>) -> Changeset {
    let now = now_ms();
    Changeset::new(mode, now, now, now + 600_000, namespaces)
}

async fn create<S: SessionStore>(store: &S, key: &SessionKey) {
    let outcome = store
        .save(
            key,
            &changes(
                SaveMode::Create,
                vec![change("a", NamespaceOp::Replace, &[("x", "1")])],
            ),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, SaveOutcome::Saved { .. }), "{outcome:?}");
}

async fn connect() -> PgConnection {
    PgConnection::connect(&postgres_url()).await.unwrap()
}

/// Holds the session row of `key` (`SELECT … FOR UPDATE` in an open
/// transaction), as another instance's save would.
async fn hold_row(schema: &str, key: &SessionKey) -> PgConnection {
    let mut conn = connect().await;
    conn.execute("BEGIN").await.unwrap();
    typed_sessions::sqlx::query(AssertSqlSafe(format!(
        "SELECT 1 FROM \"{schema}\".typed_sessions WHERE key = $1 FOR UPDATE"
    )))
    .bind(&key.as_bytes()[..])
    .execute(&mut conn)
    .await
    .unwrap();
    conn
}

/// Namespace and field rows whose session row is gone.
async fn orphans(schema: &str) -> (i64, i64) {
    let mut conn = connect().await;
    let mut count = async |table: &str| -> i64 {
        typed_sessions::sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{schema}\".{table} t WHERE NOT EXISTS \
             (SELECT 1 FROM \"{schema}\".typed_sessions s WHERE s.key = t.key)"
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap()
    };
    let namespaces = count("typed_sessions_namespaces").await;
    let fields = count("typed_sessions_fields").await;
    (namespaces, fields)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_queued_behind_a_save_leaves_no_rows() {
    if !postgres_available() {
        return;
    }
    let (store, schema) = postgres_store_with(None, 4, |builder| builder);
    let key = numbered_key(1, 1);
    create(&store, &key).await;
    let mut holder = hold_row(&schema, &key).await;
    // A save adding a field and a namespace queues on the row, then a delete.
    let saving = {
        let store = store.clone();
        tokio::spawn(async move {
            let namespaces = vec![
                change("a", NamespaceOp::Patch, &[("y", "secret")]),
                change("b", NamespaceOp::Replace, &[("z", "secret")]),
            ];
            store
                .save(&key, &changes(SaveMode::Update, namespaces))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deleting = {
        let store = store.clone();
        tokio::spawn(async move { store.delete(&key).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.execute("COMMIT").await.unwrap();
    let saved = saving.await.unwrap().unwrap();
    assert!(matches!(saved, SaveOutcome::Saved { .. }), "{saved:?}");
    assert!(
        deleting.await.unwrap().unwrap(),
        "the delete found the session"
    );
    assert!(store.load(&key).await.unwrap().is_none());
    assert_eq!(
        orphans(&schema).await,
        (0, 0),
        "nothing of the session is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_racing_saves_leave_no_rows() {
    if !postgres_available() {
        return;
    }
    let (store, schema) = postgres_store_with(None, 8, |builder| builder);
    let names: [&'static str; 4] = ["f0", "f1", "f2", "f3"];
    for round in 0..100 {
        let key = numbered_key(round, 2);
        create(&store, &key).await;
        let mut tasks = Vec::new();
        for name in names {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let namespaces = vec![change("a", NamespaceOp::Patch, &[(name, "v")])];
                let _ = store
                    .save(&key, &changes(SaveMode::Update, namespaces))
                    .await;
            }));
        }
        let deleter = store.clone();
        tasks.push(tokio::spawn(async move {
            let _ = deleter.delete(&key).await;
        }));
        for task in tasks {
            task.await.unwrap();
        }
    }
    assert_eq!(orphans(&schema).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_at_repeatable_read_loses_no_save() {
    if !postgres_available() {
        return;
    }
    let (_tables, schema) = postgres_store_with(None, 2, |builder| builder);
    let options = postgres_url()
        .parse::<PgConnectOptions>()
        .unwrap()
        .options([("default_transaction_isolation", "repeatable read")]);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    let store = PostgresStore::builder(pool)
        .schema(schema.clone())
        .build()
        .unwrap();
    let key = numbered_key(3, 3);
    create(&store, &key).await;
    let mut holder = hold_row(&schema, &key).await;
    let mut tasks = Vec::new();
    for name in ["y", "z"] {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let namespaces = vec![change("a", NamespaceOp::Patch, &[(name, "v")])];
            store
                .save(&key, &changes(SaveMode::Update, namespaces))
                .await
        }));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    holder.execute("COMMIT").await.unwrap();
    for task in tasks {
        let outcome = task
            .await
            .unwrap()
            .expect("no serialization failure reaches the app");
        assert!(matches!(outcome, SaveOutcome::Saved { .. }), "{outcome:?}");
    }
    let record = store.load(&key).await.unwrap().unwrap();
    let fields = &record.namespace("a").unwrap().fields;
    assert_eq!(
        (fields.get("y"), fields.get("z")),
        (Some(&b"v"[..]), Some(&b"v"[..]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_server_is_unavailable_not_a_failure() {
    if !postgres_available() {
        return;
    }
    let (_tables, schema) = postgres_store_with(None, 2, |builder| builder);
    let options = postgres_url()
        .parse::<PgConnectOptions>()
        .unwrap()
        .options([("default_transaction_read_only", "on")]);
    let pool = PgPoolOptions::new().connect_with(options).await.unwrap();
    let store = PostgresStore::builder(pool).schema(schema).build().unwrap();
    let err = store
        .save(
            &numbered_key(4, 4),
            &changes(
                SaveMode::Create,
                vec![change("a", NamespaceOp::Replace, &[("x", "1")])],
            ),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_elsewhere_does_not_use_up_the_pool() {
    if !postgres_available() {
        return;
    }
    // As the store's docs advise: the server's lock_timeout under the
    // store's command timeout.
    let (store, schema) = postgres_store_with(None, 2, |builder| {
        builder.command_timeout(Duration::from_millis(800))
    });
    let (stuck, other) = (numbered_key(5, 5), numbered_key(6, 5));
    create(&store, &stuck).await;
    create(&store, &other).await;
    let options = postgres_url()
        .parse::<PgConnectOptions>()
        .unwrap()
        .options([("lock_timeout", "500ms")]);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    let store = PostgresStore::builder(pool)
        .schema(schema.clone())
        .command_timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let _holder = hold_row(&schema, &stuck).await;
    for _ in 0..2 {
        let namespaces = vec![change("a", NamespaceOp::Patch, &[("x", "2")])];
        let err = store
            .save(&stuck, &changes(SaveMode::Update, namespaces))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
    // Both pooled connections waited on that lock; the server gave up on
    // it, so they serve other sessions again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    assert!(store.load(&other).await.unwrap().is_some());
    eprintln!(
        "an unrelated load after two stuck saves: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_on_existing_tables_takes_no_lock() {
    if !postgres_available() {
        return;
    }
    let (store, schema) = postgres_store_with(None, 2, |builder| builder);
    let key = numbered_key(7, 7);
    create(&store, &key).await;
    // An open write on the sessions table: DDL such as CREATE INDEX would
    // queue behind it (and every write behind that).
    let mut writer = connect().await;
    writer.execute("BEGIN").await.unwrap();
    typed_sessions::sqlx::query(AssertSqlSafe(format!(
        "UPDATE \"{schema}\".typed_sessions SET last_seen = last_seen WHERE key = $1"
    )))
    .bind(&key.as_bytes()[..])
    .execute(&mut writer)
    .await
    .unwrap();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), store.store.migrate())
        .await
        .expect("migrate does not wait for the open write")
        .unwrap();
    eprintln!("migrate beside an open write: {:?}", started.elapsed());
    writer.execute("ROLLBACK").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reads_do_not_queue_behind_saves_waiting_for_the_lock() {
    let dir = TempDir::new();
    let path = dir.path.join("busy.db");
    let store = SqliteStore::builder()
        .command_timeout(Duration::from_secs(3))
        .open(&path)
        .await
        .unwrap();
    let key = numbered_key(8, 8);
    create(&store, &key).await;
    // Another process holds the write lock.
    let mut other = typed_sessions::sqlx::SqliteConnection::connect_with(
        &typed_sessions_test_support::sql::sqlite_options(&path, Duration::from_secs(1)),
    )
    .await
    .unwrap();
    other.execute("BEGIN IMMEDIATE").await.unwrap();
    let saves: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let value = i.to_string();
                let namespaces = vec![change("a", NamespaceOp::Patch, &[("x", &value)])];
                store
                    .save(&key, &changes(SaveMode::Update, namespaces))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    assert!(store.load(&key).await.unwrap().is_some());
    let took = started.elapsed();
    eprintln!("a read while 6 saves wait for the write lock: {took:?}");
    assert!(took < Duration::from_millis(500), "{took:?}");
    other.execute("ROLLBACK").await.unwrap();
    for save in saves {
        assert!(matches!(
            save.await.unwrap().unwrap(),
            SaveOutcome::Saved { .. }
        ));
    }
}

#[tokio::test]
async fn sqlite_in_memory_paths_are_refused() {
    for path in [":memory:", ""] {
        let err = SqliteStore::open(path).await.unwrap_err();
        assert!(err.to_string().contains("store"), "{err}");
        let detail = std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(detail.contains("not a file"), "{path:?}: {detail}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_open_creates_a_file_only_its_owner_reads() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new();
    let path = dir.path.join("private.db");
    let store = SqliteStore::open(&path).await.unwrap();
    create(&store, &numbered_key(9, 9)).await;
    for file in ["private.db", "private.db-wal", "private.db-shm"] {
        let mode = std::fs::metadata(dir.path.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}: {mode:o}");
    }
}

#[tokio::test]
async fn sqlite_zero_timeout_is_named() {
    let dir = TempDir::new();
    let err = SqliteStore::builder()
        .command_timeout(Duration::ZERO)
        .open(dir.path.join("zero.db"))
        .await
        .unwrap_err();
    let detail = std::error::Error::source(&err)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(detail.contains("command_timeout"), "{detail}");
}

/// Field rows go in batches of 200 per statement: 450 fields (three
/// batches) written, replaced and read back.
#[tokio::test]
async fn many_fields_round_trip_on_sqlite() {
    let store = typed_sessions_test_support::sql::sqlite_store(None);
    let key = numbered_key(10, 10);
    let many = |tag: &str| -> FieldMap {
        (0..450)
            .map(|i| (format!("f{i}"), format!("{tag}{i}").into_bytes()))
            .collect()
    };
    let now = now_ms();
    let create = Changeset::new(
        SaveMode::Create,
        now,
        now,
        now + 60_000,
        vec![NamespaceChange::new(
            "wide",
            1,
            None,
            NamespaceOp::Replace(many("a")),
        )],
    );
    assert!(matches!(
        store.save(&key, &create).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
    let replace = Changeset::new(
        SaveMode::Update,
        now,
        now,
        now + 60_000,
        vec![NamespaceChange::new(
            "wide",
            1,
            None,
            NamespaceOp::Replace(many("b")),
        )],
    );
    assert!(matches!(
        store.save(&key, &replace).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
    let record = store.load(&key).await.unwrap().unwrap();
    let fields = &record.namespace("wide").unwrap().fields;
    assert_eq!(fields.len(), 450);
    assert_eq!(fields.get("f0"), Some(&b"b0"[..]));
    assert_eq!(fields.get("f449"), Some(&b"b449"[..]));
}
