#![cfg(feature = "redis")]
//! `RedisStore` against a real Redis Cluster of three masters that this
//! test binary starts itself (issue #9): the store conformance suite, the
//! router-level lifecycle suite, a slot moved under a live session
//! (`MOVED`), id regeneration across slots, a rename racing a logout, and
//! stale and live move markers (`@m`).
//!
//! # Which cluster
//!
//! A cluster takes about two seconds to start, so the suites (56 cases)
//! share one per test process: [`shared_cluster`] starts it on first use.
//! Every store on it gets its own key prefix, so the cases never see each
//! other's keys and a case can count the keys its store left behind.
//! A static is never dropped, so the shared cluster is torn down by a
//! watchdog instead (see [`spawn_watchdog`]): a `sh` whose stdin is a pipe
//! that only this process holds open; when the process exits, however it
//! exits, the kernel closes the pipe, the watchdog reads end-of-file, kills
//! the three nodes by pid (`kill -9`, after checking that the pid is still
//! that node's `redis-server`) and removes their directories. Under a
//! runner that starts a process per test (cargo-nextest) each process
//! starts and tears down its own cluster: slower, still clean.
//!
//! Tests that move a slot or pause a node start a cluster of their own
//! (so that they never disturb the shared one), which their drop kills;
//! it has a watchdog too, for a process that dies before the drop.
//!
//! Without `redis-server` and `redis-cli` every test returns early after a
//! loud `SKIPPED` banner, except with `CI=true`, where that fails.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use tokio::runtime::Handle;
use typed_sessions::stores::{
    Changeset, NamespaceChange, NamespaceOp, RedisStore, RedisStoreBuilder, SaveMode, SaveOutcome,
    SessionKey, SessionStore,
};
use typed_sessions::{Clock, Session, SessionHandle, SessionLayer};
use typed_sessions_test_support::redis_server::{RedisCluster, RedisServer, Reply as Resp};
use typed_sessions_test_support::routes::counter_routes;
use typed_sessions_test_support::schemas::Counter;
use typed_sessions_test_support::{fetch, key_of, submit};

mod conformance {
    typed_sessions::conformance_tests!(
        when super::shared_cluster().is_some();
        super::shared_store(None)
    );
}

mod lifecycle {
    typed_sessions_test_support::lifecycle_tests!(
        when super::shared_cluster().is_some();
        |clock| super::shared_store(Some(clock))
    );
}

/// The shared cluster and the watchdog that tears it down when the
/// process exits.
struct Shared {
    cluster: RedisCluster,
    /// Holds the write end of the watchdog's stdin open (`Child::stdin`):
    /// never written to, closed by the kernel when this process exits.
    _watchdog: Child,
}

/// The cluster the suites share, started on first use; `None` (after a
/// loud `SKIPPED` banner, once) when Redis is not installed.
fn shared_cluster() -> Option<&'static RedisCluster> {
    static SHARED: OnceLock<Option<Shared>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            start_watched().map(|(cluster, watchdog)| Shared {
                cluster,
                _watchdog: watchdog,
            })
        })
        .as_ref()
        .map(|shared| &shared.cluster)
}

/// A cluster and its watchdog ([`spawn_watchdog`]), `None` (after a loud
/// `SKIPPED` banner) when Redis is not installed. A test that owns its
/// cluster drops it at the end (killing the nodes at once) and keeps the
/// watchdog for the case where the process dies before that.
fn start_watched() -> Option<(RedisCluster, Child)> {
    let cluster = RedisCluster::start()?;
    let watchdog = spawn_watchdog(&cluster);
    Some((cluster, watchdog))
}

