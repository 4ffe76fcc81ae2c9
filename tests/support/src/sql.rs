//! SQL databases for tests: a fresh PostgreSQL schema per store, on the
//! server at `TYPED_SESSIONS_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), and a fresh SQLite file
//! per store in a temporary directory. Each is dropped (`DROP SCHEMA …
//! CASCADE`, or the directory removed) when the last clone of its store
//! is dropped.
//!
//! When no PostgreSQL answers, [`postgres_available`] prints a loud
//! `SKIPPED` line and returns `false`, so that a test can return early;
//! with `CI=true` it panics instead: CI must run these tests (`.ci/run`
//! starts a server when none answers).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use typed_sessions::Clock;
use typed_sessions::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use typed_sessions::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use typed_sessions::sqlx::{ConnectOptions as _, Connection as _, Executor as _};
use typed_sessions::stores::{PostgresStore, SqliteStore};

use crate::backed::Backed;

/// The PostgreSQL server the tests use.
pub fn postgres_url() -> String {
    std::env::var("TYPED_SESSIONS_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Whether PostgreSQL answers (asked once per test binary); see the module docs.
pub fn postgres_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let url = postgres_url();
        let probe = url.clone();
        let answer = on_own_runtime(async move {
            let options: PgConnectOptions = probe.parse().map_err(|e| format!("{e}"))?;
            let connect = options.connect();
            match tokio::time::timeout(Duration::from_secs(5), connect).await {
                Ok(Ok(conn)) => conn.close().await.map_err(|e| format!("{e}")),
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => Err("no answer within 5 s".to_owned()),
            }
        });
        match answer {
            Ok(()) => true,
            Err(err) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true and PostgreSQL at {url} does not answer: {err}")
            }
            Err(err) => {
                eprintln!(
                    "\n*** SKIPPED: PostgreSQL at {url} does not answer ({err}); \
                     set TYPED_SESSIONS_PG_URL or start one (`.ci/run` does) ***\n"
                );
                false
            }
        }
    })
}

/// A name no other test run uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `work` to completion on a runtime of its own, on a thread of its
/// own: usable from synchronous code and from inside another runtime.
pub fn on_own_runtime<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(work)
    })
    .join()
    .expect("the helper thread did not panic")
}

/// A schema that is dropped with everything in it when this is dropped.
#[derive(Debug)]
pub struct PgSchema {
    pub name: String,
}

impl PgSchema {
    /// A fresh, empty schema name (the store's `migrate` creates it).
    pub fn fresh() -> Self {
        Self {
            name: unique("ts_test"),
        }
    }

    /// Runs one statement on a connection of its own.
    pub fn execute(sql: String) {
        let url = postgres_url();
        on_own_runtime(async move {
            let mut conn = url
                .parse::<PgConnectOptions>()
                .unwrap()
                .connect()
                .await
                .expect("PostgreSQL answers");
            conn.execute(typed_sessions::sqlx::AssertSqlSafe(sql))
                .await
                .expect("the statement runs");
            let _ = conn.close().await;
        });
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        Self::execute(format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
    }
}

/// A `PostgresStore` in a fresh schema, migrated, on a pool of `max`
/// connections made in the calling runtime (connections open on first use),
/// and the schema's name.
pub fn postgres_store_with(
    clock: Option<Arc<dyn Clock>>,
    max: u32,
    configure: impl Fn(
        typed_sessions::stores::PostgresStoreBuilder,
    ) -> typed_sessions::stores::PostgresStoreBuilder
    + Send
    + Sync
    + 'static,
) -> (Backed<PostgresStore>, String) {
    let schema = PgSchema::fresh();
    let url = postgres_url();
    let name = schema.name.clone();
    let migrate_name = name.clone();
    let migrate_url = url.clone();
    let configure = Arc::new(configure);
    let migrate_configure = Arc::clone(&configure);
    on_own_runtime(async move {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&migrate_url)
            .await
            .expect("PostgreSQL answers");
        let store = migrate_configure(PostgresStore::builder(pool.clone()).schema(migrate_name))
            .build()
            .expect("valid names");
        store.migrate().await.expect("migrate");
        pool.close().await;
    });
    // As PostgresStore's docs advise: the server gives up on a lock or a
    // statement before the store's bound.
    let options = url
        .parse::<PgConnectOptions>()
        .expect("a valid URL")
        .options([("lock_timeout", "4s"), ("statement_timeout", "4s")]);
    let pool = PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options);
    let mut builder = configure(PostgresStore::builder(pool).schema(name.clone()));
    if let Some(clock) = clock {
        builder = builder.clock(clock);
    }
    (
        Backed::new(builder.build().expect("valid names"), schema),
        name,
    )
}

