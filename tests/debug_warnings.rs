//! Debug builds warn when a session value comes back changed without a
//! mutable borrow. Alone in its test binary: `tracing` caches whether a log
//! line is wanted per call site, process-wide, so another test reaching the
//! same line without a subscriber could hide it from this one.

use typed_sessions_test_support as common;

use std::sync::Mutex;

use axum::Router;
use axum::routing::{get, post};
use common::{fetch, submit};
use typed_sessions::{Session, SessionData, SessionLayer};

#[derive(SessionData, Default)]
#[session(namespace = "cell")]
struct Cell {
    hits: Mutex<u64>,
}

fn bump(cell: &Cell) {
    *cell.hits.lock().unwrap() += 1;
}

/// Debug builds say so when a change through `&T` is dropped.
#[cfg(debug_assertions)]
#[tokio::test]
async fn a_change_through_a_shared_reference_is_reported_in_debug_builds() {
    let (captured, _guard) = common::capture_logs(tracing::Level::WARN);
    let app = Router::new()
        .route("/shared", post(|c: Session<Cell>| async move { bump(&c) }))
        .route(
            "/read",
            get(|c: Session<Cell>| async move { c.hits.lock().unwrap().to_string() }),
        )
        .layer(SessionLayer::new(typed_sessions::stores::MemoryStore::new()));
    let cookie = submit(&app, "/shared", None).await;
    assert!(cookie.set_cookies.is_empty(), "nothing saved");
    let log = captured.text();
    assert!(
        log.contains("changed without a mutable borrow") && log.contains("namespace=\"cell\""),
        "{log}"
    );
    // A plain read warns about nothing.
    let before = captured.text().len();
    fetch(&app, "/read", None).await;
    assert_eq!(captured.text().len(), before, "{}", captured.text());
}

/// A failed `update` keeps its uncommitted result in the value on purpose
/// (documented on `Session::update`): that is no change behind the
/// runtime's back, so no warning.
#[cfg(debug_assertions)]
#[tokio::test]
async fn a_failed_update_is_not_reported_as_an_unseen_change() {
    use common::schemas::Counter;
    let (captured, _guard) = common::capture_logs(tracing::Level::WARN);
    let store = common::CountingStore::new(common::ManualClock::new());
    let app = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .route(
            "/atomic",
            post(|mut c: Session<Counter>| async move {
                c.update(|c| c.count += 1).await.map_err(|e| e.status())?;
                Ok::<_, http::StatusCode>(())
            }),
        )
        .layer(SessionLayer::new(store.clone()));
    let cookie = submit(&app, "/incr", None).await.cookie();
    // Loaded, then the store goes down before the commit.
    let reply = {
        let app = app.clone();
        let store = store.clone();
        let cookie = cookie.clone();
        let request = http::Request::post("/atomic")
            .header("cookie", cookie)
            .body(axum::body::Body::empty())
            .unwrap();
        store
            .counts
            .saves_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        common::reply(&app, request).await
    };
    assert_eq!(reply.status, 503);
    let log = captured.text();
    assert!(log.contains("session store failed on save"), "{log}");
    assert!(!log.contains("changed without a mutable borrow"), "{log}");
}
