//! Concurrent requests on one session: plain writes of different fields,
//! removals, a record emptied meanwhile, and two versions of the code
//! writing one namespace during a rolling deploy.

use typed_sessions_test_support as common;
use typed_sessions_test_support::schemas::{PrefsV1, PrefsV2};

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use common::{CountingStore, Gate, ManualClock, fetch, key_of, submit};
use typed_sessions::stores::MemoryStore;
use typed_sessions::stores::SessionStore;
use typed_sessions::{DecodeFailurePolicy, Session, SessionData, SessionLayer};

#[derive(SessionData, Default)]
#[session(namespace = "pair")]
struct Pair {
    x: u64,
    y: u64,
}

#[derive(SessionData, Default)]
#[session(namespace = "other")]
struct Other {
    n: u64,
}

/// Routes of one app; `/hold/...` routes stop between load and write-back.
fn app(store: &CountingStore, clock: &Arc<ManualClock>, gate: &Gate) -> Router {
    let layer = SessionLayer::builder(store.clone())
        .clock(clock.clone())
        .on_decode_failure(DecodeFailurePolicy::Strict)
        .build()
        .unwrap();
    let (g1, g2, g3) = (gate.clone(), gate.clone(), gate.clone());
    Router::new()
        .route(
            "/seed",
            post(|mut p: Session<Pair>, mut o: Session<Other>| async move {
                p.x = 1;
                o.n = 1;
            }),
        )
        .route(
            "/seed-pair",
            post(|mut p: Session<Pair>| async move { p.x = 1 }),
        )
        .route(
            "/pair",
            get(|p: Session<Pair>| async move { format!("{},{}", p.x, p.y) }),
        )
        .route(
            "/other",
            get(|o: Session<Other>| async move { o.n.to_string() }),
        )
        .route("/x0", post(|mut p: Session<Pair>| async move { p.x = 0 }))
        .route("/y5", post(|mut p: Session<Pair>| async move { p.y = 5 }))
        .route(
            "/hold/x0",
            post(move |mut p: Session<Pair>| async move {
                g1.hold().await;
                p.x = 0;
            }),
        )
        .route(
            "/hold/y5",
            post(move |mut p: Session<Pair>| async move {
                g2.hold().await;
                p.y = 5;
            }),
        )
        .route(
            "/hold/other",
            post(move |mut o: Session<Other>| async move {
                g3.hold().await;
                o.n = 5;
                "written"
            }),
        )
        .layer(layer)
}

fn fixture() -> (Router, CountingStore, Gate) {
    let clock = ManualClock::new();
    let store = CountingStore::new(Arc::clone(&clock));
    let gate = Gate::default();
    (app(&store, &clock, &gate), store, gate)
}

