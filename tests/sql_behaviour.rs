//! `PostgresStore` and `SqliteStore` beyond the shared suites (statements
//! per request are in `sql_statements.rs`): field-level writes, 200 concurrent increments over real
//! HTTP (one and two app instances), faults (PostgreSQL unreachable on load
//! and on save, a locked SQLite file), concurrent `migrate()`, batched
//! `delete_expired()`, and a session that survives a restart on SQLite.
//!
//! PostgreSQL tests run in fresh schemas on `TYPED_SESSIONS_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); without a server
//! they say so loudly and pass without running, except under `CI=true`.
//! The numbers measured are printed (`--nocapture`).
#![cfg(all(feature = "postgres", feature = "sqlite"))]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::routing::post;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use typed_sessions::sqlx::postgres::PgPoolOptions;
use typed_sessions::sqlx::sqlite::SqlitePoolOptions;
use typed_sessions::sqlx::{Connection as _, Executor as _};
use typed_sessions::stores::{
    Changeset, NamespaceChange, NamespaceOp, PostgresStore, SaveMode, SessionStore, SqliteStore,
};
use typed_sessions::{FieldMap, Session, SessionLayer};
use typed_sessions_test_support::backed::Backed;
use typed_sessions_test_support::http_client::http;
use typed_sessions_test_support::routes::{counter_routes, held_counter_routes, profile_routes};
use typed_sessions_test_support::schemas::Other;
use typed_sessions_test_support::sql::{
    PgCluster, PgSchema, TempDir, postgres_available, postgres_store, postgres_store_with,
    postgres_url, sqlite_options, sqlite_store,
};
use typed_sessions_test_support::{Gate, ManualClock, fetch, key_of, numbered_key, submit};

/// How many concurrent increments.
const REQUESTS: u64 = 200;
/// How long `Session::update` may retry under contention (default 2 s):
/// generous, so that a slow shared machine measures correctness.
const UPDATE_DEADLINE: Duration = Duration::from_secs(30);

// --------------------------------------------------------------- field-level

