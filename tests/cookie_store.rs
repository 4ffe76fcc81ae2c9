//! `CookieStore` through the real layer: both modes, key rotation, the
//! size budget, expiry from inside the cookie, bad cookies cleared.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use typed_sessions::stores::{CookieKey, CookieStore};
use typed_sessions::{ConfigError, Session, SessionHandle, SessionLayer, SessionLayerBuilder};
use typed_sessions_test_support::schemas::Counter;
use typed_sessions_test_support::{ManualClock, capture_logs, fetch, max_age, submit};

#[derive(typed_sessions::SessionData, Default)]
#[session(namespace = "notes")]
struct Notes {
    text: String,
}

fn key(byte: u8) -> CookieKey {
    CookieKey::from_bytes(vec![byte; 32])
}

fn modes(byte: u8) -> [CookieStore; 2] {
    [
        CookieStore::private(key(byte)),
        CookieStore::signed(key(byte)),
    ]
}

fn app_with(
    store: CookieStore,
    configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
) -> Router {
    let layer = configure(SessionLayer::builder(store).secure(false))
        .build()
        .expect("a valid layer");
    Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move {
                c.count += 1;
                c.count.to_string()
            }),
        )
        .route(
            "/count",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .route(
            "/atomic",
            post(|mut c: Session<Counter>| async move {
                c.update(|c| c.count += 1).await.unwrap();
                c.count.to_string()
            }),
        )
        .route(
            "/notes",
            post(|mut n: Session<Notes>, body: String| async move {
                n.text = body;
            })
            .get(|n: Session<Notes>| async move { n.text.clone() }),
        )
        .route(
            "/id",
            get(|h: SessionHandle| async move { h.id().map(|id| id.to_string()).unwrap_or_default() }),
        )
        .route(
            "/regenerate",
            post(|h: SessionHandle| async move { h.regenerate_id() }),
        )
        .route(
            "/logout",
            post(|h: SessionHandle| async move { h.destroy() }),
        )
        .layer(layer)
}

fn app(store: CookieStore) -> Router {
    app_with(store, |b| b)
}

#[tokio::test]
async fn writes_round_trip_through_the_cookie_in_both_modes() {
    for store in modes(1) {
        let app = app(store);
        let first = submit(&app, "/incr", None).await;
        assert_eq!(first.body, "1");
        let cookie = first.cookie();
        let second = submit(&app, "/incr", Some(&cookie)).await;
        assert_eq!(second.body, "2");
        let cookie = second.cookie();
        let read = fetch(&app, "/count", Some(&cookie)).await;
        assert_eq!(read.body, "2");
        assert!(read.set_cookie().is_none(), "a read writes nothing");
    }
}

#[tokio::test]
async fn update_commits_into_the_cookie() {
    for store in modes(1) {
        let app = app(store);
        let cookie = submit(&app, "/atomic", None).await.cookie();
        let next = submit(&app, "/atomic", Some(&cookie)).await;
        assert_eq!(next.body, "2");
        assert_eq!(fetch(&app, "/count", Some(&next.cookie())).await.body, "2");
    }
}

#[tokio::test]
async fn a_cookie_under_another_key_or_mode_reads_as_a_fresh_session_and_is_cleared() {
    let cookie = submit(&app(CookieStore::private(key(1))), "/incr", None)
        .await
        .cookie();
    for other in [
        CookieStore::private(key(2)),
        CookieStore::signed(key(1)),
        CookieStore::signed(key(2)),
    ] {
        let (logs, _guard) = capture_logs(tracing::Level::WARN);
        let reply = fetch(&app(other), "/count", Some(&cookie)).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, "0");
        assert!(reply.has_removal(), "the bad cookie is cleared");
        let text = logs.text();
        assert!(text.contains("does not open"), "{text}");
        assert!(!text.contains(&cookie[8..]), "the value is never logged");
    }
}

#[tokio::test]
async fn rotation_reissues_under_the_primary_and_removal_ends_old_cookies() {
    for (old, new) in [
        (CookieStore::private(key(1)), CookieStore::private(key(2))),
        (CookieStore::signed(key(1)), CookieStore::signed(key(2))),
    ] {
        let old_cookie = submit(&app(old), "/incr", None).await.cookie();
        let rotated = app(new.clone().fallback_key(key(1)));
        let read = fetch(&rotated, "/count", Some(&old_cookie)).await;
        assert_eq!(read.body, "1", "a fallback key still opens");
        let reissued = read.cookie();
        assert_ne!(reissued, old_cookie, "re-issued on a read-only response");
        // The re-issued cookie opens under the new key alone.
        let only_new = app(new);
        assert_eq!(fetch(&only_new, "/count", Some(&reissued)).await.body, "1");
        // The old cookie does not, once the fallback is gone.
        let gone = fetch(&only_new, "/count", Some(&old_cookie)).await;
        assert_eq!(gone.body, "0");
        assert!(gone.has_removal());
    }
}