/// Starts a watchdog that kills `cluster`'s nodes and removes their
/// directories once this process has exited.
///
/// It is `sh` reading its stdin, a pipe whose write end only this process
/// holds (Rust opens pipes close-on-exec, so no other child inherits it):
/// `cat` returns at end-of-file, that is when this process is gone, killed
/// or not. It ignores SIGINT, SIGTERM and SIGHUP, so that a Ctrl-C to the
/// process group does not stop it before it has cleaned up. It kills a
/// pid only when `/proc/<pid>/cmdline` still names that node's
/// `127.0.0.1:<port>` (where `/proc` exists), so a reused pid is left alone.
fn spawn_watchdog(cluster: &RedisCluster) -> Child {
    const SCRIPT: &str = r#"
trap '' INT TERM HUP
cat >/dev/null
while [ "$#" -ge 3 ]; do
  pid=$1 port=$2 dir=$3
  shift 3
  if [ ! -d /proc/self ] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "127.0.0.1:$port"; then
    kill -9 "$pid" 2>/dev/null
  fi
  rm -rf "$dir"
done
"#;
    let mut command = Command::new("sh");
    command.arg("-c").arg(SCRIPT).arg("redis-cluster-watchdog");
    for node in cluster.nodes() {
        command
            .arg(node.pid().to_string())
            .arg(node.port().to_string())
            .arg(node.dir());
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the cluster watchdog (sh)")
}

/// A key prefix no other store in this process uses.
fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("cluster-test-{}:", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A store on the shared cluster under a fresh prefix, on `clock` when
/// given. Called from the suites' synchronous store expressions, which run
/// inside a multi-threaded Tokio runtime (`Runtime::block_on`): the
/// connection must be made on that runtime (its tasks live there), so the
/// async constructor runs through `block_in_place`.
fn shared_store(clock: Option<Arc<dyn Clock>>) -> RedisStore {
    let cluster = shared_cluster().expect("checked by the `when` condition");
    let mut builder = RedisStore::builder().prefix(unique_prefix());
    if let Some(clock) = clock {
        builder = builder.clock(clock);
    }
    tokio::task::block_in_place(|| Handle::current().block_on(open(cluster, builder)))
}

/// Opens `builder` on `cluster`.
async fn open(cluster: &RedisCluster, builder: RedisStoreBuilder) -> RedisStore {
    builder
        .open_cluster(cluster.urls())
        .await
        .expect("connect to the test cluster")
}

/// `/count`, `/incr`, `/regenerate` and `/incr-and-regenerate` over `store`.
fn app(store: RedisStore) -> Router {
    counter_routes()
        .route(
            "/regenerate",
            post(|h: SessionHandle| async move {
                h.regenerate_id();
                "new id"
            }),
        )
        .route(
            "/incr-and-regenerate",
            post(|mut c: Session<Counter>, h: SessionHandle| async move {
                c.count += 1;
                h.regenerate_id();
                c.count.to_string()
            }),
        )
        .layer(SessionLayer::new(store))
}

/// The node that serves `key`.
fn owner<'c>(cluster: &'c RedisCluster, key: &str) -> (usize, &'c RedisServer) {
    let index = cluster.owner_of_slot(cluster.slot_of(key));
    (index, &cluster.nodes()[index])
}

/// Every key under `prefix` on every node, sorted.
fn keys_under(cluster: &RedisCluster, prefix: &str) -> Vec<String> {
    let pattern = format!("{prefix}*");
    let mut keys: Vec<String> = cluster
        .nodes()
        .iter()
        .flat_map(|node| match node.query(&["KEYS", &pattern]) {
            Ok(Resp::Array(keys)) => keys.iter().map(ToString::to_string).collect::<Vec<_>>(),
            other => panic!("KEYS {pattern} on 127.0.0.1:{}: {other:?}", node.port()),
        })
        .collect();
    keys.sort();
    keys
}

/// How many commands `node` answered with a `MOVED` redirection (`INFO
/// errorstats`).
fn moved_redirections(node: &RedisServer) -> u64 {
    node.command(&["INFO", "errorstats"])
        .lines()
        .find_map(|line| line.trim_end().strip_prefix("errorstat_MOVED:count="))
        .map_or(0, |count| count.parse().expect("a count"))
}

use typed_sessions_test_support::now_ms;

/// A store key made from `n` (stores under a fresh prefix never collide).
fn key(n: u64) -> SessionKey {
    typed_sessions_test_support::numbered_key(n, 0x5a)
}

/// A changeset setting `a:x` to `value`, a minute to live.
fn changeset(
    mode: SaveMode,
    op: fn(typed_sessions::FieldMap) -> NamespaceOp,
    value: &str,
) -> Changeset {
    let now = now_ms();
    let fields = std::iter::once(("x", value.as_bytes().to_vec())).collect();
    Changeset::new(
        mode,
        now,
        now,
        now + 60_000,
        vec![NamespaceChange::new("a", 1, None, op(fields))],
    )
}

/// A session created through the layer, its slot moved to another node:
/// the store follows the `MOVED` redirection, reads the data intact and
/// writes to the new owner; the old owner no longer has the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_a_slot_moved_under_a_live_session() {
    // Its own cluster: moving a slot of the shared one would disturb the
    // suites running next to it.
    let Some((cluster, _watchdog)) = tokio::task::block_in_place(start_watched) else {
        return;
    };
    let store = open(&cluster, RedisStore::builder()).await;
    let app = app(store.clone());

    let cookie = submit(&app, "/incr", None).await.cookie();
    let redis_key = store.redis_key(&key_of(&cookie));
    let slot = cluster.slot_of(&redis_key);
    let (from, old_owner) = owner(&cluster, &redis_key);
    assert_eq!(
        old_owner.command(&["HGET", &redis_key, "counter:count"]),
        "1"
    );

    let to = (from + 1) % 3;
    tokio::task::block_in_place(|| cluster.move_slot(slot, to));
    assert_eq!(cluster.owner_of_slot(slot), to);
    let new_owner = &cluster.nodes()[to];
    cluster.reset_stats();

    // A read: the store still maps the slot to the old owner, gets MOVED,
    // and follows it.
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
    assert!(
        moved_redirections(old_owner) >= 1,
        "the store's first command after the move went to the old owner and was redirected"
    );
    assert!(
        new_owner.command_stats().contains_key("hgetall"),
        "the load was answered by the new owner"
    );

    // A write lands on the new owner.
    let old_stats = old_owner.command_stats();
    let r = submit(&app, "/incr", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "2");
    assert!(
        new_owner.command_stats().contains_key("evalsha"),
        "the save script ran on the new owner"
    );
    assert_eq!(
        old_owner.command_stats(),
        old_stats,
        "the old owner executed nothing (a redirected command is not a call)"
    );
    assert_eq!(
        new_owner.command(&["HGET", &redis_key, "counter:count"]),
        "2"
    );
    assert_eq!(
        old_owner.command(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]),
        "0",
        "the old owner holds no key of the slot"
    );
    assert_eq!(
        old_owner.query(&["HGETALL", &redis_key]).unwrap(),
        Resp::Error(format!("MOVED {slot} 127.0.0.1:{}", new_owner.port())),
    );
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "2");
}

