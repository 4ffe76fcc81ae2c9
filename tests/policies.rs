//! Schema evolution across deploys and the error policies (the README's error table),
//! through real routers sharing one store: "old code" and "new code" are
//! two routers whose schemas share a namespace.

use typed_sessions_test_support as common;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use common::{CountingStore, ManualClock, fetch, submit};
use typed_sessions::stores::NamespaceOp;
use typed_sessions::{
    DecodeFailurePolicy, NewerVersionPolicy, Session, SessionData, SessionHandle, SessionLayer,
    SessionLayerBuilder,
};

#[derive(SessionData, Default, Debug)]
#[session(namespace = "cart", version = 1)]
struct CartV1 {
    skus: Vec<String>,
}

#[derive(SessionData, Default, Debug)]
#[session(namespace = "cart", version = 2, migrate_from = CartV1)]
struct CartV2 {
    items: Vec<(String, u32)>,
    #[session(default)]
    note: String,
}

impl From<CartV1> for CartV2 {
    fn from(v1: CartV1) -> Self {
        Self {
            items: v1.skus.into_iter().map(|s| (s, 1)).collect(),
            note: String::new(),
        }
    }
}

#[derive(SessionData, Default, Debug)]
#[session(namespace = "n")]
struct AsText {
    value: String,
}

#[derive(SessionData, Default, Debug)]
#[session(namespace = "n")]
struct AsNumber {
    value: u64,
}

#[derive(SessionData, Default, Debug)]
#[session(namespace = "other")]
struct Other {
    flag: bool,
}

fn layer(
    store: &CountingStore,
    clock: &Arc<ManualClock>,
    f: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
) -> SessionLayer {
    f(SessionLayer::builder(store.clone()).clock(clock.clone()))
        .build()
        .unwrap()
}

fn old_code(store: &CountingStore, clock: &Arc<ManualClock>) -> Router {
    Router::new()
        .route(
            "/add/{sku}",
            post(
                |axum::extract::Path(sku): axum::extract::Path<String>,
                 mut cart: Session<CartV1>| async move {
                    cart.skus.push(sku);
                    "ok"
                },
            ),
        )
        .route(
            "/cart",
            get(
                |cart: Result<Session<CartV1>, typed_sessions::SessionRejection>| async move {
                    match cart {
                        Ok(cart) => (http::StatusCode::OK, cart.skus.join(",")),
                        Err(rejection) => (rejection.status(), String::new()),
                    }
                },
            ),
        )
        .route(
            "/text/{v}",
            post(
                |axum::extract::Path(v): axum::extract::Path<String>,
                 mut n: Session<AsText>,
                 mut o: Session<Other>| async move {
                    n.value = v;
                    o.flag = true;
                    "ok"
                },
            ),
        )
        .layer(layer(store, clock, |b| b))
}

fn new_code(
    store: &CountingStore,
    clock: &Arc<ManualClock>,
    f: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
) -> Router {
    Router::new()
        .route(
            "/cart",
            get(|cart: Session<CartV2>| async move {
                cart.items.iter().map(|(s, q)| format!("{s}x{q}")).collect::<Vec<_>>().join(",")
            }),
        )
        .route(
            "/add/{sku}",
            post(|axum::extract::Path(sku): axum::extract::Path<String>, mut cart: Session<CartV2>| async move {
                cart.items.push((sku, 2));
                "ok"
            }),
        )
        .route("/touch", post(|mut cart: Session<CartV2>| async move {
            // DerefMut without a change: must not write the migrated value.
            let _ = &mut cart.items;
            "ok"
        }))
        .route("/number", get(|n: Session<AsNumber>| async move { n.value.to_string() }))
        .route("/number/{v}", post(|axum::extract::Path(v): axum::extract::Path<u64>, mut n: Session<AsNumber>| async move {
            n.value = v;
            "ok"
        }))
        .route("/other", get(|o: Session<Other>| async move { o.flag.to_string() }))
        .layer(layer(store, clock, f))
}

#[tokio::test]
async fn older_version_is_migrated_on_read_and_not_written_by_a_read() {
    let clock = ManualClock::new();
    let store = CountingStore::new(clock.clone());
    let old = old_code(&store, &clock);
    let new = new_code(&store, &clock, |b| b);
    let cookie = submit(&old, "/add/a1", None).await.cookie();
    let saves = store.counts.saves();
    let r = fetch(&new, "/cart", Some(&cookie)).await;
    assert_eq!(r.body, "a1x1");
    submit(&new, "/touch", Some(&cookie)).await;
    assert_eq!(
        store.counts.saves(),
        saves,
        "reading or touching without change never writes the new version"
    );
    // Old code still reads its own data: nothing was overwritten.
    assert_eq!(fetch(&old, "/cart", Some(&cookie)).await.body, "a1");
}

