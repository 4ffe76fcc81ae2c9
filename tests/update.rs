//! `Session::update` inside one request: what it may create, and what a
//! later write in the same request builds on.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::routing::{get, post};
use common::{CountingStore, ManualClock, fetch, submit};
use typed_sessions::{DecodeFailurePolicy, Session, SessionData, SessionLayer, StoreDownPolicy};

#[derive(SessionData, Default)]
#[session(namespace = "counter")]
struct Counter {
    count: u64,
    note: String,
}

fn app(store: &CountingStore, clock: &Arc<ManualClock>, policy: StoreDownPolicy) -> Router {
    Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .route(
            "/atomic",
            post(|mut c: Session<Counter>| async move {
                match c.update(|c| c.count += 1).await {
                    Ok(()) => (http::StatusCode::OK, c.count.to_string()),
                    Err(e) => (e.status(), e.to_string()),
                }
            }),
        )
        .route(
            "/empty-then-write",
            post(|mut c: Session<Counter>| async move {
                c.update(|c| c.note = "x".into()).await.unwrap();
                // Back to the default: the record is deleted by this commit.
                c.update(|c| *c = Counter::default()).await.unwrap();
                // A plain write afterwards must build on "absent", not on the
                // baseline of the deleted record (where `note` was "x" too).
                c.note = "x".into();
            }),
        )
        .route(
            "/count",
            get(|c: Session<Counter>| async move { format!("{},{}", c.count, c.note) }),
        )
        .layer(
            SessionLayer::builder(store.clone())
                .clock(clock.clone())
                .on_store_down(policy)
                .on_decode_failure(DecodeFailurePolicy::Strict)
                .build()
                .unwrap(),
        )
}

#[tokio::test]
async fn update_after_a_failed_load_under_fail_open_creates_nothing() {
    let clock = ManualClock::new();
    let store = CountingStore::new(Arc::clone(&clock));
    let app = app(&store, &clock, StoreDownPolicy::FailOpen);
    let cookie = submit(&app, "/incr", None).await.cookie();
    store
        .counts
        .down_for_loads_only
        .store(true, Ordering::SeqCst);
    let saves = store.counts.saves();
    let reply = submit(&app, "/atomic", Some(&cookie)).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.set_cookies.is_empty(), "{:?}", reply.set_cookies);
    assert_eq!(
        store.counts.saves(),
        saves,
        "nothing was created in its place"
    );
    store
        .counts
        .down_for_loads_only
        .store(false, Ordering::SeqCst);
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1,");
}

#[tokio::test]
async fn a_write_after_update_deleted_the_record_stores_the_whole_namespace() {
    let clock = ManualClock::new();
    let store = CountingStore::new(Arc::clone(&clock));
    let app = app(
        &store,
        &clock,
        StoreDownPolicy::FailClosed {
            retry_after: std::time::Duration::from_secs(1),
        },
    );
    let cookie = submit(&app, "/incr", None).await.cookie();
    let reply = submit(&app, "/empty-then-write", Some(&cookie)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let fresh = reply.cookie();
    assert_ne!(
        fresh, cookie,
        "the emptied session is gone; a new one holds the write"
    );
    let read = fetch(&app, "/count", Some(&fresh)).await;
    assert_eq!(
        read.status, 200,
        "a namespace with fields missing was stored"
    );
    assert_eq!(read.body, "0,x");
}

// ---------------------------------------------------------------------------
// A namespace stored at an older version, set back to its default.

#[derive(SessionData, Default)]
#[session(namespace = "prefs", version = 1)]
struct PrefsV1 {
    theme: String,
}

#[derive(SessionData, Default)]
#[session(namespace = "prefs", version = 2, migrate_from = PrefsV1)]
struct PrefsV2 {
    theme: String,
    lang: String,
}

impl From<PrefsV1> for PrefsV2 {
    fn from(v1: PrefsV1) -> Self {
        Self {
            theme: v1.theme,
            lang: String::new(),
        }
    }
}

#[derive(SessionData, Default)]
#[session(namespace = "other")]
struct Other {
    n: u64,
}

#[tokio::test]
async fn resetting_a_namespace_stored_at_an_older_version_removes_it_in_one_save() {
    use typed_sessions::stores::SessionStore as _;
    let clock = ManualClock::new();
    let store = CountingStore::new(Arc::clone(&clock));
    let old = Router::new()
        .route(
            "/seed",
            post(
                |mut p: Session<PrefsV1>, mut o: Session<Other>| async move {
                    p.theme = "dark".into();
                    o.n = 1;
                },
            ),
        )
        .layer(
            SessionLayer::builder(store.clone())
                .clock(clock.clone())
                .build()
                .unwrap(),
        );
    let new = Router::new()
        .route(
            "/reset-atomic",
            post(|mut p: Session<PrefsV2>| async move {
                match p.update(|p| *p = PrefsV2::default()).await {
                    Ok(()) => (http::StatusCode::OK, String::new()),
                    Err(err) => (err.status(), err.to_string()),
                }
            }),
        )
        .route(
            "/reset",
            post(|mut p: Session<PrefsV2>| async move { *p = PrefsV2::default() }),
        )
        .route(
            "/prefs",
            get(|p: Session<PrefsV2>| async move { format!("[{}]", p.theme) }),
        )
        .layer(
            SessionLayer::builder(store.clone())
                .clock(clock.clone())
                .update_deadline(std::time::Duration::from_millis(300))
                .build()
                .unwrap(),
        );
    for route in ["/reset-atomic", "/reset"] {
        let cookie = submit(&old, "/seed", None).await.cookie();
        let saves = store.counts.saves();
        let reply = submit(&new, route, Some(&cookie)).await;
        assert_eq!(reply.status, 200, "{route}: {}", reply.body);
        assert_eq!(
            store.counts.saves(),
            saves + 1,
            "{route}: one save, no conflict"
        );
        let record = store
            .inner
            .load(&common::key_of(&cookie))
            .await
            .unwrap()
            .unwrap();
        assert!(record.namespace("prefs").is_none(), "{route}");
        assert_eq!(fetch(&new, "/prefs", Some(&cookie)).await.body, "[]");
    }
}
