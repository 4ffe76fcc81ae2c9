//! `RedisStore` (feature `redis`): the store, its scripts, and reading a
//! session hash back. The layout and the design are documented on
//! [`RedisStore`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{
    Client, Cmd, ErrorKind, RedisError, RedisFuture, Script, ServerErrorKind, ToRedisArgs, Value,
};

use super::{
    Changeset, NamespaceOp, Record, SaveMode, SaveOutcome, SessionKey, SessionStore, StoreError,
};
use crate::clock::{Clock, SharedClock};
use crate::data::FieldMap;

mod decode;

pub use decode::MalformedHash;

/// Entry point for the fuzz target (`fuzz/fuzz_targets/redis_hash.rs`):
/// the decoder of a session hash read from Redis.
#[doc(hidden)]
pub mod __fuzz {
    /// Reads `data` as hash pairs (a length byte before each name and
    /// value) and decodes them at `now`; a record that decodes must read
    /// back the same from the layout the save script writes.
    ///
    /// # Panics
    /// When that check fails: that is what the fuzzer looks for.
    pub fn hash(data: &[u8], now: u64) -> Option<usize> {
        let pairs = super::decode::split_pairs(data);
        let record = super::decode::record(pairs, now).ok()??;
        let again = super::decode::layout(&record, 0);
        let reread = super::decode::record(again, now)
            .expect("a layout reads")
            .expect("a live record");
        assert_eq!(reread, record, "a record reads back from its layout");
        Some(record.namespaces.len())
    }
}

const SAVE: &str = include_str!("redis/save.lua");
const TOUCH: &str = include_str!("redis/touch.lua");
const RELEASE: &str = include_str!("redis/release.lua");