/// PostgreSQL's `xmin` of each field row: it changes when the row is written.
async fn field_versions(store: &PostgresStore, schema: &str) -> BTreeMap<String, String> {
    let rows: Vec<(String, String)> =
        typed_sessions::sqlx::query_as(typed_sessions::sqlx::AssertSqlSafe(format!(
            "SELECT field, xmin::text FROM \"{schema}\".typed_sessions_fields"
        )))
        .fetch_all(store.pool())
        .await
        .unwrap();
    rows.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_rewrites_only_the_changed_field_row() {
    if !postgres_available() {
        return;
    }
    let (store, schema) = postgres_store_with(None, 4, |builder| builder);
    let app = profile_routes().layer(SessionLayer::new(store.clone()));
    let cookie = submit(&app, "/login", None).await.cookie();
    let before = field_versions(&store.store, &schema).await;
    assert!(before.len() >= 3, "one row per field: {before:?}");
    assert_eq!(submit(&app, "/visit", Some(&cookie)).await.status, 200);
    let after = field_versions(&store.store, &schema).await;
    let changed: Vec<&String> = after
        .iter()
        .filter(|(field, version)| before.get(*field) != Some(version))
        .map(|(field, _)| field)
        .collect();
    assert_eq!(
        changed,
        ["visits"],
        "only the changed field's row is written"
    );
}

// --------------------------------------------------------------- concurrency

/// An app instance on its own loopback listener.
struct Instance {
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Instance {
    async fn start<S: SessionStore>(store: S, gate: &Gate, update_deadline: Duration) -> Self {
        let router = held_counter_routes(gate)
            .route(
                "/seed",
                post(|mut o: Session<Other>| async move { o.n = 1 }),
            )
            .layer(
                SessionLayer::builder(store)
                    .update_deadline(update_deadline)
                    .build()
                    .unwrap(),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve");
        });
        Self { addr, server }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `REQUESTS` concurrent `/atomic` increments of one session, request `i`
/// to `instances[i % len]`: every one succeeds, the counts committed are
/// exactly `1..=REQUESTS`, and the session reads `REQUESTS` everywhere.
async fn increment_concurrently(store_name: &str, instances: &[&Instance]) {
    let cookie = http(instances[0].addr, "POST", "/seed", None)
        .await
        .cookie();
    let started = Instant::now();
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let addr = instances[usize::try_from(i).unwrap() % instances.len()].addr;
            let cookie = cookie.clone();
            tokio::spawn(async move { http(addr, "POST", "/atomic", Some(&cookie)).await })
        })
        .collect();
    let mut committed = Vec::new();
    let mut failures = BTreeMap::<u16, Vec<String>>::new();
    for task in tasks {
        let response = task.await.expect("no panic");
        if response.status == 200 {
            committed.push(response.body.parse::<u64>().expect("a count"));
        } else {
            failures
                .entry(response.status)
                .or_default()
                .push(response.body);
        }
    }
    eprintln!(
        "{store_name}: {REQUESTS} concurrent updates over {} instance(s) in {:?}",
        instances.len(),
        started.elapsed()
    );
    assert!(failures.is_empty(), "every update succeeds: {failures:?}");
    committed.sort_unstable();
    assert_eq!(committed, (1..=REQUESTS).collect::<Vec<_>>());
    for instance in instances {
        let read = http(instance.addr, "GET", "/count", Some(&cookie)).await;
        assert_eq!((read.status, read.body.as_str()), (200, "200"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_updates_over_http_lose_nothing() {
    if !postgres_available() {
        return;
    }
    let gate = Gate::default();
    let a = Instance::start(postgres_store(None), &gate, UPDATE_DEADLINE).await;
    increment_concurrently("PostgresStore", &[&a]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_updates_across_two_instances_lose_nothing() {
    if !postgres_available() {
        return;
    }
    // Two layers on two pools over the same tables.
    let (first, schema) = postgres_store_with(None, 8, |builder| builder);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_lazy(&postgres_url())
        .unwrap();
    let second = PostgresStore::builder(pool).schema(schema).build().unwrap();
    let gate = Gate::default();
    let a = Instance::start(first, &gate, UPDATE_DEADLINE).await;
    let b = Instance::start(second, &gate, UPDATE_DEADLINE).await;
    increment_concurrently("PostgresStore", &[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_updates_over_http_lose_nothing() {
    let gate = Gate::default();
    let a = Instance::start(sqlite_store(None), &gate, UPDATE_DEADLINE).await;
    increment_concurrently("SqliteStore", &[&a]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_updates_across_two_pools_lose_nothing() {
    // Two layers, each with its own pool on the same file (as two
    // processes would have).
    let dir = TempDir::new();
    let path = dir.path.join("shared.db");
    let first = SqliteStore::open(&path).await.unwrap();
    let second = SqliteStore::open(&path).await.unwrap();
    let gate = Gate::default();
    let a = Instance::start(first, &gate, UPDATE_DEADLINE).await;
    let b = Instance::start(second, &gate, UPDATE_DEADLINE).await;
    increment_concurrently("SqliteStore", &[&a, &b]).await;
}

// -------------------------------------------------------------------- faults

/// A TCP proxy to PostgreSQL that can be cut: while down, it closes every
/// connection it has and every new one at once (a restarting or
/// unreachable server, as the pool sees it).
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(tokio::sync::watch::channel(0u64).0);
        let (accept_down, accept_generation) = (Arc::clone(&down), Arc::clone(&generation));
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if accept_down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = accept_generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            down,
            generation,
            task,
        }
    }

    fn url(&self) -> String {
        let real = postgres_url();
        let (scheme_user, rest) = real.split_once('@').expect("user@host in the URL");
        let path = rest.split_once('/').map_or("", |(_, p)| p);
        format!("{scheme_user}@127.0.0.1:{}/{path}", self.port)
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn postgres_addr() -> SocketAddr {
    let url = postgres_url();
    let host_port = url
        .split_once('@')
        .map_or(url.as_str(), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap();
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    host_port
        .replace("localhost", "127.0.0.1")
        .parse()
        .expect("host:port of the PostgreSQL URL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_is_503_with_retry_after_and_never_a_false_success() {
    if !postgres_available() {
        return;
    }
    let proxy = Proxy::start(postgres_addr()).await;
    let proxy_url = proxy.url();
    let timeout = Duration::from_secs(1);
    let (store, schema): (Backed<PostgresStore>, String) =
        postgres_store_with(None, 4, |builder| builder);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy(&proxy_url)
        .unwrap();
    let through_proxy = PostgresStore::builder(pool)
        .schema(schema)
        .command_timeout(timeout)
        .build()
        .unwrap();
    let gate = Gate::default();
    let app = held_counter_routes(&gate).layer(SessionLayer::new(through_proxy));

    let cookie = submit(&app, "/incr", None).await.cookie();
    assert_eq!(submit(&app, "/incr", Some(&cookie)).await.body, "2");

    // Down on load.
    proxy.cut();
    for route in ["/count", "/incr"] {
        let started = Instant::now();
        let reply = if route == "/count" {
            fetch(&app, route, Some(&cookie)).await
        } else {
            submit(&app, route, Some(&cookie)).await
        };
        let took = started.elapsed();
        eprintln!("PostgreSQL down, {route}: {} in {took:?}", reply.status);
        assert_eq!(reply.status, 503, "{route}: {}", reply.body);
        assert!(reply.headers.contains_key("retry-after"), "{route}");
        assert!(
            took < timeout * 3,
            "bounded by the command timeout: {took:?}"
        );
    }

    // Back: the next request succeeds, no restart of the app.
    proxy.restore();
    let back = fetch(&app, "/count", Some(&cookie)).await;
    assert_eq!((back.status.as_u16(), back.body.as_str()), (200, "2"));

    // Down on save: the load succeeds, then the connection goes away.
    let held = {
        let app = app.clone();
        let cookie = cookie.clone();
        tokio::spawn(async move { submit(&app, "/held-incr", Some(&cookie)).await })
    };
    gate.loaded().await;
    proxy.cut();
    gate.release();
    let reply = held.await.unwrap();
    assert_eq!(reply.status, 503, "a save that failed is not a success");
    assert!(reply.headers.contains_key("retry-after"));
    proxy.restore();
    let after = fetch(&app, "/count", Some(&cookie)).await;
    assert_eq!(
        (after.status.as_u16(), after.body.as_str()),
        (200, "2"),
        "the failed increment was not applied"
    );
    assert_eq!(submit(&app, "/incr", Some(&cookie)).await.body, "3");
    // The data under the real server is what the app says.
    let direct = store.store.load(&key_of(&cookie)).await.unwrap().unwrap();
    assert_eq!(
        direct.namespace("counter").unwrap().fields.get("count"),
        Some(&b"3"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_past_the_timeout_is_503_then_recovers() {
    let dir = TempDir::new();
    let path = dir.path.join("locked.db");
    SqliteStore::open(&path).await.unwrap();
    // The store waits at most 300 ms for the lock (busy timeout 200 ms:
    // SQLite gives up first and answers SQLITE_BUSY).
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(sqlite_options(&path, Duration::from_millis(200)))
        .await
        .unwrap();
    let store = SqliteStore::builder()
        .command_timeout(Duration::from_millis(300))
        .build(pool)
        .unwrap();
    let app = counter_routes().layer(SessionLayer::new(store));
    let cookie = submit(&app, "/incr", None).await.cookie();

    let mut locker = typed_sessions::sqlx::SqliteConnection::connect_with(&sqlite_options(
        &path,
        Duration::from_secs(1),
    ))
    .await
    .unwrap();
    locker.execute("BEGIN EXCLUSIVE").await.unwrap();
    let started = Instant::now();
    let reply = submit(&app, "/incr", Some(&cookie)).await;
    let took = started.elapsed();
    eprintln!("SQLite locked: {} in {took:?}", reply.status);
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.headers.contains_key("retry-after"));
    assert!(took < Duration::from_secs(2), "bounded: {took:?}");
    // A read does not need the write lock (WAL).
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
    locker.execute("ROLLBACK").await.unwrap();
    assert_eq!(submit(&app, "/incr", Some(&cookie)).await.body, "2");
}

// ------------------------------------------------------- migrate and expiry

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrate_is_idempotent_and_safe_in_parallel() {
    if !postgres_available() {
        return;
    }
    let schema = PgSchema::fresh();
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&postgres_url())
        .await
        .unwrap();
    let store = PostgresStore::builder(pool)
        .schema(schema.name.clone())
        .table("app_sessions")
        .build()
        .unwrap();
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for run in runs {
        run.await.unwrap().expect("every parallel migrate succeeds");
    }
    store.migrate().await.expect("and again");
    let app = counter_routes().layer(SessionLayer::new(store.clone()));
    let cookie = submit(&app, "/incr", None).await.cookie();
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
    store.pool().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_open_in_parallel_on_one_file() {
    let dir = TempDir::new();
    let path = dir.path.join("parallel.db");
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move { SqliteStore::open(&path).await })
        })
        .collect();
    for open in opens {
        open.await.unwrap().expect("every parallel open migrates");
    }
}

fn one_field(ns: &'static str, value: &str) -> Vec<NamespaceChange> {
    let mut fields = FieldMap::new();
    fields.insert("v", value.as_bytes().to_vec());
    vec![NamespaceChange::new(
        ns,
        1,
        None,
        NamespaceOp::Replace(fields),
    )]
}

/// `delete_expired` removes exactly the expired records, in batches.
async fn sweep<S: SessionStore>(
    store: &S,
    clock: &ManualClock,
    delete_expired: impl AsyncFn() -> u64,
) {
    const EXPIRED: u64 = 2_100;
    let now = clock_ms(clock);
    for n in 0..EXPIRED {
        let changes = Changeset::new(SaveMode::Create, now, now, now + 1_000, one_field("a", "x"));
        store.save(&numbered_key(n, 1), &changes).await.unwrap();
    }
    clock.advance(Duration::from_secs(2));
    let now = clock_ms(clock);
    for n in 0..3 {
        let changes = Changeset::new(
            SaveMode::Create,
            now,
            now,
            now + 60_000,
            one_field("a", "y"),
        );
        store.save(&numbered_key(n, 2), &changes).await.unwrap();
    }
    let started = Instant::now();
    let removed = delete_expired().await;
    eprintln!(
        "delete_expired removed {removed} in {:?}",
        started.elapsed()
    );
    assert_eq!(removed, EXPIRED);
    assert_eq!(delete_expired().await, 0, "nothing left to remove");
    for n in 0..3 {
        assert!(store.load(&numbered_key(n, 2)).await.unwrap().is_some());
    }
    // The rows are gone, not only hidden: a fresh record can take an old key.
    let changes = Changeset::new(
        SaveMode::Create,
        now,
        now,
        now + 60_000,
        one_field("a", "z"),
    );
    store.save(&numbered_key(7, 1), &changes).await.unwrap();
}

fn clock_ms(clock: &ManualClock) -> u64 {
    clock.now_secs() * 1000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_delete_expired_removes_exactly_the_expired() {
    if !postgres_available() {
        return;
    }
    let clock = ManualClock::new();
    let store = postgres_store(Some(clock.clone()));
    sweep(&store, &clock, async || {
        store.store.delete_expired().await.unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_delete_expired_removes_exactly_the_expired() {
    let clock = ManualClock::new();
    let store = sqlite_store(Some(clock.clone()));
    sweep(&store, &clock, async || {
        store.store.delete_expired().await.unwrap()
    })
    .await;
}

// ------------------------------------------------------------------ restart

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_session_survives_a_restart() {
    let dir = TempDir::new();
    let path = dir.path.join("restart.db");
    let cookie = {
        let store = SqliteStore::open(&path).await.unwrap();
        let app = counter_routes().layer(SessionLayer::new(store.clone()));
        let cookie = submit(&app, "/incr", None).await.cookie();
        assert_eq!(submit(&app, "/incr", Some(&cookie)).await.body, "2");
        store.pool().close().await;
        cookie
    };
    let store = SqliteStore::open(&path).await.unwrap();
    let app = counter_routes().layer(SessionLayer::new(store));
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_is_503_then_served_without_restarting_the_app() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let timeout = Duration::from_secs(2);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy(&cluster.url())
        .unwrap();
    let store = PostgresStore::builder(pool)
        .command_timeout(timeout)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let gate = Gate::default();
    let app = held_counter_routes(&gate).layer(SessionLayer::new(store));
    let cookie = submit(&app, "/incr", None).await.cookie();
    assert_eq!(submit(&app, "/incr", Some(&cookie)).await.body, "2");

    // Killed: loads and saves answer 503 with Retry-After, in bounded time.
    cluster.kill();
    for route in ["/count", "/incr"] {
        let started = Instant::now();
        let reply = if route == "/count" {
            fetch(&app, route, Some(&cookie)).await
        } else {
            submit(&app, route, Some(&cookie)).await
        };
        let took = started.elapsed();
        eprintln!("PostgreSQL killed, {route}: {} in {took:?}", reply.status);
        assert_eq!(reply.status, 503, "{route}: {}", reply.body);
        assert!(reply.headers.contains_key("retry-after"));
        assert!(took <= timeout + Duration::from_secs(1), "{took:?}");
    }

    // Restarted: the next request is served by the same app.
    cluster.start_again();
    let started = Instant::now();
    let back = fetch(&app, "/count", Some(&cookie)).await;
    eprintln!(
        "PostgreSQL restarted: {} in {:?}",
        back.status,
        started.elapsed()
    );
    assert_eq!((back.status.as_u16(), back.body.as_str()), (200, "2"));

    // Killed between a request's load and its save: 503, nothing kept.
    let held = {
        let app = app.clone();
        let cookie = cookie.clone();
        tokio::spawn(async move { submit(&app, "/held-incr", Some(&cookie)).await })
    };
    gate.loaded().await;
    cluster.kill();
    gate.release();
    let reply = held.await.unwrap();
    assert_eq!(reply.status, 503, "a save that failed is not a success");
    cluster.start_again();
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "2");
    assert_eq!(submit(&app, "/incr", Some(&cookie)).await.body, "3");
}
