//! `CookieStore`'s remembered values under a security review: isolation
//! between layers and key rings, deadlines, logout and regeneration, and
//! concurrent requests sharing a remembered record. (The review's two
//! findings about memory per entry corrected the documentation.)

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use typed_sessions::stores::{CookieKey, CookieStore};
use typed_sessions::{Session, SessionData, SessionHandle, SessionLayer};
use typed_sessions_test_support::schemas::{Tracked, decodes};
use typed_sessions_test_support::{ManualClock, fetch, submit};

fn key(byte: u8) -> CookieKey {
    CookieKey::from_bytes(vec![byte; 32])
}

fn modes(byte: u8) -> [CookieStore; 2] {
    [
        CookieStore::private(key(byte)),
        CookieStore::signed(key(byte)),
    ]
}

#[derive(SessionData, Default, Clone)]
#[session(namespace = "visits", cached)]
struct Visits {
    count: Tracked,
}

/// A list a user grows through the app (tags, cart lines, recent pages):
/// small when encoded, several times larger once decoded.
#[derive(SessionData, Default, Clone)]
#[session(namespace = "tags", cached)]
struct Tags {
    list: Vec<String>,
}

/// The same data, not `cached`.
#[derive(SessionData, Default)]
#[session(namespace = "note")]
struct Note {
    text: String,
}

fn app_with(
    store: CookieStore,
    configure: impl FnOnce(typed_sessions::SessionLayerBuilder) -> typed_sessions::SessionLayerBuilder,
) -> Router {
    let layer = configure(SessionLayer::builder(store).secure(false))
        .build()
        .expect("a valid layer");
    Router::new()
        .route(
            "/incr",
            post(|mut v: Session<Visits>| async move {
                v.count.0 += 1;
                v.count.0.to_string()
            }),
        )
        .route(
            "/count",
            get(|v: Session<Visits>| async move { v.count.0.to_string() }),
        )
        .route(
            "/tags",
            post(|mut t: Session<Tags>| async move {
                // 900 empty strings: 2 701 bytes of JSON, 21 600 decoded.
                t.list = vec![String::new(); 900];
            })
            .get(|t: Session<Tags>| async move { t.list.len().to_string() }),
        )
        .route(
            "/note",
            post(|mut n: Session<Note>| async move {
                // The bench's profile is 231 bytes; "a few hundred".
                n.text = "x".repeat(300);
            })
            .get(|n: Session<Note>| async move { n.text.len().to_string() }),
        )
        .route(
            "/short",
            post(|mut n: Session<Note>| async move {
                n.text = "x".repeat(200);
            })
            .get(|n: Session<Note>| async move { n.text.len().to_string() }),
        )
        .route(
            "/logout",
            post(|h: SessionHandle| async move { h.destroy() }),
        )
        .route(
            "/regenerate",
            post(|h: SessionHandle| async move { h.regenerate_id() }),
        )
        .layer(layer)
}

fn app(store: CookieStore) -> Router {
    app_with(store, |b| b.idle_timeout(Duration::from_mins(1)))
}

/// CHECK: the absolute timeout still applies to a remembered value.
#[tokio::test]
async fn absolute_timeout_applies_to_a_remembered_value() {
    for store in modes(1) {
        let clock = ManualClock::starting_now();
        let app = app_with(store, |b| {
            b.clock(clock.clone())
                .absolute_timeout(Duration::from_secs(100))
        });
        let cookie = submit(&app, "/incr", None).await.cookie();
        clock.advance(Duration::from_secs(99));
        assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
        clock.advance(Duration::from_secs(1));
        let late = fetch(&app, "/count", Some(&cookie)).await;
        assert_eq!(late.body, "0");
        assert!(late.has_removal());
    }
}

/// CHECK: idle refresh of a remembered value: reads keep the session alive
/// exactly as without the cache, and the refreshed value is then the one
/// remembered.
#[tokio::test]
async fn idle_refresh_is_the_same_with_and_without_memory() {
    let mut outcomes = Vec::new();
    for capacity in [CookieStore::DEFAULT_CACHE, 0] {
        let clock = ManualClock::starting_now();
        let app = app_with(CookieStore::signed(key(1)).cache_capacity(capacity), |b| {
            b.clock(clock.clone()).idle_timeout(Duration::from_mins(1))
        });
        let mut cookie = submit(&app, "/incr", None).await.cookie();
        let first = cookie.clone();
        let mut seen = Vec::new();
        for _ in 0..6 {
            clock.advance(Duration::from_secs(40));
            let reply = fetch(&app, "/count", Some(&cookie)).await;
            seen.push((reply.body.clone(), reply.set_cookie().is_some()));
            if reply.set_cookie().is_some() && !reply.has_removal() {
                cookie = reply.cookie();
            }
        }
        // The first value, now long idle, no longer opens.
        seen.push((fetch(&app, "/count", Some(&first)).await.body, false));
        outcomes.push(seen);
    }
    assert_eq!(outcomes[0], outcomes[1]);
}