/// Sessions in Redis or Redis Cluster: field-level writes, compare-and-swap
/// per namespace in one atomic script, bounded commands, reconnection after
/// an outage. Available with the `redis` feature
/// (`typed-sessions = { version = "0.1", features = ["redis"] }`).
///
/// # Layout
///
/// One Redis hash per session, under `prefix + hex(SHA-256(id))` (the
/// prefix defaults to `session:`; the raw id never reaches Redis). The id
/// is the 16 bytes the cookie value encodes in unpadded base64url, so the
/// key of a cookie `session=<value>` is, in a shell,
/// `printf '%s' '<value>==' | tr '_-' '/+' | base64 -d | sha256sum`
/// behind the prefix ([`RedisStore::redis_key`] computes it from a
/// [`SessionKey`]). Its fields, readable with `redis-cli HGETALL <key>`:
///
/// | field | value |
/// |---|---|
/// | `@c` | creation time, ms since the Unix epoch |
/// | `@l` | last write or refresh, ms (the idle timeout counts from here) |
/// | `@e` | the deadline, ms; the key's TTL ends at the same instant, as the layer's clock counts |
/// | `@r` | the record's revision counter (every namespace write takes the next value) |
/// | `@n:<namespace>` | `<schema version>:<revision>` of a stored namespace |
/// | `<namespace>:<field>` | the encoded value of one schema field |
/// | `@x` | the last four saves, each `;<call id>\|<revisions>` (a save that deleted the session leaves a hash of `@x` = `;<call id>\|d` alone for a minute): a save sent twice (its reply was lost) answers the first run's reply instead of applying its changes again |
/// | `@m` | only while a cross-slot rename moves the record: `<target>\|<lease end>`; after the move, the old key is a tombstone holding only `@m` = `done\|<target>` for a minute |
///
/// Namespaces never start with `@` and never contain `:`, so the layout is
/// unambiguous. Fields starting with `@` that this version does not know
/// are ignored, so a newer version can add metadata during a rolling
/// deploy.
///
/// # Commands per request
///
/// - load: one `HGETALL`;
/// - save: one `EVALSHA` of a Lua script (on `NOSCRIPT`, after a restart or
///   failover, one `EVAL` with its body, which caches it again) that checks the
///   record is live, checks every namespace's version and expected revision,
///   then `HSET`s and `HDEL`s only the changed fields, bumps the revisions
///   and sets the key's TTL (`PEXPIRE`). A record deleted meanwhile is
///   never re-created;
/// - sliding refresh: one `EVALSHA` that sets `@l` and `@e` and calls
///   `PEXPIRE`, never touching data;
/// - delete: one `DEL`.
///
/// # Id regeneration (rename)
///
/// On a single server the move is one script: `RENAME` and the changes,
/// atomically. In Redis Cluster the old and the new key live in different
/// hash slots (they are independent hashes; a shared hash tag would put
/// every session in one slot and defeat the cluster), so no script can
/// touch both. The store moves the record in three steps instead:
/// 1. on the old key, a script checks the guards and freezes the record
///    with an `@m` marker (a lease of four command timeouts) and returns
///    it; a frozen record still reads as it is (so that a logout finds and
///    deletes it) but refuses refreshes, and writes, which fail as
///    [`StoreError::Unavailable`] (a 503 with `Retry-After`: the move may
///    yet fail and the session live on under the old id);
/// 2. on the new key (a fresh id nobody knows yet), a script installs the
///    copy and applies the changes;
/// 3. on the old key, a script replaces the record, if it still carries
///    this move's marker, with a short-lived tombstone (so that the same
///    step sent twice answers the same).
///
/// Each step is bounded by the command timeout, so an id regeneration in a
/// cluster takes at most five of them (three steps, and two to undo).
///
/// If step 2 or 3 fails, the store asks the source what happened: a step
/// 3 that landed late completes the move; otherwise the marker is removed
/// and only then the new key deleted, so the session stays under its old
/// id; if the old record was deleted
/// meanwhile (a logout), the new one is deleted too, so a logout is never
/// undone. If the process dies between steps, the lease runs out and the
/// old record is live again (the new key, never sent to a client, expires).
/// No state is duplicated under two live ids.
///
/// # Replies lost on the way
///
/// A connection can die after Redis ran a command and before its reply
/// arrived; the store then sends the call once more on a fresh connection
/// (and the Redis Cluster client resends by itself). Every call is safe to
/// run twice: reads, `DEL` and refreshes by nature, each save because the
/// script recognizes its call id in `@x` and answers the first run's reply,
/// and step 3 of a move because of its tombstone.
///
/// # Time
///
/// Deadlines come from the layer's clock: a record whose `@e` has passed
/// reads as absent even before Redis expires the key, and the key's TTL is
/// set relative to that clock (`PEXPIRE`, at most about 100 years), so a
/// clock apart from Redis's never makes Redis drop a session early.
///
/// # Example
///
/// ```no_run
/// use typed_sessions::{SessionLayer, stores::RedisStore};
///
/// # async fn app() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::open("redis://127.0.0.1:6379/").await?;
/// let layer = SessionLayer::new(store);
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Connection,
    prefix: String,
    timeout: Duration,
    clock: SharedClock,
    save: Lua,
    touch: Lua,
    release: Lua,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field(
                "connection",
                &match self.inner.conn {
                    Connection::Single(_) => "single server",
                    Connection::Cluster(_) => "cluster",
                },
            )
            .field("prefix", &self.inner.prefix)
            .field("command_timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a ::redis::Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a ::redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Options for a [`RedisStore`]: key prefix, command timeout, clock.
///
/// ```no_run
/// use std::time::Duration;
/// use typed_sessions::stores::RedisStore;
///
/// # async fn app() -> Result<(), typed_sessions::stores::StoreError> {
/// let store = RedisStore::builder()
///     .prefix("shop:session:")
///     .command_timeout(Duration::from_millis(500))
///     .open("redis://127.0.0.1:6379/")
///     .await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    prefix: String,
    timeout: Duration,
    clock: SharedClock,
}

