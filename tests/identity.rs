//! Which id a request's session lives under: login rotation through
//! `update`, cookies that a concurrent login made stale, and several
//! cookies under our name.

use typed_sessions_test_support as common;
use typed_sessions_test_support::schemas::{Counter, Other};

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use common::{CountingStore, Gate, ManualClock, fetch, key_of, send, submit};
use typed_sessions::stores::MemoryStore;
use typed_sessions::stores::{SaveMode, SessionStore};
use typed_sessions::{Session, SessionData, SessionHandle, SessionLayer, SessionLayerBuilder};

#[derive(SessionData, Default)]
#[session(namespace = "auth")]
struct Auth {
    #[session(rotate_id)]
    user: Option<String>,
}

fn cookie_of(headers: &HeaderMap) -> String {
    headers
        .get(http::header::COOKIE)
        .expect("a cookie")
        .to_str()
        .unwrap()
        .to_owned()
}

fn app(
    store: &CountingStore,
    clock: &Arc<ManualClock>,
    gate: &Gate,
    configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
) -> Router {
    let layer = configure(SessionLayer::builder(store.clone()).clock(clock.clone()))
        .build()
        .unwrap();
    let peek = store.clone();
    let blip = store.clone();
    let gate = gate.clone();
    Router::new()
        .route(
            "/seed",
            post(|mut c: Session<Counter>| async move { c.count = 1 }),
        )
        .route(
            "/count",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .route(
            "/me",
            get(|a: Session<Auth>| async move { a.user.clone().unwrap_or_default() }),
        )
        .route(
            "/login-then-fail",
            post(|mut a: Session<Auth>| async move {
                a.update(|a| a.user = Some("victim".into())).await.unwrap();
                (http::StatusCode::INTERNAL_SERVER_ERROR, "boom")
            }),
        )
        .route(
            "/login-then-peek",
            post(move |headers: HeaderMap, mut a: Session<Auth>| {
                let store = peek.clone();
                async move {
                    a.update(|a| a.user = Some("victim".into())).await.unwrap();
                    // Still inside the handler: the id the client came with
                    // must already name nothing.
                    let old = store
                        .inner
                        .load(&key_of(&cookie_of(&headers)))
                        .await
                        .unwrap();
                    if old.is_some() {
                        "old id still live"
                    } else {
                        "old id gone"
                    }
                }
            }),
        )
        .route(
            "/slow-update",
            post(move |mut c: Session<Counter>| {
                let gate = gate.clone();
                async move {
                    c.update(|c| c.count += 1).await.unwrap();
                    gate.hold().await;
                    "updated"
                }
            }),
        )
        .route(
            "/regenerate",
            post(|h: SessionHandle| async move { h.regenerate_id() }),
        )
        .route(
            "/login-then-store-blip",
            post(move |mut a: Session<Auth>, mut c: Session<Counter>| {
                let store = blip.clone();
                async move {
                    a.update(|a| a.user = Some("victim".into())).await.unwrap();
                    // The end-of-request save of this change will fail.
                    c.count += 1;
                    store
                        .counts
                        .saves_down
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }),
        )
        .route(
            "/logout",
            post(|h: SessionHandle| async move { h.destroy() }),
        )
        .route(
            "/login-logout-fail",
            post(|mut a: Session<Auth>, h: SessionHandle| async move {
                a.update(|a| a.user = Some("victim".into())).await.unwrap();
                h.destroy();
                (http::StatusCode::INTERNAL_SERVER_ERROR, "boom")
            }),
        )
        .layer(layer)
}

fn fixture(
    configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
) -> (Router, CountingStore, Gate) {
    let clock = ManualClock::new();
    let store = CountingStore::new(Arc::clone(&clock));
    let gate = Gate::default();
    (app(&store, &clock, &gate, configure), store, gate)
}

#[tokio::test]
async fn login_through_update_that_then_fails_never_logs_in_the_old_id() {
    let (app, store, _) = fixture(|b| b);
    // The attacker's session, planted in the victim's browser.
    let planted = submit(&app, "/seed", None).await.cookie();
    let reply = submit(&app, "/login-then-fail", Some(&planted)).await;
    assert_eq!(reply.status, 500);
    assert_eq!(fetch(&app, "/me", Some(&planted)).await.body, "");
    // The login was committed as one move to a fresh id...
    assert!(matches!(
        store.counts.last_save().mode,
        SaveMode::Rename { .. }
    ));
    // ...which the browser learns even from the 500, or the session (and
    // everything else it held) would be orphaned.
    let fresh = reply.cookie();
    assert_ne!(fresh, planted);
    assert_eq!(fetch(&app, "/me", Some(&fresh)).await.body, "victim");
    assert_eq!(fetch(&app, "/count", Some(&fresh)).await.body, "1");
}

#[tokio::test]
async fn login_through_update_moves_the_session_before_the_handler_continues() {
    let (app, store, _) = fixture(|b| b);
    let planted = submit(&app, "/seed", None).await.cookie();
    let saves = store.counts.saves();
    let reply = submit(&app, "/login-then-peek", Some(&planted)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "old id gone");
    // One save: the rename carried the login.
    assert_eq!(store.counts.saves(), saves + 1);
    let fresh = reply.cookie();
    assert_ne!(fresh, planted);
    assert_eq!(fetch(&app, "/me", Some(&fresh)).await.body, "victim");
    assert_eq!(fetch(&app, "/count", Some(&fresh)).await.body, "1");
    assert_eq!(fetch(&app, "/me", Some(&planted)).await.body, "");
}

async fn update_racing_a_login(configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder) {
    let (app, _, gate) = fixture(configure);
    let cookie = submit(&app, "/seed", None).await.cookie();
    let slow = {
        let (app, cookie) = (app.clone(), cookie.clone());
        tokio::spawn(async move { submit(&app, "/slow-update", Some(&cookie)).await })
    };
    gate.loaded().await;
    let login = submit(&app, "/regenerate", Some(&cookie)).await;
    let fresh = login.cookie();
    assert_ne!(fresh, cookie);
    gate.release();
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, 200, "{}", slow.body);
    // The slow response arrives last: re-sending the old id would replace
    // the new cookie in the browser with a dead one.
    assert!(
        slow.set_cookies
            .iter()
            .all(|c| !c.contains(common::session_value(&cookie))),
        "{:?}",
        slow.set_cookies
    );
    assert_eq!(fetch(&app, "/count", Some(&fresh)).await.body, "2");
}

#[tokio::test]
async fn update_racing_a_login_does_not_resend_the_old_id() {
    update_racing_a_login(|b| b).await;
}

#[tokio::test]
async fn update_racing_a_login_does_not_resend_the_old_id_with_an_idle_timeout() {
    update_racing_a_login(|b| b.idle_timeout(Duration::from_mins(30))).await;
}

#[tokio::test]
async fn update_on_a_persistent_cookie_resends_max_age_for_a_live_session() {
    let (app, _, gate) = fixture(|b| b.idle_timeout(Duration::from_mins(30)));
    let cookie = submit(&app, "/seed", None).await.cookie();
    let slow = {
        let (app, cookie) = (app.clone(), cookie.clone());
        tokio::spawn(async move { submit(&app, "/slow-update", Some(&cookie)).await })
    };
    gate.loaded().await;
    gate.release();
    let slow = slow.await.unwrap();
    // The update moved the server deadline; the browser learns it.
    assert_eq!(slow.cookie(), cookie);
    assert_eq!(common::max_age(slow.set_cookie().unwrap()), Some(1800));
}

#[tokio::test]
async fn two_live_ids_under_our_name_make_the_request_anonymous() {
    let (app, _, _) = fixture(|b| b);
    let a = submit(&app, "/seed", None).await.cookie();
    let b = submit(&app, "/seed", None).await.cookie();
    let both = format!("{a}; {b}");
    assert_eq!(fetch(&app, "/count", Some(&both)).await.body, "0");
    // A write goes to a fresh id, never to either of the two.
    let reply = submit(&app, "/seed", Some(&both)).await;
    let fresh = reply.cookie();
    assert_ne!(fresh, a);
    assert_ne!(fresh, b);
    // Neither session was touched.
    assert_eq!(fetch(&app, "/count", Some(&a)).await.body, "1");
    assert_eq!(fetch(&app, "/count", Some(&b)).await.body, "1");
}

#[tokio::test]
async fn an_id_naming_no_live_record_is_ignored_beside_a_live_one() {
    let (app, store, _) = fixture(|b| b);
    let live = submit(&app, "/seed", None).await.cookie();
    let stale = "session=AAAAAAAAAAAAAAAAAAAAAA";
    for header in [format!("{stale}; {live}"), format!("{live}; {stale}")] {
        let loads = store.counts.loads();
        assert_eq!(fetch(&app, "/count", Some(&header)).await.body, "1");
        assert_eq!(store.counts.loads(), loads + 2);
    }
}

#[tokio::test]
async fn many_ids_under_our_name_are_not_all_looked_up() {
    let (app, store, _) = fixture(|b| b);
    let live = submit(&app, "/seed", None).await.cookie();
    let mut header = live.clone();
    for i in 0..100u32 {
        use base64::Engine as _;
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&i.to_be_bytes());
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        header.push_str("; session=");
        header.push_str(&id);
    }
    let loads = store.counts.loads();
    let reply = send(&app, "GET", "/count", Some(&header), None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "0", "ambiguous: served as anonymous");
    assert!(
        store.counts.loads() - loads <= 8,
        "{} loads",
        store.counts.loads() - loads
    );
}

