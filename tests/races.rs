//! Races and edge cases found in review: each test asserts the contract
//! (DESIGN §4, §7) for a sequence that once broke it.
mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use base64::Engine as _;
use common::{fetch, submit};
use sha2::Digest as _;
use tokio::sync::Notify;
use typed_sessions::stores::{
    Changeset, MemoryStore, NamespaceChange, NamespaceOp, Record, SaveMode, SaveOutcome,
    SessionKey, SessionStore, StoreError,
};
use typed_sessions::{
    DecodeFailurePolicy, Session, SessionData, SessionHandle, SessionLayer, UpdateError,
};

fn key_of(cookie: &str) -> SessionKey {
    let raw = cookie.split_once('=').unwrap().1;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .unwrap();
    SessionKey::from_bytes(sha2::Sha256::digest(bytes).into())
}

#[derive(SessionData, Default, Clone)]
struct Counter {
    count: u64,
    note: String,
}

#[derive(SessionData, Default, Clone)]
struct Other {
    n: u64,
}

// ---------------------------------------------------------------------------
// 1. A failed (Contended) update is still written by the end-of-request
//    writeback, without CAS, when the Session was dirtied before the call.
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// 2. Panic: update() emptying the record (SaveOutcome::Deleted) leaves other
//    slots with Base::InRecord while state.record = None.
// ---------------------------------------------------------------------------

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
// 3. A write racing a regenerate_id() gets SaveOutcome::Missing and answers a
//    removal cookie, which deletes the freshly rotated cookie in the browser.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn write_racing_a_login_does_not_remove_the_new_cookie() {
    let loaded = Arc::new(Notify::new());
    let go = Arc::new(Notify::new());
    let (l2, g2) = (loaded.clone(), go.clone());
    let app = Router::new()
        .route(
            "/seed",
            post(|mut c: Session<Counter>| async move { c.count = 1 }),
        )
        .route(
            "/get",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .route(
            "/login",
            post(|h: SessionHandle| async move { h.regenerate_id() }),
        )
        .route(
            "/slow-write",
            post(move |mut o: Session<Other>| {
                let (l, g) = (l2.clone(), g2.clone());
                async move {
                    o.n = 5;
                    l.notify_one();
                    g.notified().await;
                }
            }),
        )
        .layer(SessionLayer::new(MemoryStore::new()));
    let cookie = submit(&app, "/seed", None).await.cookie();
    let app2 = app.clone();
    let c2 = cookie.clone();
    let slow = tokio::spawn(async move { submit(&app2, "/slow-write", Some(&c2)).await });
    loaded.notified().await;
    let login = submit(&app, "/login", Some(&cookie)).await;
    let new_cookie = login.cookie();
    assert_ne!(new_cookie, cookie);
    go.notify_one();
    let slow = slow.await.unwrap();
    // The slow response arrives last: it must not remove the cookie, which
    // in the browser now holds the new id of a live session.
    assert!(slow.set_cookies.is_empty(), "{:?}", slow.set_cookies);
    assert_eq!(fetch(&app, "/get", Some(&new_cookie)).await.body, "1");
}

// ---------------------------------------------------------------------------
// 4. Another cookie with a non-ASCII (UTF-8) value hides the session cookie.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn another_cookie_with_non_ascii_bytes_does_not_hide_the_session() {
    let app = Router::new()
        .route(
            "/seed",
            post(|mut c: Session<Counter>| async move { c.count = 42 }),
        )
        .route(
            "/get",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .layer(SessionLayer::new(MemoryStore::new()));
    let cookie = submit(&app, "/seed", None).await.cookie();
    assert_eq!(fetch(&app, "/get", Some(&cookie)).await.body, "42");
    let header = format!("lang=caf\u{e9}; {cookie}");
    let value = http::HeaderValue::from_bytes(header.as_bytes()).unwrap();
    let req = http::Request::get("/get")
        .header(http::header::COOKIE, value)
        .body(axum::body::Body::empty())
        .unwrap();
    let r = common::reply(&app, req).await;
    assert_eq!(r.body, "42", "the session cookie next to it is still read");
}

// ---------------------------------------------------------------------------
// 5. A sensitive field's stored value ends up in the logs on decode failure.
// ---------------------------------------------------------------------------

#[derive(SessionData, Default)]
#[session(namespace = "auth")]
struct AuthOld {
    #[session(sensitive)]
    token: String,
}

#[derive(SessionData, Default)]
#[session(namespace = "auth")]
struct AuthNew {
    #[session(sensitive)]
    token: u64,
}