impl RedisStoreBuilder {
    /// The prefix of every key (default `session:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The bound on each store operation, one command in the normal case
    /// (default 1 s). Past it the operation fails as
    /// [`StoreError::Unavailable`] (the layer answers 503), so a stalled or
    /// unreachable Redis never hangs a request. Connection attempts are
    /// bounded by it too.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The clock that decides expiry (default: the system clock); pass the
    /// layer's clock when the layer has one.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = SharedClock(clock);
        self
    }

    /// Connects to one Redis server (`redis://[user:password@]host:port/db`)
    /// and checks that it answers (a server that wants a password fails
    /// here, not on the first request). The connection reconnects by itself
    /// after an outage.
    ///
    /// For TLS (`rediss://`), turn on the `redis` crate's TLS support in the
    /// app's `Cargo.toml`, next to typed-sessions:
    /// `redis = { version = "1.8", features = ["tokio-rustls-comp", "tls-rustls-webpki-roots"] }`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] for an invalid URL; [`StoreError::Unavailable`]
    /// when the server does not answer within the command timeout.
    pub async fn open(self, url: &str) -> Result<RedisStore, StoreError> {
        let client = Client::open(url).map_err(|err| invalid_url(url, &err))?;
        let target = client.get_connection_info().addr().to_string();
        let config = self.manager_config();
        let connect = async {
            let mut manager = ConnectionManager::new_with_config(client, config).await?;
            // A server that wants a password accepts the connection and
            // refuses the first command: ask it something now.
            ::redis::cmd("PING")
                .query_async::<String>(&mut manager)
                .await?;
            Ok::<_, RedisError>(manager)
        };
        let manager = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| {
                StoreError::unavailable(format!(
                    "Redis at {target} did not answer within the command timeout"
                ))
            })?
            .map_err(|err| cannot_connect(&target, err))?;
        Ok(self.connection(manager))
    }

    /// Like [`open`](Self::open), without connecting yet: the first request
    /// connects, so an app can start while Redis is down (its requests get
    /// 503 until Redis answers). Call it inside a Tokio runtime.
    ///
    /// # Errors
    /// [`StoreError::Backend`] for an invalid URL.
    pub fn open_lazy(self, url: &str) -> Result<RedisStore, StoreError> {
        let client = Client::open(url).map_err(|err| invalid_url(url, &err))?;
        let manager = ConnectionManager::new_lazy_with_config(client, self.manager_config())
            .map_err(StoreError::backend)?;
        Ok(self.connection(manager))
    }

    /// Connects to a Redis Cluster through any of its nodes; the client
    /// follows `MOVED` and `ASK` redirections and slot changes.
    ///
    /// # Errors
    /// [`StoreError::Backend`] for invalid URLs; [`StoreError::Unavailable`]
    /// when no node answers within the command timeout.
    pub async fn open_cluster<I, U>(self, urls: I) -> Result<RedisStore, StoreError>
    where
        I: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        let urls: Vec<String> = urls.into_iter().map(|u| u.as_ref().to_owned()).collect();
        let target = urls
            .iter()
            .map(|url| {
                Client::open(url.as_str())
                    .map(|client| client.get_connection_info().addr().to_string())
                    .map_err(|err| invalid_url(url, &err))
            })
            .collect::<Result<Vec<String>, StoreError>>()?
            .join(",");
        let client = ClusterClient::builder(urls)
            .connection_timeout(self.timeout)
            .response_timeout(self.timeout)
            .build()
            .map_err(|err| StoreError::backend(RedisFailure(err)))?;
        let connect = async {
            let mut conn = client.get_async_connection().await?;
            ::redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await?;
            Ok::<_, RedisError>(conn)
        };
        let conn = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| {
                StoreError::unavailable(format!(
                    "Redis Cluster at {target} did not answer within the command timeout"
                ))
            })?
            .map_err(|err| cannot_connect(&target, err))?;
        Ok(self.cluster_connection(conn))
    }

    /// A store over a connection the app already has (one server).
    pub fn connection(self, connection: ConnectionManager) -> RedisStore {
        self.finish(Connection::Single(connection))
    }

    /// A store over a cluster connection the app already has.
    pub fn cluster_connection(self, connection: ClusterConnection) -> RedisStore {
        self.finish(Connection::Cluster(connection))
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            // One quick reconnection attempt per failed command: while Redis
            // is down, requests fail at once instead of waiting out a
            // backoff schedule; the next request tries again.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100))
    }

    fn finish(self, conn: Connection) -> RedisStore {
        RedisStore {
            inner: Arc::new(Inner {
                conn,
                prefix: self.prefix,
                timeout: self.timeout,
                clock: self.clock,
                save: Lua::new(SAVE),
                touch: Lua::new(TOUCH),
                release: Lua::new(RELEASE),
            }),
        }
    }
}

