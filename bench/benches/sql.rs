//! SQL stores (issue #10): typed-sessions' `PostgresStore` and `SqliteStore`
//! against tower-sessions 0.14 with tower-sessions-sqlx-store 0.15, on the
//! same PostgreSQL server and the same SQLite setup, with the same data, in
//! the same run. See `bench/README.md`.
//!
//! Every peer serves the same routes, handlers and bodies as `redis.rs`:
//! `GET /read` (scenario B, read-only on a valid session), `POST /write`
//! (scenario C, `visits += 1`) and `POST /login` without a cookie
//! (scenario D, a new session holding `Profile::sample()`).
//!
//! The run, in order:
//! 1. sets the stores up: PostgreSQL at `TYPED_SESSIONS_PG_URL` (default
//!    `postgres://postgres@127.0.0.1:5432/postgres`), one fresh schema per
//!    library, dropped at the end; SQLite, one fresh file per library in a
//!    temporary directory (WAL, `synchronous = NORMAL`, 5 s busy timeout for
//!    both), removed at the end;
//! 2. checks every peer once (a read sees the profile and sets no cookie, a
//!    write persists);
//! 3. counts the SQL statements of one create, one read and one write per
//!    store and library, from sqlx's own statement events (target
//!    `sqlx::query`), caught by a process-wide subscriber: sqlx 0.8 (the
//!    peer) and 0.9 (ours) log them the same way;
//! 4. PostgreSQL only: the WAL a write of one field of a 2 KB and a 16 KB
//!    session generates, per library, read back with `pg_walinspect`
//!    (`SQL_BENCH_WAL=0` skips it);
//! 5. wall and CPU time per request with the two peers interleaved
//!    (`SQL_BENCH_ROUNDS` rounds of `SQL_BENCH_REQUESTS` requests; 0 rounds
//!    skips it);
//! 6. criterion: `sql_<postgres|sqlite>_<read|write|create>/<peer>`, one
//!    request at a time on a current-thread tokio runtime.
//!
//! `PROFILE_LOOP=<postgres|sqlite>/<read|write|create>/<peer>:<n>` sends
//! exactly `n` requests of one case after the setup and exits (for `perf`).
//! PostgreSQL that does not answer skips its half with a message (and fails
//! when `CI=true`).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use criterion::Criterion;
use http::{Request, header};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

#[path = "common/profile.rs"]
mod profile;
use profile::Profile;

/// The cookie name every peer uses, so requests are built identically.
const COOKIE_NAME: &str = "session";

/// The PostgreSQL server used when `TYPED_SESSIONS_PG_URL` is unset.
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The peer's name in the reports.
const THEIRS: &str = "tower_sessions_sqlx";

/// The response body of the read and write routes, for every peer.
fn body_of(profile: &Profile) -> String {
    format!("{}:{}", profile.user_name, profile.visits)
}

// -------------------------------------------------------------- statements

/// A process-wide `tracing` subscriber that keeps the `summary` of every
/// `sqlx::query` event while counting is on, and nothing else. SQLite runs
/// its statements on a worker thread of its own, so a thread-local
/// subscriber would miss them. Off (the default), sqlx sees its statement
/// log disabled, so the timed runs do not format log lines.
mod statements {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tracing::field::{Field, Visit};
    use tracing::level_filters::LevelFilter;
    use tracing::subscriber::Interest;
    use tracing::{Event, Metadata, span};

    const TARGET: &str = "sqlx::query";

    static ON: AtomicBool = AtomicBool::new(false);
    static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

    struct Statements;

    /// The `summary` field of a statement event (sqlx's first words of the
    /// SQL).
    struct Summary(Option<String>);

