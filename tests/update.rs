//! `Session::update` inside one request: what it may create, and what a
//! later write in the same request builds on.

use typed_sessions_test_support as common;
use typed_sessions_test_support::schemas::{PrefsV1, PrefsV2};

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::Duration;
use tokio::sync::oneshot;

use axum::Router;
use axum::routing::{get, post};
use common::key_of;
use common::{CountingStore, ManualClock, fetch, submit};
use typed_sessions::stores::{
    Changeset, MemoryStore, NamespaceChange, NamespaceOp, Record, SaveMode, SaveOutcome,
    SessionKey, SessionStore, StoreError,
};
use typed_sessions::{DecodeFailurePolicy, Session, SessionData, SessionLayer, StoreDownPolicy};
use typed_sessions::{SessionHandle, UpdateError};

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

// ---------------------------------------------------------------------------
// A failed update, and an update that empties the record.

/// A `MemoryStore` that reports a conflict for every compare-and-swap save
/// of the `counter` namespace.
#[derive(Clone)]
struct AlwaysConflict(MemoryStore);

impl SessionStore for AlwaysConflict {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>, StoreError> {
        self.0.load(key).await
    }
    async fn save(&self, key: &SessionKey, c: &Changeset) -> Result<SaveOutcome, StoreError> {
        if c.namespaces
            .iter()
            .any(|n| n.expected_revision.is_some() && n.namespace == "counter")
        {
            return Ok(SaveOutcome::Conflict {
                namespace: c.namespaces[0].namespace,
            });
        }
        self.0.save(key, c).await
    }
    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.0.delete(key).await
    }
    async fn touch(&self, key: &SessionKey, seen: u64, at: u64) -> Result<bool, StoreError> {
        self.0.touch(key, seen, at).await
    }
    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.0.exists(key).await
    }
}

#[tokio::test]
async fn failed_update_is_never_written_back() {
    let store = AlwaysConflict(MemoryStore::new());
    let layer = SessionLayer::builder(store)
        .update_deadline(Duration::from_millis(20))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/",
            post(|mut c: Session<Counter>| async move {
                c.note = "touched".into(); // direct edit: marks the Session dirty
                match c.update(|c| c.count += 1).await {
                    Ok(()) => "ok".to_owned(),
                    Err(UpdateError::Contended { .. }) => "contended".to_owned(),
                    Err(e) => format!("{e}"),
                }
            }),
        )
        .route(
            "/get",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .route(
            "/seed",
            post(|mut o: Session<Other>| async move { o.n = 1 }),
        )
        .layer(layer);
    let seed = submit(&app, "/seed", None).await.cookie();
    let r = submit(&app, "/", Some(&seed)).await;
    assert_eq!(r.body, "contended");
    // update() said it did not commit: nothing of it may be stored.
    assert_eq!(fetch(&app, "/get", Some(&seed)).await.body, "0");
}

#[tokio::test]
async fn update_emptying_the_record_then_writing_another_namespace_does_not_panic() {
    let store = MemoryStore::new();
    let s2 = store.clone();
    let app = Router::new()
        .route(
            "/seed",
            post(
                |mut c: Session<Counter>, mut o: Session<Other>| async move {
                    c.count = 1;
                    o.n = 1;
                },
            ),
        )
        .route(
            "/race",
            post(
                move |h: axum::http::HeaderMap, mut c: Session<Counter>, mut o: Session<Other>| {
                    let store = s2.clone();
                    async move {
                        // A concurrent request (simulated directly on the store)
                        // resets `other` to its default: the namespace is removed.
                        let cookie = h.get("cookie").unwrap().to_str().unwrap().to_owned();
                        let key = key_of(&cookie);
                        let out = store
                            .save(
                                &key,
                                &Changeset::new(
                                    SaveMode::Update,
                                    0,
                                    0,
                                    u64::MAX,
                                    vec![NamespaceChange::new(
                                        "other",
                                        1,
                                        None,
                                        NamespaceOp::Remove,
                                    )],
                                ),
                            )
                            .await
                            .unwrap();
                        assert!(matches!(out, SaveOutcome::Saved { .. }));
                        // This request empties `counter`: the store deletes the record.
                        c.update(|c| *c = Counter::default()).await.unwrap();
                        // Now touch `other` (base still InRecord, record is None).
                        o.n = 7;
                        "done"
                    }
                },
            ),
        )
        .layer(SessionLayer::new(store));
    let cookie = submit(&app, "/seed", None).await.cookie();
    let r = submit(&app, "/race", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "done");
    // The record was deleted by the update; the later write of `other`
    // created a fresh session rather than touching a stale baseline.
    let fresh = r.cookie();
    assert_ne!(fresh, cookie);
}