impl RedisStore {
    /// Options: key prefix, command timeout, clock.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder {
            prefix: "session:".to_owned(),
            timeout: Duration::from_secs(1),
            clock: SharedClock::system(),
        }
    }

    /// Connects to one Redis server with the defaults (see
    /// [`RedisStoreBuilder::open`]).
    ///
    /// # Errors
    /// As [`RedisStoreBuilder::open`].
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::builder().open(url).await
    }

    /// Connects to a Redis Cluster with the defaults (see
    /// [`RedisStoreBuilder::open_cluster`]).
    ///
    /// # Errors
    /// As [`RedisStoreBuilder::open_cluster`].
    pub async fn open_cluster<I, U>(urls: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = U>,
        U: AsRef<str>,
    {
        Self::builder().open_cluster(urls).await
    }

    /// The Redis key a session's hash lives under.
    pub fn redis_key(&self, key: &SessionKey) -> String {
        let mut out = String::with_capacity(self.inner.prefix.len() + 64);
        out.push_str(&self.inner.prefix);
        out.push_str(&key.to_hex());
        out
    }

    /// Runs one command or script, bounded by the command timeout; a call
    /// that met a dead connection is sent once more (see
    /// [`worth_resending`]).
    async fn run<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let attempt = async {
            match call(self.inner.conn.clone()).await {
                Err(err) if worth_resending(&err) => call(self.inner.conn.clone()).await,
                result => result,
            }
        };
        match tokio::time::timeout(self.inner.timeout, attempt).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(StoreError::unavailable(
                "Redis did not answer within the command timeout",
            )),
        }
    }

    /// Runs a script call: `EVALSHA`, and on `NOSCRIPT` (a restarted or
    /// failed-over server, a fresh cluster node) `EVAL` with the body, which
    /// also caches it there. Both go to the node that owns the key, so a
    /// slow node elsewhere in a cluster never holds this call up.
    async fn script(&self, call: LuaCall<'_>) -> Result<Value, StoreError> {
        let call = &call;
        self.run(|mut conn| async move {
            match call.evalsha().query_async(&mut conn).await {
                Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    call.eval().query_async(&mut conn).await
                }
                result => result,
            }
        })
        .await
    }

    async fn save_now(
        &self,
        key: &SessionKey,
        changes: &Changeset,
    ) -> Result<SaveOutcome, StoreError> {
        let now = self.inner.clock.now_ms();
        let target = self.redis_key(key);
        let save = &self.inner.save;
        let call = match changes.mode {
            SaveMode::Create => SaveCall::new("C", &target),
            SaveMode::Update => SaveCall::new("U", &target),
            SaveMode::Rename { from } => {
                let source = self.redis_key(&from);
                if let Connection::Cluster(_) = self.inner.conn {
                    return self.move_across_slots(&source, key, changes).await;
                }
                let reply = self
                    .script(
                        SaveCall {
                            source: Some(&source),
                            ..SaveCall::new("M", &target)
                        }
                        .invocation(save, now, changes),
                    )
                    .await?;
                return outcome(&reply, changes);
            }
        };
        let reply = self.script(call.invocation(save, now, changes)).await?;
        outcome(&reply, changes)
    }

    /// The three-step rename of the module docs, for Redis Cluster.
    async fn move_across_slots(
        &self,
        source: &str,
        to: &SessionKey,
        changes: &Changeset,
    ) -> Result<SaveOutcome, StoreError> {
        let target = self.redis_key(to);
        let marker = to.to_hex();
        let now = self.inner.clock.now_ms();
        let lease_ms = u64::try_from(self.inner.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(4);
        // 1. Freeze the source (after checking the guards) and read it.
        let freeze = SaveCall {
            freeze: Some((now.saturating_add(lease_ms), &marker)),
            ..SaveCall::new("F", source)
        };
        let reply = self
            .script(freeze.invocation(&self.inner.save, now, changes))
            .await?;
        let Some(copy) = frozen_fields(&reply) else {
            return outcome(&reply, changes);
        };
        // 2. Install the copy under the new key with the changes.
        let install = SaveCall {
            copy: &copy,
            ..SaveCall::new("I", &target)
        }
        .invocation(&self.inner.save, now, changes);
        let installed = match self.script(install).await {
            Ok(reply) if is_tag(&reply, b"exists") => {
                // Something already lives under the new key: it is not
                // ours to delete. Unfreeze the source and report it.
                if let Err(err) = self.release(source, "abort", &marker).await {
                    warn_unfinished(&err);
                }
                return outcome(&reply, changes);
            }
            Ok(reply) => outcome(&reply, changes),
            Err(err) => Err(err),
        };
        let installed = match installed {
            Ok(installed) => installed,
            Err(err) => return self.undo(source, &target, &marker, None, err).await,
        };
        // 3. Replace the source by a tombstone if it is still frozen by this move.
        match self.release(source, "finish", &marker).await {
            Ok(1) => Ok(installed),
            Ok(-1) => {
                // Deleted meanwhile (a logout): never re-create it.
                self.forget(&target).await;
                Ok(SaveOutcome::Missing)
            }
            Ok(_) => {
                self.forget(&target).await;
                Err(StoreError::unavailable(
                    "the session's id regeneration outlived its lease; nothing changed",
                ))
            }
            Err(err) => {
                self.undo(source, &target, &marker, Some(installed), err)
                    .await
            }
        }
    }

    /// After step 2 or 3 of a move failed (`err`): asks the source what
    /// happened, by undoing the freeze, and keeps or drops the new key
    /// accordingly. The new key is deleted only once the source is live
    /// again or gone, never while it may be the only copy.
    async fn undo(
        &self,
        source: &str,
        target: &str,
        marker: &str,
        installed: Option<SaveOutcome>,
        err: StoreError,
    ) -> Result<SaveOutcome, StoreError> {
        match (self.release(source, "abort", marker).await, installed) {
            // Step 3 had landed (its answer was late): the move is done.
            (Ok(2), Some(installed)) => Ok(installed),
            // The source is live again under the old id.
            (Ok(1), _) => {
                self.forget(target).await;
                Err(err)
            }
            // The source was deleted meanwhile (a logout).
            (Ok(-1), _) => {
                self.forget(target).await;
                Ok(SaveOutcome::Missing)
            }
            // Another move took the source over after this one's lease.
            (Ok(_), _) => {
                self.forget(target).await;
                Err(err)
            }
            (Err(abort), _) => {
                // Unknown: the new key, never sent to a client, expires;
                // the source comes back when the lease runs out.
                warn_unfinished(&abort);
                Err(err)
            }
        }
    }

    async fn release(&self, source: &str, op: &str, marker: &str) -> Result<i64, StoreError> {
        let mut invocation = self.inner.release.call(&[source]);
        invocation.arg(op).arg(marker);
        let reply = self.script(invocation).await?;
        match reply {
            Value::Int(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    async fn forget(&self, target: &str) {
        let result: Result<i64, StoreError> =
            self.run(|mut conn| async move {
                ::redis::cmd("DEL").arg(target).query_async(&mut conn).await
            })
            .await;
        if let Err(err) = result {
            tracing::warn!(
                target: crate::LOG_TARGET,
                error = %err,
                "a copy left by an unfinished id regeneration could not be deleted; it expires with its deadline and is never sent to a client"
            );
        }
    }
}

/// The longest TTL handed to Redis, about 100 years: a deadline past it
/// (a huge store TTL) is kept in `@e` as given, but `PEXPIRE` gets a
/// number Redis accepts.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 60 * 60 * 1000;

/// The key's TTL for a deadline, relative to the caller's clock (the one
/// that decides `@e`), so that a clock apart from the server's cannot make
/// Redis drop a session early: at least 1 ms, at most [`MAX_TTL_MS`].
fn ttl_ms(expires_at_ms: u64, now_ms: u64) -> u64 {
    expires_at_ms.saturating_sub(now_ms).clamp(1, MAX_TTL_MS)
}

/// A unique id for one save call (a random per-process prefix and a
/// counter), by which the script recognizes the same call sent twice.
fn call_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut bytes = [0_u8; 8];
        // Uniqueness, not secrecy: without OS randomness, the time and the
        // process id still tell processes apart.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            #[allow(clippy::cast_possible_truncation, reason = "mixing bits")]
            let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
            bytes = mixed.to_le_bytes();
        }
        u64::from_le_bytes(bytes)
    });
    format!("{prefix:016x}{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Whether a call that failed may be sent again at once: its connection
/// was refused or had died. After a Redis restart the first command meets
/// the old connection; the failure makes the connection manager open a new
/// one. Every call is safe to send twice (reads, `DEL`, a refresh to the
/// same deadline, and the save scripts, which recognize a call they ran
/// already by its id), so whether the first one got through does not
/// matter. A timeout is not retried: the command timeout bounds the call.
fn worth_resending(err: &RedisError) -> bool {
    !err.is_timeout()
        && (err.is_connection_refusal() || err.is_io_error() || err.is_connection_dropped())
}

/// A Lua script and its SHA-1, the name `EVALSHA` knows it by.
struct Lua {
    body: &'static str,
    sha: String,
}

impl Lua {
    fn new(body: &'static str) -> Self {
        Self {
            body,
            sha: Script::new(body).get_hash().to_owned(),
        }
    }

    /// A call of this script on `keys`; add the arguments with
    /// [`LuaCall::arg`].
    fn call(&self, keys: &[&str]) -> LuaCall<'_> {
        let mut cmd = ::redis::cmd("EVALSHA");
        cmd.arg(&self.sha).arg(keys.len());
        for key in keys {
            cmd.arg(*key);
        }
        LuaCall { lua: self, cmd }
    }
}

