#![cfg(feature = "redis")]
//! Redis failing under a real `SessionLayer`: down on load, down between
//! the load and the write, back again (reconnection without a new store),
//! stalled (`DEBUG SLEEP`), and down when the app starts (`open_lazy`).
//!
//! Every test starts, kills and restarts its own `redis-server` on a free
//! loopback port (skipped with a loud banner when the binary is missing,
//! outside CI), and every wait is bounded. The timings measured are
//! printed to stderr (`--nocapture` shows them).

use std::time::{Duration, Instant};

use axum::Router;
use typed_sessions::stores::RedisStore;
use typed_sessions::{SessionLayer, StoreDownPolicy};
use typed_sessions_test_support::redis_server::RedisServer;
use typed_sessions_test_support::routes::held_counter_routes;
use typed_sessions_test_support::{Gate, Reply, fetch, key_of, submit};

/// The command timeout of the stores here, unless a test needs another.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// What a request may take on top of the command timeout.
const MARGIN: Duration = Duration::from_millis(700);
/// The bound on any single request of these tests.
const REQUEST_BOUND: Duration = Duration::from_secs(10);
/// The bound on waiting for the service to come back.
const RECOVERY_BOUND: Duration = Duration::from_secs(10);
/// The polling interval while waiting for the service to come back.
const POLL: Duration = Duration::from_millis(50);
/// The `Retry-After` the fail-closed layers send.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// The counter app: `/incr` (a plain write), `/count`, and two routes that
/// hold between their load and their write until the test releases `gate`:
/// `/held-incr` (a plain write, saved at the end of the request) and
/// `/held-atomic` (`Session::update`, committed inside the handler).
fn app(store: &RedisStore, policy: StoreDownPolicy, gate: &Gate) -> Router {
    held_counter_routes(gate).layer(
        SessionLayer::builder(store.clone())
            .on_store_down(policy)
            .build()
            .unwrap(),
    )
}

fn fail_closed() -> StoreDownPolicy {
    StoreDownPolicy::FailClosed {
        retry_after: RETRY_AFTER,
    }
}

async fn open(server: &RedisServer, timeout: Duration) -> RedisStore {
    bounded(
        "open the store",
        RedisStore::builder()
            .command_timeout(timeout)
            .open(&server.url()),
    )
    .await
    .expect("Redis answers")
}

/// Awaits `future`, failing the test (not hanging it) past `REQUEST_BOUND`.
async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(REQUEST_BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {REQUEST_BOUND:?}"))
}

/// Sends one request through `app`, timed.
async fn timed(app: &Router, method: &str, uri: &str, cookie: Option<&str>) -> (Reply, Duration) {
    let started = Instant::now();
    let reply = bounded(uri, async {
        if method == "GET" {
            fetch(app, uri, cookie).await
        } else {
            submit(app, uri, cookie).await
        }
    })
    .await;
    (reply, started.elapsed())
}

/// A 503 for a store failure: `Retry-After`, no cookie change, no internals.
fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 503, "{what}: {reply:?}");
    assert_eq!(
        reply.headers.get(http::header::RETRY_AFTER).unwrap(),
        &RETRY_AFTER.as_secs().to_string(),
        "{what}"
    );
    assert!(
        reply.set_cookies.is_empty(),
        "{what}: the client's cookie stays: {:?}",
        reply.set_cookies
    );
    assert!(
        !reply.body.to_lowercase().contains("redis"),
        "{what}: no internals to the client: {}",
        reply.body
    );
}