#[tokio::test]
async fn older_version_is_written_at_the_new_version_when_changed() {
    let clock = ManualClock::new();
    let store = CountingStore::new(clock.clone());
    let old = old_code(&store, &clock);
    let new = new_code(&store, &clock, |b| b);
    let cookie = submit(&old, "/add/a1", None).await.cookie();
    let r = submit(&new, "/add/b2", Some(&cookie)).await;
    let cookie = r.set_cookie().map_or(cookie, |_| r.cookie());
    let saved = store.counts.last_save();
    let change = &saved.namespaces[0];
    assert_eq!(change.version, 2);
    assert!(
        matches!(&change.op, NamespaceOp::Replace(f) if f.get("skus").is_none() && f.get("items").is_some()),
        "{:?}",
        change.op
    );
    assert_eq!(fetch(&new, "/cart", Some(&cookie)).await.body, "a1x1,b2x2");
    // Old code now meets a newer version: rejected by default, data kept.
    assert_eq!(fetch(&old, "/cart", Some(&cookie)).await.status, 500);
    assert_eq!(fetch(&new, "/cart", Some(&cookie)).await.body, "a1x1,b2x2");
}

#[tokio::test]
async fn newer_version_can_be_reset_by_policy() {
    let clock = ManualClock::new();
    let store = CountingStore::new(clock.clone());
    let new = new_code(&store, &clock, |b| b);
    let cookie = submit(&new, "/add/z9", None).await.cookie();
    let old_resetting = Router::new()
        .route(
            "/cart",
            get(|cart: Session<CartV1>| async move { format!("[{}]", cart.skus.join(",")) }),
        )
        .layer(layer(&store, &clock, |b| {
            b.on_newer_version(NewerVersionPolicy::Reset)
        }));
    let r = fetch(&old_resetting, "/cart", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "[]");
}

#[tokio::test]
async fn undecodable_field_resets_that_namespace_only() {
    let clock = ManualClock::new();
    let store = CountingStore::new(clock.clone());
    let old = old_code(&store, &clock);
    let new = new_code(&store, &clock, |b| b);
    let cookie = submit(&old, "/text/hello", None).await.cookie();
    let r = fetch(&new, "/number", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "0", "the namespace reads as Default");
    assert_eq!(
        fetch(&new, "/other", Some(&cookie)).await.body,
        "true",
        "other namespaces untouched"
    );
    // A write replaces the unreadable namespace whole.
    submit(&new, "/number/7", Some(&cookie)).await;
    assert!(matches!(
        store.counts.last_save().namespaces[0].op,
        NamespaceOp::Replace(_)
    ));
    assert_eq!(fetch(&new, "/number", Some(&cookie)).await.body, "7");
}

#[tokio::test]
async fn undecodable_field_is_500_under_strict_policy() {
    let clock = ManualClock::new();
    let store = CountingStore::new(clock.clone());
    let old = old_code(&store, &clock);
    let strict = new_code(&store, &clock, |b| {
        b.on_decode_failure(DecodeFailurePolicy::Strict)
    });
    let cookie = submit(&old, "/text/hello", None).await.cookie();
    let r = fetch(&strict, "/number", Some(&cookie)).await;
    assert_eq!(r.status, 500);
    assert!(!r.body.contains("hello"), "no stored data in the response");
}

#[derive(SessionData, Default)]
#[session(namespace = "shared")]
struct ClaimA {
    a: u8,
}

#[derive(SessionData, Default)]
#[session(namespace = "shared")]
struct ClaimB {
    b: u8,
}

#[tokio::test]
async fn two_types_claiming_one_namespace_are_refused() {
    let app = Router::new()
        .route(
            "/",
            get(|_a: Session<ClaimA>, _b: Session<ClaimB>| async { "unreachable" }),
        )
        .layer(SessionLayer::new(typed_sessions::stores::MemoryStore::new()));
    assert_eq!(fetch(&app, "/", None).await.status, 500);
}

#[derive(SessionData, Default)]
#[session(namespace = "secret")]
struct Secret {
    user: String,
    #[session(sensitive)]
    token: String,
}

#[tokio::test]
async fn debug_redacts_sensitive_fields_and_handle_hides_the_raw_id() {
    let app = Router::new()
        .route(
            "/set",
            post(|mut s: Session<Secret>| async move {
                s.user = "ann".into();
                s.token = "hunter2".into();
                format!("{s:?}")
            }),
        )
        .route(
            "/id",
            get(|h: SessionHandle| async move { format!("{} {:?}", h.id().unwrap(), h) }),
        )
        .layer(SessionLayer::new(typed_sessions::stores::MemoryStore::new()));
    let r = submit(&app, "/set", None).await;
    assert!(r.body.contains("ann"), "{}", r.body);
    assert!(r.body.contains("<redacted>"), "{}", r.body);
    assert!(!r.body.contains("hunter2"), "{}", r.body);
    let cookie = r.cookie();
    let raw = cookie.split_once('=').unwrap().1;
    let shown = fetch(&app, "/id", Some(&cookie)).await.body;
    assert!(!shown.contains(raw), "{shown}");
    assert_eq!(shown.split(' ').next().unwrap().len(), 16);
}

