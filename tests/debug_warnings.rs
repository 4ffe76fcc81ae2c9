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