/// One script call: the `EVALSHA` command, built once.
struct LuaCall<'s> {
    lua: &'s Lua,
    cmd: Cmd,
}

impl LuaCall<'_> {
    fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// `EVALSHA sha …`.
    fn evalsha(&self) -> &Cmd {
        &self.cmd
    }

    /// `EVAL body …`, the same call for a server that lost the script.
    fn eval(&self) -> Cmd {
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(self.lua.body);
        for arg in self.cmd.args_iter().skip(2) {
            if let ::redis::Arg::Simple(bytes) = arg {
                cmd.arg(bytes);
            }
        }
        cmd
    }
}

/// One call of the save script (see `save.lua` for the modes).
struct SaveCall<'c> {
    mode: &'static str,
    key: &'c str,
    /// The source hash of a same-slot rename.
    source: Option<&'c str>,
    /// The lease end and marker of a freeze.
    freeze: Option<(u64, &'c str)>,
    /// The fields a cross-slot move installs.
    copy: &'c [(Vec<u8>, Vec<u8>)],
}

impl<'c> SaveCall<'c> {
    fn new(mode: &'static str, key: &'c str) -> Self {
        Self {
            mode,
            key,
            source: None,
            freeze: None,
            copy: &[],
        }
    }

    /// The `EVALSHA` for this call at `now`.
    fn invocation<'s>(&self, script: &'s Lua, now: u64, changes: &Changeset) -> LuaCall<'s> {
        let mut inv = match self.source {
            Some(source) => script.call(&[self.key, source]),
            None => script.call(&[self.key]),
        };
        let (lease_until, marker) = self.freeze.unwrap_or((0, ""));
        inv.arg(self.mode)
            .arg(now)
            .arg(changes.created_at_ms)
            .arg(changes.last_seen_ms)
            .arg(changes.expires_at_ms)
            .arg(ttl_ms(changes.expires_at_ms, now))
            .arg(lease_until)
            .arg(marker)
            .arg(call_id())
            .arg(self.copy.len());
        for (name, value) in self.copy {
            inv.arg(name.as_slice()).arg(value.as_slice());
        }
        inv.arg(changes.namespaces.len());
        let mut name = Vec::with_capacity(64);
        for change in &changes.namespaces {
            let ns = change.namespace.as_bytes();
            name.clear();
            name.extend_from_slice(b"@n:");
            name.extend_from_slice(ns);
            inv.arg(name.as_slice());
            name.clear();
            name.extend_from_slice(ns);
            name.push(b':');
            inv.arg(name.as_slice()).arg(change.version);
            match change.expected_revision {
                Some(revision) => inv.arg(revision),
                None => inv.arg(""),
            };
            let (op, fields) = match &change.op {
                NamespaceOp::Replace(fields) => ("R", Some(fields)),
                NamespaceOp::Patch(fields) => ("P", Some(fields)),
                NamespaceOp::Remove => ("D", None),
            };
            inv.arg(op).arg(fields.map_or(0, FieldMap::len));
            for (field, value) in fields.iter().flat_map(|f| f.iter()) {
                // `<ns>:` is in `name` already.
                name.truncate(ns.len() + 1);
                name.extend_from_slice(field.as_bytes());
                inv.arg(name.as_slice()).arg(value);
            }
        }
        inv
    }
}