/// Polls `GET /count` every `POLL` until it answers 200; returns the reply,
/// the time it took and the number of failed attempts before it.
async fn until_served(app: &Router, cookie: &str) -> (Reply, Duration, u32) {
    let started = Instant::now();
    let mut failures = 0;
    loop {
        let (reply, _) = timed(app, "GET", "/count", Some(cookie)).await;
        if reply.status == 200 {
            return (reply, started.elapsed(), failures);
        }
        assert_eq!(reply.status, 503, "only 503 while recovering: {reply:?}");
        failures += 1;
        assert!(
            started.elapsed() < RECOVERY_BOUND,
            "the service did not come back within {RECOVERY_BOUND:?} ({failures} attempts)"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Kills the server (a blocking wait for the process) from async code.
fn kill(server: &mut RedisServer) {
    tokio::task::block_in_place(|| server.kill());
}

/// Restarts the server on its port and waits until it answers `PING`.
fn restart(server: &mut RedisServer) {
    tokio::task::block_in_place(|| server.restart());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_on_load_is_503_with_retry_after_or_anonymous_when_failing_open() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = open(&server, COMMAND_TIMEOUT).await;
    let gate = Gate::default();
    let closed = app(&store, fail_closed(), &gate);
    let open = app(&store, StoreDownPolicy::FailOpen, &gate);
    let cookie = submit(&closed, "/incr", None).await.cookie();
    assert_eq!(fetch(&open, "/count", Some(&cookie)).await.body, "1");

    kill(&mut server);
    for attempt in 1..=3 {
        let (reply, took) = timed(&closed, "GET", "/count", Some(&cookie)).await;
        eprintln!("down on load, fail closed, attempt {attempt}: 503 in {took:?}");
        assert_unavailable(&reply, "a load while Redis is down");
        assert!(took < COMMAND_TIMEOUT + MARGIN, "took {took:?}");
    }
    let (reply, _) = timed(&closed, "POST", "/incr", Some(&cookie)).await;
    assert_unavailable(&reply, "a write whose load fails");

    // No cookie: nothing to load, nothing to save, no store I/O.
    let (reply, _) = timed(&closed, "GET", "/count", None).await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "0"));

    // Fail open: the request is served as anonymous, the cookie stays.
    let (reply, took) = timed(&open, "GET", "/count", Some(&cookie)).await;
    eprintln!("down on load, fail open: {} in {took:?}", reply.status);
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "0"));
    assert!(reply.set_cookies.is_empty(), "{:?}", reply.set_cookies);
    assert!(took < COMMAND_TIMEOUT + MARGIN, "took {took:?}");
    // Writes still fail: neither over the unloaded session nor as a new one.
    for cookie in [Some(cookie.as_str()), None] {
        let (reply, _) = timed(&open, "POST", "/incr", cookie).await;
        assert_eq!(
            reply.status, 503,
            "fail-open write, cookie {cookie:?}: {reply:?}"
        );
        assert!(reply.set_cookies.is_empty(), "{:?}", reply.set_cookies);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_between_load_and_write_is_503_and_keeps_the_old_value() {
    let Some(mut server) = RedisServer::start_persistent() else {
        return;
    };
    let store = open(&server, COMMAND_TIMEOUT).await;
    let gate = Gate::default();
    let app = app(&store, fail_closed(), &gate);
    let cookie = submit(&app, "/incr", None).await.cookie();
    let key = store.redis_key(&key_of(&cookie));
    assert_eq!(server.command(&["HGET", &key, "counter:count"]), "1");

    for route in ["/held-incr", "/held-atomic"] {
        let held = tokio::spawn({
            let (app, cookie) = (app.clone(), cookie.clone());
            async move { timed(&app, "POST", route, Some(&cookie)).await }
        });
        bounded("the held handler loads", gate.loaded()).await;
        kill(&mut server);
        gate.release();
        let (reply, took) = bounded("the held request", held).await.unwrap();
        eprintln!(
            "{route}: killed before the write: {} in {took:?}, Retry-After {:?}",
            reply.status,
            reply.headers.get(http::header::RETRY_AFTER)
        );
        if route == "/held-incr" {
            // The layer's write-back failed: its own 503.
            assert_unavailable(&reply, route);
        } else {
            // `update` failed inside the handler, which answered the
            // `UpdateError`: 503 with its own `Retry-After: 1`.
            assert_eq!(reply.status, 503, "{route}: {reply:?}");
            assert_eq!(
                reply.headers.get(http::header::RETRY_AFTER).unwrap(),
                "1",
                "{route}"
            );
            assert!(reply.set_cookies.is_empty(), "{route}: {reply:?}");
        }
        assert_ne!(reply.body, "2", "{route}: never a false success");

        restart(&mut server);
        let (reply, took, failures) = until_served(&app, &cookie).await;
        eprintln!("{route}: served again {took:?} after the restart ({failures} × 503 first)");
        assert_eq!(reply.body, "1", "{route}: the old value");
        assert_eq!(server.command(&["HGET", &key, "counter:count"]), "1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_store_reconnects_after_redis_comes_back() {
    let Some(mut server) = RedisServer::start_persistent() else {
        return;
    };
    let store = open(&server, COMMAND_TIMEOUT).await;
    let app = app(&store, fail_closed(), &Gate::default());
    let cookie = submit(&app, "/incr", None).await.cookie();

    for round in 1..=3 {
        kill(&mut server);
        let (reply, _) = timed(&app, "GET", "/count", Some(&cookie)).await;
        assert_unavailable(&reply, "Redis down");
        restart(&mut server);
        let (reply, took, failures) = until_served(&app, &cookie).await;
        eprintln!(
            "round {round}: first success {took:?} after the restart answered PING ({failures} × 503 first)"
        );
        assert_eq!(reply.body, round.to_string());
        let (reply, took) = timed(&app, "POST", "/incr", Some(&cookie)).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(
            took < COMMAND_TIMEOUT,
            "a write after recovery took {took:?}"
        );
    }
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_answers_503_within_the_command_timeout_then_recovers() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(300);
    let bound = Duration::from_millis(1500);
    let store = open(&server, timeout).await;
    let gate = Gate::default();
    let app = app(&store, fail_closed(), &gate);
    let cookie = submit(&app, "/incr", None).await.cookie();
    let key = store.redis_key(&key_of(&cookie));

    // One request loads before the stall and writes during it.
    let held = tokio::spawn({
        let (app, cookie) = (app.clone(), cookie.clone());
        async move {
            let (reply, _) = timed(&app, "POST", "/held-incr", Some(&cookie)).await;
            (reply, Instant::now())
        }
    });
    bounded("the held handler loads", gate.loaded()).await;

    let sleeper = server.command_in_background(&["DEBUG", "SLEEP", "3"]);
    let stalled_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let released = Instant::now();
    gate.release();
    for (method, uri) in [("GET", "/count"), ("POST", "/incr")] {
        let (reply, took) = timed(&app, method, uri, Some(&cookie)).await;
        eprintln!("stalled: {method} {uri}: {} in {took:?}", reply.status);
        assert_unavailable(&reply, uri);
        assert!(took < bound, "{uri}: {took:?}");
    }
    let (reply, answered) = bounded("the held request", held).await.unwrap();
    let took = answered.duration_since(released);
    eprintln!(
        "stalled: the write of a request loaded before the stall: {} {took:?} after its release",
        reply.status
    );
    assert_unavailable(&reply, "a write during the stall");
    assert!(took < bound, "the write: {took:?}");
    assert!(
        stalled_at.elapsed() < Duration::from_secs(3),
        "all of the above ran during the stall"
    );

    let slept = tokio::task::block_in_place(|| sleeper.join()).expect("DEBUG SLEEP answered");
    assert_eq!(slept, "OK");
    let (reply, took, failures) = until_served(&app, &cookie).await;
    eprintln!("stall over: served {took:?} after DEBUG SLEEP returned ({failures} × 503 first)");
    // The write answered 503 was sent before the stall ended: Redis may
    // still run it when it wakes. A 503 means "not known to be saved".
    let stored = server.command(&["HGET", &key, "counter:count"]);
    eprintln!(
        "stall over: the stored count is {stored} ({})",
        if stored == "2" {
            "the write answered 503 was applied when Redis woke"
        } else {
            "the write answered 503 was not applied"
        }
    );
    assert!(stored == "1" || stored == "2", "{stored}");
    assert_eq!(reply.body, stored);
    let (reply, _) = timed(&app, "POST", "/incr", Some(&cookie)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_store_opened_while_redis_is_down_serves_once_it_starts() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    kill(&mut server);
    let store = RedisStore::builder()
        .command_timeout(COMMAND_TIMEOUT)
        .open_lazy(&server.url())
        .expect("a valid URL");
    let gate = Gate::default();
    let app = app(&store, fail_closed(), &gate);

    // A well-formed id (16 bytes, base64url) the store has never seen.
    let unknown = "session=AAAAAAAAAAAAAAAAAAAAAA";
    for attempt in 1..=3 {
        let (reply, took) = timed(&app, "GET", "/count", Some(unknown)).await;
        eprintln!(
            "lazy, never connected, attempt {attempt}: {} in {took:?}",
            reply.status
        );
        assert_unavailable(&reply, "a load before Redis ever answered");
        assert!(took < COMMAND_TIMEOUT + MARGIN, "took {took:?}");
    }
    let (reply, _) = timed(&app, "POST", "/incr", None).await;
    assert_unavailable(&reply, "a new session before Redis ever answered");

    restart(&mut server);
    let started = Instant::now();
    let mut failures = 0;
    let cookie = loop {
        let (reply, _) = timed(&app, "POST", "/incr", None).await;
        if reply.status == 200 {
            break reply.cookie();
        }
        assert_eq!(reply.status, 503, "{reply:?}");
        failures += 1;
        assert!(started.elapsed() < RECOVERY_BOUND, "{failures} attempts");
        tokio::time::sleep(POLL).await;
    };
    eprintln!(
        "lazy: first success {:?} after Redis started ({failures} × 503 first)",
        started.elapsed()
    );
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
    let (reply, _) = timed(&app, "GET", "/count", Some(unknown)).await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "0"));
}

/// After Redis restarts, the very first request is served: the store
/// meets the dead connection, and a read (or a write that never left) is
/// sent again on the new one within the same command timeout. Both with
/// requests during the outage (503s) and without any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_after_a_restart_is_served() {
    let Some(mut server) = RedisServer::start_persistent() else {
        return;
    };
    let store = open(&server, COMMAND_TIMEOUT).await;
    let app = app(&store, fail_closed(), &Gate::default());
    let cookie = submit(&app, "/incr", None).await.cookie();
    for (round, requests_during_outage) in [(1, false), (2, true), (3, false)] {
        kill(&mut server);
        if requests_during_outage {
            let (reply, _) = timed(&app, "GET", "/count", Some(&cookie)).await;
            assert_unavailable(&reply, "during the outage");
        }
        restart(&mut server);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (reply, took) = timed(&app, "GET", "/count", Some(&cookie)).await;
        assert_eq!(reply.status, 200, "round {round}, first read: {reply:?}");
        assert!(took < COMMAND_TIMEOUT + MARGIN, "{took:?}");
        let (reply, _) = timed(&app, "POST", "/incr", Some(&cookie)).await;
        assert_eq!(reply.status, 200, "round {round}, then a write: {reply:?}");
        kill(&mut server);
        restart(&mut server);
        tokio::time::sleep(Duration::from_millis(200)).await;
        // A new session's first write (no load before it) after a restart.
        let (reply, _) = timed(&app, "POST", "/incr", None).await;
        assert_eq!(reply.status, 200, "round {round}, first write: {reply:?}");
    }
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "4");
}

/// A server that wants a password is refused when the store opens, with
/// a message that says what to do and never shows a password.
#[tokio::test]
async fn open_names_a_missing_or_wrong_password_and_hides_it() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    assert_eq!(
        server.command(&["CONFIG", "SET", "requirepass", "s3cret"]),
        "OK"
    );
    let err = RedisStore::open(&server.url())
        .await
        .unwrap_err()
        .to_string();
    let chain = format!(
        "{err}: {}",
        source_of(&RedisStore::open(&server.url()).await.unwrap_err())
    );
    assert!(chain.contains("password"), "{chain}");
    let wrong = format!("redis://:wrong-pw@127.0.0.1:{}/", server.port());
    let err = RedisStore::open(&wrong).await.unwrap_err();
    let chain = source_of(&err);
    assert!(chain.contains("password"), "{chain}");
    assert!(!chain.contains("wrong-pw"), "{chain}");
    let good = format!("redis://:s3cret@127.0.0.1:{}/", server.port());
    assert!(RedisStore::open(&good).await.is_ok());
    let _ = err;
}

fn source_of(err: &typed_sessions::stores::StoreError) -> String {
    std::error::Error::source(err)
        .map(ToString::to_string)
        .unwrap_or_default()
}
