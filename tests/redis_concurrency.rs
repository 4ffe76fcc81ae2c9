#![cfg(feature = "redis")]
//! Real parallel HTTP requests against `RedisStore`: the app is served with
//! `axum::serve` on loopback listeners and driven by a tiny HTTP/1.1
//! client (one connection per request), one or two app instances over
//! separately opened stores on the same `redis-server`.
//!
//! - 200 concurrent `Session::update` increments of one session end at
//!   exactly 200, on one instance and across two;
//! - a logout on one instance is never undone by a write in flight on the
//!   other, and a write that finished before a held logout is gone with it.
//!
//! Every wait is bounded; the timings measured are printed to stderr
//! (`--nocapture` shows them).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use typed_sessions::stores::RedisStore;
use typed_sessions::{Session, SessionLayer};
use typed_sessions_test_support::http_client::{REQUEST_BOUND, http};
use typed_sessions_test_support::redis_server::{RedisServer, stats_delta};
use typed_sessions_test_support::routes::held_counter_routes;
use typed_sessions_test_support::schemas::Other;
use typed_sessions_test_support::{Gate, is_removal, key_of};

/// How many concurrent increments.
const REQUESTS: u64 = 200;
/// How long `Session::update` may retry: generous, so that a slow machine
/// measures correctness, not scheduling (the default is 2 s).
const UPDATE_DEADLINE: Duration = Duration::from_secs(20);

/// One app instance: `/seed` (creates the session through another
/// namespace, so the counter starts at 0), `/atomic` (`Session::update`
/// increment, answering the count it committed), `/incr` (a plain write),
/// `/count`, `/logout` (`SessionHandle::destroy`), and the same held
/// between load and write until `gate` is released: `/held-incr`,
/// `/held-atomic`, `/held-logout`.
fn app(store: &RedisStore, gate: &Gate) -> Router {
    held_counter_routes(gate)
        .route(
            "/seed",
            post(|mut o: Session<Other>| async move { o.n = 1 }),
        )
        .layer(
            SessionLayer::builder(store.clone())
                .update_deadline(UPDATE_DEADLINE)
                .build()
                .unwrap(),
        )
}

/// An instance served on its own loopback listener, with its own store.
struct Instance {
    addr: SocketAddr,
    store: RedisStore,
    gate: Gate,
    server: JoinHandle<()>,
}

impl Instance {
    async fn start(redis: &RedisServer) -> Self {
        let store = tokio::time::timeout(REQUEST_BOUND, RedisStore::open(&redis.url()))
            .await
            .expect("open in time")
            .expect("Redis answers");
        let gate = Gate::default();
        let router = app(&store, &gate);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve");
        });
        Self {
            addr,
            store,
            gate,
            server,
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Sends `REQUESTS` concurrent `/atomic` requests with `cookie`, request
/// `i` to `instances[i % len]`, and checks that every one succeeded and
/// that the counts they committed are exactly `1..=REQUESTS`.
async fn increment_concurrently(instances: &[&Instance], cookie: &str, redis: &RedisServer) {
    let before = redis.command_stats();
    let started = Instant::now();
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let addr = instances[usize::try_from(i).unwrap() % instances.len()].addr;
            let cookie = cookie.to_owned();
            tokio::spawn(async move {
                let sent = Instant::now();
                let response = http(addr, "POST", "/atomic", Some(&cookie)).await;
                (response, sent.elapsed())
            })
        })
        .collect();
    let mut committed = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut failures = BTreeMap::<u16, u32>::new();
    for task in tasks {
        let (response, took) = task.await.expect("no panic");
        slowest = slowest.max(took);
        if response.status == 200 {
            committed.push(response.body.parse::<u64>().expect("a count"));
        } else {
            *failures.entry(response.status).or_default() += 1;
        }
    }
    let total = started.elapsed();
    let delta = stats_delta(&before, &redis.command_stats());
    let scripts = delta.get("evalsha").copied().unwrap_or(0);
    eprintln!(
        "{REQUESTS} concurrent updates over {} instance(s): {total:?} in all, slowest {slowest:?}; \
         Redis saw {scripts} EVALSHA ({} CAS retries) and {} HGETALL; failures {failures:?}",
        instances.len(),
        scripts.saturating_sub(REQUESTS),
        delta.get("hgetall").copied().unwrap_or(0),
    );
    assert!(failures.is_empty(), "every update succeeds: {failures:?}");
    committed.sort_unstable();
    assert_eq!(
        committed,
        (1..=REQUESTS).collect::<Vec<_>>(),
        "each update committed its own count"
    );
}

