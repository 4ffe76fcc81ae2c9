//! The request lifecycle through a real `Router`, one case per row of the
//! lifecycle table (and the server-side rows of the error table), generic
//! over the store: every store's tests run it with
//! [`lifecycle_tests!`](crate::lifecycle_tests).
#![allow(
    clippy::too_many_lines,
    reason = "a router with every route the cases need reads best in one place"
)]

use crate::schemas::Counter;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use typed_sessions::stores::{NamespaceOp, SessionStore};
use typed_sessions::{Session, SessionData, SessionHandle, SessionLayer, SessionLayerBuilder};

use crate::{CountingStore, ManualClock, fetch, key_of, max_age, session_value, submit};

/// Expands to one `#[test]` per lifecycle case for the store that `$make`
/// (a `Fn(Arc<ManualClock>) -> S` closure) builds; the clock is the
/// layer's, for stores that can follow it. `lifecycle_tests!(when
/// $available; $make)` runs each case only when `$available` is true (for
/// stores that need a server; the expression says why it skips).
///
/// ```
/// typed_sessions_test_support::lifecycle_tests!(|clock| {
///     typed_sessions::stores::MemoryStore::builder().clock(clock).build()
/// });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! lifecycle_tests {
    (@cases $available:expr, $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                if $available {
                    $crate::lifecycle::run($crate::lifecycle::$case($make));
                }
            }
        )*
    };
    (@all $available:expr, $make:expr) => {
        $crate::lifecycle_tests!(@cases $available, $make;
            route_that_never_extracts_does_no_io_and_sets_no_cookie,
            no_cookie_read_only_gets_defaults_without_io_or_cookie,
            unknown_cookie_read_only_loads_once_and_sets_no_cookie,
            malformed_cookie_is_never_looked_up_and_is_cleared,
            first_write_creates_session_with_server_generated_id,
            write_stores_only_the_changed_field,
            valid_session_read_only_is_one_load_no_write_no_cookie,
            identical_assignment_writes_nothing,
            every_namespace_back_at_default_deletes_session_and_removes_cookie,
            one_namespace_back_at_default_keeps_the_others,
            writing_a_default_value_into_no_session_creates_nothing,
            destroy_deletes_and_removes_cookie,
            regenerate_keeps_data_and_kills_old_id,
            rotate_id_field_change_regenerates_id,
            handler_5xx_writes_nothing_and_response_is_untouched,
            two_namespaces_in_one_request_load_once_and_save_once,
            store_down_on_load_is_503_with_retry_after,
            store_down_on_load_can_fail_open_as_anonymous,
            store_down_on_save_replaces_response_with_503,
            session_without_layer_is_500,
            idle_timeout_expires_session_on_the_server,
            absolute_timeout_caps_an_active_session,
            sliding_refresh_is_throttled_and_never_rewrites_data,
            concurrent_atomic_updates_lose_nothing,
            store_sees_only_the_sha256_of_the_id,
            destroy_and_clear_leave_an_unknown_id_alone,
            shorter_idle_timeout_expires_sessions_already_idle_longer,
            clearing_twice_deletes_both_sessions,
            responses_that_read_a_session_vary_on_cookie,
            responses_that_set_a_cookie_are_private_unless_the_app_says_otherwise,
            cache_headers_can_be_turned_off,
            a_longer_idle_timeout_refreshes_before_the_old_store_deadline,
        );
    };
    (when $available:expr; $make:expr) => {
        $crate::lifecycle_tests!(@all $available, $make);
    };
    ($make:expr) => {
        $crate::lifecycle_tests!(@all true, $make);
    };
}

/// Runs one case on a multi-threaded runtime.
pub fn run(case: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(case);
}