#[tokio::test]
async fn a_failed_write_back_after_a_login_through_update_keeps_the_new_id() {
    let (app, store, _) = fixture(|b| b);
    let cookie = submit(&app, "/seed", None).await.cookie();
    let reply = submit(&app, "/login-then-store-blip", Some(&cookie)).await;
    store
        .counts
        .saves_down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // The counter change was not kept: 503. The login was, under a new id
    // that the old cookie no longer reaches: the browser must learn it.
    assert_eq!(reply.status, 503);
    let fresh = reply.cookie();
    assert_ne!(fresh, cookie);
    assert_eq!(fetch(&app, "/me", Some(&fresh)).await.body, "victim");
    assert_eq!(fetch(&app, "/count", Some(&fresh)).await.body, "1");
}

#[tokio::test]
async fn logout_with_two_live_ids_under_our_name_ends_both_and_removes_the_cookie() {
    let (app, _, _) = fixture(|b| b);
    let mine = submit(&app, "/seed", None).await.cookie();
    let planted = submit(&app, "/seed", None).await.cookie();
    let reply = submit(&app, "/logout", Some(&format!("{planted}; {mine}"))).await;
    assert_eq!(reply.status, 200);
    assert!(reply.has_removal(), "{:?}", reply.set_cookies);
    // Neither session survives a logout the user asked for.
    assert_eq!(fetch(&app, "/count", Some(&mine)).await.body, "0");
    assert_eq!(fetch(&app, "/count", Some(&planted)).await.body, "0");
}

