//! `SqliteStore` (feature `sqlite`).

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection};

use super::{
    DEFAULT_TABLE, DEFAULT_TIMEOUT, EXPIRY_BATCH, Plan, Row, Tables, from_i64, key_taken,
    namespace_meta, plan, record, sqlite_transient, to_i64,
};
use crate::clock::{Clock, SharedClock};

/// Field rows per upsert statement (3 parameters each, far under SQLite's
/// limit of 32 766).
const FIELD_ROWS: usize = 200;
use crate::error::ConfigError;
use crate::store::{
    Changeset, Record, SaveMode, SaveOutcome, SessionKey, SessionStore, StoreError,
};

/// Sessions in an SQLite database file: sessions that survive a restart of
/// a single-binary app, with no server to run. Available with the `sqlite`
/// feature (SQLite is compiled in).
///
/// ```no_run
/// use typed_sessions::SessionLayer;
/// use typed_sessions::stores::SqliteStore;
///
/// # async fn app() -> Result<(), typed_sessions::stores::StoreError> {
/// let store = SqliteStore::open("sessions.db").await?;
/// let layer = SessionLayer::new(store);
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
///
/// [`open`](Self::open) creates the file (readable by its owner only) and
/// the tables when missing and
/// sets the connections up for concurrent use: WAL journal (reads never
/// wait for a write; saves go through a connection of their own, so saves
/// queued for the write lock never hold up reads), `synchronous = NORMAL` (a committed save survives
/// an app crash; an OS crash or power loss can lose the last moments), and
/// a busy timeout equal to the command timeout. With a pool of your own
/// ([`new`](Self::new)), set those on its `SqliteConnectOptions` and call
/// [`migrate`](Self::migrate).
///
/// The tables, the key (the SHA-256 of the id, never the id) and the
/// row-per-field layout are the same as
#[cfg_attr(
    feature = "postgres",
    doc = "[`PostgresStore`](crate::store::PostgresStore)'s."
)]
#[cfg_attr(not(feature = "postgres"), doc = "`PostgresStore`'s.")]
/// Each save is one `BEGIN IMMEDIATE` transaction: it takes the database's
/// write lock first, then reads the record, checks the guards and writes
/// only the changed fields, so saves never deadlock and never lose
/// updates. Expired sessions never load; [`delete_expired`](Self::delete_expired)
/// removes them in batches.
///
/// A database locked longer than the command timeout (default 5 s) is
/// [`StoreError::Unavailable`]: the layer answers 503 with `Retry-After`.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("table", &self.inner.tables.sessions)
            .field("command_timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Inner {
    pool: SqlitePool,
    /// One connection for saves and deletes, when `open` made the pools:
    /// SQLite has one writer at a time anyway, and saves waiting for the
    /// write lock then never take the connections reads need.
    writer: Option<SqlitePool>,
    clock: SharedClock,
    timeout: Duration,
    tables: Tables,
    sql: Statements,
}

/// Options for a [`SqliteStore`]: table name, clock, timeout.
///
/// ```no_run
/// use std::time::Duration;
/// use typed_sessions::stores::SqliteStore;
///
/// # async fn app() -> Result<(), typed_sessions::stores::StoreError> {
/// let store = SqliteStore::builder()
///     .table("web_sessions")
///     .command_timeout(Duration::from_secs(2))
///     .open("data/sessions.db")
///     .await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use]
pub struct SqliteStoreBuilder {
    table: String,
    clock: SharedClock,
    timeout: Duration,
}