/// The save script's reply as a [`SaveOutcome`].
fn outcome(reply: &Value, changes: &Changeset) -> Result<SaveOutcome, StoreError> {
    let Value::Array(items) = reply else {
        return Err(unexpected(reply));
    };
    let tag = match items.first() {
        Some(Value::BulkString(tag)) => tag.as_slice(),
        Some(Value::SimpleString(tag)) => tag.as_bytes(),
        _ => return Err(unexpected(reply)),
    };
    match tag {
        b"saved" => {
            let revisions = items[1..]
                .iter()
                .map(|v| match v {
                    Value::Int(n) => u64::try_from(*n).map_err(|_| unexpected(reply)),
                    other => Err(unexpected(other)),
                })
                .collect::<Result<Vec<u64>, _>>()?;
            if revisions.len() != changes.namespaces.len() {
                return Err(unexpected(reply));
            }
            Ok(SaveOutcome::Saved { revisions })
        }
        b"deleted" => Ok(SaveOutcome::Deleted),
        b"missing" => Ok(SaveOutcome::Missing),
        b"conflict" => {
            let index = match items.get(1) {
                Some(Value::Int(i)) => usize::try_from(*i).ok(),
                _ => None,
            };
            let change = index
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| changes.namespaces.get(i))
                .ok_or_else(|| unexpected(reply))?;
            Ok(SaveOutcome::Conflict {
                namespace: change.namespace,
            })
        }
        b"exists" => Err(StoreError::backend(
            "a session already exists under a fresh key",
        )),
        // Frozen by an id regeneration in Redis Cluster (a login on another
        // request): worth retrying, and never "the session ended", since
        // the move may yet fail and the session live on under this id.
        b"moving" => Err(StoreError::unavailable(
            "the session is being moved to a new id; retry",
        )),
        _ => Err(unexpected(reply)),
    }
}

