//! `PostgresStore` (feature `postgres`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection as _, PgConnection, PgPool};

use super::{
    Columns, DEFAULT_TABLE, DEFAULT_TIMEOUT, EXPIRY_BATCH, Row, SAVE_ATTEMPTS, Tables, classify,
    from_i64, key_taken, namespace_meta, plan, postgres_transient, record, timed_out, to_i64,
    too_busy,
};

/// The counter and the namespaces (name, version, revision) of a record.
type Meta = (u64, Vec<(String, u32, u64)>);

/// A row of the meta query: counter, namespace, version, revision.
type MetaRow = (i64, Option<String>, Option<i64>, Option<i64>);

/// Optimistic save attempts before a save locks the record's row.
const OPTIMISTIC_ATTEMPTS: usize = 2;

/// The isolation every transaction of the store runs at.
const BEGIN_READ_COMMITTED: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// A serialization failure or deadlock: the statement lost a race.
fn serialization_failure(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}
use crate::clock::{Clock, SharedClock};
use crate::error::ConfigError;
use crate::store::{
    Changeset, Record, SaveMode, SaveOutcome, SessionKey, SessionStore, StoreError,
};

/// Sessions in PostgreSQL, on the `sqlx` pool the application already has.
/// Available with the `postgres` feature.
///
/// The pool is a **`sqlx` 0.9** `PgPool` (re-exported as
/// `typed_sessions::sqlx`): an app on `sqlx` 0.8 (as
/// `tower-sessions-sqlx-store` is) upgrades to 0.9, or builds this pool with
/// `typed_sessions::sqlx` beside its own.
///
/// Each save writes only the fields that changed, checks every namespace's
/// compare-and-swap guard, and never re-creates a session deleted
/// meanwhile. A read is one statement; a save that updates a session is
/// two (a read, then one statement that writes only if nothing else wrote
/// since); a new session is one; a sliding refresh is one `UPDATE`.
///
/// # Tables
///
/// Three tables named after a base name (default `typed_sessions`, in the
/// connection's `search_path` unless [`schema`](PostgresStoreBuilder::schema)
/// names one):
///
/// | table | primary key | other columns |
/// |---|---|---|
/// | `typed_sessions` | `key bytea` | `created_at`, `last_seen`, `expires_at` (`bigint`, ms since the Unix epoch), `counter bigint` |
/// | `typed_sessions_namespaces` | `key, ns` | `version`, `revision` (`bigint`) |
/// | `typed_sessions_fields` | `key, ns, field` | `value bytea` (the codec's bytes) |
///
/// `key` is the SHA-256 of the session id (the id itself is never stored).
/// One row per field is what keeps writes small: changing one field of a
/// 16 KB session writes that field's row and two small rows, whatever the
/// session's size. [`migrate`](Self::migrate) creates the tables.
///
/// # Expiry
///
/// Every read has `expires_at > now` in its `WHERE`, so an expired session
/// never loads, even before it is removed. Removing expired rows is
/// [`delete_expired`](Self::delete_expired), in batches; schedule it:
///
/// ```no_run
/// use std::time::Duration;
/// use typed_sessions::stores::PostgresStore;
///
/// # async fn app(pool: typed_sessions::sqlx::PgPool) -> Result<(), typed_sessions::stores::StoreError> {
/// let store = PostgresStore::new(pool);
/// store.migrate().await?;
/// let sweeper = store.clone();
/// tokio::spawn(async move {
///     let mut every = tokio::time::interval(Duration::from_secs(300));
///     loop {
///         every.tick().await;
///         if let Err(err) = sweeper.delete_expired().await {
///             // The database's own message is the error's source.
///             let cause = std::error::Error::source(&err).map(ToString::to_string);
///             tracing::warn!(%err, ?cause, "removing expired sessions failed");
///         }
///     }
/// });
/// # Ok(())
/// # }
/// ```
///
/// # Failures
///
/// Every operation is bounded by
/// [`command_timeout`](PostgresStoreBuilder::command_timeout) (default
/// 5 s). An unreachable, restarting or read-only server, a full pool or the
/// timeout is [`StoreError::Unavailable`] (the layer answers 503 with
/// `Retry-After`); when the server is back, the pool's next connection
/// serves the next request. Any other database error is
/// [`StoreError::Backend`] (500).
///
/// # Pool settings
///
/// The timeout ends the request, not the statement: PostgreSQL goes on
/// waiting, holding the pooled connection, for a row lock that something
/// else keeps (an open `psql` transaction, a stuck client). Give the pool's
/// connections a `lock_timeout` and a `statement_timeout` a little under
/// the command timeout, so that the server gives up too and one stuck
/// session cannot use up the pool:
///
/// ```no_run
/// use typed_sessions::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
///
/// # async fn app() -> Result<(), Box<dyn std::error::Error>> {
/// let options: PgConnectOptions = "postgres://app@db/app".parse()?;
/// let options = options.options([("lock_timeout", "4s"), ("statement_timeout", "4s")]);
/// let pool = PgPoolOptions::new().connect_with(options).await?;
/// let store = typed_sessions::stores::PostgresStore::new(pool);
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
///
/// The store runs its transactions at `READ COMMITTED` whatever the pool's
/// default; its single statements retry when a stricter default isolation
/// reports a concurrent write as a serialization failure.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.inner.tables.sessions)
            .field("command_timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    clock: SharedClock,
    timeout: Duration,
    tables: Tables,
    sql: Statements,
}