/// [`postgres_store_with`] with the defaults and 8 connections.
pub fn postgres_store(clock: Option<Arc<dyn Clock>>) -> Backed<PostgresStore> {
    postgres_store_with(clock, 8, |builder| builder).0
}

/// A temporary directory, removed when this is dropped.
#[derive(Debug)]
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(unique("typed-sessions-sqlite"));
        std::fs::create_dir_all(&path).expect("a temporary directory");
        Self { path }
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The connection options `SqliteStore::open` uses, for `path`.
pub fn sqlite_options(path: &std::path::Path, busy: Duration) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(busy)
}

/// A `SqliteStore` on a fresh file, migrated, its pool made in the calling
/// runtime (connections open on first use).
pub fn sqlite_store(clock: Option<Arc<dyn Clock>>) -> Backed<SqliteStore> {
    let dir = TempDir::new();
    let path = dir.path.join("sessions.db");
    let migrate_path = path.clone();
    on_own_runtime(async move {
        let store = SqliteStore::open(&migrate_path).await.expect("open");
        store.pool().close().await;
    });
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_lazy_with(sqlite_options(&path, Duration::from_secs(5)));
    let mut builder = SqliteStore::builder();
    if let Some(clock) = clock {
        builder = builder.clock(clock);
    }
    Backed::new(builder.build(pool).expect("valid names"), dir)
}

/// A private PostgreSQL cluster for tests that stop and restart the
/// server: `initdb` into a temporary directory, `pg_ctl` on a free loopback
/// port, trust authentication for user `postgres`. Stopped and removed on
/// drop. Needs Debian's `postgresql` package (`/usr/lib/postgresql/*/bin`);
/// without it [`PgCluster::start`] prints a loud `SKIPPED` line and returns
/// `None`, and with `CI=true` it panics (`.ci/run` installs the package
/// when it starts a cluster of its own; this machine kind has it).
#[derive(Debug)]
pub struct PgCluster {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
}

impl PgCluster {
    /// A fresh, running cluster.
    pub fn start() -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            let message = "PostgreSQL's server binaries (initdb, pg_ctl) are not installed \
                           (Debian: apt-get install postgresql)";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and {message}"
            );
            eprintln!("\n*** SKIPPED: {message} ***\n");
            return None;
        };
        let dir = TempDir::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self { dir, bin, port };
        if running_as_root() {
            run(std::process::Command::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(&cluster.dir.path));
        }
        run(cluster
            .command("initdb")
            .arg("-D")
            .arg(cluster.data())
            .args(["-U", "postgres", "--auth=trust", "--no-sync"]));
        cluster.start_again();
        Some(cluster)
    }

    /// The URL of database `postgres` as user `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn kill(&self) {
        run(self.command("pg_ctl").arg("-D").arg(self.data()).args([
            "-m",
            "immediate",
            "-w",
            "stop",
        ]));
    }

    /// Starts the stopped server again on the same port, waiting until it
    /// accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path.display()
        );
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path.join("log"))
            .args(["-w", "-o", &options, "start"]));
    }

    fn data(&self) -> PathBuf {
        self.dir.path.join("data")
    }

    fn command(&self, tool: &str) -> std::process::Command {
        let path = self.bin.join(tool);
        if running_as_root() {
            // initdb and postgres refuse to run as root.
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            std::process::Command::new(path)
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// Runs `command`, panicking with its output when it fails.
fn run(command: &mut std::process::Command) {
    let out = command.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