/// Logs a cross-slot move that could not be undone.
fn warn_unfinished(err: &StoreError) {
    tracing::warn!(
        target: crate::LOG_TARGET,
        error = %err,
        "an id regeneration in Redis Cluster could not be undone; the session comes back under its old id when the move's lease runs out"
    );
}

/// Whether a script's reply is `{tag, …}`.
fn is_tag(reply: &Value, tag: &[u8]) -> bool {
    matches!(reply, Value::Array(items) if matches!(items.first(), Some(Value::BulkString(t)) if t == tag))
}

/// The fields of a `frozen` reply (step 1 of a cross-slot move), or `None`
/// for any other reply.
fn frozen_fields(reply: &Value) -> Option<decode::Pairs> {
    let Value::Array(items) = reply else {
        return None;
    };
    match items.first() {
        Some(Value::BulkString(tag)) if tag == b"frozen" => {}
        _ => return None,
    }
    let mut fields = Vec::with_capacity(items.len() / 2);
    for pair in items[1..].chunks(2) {
        match pair {
            [Value::BulkString(name), Value::BulkString(value)] => {
                fields.push((name.clone(), value.clone()));
            }
            _ => return None,
        }
    }
    Some(fields)
}

/// A reply the scripts never give: the key holds something else, or the
/// scripts in Redis are not ours.
fn unexpected(reply: &Value) -> StoreError {
    let kind = match reply {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::Array(_) => "an array",
        Value::BulkString(_) | Value::SimpleString(_) => "a string",
        Value::ServerError(_) => "an error",
        _ => "another type",
    };
    StoreError::backend(format!("unexpected reply from Redis: {kind}"))
}