/// Options for a [`PostgresStore`]: schema, table name, clock, timeout.
///
/// ```no_run
/// use std::time::Duration;
/// use typed_sessions::stores::PostgresStore;
///
/// # async fn app(pool: typed_sessions::sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::builder(pool)
///     .schema("web")
///     .table("sessions")
///     .command_timeout(Duration::from_secs(2))
///     .build()?;
/// store.migrate().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use]
pub struct PostgresStoreBuilder {
    pool: PgPool,
    schema: Option<String>,
    table: String,
    clock: SharedClock,
    timeout: Duration,
}

impl PostgresStoreBuilder {
    /// The schema of the tables (default: none, so the connection's
    /// `search_path` decides). [`migrate`](PostgresStore::migrate) creates
    /// it when missing.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

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

    /// The bound on each store operation, waiting for a pooled connection
    /// included (default 5 s). Past it the operation fails as
    /// [`StoreError::Unavailable`].
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The store. Names are quoted in every statement, so their case
    /// matters (`MyApp` is `"MyApp"` in `psql`).
    ///
    /// # Errors
    /// [`ConfigError::InvalidSqlName`] when the schema or table is not a
    /// plain identifier (ASCII letters, digits, `_`; not starting with a
    /// digit; the table at most 52 bytes, so that its derived names fit
    /// PostgreSQL's 63; the schema not `pg_…` or `information_schema`);
    /// [`ConfigError::ZeroDuration`] for a zero command timeout.
    pub fn build(self) -> Result<PostgresStore, ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError::ZeroDuration("command_timeout"));
        }
        let tables = Tables::new(self.schema.as_deref(), &self.table)?;
        let sql = Statements::new(&tables);
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool: self.pool,
                clock: self.clock,
                timeout: self.timeout,
                tables,
                sql,
            }),
        })
    }
}

/// The statements, with the table names spliced in once.
#[derive(Debug)]
struct Statements {
    load: Arc<str>,
    read_meta: Arc<str>,
    lock: Arc<str>,
    create: Arc<str>,
    update: Arc<str>,
    delete_live: Arc<str>,
    delete_session: Arc<str>,
    delete_namespaces: Arc<str>,
    delete_fields: Arc<str>,
    delete_expired_one: Arc<str>,
    move_session: Arc<str>,
    move_namespaces: Arc<str>,
    move_fields: Arc<str>,
    touch: Arc<str>,
    exists: Arc<str>,
    sweep: Arc<str>,
    sweep_namespaces: Arc<str>,
    sweep_fields: Arc<str>,
    exists_all: Arc<str>,
}