    impl Visit for Summary {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "summary" {
                self.0 = Some(value.to_owned());
            }
        }

        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "summary" {
                self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
            }
        }
    }

    impl tracing::Subscriber for Statements {
        // `enabled!` (which sqlx asks before building a log line) has a
        // callsite of its own, not an event's: match on the target alone.
        fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
            if metadata.target() == TARGET {
                Interest::sometimes()
            } else {
                Interest::never()
            }
        }

        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            metadata.target() == TARGET && ON.load(Ordering::SeqCst)
        }

        fn max_level_hint(&self) -> Option<LevelFilter> {
            Some(LevelFilter::TRACE)
        }

        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }

        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

        fn event(&self, event: &Event<'_>) {
            let mut summary = Summary(None);
            event.record(&mut summary);
            let summary = summary.0.unwrap_or_else(|| "(no summary)".to_owned());
            LOG.lock().expect("not poisoned").push(summary);
        }

        fn enter(&self, _: &span::Id) {}

        fn exit(&self, _: &span::Id) {}
    }

    /// Installs the subscriber (once, at the start of `main`).
    pub fn install() {
        tracing::subscriber::set_global_default(Statements).expect("the only global subscriber");
    }

    /// The statements sqlx logged while `work` ran, without the `PRAGMA`s
    /// of a new pooled SQLite connection's setup (not a request's cost).
    pub async fn during<T>(work: impl Future<Output = T>) -> (T, Vec<String>) {
        LOG.lock().expect("not poisoned").clear();
        ON.store(true, Ordering::SeqCst);
        let out = work.await;
        // SQLite's worker thread may log a statement just after answering.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        ON.store(false, Ordering::SeqCst);
        let logged = std::mem::take(&mut *LOG.lock().expect("not poisoned"))
            .into_iter()
            .filter(|s| !s.to_ascii_uppercase().starts_with("PRAGMA"))
            .collect();
        (out, logged)
    }
}

// --------------------------------------------------------------- requests

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Case {
    Read,
    Write,
    Create,
}

impl Case {
    const ALL: [Self; 3] = [Self::Read, Self::Write, Self::Create];

    fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Create => "create",
        }
    }
}

/// A request of the benchmark: the same construction for every peer.
fn request(case: Case, cookie: &str) -> Request<Body> {
    let builder = match case {
        Case::Read => Request::get("/read").header(header::COOKIE, cookie),
        Case::Write => Request::post("/write").header(header::COOKIE, cookie),
        Case::Create => Request::post("/login"),
    };
    builder
        .header(header::HOST, "bench.example")
        .body(Body::empty())
        .expect("a valid request")
}

/// Sends one request through a clone of `app` and drains the response body:
/// status, body and the `Set-Cookie` `name=value` if any.
async fn send(app: &Router, request: Request<Body>) -> (http::StatusCode, Bytes, Option<String>) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let set_cookie = response.headers().get(header::SET_COOKIE).map(|value| {
        let value = value.to_str().expect("ascii cookie");
        value.split(';').next().expect("name=value").to_owned()
    });
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body, set_cookie)
}

/// The visit count of a read or write response body.
fn visits_of(body: &Bytes) -> u64 {
    std::str::from_utf8(body)
        .ok()
        .and_then(|b| b.strip_prefix("alice.liddell:"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected body {body:?}"))
}

/// One `POST /login` without a cookie; returns the new session's cookie.
async fn login(app: &Router) -> String {
    let (status, body, cookie) = send(app, request(Case::Create, "")).await;
    assert_eq!(status, 200, "login: {body:?}");
    cookie.expect("a login sets a cookie")
}

/// A peer of the comparison, on one database.
struct Peer {
    name: &'static str,
    app: Router,
    /// The session every read and write uses.
    cookie: String,
}

impl Peer {
    async fn new(name: &'static str, app: Router) -> Self {
        let cookie = login(&app).await;
        Self { name, app, cookie }
    }
}

// ---------------------------------------------------------- typed-sessions

async fn ours_read(profile: typed_sessions::Session<Profile>) -> String {
    body_of(&profile)
}

async fn ours_write(mut profile: typed_sessions::Session<Profile>) -> String {
    profile.visits += 1;
    body_of(&profile)
}

async fn ours_login(mut profile: typed_sessions::Session<Profile>) -> &'static str {
    *profile = Profile::sample();
    "ok"
}

/// typed-sessions' layer over `store`: default configuration but `Secure`
/// off, as in `redis.rs`.
fn typed_app<S: typed_sessions::stores::SessionStore>(store: S) -> Router {
    let layer = typed_sessions::SessionLayer::builder(store)
        .cookie_name(COOKIE_NAME)
        .secure(false)
        .build()
        .expect("a valid configuration");
    Router::new()
        .route("/read", get(ours_read))
        .route("/write", post(ours_write))
        .route("/login", post(ours_login))
        .layer(layer)
}

// ------------------------------------ tower-sessions 0.14 + sqlx store 0.15

const TS_KEY: &str = "data";

async fn theirs_read(session: tower_sessions_014::Session) -> String {
    let profile: Profile = session
        .get(TS_KEY)
        .await
        .expect("store works")
        .expect("the session holds a profile");
    body_of(&profile)
}

async fn theirs_write(session: tower_sessions_014::Session) -> String {
    let mut profile: Profile = session
        .get(TS_KEY)
        .await
        .expect("store works")
        .expect("the session holds a profile");
    profile.visits += 1;
    session.insert(TS_KEY, &profile).await.expect("store works");
    body_of(&profile)
}

async fn theirs_login(session: tower_sessions_014::Session) -> &'static str {
    session
        .insert(TS_KEY, Profile::sample())
        .await
        .expect("store works");
    "ok"
}