/// `/incr` and `/count` over `store`, with an idle timeout: one deployment
/// of an app whose configuration changes between deployments.
fn counter_app<S: SessionStore>(
    store: &CountingStore<S>,
    clock: &Arc<ManualClock>,
    idle: Duration,
) -> Router {
    Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .route(
            "/count",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .layer(
            SessionLayer::builder(store.clone())
                .clock(clock.clone())
                .idle_timeout(idle)
                .build()
                .unwrap(),
        )
}

/// Whether the store holds the session the cookie names.
async fn stored<S: SessionStore>(store: &CountingStore<S>, cookie: &str) -> bool {
    store.inner.load(&key_of(cookie)).await.unwrap().is_some()
}

#[derive(SessionData, Default, Debug)]
#[session(namespace = "prefs")]
struct Prefs {
    theme: String,
    lang: String,
}

#[derive(SessionData, Default, Debug)]
#[session(namespace = "auth")]
struct Auth {
    #[session(rotate_id)]
    user: Option<String>,
    #[session(sensitive)]
    token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Item {
    sku: String,
}

#[derive(SessionData, Default, Debug)]
#[session(namespace = "cart")]
struct Cart {
    items: Vec<Item>,
}

struct Fixture<S> {
    app: Router,
    store: CountingStore<S>,
    clock: Arc<ManualClock>,
}

fn fixture<S: SessionStore>(make: impl Fn(Arc<ManualClock>) -> S) -> Fixture<S> {
    fixture_with(&make, |b| b)
}

fn fixture_with<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
    configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
) -> Fixture<S> {
    let clock = ManualClock::starting_now();
    let store = CountingStore::wrap(make(Arc::clone(&clock)));
    let layer = configure(SessionLayer::builder(store.clone()).clock(clock.clone()))
        .build()
        .unwrap();
    let app = Router::new()
        .route("/plain", get(|| async { "no session here" }))
        .route("/count", get(|c: Session<Counter>| async move { c.count.to_string() }))
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move {
                c.count += 1;
                c.count.to_string()
            }),
        )
        .route(
            "/same",
            post(|mut c: Session<Counter>| async move {
                let n = c.count;
                *c = Counter { count: n };
                n.to_string()
            }),
        )
        .route(
            "/reset",
            post(|mut c: Session<Counter>| async move {
                *c = Counter::default();
                "reset"
            }),
        )
        .route(
            "/theme/{v}",
            post(|axum::extract::Path(v): axum::extract::Path<String>, mut p: Session<Prefs>| async move {
                p.theme = v;
                "ok"
            }),
        )
        .route(
            "/lang/{v}",
            post(|axum::extract::Path(v): axum::extract::Path<String>, mut p: Session<Prefs>| async move {
                p.lang = v;
                "ok"
            }),
        )
        .route("/prefs", get(|p: Session<Prefs>| async move { format!("{}/{}", p.theme, p.lang) }))
        .route(
            "/login/{user}",
            post(|axum::extract::Path(user): axum::extract::Path<String>, mut a: Session<Auth>| async move {
                a.user = Some(user);
                a.token = Some("secret-token".into());
                "ok"
            }),
        )
        .route("/me", get(|a: Session<Auth>| async move { a.user.clone().unwrap_or_default() }))
        .route(
            "/cart/add/{sku}",
            post(|axum::extract::Path(sku): axum::extract::Path<String>, mut c: Session<Cart>| async move {
                c.items.push(Item { sku });
                c.items.len().to_string()
            }),
        )
        .route(
            "/both",
            post(|mut c: Session<Counter>, mut cart: Session<Cart>| async move {
                c.count += 10;
                cart.items.push(Item { sku: "z".into() });
                "ok"
            }),
        )
        .route("/destroy", post(|h: SessionHandle| async move { h.destroy(); "bye" }))
        .route("/clear", post(|h: SessionHandle| async move { h.clear(); "cleared" }))
        .route("/regenerate", post(|h: SessionHandle| async move { h.regenerate_id(); "new id" }))
        .route(
            "/fail",
            post(|mut c: Session<Counter>| async move {
                c.count += 100;
                (http::StatusCode::INTERNAL_SERVER_ERROR, "boom")
            }),
        )
        .route(
            "/atomic",
            post(|mut c: Session<Counter>| async move {
                match c.update(|c| { c.count += 1; c.count }).await {
                    Ok(n) => n.to_string(),
                    Err(e) => format!("error: {e}"),
                }
            }),
        )
        .layer(layer);
    Fixture { app, store, clock }
}

/// See the test name.
pub async fn route_that_never_extracts_does_no_io_and_sets_no_cookie<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let r = fetch(&f.app, "/plain", Some("session=AAAAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies.is_empty());
    assert_eq!(f.store.counts.io(), 0);
}

/// See the test name.
pub async fn no_cookie_read_only_gets_defaults_without_io_or_cookie<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let r = fetch(&f.app, "/count", None).await;
    assert_eq!(r.body, "0");
    assert!(r.set_cookies.is_empty());
    assert_eq!(f.store.counts.io(), 0, "no cookie means nothing to load");
}