/// Id regeneration in a cluster moves the record across slots: afterwards
/// the old key is gone, the new key holds the data with no `@m` marker,
/// and the store's prefix holds exactly one key. Repeated until at least
/// one move also crossed nodes, alternating a bare regeneration (a rename
/// with no changes) with a regeneration that also writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_regeneration_moves_the_record_across_slots() {
    let Some(cluster) = tokio::task::block_in_place(shared_cluster) else {
        return;
    };
    let prefix = unique_prefix();
    let store = open(cluster, RedisStore::builder().prefix(&prefix)).await;
    let app = app(store.clone());

    let mut cookie = submit(&app, "/incr", None).await.cookie();
    let mut count = 1;
    let mut crossed_nodes = 0;
    let mut rounds = 0;
    while crossed_nodes == 0 || rounds < 2 {
        rounds += 1;
        assert!(rounds <= 30, "no regeneration crossed nodes in 30 rounds");
        let old_key = store.redis_key(&key_of(&cookie));
        let route = if rounds % 2 == 1 {
            "/regenerate"
        } else {
            count += 1;
            "/incr-and-regenerate"
        };
        let r = submit(&app, route, Some(&cookie)).await;
        assert_eq!(r.status, 200, "{route}: {}", r.body);
        let new_cookie = r.cookie();
        assert_ne!(new_cookie, cookie, "{route} gives a new id");
        let new_key = store.redis_key(&key_of(&new_cookie));

        assert_ne!(
            cluster.slot_of(&old_key),
            cluster.slot_of(&new_key),
            "the old and the new key hash to different slots"
        );
        let (old_index, old_owner) = owner(cluster, &old_key);
        let (new_index, new_owner) = owner(cluster, &new_key);
        if old_index != new_index {
            crossed_nodes += 1;
        }
        assert_eq!(
            old_owner.command(&["HGETALL", &old_key]),
            format!("@m\ndone|{}", key_of(&new_cookie).to_hex()),
            "the old key holds only the finished move's tombstone"
        );
        assert_eq!(
            new_owner.command(&["HGET", &new_key, "counter:count"]),
            count.to_string(),
            "the new key holds the data"
        );
        assert_eq!(
            new_owner.command(&["HEXISTS", &new_key, "@m"]),
            "0",
            "no move marker remains"
        );
        let live: Vec<String> = keys_under(cluster, &prefix)
            .into_iter()
            .filter(|k| {
                !owner(cluster, k)
                    .1
                    .command(&["HGET", k, "@m"])
                    .starts_with("done|")
            })
            .collect();
        assert_eq!(
            live,
            std::slice::from_ref(&new_key),
            "exactly one key holds the session (the others are tombstones)"
        );
        assert_eq!(
            fetch(&app, "/count", Some(&new_cookie)).await.body,
            count.to_string()
        );
        assert_eq!(
            fetch(&app, "/count", Some(&cookie)).await.body,
            "0",
            "the old id no longer opens the session"
        );
        cookie = new_cookie;
    }
}