impl Statements {
    #[allow(clippy::too_many_lines, reason = "one statement after the other")]
    fn new(t: &Tables) -> Self {
        let (s, n, f) = (&t.sessions, &t.namespaces, &t.fields);
        // The namespace and field rows of a save, written from the row the
        // first part returns (none: nothing is written). $7 removed
        // namespaces; $8..$10 namespace rows; $11..$13 field rows; $14
        // replaced namespaces, whose fields not in $11/$12 go.
        let writes = |from: &str| {
            format!(
                "del_f AS (DELETE FROM {f} USING {from} w WHERE {f}.key = w.key AND ({f}.ns = ANY($7::text[]) \
                   OR ({f}.ns = ANY($14::text[]) AND NOT EXISTS (SELECT 1 FROM UNNEST($11::text[], $12::text[]) AS k(ns, field) \
                   WHERE k.ns = {f}.ns AND k.field = {f}.field)))), \
                 del_n AS (DELETE FROM {n} USING {from} w WHERE {n}.key = w.key AND {n}.ns = ANY($7::text[])), \
                 put_n AS (INSERT INTO {n} (key, ns, version, revision) \
                   SELECT w.key, r.ns, r.version, r.revision FROM {from} w, UNNEST($8::text[], $9::int8[], $10::int8[]) AS r(ns, version, revision) \
                   ON CONFLICT (key, ns) DO UPDATE SET version = EXCLUDED.version, revision = EXCLUDED.revision), \
                 put_f AS (INSERT INTO {f} (key, ns, field, value) \
                   SELECT w.key, r.ns, r.field, r.value FROM {from} w, UNNEST($11::text[], $12::text[], $13::bytea[]) AS r(ns, field, value) \
                   ON CONFLICT (key, ns, field) DO UPDATE SET value = EXCLUDED.value) \
                 SELECT count(*) FROM {from}"
            )
        };
        let delete = |guard: &str, counted: &str| {
            format!(
                "WITH gone AS (DELETE FROM {s} WHERE key = $1 {guard} RETURNING key, expires_at), \
                 a AS (DELETE FROM {n} USING gone WHERE {n}.key = gone.key), \
                 b AS (DELETE FROM {f} USING gone WHERE {f}.key = gone.key) \
                 SELECT count(*) FROM gone {counted}"
            )
        };
        Self {
            load: format!(
                "SELECT s.created_at, s.last_seen, s.expires_at, n.ns, n.version, n.revision, f.field, f.value \
                 FROM {s} s LEFT JOIN {n} n ON n.key = s.key \
                 LEFT JOIN {f} f ON f.key = n.key AND f.ns = n.ns \
                 WHERE s.key = $1 AND s.expires_at > $2"
            )
            .into(),
            read_meta: format!(
                "SELECT s.counter, n.ns, n.version, n.revision FROM {s} s \
                 LEFT JOIN {n} n ON n.key = s.key WHERE s.key = $1 AND s.expires_at > $2"
            )
            .into(),
            lock: format!("SELECT 1 FROM {s} WHERE key = $1 FOR UPDATE").into(),
            // $1 key, $2 created, $3 last seen, $4 deadline, $5 counter.
            create: format!(
                "WITH ins AS (INSERT INTO {s} (key, created_at, last_seen, expires_at, counter) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING RETURNING key), {}",
                writes("ins")
            )
            .into(),
            // $1 key, $2 counter read, $3 new counter, $4 last seen, $5 deadline, $6 now.
            update: format!(
                "WITH upd AS (UPDATE {s} SET counter = $3, last_seen = $4, expires_at = $5 \
                 WHERE key = $1 AND counter = $2 AND expires_at > $6 RETURNING key), {}",
                writes("upd")
            )
            .into(),
            // $2 counter read, $3 now.
            delete_live: delete("AND counter = $2 AND expires_at > $3", "").into(),
            delete_session: format!("DELETE FROM {s} WHERE key = $1 RETURNING expires_at").into(),
            delete_namespaces: format!("DELETE FROM {n} WHERE key = $1").into(),
            delete_fields: format!("DELETE FROM {f} WHERE key = $1").into(),
            delete_expired_one: delete("AND expires_at <= $2", "").into(),
            // $1 from, $2 to, $3 counter read, $4 now.
            move_session: format!(
                "WITH old AS (DELETE FROM {s} WHERE key = $1 AND counter = $3 AND expires_at > $4 \
                   RETURNING created_at, last_seen, expires_at, counter) \
                 INSERT INTO {s} (key, created_at, last_seen, expires_at, counter) \
                 SELECT $2, created_at, last_seen, expires_at, counter FROM old"
            )
            .into(),
            move_namespaces: format!("UPDATE {n} SET key = $2 WHERE key = $1").into(),
            move_fields: format!("UPDATE {f} SET key = $2 WHERE key = $1").into(),
            touch: format!(
                "UPDATE {s} SET last_seen = $2, expires_at = $3 WHERE key = $1 AND expires_at > $4"
            )
            .into(),
            exists: format!("SELECT EXISTS (SELECT 1 FROM {s} WHERE key = $1 AND expires_at > $2)")
                .into(),
            sweep: format!(
                "DELETE FROM {s} WHERE key IN (SELECT key FROM {s} WHERE expires_at <= $1 \
                   ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING key"
            )
            .into(),
            sweep_namespaces: format!("DELETE FROM {n} WHERE key = ANY($1)").into(),
            sweep_fields: format!("DELETE FROM {f} WHERE key = ANY($1)").into(),
            exists_all: "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL \
                 AND to_regclass($3) IS NOT NULL AND to_regclass($4) IS NOT NULL"
                .into(),
        }
    }
}

