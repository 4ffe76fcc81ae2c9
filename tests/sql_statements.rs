//! SQL statements per request through `PostgresStore` and `SqliteStore`,
//! counted from `sqlx`'s own statement log (target `sqlx::query`) by a
//! process-wide subscriber: SQLite runs its statements on a worker thread
//! of its own, so a thread-local subscriber would miss them. The tests of
//! this file take turns, so that each counts only its own statements.
#![cfg(all(feature = "postgres", feature = "sqlite"))]

use std::sync::OnceLock;

use typed_sessions::SessionLayer;
use typed_sessions::stores::SessionStore;
use typed_sessions_test_support::routes::profile_routes;
use typed_sessions_test_support::sql::{postgres_available, postgres_store, sqlite_store};
use typed_sessions_test_support::{Captured, fetch, submit};

/// The process-wide log of every `sqlx` statement.
fn log() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        captured
    })
}

static TURNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The statements `sqlx` logged while `work` ran.
async fn statements<T>(work: impl Future<Output = T>) -> (T, Vec<String>) {
    let before = log().text().len();
    let out = work.await;
    let text = log().text();
    let logged = text[before..]
        .lines()
        .filter(|line| line.contains("sqlx::query"))
        // A new pooled connection's setup is not the request's.
        .filter(|line| !line.contains("summary=\"PRAGMA"))
        .map(str::to_owned)
        .collect();
    (out, logged)
}

/// Statements for a first write (create), a read, a write of one field.
async fn count<S: SessionStore>(store: S) -> [usize; 3] {
    let app = profile_routes().layer(SessionLayer::new(store));
    // Warm the pool: its first connection's setup is not a request's cost.
    let _ = fetch(&app, "/profile", None).await;
    let (login, create) = statements(submit(&app, "/login", None)).await;
    assert_eq!(login.status, 200);
    let cookie = login.cookie();
    let (read, reading) = statements(fetch(&app, "/profile", Some(&cookie))).await;
    assert_eq!(read.body, "alice dark 1");
    let (visit, writing) = statements(submit(&app, "/visit", Some(&cookie))).await;
    assert_eq!(visit.status, 200);
    assert_eq!(
        fetch(&app, "/profile", Some(&cookie)).await.body,
        "alice dark 2"
    );
    eprintln!("create: {create:#?}\nread: {reading:#?}\nwrite: {writing:#?}");
    [create.len(), reading.len(), writing.len()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_per_request_on_postgres() {
    let _turn = TURNS.lock().await;
    if !postgres_available() {
        return;
    }
    let counts = count(postgres_store(None)).await;
    eprintln!("PostgresStore statements [create, read, write]: {counts:?}");
    // A new session: one statement. A read: the load. A write: the load,
    // the read of the record's counter and guards, one writing statement.
    assert_eq!(counts, [1, 1, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_per_request_on_sqlite() {
    let _turn = TURNS.lock().await;
    let counts = count(sqlite_store(None)).await;
    eprintln!("SqliteStore statements [create, read, write]: {counts:?}");
    // In-process, a save is a short transaction of plain statements
    // between BEGIN IMMEDIATE and COMMIT (which sqlx does not log: two
    // more each). A create: the session row, the namespace row, one
    // statement for all its fields. A read: the load. A write: the load,
    // then the counter, the namespaces, the session row, the namespace row
    // and the one changed field.
    assert_eq!(counts, [1 + 1 + 1, 1, 1 + 5]);
}