#[tokio::test]
async fn over_the_budget_is_a_500_with_no_cookie_and_a_logged_size() {
    for store in modes(1) {
        let app = app(store.max_cookie_size(400));
        let cookie = submit(&app, "/incr", None).await.cookie();
        let (logs, _guard) = capture_logs(tracing::Level::ERROR);
        let reply = typed_sessions_test_support::send(
            &app,
            "POST",
            "/notes",
            Some(&cookie),
            Some(&"n".repeat(500)),
        )
        .await;
        assert_eq!(reply.status, 500);
        assert!(reply.set_cookies.is_empty(), "{:?}", reply.set_cookies);
        let text = logs.text();
        assert!(text.contains("budget=400"), "{text}");
        assert!(text.contains("size="), "{text}");
        // The browser's cookie still holds what it held.
        assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
    }
}

#[tokio::test]
async fn the_default_budget_is_4096_bytes_for_name_and_value() {
    let app = app(CookieStore::signed(key(1)));
    // A value just under and just over: the signed envelope adds a fixed
    // overhead, so search the threshold.
    let mut largest_ok = 0;
    for len in (2800..3200).step_by(1) {
        let reply =
            typed_sessions_test_support::send(&app, "POST", "/notes", None, Some(&"n".repeat(len)))
                .await;
        if reply.status == 200 {
            let pair = reply.cookie();
            assert!(pair.len() <= 4096, "{}", pair.len());
            largest_ok = largest_ok.max(pair.len());
        } else {
            assert_eq!(reply.status, 500);
        }
    }
    assert!(
        largest_ok > 4090,
        "the budget is used up to its end: {largest_ok}"
    );
}

#[tokio::test]
async fn expiry_is_enforced_from_inside_the_cookie() {
    for store in modes(1) {
        let clock = ManualClock::starting_now();
        let app = app_with(store, |b| {
            b.idle_timeout(Duration::from_mins(1)).clock(clock.clone())
        });
        let cookie = submit(&app, "/incr", None).await.cookie();
        clock.advance(Duration::from_secs(59));
        assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
        // The browser ignores Max-Age and keeps sending the cookie.
        clock.advance(Duration::from_secs(61));
        let late = fetch(&app, "/count", Some(&cookie)).await;
        assert_eq!(late.body, "0");
        assert!(late.has_removal(), "an expired cookie is cleared");
    }
}

#[tokio::test]
async fn the_absolute_timeout_defaults_to_a_day() {
    let clock = ManualClock::starting_now();
    let app = app_with(CookieStore::private(key(1)), |b| b.clock(clock.clone()));
    let reply = submit(&app, "/incr", None).await;
    assert_eq!(max_age(reply.set_cookie().unwrap()), Some(24 * 60 * 60));
    let cookie = reply.cookie();
    clock.advance(Duration::from_secs(24 * 60 * 60 - 1));
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
    clock.advance(Duration::from_secs(1));
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "0");
}

#[tokio::test]
async fn regenerate_id_issues_a_cookie_with_a_new_id_nonce_and_tag() {
    for store in modes(1) {
        let app = app(store);
        let cookie = submit(&app, "/incr", None).await.cookie();
        let id_before = fetch(&app, "/id", Some(&cookie)).await.body;
        let renewed = submit(&app, "/regenerate", Some(&cookie)).await.cookie();
        let id_after = fetch(&app, "/id", Some(&renewed)).await.body;
        assert_ne!(id_before, id_after);
        assert!(!id_after.is_empty());
        assert_eq!(fetch(&app, "/count", Some(&renewed)).await.body, "1");
        let decode = |pair: &str| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&pair["session=".len()..])
                .unwrap()
        };
        let (old, new) = (decode(&cookie), decode(&renewed));
        let tail = |raw: &[u8]| raw[raw.len() - 16..].to_vec();
        assert_ne!(tail(&old), tail(&new), "a fresh tag");
        if old[0] == 0x01 {
            // Private: past the 2-byte header (format, key id), no run of 8
            // bytes of the old value reappears (fresh nonce, so a fresh
            // keystream over the data).
            let shared = old[2..]
                .windows(8)
                .filter(|w| new.windows(8).any(|v| v == *w))
                .count();
            assert_eq!(shared, 0);
        } else {
            // Signed: the data is readable, so equal data is equal bytes;
            // the id right after the header is fresh.
            assert_ne!(old[2..18], new[2..18], "a fresh id");
        }
    }
}