/// tower-sessions 0.14's layer over `store`, `Secure` off, the whole
/// profile under one key.
fn theirs_app<S>(store: S) -> Router
where
    S: tower_sessions_014::SessionStore + Clone,
{
    let layer = tower_sessions_014::SessionManagerLayer::new(store)
        .with_name(COOKIE_NAME)
        .with_secure(false);
    Router::new()
        .route("/read", get(theirs_read))
        .route("/write", post(theirs_write))
        .route("/login", post(theirs_login))
        .layer(layer)
}

// -------------------------------------------------------------- databases

/// Pool size of every pool of the bench (our SQLite store's reader pool has
/// 4 connections; its writer pool has 1 of its own).
const POOL_SIZE: u32 = 4;

/// The PostgreSQL URL of the run.
fn pg_url() -> String {
    std::env::var("TYPED_SESSIONS_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

/// Schema names of this run: fresh, dropped at the end.
fn pg_schemas() -> [String; 3] {
    let pid = std::process::id();
    [
        format!("sqlbench_typed_{pid}"),
        format!("sqlbench_peer_{pid}"),
        // `pg_walinspect`, when the bench installs it (`wal_per_write`).
        format!("sqlbench_wal_{pid}"),
    ]
}

/// Drops this run's schemas and removes its SQLite directory, also when the
/// bench panics.
struct Cleanup {
    pg: Option<String>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(url) = &self.pg {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(async {
                use typed_sessions::sqlx::Connection as _;
                let connect = typed_sessions::sqlx::PgConnection::connect(url);
                match tokio::time::timeout(Duration::from_secs(10), connect).await {
                    Ok(Ok(mut conn)) => {
                        for schema in pg_schemas() {
                            let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                            // The schema names are this bench's own (a prefix and the pid).
                            let sql = typed_sessions::sqlx::AssertSqlSafe(drop.clone());
                            if let Err(err) =
                                typed_sessions::sqlx::query(sql).execute(&mut conn).await
                            {
                                eprintln!("cleanup: {drop} failed: {err}");
                            }
                        }
                    }
                    other => eprintln!("cleanup: cannot reach PostgreSQL: {other:?}"),
                }
            });
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether PostgreSQL answers at `url` (within 5 s).
async fn pg_answers(url: &str) -> Result<(), String> {
    use typed_sessions::sqlx::Connection as _;
    let connect = typed_sessions::sqlx::PgConnection::connect(url);
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("no answer within 5 s".to_owned()),
    }
}

/// Both libraries on PostgreSQL, each in a fresh schema of the same
/// database, each on its own pool of `POOL_SIZE` connections.
async fn postgres_peers(url: &str) -> Vec<Peer> {
    let [ours_schema, theirs_schema, _] = pg_schemas();

    let pool = typed_sessions::sqlx::postgres::PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect(url)
        .await
        .expect("PostgreSQL answers");
    let store = typed_sessions::stores::PostgresStore::builder(pool)
        .schema(ours_schema)
        .build()
        .expect("a valid schema name");
    store.migrate().await.expect("migrate");
    let ours = Peer::new("typed_sessions", typed_app(store)).await;

    let pool = tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect(url)
        .await
        .expect("PostgreSQL answers");
    let store = tower_sessions_sqlx_store::PostgresStore::new(pool)
        .with_schema_name(theirs_schema)
        .expect("a valid schema name");
    store.migrate().await.expect("migrate");
    let theirs = Peer::new(THEIRS, theirs_app(store)).await;

    vec![ours, theirs]
}

/// Both libraries on SQLite, each on its own file in `dir`, both in WAL
/// mode with `synchronous = NORMAL` and a 5 s busy timeout: what
/// `SqliteStore::open` sets, given to the peer's pool by hand.
async fn sqlite_peers(dir: &Path) -> Vec<Peer> {
    let store = typed_sessions::stores::SqliteStore::open(dir.join("typed.db"))
        .await
        .expect("the SQLite file opens");
    let ours = Peer::new("typed_sessions", typed_app(store)).await;

    use tower_sessions_sqlx_store::sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let options = SqliteConnectOptions::new()
        .filename(dir.join("peer.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect_with(options)
        .await
        .expect("the SQLite file opens");
    let store = tower_sessions_sqlx_store::SqliteStore::new(pool);
    store.migrate().await.expect("migrate");
    let theirs = Peer::new(THEIRS, theirs_app(store)).await;

    vec![ours, theirs]
}

// ------------------------------------------------------------------ checks

/// Checks, outside any timed loop, that each peer behaves as the benchmark
/// assumes: reads see the stored profile and set no cookie, writes persist.
async fn sanity_check(db: &str, peer: &Peer) {
    let who = format!("{db}/{}", peer.name);
    let (status, body, set_cookie) = send(&peer.app, request(Case::Read, &peer.cookie)).await;
    assert_eq!(status, 200, "{who}: read status");
    let before = visits_of(&body);
    assert_eq!(
        before,
        Profile::sample().visits,
        "{who}: the stored profile"
    );
    assert!(set_cookie.is_none(), "{who}: a read sets no cookie");

    let (status, body, _) = send(&peer.app, request(Case::Write, &peer.cookie)).await;
    assert_eq!(status, 200, "{who}: write status");
    assert_eq!(visits_of(&body), before + 1, "{who}: write");

    let (_, body, _) = send(&peer.app, request(Case::Read, &peer.cookie)).await;
    assert_eq!(visits_of(&body), before + 1, "{who}: the write persisted");
}

/// The statements of one create, one read and one write of `peer`.
async fn count_statements(db: &str, peer: &Peer) -> [Vec<String>; 3] {
    let who = format!("{db}/{}", peer.name);
    let ((status, _, cookie), create) =
        statements::during(send(&peer.app, request(Case::Create, ""))).await;
    assert_eq!(status, 200, "{who}: create");
    let cookie = cookie.expect("a create sets a cookie");
    let ((status, body, _), read) =
        statements::during(send(&peer.app, request(Case::Read, &cookie))).await;
    assert_eq!(status, 200, "{who}: read");
    let before = visits_of(&body);
    let ((status, body, _), write) =
        statements::during(send(&peer.app, request(Case::Write, &cookie))).await;
    assert_eq!(status, 200, "{who}: write");
    assert_eq!(visits_of(&body), before + 1, "{who}: write");
    for (case, logged) in [("create", &create), ("read", &read), ("write", &write)] {
        // Every case reaches the database: nothing logged means the
        // subscriber missed sqlx's events, not a free request.
        assert!(!logged.is_empty(), "{who}: no statement seen for {case}");
    }
    [create, read, write]
}

/// `n (k tx)`: statements, of which `k` are BEGIN/COMMIT/ROLLBACK.
fn shown(logged: &[String]) -> String {
    let tx = logged
        .iter()
        .filter(|s| {
            let s = s.to_ascii_uppercase();
            s.starts_with("BEGIN") || s.starts_with("COMMIT") || s.starts_with("ROLLBACK")
        })
        .count();
    format!("{} ({tx} tx)", logged.len())
}

// ------------------------------------------------------- WAL per write

/// A larger session for the WAL measurement: a counter and `notes`, an
/// incompressible string of a chosen size.
#[derive(
    typed_sessions::SessionData, Default, serde::Serialize, serde::Deserialize, Clone, Debug,
)]
#[session(namespace = "big")]
struct Big {
    visits: u64,
    notes: String,
}

impl Big {
    /// `size` bytes of hex from a fixed linear congruential sequence, so
    /// that PostgreSQL's TOAST compression cannot shrink it.
    fn of_size(size: usize) -> Self {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut notes = String::with_capacity(size);
        while notes.len() < size {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            notes.push_str(&format!("{:016x}", state >> 1));
        }
        notes.truncate(size);
        Self { visits: 0, notes }
    }
}

async fn ours_big_login(
    mut big: typed_sessions::Session<Big>,
    axum::extract::Path(size): axum::extract::Path<usize>,
) -> &'static str {
    *big = Big::of_size(size);
    "ok"
}

async fn ours_big_write(mut big: typed_sessions::Session<Big>) -> String {
    big.visits += 1;
    big.visits.to_string()
}

async fn theirs_big_login(
    session: tower_sessions_014::Session,
    axum::extract::Path(size): axum::extract::Path<usize>,
) -> &'static str {
    session
        .insert(TS_KEY, Big::of_size(size))
        .await
        .expect("store works");
    "ok"
}

async fn theirs_big_write(session: tower_sessions_014::Session) -> String {
    let mut big: Big = session
        .get(TS_KEY)
        .await
        .expect("store works")
        .expect("the session holds a Big");
    big.visits += 1;
    session.insert(TS_KEY, &big).await.expect("store works");
    big.visits.to_string()
}

/// Writes per measurement.
const WAL_WRITES: u64 = 50;

/// WAL generated at the database by a write that changes one field of a
/// 2 KB and of a 16 KB session, for both libraries, measured with
/// `pg_walinspect` (installed in a schema of this run): all WAL records of
/// the transactions that touched the library's tables (their indexes and
/// TOAST tables included), commit records included, over `WAL_WRITES`
/// writes. Full-page images (written for the first change of a page after a
/// checkpoint) are reported apart.
async fn wal_per_write(url: &str) {
    use typed_sessions::sqlx::Connection as _;
    let [ours_schema, theirs_schema, wal_schema] = pg_schemas();
    let mut conn = typed_sessions::sqlx::PgConnection::connect(url)
        .await
        .expect("PostgreSQL answers");
    let installed: Result<_, _> = async {
        typed_sessions::sqlx::query(typed_sessions::sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {wal_schema}"
        )))
        .execute(&mut conn)
        .await?;
        typed_sessions::sqlx::query(typed_sessions::sqlx::AssertSqlSafe(format!(
            "CREATE EXTENSION IF NOT EXISTS pg_walinspect SCHEMA {wal_schema}"
        )))
        .execute(&mut conn)
        .await?;
        typed_sessions::sqlx::query_scalar::<_, String>(
            "SELECT n.nspname::text FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_walinspect'",
        )
        .fetch_one(&mut conn)
        .await
    }
    .await;
    let ext = match installed {
        Ok(ext) => ext,
        Err(err) => {
            println!("WAL per write skipped: pg_walinspect is not available ({err})\n");
            return;
        }
    };

    let pool = typed_sessions::sqlx::postgres::PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect(url)
        .await
        .expect("PostgreSQL answers");
    let store = typed_sessions::stores::PostgresStore::builder(pool)
        .schema(ours_schema.clone())
        .build()
        .expect("a valid schema name");
    let layer = typed_sessions::SessionLayer::builder(store)
        .cookie_name(COOKIE_NAME)
        .secure(false)
        .build()
        .expect("a valid configuration");
    let ours = Router::new()
        .route("/big/login/{size}", post(ours_big_login))
        .route("/big/write", post(ours_big_write))
        .layer(layer);

    let pool = tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect(url)
        .await
        .expect("PostgreSQL answers");
    let store = tower_sessions_sqlx_store::PostgresStore::new(pool)
        .with_schema_name(theirs_schema.clone())
        .expect("a valid schema name");
    let layer = tower_sessions_014::SessionManagerLayer::new(store)
        .with_name(COOKIE_NAME)
        .with_secure(false);
    let theirs = Router::new()
        .route("/big/login/{size}", post(theirs_big_login))
        .route("/big/write", post(theirs_big_write))
        .layer(layer);

    println!(
        "WAL per write of one field (`visits`) of a larger session, PostgreSQL, \
         {WAL_WRITES} writes each:\n"
    );
    println!(
        "| library | session | WAL records per write | WAL bytes per write, without full-page images | full-page image bytes, all writes |"
    );
    println!("|---|---|---|---|---|");
    for size in [2_000usize, 16_000] {
        for (name, app, schema) in [
            ("typed_sessions", &ours, &ours_schema),
            (THEIRS, &theirs, &theirs_schema),
        ] {
            let login = Request::post(format!("/big/login/{size}"))
                .header(header::HOST, "bench.example")
                .body(Body::empty())
                .expect("a valid request");
            let (status, _, cookie) = send(app, login).await;
            assert_eq!(status, 200, "{name}: big login");
            let cookie = cookie.expect("a login sets a cookie");
            let write = || {
                Request::post("/big/write")
                    .header(header::COOKIE, &cookie)
                    .header(header::HOST, "bench.example")
                    .body(Body::empty())
                    .expect("a valid request")
            };
            // One write before measuring: the first one may differ.
            let (status, body, _) = send(app, write()).await;
            assert_eq!((status.as_u16(), &body[..]), (200, &b"1"[..]), "{name}");

            // The library's relations: tables, indexes, TOAST and its index.
            let filenodes: Vec<i64> = typed_sessions::sqlx::query_scalar(
                "SELECT DISTINCT pg_relation_filenode(x)::int8 FROM ( \
                   SELECT c.oid AS x FROM pg_class c WHERE c.relnamespace = $1::text::regnamespace \
                   UNION SELECT c.reltoastrelid FROM pg_class c \
                     WHERE c.relnamespace = $1::text::regnamespace AND c.reltoastrelid <> 0 \
                   UNION SELECT i.indexrelid FROM pg_index i JOIN pg_class c ON i.indrelid = c.reltoastrelid \
                     WHERE c.relnamespace = $1::text::regnamespace AND c.reltoastrelid <> 0 \
                 ) s WHERE pg_relation_filenode(x) IS NOT NULL",
            )
            .bind(schema)
            .fetch_all(&mut conn)
            .await
            .expect("the catalog answers");
            assert!(!filenodes.is_empty(), "{name}: no relations in {schema}");

            let lsn = "SELECT pg_current_wal_flush_lsn()::text";
            let start: String = typed_sessions::sqlx::query_scalar(lsn)
                .fetch_one(&mut conn)
                .await
                .expect("an LSN");
            for n in 2..WAL_WRITES + 2 {
                let (status, body, _) = send(app, write()).await;
                assert_eq!(status, 200, "{name}: write");
                assert_eq!(body, n.to_string(), "{name}: write {n}");
            }
            let end: String = typed_sessions::sqlx::query_scalar(lsn)
                .fetch_one(&mut conn)
                .await
                .expect("an LSN");
            let sql = format!(
                "WITH r AS (SELECT * FROM {ext}.pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)), \
                 x AS (SELECT DISTINCT r.xid FROM r, unnest($3::int8[]) f \
                       WHERE r.xid <> 0 AND r.block_ref ~ ('/' || f || ' fork ')) \
                 SELECT count(*)::int8, coalesce(sum(record_length), 0)::int8, \
                        coalesce(sum(fpi_length), 0)::int8, \
                        (SELECT count(*) FROM x)::int8 \
                 FROM r WHERE r.xid IN (SELECT xid FROM x)"
            );
            let (records, bytes, fpi, transactions): (i64, i64, i64, i64) =
                typed_sessions::sqlx::query_as(typed_sessions::sqlx::AssertSqlSafe(sql))
                    .bind(&start)
                    .bind(&end)
                    .bind(&filenodes)
                    .fetch_one(&mut conn)
                    .await
                    .expect("pg_walinspect answers");
            // Every write commits at least one transaction on these tables.
            assert!(
                transactions >= WAL_WRITES as i64,
                "{name}: {transactions} transactions seen for {WAL_WRITES} writes"
            );
            let per = |v: i64| v as f64 / WAL_WRITES as f64;
            println!(
                "| {name} | {size} B string + counter | {:.1} | {:.0} | {fpi} |",
                per(records),
                per(bytes - fpi),
            );
        }
    }
    println!();
}