/// CHECK: logout and `regenerate_id`: a replayed old value gives exactly
/// what it gives without the memory (a cookie store cannot revoke a value
/// the browser kept; the memory changes nothing there).
#[tokio::test]
async fn logout_and_regenerate_are_unchanged() {
    for make in [
        (|| CookieStore::private(key(1))) as fn() -> CookieStore,
        || CookieStore::signed(key(1)),
    ] {
        let mut outcomes = Vec::new();
        for capacity in [CookieStore::DEFAULT_CACHE, 0] {
            let app = app(make().cache_capacity(capacity));
            let cookie = submit(&app, "/incr", None).await.cookie();
            let logout = submit(&app, "/logout", Some(&cookie)).await;
            assert!(logout.has_removal());
            let after_logout = fetch(&app, "/count", Some(&cookie)).await.body;
            let renewed = submit(&app, "/regenerate", Some(&cookie)).await.cookie();
            assert_ne!(renewed, cookie);
            let old = fetch(&app, "/count", Some(&cookie)).await.body;
            let new = fetch(&app, "/count", Some(&renewed)).await.body;
            outcomes.push((after_logout, old, new));
        }
        assert_eq!(outcomes[0], outcomes[1]);
    }
}

/// CHECK: layers in one process never take each other's values, even when
/// they share the key: another cookie name, or the other mode, misses the
/// memory and fails the keys.
#[tokio::test]
async fn another_layers_value_never_opens() {
    let a = app_with(CookieStore::signed(key(1)), |b| b.cookie_name("a"));
    let b = app_with(CookieStore::signed(key(1)), |b| b.cookie_name("b"));
    let p = app_with(CookieStore::private(key(1)), |b| b.cookie_name("a"));
    let from_a = submit(&a, "/incr", None).await.cookie();
    assert_eq!(fetch(&a, "/count", Some(&from_a)).await.body, "1");
    let value = from_a.split_once('=').unwrap().1;
    // Each other layer has remembered values of its own.
    let own_b = submit(&b, "/incr", None).await.cookie();
    assert_eq!(fetch(&b, "/count", Some(&own_b)).await.body, "1");
    let own_p = submit(&p, "/incr", None).await.cookie();
    assert_eq!(fetch(&p, "/count", Some(&own_p)).await.body, "1");
    assert_eq!(
        fetch(&b, "/count", Some(&format!("b={value}"))).await.body,
        "0"
    );
    assert_eq!(fetch(&p, "/count", Some(&from_a)).await.body, "0");
}

/// CHECK: a value opened by the primary key of one ring is not accepted by
/// a layer whose ring no longer holds that key (a new layer after a key
/// change starts with an empty memory).
#[tokio::test]
async fn a_key_change_forgets() {
    for (old, new) in [
        (CookieStore::private(key(1)), CookieStore::private(key(2))),
        (CookieStore::signed(key(1)), CookieStore::signed(key(2))),
    ] {
        let old_app = app(old);
        let cookie = submit(&old_app, "/incr", None).await.cookie();
        assert_eq!(fetch(&old_app, "/count", Some(&cookie)).await.body, "1");
        let new_app = app(new);
        assert_eq!(fetch(&new_app, "/count", Some(&cookie)).await.body, "0");
    }
}

/// CHECK: concurrent requests on one remembered value (a `cached` schema,
/// shared decoded copy): a write never changes what a concurrent read of
/// the same value sees, nor another session's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_do_not_leak_through_the_shared_record() {
    for store in modes(1) {
        let app = app(store);
        let a = submit(&app, "/incr", None).await.cookie();
        let mut b = submit(&app, "/incr", None).await.cookie();
        for _ in 0..4 {
            b = submit(&app, "/incr", Some(&b)).await.cookie();
        }
        assert_eq!(fetch(&app, "/count", Some(&b)).await.body, "5");
        let mut tasks = Vec::new();
        for i in 0..200 {
            let (app, a, b) = (app.clone(), a.clone(), b.clone());
            tasks.push(tokio::spawn(async move {
                match i % 3 {
                    0 => assert_eq!(submit(&app, "/incr", Some(&a)).await.body, "2"),
                    1 => assert_eq!(fetch(&app, "/count", Some(&a)).await.body, "1"),
                    _ => assert_eq!(fetch(&app, "/count", Some(&b)).await.body, "5"),
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
}

/// CHECK (documents behaviour, minor doc finding): `cache_capacity(1)`
/// remembers up to 8 values (8 shards of `ceil(n / 8)`), and a capacity
/// below 8 is never "about" n. Values sealed here are read back without a
/// decode of the cookie, whatever the capacity >= 1.
#[tokio::test]
async fn capacity_one_still_remembers_the_last_seal() {
    let app = app(CookieStore::signed(key(1)).cache_capacity(1));
    let cookie = submit(&app, "/incr", None).await.cookie();
    let before = decodes();
    for _ in 0..3 {
        assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
    }
    assert_eq!(decodes() - before, 1);
}