#[tokio::test]
async fn sessions_are_usable_from_tower_middleware() {
    use axum::middleware::{Next, from_fn};

    #[derive(SessionData, Default)]
    #[session(namespace = "hits")]
    struct Hits {
        n: u32,
    }

    async fn count_hits(request: axum::extract::Request, next: Next) -> axum::response::Response {
        let (mut parts, body) = request.into_parts();
        {
            let mut hits =
                <Session<Hits> as axum::extract::FromRequestParts<()>>::from_request_parts(
                    &mut parts,
                    &(),
                )
                .await
                .expect("inside the layer");
            hits.n += 1;
        }
        next.run(axum::extract::Request::from_parts(parts, body))
            .await
    }

    let app = Router::new()
        .route("/", get(|h: Session<Hits>| async move { h.n.to_string() }))
        .layer(from_fn(count_hits))
        .layer(SessionLayer::new(typed_sessions::stores::MemoryStore::new()));
    let r = fetch(&app, "/", None).await;
    assert_eq!(
        r.body, "1",
        "the handler sees the middleware's change in the same request"
    );
    let cookie = r.cookie();
    assert_eq!(fetch(&app, "/", Some(&cookie)).await.body, "2");
}

#[tokio::test]
async fn update_after_destroy_in_the_same_request_is_an_error() {
    #[derive(SessionData, Default)]
    #[session(namespace = "c")]
    struct C {
        n: u32,
    }
    let app = Router::new()
        .route(
            "/",
            post(|h: SessionHandle, mut c: Session<C>| async move {
                h.destroy();
                match c.update(|c| c.n += 1).await {
                    Err(typed_sessions::UpdateError::Destroyed) => "refused",
                    _ => "committed",
                }
            }),
        )
        .layer(SessionLayer::new(typed_sessions::stores::MemoryStore::new()));
    assert_eq!(submit(&app, "/", None).await.body, "refused");
}

#[tokio::test]
async fn clear_discards_values_extracted_before_it_and_deletes_the_record() {
    #[derive(SessionData, Default)]
    #[session(namespace = "c")]
    struct C {
        n: u32,
    }
    let store = typed_sessions::stores::MemoryStore::new();
    let app = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<C>| async move {
                c.n += 1;
                c.n.to_string()
            }),
        )
        .route(
            "/clear-and-write",
            post(|h: SessionHandle, mut before: Session<C>| async move {
                before.n = 100; // discarded by clear()
                h.clear();
                drop(before);
                "ok"
            }),
        )
        .layer(SessionLayer::new(store.clone()));
    let first = submit(&app, "/incr", None).await.cookie();
    let r = submit(&app, "/clear-and-write", Some(&first)).await;
    assert!(r.has_removal(), "{:?}", r.set_cookies);
    assert!(store.is_empty());
}

#[tokio::test]
async fn value_committed_by_update_in_middleware_is_what_the_handler_sees() {
    use axum::middleware::{Next, from_fn};

    #[derive(SessionData, Default)]
    #[session(namespace = "seen")]
    struct Seen {
        n: u32,
    }

    async fn bump(request: axum::extract::Request, next: Next) -> axum::response::Response {
        let (mut parts, body) = request.into_parts();
        {
            let mut seen =
                <Session<Seen> as axum::extract::FromRequestParts<()>>::from_request_parts(
                    &mut parts,
                    &(),
                )
                .await
                .expect("inside the layer");
            seen.update(|s| s.n += 1).await.expect("committed");
        }
        next.run(axum::extract::Request::from_parts(parts, body))
            .await
    }

    let store = typed_sessions::stores::MemoryStore::new();
    let app = Router::new()
        .route("/", get(|s: Session<Seen>| async move { s.n.to_string() }))
        .layer(from_fn(bump))
        .layer(SessionLayer::new(store.clone()));
    let r = fetch(&app, "/", None).await;
    assert_eq!(r.body, "1");
    let cookie = r.cookie();
    let r = fetch(&app, "/", Some(&cookie)).await;
    assert_eq!(
        r.body, "2",
        "the handler sees the committed value, not the stale record"
    );
    assert_eq!(fetch(&app, "/", Some(&cookie)).await.body, "3");
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn login_through_update_on_a_new_session_saves_once() {
    #[derive(SessionData, Default)]
    #[session(namespace = "login")]
    struct Login {
        #[session(rotate_id)]
        user: Option<String>,
    }
    let clock = ManualClock::new();
    let store = CountingStore::new(clock.clone());
    let app = Router::new()
        .route(
            "/login",
            post(|mut l: Session<Login>| async move {
                l.update(|l| l.user = Some("ann".into())).await.unwrap();
                "ok"
            }),
        )
        .route(
            "/me",
            get(|l: Session<Login>| async move { l.user.clone().unwrap_or_default() }),
        )
        .layer(layer(&store, &clock, |b| b));
    let r = submit(&app, "/login", None).await;
    assert_eq!(store.counts.saves(), 1, "the fresh id is not rotated again");
    assert_eq!(fetch(&app, "/me", Some(&r.cookie())).await.body, "ann");
}