fn q(sql: &Arc<str>) -> sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sqlx::AssertSqlSafe(Arc::clone(sql)))
}

impl PostgresStore {
    /// A store on `pool` with the default options (tables `typed_sessions…`
    /// in the `search_path`, system clock, 5 s timeout). Run
    /// [`migrate`](Self::migrate) once before use.
    #[allow(
        clippy::missing_panics_doc,
        reason = "the default names are checked by a unit test"
    )]
    pub fn new(pool: PgPool) -> Self {
        Self::builder(pool)
            .build()
            .expect("the default names are valid")
    }

    /// Options: schema, table name, clock, timeout.
    pub fn builder(pool: PgPool) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            pool,
            schema: None,
            table: DEFAULT_TABLE.to_owned(),
            clock: SharedClock::system(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Creates the schema (when one was named), the tables and the index
    /// when they are missing, and upgrades them when an older version of
    /// this crate made them. Idempotent, and safe to run from several
    /// instances at once (they take turns on a transaction-level advisory
    /// lock). When everything is there already it only reads the catalog:
    /// no DDL, no table lock, and no privilege beyond using the tables, so
    /// every instance can call it at start.
    ///
    /// # Errors
    /// When the database fails or refuses (e.g. no `CREATE` privilege).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let t = &self.inner.tables;
        let mut statements = Vec::new();
        if let Some(schema) = &t.schema {
            statements.push(format!("CREATE SCHEMA IF NOT EXISTS {schema}"));
        }
        statements.extend([
            format!(
                "CREATE TABLE IF NOT EXISTS {} (key bytea PRIMARY KEY, created_at bigint NOT NULL, \
                 last_seen bigint NOT NULL, expires_at bigint NOT NULL, counter bigint NOT NULL)",
                t.sessions
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (key bytea NOT NULL, ns text NOT NULL, \
                 version bigint NOT NULL, revision bigint NOT NULL, PRIMARY KEY (key, ns))",
                t.namespaces
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (key bytea NOT NULL, ns text NOT NULL, \
                 field text NOT NULL, value bytea NOT NULL, PRIMARY KEY (key, ns, field))",
                t.fields
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} (expires_at)",
                t.deadline_index, t.sessions
            ),
        ]);
        let lock_name = format!("typed-sessions migrate {}", t.sessions);
        let index = match &t.schema {
            Some(schema) => format!("{schema}.{}", t.deadline_index),
            None => t.deadline_index.clone(),
        };
        // Everything there already (every start after the first): no DDL at
        // all, so no table lock and no privilege beyond reading the catalog.
        let present: bool = self
            .bounded(
                sqlx::query_scalar(sqlx::AssertSqlSafe(Arc::clone(&self.inner.sql.exists_all)))
                    .bind(&t.sessions)
                    .bind(&t.namespaces)
                    .bind(&t.fields)
                    .bind(&index)
                    .fetch_one(&self.inner.pool),
            )
            .await?;
        if present {
            return Ok(());
        }
        self.bounded(async {
            let mut tx = self.inner.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(&lock_name)
                .execute(&mut *tx)
                .await?;
            for statement in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })
        .await
    }

    /// Removes expired sessions, at most 1 000 per statement, until none is
    /// left; returns how many. Each batch is its own short statement that
    /// skips rows other transactions hold, so it never waits on live
    /// traffic for long. Each batch is bounded by the command timeout.
    ///
    /// # Errors
    /// When the database fails; batches already done stay done.
    pub async fn delete_expired(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        let sql = &self.inner.sql;
        loop {
            let now = to_i64(self.inner.clock.now_ms());
            let removed = self
                .bounded(async {
                    // Sessions first (skipping any a request holds), then
                    // their namespaces and fields, each statement reading
                    // afresh, so a save that committed meanwhile leaves no
                    // row behind.
                    let mut tx = self.inner.pool.begin_with(BEGIN_READ_COMMITTED).await?;
                    let keys: Vec<Vec<u8>> =
                        sqlx::query_scalar(sqlx::AssertSqlSafe(Arc::clone(&sql.sweep)))
                            .bind(now)
                            .bind(EXPIRY_BATCH)
                            .fetch_all(&mut *tx)
                            .await?;
                    if !keys.is_empty() {
                        for statement in [&sql.sweep_namespaces, &sql.sweep_fields] {
                            q(statement).bind(&keys).execute(&mut *tx).await?;
                        }
                    }
                    tx.commit().await?;
                    Ok(keys.len())
                })
                .await?;
            let removed = u64::try_from(removed).unwrap_or(u64::MAX);
            total += removed;
            if removed < EXPIRY_BATCH.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    /// Runs `work` within the command timeout.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        super::bounded(self.inner.timeout, postgres_transient, work).await
    }

    /// The counter and namespaces of the live record under `key`.
    async fn read_meta(
        &self,
        conn: &mut PgConnection,
        key: &SessionKey,
        now: i64,
    ) -> Result<Result<Option<Meta>, StoreError>, sqlx::Error> {
        let rows: Vec<MetaRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(Arc::clone(&self.inner.sql.read_meta)))
                .bind(&key.as_bytes()[..])
                .bind(now)
                .fetch_all(&mut *conn)
                .await?;
        let Some(&(counter, ..)) = rows.first() else {
            return Ok(Ok(None));
        };
        let mut namespaces = Vec::with_capacity(rows.len());
        for (_, ns, version, revision) in rows {
            if let (Some(ns), Some(version), Some(revision)) = (ns, version, revision) {
                match namespace_meta(ns, version, revision) {
                    Ok(meta) => namespaces.push(meta),
                    Err(err) => return Ok(Err(err)),
                }
            }
        }
        Ok(Ok(Some((from_i64(counter), namespaces))))
    }

    /// Saves optimistically first: read, then one statement that writes
    /// only if the record's counter is still the one read. When other
    /// writes keep winning that race, later attempts lock the record's row
    /// first (`SELECT … FOR UPDATE` in a transaction), which always
    /// succeeds once the lock is held.
    async fn save_now(
        &self,
        key: &SessionKey,
        changes: &Changeset,
    ) -> Result<SaveOutcome, StoreError> {
        let timeout = self.inner.timeout;
        let all_attempts = async {
            for attempt in 0..SAVE_ATTEMPTS {
                let lock = attempt >= OPTIMISTIC_ATTEMPTS;
                let in_transaction = lock || matches!(changes.mode, SaveMode::Rename { .. });
                let outcome = async {
                    let mut conn = self.inner.pool.acquire().await?;
                    if !in_transaction {
                        return self.attempt(&mut conn, key, changes, false).await;
                    }
                    // Explicitly READ COMMITTED: the locked read must see
                    // what the writer before it committed, whatever the
                    // pool's default isolation.
                    let mut tx = conn.begin_with(BEGIN_READ_COMMITTED).await?;
                    let outcome = self.attempt(&mut tx, key, changes, lock).await?;
                    if matches!(
                        outcome,
                        Ok(Some(SaveOutcome::Saved { .. } | SaveOutcome::Deleted))
                    ) {
                        tx.commit().await?;
                    }
                    Ok(outcome)
                }
                .await;
                match outcome {
                    Ok(Ok(Some(outcome))) => return Ok(outcome),
                    Ok(Ok(None)) => {}
                    Ok(Err(err)) => return Err(err),
                    // A pool whose default isolation is stricter than READ
                    // COMMITTED reports a concurrent write as a
                    // serialization failure: that is a lost race, retried.
                    Err(err) if serialization_failure(&err) => {}
                    Err(err) => return Err(classify(err, postgres_transient)),
                }
            }
            Err(too_busy())
        };
        tokio::time::timeout(timeout, all_attempts)
            .await
            .unwrap_or_else(|_| Err(timed_out(timeout)))
    }

    /// One attempt; `Ok(None)` when another write landed between the read
    /// and the write (nothing was written: try again). With `lock`, the
    /// record's row is locked before it is read (in a transaction).
    #[allow(clippy::too_many_lines, reason = "the three save modes in one place")]
    async fn attempt(
        &self,
        conn: &mut PgConnection,
        key: &SessionKey,
        changes: &Changeset,
        lock: bool,
    ) -> Result<Result<Option<SaveOutcome>, StoreError>, sqlx::Error> {
        let sql = &self.inner.sql;
        let now = to_i64(self.inner.clock.now_ms());
        let source = match changes.mode {
            SaveMode::Create => None,
            SaveMode::Update => Some(*key),
            SaveMode::Rename { from } => Some(from),
        };
        let (counter, stored) = match &source {
            None => (0, Vec::new()),
            Some(source) => {
                if lock {
                    q(&sql.lock)
                        .bind(&source.as_bytes()[..])
                        .execute(&mut *conn)
                        .await?;
                }
                match self.read_meta(conn, source, now).await? {
                    Ok(Some(meta)) => meta,
                    Ok(None) => return Ok(Ok(Some(SaveOutcome::Missing))),
                    Err(err) => return Ok(Err(err)),
                }
            }
        };
        let plan = match plan(&stored, counter, changes) {
            Ok(plan) => plan,
            Err(namespace) => return Ok(Ok(Some(SaveOutcome::Conflict { namespace }))),
        };
        if plan.empty {
            let Some(source) = source else {
                // A new session whose every namespace is at its default:
                // nothing to store.
                return Ok(Ok(Some(SaveOutcome::Deleted)));
            };
            let gone: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(Arc::clone(&sql.delete_live)))
                .bind(&source.as_bytes()[..])
                .bind(to_i64(counter))
                .bind(now)
                .fetch_one(&mut *conn)
                .await?;
            return Ok(Ok((gone > 0).then_some(SaveOutcome::Deleted)));
        }
        let columns = Columns::of(&plan);
        let written = |statement: &Arc<str>, first: [i64; 5]| {
            let query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(Arc::clone(statement)))
                .bind(&key.as_bytes()[..]);
            let query = first.iter().fold(query, |query, value| query.bind(*value));
            query
                .bind(&plan.removed)
                .bind(&columns.ns_names)
                .bind(&columns.ns_versions)
                .bind(&columns.ns_revisions)
                .bind(&columns.field_ns)
                .bind(&columns.field_names)
                .bind(&columns.field_values)
                .bind(&plan.replaced)
        };
        let saved = SaveOutcome::Saved {
            revisions: plan.revisions.clone(),
        };
        let (last_seen, deadline, new_counter) = (
            to_i64(changes.last_seen_ms),
            to_i64(changes.expires_at_ms),
            to_i64(plan.counter),
        );
        let update = [to_i64(counter), new_counter, last_seen, deadline, now];
        match changes.mode {
            SaveMode::Create => {
                let created = to_i64(changes.created_at_ms);
                // The create statement leaves $6 unused: the writes start at $7.
                let query = written(
                    &sql.create,
                    [created, last_seen, deadline, new_counter, now],
                );
                if query.fetch_one(&mut *conn).await? > 0 {
                    return Ok(Ok(Some(saved)));
                }
                // The key is taken: by an expired record (remove it and
                // try again), or by a live one (an error).
                let expired: i64 =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(Arc::clone(&sql.delete_expired_one)))
                        .bind(&key.as_bytes()[..])
                        .bind(now)
                        .fetch_one(&mut *conn)
                        .await?;
                Ok(if expired > 0 {
                    Ok(None)
                } else {
                    Err(key_taken())
                })
            }
            SaveMode::Update => {
                let updated = written(&sql.update, update).fetch_one(&mut *conn).await?;
                Ok(Ok((updated > 0).then_some(saved)))
            }
            SaveMode::Rename { from } => {
                // In a transaction (see `save_now`): move the rows, then
                // write as an update of the new key.
                let moved = q(&sql.move_session)
                    .bind(&from.as_bytes()[..])
                    .bind(&key.as_bytes()[..])
                    .bind(to_i64(counter))
                    .bind(now)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                if moved == 0 {
                    return Ok(Ok(None));
                }
                for statement in [&sql.move_namespaces, &sql.move_fields] {
                    q(statement)
                        .bind(&from.as_bytes()[..])
                        .bind(&key.as_bytes()[..])
                        .execute(&mut *conn)
                        .await?;
                }
                let updated = written(&sql.update, update).fetch_one(&mut *conn).await?;
                Ok(Ok((updated > 0).then_some(saved)))
            }
        }
    }
}

impl SessionStore for PostgresStore {
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
        self.save_now(key, changes).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let now = to_i64(self.inner.clock.now_ms());
        let sql = &self.inner.sql;
        self.bounded(async {
            // The session row first: deleting it waits for a save holding
            // it. The namespace and field statements that follow then see
            // every row such a save committed (each statement of a READ
            // COMMITTED transaction reads afresh), so none is left behind.
            let mut tx = self.inner.pool.begin_with(BEGIN_READ_COMMITTED).await?;
            let deadline: Option<i64> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(Arc::clone(&sql.delete_session)))
                    .bind(&key.as_bytes()[..])
                    .fetch_optional(&mut *tx)
                    .await?;
            for statement in [&sql.delete_namespaces, &sql.delete_fields] {
                q(statement)
                    .bind(&key.as_bytes()[..])
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(deadline.is_some_and(|deadline| deadline > now))
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
                    .execute(&self.inner.pool),
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