// ---------------------------------------------------------------------------
// A write racing a login; cookies of other applications.

#[tokio::test]
async fn write_racing_a_login_does_not_remove_the_new_cookie() {
    let gate = Gate::default();
    let held = gate.clone();
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
                let held = held.clone();
                async move {
                    o.n = 5;
                    held.hold().await;
                }
            }),
        )
        .layer(SessionLayer::new(MemoryStore::new()));
    let cookie = submit(&app, "/seed", None).await.cookie();
    let app2 = app.clone();
    let c2 = cookie.clone();
    let slow = tokio::spawn(async move { submit(&app2, "/slow-write", Some(&c2)).await });
    gate.loaded().await;
    let login = submit(&app, "/login", Some(&cookie)).await;
    let new_cookie = login.cookie();
    assert_ne!(new_cookie, cookie);
    gate.release();
    let slow = slow.await.unwrap();
    // The slow response arrives last: it must not remove the cookie, which
    // in the browser now holds the new id of a live session.
    assert!(slow.set_cookies.is_empty(), "{:?}", slow.set_cookies);
    assert_eq!(fetch(&app, "/get", Some(&new_cookie)).await.body, "1");
}

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

#[tokio::test]
async fn a_fresh_id_is_not_sent_when_the_request_also_destroyed_the_session() {
    let (app, _, _) = fixture(|b| b);
    let cookie = submit(&app, "/seed", None).await.cookie();
    let reply = submit(&app, "/login-logout-fail", Some(&cookie)).await;
    assert_eq!(reply.status, 500);
    assert!(reply.set_cookies.is_empty(), "{:?}", reply.set_cookies);
}