/// See the test name.
pub async fn unknown_cookie_read_only_loads_once_and_sets_no_cookie<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let r = fetch(&f.app, "/count", Some("session=AAAAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!(r.body, "0");
    assert!(r.set_cookies.is_empty());
    assert_eq!(f.store.counts.loads(), 1);
    assert_eq!(f.store.counts.saves(), 0);
}

/// See the test name.
pub async fn malformed_cookie_is_never_looked_up_and_is_cleared<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    for bad in [
        "session=short",
        "session=%%%%%%%%%%%%%%%%%%%%%%",
        "session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let r = fetch(&f.app, "/count", Some(bad)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "0");
        assert!(r.has_removal(), "{bad}: {:?}", r.set_cookies);
    }
    assert_eq!(f.store.counts.loads(), 0);
}

/// See the test name.
pub async fn first_write_creates_session_with_server_generated_id<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let client_id = "session=AAAAAAAAAAAAAAAAAAAAAA";
    let r = submit(&f.app, "/incr", Some(client_id)).await;
    assert_eq!(r.body, "1");
    let cookie = r.cookie();
    assert_ne!(cookie, client_id, "a client-chosen id is never adopted");
    assert_eq!(session_value(&cookie).len(), 22);
    assert_eq!(f.store.counts.saves(), 1);
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "1");
}

/// See the test name.
pub async fn write_stores_only_the_changed_field<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let r = submit(&f.app, "/theme/dark", None).await;
    let cookie = r.cookie();
    let saved = f.store.counts.last_save();
    assert!(
        matches!(&saved.namespaces[0].op, NamespaceOp::Replace(fields) if fields.len() == 2),
        "a new namespace is stored whole"
    );
    submit(&f.app, "/lang/fr", Some(&cookie)).await;
    let saved = f.store.counts.last_save();
    match &saved.namespaces[0].op {
        NamespaceOp::Patch(fields) => {
            let names: Vec<_> = fields.iter().map(|(n, _)| n).collect();
            assert_eq!(names, ["lang"]);
        }
        other => panic!("expected a patch, got {other:?}"),
    }
    assert_eq!(fetch(&f.app, "/prefs", Some(&cookie)).await.body, "dark/fr");
}

/// See the test name.
pub async fn valid_session_read_only_is_one_load_no_write_no_cookie<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let before = (f.store.counts.loads(), f.store.counts.saves());
    let r = fetch(&f.app, "/count", Some(&cookie)).await;
    assert_eq!(r.body, "1");
    assert!(r.set_cookies.is_empty());
    assert_eq!(f.store.counts.loads() - before.0, 1);
    assert_eq!(f.store.counts.saves() - before.1, 0);
}

/// See the test name.
pub async fn identical_assignment_writes_nothing<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let saves = f.store.counts.saves();
    let r = submit(&f.app, "/same", Some(&cookie)).await;
    assert!(r.set_cookies.is_empty());
    assert_eq!(f.store.counts.saves(), saves);
}

/// See the test name.
pub async fn every_namespace_back_at_default_deletes_session_and_removes_cookie<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let r = submit(&f.app, "/reset", Some(&cookie)).await;
    assert!(r.has_removal(), "{:?}", r.set_cookies);
    assert!(!stored(&f.store, &cookie).await, "the record was deleted");
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "0");
}

/// See the test name.
pub async fn one_namespace_back_at_default_keeps_the_others<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let cookie = submit(&f.app, "/both", None).await.cookie();
    let r = submit(&f.app, "/reset", Some(&cookie)).await;
    assert!(!r.has_removal());
    assert!(matches!(
        f.store.counts.last_save().namespaces[0].op,
        NamespaceOp::Remove
    ));
    assert!(stored(&f.store, &cookie).await, "the record stays");
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "0");
}

/// See the test name.
pub async fn writing_a_default_value_into_no_session_creates_nothing<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let r = submit(&f.app, "/reset", None).await;
    assert!(r.set_cookies.is_empty());
    assert_eq!(f.store.counts.saves(), 0);
}

