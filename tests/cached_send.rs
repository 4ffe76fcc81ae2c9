//! What `#[session(cached)]` must not take from other schemas: a schema
//! without it only has to be `Send` (`SessionData: Send`), so `Session<T>`
//! is `Send` for every schema and can be held across an `.await` (the first
//! version required `T: Sync` for every schema); and the public store
//! types stay `UnwindSafe` and `RefUnwindSafe`. This file not compiling is
//! the failure.

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
            post(|s: Session<NotSync>| async move {
                s.scratch.set(s.scratch.get() + 1);
                tokio::task::yield_now().await;
                s.count.to_string()
            }),
        )
        .layer(SessionLayer::new(MemoryStore::new()));
}

/// Also lost by cd107e1 (the memo `OnceLock<(TypeId, Arc<dyn Any + Send +
/// Sync>)>` inside `FieldMap`): the public store types are no longer
/// `UnwindSafe`/`RefUnwindSafe`, so e.g. `catch_unwind(|| record...)` in a
/// custom store's tests stops compiling.
#[test]
fn public_store_types_stay_unwind_safe() {
    use std::panic::{RefUnwindSafe, UnwindSafe};
    use typed_sessions::FieldMap;
    use typed_sessions::stores::{Changeset, NamespaceRecord, Record};
    fn assert_unwind_safe<T: UnwindSafe + RefUnwindSafe>() {}
    assert_unwind_safe::<FieldMap>();
    assert_unwind_safe::<NamespaceRecord>();
    assert_unwind_safe::<Record>();
    assert_unwind_safe::<Changeset>();
}