/// Unreachable, timed out, loading, failing over: worth retrying (503).
/// Anything else (a script error, a key of another type): a backend error.
fn classify(err: RedisError) -> StoreError {
    let transient = err.is_io_error()
        || err.is_timeout()
        || err.is_connection_refusal()
        || err.is_connection_dropped()
        || matches!(
            err.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                        | ServerErrorKind::Moved
                        | ServerErrorKind::Ask
                )
        );
    // Replies redis-rs has no kind for: a script running too long (BUSY),
    // writes refused after a failed snapshot (MISCONF), too few replicas
    // (NOREPLICAS).
    let transient = transient || matches!(err.code(), Some("BUSY" | "MISCONF" | "NOREPLICAS"));
    if transient {
        StoreError::unavailable(RedisFailure(err))
    } else {
        StoreError::backend(RedisFailure(err))
    }
}

/// A `redis` crate error as the source of a [`StoreError`]: its message,
/// once (the crate's error repeats its I/O cause as its source).
#[derive(Debug)]
struct RedisFailure(RedisError);

impl fmt::Display for RedisFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redis: {}", self.0)
    }
}

impl std::error::Error for RedisFailure {}

/// A URL `Client::open` refused, named without its password.
fn invalid_url(url: &str, err: &RedisError) -> StoreError {
    let shown = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    };
    StoreError::backend(format!(
        "invalid Redis URL `{shown}` ({err}): expected redis://[:password@]host:port[/db], or rediss:// for TLS"
    ))
}

/// A failed first connection to `target` (`host:port`, never a password).
fn cannot_connect(target: &str, err: RedisError) -> StoreError {
    let hint = match err.code() {
        Some("NOAUTH") => {
            "; the server wants a password: put it in the URL, redis://:password@host:port/"
        }
        Some("WRONGPASS") => "; the user name or password in the URL is wrong",
        _ if err.kind() == ErrorKind::AuthenticationFailed => {
            "; the user name or password in the URL is wrong"
        }
        _ => "",
    };
    let message = format!("cannot use Redis at {target}: {err}{hint}");
    match classify(err) {
        StoreError::Unavailable(_) => StoreError::unavailable(message),
        _ => StoreError::backend(message),
    }
}

impl SessionStore for RedisStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>, StoreError> {
        let redis_key = &self.redis_key(key);
        let reply: Value = self
            .run(|mut conn| async move {
                ::redis::cmd("HGETALL")
                    .arg(redis_key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let pairs = decode::into_pairs(reply).map_err(|reply| unexpected(&reply))?;
        decode::record(pairs, self.inner.clock.now_ms()).map_err(StoreError::backend)
    }

    async fn save(&self, key: &SessionKey, changes: &Changeset) -> Result<SaveOutcome, StoreError> {
        self.save_now(key, changes).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let redis_key = &self.redis_key(key);
        let deleted: i64 = self
            .run(|mut conn| async move {
                ::redis::cmd("DEL")
                    .arg(redis_key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(deleted > 0)
    }

    async fn touch(
        &self,
        key: &SessionKey,
        last_seen_ms: u64,
        expires_at_ms: u64,
    ) -> Result<bool, StoreError> {
        let redis_key = &self.redis_key(key);
        let mut invocation = self.inner.touch.call(&[redis_key]);
        let now = self.inner.clock.now_ms();
        invocation
            .arg(now)
            .arg(last_seen_ms)
            .arg(expires_at_ms)
            .arg(ttl_ms(expires_at_ms, now));
        match self.script(invocation).await? {
            Value::Int(n) => Ok(n == 1),
            other => Err(unexpected(&other)),
        }
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let redis_key = &self.redis_key(key);
        let deadline: Option<Vec<u8>> = self
            .run(|mut conn| async move {
                ::redis::cmd("HGET")
                    .arg(redis_key)
                    .arg("@e")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        // A record being moved exists until the move deletes it; the
        // tombstone of a finished move has no deadline.
        let now = self.inner.clock.now_ms();
        Ok(deadline
            .as_deref()
            .and_then(decode::number)
            .is_some_and(|d| d > now))
    }
}