/// See the test name.
pub async fn destroy_deletes_and_removes_cookie<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let r = submit(&f.app, "/destroy", Some(&cookie)).await;
    assert!(r.has_removal());
    assert_eq!(f.store.counts.deletes(), 1);
    assert!(!stored(&f.store, &cookie).await, "the record was deleted");
}

/// See the test name.
pub async fn regenerate_keeps_data_and_kills_old_id<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let old = submit(&f.app, "/incr", None).await.cookie();
    let r = submit(&f.app, "/regenerate", Some(&old)).await;
    let new = r.cookie();
    assert_ne!(new, old);
    assert_eq!(fetch(&f.app, "/count", Some(&new)).await.body, "1");
    assert_eq!(fetch(&f.app, "/count", Some(&old)).await.body, "0");
    assert!(
        !stored(&f.store, &old).await && stored(&f.store, &new).await,
        "the old record was moved, not copied"
    );
}

/// See the test name.
pub async fn rotate_id_field_change_regenerates_id<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let anon = submit(&f.app, "/cart/add/a1", None).await.cookie();
    let r = submit(&f.app, "/login/alice", Some(&anon)).await;
    let logged_in = r.cookie();
    assert_ne!(logged_in, anon, "login must not keep the pre-login id");
    assert_eq!(fetch(&f.app, "/me", Some(&logged_in)).await.body, "alice");
    assert_eq!(fetch(&f.app, "/me", Some(&anon)).await.body, "");
    // The cart came along.
    assert_eq!(
        submit(&f.app, "/cart/add/b2", Some(&logged_in)).await.body,
        "2"
    );
}

/// See the test name.
pub async fn handler_5xx_writes_nothing_and_response_is_untouched<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let saves = f.store.counts.saves();
    let r = submit(&f.app, "/fail", Some(&cookie)).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body, "boom");
    assert!(r.set_cookies.is_empty());
    assert_eq!(f.store.counts.saves(), saves);
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "1");
}

/// See the test name.
pub async fn two_namespaces_in_one_request_load_once_and_save_once<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let r = submit(&f.app, "/both", None).await;
    let cookie = r.cookie();
    assert_eq!(f.store.counts.saves(), 1);
    assert_eq!(f.store.counts.last_save().namespaces.len(), 2);
    let loads = f.store.counts.loads();
    submit(&f.app, "/both", Some(&cookie)).await;
    assert_eq!(
        f.store.counts.loads() - loads,
        1,
        "one load shared by both extractors"
    );
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "20");
}

/// See the test name.
pub async fn store_down_on_load_is_503_with_retry_after<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    f.store.counts.set_down(true);
    let r = fetch(&f.app, "/count", Some(&cookie)).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers.get("retry-after").unwrap(), "5");
    assert!(
        !r.body.contains("test store"),
        "no internals to the client: {}",
        r.body
    );
}

/// See the test name.
pub async fn store_down_on_load_can_fail_open_as_anonymous<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture_with(&make, |b| {
        b.on_store_down(typed_sessions::StoreDownPolicy::FailOpen)
    });
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    f.store.counts.set_down(true);
    let r = fetch(&f.app, "/count", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "0");
}

/// See the test name.
pub async fn store_down_on_save_replaces_response_with_503<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    f.store
        .counts
        .saves_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = submit(&f.app, "/incr", Some(&cookie)).await;
    assert_eq!(
        r.status, 503,
        "never report success for data that was not kept"
    );
    assert!(r.headers.contains_key("retry-after"));
    assert!(r.set_cookies.is_empty());
}

/// See the test name.
pub async fn session_without_layer_is_500<S: SessionStore>(_make: impl Fn(Arc<ManualClock>) -> S) {
    let app: Router = Router::new().route(
        "/count",
        get(|c: Session<Counter>| async move { c.count.to_string() }),
    );
    let r = fetch(&app, "/count", None).await;
    assert_eq!(r.status, 500);
    assert!(
        !r.body.contains("SessionLayer"),
        "the log names the layer, the client sees no internals"
    );
}

/// See the test name.
pub async fn idle_timeout_expires_session_on_the_server<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture_with(&make, |b| b.idle_timeout(Duration::from_mins(1)));
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    f.clock.advance(Duration::from_secs(59));
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "1");
    f.clock.advance(Duration::from_secs(61));
    assert_eq!(
        fetch(&f.app, "/count", Some(&cookie)).await.body,
        "0",
        "expired despite the client sending the cookie"
    );
}