/// The stored count, straight from Redis (`HGETALL`, field `counter:count`).
fn stored_count(redis: &RedisServer, key: &str) -> Option<String> {
    let all = redis.command(&["HGETALL", key]);
    let lines: Vec<&str> = all.lines().collect();
    lines
        .chunks(2)
        .find(|pair| pair[0] == "counter:count")
        .map(|pair| pair[1].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_over_http_lose_nothing() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = Instance::start(&redis).await;
    let cookie = http(a.addr, "POST", "/seed", None).await.cookie();
    increment_concurrently(&[&a], &cookie, &redis).await;

    let read = http(a.addr, "GET", "/count", Some(&cookie)).await;
    assert_eq!((read.status, read.body.as_str()), (200, "200"));
    let key = a.store.redis_key(&key_of(&cookie));
    assert_eq!(stored_count(&redis, &key).as_deref(), Some("200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_across_two_instances_lose_nothing() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = Instance::start(&redis).await;
    let b = Instance::start(&redis).await;
    let cookie = http(a.addr, "POST", "/seed", None).await.cookie();
    increment_concurrently(&[&a, &b], &cookie, &redis).await;

    for instance in [&a, &b] {
        let read = http(instance.addr, "GET", "/count", Some(&cookie)).await;
        assert_eq!((read.status, read.body.as_str()), (200, "200"));
    }
    let key = b.store.redis_key(&key_of(&cookie));
    assert_eq!(key, a.store.redis_key(&key_of(&cookie)));
    assert_eq!(stored_count(&redis, &key).as_deref(), Some("200"));
}

/// Whether Redis holds any session at all.
fn session_keys(redis: &RedisServer) -> String {
    redis.command(&["KEYS", "session:*"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_is_never_undone_by_a_write_in_flight_on_another() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = Instance::start(&redis).await;
    let b = Instance::start(&redis).await;

    for route in ["/held-incr", "/held-atomic"] {
        let cookie = http(a.addr, "POST", "/incr", None).await.cookie();
        let key = a.store.redis_key(&key_of(&cookie));
        assert_eq!(stored_count(&redis, &key).as_deref(), Some("1"));

        // A loads the session and holds before its write.
        let held = tokio::spawn({
            let (addr, cookie) = (a.addr, cookie.clone());
            async move { http(addr, "POST", route, Some(&cookie)).await }
        });
        tokio::time::timeout(REQUEST_BOUND, a.gate.loaded())
            .await
            .expect("A's handler loads");

        // B logs out meanwhile.
        let logout = http(b.addr, "POST", "/logout", Some(&cookie)).await;
        assert_eq!(logout.status, 200, "{logout:?}");
        assert!(is_removal(&logout.set_cookies[0]), "{logout:?}");
        assert_eq!(redis.command(&["EXISTS", &key]), "0", "{route}: logged out");

        // A writes now.
        let started = Instant::now();
        a.gate.release();
        let written = tokio::time::timeout(REQUEST_BOUND, held)
            .await
            .expect("A answers")
            .expect("no panic");
        eprintln!(
            "{route} on A after B's logout: {} {:?} in {:?}",
            written.status,
            written.body,
            started.elapsed()
        );
        assert_eq!(
            written.status, 409,
            "{route}: the write is refused: {written:?}"
        );
        assert!(
            written.set_cookies.iter().all(|c| is_removal(c)),
            "{route}: no session handed out in its place: {written:?}"
        );

        assert_eq!(
            redis.command(&["EXISTS", &key]),
            "0",
            "{route}: not re-created"
        );
        assert_eq!(session_keys(&redis), "", "{route}: no session anywhere");
        for instance in [&a, &b] {
            let read = http(instance.addr, "GET", "/count", Some(&cookie)).await;
            assert_eq!((read.status, read.body.as_str()), (200, "0"), "{route}");
            assert!(read.set_cookies.iter().all(|c| is_removal(c)), "{read:?}");
        }
        assert_eq!(session_keys(&redis), "", "{route}: reads create nothing");
    }

    // The reverse: B's logout loads and holds; A's write finishes; the
    // logout then ends the session, A's write included.
    let cookie = http(a.addr, "POST", "/incr", None).await.cookie();
    let key = a.store.redis_key(&key_of(&cookie));
    let held = tokio::spawn({
        let (addr, cookie) = (b.addr, cookie.clone());
        async move { http(addr, "POST", "/held-logout", Some(&cookie)).await }
    });
    tokio::time::timeout(REQUEST_BOUND, b.gate.loaded())
        .await
        .expect("B's handler loads");
    let write = http(a.addr, "POST", "/incr", Some(&cookie)).await;
    assert_eq!((write.status, write.body.as_str()), (200, "2"));
    assert_eq!(stored_count(&redis, &key).as_deref(), Some("2"));
    b.gate.release();
    let logout = tokio::time::timeout(REQUEST_BOUND, held)
        .await
        .expect("B answers")
        .expect("no panic");
    assert_eq!(
        (logout.status, logout.body.as_str()),
        (200, "1"),
        "{logout:?}"
    );
    assert!(is_removal(&logout.set_cookies[0]), "{logout:?}");
    assert_eq!(redis.command(&["EXISTS", &key]), "0", "the held logout won");
    let read = http(a.addr, "GET", "/count", Some(&cookie)).await;
    assert_eq!((read.status, read.body.as_str()), (200, "0"));
    assert_eq!(session_keys(&redis), "");
}