/// Runs `held` up to its load, then `other` to completion, then lets `held` finish.
async fn interleave(
    app: &Router,
    cookie: &str,
    held: &'static str,
    other: &'static str,
    gate: &Gate,
) -> common::Reply {
    let task = {
        let (app, cookie) = (app.clone(), cookie.to_owned());
        tokio::spawn(async move { submit(&app, held, Some(&cookie)).await })
    };
    gate.loaded().await;
    let reply = submit(app, other, Some(cookie)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    gate.release();
    task.await.unwrap()
}

#[tokio::test]
async fn removal_after_a_concurrent_patch_keeps_the_patched_field() {
    let (app, _, gate) = fixture();
    let cookie = submit(&app, "/seed", None).await.cookie();
    // The held request loaded {x:1, y:0}; setting x back to 0 makes the
    // namespace equal to its default, which would remove it whole.
    let held = interleave(&app, &cookie, "/hold/x0", "/y5", &gate).await;
    assert_eq!(held.status, 200, "{}", held.body);
    assert_eq!(fetch(&app, "/pair", Some(&cookie)).await.body, "0,5");
}

#[tokio::test]
async fn patch_after_a_concurrent_removal_stores_a_whole_namespace() {
    let (app, _, gate) = fixture();
    let cookie = submit(&app, "/seed", None).await.cookie();
    // The held request patches y into a namespace that the other request
    // removed meanwhile: it must not store a namespace without `x`.
    let held = interleave(&app, &cookie, "/hold/y5", "/x0", &gate).await;
    assert_eq!(held.status, 200, "{}", held.body);
    let reply = fetch(&app, "/pair", Some(&cookie)).await;
    assert_eq!(
        reply.status, 200,
        "a namespace with fields missing was stored"
    );
    assert_eq!(reply.body, "0,5");
}

#[tokio::test]
async fn writing_into_a_record_emptied_meanwhile_is_not_reported_as_saved() {
    let (app, store, gate) = fixture();
    let cookie = submit(&app, "/seed-pair", None).await.cookie();
    // The other request empties the last namespace: the record is deleted.
    let held = interleave(&app, &cookie, "/hold/other", "/x0", &gate).await;
    assert!(store.inner.load(&key_of(&cookie)).await.unwrap().is_none());
    assert!(
        !held.status.is_success(),
        "a 2xx for data that was dropped: {} {}",
        held.status,
        held.body
    );
    assert_eq!(held.status, 409);
    assert!(held.set_cookies.is_empty(), "{:?}", held.set_cookies);
}

// ---------------------------------------------------------------------------
// Rolling deploy: old and new code share one store.

#[tokio::test]
async fn older_code_never_relabels_data_written_by_newer_code() {
    let clock = ManualClock::new();
    let store = CountingStore::new(Arc::clone(&clock));
    let gate = Gate::default();
    let held_gate = gate.clone();
    let old = Router::new()
        .route(
            "/seed",
            post(|mut p: Session<PrefsV1>| async move { p.theme = "light".into() }),
        )
        .route(
            "/hold/theme",
            post(move |mut p: Session<PrefsV1>| async move {
                held_gate.hold().await;
                p.theme = "dark".into();
            }),
        )
        .layer(
            SessionLayer::builder(store.clone())
                .clock(clock.clone())
                .build()
                .unwrap(),
        );
    let new = Router::new()
        .route(
            "/lang",
            post(|mut p: Session<PrefsV2>| async move { p.lang = "fr".into() }),
        )
        .route(
            "/prefs",
            get(|p: Session<PrefsV2>| async move { format!("{},{}", p.theme, p.lang) }),
        )
        .layer(
            SessionLayer::builder(store.clone())
                .clock(clock.clone())
                .build()
                .unwrap(),
        );
    let cookie = submit(&old, "/seed", None).await.cookie();
    let held = {
        let (old, cookie) = (old.clone(), cookie.clone());
        tokio::spawn(async move { submit(&old, "/hold/theme", Some(&cookie)).await })
    };
    gate.loaded().await;
    assert_eq!(submit(&new, "/lang", Some(&cookie)).await.status, 200);
    gate.release();
    let held = held.await.unwrap();
    // The old instance's patch at version 1 must not land on version 2 data.
    assert!(!held.status.is_success(), "{} {}", held.status, held.body);
    let record = store.inner.load(&key_of(&cookie)).await.unwrap().unwrap();
    assert_eq!(record.namespace("prefs").unwrap().version, 2);
    assert_eq!(fetch(&new, "/prefs", Some(&cookie)).await.body, "light,fr");
}

// ---------------------------------------------------------------------------
// Whole-namespace writes (a migrated namespace, a first write) racing others.

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
    let gate = Gate::default();
    let held = gate.clone();
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
                let held = held.clone();
                async move {
                    held.hold().await;
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
    gate.loaded().await;
    submit(&v2, "/incr", Some(&cookie)).await;
    assert_eq!(fetch(&v2, "/get", Some(&cookie)).await.body, "11 ");
    gate.release();
    slow.await.unwrap();
    // Different fields of one namespace must both survive.
    assert_eq!(fetch(&v2, "/get", Some(&cookie)).await.body, "11 SAVE10");
}

#[derive(SessionData, Default)]
#[session(namespace = "look")]
struct Look {
    theme: String,
    lang: String,
}

#[tokio::test]
async fn first_writes_of_one_namespace_by_two_requests_both_survive() {
    let gate = Gate::default();
    let held = gate.clone();
    let app = Router::new()
        .route(
            "/seed",
            post(|mut o: Session<Other>| async move { o.n = 1 }),
        )
        .route(
            "/theme",
            post(|mut p: Session<Look>| async move { p.theme = "dark".into() }),
        )
        .route(
            "/slow-lang",
            post(move |mut p: Session<Look>| {
                let held = held.clone();
                async move {
                    held.hold().await;
                    p.lang = "fr".into();
                }
            }),
        )
        .route(
            "/prefs",
            get(|p: Session<Look>| async move { format!("{}/{}", p.theme, p.lang) }),
        )
        .layer(SessionLayer::new(MemoryStore::new()));
    let cookie = submit(&app, "/seed", None).await.cookie();
    let (app2, c2) = (app.clone(), cookie.clone());
    let slow = tokio::spawn(async move { submit(&app2, "/slow-lang", Some(&c2)).await });
    gate.loaded().await;
    submit(&app, "/theme", Some(&cookie)).await;
    gate.release();
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(fetch(&app, "/prefs", Some(&cookie)).await.body, "dark/fr");
}