/// See the test name.
pub async fn absolute_timeout_caps_an_active_session<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture_with(&make, |b| {
        b.idle_timeout(Duration::from_mins(1))
            .absolute_timeout(Duration::from_secs(100))
    });
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    for _ in 0..3 {
        f.clock.advance(Duration::from_secs(30));
        let r = submit(&f.app, "/incr", Some(&cookie)).await;
        assert!(max_age(r.set_cookie().unwrap()).unwrap() <= 60);
    }
    // t = 90: Max-Age is the time left to the absolute deadline.
    let r = submit(&f.app, "/incr", Some(&cookie)).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(10));
    f.clock.advance(Duration::from_secs(11));
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "0");
}

/// See the test name.
pub async fn sliding_refresh_is_throttled_and_never_rewrites_data<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture_with(&make, |b| b.idle_timeout(Duration::from_secs(100)));
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let saves = f.store.counts.saves();
    // A burst of reads within a quarter of the idle timeout: no refresh.
    for _ in 0..10 {
        f.clock.advance(Duration::from_secs(2));
        let r = fetch(&f.app, "/count", Some(&cookie)).await;
        assert!(r.set_cookies.is_empty());
    }
    assert_eq!(f.store.counts.touches(), 0);
    // Past the quarter: one touch, the cookie's Max-Age is re-sent.
    f.clock.advance(Duration::from_secs(6));
    let r = fetch(&f.app, "/count", Some(&cookie)).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(100));
    assert_eq!(f.store.counts.touches(), 1);
    assert_eq!(f.store.counts.saves(), saves, "refresh never rewrites data");
    // An active client never expires.
    for _ in 0..10 {
        f.clock.advance(Duration::from_secs(50));
        assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "1");
    }
}

/// See the test name.
pub async fn concurrent_atomic_updates_lose_nothing<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    // 200 compare-and-swap writers on one session take a while on a busy
    // 2-core machine with a networked store: a deadline far beyond it, so
    // that the case checks that nothing is lost, not how fast.
    let f = fixture_with(&make, |b| b.update_deadline(Duration::from_secs(30)));
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let app = f.app.clone();
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(async move {
            submit(&app, "/atomic", Some(&cookie)).await
        }));
    }
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(!r.body.starts_with("error"), "{}", r.body);
    }
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "201");
}

/// See the test name.
pub async fn store_sees_only_the_sha256_of_the_id<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    use base64::Engine as _;
    use sha2::Digest as _;

    let f = fixture(&make);
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(session_value(&cookie))
        .unwrap();
    assert_eq!(raw.len(), 16, "128-bit ids");
    let key = f.store.counts.last_key.lock().unwrap().expect("a save");
    let expected: [u8; 32] = sha2::Sha256::digest(&raw).into();
    assert_eq!(key.as_bytes(), &expected);
}

/// See the test name.
pub async fn destroy_and_clear_leave_an_unknown_id_alone<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    for route in ["/destroy", "/clear"] {
        let r = submit(&f.app, route, Some("session=AAAAAAAAAAAAAAAAAAAAAA")).await;
        assert_eq!(r.status, 200);
        assert!(r.set_cookies.is_empty(), "{route}: {:?}", r.set_cookies);
    }
}

/// See the test name.
pub async fn shorter_idle_timeout_expires_sessions_already_idle_longer<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let clock = ManualClock::starting_now();
    let store = CountingStore::wrap(make(Arc::clone(&clock)));
    let build = |idle: u64| counter_app(&store, &clock, Duration::from_mins(idle));
    let cookie = submit(&build(30), "/incr", None).await.cookie();
    clock.advance(Duration::from_mins(20));
    // Redeployed with a 10-minute idle timeout: this session has been idle
    // for 20 minutes, so it is over.
    let shorter = build(10);
    assert_eq!(fetch(&shorter, "/count", Some(&cookie)).await.body, "0");
    // And a read does not revive it.
    assert_eq!(fetch(&shorter, "/count", Some(&cookie)).await.body, "0");
    // A session idle for less than the new timeout lives on.
    let recent = submit(&shorter, "/incr", None).await.cookie();
    clock.advance(Duration::from_mins(9));
    assert_eq!(fetch(&shorter, "/count", Some(&recent)).await.body, "1");
}