// ----------------------------------------------------------- interleaved

/// This process's CPU time so far in nanoseconds: the sum over its live
/// threads of `/proc/self/task/*/schedstat`'s first field (time on a CPU).
/// SQLite runs in those threads, so for SQLite this is the whole cost of a
/// request; for PostgreSQL it leaves out the server's share.
fn process_cpu_ns() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.expect("a task").path().join("schedstat");
        if let Ok(stat) = std::fs::read_to_string(path) {
            total += stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Wall and CPU time per request with the peers interleaved: `rounds`
/// rounds, each sending `requests` requests of the case through each peer
/// in turn (the order alternates), so that the machine's other load falls
/// on both alike. Prints the medians over the rounds and the median of the
/// rounds' ratios ours / peer.
fn interleaved(rt: &tokio::runtime::Runtime, databases: &[(&str, Vec<Peer>)]) {
    let rounds: usize =
        std::env::var("SQL_BENCH_ROUNDS").map_or(5, |v| v.parse().expect("a number"));
    let requests: u32 =
        std::env::var("SQL_BENCH_REQUESTS").map_or(200, |v| v.parse().expect("a number"));
    println!(
        "Interleaved: {rounds} rounds of {requests} requests per peer, the peers alternating; \
         medians over the rounds, µs per request (CPU: this process only):\n"
    );
    println!(
        "| store | case | ours wall | peer wall | wall ratio | ours CPU | peer CPU | CPU ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (db, peers) in databases {
        assert_eq!(peers.len(), 2, "ours and the peer");
        for case in Case::ALL {
            let mut wall = [Vec::new(), Vec::new()];
            let mut cpu = [Vec::new(), Vec::new()];
            for round in 0..rounds {
                let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
                for i in order {
                    let peer = &peers[i];
                    let cpu_before = process_cpu_ns();
                    let start = std::time::Instant::now();
                    rt.block_on(async {
                        for _ in 0..requests {
                            let (status, body, _) =
                                send(&peer.app, request(case, &peer.cookie)).await;
                            assert_eq!(status, 200, "{db}/{}: {}", peer.name, case.name());
                            black_box(body);
                        }
                    });
                    let elapsed = start.elapsed().as_secs_f64() * 1e6 / f64::from(requests);
                    let spent = (process_cpu_ns() - cpu_before) as f64 / 1e3 / f64::from(requests);
                    wall[i].push(elapsed);
                    cpu[i].push(spent);
                }
            }
            let ratio = |v: &[Vec<f64>; 2]| {
                let mut r: Vec<f64> = v[0].iter().zip(&v[1]).map(|(a, b)| a / b).collect();
                median(&mut r)
            };
            let (wall_ratio, cpu_ratio) = (ratio(&wall), ratio(&cpu));
            println!(
                "| {db} | {} | {:.0} | {:.0} | {wall_ratio:.2} | {:.0} | {:.0} | {cpu_ratio:.2} |",
                case.name(),
                median(&mut wall[0]),
                median(&mut wall[1]),
                median(&mut cpu[0]),
                median(&mut cpu[1]),
            );
        }
    }
    println!();
}

// --------------------------------------------------------------------- main

fn main() {
    statements::install();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = std::env::temp_dir().join(format!("typed-sessions-sqlbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let url = pg_url();
    let mut cleanup = Cleanup {
        pg: None,
        dir: dir.clone(),
    };

    let mut databases: Vec<(&'static str, Vec<Peer>)> = Vec::new();
    match rt.block_on(pg_answers(&url)) {
        Ok(()) => {
            cleanup.pg = Some(url.clone());
            databases.push(("postgres", rt.block_on(postgres_peers(&url))));
        }
        Err(err) => {
            let message = format!(
                "sql bench: PostgreSQL at {url} does not answer ({err}); its half is skipped \
                 (set TYPED_SESSIONS_PG_URL)"
            );
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("\n!!! {message}\n");
        }
    }
    databases.push(("sqlite", rt.block_on(sqlite_peers(&dir))));

    println!(
        "session data: Profile, {} bytes as one serde_json object; pools of {POOL_SIZE}",
        serde_json::to_vec(&Profile::sample())
            .expect("serializes")
            .len()
    );
    for (db, peers) in &databases {
        for peer in peers {
            rt.block_on(sanity_check(db, peer));
        }
    }

    // Statements per request, before any timing.
    println!(
        "\nSQL statements per request, as sqlx logs them (BEGIN/COMMIT/ROLLBACK among them as \"tx\"):\n"
    );
    println!("| store | library | create | read | write |");
    println!("|---|---|---|---|---|");
    let verbose = std::env::var_os("SQL_BENCH_VERBOSE").is_some();
    for (db, peers) in &databases {
        for peer in peers {
            let [create, read, write] = rt.block_on(count_statements(db, peer));
            println!(
                "| {db} | {} | {} | {} | {} |",
                peer.name,
                shown(&create),
                shown(&read),
                shown(&write)
            );
            if verbose {
                eprintln!(
                    "{db}/{}:\n  create {create:?}\n  read {read:?}\n  write {write:?}",
                    peer.name
                );
            }
        }
    }
    println!(
        "\nNot in these counts: transaction control that sqlx runs without logging it. \
         PostgreSQL: the BEGIN of `begin()`/`begin_with()` (its COMMIT is logged). \
         SQLite: both BEGIN and COMMIT.\n"
    );

    if cleanup.pg.is_some() && std::env::var("SQL_BENCH_WAL").as_deref() != Ok("0") {
        rt.block_on(wal_per_write(&url));
    }

    if let Ok(spec) = std::env::var("PROFILE_LOOP") {
        profile_loop(&rt, &databases, &spec);
        return;
    }

    if std::env::var("SQL_BENCH_ROUNDS").as_deref() != Ok("0") {
        interleaved(&rt, &databases);
    }

    // 50 samples (criterion's default is 100): a PostgreSQL write waits for
    // the commit's WAL flush, a few milliseconds, and 100 samples would need
    // 5,050 of them.
    let mut c = Criterion::default().sample_size(50).configure_from_args();
    for (db, peers) in &databases {
        for case in Case::ALL {
            let mut group = c.benchmark_group(format!("sql_{db}_{}", case.name()));
            for peer in peers {
                group.bench_function(peer.name, |b| {
                    b.to_async(&rt).iter(|| async {
                        let (status, body, set_cookie) =
                            send(&peer.app, request(case, &peer.cookie)).await;
                        debug_assert_eq!(status, 200);
                        black_box((body, set_cookie))
                    });
                });
            }
            group.finish();
        }
    }
    c.final_summary();
    drop(databases);
    drop(cleanup);
}

fn profile_loop(rt: &tokio::runtime::Runtime, databases: &[(&str, Vec<Peer>)], spec: &str) {
    let usage = "PROFILE_LOOP=<postgres|sqlite>/<read|write|create>/<peer>:<n>";
    let (what, count) = spec.split_once(':').expect(usage);
    let mut parts = what.split('/');
    let (Some(db), Some(case), Some(name), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("{usage}");
    };
    let case = Case::ALL
        .into_iter()
        .find(|c| c.name() == case)
        .unwrap_or_else(|| panic!("unknown case {case:?}"));
    let count: u64 = count.parse().expect("a request count");
    let peers = &databases
        .iter()
        .find(|(d, _)| *d == db)
        .unwrap_or_else(|| panic!("unknown or skipped database {db:?}"))
        .1;
    let peer = peers
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("unknown peer {name:?}"));
    let start = std::time::Instant::now();
    rt.block_on(async {
        for _ in 0..count {
            let (status, body, _) = send(&peer.app, request(case, &peer.cookie)).await;
            assert_eq!(status, 200);
            black_box(body);
        }
    });
    let elapsed = start.elapsed();
    eprintln!(
        "{count} requests in {:.3} s: {:.0} req/s",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );
}