impl SqliteStoreBuilder {
    /// The base name of the tables (default `typed_sessions`); the other
    /// two add `_namespaces` and `_fields`.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The clock that decides expiry (default: the system clock); pass the
    /// layer's clock when the layer has one.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = SharedClock(clock);
        self
    }

    /// The bound on each store operation, waiting for the write lock
    /// included (default 5 s). Past it the operation fails as
    /// [`StoreError::Unavailable`].
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A store on the database file at `path`: creates the file and the
    /// tables when missing, with WAL, `synchronous = NORMAL` and a busy
    /// timeout equal to the command timeout.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the file cannot be opened or created,
    /// or the options are invalid (the message says which).
    pub async fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        if self.timeout.is_zero() {
            return Err(StoreError::backend(ConfigError::ZeroDuration(
                "command_timeout",
            )));
        }
        let shown = path.as_ref().display().to_string();
        if shown.is_empty() || shown == ":memory:" || shown.starts_with("file::memory:") {
            return Err(StoreError::backend(format!(
                "`{shown}` is not a file: SQLite gives every pooled connection its own \
                 in-memory database, so sessions would come and go; give a file path \
                 (for tests, one in a temporary directory), or use MemoryStore"
            )));
        }
        create_private(path.as_ref());
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(self.timeout);
        let cannot = |err: sqlx::Error| {
            StoreError::backend(format!("cannot open the SQLite database {shown}: {err}"))
        };
        let writer = connect(&options, 1, self.timeout).await.map_err(cannot)?;
        let pool = connect(&options, 4, self.timeout).await.map_err(cannot)?;
        let mut store = self.build(pool).map_err(StoreError::backend)?;
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            // Always: nobody else holds the store yet.
            inner.writer = Some(writer);
        }
        store.migrate().await?;
        Ok(store)
    }

    /// A store on `pool` (call [`migrate`](SqliteStore::migrate) once);
    /// the pool must open a file, see [`SqliteStore::new`].
    ///
    /// # Errors
    /// [`ConfigError::InvalidSqlName`] when the table name is not a plain
    /// identifier, [`ConfigError::ZeroDuration`] for a zero timeout.
    pub fn build(self, pool: SqlitePool) -> Result<SqliteStore, ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError::ZeroDuration("command_timeout"));
        }
        let tables = Tables::new(None, &self.table)?;
        let sql = Statements::new(&tables);
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                pool,
                writer: None,
                clock: self.clock,
                timeout: self.timeout,
                tables,
                sql,
            }),
        })
    }
}

/// A pool of `max` connections to `options`. Opening a connection switches
/// the file to WAL, and SQLite can refuse that with `SQLITE_BUSY` at once,
/// without waiting out the busy timeout, while another process or pool
/// opens the same new file: such a refusal is retried until `timeout`.
async fn connect(
    options: &SqliteConnectOptions,
    max: u32,
    timeout: Duration,
) -> Result<SqlitePool, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        let result = SqlitePoolOptions::new()
            .max_connections(max)
            .acquire_timeout(timeout)
            .connect_with(options.clone())
            .await;
        match result {
            Err(sqlx::Error::Database(err))
                if err.code().is_some_and(|code| sqlite_transient(&code))
                    && tokio::time::Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Creates the database file readable and writable by its owner only
/// (`0600` on Unix) when it does not exist; SQLite gives its `-wal` and
/// `-shm` files the same permissions. Anything else is left to the
/// connection, which reports it.
fn create_private(path: &Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let _ = options.open(path);
}

/// The statements, with the table names spliced in once.
#[derive(Debug)]
struct Statements {
    load: Arc<str>,
    read_counter: Arc<str>,
    read_namespaces: Arc<str>,
    insert_session: Arc<str>,
    update_session: Arc<str>,
    rename: [Arc<str>; 3],
    delete: [Arc<str>; 3],
    delete_expired_one: Arc<str>,
    clear_namespace_fields: Arc<str>,
    remove_namespace: Arc<str>,
    put_namespace: Arc<str>,
    touch: Arc<str>,
    exists: Arc<str>,
    sweep: [Arc<str>; 3],
}

impl Statements {
    fn new(t: &Tables) -> Self {
        let (s, n, f) = (&t.sessions, &t.namespaces, &t.fields);
        let each = |template: &str| -> [Arc<str>; 3] {
            [f, n, s].map(|table| template.replace("{t}", table).into())
        };
        let expired =
            format!("SELECT key FROM {s} WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2");
        Self {
            load: format!(
                "SELECT s.created_at, s.last_seen, s.expires_at, n.ns, n.version, n.revision, f.field, f.value \
                 FROM {s} s LEFT JOIN {n} n ON n.key = s.key \
                 LEFT JOIN {f} f ON f.key = n.key AND f.ns = n.ns \
                 WHERE s.key = ?1 AND s.expires_at > ?2"
            )
            .into(),
            read_counter: format!("SELECT counter FROM {s} WHERE key = ?1 AND expires_at > ?2").into(),
            read_namespaces: format!("SELECT ns, version, revision FROM {n} WHERE key = ?1").into(),
            insert_session: format!(
                "INSERT INTO {s} (key, created_at, last_seen, expires_at, counter) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (key) DO NOTHING"
            )
            .into(),
            update_session: format!(
                "UPDATE {s} SET counter = ?2, last_seen = ?3, expires_at = ?4 WHERE key = ?1"
            )
            .into(),
            rename: each("UPDATE {t} SET key = ?2 WHERE key = ?1"),
            delete: each("DELETE FROM {t} WHERE key = ?1"),
            delete_expired_one: format!("DELETE FROM {s} WHERE key = ?1 AND expires_at <= ?2").into(),
            clear_namespace_fields: format!("DELETE FROM {f} WHERE key = ?1 AND ns = ?2").into(),
            remove_namespace: format!("DELETE FROM {n} WHERE key = ?1 AND ns = ?2").into(),
            put_namespace: format!(
                "INSERT INTO {n} (key, ns, version, revision) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (key, ns) DO UPDATE SET version = excluded.version, revision = excluded.revision"
            )
            .into(),
            touch: format!(
                "UPDATE {s} SET last_seen = ?2, expires_at = ?3 WHERE key = ?1 AND expires_at > ?4"
            )
            .into(),
            exists: format!("SELECT EXISTS (SELECT 1 FROM {s} WHERE key = ?1 AND expires_at > ?2)")
                .into(),
            sweep: each(&format!("DELETE FROM {{t}} WHERE key IN ({expired})")),
        }
    }
}

fn q(sql: &Arc<str>) -> sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(sqlx::AssertSqlSafe(Arc::clone(sql)))
}