#[tokio::test]
async fn logout_clears_the_cookie_but_a_copy_keeps_working_until_it_expires() {
    for store in modes(1) {
        let app = app(store);
        let cookie = submit(&app, "/incr", None).await.cookie();
        let logout = submit(&app, "/logout", Some(&cookie)).await;
        assert!(logout.has_removal());
        // Documented limit: no server state, so no revocation.
        assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
    }
}

#[tokio::test]
async fn concurrent_writes_each_send_a_cookie_and_the_last_one_wins() {
    for store in modes(1) {
        let app = app(store);
        let cookie = submit(&app, "/incr", None).await.cookie();
        let (a, b) = tokio::join!(
            submit(&app, "/incr", Some(&cookie)),
            submit(&app, "/incr", Some(&cookie))
        );
        // Both started from 1: each answers 2 and sends its own cookie.
        assert_eq!((a.body.as_str(), b.body.as_str()), ("2", "2"));
        let (a, b) = (a.cookie(), b.cookie());
        // Whichever the browser keeps, the count is 2, not 3: no
        // cross-request compare-and-swap with a client-side store.
        assert_eq!(fetch(&app, "/count", Some(&a)).await.body, "2");
        assert_eq!(fetch(&app, "/count", Some(&b)).await.body, "2");
    }
}

#[test]
fn short_keys_and_bad_budgets_fail_at_build() {
    let short = SessionLayer::builder(CookieStore::private(CookieKey::from_bytes(vec![1; 16])))
        .build()
        .err();
    assert_eq!(short, Some(ConfigError::KeyTooShort { len: 16, min: 32 }));
    let budget = SessionLayer::builder(CookieStore::signed(key(1)).max_cookie_size(5000))
        .build()
        .err();
    assert!(matches!(
        budget,
        Some(ConfigError::CookieBudget { budget: 5000, .. })
    ));
}