/// See the test name.
pub async fn clearing_twice_deletes_both_sessions<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let clock = ManualClock::starting_now();
    let store = CountingStore::wrap(make(Arc::clone(&clock)));
    let app = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .route(
            "/clear-write-clear",
            post(
                |h: SessionHandle, request: axum::extract::Request| async move {
                    use axum::extract::FromRequestParts as _;
                    h.clear();
                    let (mut parts, _) = request.into_parts();
                    let mut c = Session::<Counter>::from_request_parts(&mut parts, &())
                        .await
                        .unwrap();
                    // Creates a second session...
                    c.update(|c| c.count = 7).await.unwrap();
                    drop(c);
                    // ...which is cleared too.
                    h.clear();
                },
            ),
        )
        .layer(
            SessionLayer::builder(store.clone())
                .clock(clock)
                .build()
                .unwrap(),
        );
    let cookie = submit(&app, "/incr", None).await.cookie();
    let reply = submit(&app, "/clear-write-clear", Some(&cookie)).await;
    assert_eq!(reply.status, 200);
    assert!(reply.has_removal(), "{:?}", reply.set_cookies);
    assert_eq!(
        store.counts.deletes(),
        2,
        "both cleared sessions were deleted"
    );
    assert!(
        !stored(&store, &cookie).await,
        "a cleared session was left in the store"
    );
}

/// See the test name.
pub async fn responses_that_read_a_session_vary_on_cookie<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let r = fetch(&f.app, "/count", None).await;
    assert_eq!(r.headers.get("vary").unwrap(), "cookie");
    let r = fetch(&f.app, "/plain", None).await;
    assert!(r.headers.get("vary").is_none(), "no session, no Vary");
}

/// See the test name.
pub async fn responses_that_set_a_cookie_are_private_unless_the_app_says_otherwise<
    S: SessionStore,
>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture(&make);
    let r = submit(&f.app, "/incr", None).await;
    assert!(r.set_cookie().is_some());
    assert_eq!(r.headers.get("cache-control").unwrap(), "private");
    let cookie = r.cookie();
    // A read-only answer sets no cookie: its caching is the app's business.
    let r = fetch(&f.app, "/count", Some(&cookie)).await;
    assert!(r.headers.get("cache-control").is_none());
    // Removal cookies are private too.
    let r = submit(&f.app, "/destroy", Some(&cookie)).await;
    assert!(r.has_removal());
    assert_eq!(r.headers.get("cache-control").unwrap(), "private");

    // The app's own Cache-Control and Vary are kept (Vary gains Cookie).
    let app = Router::new()
        .route(
            "/own",
            post(|mut c: Session<Counter>| async move {
                c.count += 1;
                (
                    [("cache-control", "no-store"), ("vary", "accept-encoding")],
                    "ok",
                )
            }),
        )
        .layer(SessionLayer::new(make(ManualClock::starting_now())));
    let r = submit(&app, "/own", None).await;
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    let vary: Vec<_> = r
        .headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(vary.iter().any(|v| v == "accept-encoding"), "{vary:?}");
    assert!(
        vary.iter().any(|v| v.eq_ignore_ascii_case("cookie")),
        "{vary:?}"
    );
}

/// See the test name.
pub async fn cache_headers_can_be_turned_off<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let f = fixture_with(&make, |b| b.cache_headers(false));
    let r = submit(&f.app, "/incr", None).await;
    assert!(r.set_cookie().is_some());
    assert!(r.headers.get("cache-control").is_none());
    assert!(r.headers.get("vary").is_none());
}

/// See the test name.
pub async fn a_longer_idle_timeout_refreshes_before_the_old_store_deadline<S: SessionStore>(
    make: impl Fn(Arc<ManualClock>) -> S,
) {
    let clock = ManualClock::starting_now();
    let store = CountingStore::wrap(make(Arc::clone(&clock)));
    let build = |idle: u64| counter_app(&store, &clock, Duration::from_mins(idle));
    let cookie = submit(&build(10), "/incr", None).await.cookie();
    // Redeployed with a 60-minute idle timeout: a read every 8 minutes keeps
    // the session alive, although a quarter of 60 minutes is 15.
    let longer = build(60);
    for _ in 0..4 {
        clock.advance(Duration::from_mins(8));
        assert_eq!(fetch(&longer, "/count", Some(&cookie)).await.body, "1");
    }
}