impl SqliteStore {
    /// A store on the database file at `path`, with the default options;
    /// see [`SqliteStoreBuilder::open`].
    ///
    /// # Errors
    /// When the file cannot be opened or created, or the tables cannot be
    /// made.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::builder().open(path).await
    }

    /// A store on `pool` (a `sqlx` 0.9 pool, `typed_sessions::sqlx`) with
    /// the default options. Run [`migrate`](Self::migrate) once before use.
    /// The pool must open a database file: an in-memory database
    /// (`sqlite::memory:`) is a different, empty database on every pooled
    /// connection.
    #[allow(
        clippy::missing_panics_doc,
        reason = "the default names are checked by a unit test"
    )]
    pub fn new(pool: SqlitePool) -> Self {
        Self::builder()
            .build(pool)
            .expect("the default names are valid")
    }

    /// Options: table name, clock, timeout.
    pub fn builder() -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            table: DEFAULT_TABLE.to_owned(),
            clock: SharedClock::system(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    /// Creates the tables and the index when they are missing (and
    /// upgrades them when an older version of this crate made them), in one
    /// `BEGIN IMMEDIATE` transaction: idempotent, and safe from several
    /// processes at once.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let t = &self.inner.tables;
        let statements = [
            format!(
                "CREATE TABLE IF NOT EXISTS {} (key BLOB PRIMARY KEY, created_at INTEGER NOT NULL, \
                 last_seen INTEGER NOT NULL, expires_at INTEGER NOT NULL, counter INTEGER NOT NULL)",
                t.sessions
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (key BLOB NOT NULL, ns TEXT NOT NULL, \
                 version INTEGER NOT NULL, revision INTEGER NOT NULL, PRIMARY KEY (key, ns)) WITHOUT ROWID",
                t.namespaces
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (key BLOB NOT NULL, ns TEXT NOT NULL, \
                 field TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (key, ns, field)) WITHOUT ROWID",
                t.fields
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} (expires_at)",
                t.deadline_index, t.sessions
            ),
        ];
        self.bounded(async {
            let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
            for statement in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })
        .await
    }

    /// Removes expired sessions, at most 1 000 per transaction, until none
    /// is left; returns how many. Each batch holds the write lock only for
    /// its own short transaction.
    ///
    /// # Errors
    /// When the database fails; batches already done stay done.
    pub async fn delete_expired(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let now = to_i64(self.inner.clock.now_ms());
            let removed = self
                .bounded(async {
                    let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
                    let mut removed = 0;
                    for statement in &self.inner.sql.sweep {
                        removed = q(statement)
                            .bind(now)
                            .bind(EXPIRY_BATCH)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    }
                    tx.commit().await?;
                    Ok(removed)
                })
                .await?;
            total += removed;
            if removed < EXPIRY_BATCH.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    /// The pool for saves, deletes and migrations.
    fn writer(&self) -> &SqlitePool {
        self.inner.writer.as_ref().unwrap_or(&self.inner.pool)
    }

    /// Runs `work` within the command timeout.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        super::bounded(self.inner.timeout, sqlite_transient, work).await
    }

    #[allow(clippy::too_many_lines, reason = "the three save modes in one place")]
    async fn save_in(
        &self,
        conn: &mut SqliteConnection,
        key: &SessionKey,
        changes: &Changeset,
        now: i64,
    ) -> Result<Result<SaveOutcome, StoreError>, sqlx::Error> {
        let sql = &self.inner.sql;
        let source = match changes.mode {
            SaveMode::Create => None,
            SaveMode::Update => Some(*key),
            SaveMode::Rename { from } => Some(from),
        };
        let (counter, stored) = match &source {
            None => (0, Vec::new()),
            Some(source) => {
                let counter: Option<i64> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(Arc::clone(&sql.read_counter)))
                        .bind(&source.as_bytes()[..])
                        .bind(now)
                        .fetch_optional(&mut *conn)
                        .await?;
                let Some(counter) = counter else {
                    return Ok(Ok(SaveOutcome::Missing));
                };
                let rows: Vec<(String, i64, i64)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(Arc::clone(&sql.read_namespaces)))
                        .bind(&source.as_bytes()[..])
                        .fetch_all(&mut *conn)
                        .await?;
                let mut stored = Vec::with_capacity(rows.len());
                for (ns, version, revision) in rows {
                    match namespace_meta(ns, version, revision) {
                        Ok(meta) => stored.push(meta),
                        Err(err) => return Ok(Err(err)),
                    }
                }
                (from_i64(counter), stored)
            }
        };
        let plan = match plan(&stored, counter, changes) {
            Ok(plan) => plan,
            Err(namespace) => return Ok(Ok(SaveOutcome::Conflict { namespace })),
        };
        if plan.empty {
            if let Some(source) = source {
                for statement in &sql.delete {
                    q(statement)
                        .bind(&source.as_bytes()[..])
                        .execute(&mut *conn)
                        .await?;
                }
            }
            return Ok(Ok(SaveOutcome::Deleted));
        }
        let key_bytes = &key.as_bytes()[..];
        match changes.mode {
            SaveMode::Create => {
                let insert = || {
                    q(&sql.insert_session)
                        .bind(key_bytes)
                        .bind(to_i64(changes.created_at_ms))
                        .bind(to_i64(changes.last_seen_ms))
                        .bind(to_i64(changes.expires_at_ms))
                        .bind(to_i64(plan.counter))
                };
                if insert().execute(&mut *conn).await?.rows_affected() == 0 {
                    // Taken: by an expired record (remove it, then insert),
                    // or by a live one (an error).
                    let expired = q(&sql.delete_expired_one)
                        .bind(key_bytes)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                    if expired == 0 {
                        return Ok(Err(key_taken()));
                    }
                    for statement in &sql.delete[..2] {
                        q(statement).bind(key_bytes).execute(&mut *conn).await?;
                    }
                    insert().execute(&mut *conn).await?;
                }
            }
            SaveMode::Update | SaveMode::Rename { .. } => {
                if let SaveMode::Rename { from } = changes.mode {
                    for statement in &sql.rename {
                        q(statement)
                            .bind(&from.as_bytes()[..])
                            .bind(key_bytes)
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                q(&sql.update_session)
                    .bind(key_bytes)
                    .bind(to_i64(plan.counter))
                    .bind(to_i64(changes.last_seen_ms))
                    .bind(to_i64(changes.expires_at_ms))
                    .execute(&mut *conn)
                    .await?;
            }
        }
        let new_record = matches!(changes.mode, SaveMode::Create);
        self.write_namespaces(conn, key_bytes, &plan, new_record)
            .await?;
        Ok(Ok(SaveOutcome::Saved {
            revisions: plan.revisions,
        }))
    }

    /// The namespace and field rows of a save: removed namespaces go, a
    /// replaced namespace loses its fields first (not on a new record,
    /// which has none), then one statement per up to 200 field rows.
    async fn write_namespaces(
        &self,
        conn: &mut SqliteConnection,
        key: &[u8],
        plan: &Plan<'_>,
        new_record: bool,
    ) -> Result<(), sqlx::Error> {
        let sql = &self.inner.sql;
        let cleared: &[&str] = if new_record { &[] } else { &plan.replaced };
        for ns in plan.removed.iter().chain(cleared) {
            q(&sql.clear_namespace_fields)
                .bind(key)
                .bind(*ns)
                .execute(&mut *conn)
                .await?;
        }
        for ns in &plan.removed {
            q(&sql.remove_namespace)
                .bind(key)
                .bind(*ns)
                .execute(&mut *conn)
                .await?;
        }
        for &(ns, version, revision) in &plan.namespaces {
            q(&sql.put_namespace)
                .bind(key)
                .bind(ns)
                .bind(version)
                .bind(revision)
                .execute(&mut *conn)
                .await?;
        }
        for rows in plan.fields.chunks(FIELD_ROWS) {
            let statement = self.put_fields(rows.len());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement)).bind(key);
            for &(ns, field, value) in rows {
                query = query.bind(ns).bind(field).bind(value);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// An upsert of `rows` field rows: `?1` is the key, then three
    /// parameters per row.
    fn put_fields(&self, rows: usize) -> String {
        let values: Vec<String> = (0..rows)
            .map(|row| {
                let first = 2 + 3 * row;
                format!("(?1, ?{}, ?{}, ?{})", first, first + 1, first + 2)
            })
            .collect();
        let values = values.join(", ");
        format!(
            "INSERT INTO {} (key, ns, field, value) VALUES {values} \
             ON CONFLICT (key, ns, field) DO UPDATE SET value = excluded.value",
            self.inner.tables.fields
        )
    }
}

impl SessionStore for SqliteStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>, StoreError> {
        let now = to_i64(self.inner.clock.now_ms());
        let rows: Vec<Row> = self
            .bounded(
                sqlx::query_as(sqlx::AssertSqlSafe(Arc::clone(&self.inner.sql.load)))
                    .bind(&key.as_bytes()[..])
                    .bind(now)
                    .fetch_all(&self.inner.pool),
            )
            .await?;
        record(rows)
    }

    async fn save(&self, key: &SessionKey, changes: &Changeset) -> Result<SaveOutcome, StoreError> {
        self.bounded(async {
            let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
            // Now, once the write lock is held: a record that expired while
            // this save waited is not extended.
            let now = to_i64(self.inner.clock.now_ms());
            let outcome = self.save_in(&mut tx, key, changes, now).await?;
            if matches!(
                outcome,
                Ok(SaveOutcome::Saved { .. } | SaveOutcome::Deleted)
            ) {
                tx.commit().await?;
            }
            Ok(outcome)
        })
        .await?
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.bounded(async {
            let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
            let now = to_i64(self.inner.clock.now_ms());
            let live: bool =
                sqlx::query_scalar(sqlx::AssertSqlSafe(Arc::clone(&self.inner.sql.exists)))
                    .bind(&key.as_bytes()[..])
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
            for statement in &self.inner.sql.delete {
                q(statement)
                    .bind(&key.as_bytes()[..])
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(live)
        })
        .await
    }

    async fn touch(
        &self,
        key: &SessionKey,
        last_seen_ms: u64,
        expires_at_ms: u64,
    ) -> Result<bool, StoreError> {
        let now = to_i64(self.inner.clock.now_ms());
        let touched = self
            .bounded(
                q(&self.inner.sql.touch)
                    .bind(&key.as_bytes()[..])
                    .bind(to_i64(last_seen_ms))
                    .bind(to_i64(expires_at_ms))
                    .bind(now)
                    .execute(self.writer()),
            )
            .await?;
        Ok(touched.rows_affected() > 0)
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let now = to_i64(self.inner.clock.now_ms());
        self.bounded(
            sqlx::query_scalar(sqlx::AssertSqlSafe(Arc::clone(&self.inner.sql.exists)))
                .bind(&key.as_bytes()[..])
                .bind(now)
                .fetch_one(&self.inner.pool),
        )
        .await
    }
}