#[tokio::test]
async fn sensitive_value_never_reaches_the_log_when_it_does_not_decode() {
    let captured = common::Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let store = MemoryStore::new();
    let old = Router::new()
        .route(
            "/",
            post(|mut a: Session<AuthOld>| async move { a.token = "s3cr3t-T0KEN".into() }),
        )
        .layer(SessionLayer::new(store.clone()));
    let new = Router::new()
        .route(
            "/",
            get(|a: Session<AuthNew>| async move { a.token.to_string() }),
        )
        .layer(
            SessionLayer::builder(store)
                .on_decode_failure(DecodeFailurePolicy::Reset)
                .build()
                .unwrap(),
        );
    let cookie = submit(&old, "/", None).await.cookie();
    assert_eq!(fetch(&new, "/", Some(&cookie)).await.body, "0");
    let log = captured.text();
    assert!(
        log.contains("token"),
        "the reset is logged with the field name:\n{log}"
    );
    assert!(
        !log.contains("s3cr3t-T0KEN"),
        "sensitive value leaked into the log:\n{log}"
    );
}

// ---------------------------------------------------------------------------
// 6. Migrated namespace: a plain write (Replace, no CAS) erases a concurrent
//    update() on another field of that namespace.
// ---------------------------------------------------------------------------

#[derive(SessionData, Default)]
#[session(namespace = "cart", version = 1)]
struct CartV1 {
    count: u64,
    coupon: String,
}

#[derive(SessionData, Default)]
#[session(namespace = "cart", version = 2, migrate_from = CartV1)]
struct Cart {
    count: u64,
    coupon: String,
}

impl From<CartV1> for Cart {
    fn from(v: CartV1) -> Self {
        Self {
            count: v.count,
            coupon: v.coupon,
        }
    }
}

#[tokio::test]

async fn writing_a_migrated_namespace_keeps_a_concurrent_update() {
    let store = MemoryStore::new();
    let loaded = Arc::new(Notify::new());
    let go = Arc::new(Notify::new());
    let (l2, g2) = (loaded.clone(), go.clone());
    let v1 = Router::new()
        .route(
            "/",
            post(|mut c: Session<CartV1>| async move { c.count = 10 }),
        )
        .layer(SessionLayer::new(store.clone()));
    let v2 = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Cart>| async move { c.update(|c| c.count += 1).await.unwrap() }),
        )
        .route(
            "/coupon",
            post(move |mut c: Session<Cart>| {
                let (l, g) = (l2.clone(), g2.clone());
                async move {
                    l.notify_one();
                    g.notified().await;
                    c.coupon = "SAVE10".into(); // a different field
                }
            }),
        )
        .route(
            "/get",
            get(|c: Session<Cart>| async move { format!("{} {}", c.count, c.coupon) }),
        )
        .layer(SessionLayer::new(store));
    let cookie = submit(&v1, "/", None).await.cookie();
    let (app2, c2) = (v2.clone(), cookie.clone());
    let slow = tokio::spawn(async move { submit(&app2, "/coupon", Some(&c2)).await });
    loaded.notified().await;
    submit(&v2, "/incr", Some(&cookie)).await;
    assert_eq!(fetch(&v2, "/get", Some(&cookie)).await.body, "11 ");
    go.notify_one();
    slow.await.unwrap();
    // Different fields of one namespace must both survive.
    assert_eq!(fetch(&v2, "/get", Some(&cookie)).await.body, "11 SAVE10");
}

// ---------------------------------------------------------------------------
// 7. Failing open on a transient store error must not replace the client's
//    (possibly alive) session with a new one.
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// 8. Two requests that both first write a namespace absent until then keep
//    each other's fields (the second whole-namespace write is rebased).
// ---------------------------------------------------------------------------

#[derive(SessionData, Default)]
struct Prefs {
    theme: String,
    lang: String,
}

#[tokio::test]
async fn first_writes_of_one_namespace_by_two_requests_both_survive() {
    let loaded = Arc::new(Notify::new());
    let go = Arc::new(Notify::new());
    let (l2, g2) = (loaded.clone(), go.clone());
    let app = Router::new()
        .route(
            "/seed",
            post(|mut o: Session<Other>| async move { o.n = 1 }),
        )
        .route(
            "/theme",
            post(|mut p: Session<Prefs>| async move { p.theme = "dark".into() }),
        )
        .route(
            "/slow-lang",
            post(move |mut p: Session<Prefs>| {
                let (l, g) = (l2.clone(), g2.clone());
                async move {
                    l.notify_one();
                    g.notified().await;
                    p.lang = "fr".into();
                }
            }),
        )
        .route(
            "/prefs",
            get(|p: Session<Prefs>| async move { format!("{}/{}", p.theme, p.lang) }),
        )
        .layer(SessionLayer::new(MemoryStore::new()));
    let cookie = submit(&app, "/seed", None).await.cookie();
    let (app2, c2) = (app.clone(), cookie.clone());
    let slow = tokio::spawn(async move { submit(&app2, "/slow-lang", Some(&c2)).await });
    loaded.notified().await;
    submit(&app, "/theme", Some(&cookie)).await;
    go.notify_one();
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(fetch(&app, "/prefs", Some(&cookie)).await.body, "dark/fr");
}