// ---------------------------------------------------------------------------
// An update made after the response; the value a contended update leaves.

type Outcome = (bool, Result<u64, String>);
type Parked = Arc<Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<Outcome>)>>>;

/// A `Session<T>` moved into a spawned task (or a streaming body) and
/// updated after the response commits to the client's own session by
/// compare-and-swap: never to a new session nobody holds a cookie for.
#[tokio::test]
async fn update_after_the_response_still_commits_to_the_clients_session() {
    let store = MemoryStore::new();
    let parked: Parked = Arc::default();
    let p2 = Arc::clone(&parked);
    let app = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .route(
            "/count",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .route(
            "/later",
            post(move |mut c: Session<Counter>, h: SessionHandle| {
                let parked = Arc::clone(&p2);
                async move {
                    let (go_tx, go_rx) = oneshot::channel::<()>();
                    let (done_tx, done_rx) = oneshot::channel::<Outcome>();
                    tokio::spawn(async move {
                        let _ = go_rx.await;
                        let id_known = h.id().is_some();
                        let r = c
                            .update(|c| {
                                c.count += 1;
                                c.count
                            })
                            .await
                            .map_err(|e: UpdateError| e.to_string());
                        let _ = done_tx.send((id_known, r));
                    });
                    *parked.lock().unwrap() = Some((go_tx, done_rx));
                    "ok"
                }
            }),
        )
        .layer(SessionLayer::new(store.clone()));

    let cookie = submit(&app, "/incr", None).await.cookie();
    assert_eq!(store.len(), 1);
    let r = submit(&app, "/later", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    // The response is complete (write-back done); now the task runs.
    let (go, done) = parked.lock().unwrap().take().unwrap();
    go.send(()).unwrap();
    let (id_known, result) = done.await.unwrap();

    assert_eq!(result, Ok(2), "update reports success");
    assert_eq!(
        fetch(&app, "/count", Some(&cookie)).await.body,
        "2",
        "the successful update must be in the client's session"
    );
    assert_eq!(store.len(), 1, "no orphan session may be created");
    assert!(
        id_known,
        "SessionHandle::id() still names the session after the response"
    );
}

#[derive(SessionData, Default)]
#[session(namespace = "tally")]
struct Tally {
    count: u64,
    note: String,
}

/// A `MemoryStore` that, while switched on, answers `Conflict` to every
/// compare-and-swap save of `tally`.
#[derive(Clone)]
struct ContendedStore {
    inner: MemoryStore,
    on: Arc<AtomicBool>,
}

impl SessionStore for ContendedStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>, StoreError> {
        self.inner.load(key).await
    }
    async fn save(&self, key: &SessionKey, c: &Changeset) -> Result<SaveOutcome, StoreError> {
        if self.on.load(Ordering::SeqCst)
            && c.namespaces
                .iter()
                .any(|n| n.namespace == "tally" && n.expected_revision.is_some())
        {
            return Ok(SaveOutcome::Conflict { namespace: "tally" });
        }
        self.inner.save(key, c).await
    }
    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.inner.delete(key).await
    }
    async fn touch(&self, key: &SessionKey, seen: u64, at: u64) -> Result<bool, StoreError> {
        self.inner.touch(key, seen, at).await
    }
    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.inner.exists(key).await
    }
}

/// After `Contended`, the `Session` holds the value as last loaded from the
/// store, so a later edit of another field never writes the failed
/// update's change back.
#[tokio::test]
async fn contended_update_leaves_the_stored_value_and_is_never_written_back() {
    let on = Arc::new(AtomicBool::new(false));
    let store = ContendedStore {
        inner: MemoryStore::new(),
        on: Arc::clone(&on),
    };
    let layer = SessionLayer::builder(store)
        .update_deadline(Duration::from_millis(20))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/seed",
            post(|mut t: Session<Tally>| async move { t.count = 1 }),
        )
        .route(
            "/bump",
            post(|mut t: Session<Tally>| async move {
                let r = t.update(|t| t.count += 10).await;
                let seen = t.count;
                t.note = "later edit".into();
                format!("{}:{seen}", matches!(r, Err(UpdateError::Contended { .. })))
            }),
        )
        .route(
            "/get",
            get(|t: Session<Tally>| async move { t.count.to_string() }),
        )
        .layer(layer);
    let cookie = submit(&app, "/seed", None).await.cookie();
    on.store(true, Ordering::SeqCst);
    let r = submit(&app, "/bump", Some(&cookie)).await;
    on.store(false, Ordering::SeqCst);
    assert_eq!(
        r.body, "true:1",
        "after Contended the Session holds the value as last loaded"
    );
    assert_eq!(
        fetch(&app, "/get", Some(&cookie)).await.body,
        "1",
        "the failed update's change was written back"
    );
}