#[tokio::test]
async fn the_store_layer_is_cheap_to_clone_and_share() {
    // One layer, many routers: the sealer is shared, not rebuilt.
    let layer = SessionLayer::new(CookieStore::private(key(1)));
    let one: Router = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .layer(layer.clone());
    let two: Router = Router::new()
        .route(
            "/count",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .layer(layer);
    let reply = typed_sessions_test_support::reply(
        &one,
        http::Request::post("https://x/incr")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    let cookie = reply.cookie();
    assert_eq!(fetch(&two, "/count", Some(&cookie)).await.body, "1");
}

/// The benchmark's profile (`bench/benches/requests.rs`): 231 bytes as one
/// JSON object.
#[derive(typed_sessions::SessionData, Default)]
#[session(namespace = "profile")]
struct Profile {
    user_name: String,
    email: String,
    user_id: u64,
    visits: u64,
    plan_level: u32,
    credit_cents: i64,
    roles: Vec<String>,
    verified: bool,
}

/// axum-extra's `SignedCookieJar` carrying the same profile as JSON sends
/// `session=` plus 381 characters (389 bytes; measured in `bench/`). The
/// signed envelope must not be larger, the private one at most 10% larger.
#[tokio::test]
async fn the_benchmark_profile_fits_in_fewer_bytes_than_a_signed_json_jar() {
    let mut sizes = Vec::new();
    for store in modes(1) {
        let app = Router::new()
            .route(
                "/",
                post(|mut p: Session<Profile>| async move {
                    p.user_name = "alice.liddell".into();
                    p.email = "alice.liddell@looking-glass.wonderland.example.org".into();
                    p.user_id = 4_815_162_342;
                    p.visits = 1_000;
                    p.plan_level = 3;
                    p.credit_cents = -125_050;
                    p.roles = vec![
                        "reader".into(),
                        "editor".into(),
                        "billing-administrator".into(),
                    ];
                    p.verified = true;
                }),
            )
            .layer(SessionLayer::new(store));
        sizes.push(submit(&app, "/", None).await.cookie().len());
    }
    let (private, signed) = (sizes[0], sizes[1]);
    assert!(signed <= 389, "signed: {signed} bytes");
    assert!(private * 10 <= 389 * 11, "private: {private} bytes");
    eprintln!("name=value sizes: private {private}, signed {signed}");
}

/// Two values under the cookie name carry the same session id, one expired
/// (a stale `Path` or `Domain` copy): the request keeps the live record,
/// and a write seals the live record, never the expired copy's data.
#[tokio::test]
async fn an_expired_copy_of_the_same_session_never_comes_back() {
    for store in modes(1) {
        let clock = ManualClock::starting_now();
        let app = app_with(store, |b| {
            b.idle_timeout(Duration::from_mins(10)).clock(clock.clone())
        });
        let write = |cookie: Option<String>, text: &'static str| {
            let app = app.clone();
            async move {
                typed_sessions_test_support::send(
                    &app,
                    "POST",
                    "/notes",
                    cookie.as_deref(),
                    Some(text),
                )
                .await
                .cookie()
            }
        };
        let old = write(None, "old").await;
        clock.advance(Duration::from_mins(5));
        let new = write(Some(old.clone()), "new").await;
        assert_eq!(
            fetch(&app, "/id", Some(&old)).await.body,
            fetch(&app, "/id", Some(&new)).await.body,
            "one session, two copies"
        );
        clock.advance(Duration::from_mins(7));
        for both in [format!("{new}; {old}"), format!("{old}; {new}")] {
            let written = submit(&app, "/incr", Some(&both)).await;
            assert_eq!(written.status, 200);
            let after = written.cookie();
            assert_eq!(fetch(&app, "/notes", Some(&after)).await.body, "new");
            assert_eq!(fetch(&app, "/count", Some(&after)).await.body, "1");
        }
    }
}

/// An `update` whose intermediate state is too large for the cookie, then
/// a plain write that makes it fit: the response is a 200 with the final
/// state, and nothing is sealed (or logged as failed) for the
/// intermediate state.
#[tokio::test]
async fn only_the_final_state_is_sealed_when_the_request_succeeds() {
    let layer = SessionLayer::builder(CookieStore::private(key(1)).max_cookie_size(400))
        .secure(false)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/",
            post(|mut n: Session<Notes>| async move {
                n.update(|n| n.text = "n".repeat(500)).await.unwrap();
                n.text = "short".into();
            }),
        )
        .route(
            "/notes",
            get(|n: Session<Notes>| async move { n.text.clone() }),
        )
        .layer(layer);
    let (logs, _guard) = capture_logs(tracing::Level::ERROR);
    let reply = submit(&app, "/", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        fetch(&app, "/notes", Some(&reply.cookie())).await.body,
        "short"
    );
    assert_eq!(logs.text(), "", "no error for a state that was never sent");
}

/// With a cookie store the hashed id derives from the key: two processes
/// (replicas, or one after a restart) with the same key show the same
/// `SessionHandle::id`, and another key shows another one.
#[tokio::test]
async fn the_session_id_hash_is_the_same_in_every_process_with_the_key() {
    let a = app(CookieStore::private(key(1)));
    let b = app(CookieStore::private(key(1)));
    let cookie = submit(&a, "/incr", None).await.cookie();
    let (id_a, id_b) = (
        fetch(&a, "/id", Some(&cookie)).await.body,
        fetch(&b, "/id", Some(&cookie)).await.body,
    );
    assert!(!id_a.is_empty());
    assert_eq!(id_a, id_b);
    let rotated = app(CookieStore::private(key(2)).fallback_key(key(1)));
    assert_ne!(fetch(&rotated, "/id", Some(&cookie)).await.body, id_a);
}

/// After `update` commits, a write that makes the session too large turns
/// the response into a 500 that carries the `update`'s commit, as with a
/// server-side store (where it would be stored already); the handler's
/// own change is not kept.
#[tokio::test]
async fn a_500_over_the_budget_keeps_what_update_committed() {
    for store in modes(1) {
        let layer = SessionLayer::builder(store.max_cookie_size(400))
            .secure(false)
            .build()
            .unwrap();
        let app = Router::new()
            .route(
                "/",
                post(
                    |mut c: Session<Counter>, mut n: Session<Notes>| async move {
                        c.update(|c| c.count += 100).await.unwrap();
                        n.text = "n".repeat(500);
                    },
                ),
            )
            .route(
                "/count",
                get(|c: Session<Counter>| async move { c.count.to_string() }),
            )
            .layer(layer);
        let reply = submit(&app, "/", None).await;
        assert_eq!(reply.status, 500);
        let cookie = reply.cookie();
        assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "100");
    }
}
