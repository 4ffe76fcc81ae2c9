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

/// A store that answers every save with a backend error (data it cannot
/// read, a script error): not worth retrying.
#[derive(Clone)]
struct BrokenSaves(typed_sessions::stores::MemoryStore);

impl typed_sessions::stores::SessionStore for BrokenSaves {
    async fn load(
        &self,
        key: &typed_sessions::stores::SessionKey,
    ) -> Result<Option<typed_sessions::stores::Record>, typed_sessions::stores::StoreError> {
        self.0.load(key).await
    }
    async fn save(
        &self,
        _: &typed_sessions::stores::SessionKey,
        _: &typed_sessions::stores::Changeset,
    ) -> Result<typed_sessions::stores::SaveOutcome, typed_sessions::stores::StoreError> {
        Err(typed_sessions::stores::StoreError::backend("WRONGTYPE"))
    }
    async fn delete(
        &self,
        key: &typed_sessions::stores::SessionKey,
    ) -> Result<bool, typed_sessions::stores::StoreError> {
        self.0.delete(key).await
    }
    async fn touch(
        &self,
        key: &typed_sessions::stores::SessionKey,
        last_seen_ms: u64,
        expires_at_ms: u64,
    ) -> Result<bool, typed_sessions::stores::StoreError> {
        self.0.touch(key, last_seen_ms, expires_at_ms).await
    }
    async fn exists(
        &self,
        key: &typed_sessions::stores::SessionKey,
    ) -> Result<bool, typed_sessions::stores::StoreError> {
        self.0.exists(key).await
    }
}

/// A save that fails with `StoreError::Backend` is a 500 without
/// `Retry-After` (retrying will not help); `Unavailable` is the 503.
#[tokio::test]
async fn a_backend_error_on_save_is_500_without_retry_after() {
    let app = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .layer(SessionLayer::new(BrokenSaves(
            typed_sessions::stores::MemoryStore::new(),
        )));
    let reply = submit(&app, "/incr", None).await;
    assert_eq!(reply.status, 500);
    assert!(reply.headers.get("retry-after").is_none(), "{reply:?}");
    assert!(reply.set_cookies.is_empty());
}
