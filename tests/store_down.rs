//! The store failing on load under `StoreDownPolicy::FailOpen`: the request
//! is served as anonymous, and never replaces the client's own session.

use typed_sessions_test_support as common;
use typed_sessions_test_support::schemas::Counter;

use axum::Router;
use axum::routing::{get, post};
use common::{fetch, submit};
use typed_sessions::{Session, SessionLayer};

#[tokio::test]
async fn fail_open_never_creates_a_session_over_an_unloaded_one() {
    let clock = common::ManualClock::new();
    let store = common::CountingStore::new(clock.clone());
    let app = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move {
                c.count += 1;
                c.count.to_string()
            }),
        )
        .route(
            "/get",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .layer(
            SessionLayer::builder(store.clone())
                .clock(clock)
                .on_store_down(typed_sessions::StoreDownPolicy::FailOpen)
                .build()
                .unwrap(),
        );
    let cookie = submit(&app, "/incr", None).await.cookie();
    store.counts.set_down(true);
    assert_eq!(
        fetch(&app, "/get", Some(&cookie)).await.body,
        "0",
        "served as anonymous"
    );
    // The load fails, the store is back by the time of the save.
    store
        .counts
        .down_for_loads_only
        .store(true, std::sync::atomic::Ordering::SeqCst);
    store.counts.set_down(false);
    let r = submit(&app, "/incr", Some(&cookie)).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        r.set_cookies.is_empty(),
        "the client's cookie stays: {:?}",
        r.set_cookies
    );
    store
        .counts
        .down_for_loads_only
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        fetch(&app, "/get", Some(&cookie)).await.body,
        "1",
        "the original session survived"
    );
}

/// A save that fails with `StoreError::Backend` is a 500 without
/// `Retry-After` (retrying will not help); `Unavailable` is the 503.
#[tokio::test]
async fn a_backend_error_on_save_is_500_without_retry_after() {
    let store = common::CountingStore::new(common::ManualClock::new());
    let app = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .layer(SessionLayer::new(store.clone()));
    store
        .counts
        .saves_broken
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let reply = submit(&app, "/incr", None).await;
    assert_eq!(reply.status, 500);
    assert!(reply.headers.get("retry-after").is_none(), "{reply:?}");
    assert!(reply.set_cookies.is_empty());
}
