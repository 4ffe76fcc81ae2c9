//! `SessionHandle`'s view of the session agrees with the response.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use typed_sessions::stores::MemoryStore;
use typed_sessions::{Session, SessionHandle, SessionLayer};
use typed_sessions_test_support::schemas::Counter;
use typed_sessions_test_support::{ManualClock, fetch, max_age, submit};

fn app(clock: &std::sync::Arc<ManualClock>) -> Router {
    let layer = SessionLayer::builder(MemoryStore::builder().clock(clock.clone()).build())
        .idle_timeout(Duration::from_secs(8))
        .clock(clock.clone())
        .secure(false)
        .build()
        .unwrap();
    Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .route(
            "/remaining",
            get(|c: Session<Counter>, h: SessionHandle| async move {
                let _ = c.count;
                h.remaining().map_or(u64::MAX, |r| r.as_secs()).to_string()
            }),
        )
        .layer(layer)
}

/// A read that refreshes the session reports the refreshed time left, the
/// same the response's `Max-Age` carries; a read that does not refresh
/// reports the time left without one.
#[tokio::test]
async fn remaining_includes_the_refresh_this_request_makes() {
    let clock = ManualClock::starting_now();
    let app = app(&clock);
    let cookie = submit(&app, "/incr", None).await.cookie();
    // Under a quarter of the idle timeout: no refresh, 7 s left.
    clock.advance(Duration::from_secs(1));
    let quiet = fetch(&app, "/remaining", Some(&cookie)).await;
    assert!(quiet.set_cookie().is_none());
    assert_eq!(quiet.body, "7");
    // Past a quarter: this request refreshes; it says 8 s, as does Max-Age.
    clock.advance(Duration::from_secs(2));
    let refreshed = fetch(&app, "/remaining", Some(&cookie)).await;
    let max_age = max_age(
        refreshed
            .set_cookie()
            .expect("a refresh re-sends the cookie"),
    );
    assert_eq!(max_age, Some(8));
    assert_eq!(refreshed.body, "8");
}

fn id_app(store: MemoryStore, log_key: Option<&[u8]>) -> Router {
    let mut builder = SessionLayer::builder(store).secure(false);
    if let Some(key) = log_key {
        builder = builder.log_key(key);
    }
    Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .route(
            "/id",
            get(|h: SessionHandle| async move { h.id().map(|id| id.to_string()).unwrap_or_default() }),
        )
        .layer(builder.build().unwrap())
}

/// Replicas (two layers over one store) show the same hashed id for a
/// session when they share a log key, and unrelated ones otherwise.
#[tokio::test]
async fn a_shared_log_key_makes_the_hashed_id_stable_across_replicas() {
    let store = MemoryStore::new();
    let key = b"0123456789abcdef-shared-log-key";
    let (a, b) = (
        id_app(store.clone(), Some(key)),
        id_app(store.clone(), Some(key)),
    );
    let cookie = submit(&a, "/incr", None).await.cookie();
    let id_a = fetch(&a, "/id", Some(&cookie)).await.body;
    assert_eq!(id_a.len(), 16);
    assert_eq!(fetch(&b, "/id", Some(&cookie)).await.body, id_a);
    let other = id_app(store.clone(), Some(b"another key of 16+ bytes"));
    assert_ne!(fetch(&other, "/id", Some(&cookie)).await.body, id_a);
    // The default: a random key per layer.
    let (c, d) = (id_app(store.clone(), None), id_app(store, None));
    assert_ne!(
        fetch(&c, "/id", Some(&cookie)).await.body,
        fetch(&d, "/id", Some(&cookie)).await.body
    );
}

#[test]
fn a_short_log_key_is_a_config_error() {
    let err = SessionLayer::builder(MemoryStore::new())
        .log_key(b"short")
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        typed_sessions::ConfigError::LogKeyTooShort { len: 5, min: 16 }
    );
}

/// After `destroy()`, the session has no deadline left.
#[tokio::test]
async fn remaining_is_none_after_destroy() {
    let clock = ManualClock::starting_now();
    let layer = SessionLayer::builder(MemoryStore::builder().clock(clock.clone()).build())
        .idle_timeout(Duration::from_secs(8))
        .clock(clock.clone())
        .secure(false)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .route(
            "/logout",
            post(|h: SessionHandle| async move {
                let before = h.remaining().is_some();
                h.destroy();
                format!("{before} {}", h.remaining().is_some())
            }),
        )
        .layer(layer);
    let cookie = submit(&app, "/incr", None).await.cookie();
    assert_eq!(
        submit(&app, "/logout", Some(&cookie)).await.body,
        "true false"
    );
}