/// The sequential contract of a rename racing a logout: a rename whose
/// source was deleted first is `Missing` and creates nothing; a logout of
/// the old id after a finished rename is a no-op for the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_after_a_logout_creates_nothing() {
    let Some(cluster) = tokio::task::block_in_place(shared_cluster) else {
        return;
    };
    let prefix = unique_prefix();
    let store = open(cluster, RedisStore::builder().prefix(&prefix)).await;
    let (source, target) = (key(1), key(2));
    assert_ne!(
        cluster.slot_of(&store.redis_key(&source)),
        cluster.slot_of(&store.redis_key(&target)),
        "a cross-slot rename"
    );

    let created = changeset(SaveMode::Create, NamespaceOp::Replace, "1");
    assert!(matches!(
        store.save(&source, &created).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
    assert!(store.delete(&source).await.unwrap(), "the logout");
    let rename = changeset(SaveMode::Rename { from: source }, NamespaceOp::Patch, "2");
    assert_eq!(
        store.save(&target, &rename).await.unwrap(),
        SaveOutcome::Missing
    );
    assert!(store.load(&target).await.unwrap().is_none());
    assert_eq!(keys_under(cluster, &prefix), Vec::<String>::new());

    // The other order: the rename finishes, then the old id logs out.
    let (source, target) = (key(3), key(4));
    store.save(&source, &created).await.unwrap();
    let rename = changeset(SaveMode::Rename { from: source }, NamespaceOp::Patch, "2");
    assert!(matches!(
        store.save(&target, &rename).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
    // Only the finished move's tombstone is left to delete.
    store.delete(&source).await.unwrap();
    assert!(store.load(&source).await.unwrap().is_none());
    let record = store
        .load(&target)
        .await
        .unwrap()
        .expect("the moved record");
    assert_eq!(
        record.namespace("a").unwrap().fields.get("x"),
        Some(&b"2"[..])
    );
    assert_eq!(keys_under(cluster, &prefix), [store.redis_key(&target)]);
}

/// A logout that lands while a cross-slot rename is in flight, made
/// deterministic: the target's node is paused for writes (`CLIENT PAUSE
/// … WRITE`), so the rename stops after freezing the source (step 1) and
/// before installing the copy (step 2). While frozen the source reads as
/// it is and refuses writes; then it is deleted (the logout), the node is
/// unpaused, and the rename must end `Missing` with no key left anywhere:
/// a logout is never undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_during_a_cross_slot_rename_wins() {
    // Its own cluster: a paused node would stall the suites' stores.
    let Some((cluster, _watchdog)) = tokio::task::block_in_place(start_watched) else {
        return;
    };
    let prefix = unique_prefix();
    // Long enough that the paused install does not time out.
    let store = open(
        &cluster,
        RedisStore::builder()
            .prefix(&prefix)
            .command_timeout(Duration::from_secs(10)),
    )
    .await;
    let source = key(1);
    let source_key = store.redis_key(&source);
    let (source_index, source_owner) = owner(&cluster, &source_key);
    let target = (2..100)
        .map(key)
        .find(|k| owner(&cluster, &store.redis_key(k)).0 != source_index)
        .expect("a key on another node");
    let target_key = store.redis_key(&target);
    let (_, target_owner) = owner(&cluster, &target_key);

    let created = changeset(SaveMode::Create, NamespaceOp::Replace, "1");
    // Warm-up: one finished rename and one refresh load all three scripts,
    // so that nothing but the install waits on the paused node below.
    let (warm, warmer) = (key(1_000), key(1_001));
    store.save(&warm, &created).await.unwrap();
    let rename = changeset(SaveMode::Rename { from: warm }, NamespaceOp::Patch, "2");
    store.save(&warmer, &rename).await.unwrap();
    assert!(
        store
            .touch(&warmer, now_ms(), now_ms() + 60_000)
            .await
            .unwrap()
    );
    assert!(store.delete(&warmer).await.unwrap());
    // The warm-up move left a tombstone under its old key.
    store.delete(&warm).await.unwrap();

    store.save(&source, &created).await.unwrap();
    assert_eq!(
        target_owner.command(&["CLIENT", "PAUSE", "20000", "WRITE"]),
        "OK"
    );
    let rename = tokio::spawn({
        let store = store.clone();
        let changes = changeset(SaveMode::Rename { from: source }, NamespaceOp::Patch, "2");
        async move { store.save(&target, &changes).await }
    });

    // Step 1 done: the source carries this move's marker.
    let deadline = Instant::now() + Duration::from_secs(5);
    let marker = loop {
        let marker = source_owner.command(&["HGET", &source_key, "@m"]);
        if marker != "(nil)" {
            break marker;
        }
        assert!(Instant::now() < deadline, "the source was never frozen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let (moving_to, lease_end) = marker.split_once('|').expect("`<target>|<lease end>`");
    assert_eq!(moving_to, target.to_hex());
    assert!(lease_end.parse::<u64>().unwrap() > now_ms(), "a live lease");
    assert!(
        !rename.is_finished(),
        "the install waits for the paused node"
    );

    // Frozen: readable as it is (so that a logout finds it and deletes
    // it), but refuses writes (worth retrying: the move may fail) and
    // refreshes.
    assert!(store.load(&source).await.unwrap().is_some());
    assert!(store.exists(&source).await.unwrap());
    let update = changeset(SaveMode::Update, NamespaceOp::Patch, "3");
    assert!(matches!(
        store.save(&source, &update).await,
        Err(typed_sessions::stores::StoreError::Unavailable(_))
    ));
    assert!(
        !store
            .touch(&source, now_ms(), now_ms() + 60_000)
            .await
            .unwrap()
    );
    assert_eq!(
        source_owner.command(&["HGET", &source_key, "a:x"]),
        "1",
        "the frozen record is still there, unchanged"
    );

    // The logout.
    assert!(store.delete(&source).await.unwrap());
    assert_eq!(target_owner.command(&["CLIENT", "UNPAUSE"]), "OK");

    let outcome = rename.await.unwrap().unwrap();
    assert_eq!(outcome, SaveOutcome::Missing, "the logout wins");
    assert!(store.load(&target).await.unwrap().is_none());
    assert!(store.load(&source).await.unwrap().is_none());
    assert_eq!(source_owner.command(&["EXISTS", &source_key]), "0");
    assert_eq!(
        target_owner.command(&["EXISTS", &target_key]),
        "0",
        "the installed copy was deleted again"
    );
    assert_eq!(keys_under(&cluster, &prefix), Vec::<String>::new());
}

/// A move marker left by a move that never finished: once its lease has
/// run out (or when it is not a marker this version can read) the session
/// is live and the next write removes the marker; while the lease holds
/// the session reads as it is but refuses writes, and nothing of it changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_move_marker_is_cleared_and_a_live_one_hides_the_session() {
    let Some(cluster) = tokio::task::block_in_place(shared_cluster) else {
        return;
    };
    let store = open(cluster, RedisStore::builder().prefix(unique_prefix())).await;
    let app = app(store.clone());
    let cookie = submit(&app, "/incr", None).await.cookie();
    let session = key_of(&cookie);
    let redis_key = store.redis_key(&session);
    let (_, node) = owner(cluster, &redis_key);
    let elsewhere = key(7).to_hex();

    // Expired lease, then a marker without a lease: live, cleared by a write.
    let mut count = 1;
    for stale in [
        format!("{elsewhere}|{}", now_ms() - 1_000),
        "not-a-marker".to_owned(),
    ] {
        assert_eq!(node.command(&["HSET", &redis_key, "@m", &stale]), "1");
        assert_eq!(
            fetch(&app, "/count", Some(&cookie)).await.body,
            count.to_string(),
            "{stale}: the session is live"
        );
        assert!(store.exists(&session).await.unwrap());
        count += 1;
        let r = submit(&app, "/incr", Some(&cookie)).await;
        assert_eq!(r.body, count.to_string());
        assert_eq!(r.cookie(), cookie, "the same session");
        assert_eq!(
            node.command(&["HEXISTS", &redis_key, "@m"]),
            "0",
            "{stale}: the write removed the marker"
        );
        assert_eq!(
            node.command(&["HGET", &redis_key, "counter:count"]),
            count.to_string()
        );
    }

    // A live lease: the session reads as it is, refuses writes and
    // refreshes, and is left alone.
    let live = format!("{elsewhere}|{}", now_ms() + 60_000);
    assert_eq!(node.command(&["HSET", &redis_key, "@m", &live]), "1");
    assert_eq!(
        fetch(&app, "/count", Some(&cookie)).await.body,
        count.to_string()
    );
    assert!(store.load(&session).await.unwrap().is_some());
    assert!(store.exists(&session).await.unwrap());
    assert!(
        !store
            .touch(&session, now_ms(), now_ms() + 60_000)
            .await
            .unwrap()
    );
    let r = submit(&app, "/incr", Some(&cookie)).await;
    assert_eq!(
        r.status, 503,
        "a write to a session being moved: retry: {r:?}"
    );
    assert_eq!(
        node.command(&["HGET", &redis_key, "@m"]),
        live,
        "the marker is untouched"
    );
    assert_eq!(
        node.command(&["HGET", &redis_key, "counter:count"]),
        count.to_string(),
        "the frozen data is untouched"
    );

    // The lease runs out: the session is back.
    let expired = format!("{elsewhere}|{}", now_ms() - 1);
    assert_eq!(node.command(&["HSET", &redis_key, "@m", &expired]), "0");
    assert_eq!(
        fetch(&app, "/count", Some(&cookie)).await.body,
        count.to_string()
    );
}

/// A rename onto a key that already holds a record (an id collision, or
/// misuse) is an error that leaves both records as they were, as on a
/// single server: the record under the target is not the move's to delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_onto_an_existing_key_keeps_both_records() {
    let Some(cluster) = tokio::task::block_in_place(shared_cluster) else {
        return;
    };
    let prefix = unique_prefix();
    let store = open(cluster, RedisStore::builder().prefix(&prefix)).await;
    let (source, target) = (key(1), key(2));
    let created = changeset(SaveMode::Create, NamespaceOp::Replace, "source");
    store.save(&source, &created).await.unwrap();
    let other = changeset(SaveMode::Create, NamespaceOp::Replace, "target");
    store.save(&target, &other).await.unwrap();
    let rename = changeset(
        SaveMode::Rename { from: source },
        NamespaceOp::Patch,
        "moved",
    );
    assert!(store.save(&target, &rename).await.is_err());
    let field = |record: Option<typed_sessions::stores::Record>| {
        record
            .unwrap()
            .namespace("a")
            .unwrap()
            .fields
            .get("x")
            .unwrap()
            .to_vec()
    };
    assert_eq!(field(store.load(&source).await.unwrap()), b"source");
    assert_eq!(field(store.load(&target).await.unwrap()), b"target");
    let hash = owner(cluster, &store.redis_key(&source))
        .1
        .command(&["HGETALL", &store.redis_key(&source)]);
    assert!(!hash.contains("@m"), "the source is unfrozen: {hash}");
}

/// The first use of a script on a fresh cluster needs only the node that
/// owns the key: with another node stalled (`DEBUG SLEEP`), a save to a
/// healthy node answers at once (`EVALSHA`, then `EVAL` on that node
/// alone, never a `SCRIPT LOAD` sent to every node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripts_first_use_does_not_wait_for_other_nodes() {
    let Some((cluster, _watchdog)) = tokio::task::block_in_place(start_watched) else {
        return;
    };
    let store = open(&cluster, RedisStore::builder()).await;
    // A key on node 0, and node 1 asleep for two seconds.
    let key = (0..1_000)
        .map(key)
        .find(|k| owner(&cluster, &store.redis_key(k)).0 == 0)
        .unwrap();
    let sleeper = cluster.nodes()[1].command_in_background(&["DEBUG", "SLEEP", "2"]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let created = changeset(SaveMode::Create, NamespaceOp::Replace, "1");
    let outcome = store.save(&key, &created).await.unwrap();
    let took = started.elapsed();
    assert!(matches!(outcome, SaveOutcome::Saved { .. }), "{outcome:?}");
    assert!(took < Duration::from_millis(900), "took {took:?}");
    let stats = cluster.nodes()[0].command_stats();
    assert_eq!(stats.get("eval"), Some(&1), "{stats:?}");
    assert_eq!(stats.get("script|load"), None, "{stats:?}");
    sleeper.join().unwrap();
}
