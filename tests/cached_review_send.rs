//! Review of `#[session(cached)]` (cd107e1): BUG, this file does not
//! compile on cd107e1.
//!
//! A schema WITHOUT `cached` only has to be `Send` (`SessionData: Send`).
//! Before cd107e1 `Session<T>` held an `Option<T>`, so it was `Send` for
//! every schema; now it holds `Held<T>`, whose `Shared(Arc<T>)` variant
//! makes `Session<T>: Send` require `T: Sync` too, for every schema, cached
//! or not. A non-cached schema with a `Cell`/`RefCell` field can no longer
//! be extracted in an axum handler that awaits (or be moved to a task).

use std::cell::Cell;

use axum::Router;
use axum::routing::post;
use typed_sessions::stores::MemoryStore;
use typed_sessions::{Session, SessionData, SessionLayer};

/// Not `cached`; `Send` but not `Sync` (a per-request scratch counter).
#[derive(SessionData, Default)]
#[session(namespace = "not_sync")]
struct NotSync {
    count: u64,
    #[session(skip)]
    scratch: Cell<u32>,
}

fn assert_send<T: Send>() {}

#[test]
fn session_of_a_send_schema_is_send() {
    assert_send::<NotSync>();
    assert_send::<Session<NotSync>>();
}

#[test]
fn a_non_cached_send_schema_works_in_an_awaiting_handler() {
    let _app: Router = Router::new()
        .route(
            "/incr",
            post(|mut s: Session<NotSync>| async move {
                s.scratch.set(1);
                s.update(|s| s.count += 1).await.unwrap();
            }),
        )
        .layer(SessionLayer::new(MemoryStore::new()));
}
