//! The router-level lifecycle suite (`tests/support/src/lifecycle.rs`, run
//! for `MemoryStore` by `tests/lifecycle.rs`) for `CookieStore`, in both
//! modes: every case below expands to a `private` and a `signed` test
//! (`cargo test --test cookie_lifecycle <case>::private`).
//!
//! There is no store to count operations on: "no store I/O" is asserted as
//! "no `Set-Cookie` and the data unchanged", and the browser is simulated
//! (it keeps the last cookie it receives and drops a removed one). Where a
//! case cannot hold for a client-side store, it is replaced by a test of the
//! documented difference (`CookieStore`'s type docs, "What differs from a
//! server-side store").
//!
//! | # | original case | here | |
//! |---|---|---|---|
//! | 1 | `route_that_never_extracts_does_no_io_and_sets_no_cookie` | same name | same: no `Set-Cookie`, no `Vary`, the cookie is never opened (no load span, no warning) |
//! | 2 | `no_cookie_read_only_gets_defaults_without_io_or_cookie` | same name | same |
//! | 3 | `unknown_cookie_read_only_loads_once_and_sets_no_cookie` | `a_cookie_that_does_not_open_reads_as_defaults_and_is_cleared` | replaced: a sealed cookie has no "unknown id"; a value that does not open (forged, tampered, another key or mode) is documented to read as a fresh session and be cleared, with a warning that never holds the value |
//! | 4 | `malformed_cookie_is_never_looked_up_and_is_cleared` | same name | same (plus an over-budget value); "never looked up" is the warning that names the reason |
//! | 5 | `first_write_creates_session_with_server_generated_id` | same name | same; the id is checked through `SessionHandle::id` (the value is a sealed record, not a 22-character id) |
//! | 6 | `write_stores_only_the_changed_field` | `a_write_reseals_the_whole_record_and_keeps_the_other_fields` | replaced: the changeset is not observable and every write re-seals the whole record; what stays observable is that the untouched field survives and the older cookie keeps its old data |
//! | 7 | `valid_session_read_only_is_one_load_no_write_no_cookie` | same name | same: no `Set-Cookie`, data unchanged |
//! | 8 | `identical_assignment_writes_nothing` | same name | same: no `Set-Cookie`, data unchanged |
//! | 9 | `every_namespace_back_at_default_deletes_session_and_removes_cookie` | same name | same: the removal cookie is the deletion; a copy taken before still opens (no revocation) |
//! | 10 | `one_namespace_back_at_default_keeps_the_others` | same name | same: a new cookie (not a removal) that still holds the other namespace |
//! | 11 | `writing_a_default_value_into_no_session_creates_nothing` | same name | same |
//! | 12 | `destroy_deletes_and_removes_cookie` | `destroy_removes_the_cookie_but_a_copy_works_until_it_expires` | replaced: nothing on the server to delete, so no revocation (documented); the copy ends at its own deadline |
//! | 13 | `regenerate_keeps_data_and_kills_old_id` | `regenerate_keeps_data_but_a_copy_of_the_old_cookie_still_opens` | replaced: the new cookie has a new id and the data, but the old cookie cannot be killed (no server state); the two then diverge |
//! | 14 | `rotate_id_field_change_regenerates_id` | same name | same (the id is compared through `SessionHandle::id`) |
//! | 15 | `handler_5xx_writes_nothing_and_response_is_untouched` | same name | same |
//! | 16 | `two_namespaces_in_one_request_load_once_and_save_once` | same name | same: one `Set-Cookie` with both namespaces; one `session_load` and one `session_save` span (the request-local store) |
//! | 17 | `store_down_on_load_is_503_with_retry_after` | `any_layer_with_the_key_reads_the_session_without_server_state` | replaced: there is no store to fail; a separately built layer (a restart, another instance) with the same key reads the session, never a 503 |
//! | 18 | `store_down_on_load_can_fail_open_as_anonymous` | `fail_open_changes_nothing_without_a_store` | replaced: no load can fail; with `FailOpen` a valid cookie still reads its data, and the only anonymous path (a cookie that does not open) is the same as under the default policy |
//! | 19 | `store_down_on_save_replaces_response_with_503` | `a_session_over_the_cookie_budget_is_a_500_and_the_old_cookie_stands` | replaced: the write that can fail is the seal over the size budget: a 500 (documented), no cookie, size and budget logged, the browser's cookie unchanged |
//! | 20 | `session_without_layer_is_500` | same name | same (a sibling router has the layer) |
//! | 21 | `idle_timeout_expires_session_on_the_server` | same name | same, enforced from inside the cookie, which is cleared |
//! | 22 | `absolute_timeout_caps_an_active_session` | same name | same; the browser keeps each new cookie |
//! | 23 | `sliding_refresh_is_throttled_and_never_rewrites_data` | same name | same: a refresh re-sends the sealed record (a `session_touch`, never a `session_save`), data unchanged |
//! | 24 | `concurrent_atomic_updates_lose_nothing` | `concurrent_updates_each_send_a_cookie_and_the_last_one_wins` | replaced: no cross-request compare-and-swap (documented): every concurrent `update` starts from the same cookie and the browser keeps the last |
//! | 25 | `store_sees_only_the_sha256_of_the_id` | `private_cookies_hide_the_data_and_signed_ones_only_protect_it` | replaced: no store sees anything; the client does: in private mode the cookie never shows the data in clear, in signed mode it does (documented) but cannot be changed |
//! | 26 | `destroy_and_clear_leave_an_unknown_id_alone` | `destroy_and_clear_clear_a_cookie_that_does_not_open` | replaced: no "unknown id"; a value that does not open is cleared (documented), while no cookie at all still gets no `Set-Cookie` |
//! | 27 | `shorter_idle_timeout_expires_sessions_already_idle_longer` | same name | same (the expired cookie is cleared) |
//! | 28 | `clearing_twice_deletes_both_sessions` | same name | same: one removal cookie and nothing of either session sent; a copy taken before still opens (no revocation) |
//! | 29 | `responses_that_read_a_session_vary_on_cookie` | same name | same |
//! | 30 | `responses_that_set_a_cookie_are_private_unless_the_app_says_otherwise` | same name | same |
//! | 31 | `cache_headers_can_be_turned_off` | same name | same |
//! | 32 | `a_longer_idle_timeout_refreshes_before_the_old_store_deadline` | same name | same: the deadline sealed in the cookie, the browser keeps each refreshed cookie |
#![allow(
    clippy::too_many_lines,
    reason = "a router with every route the cases need reads best in one place"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use typed_sessions::stores::{CookieKey, CookieStore};
use typed_sessions::{
    Session, SessionData, SessionHandle, SessionLayer, SessionLayerBuilder, StoreDownPolicy,
};
use typed_sessions_test_support::schemas::Counter;
use typed_sessions_test_support::{
    ManualClock, Reply, capture_logs, fetch, is_removal, max_age, send, session_value, submit,
};

/// Expands each case into a module with a `private` and a `signed` test.
macro_rules! in_both_modes {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test]
                async fn private() {
                    super::$case(super::Mode::Private).await;
                }

                #[tokio::test]
                async fn signed() {
                    super::$case(super::Mode::Signed).await;
                }
            }
        )*
    };
}

in_both_modes!(
    route_that_never_extracts_does_no_io_and_sets_no_cookie,
    no_cookie_read_only_gets_defaults_without_io_or_cookie,
    a_cookie_that_does_not_open_reads_as_defaults_and_is_cleared,
    malformed_cookie_is_never_looked_up_and_is_cleared,
    first_write_creates_session_with_server_generated_id,
    a_write_reseals_the_whole_record_and_keeps_the_other_fields,
    valid_session_read_only_is_one_load_no_write_no_cookie,
    identical_assignment_writes_nothing,
    every_namespace_back_at_default_deletes_session_and_removes_cookie,
    one_namespace_back_at_default_keeps_the_others,
    writing_a_default_value_into_no_session_creates_nothing,
    destroy_removes_the_cookie_but_a_copy_works_until_it_expires,
    regenerate_keeps_data_but_a_copy_of_the_old_cookie_still_opens,
    rotate_id_field_change_regenerates_id,
    handler_5xx_writes_nothing_and_response_is_untouched,
    two_namespaces_in_one_request_load_once_and_save_once,
    any_layer_with_the_key_reads_the_session_without_server_state,
    fail_open_changes_nothing_without_a_store,
    a_session_over_the_cookie_budget_is_a_500_and_the_old_cookie_stands,
    session_without_layer_is_500,
    idle_timeout_expires_session_on_the_server,
    absolute_timeout_caps_an_active_session,
    sliding_refresh_is_throttled_and_never_rewrites_data,
    concurrent_updates_each_send_a_cookie_and_the_last_one_wins,
    private_cookies_hide_the_data_and_signed_ones_only_protect_it,
    destroy_and_clear_clear_a_cookie_that_does_not_open,
    shorter_idle_timeout_expires_sessions_already_idle_longer,
    clearing_twice_deletes_both_sessions,
    responses_that_read_a_session_vary_on_cookie,
    responses_that_set_a_cookie_are_private_unless_the_app_says_otherwise,
    cache_headers_can_be_turned_off,
    a_longer_idle_timeout_refreshes_before_the_old_store_deadline,
);

// ---------------------------------------------------------------------------
// Stores, schemas, the app.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Private,
    Signed,
}

impl Mode {
    fn store(self) -> CookieStore {
        self.store_with(key(1))
    }

    fn store_with(self, key: CookieKey) -> CookieStore {
        match self {
            Self::Private => CookieStore::private(key),
            Self::Signed => CookieStore::signed(key),
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Private => Self::Signed,
            Self::Signed => Self::Private,
        }
    }
}

fn key(byte: u8) -> CookieKey {
    CookieKey::from_bytes(vec![byte; 32])
}

/// A cookie value in the shape of a server store's id (22 base64url
/// characters), which no `CookieStore` ever issues.
const FORGED: &str = "session=AAAAAAAAAAAAAAAAAAAAAA";

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

#[derive(SessionData, Default, Debug)]
#[session(namespace = "notes")]
struct Notes {
    text: String,
}

struct Fixture {
    app: Router,
    clock: Arc<ManualClock>,
}

fn fixture(mode: Mode) -> Fixture {
    fixture_with(mode, |b| b)
}

fn fixture_with(
    mode: Mode,
    configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
) -> Fixture {
    let clock = ManualClock::starting_now();
    let layer = configure(
        SessionLayer::builder(mode.store())
            .secure(false)
            .clock(clock.clone()),
    )
    .build()
    .expect("a valid layer");
    Fixture {
        app: routes().layer(layer),
        clock,
    }
}

/// The routes of `tests/support/src/lifecycle.rs`, plus `/id`, `/cart` and
/// `/notes`.
fn routes() -> Router {
    Router::new()
        .route("/plain", get(|| async { "no session here" }))
        .route(
            "/count",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
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
            post(|Path(v): Path<String>, mut p: Session<Prefs>| async move {
                p.theme = v;
                "ok"
            }),
        )
        .route(
            "/lang/{v}",
            post(|Path(v): Path<String>, mut p: Session<Prefs>| async move {
                p.lang = v;
                "ok"
            }),
        )
        .route(
            "/prefs",
            get(|p: Session<Prefs>| async move { format!("{}/{}", p.theme, p.lang) }),
        )
        .route(
            "/login/{user}",
            post(|Path(user): Path<String>, mut a: Session<Auth>| async move {
                a.user = Some(user);
                a.token = Some("secret-token".into());
                "ok"
            }),
        )
        .route(
            "/me",
            get(|a: Session<Auth>| async move { a.user.clone().unwrap_or_default() }),
        )
        .route(
            "/cart/add/{sku}",
            post(|Path(sku): Path<String>, mut c: Session<Cart>| async move {
                c.items.push(Item { sku });
                c.items.len().to_string()
            }),
        )
        .route(
            "/cart",
            get(|c: Session<Cart>| async move { c.items.len().to_string() }),
        )
        .route(
            "/both",
            post(
                |mut c: Session<Counter>, mut cart: Session<Cart>| async move {
                    c.count += 10;
                    cart.items.push(Item { sku: "z".into() });
                    "ok"
                },
            ),
        )
        .route(
            "/notes",
            post(|mut n: Session<Notes>, body: String| async move {
                n.text = body;
                "noted"
            }),
        )
        .route(
            "/id",
            get(|h: SessionHandle| async move { h.id().map(|id| id.to_string()).unwrap_or_default() }),
        )
        .route(
            "/destroy",
            post(|h: SessionHandle| async move {
                h.destroy();
                "bye"
            }),
        )
        .route(
            "/clear",
            post(|h: SessionHandle| async move {
                h.clear();
                "cleared"
            }),
        )
        .route(
            "/regenerate",
            post(|h: SessionHandle| async move {
                h.regenerate_id();
                "new id"
            }),
        )
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
                match c
                    .update(|c| {
                        c.count += 1;
                        c.count
                    })
                    .await
                {
                    Ok(n) => n.to_string(),
                    Err(e) => format!("error: {e}"),
                }
            }),
        )
}

/// `/incr` and `/count` behind a layer with `idle` as its idle timeout,
/// over the same key and clock: one deployment of an app whose
/// configuration changes between deployments.
fn counter_app(mode: Mode, clock: &Arc<ManualClock>, idle: Duration) -> Router {
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
            SessionLayer::builder(mode.store())
                .secure(false)
                .clock(clock.clone())
                .idle_timeout(idle)
                .build()
                .unwrap(),
        )
}

/// A browser's cookie jar for the session cookie: it keeps the last cookie
/// it receives and drops one that is removed.
#[derive(Default)]
struct Browser(Option<String>);

impl Browser {
    fn cookie(&self) -> Option<&str> {
        self.0.as_deref()
    }

    fn expect_cookie(&self) -> &str {
        self.cookie().expect("the browser holds a session cookie")
    }

    fn receive(&mut self, reply: &Reply) {
        if let Some(set) = reply.set_cookie() {
            self.0 = (!is_removal(set)).then(|| reply.cookie());
        }
    }
}

/// The raw bytes of a sealed `name=value` cookie.
fn raw(cookie: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(session_value(cookie))
        .expect("a base64url cookie value")
}

/// `cookie` with one character in the middle of its value changed.
fn tampered(cookie: &str) -> String {
    let (name, value) = cookie.split_once('=').unwrap();
    let mut chars: Vec<char> = value.chars().collect();
    let middle = chars.len() / 2;
    chars[middle] = if chars[middle] == 'A' { 'B' } else { 'A' };
    format!("{name}={}", chars.into_iter().collect::<String>())
}

/// How many spans named `name` closed in the captured log.
fn spans(log: &str, name: &str) -> usize {
    log.lines()
        .filter(|line| line.contains(&format!("{name}{{")) && line.contains("close"))
        .count()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------
// The cases, in the order of the original suite.

/// Case 1: same.
async fn route_that_never_extracts_does_no_io_and_sets_no_cookie(mode: Mode) {
    let f = fixture(mode);
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let tampered = tampered(&cookie);
    for sent in [cookie.as_str(), FORGED, tampered.as_str()] {
        let (logs, _guard) = capture_logs(tracing::Level::DEBUG);
        let r = fetch(&f.app, "/plain", Some(sent)).await;
        assert_eq!(r.status, 200, "{mode:?} {sent}");
        assert_eq!(r.body, "no session here");
        assert!(r.set_cookies.is_empty(), "{mode:?} {sent}: {r:?}");
        assert!(
            r.headers.get("vary").is_none(),
            "{mode:?}: no session, no Vary"
        );
        let log = logs.text();
        assert_eq!(spans(&log, "session_load"), 0, "{mode:?}: {log}");
        assert!(!log.contains("does not open"), "never opened: {log}");
    }
    assert_eq!(
        fetch(&f.app, "/count", Some(&cookie)).await.body,
        "1",
        "{mode:?}: data unchanged"
    );
}

/// Case 2: same.
async fn no_cookie_read_only_gets_defaults_without_io_or_cookie(mode: Mode) {
    let f = fixture(mode);
    let r = fetch(&f.app, "/count", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "0");
    assert!(r.set_cookies.is_empty(), "{mode:?}: {r:?}");
}

/// Case 3: replaced: a value that does not open reads as a fresh session and is
/// cleared, with a warning that names the reason and never the value.
async fn a_cookie_that_does_not_open_reads_as_defaults_and_is_cleared(mode: Mode) {
    let f = fixture(mode);
    let genuine = submit(&f.app, "/incr", None).await.cookie();
    let foreign = {
        let layer = SessionLayer::builder(mode.store_with(key(2)))
            .secure(false)
            .build()
            .unwrap();
        submit(&routes().layer(layer), "/incr", None).await.cookie()
    };
    let other_mode = submit(&fixture(mode.other()).app, "/incr", None)
        .await
        .cookie();
    for bad in [FORGED.to_owned(), tampered(&genuine), foreign, other_mode] {
        let (logs, _guard) = capture_logs(tracing::Level::WARN);
        let r = fetch(&f.app, "/count", Some(&bad)).await;
        assert_eq!(r.status, 200, "{mode:?} {bad}");
        assert_eq!(r.body, "0", "{mode:?} {bad}");
        assert!(r.has_removal(), "{mode:?} {bad}: {:?}", r.set_cookies);
        let log = logs.text();
        assert!(log.contains("does not open"), "{log}");
        assert!(
            !log.contains(session_value(&bad)),
            "the value is logged: {log}"
        );
    }
    assert_eq!(fetch(&f.app, "/count", Some(&genuine)).await.body, "1");
}

/// Case 4: same (plus a value over the cookie budget).
async fn malformed_cookie_is_never_looked_up_and_is_cleared(mode: Mode) {
    let f = fixture(mode);
    let huge = format!("session={}", "A".repeat(5000));
    for bad in [
        "session=short",
        "session=%%%%%%%%%%%%%%%%%%%%%%",
        "session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        huge.as_str(),
    ] {
        let (logs, _guard) = capture_logs(tracing::Level::WARN);
        let r = fetch(&f.app, "/count", Some(bad)).await;
        assert_eq!(r.status, 200, "{mode:?} {bad}");
        assert_eq!(r.body, "0");
        assert!(r.has_removal(), "{mode:?} {bad}: {:?}", r.set_cookies);
        let log = logs.text();
        assert!(
            log.contains("session cookie is malformed") || log.contains("does not open"),
            "{mode:?} {bad}: {log}"
        );
        assert!(
            !log.contains(session_value(bad)),
            "the value is logged: {log}"
        );
    }
    // A value over the budget is refused before any attempt to open it; one
    // outside base64url fails at the first step of opening.
    let (logs, guard) = capture_logs(tracing::Level::WARN);
    fetch(&f.app, "/count", Some(&huge)).await;
    let log = logs.text();
    assert!(
        log.contains("session cookie is malformed"),
        "{mode:?}: {log}"
    );
    assert!(!log.contains("does not open"), "{mode:?}: {log}");
    drop(guard);
    let (logs, _guard) = capture_logs(tracing::Level::WARN);
    fetch(&f.app, "/count", Some("session=%%%%%%%%%%%%%%%%%%%%%%")).await;
    let log = logs.text();
    assert!(log.contains("not base64url"), "{mode:?}: {log}");
}

/// Case 5: same.
async fn first_write_creates_session_with_server_generated_id(mode: Mode) {
    let f = fixture(mode);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = submit(&f.app, "/incr", Some(FORGED)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "1");
        let set = r.set_cookie().expect("one Set-Cookie: the new session");
        assert!(!is_removal(set), "{set}");
        let cookie = r.cookie();
        assert_ne!(cookie, FORGED, "a client-chosen value is never adopted");
        assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "1");
        let id = fetch(&f.app, "/id", Some(&cookie)).await.body;
        assert!(!id.is_empty(), "{mode:?}: a saved session has an id");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "{mode:?}: ids are generated, not derived");
}

/// Case 6: replaced: every write re-seals the whole record; the untouched field
/// survives the patch, and an older cookie keeps what it held.
async fn a_write_reseals_the_whole_record_and_keeps_the_other_fields(mode: Mode) {
    let f = fixture(mode);
    let first = submit(&f.app, "/theme/dark", None).await.cookie();
    let r = submit(&f.app, "/lang/fr", Some(&first)).await;
    assert_eq!(r.status, 200);
    let second = r.cookie();
    assert_ne!(second, first, "{mode:?}: the record is sealed anew");
    assert_eq!(fetch(&f.app, "/prefs", Some(&second)).await.body, "dark/fr");
    assert_eq!(fetch(&f.app, "/prefs", Some(&first)).await.body, "dark/");
    if mode == Mode::Signed {
        // Readable in signed mode: the new cookie carries both fields.
        let bytes = raw(&second);
        assert!(contains(&bytes, b"\"dark\"") && contains(&bytes, b"\"fr\""));
    }
}

/// Case 7: same: no `Set-Cookie`, data unchanged.
async fn valid_session_read_only_is_one_load_no_write_no_cookie(mode: Mode) {
    let f = fixture(mode);
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    for _ in 0..3 {
        let (logs, _guard) = capture_logs(tracing::Level::DEBUG);
        let r = fetch(&f.app, "/count", Some(&cookie)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "1");
        assert!(r.set_cookies.is_empty(), "{mode:?}: {r:?}");
        let log = logs.text();
        assert_eq!(spans(&log, "session_load"), 1, "{mode:?}: {log}");
        assert_eq!(spans(&log, "session_save"), 0, "{mode:?}: {log}");
    }
}

/// Case 8: same: no `Set-Cookie`, data unchanged.
async fn identical_assignment_writes_nothing(mode: Mode) {
    let f = fixture(mode);
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let r = submit(&f.app, "/same", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "1");
    assert!(r.set_cookies.is_empty(), "{mode:?}: {r:?}");
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "1");
}

/// Case 9: same: the removal cookie is the deletion.
async fn every_namespace_back_at_default_deletes_session_and_removes_cookie(mode: Mode) {
    let f = fixture(mode);
    let mut browser = Browser::default();
    browser.receive(&submit(&f.app, "/incr", None).await);
    let copy = browser.expect_cookie().to_owned();
    let r = submit(&f.app, "/reset", browser.cookie()).await;
    assert_eq!(r.status, 200);
    assert!(r.has_removal(), "{mode:?}: {:?}", r.set_cookies);
    browser.receive(&r);
    assert!(browser.cookie().is_none());
    assert_eq!(fetch(&f.app, "/count", browser.cookie()).await.body, "0");
    // No revocation: a copy taken before the reset still opens.
    assert_eq!(fetch(&f.app, "/count", Some(&copy)).await.body, "1");
}

/// Case 10: same: a new cookie, not a removal, still holding the other namespace.
async fn one_namespace_back_at_default_keeps_the_others(mode: Mode) {
    let f = fixture(mode);
    let cookie = submit(&f.app, "/both", None).await.cookie();
    let r = submit(&f.app, "/reset", Some(&cookie)).await;
    assert!(!r.has_removal(), "{mode:?}: {:?}", r.set_cookies);
    let cookie = r.cookie();
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "0");
    assert_eq!(fetch(&f.app, "/cart", Some(&cookie)).await.body, "1");
}

/// Case 11: same.
async fn writing_a_default_value_into_no_session_creates_nothing(mode: Mode) {
    let f = fixture(mode);
    let r = submit(&f.app, "/reset", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "reset");
    assert!(r.set_cookies.is_empty(), "{mode:?}: {r:?}");
}

/// Case 12: replaced: `destroy()` removes the cookie from this browser, but a
/// copy taken earlier keeps working until its own deadline.
async fn destroy_removes_the_cookie_but_a_copy_works_until_it_expires(mode: Mode) {
    let f = fixture_with(mode, |b| b.absolute_timeout(Duration::from_secs(100)));
    let copy = submit(&f.app, "/incr", None).await.cookie();
    let r = submit(&f.app, "/destroy", Some(&copy)).await;
    assert_eq!(r.status, 200);
    assert!(r.has_removal(), "{mode:?}: {:?}", r.set_cookies);
    f.clock.advance(Duration::from_secs(99));
    let r = fetch(&f.app, "/count", Some(&copy)).await;
    assert_eq!(r.body, "1", "{mode:?}: no revocation");
    f.clock.advance(Duration::from_secs(1));
    let r = fetch(&f.app, "/count", Some(&copy)).await;
    assert_eq!(r.body, "0", "{mode:?}: over at its absolute deadline");
    assert!(r.has_removal());
}

/// Case 13: replaced: the new cookie has a new id and the data; the old cookie
/// cannot be killed, and the two sessions then diverge.
async fn regenerate_keeps_data_but_a_copy_of_the_old_cookie_still_opens(mode: Mode) {
    let f = fixture(mode);
    let old = submit(&f.app, "/incr", None).await.cookie();
    let old_id = fetch(&f.app, "/id", Some(&old)).await.body;
    let r = submit(&f.app, "/regenerate", Some(&old)).await;
    assert_eq!(r.status, 200);
    let new = r.cookie();
    assert_ne!(new, old);
    let new_id = fetch(&f.app, "/id", Some(&new)).await.body;
    assert!(!new_id.is_empty());
    assert_ne!(new_id, old_id, "{mode:?}: a new id");
    assert_eq!(fetch(&f.app, "/count", Some(&new)).await.body, "1");
    // No server state: the old cookie still opens, under the old id.
    assert_eq!(fetch(&f.app, "/count", Some(&old)).await.body, "1");
    assert_eq!(fetch(&f.app, "/id", Some(&old)).await.body, old_id);
    // And from here the two are separate sessions.
    assert_eq!(submit(&f.app, "/incr", Some(&old)).await.body, "2");
    assert_eq!(fetch(&f.app, "/count", Some(&new)).await.body, "1");
}

/// Case 14: same.
async fn rotate_id_field_change_regenerates_id(mode: Mode) {
    let f = fixture(mode);
    let anon = submit(&f.app, "/cart/add/a1", None).await.cookie();
    let anon_id = fetch(&f.app, "/id", Some(&anon)).await.body;
    let r = submit(&f.app, "/login/alice", Some(&anon)).await;
    assert_eq!(r.status, 200);
    let logged_in = r.cookie();
    assert_ne!(logged_in, anon, "login must not keep the pre-login cookie");
    let id = fetch(&f.app, "/id", Some(&logged_in)).await.body;
    assert!(!id.is_empty());
    assert_ne!(
        id, anon_id,
        "{mode:?}: login must not keep the pre-login id"
    );
    assert_eq!(fetch(&f.app, "/me", Some(&logged_in)).await.body, "alice");
    assert_eq!(fetch(&f.app, "/me", Some(&anon)).await.body, "");
    // The cart came along.
    assert_eq!(
        submit(&f.app, "/cart/add/b2", Some(&logged_in)).await.body,
        "2"
    );
}

/// Case 15: same.
async fn handler_5xx_writes_nothing_and_response_is_untouched(mode: Mode) {
    let f = fixture(mode);
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let r = submit(&f.app, "/fail", Some(&cookie)).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body, "boom");
    assert!(r.set_cookies.is_empty(), "{mode:?}: {r:?}");
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "1");
}

/// Case 16: same: one `Set-Cookie` with both namespaces, one load and one save
/// (spans of the request-local store).
async fn two_namespaces_in_one_request_load_once_and_save_once(mode: Mode) {
    let f = fixture(mode);
    let (logs, guard) = capture_logs(tracing::Level::DEBUG);
    let r = submit(&f.app, "/both", None).await;
    let cookie = r.cookie();
    let log = logs.text();
    drop(guard);
    assert_eq!(spans(&log, "session_save"), 1, "{mode:?}: {log}");

    let (logs, _guard) = capture_logs(tracing::Level::DEBUG);
    let r = submit(&f.app, "/both", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    let cookie = r.cookie();
    let log = logs.text();
    assert_eq!(
        spans(&log, "session_load"),
        1,
        "{mode:?}: one load shared by both extractors: {log}"
    );
    assert_eq!(spans(&log, "session_save"), 1, "{mode:?}: {log}");
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "20");
    assert_eq!(fetch(&f.app, "/cart", Some(&cookie)).await.body, "2");
}

/// Case 17: replaced: no store to be down; a separately built layer with the
/// same key (a restart, another instance) reads and writes the session.
async fn any_layer_with_the_key_reads_the_session_without_server_state(mode: Mode) {
    let cookie = submit(&fixture(mode).app, "/incr", None).await.cookie();
    let restarted = fixture(mode);
    let r = fetch(&restarted.app, "/count", Some(&cookie)).await;
    assert_eq!(r.status, 200, "{mode:?}: never a 503");
    assert_eq!(r.body, "1");
    assert!(r.headers.get("retry-after").is_none());
    let r = submit(&restarted.app, "/incr", Some(&cookie)).await;
    assert_eq!(r.body, "2");
    assert!(!r.has_removal());
}

/// Case 18: replaced: no load can fail; under `FailOpen` a valid cookie reads its
/// data, and a cookie that does not open is anonymous exactly as under the
/// default policy.
async fn fail_open_changes_nothing_without_a_store(mode: Mode) {
    let open = fixture_with(mode, |b| b.on_store_down(StoreDownPolicy::FailOpen));
    let closed = fixture(mode);
    let cookie = submit(&open.app, "/incr", None).await.cookie();
    for app in [&open.app, &closed.app] {
        let r = fetch(app, "/count", Some(&cookie)).await;
        assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "1"), "{mode:?}");
        assert!(r.set_cookies.is_empty());
        let r = fetch(app, "/count", Some(&tampered(&cookie))).await;
        assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "0"), "{mode:?}");
        assert!(r.has_removal());
        let r = submit(app, "/incr", Some(&cookie)).await;
        assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "2"), "{mode:?}");
    }
}

/// Case 19: replaced: the write that can fail is the seal over the size budget:
/// a 500 (documented), no cookie, size and budget logged, the browser's
/// cookie unchanged.
async fn a_session_over_the_cookie_budget_is_a_500_and_the_old_cookie_stands(mode: Mode) {
    let clock = ManualClock::starting_now();
    let layer = SessionLayer::builder(mode.store().max_cookie_size(400))
        .secure(false)
        .clock(clock)
        .build()
        .unwrap();
    let app = routes().layer(layer);
    let cookie = submit(&app, "/incr", None).await.cookie();
    let (logs, _guard) = capture_logs(tracing::Level::ERROR);
    let r = send(
        &app,
        "POST",
        "/notes",
        Some(&cookie),
        Some(&"n".repeat(500)),
    )
    .await;
    assert_eq!(r.status, 500, "{mode:?}");
    assert!(
        r.body.is_empty(),
        "the handler's answer is replaced: {}",
        r.body
    );
    assert!(r.set_cookies.is_empty(), "{mode:?}: {:?}", r.set_cookies);
    assert!(r.headers.get("retry-after").is_none(), "not a 503");
    let log = logs.text();
    assert!(log.contains("budget=400"), "{log}");
    assert!(log.contains("size="), "{log}");
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
    // A small note fits.
    let r = send(&app, "POST", "/notes", Some(&cookie), Some("short")).await;
    assert_eq!(r.status, 200);
    assert_eq!(fetch(&app, "/count", Some(&r.cookie())).await.body, "1");
}

/// Case 20: same (a sibling router has the layer).
async fn session_without_layer_is_500(mode: Mode) {
    let inside = Router::new()
        .route(
            "/inside",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .layer(SessionLayer::builder(mode.store()).build().unwrap());
    let app: Router = Router::new()
        .route(
            "/count",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .merge(inside);
    let r = fetch(&app, "/count", None).await;
    assert_eq!(r.status, 500);
    assert!(
        !r.body.contains("SessionLayer"),
        "the log names the layer, the client sees no internals"
    );
    let r = fetch(&app, "/inside", None).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "0"));
}

/// Case 21: same, enforced from inside the cookie, which is cleared.
async fn idle_timeout_expires_session_on_the_server(mode: Mode) {
    let f = fixture_with(mode, |b| b.idle_timeout(Duration::from_mins(1)));
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    f.clock.advance(Duration::from_secs(59));
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "1");
    f.clock.advance(Duration::from_secs(61));
    let r = fetch(&f.app, "/count", Some(&cookie)).await;
    assert_eq!(
        r.body, "0",
        "{mode:?}: expired despite the client sending the cookie"
    );
    assert!(r.has_removal(), "{mode:?}: {:?}", r.set_cookies);
}

/// Case 22: same; the browser keeps each new cookie.
async fn absolute_timeout_caps_an_active_session(mode: Mode) {
    let f = fixture_with(mode, |b| {
        b.idle_timeout(Duration::from_mins(1))
            .absolute_timeout(Duration::from_secs(100))
    });
    let mut browser = Browser::default();
    let r = submit(&f.app, "/incr", None).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(60));
    browser.receive(&r);
    for _ in 0..3 {
        f.clock.advance(Duration::from_secs(30));
        let r = submit(&f.app, "/incr", browser.cookie()).await;
        assert!(max_age(r.set_cookie().unwrap()).unwrap() <= 60);
        browser.receive(&r);
    }
    // t = 90: Max-Age is the time left to the absolute deadline.
    let r = submit(&f.app, "/incr", browser.cookie()).await;
    assert_eq!(r.body, "5");
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(10), "{mode:?}");
    browser.receive(&r);
    f.clock.advance(Duration::from_secs(11));
    let r = fetch(&f.app, "/count", browser.cookie()).await;
    assert_eq!(r.body, "0", "{mode:?}");
    assert!(r.has_removal());
}

/// Case 23: same: a refresh re-sends the sealed record without a save.
async fn sliding_refresh_is_throttled_and_never_rewrites_data(mode: Mode) {
    let f = fixture_with(mode, |b| b.idle_timeout(Duration::from_secs(100)));
    let mut browser = Browser::default();
    browser.receive(&submit(&f.app, "/incr", None).await);
    let first = browser.expect_cookie().to_owned();
    let id = fetch(&f.app, "/id", browser.cookie()).await.body;
    // A burst of reads within a quarter of the idle timeout: no refresh.
    for _ in 0..10 {
        f.clock.advance(Duration::from_secs(2));
        let r = fetch(&f.app, "/count", browser.cookie()).await;
        assert!(r.set_cookies.is_empty(), "{mode:?}: {r:?}");
    }
    // Past the quarter: the cookie is re-sent with a full Max-Age, by a
    // touch, not a save.
    f.clock.advance(Duration::from_secs(6));
    let (logs, guard) = capture_logs(tracing::Level::DEBUG);
    let r = fetch(&f.app, "/count", browser.cookie()).await;
    let log = logs.text();
    drop(guard);
    assert_eq!(r.body, "1");
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(100), "{mode:?}");
    assert_eq!(spans(&log, "session_touch"), 1, "{mode:?}: {log}");
    assert_eq!(
        spans(&log, "session_save"),
        0,
        "refresh never rewrites data"
    );
    browser.receive(&r);
    assert_ne!(browser.expect_cookie(), first);
    assert_eq!(fetch(&f.app, "/id", browser.cookie()).await.body, id);
    // An active client never expires.
    for _ in 0..10 {
        f.clock.advance(Duration::from_secs(50));
        let r = fetch(&f.app, "/count", browser.cookie()).await;
        assert_eq!(r.body, "1", "{mode:?}");
        browser.receive(&r);
    }
    // The first cookie, never refreshed, is long over.
    assert_eq!(fetch(&f.app, "/count", Some(&first)).await.body, "0");
}

/// Case 24: replaced: no cross-request compare-and-swap; concurrent updates all
/// start from the same cookie, each answers with its own, the last kept wins.
async fn concurrent_updates_each_send_a_cookie_and_the_last_one_wins(mode: Mode) {
    let f = fixture(mode);
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let app = f.app.clone();
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(async move {
            submit(&app, "/atomic", Some(&cookie)).await
        }));
    }
    let mut browser = Browser::default();
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, "2", "{mode:?}: each update started from 1");
        let sent = r.cookie();
        assert_eq!(fetch(&f.app, "/count", Some(&sent)).await.body, "2");
        browser.receive(&r);
    }
    assert_eq!(fetch(&f.app, "/count", browser.cookie()).await.body, "2");
}

/// Case 25: replaced: no store sees anything; the client sees the cookie. Private:
/// nothing of the data in clear. Signed: the data is readable (documented),
/// but a changed byte does not open.
async fn private_cookies_hide_the_data_and_signed_ones_only_protect_it(mode: Mode) {
    let f = fixture(mode);
    let cookie = submit(&f.app, "/login/alice", None).await.cookie();
    assert_eq!(fetch(&f.app, "/me", Some(&cookie)).await.body, "alice");
    let bytes = raw(&cookie);
    let needles: [&[u8]; 3] = [b"alice", b"secret-token", b"token"];
    match mode {
        Mode::Private => {
            for needle in needles {
                assert!(!contains(&bytes, needle), "{needle:?} in clear");
            }
        }
        Mode::Signed => {
            for needle in needles {
                assert!(contains(&bytes, needle), "signed keeps {needle:?} readable");
            }
        }
    }
    let r = fetch(&f.app, "/me", Some(&tampered(&cookie))).await;
    assert_eq!(r.body, "", "{mode:?}: a changed byte does not open");
    assert!(r.has_removal());
}

/// Case 26: replaced: a value that does not open is cleared by `destroy()` and
/// `clear()` too; without a cookie nothing is sent.
async fn destroy_and_clear_clear_a_cookie_that_does_not_open(mode: Mode) {
    let f = fixture(mode);
    for route in ["/destroy", "/clear"] {
        let r = submit(&f.app, route, Some(FORGED)).await;
        assert_eq!(r.status, 200);
        assert!(r.has_removal(), "{mode:?} {route}: {:?}", r.set_cookies);
        let r = submit(&f.app, route, None).await;
        assert_eq!(r.status, 200);
        assert!(
            r.set_cookies.is_empty(),
            "{mode:?} {route}: {:?}",
            r.set_cookies
        );
    }
}

/// Case 27: same (the expired cookie is cleared).
async fn shorter_idle_timeout_expires_sessions_already_idle_longer(mode: Mode) {
    let clock = ManualClock::starting_now();
    let build = |idle: u64| counter_app(mode, &clock, Duration::from_mins(idle));
    let cookie = submit(&build(30), "/incr", None).await.cookie();
    clock.advance(Duration::from_mins(20));
    // Redeployed with a 10-minute idle timeout: this session has been idle
    // for 20 minutes, so it is over.
    let shorter = build(10);
    let r = fetch(&shorter, "/count", Some(&cookie)).await;
    assert_eq!(r.body, "0", "{mode:?}");
    assert!(r.has_removal());
    // And a read does not revive it.
    assert_eq!(fetch(&shorter, "/count", Some(&cookie)).await.body, "0");
    // A session idle for less than the new timeout lives on.
    let recent = submit(&shorter, "/incr", None).await.cookie();
    clock.advance(Duration::from_mins(9));
    assert_eq!(fetch(&shorter, "/count", Some(&recent)).await.body, "1");
}

/// Case 28: same: one removal cookie, nothing of either session sent; a copy
/// taken before still opens.
async fn clearing_twice_deletes_both_sessions(mode: Mode) {
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
            SessionLayer::builder(mode.store())
                .secure(false)
                .build()
                .unwrap(),
        );
    let cookie = submit(&app, "/incr", None).await.cookie();
    let reply = submit(&app, "/clear-write-clear", Some(&cookie)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.set_cookies.len(),
        1,
        "{mode:?}: {:?}",
        reply.set_cookies
    );
    assert!(reply.has_removal(), "{mode:?}: {:?}", reply.set_cookies);
    // No revocation: the copy still opens.
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
}

/// Case 29: same.
async fn responses_that_read_a_session_vary_on_cookie(mode: Mode) {
    let f = fixture(mode);
    let r = fetch(&f.app, "/count", None).await;
    assert_eq!(r.headers.get("vary").unwrap(), "cookie");
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let r = fetch(&f.app, "/count", Some(&cookie)).await;
    assert_eq!(r.headers.get("vary").unwrap(), "cookie");
    let r = fetch(&f.app, "/plain", Some(&cookie)).await;
    assert!(r.headers.get("vary").is_none(), "no session, no Vary");
}

/// Case 30: same.
async fn responses_that_set_a_cookie_are_private_unless_the_app_says_otherwise(mode: Mode) {
    let f = fixture(mode);
    let r = submit(&f.app, "/incr", None).await;
    assert!(r.set_cookie().is_some());
    assert_eq!(r.headers.get("cache-control").unwrap(), "private");
    let cookie = r.cookie();
    // A read-only answer sets no cookie: its caching is the app's business.
    let r = fetch(&f.app, "/count", Some(&cookie)).await;
    assert!(r.set_cookies.is_empty());
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
        .layer(SessionLayer::new(mode.store()));
    let r = submit(&app, "/own", None).await;
    assert!(r.set_cookie().is_some());
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

/// Case 31: same.
async fn cache_headers_can_be_turned_off(mode: Mode) {
    let f = fixture_with(mode, |b| b.cache_headers(false));
    let r = submit(&f.app, "/incr", None).await;
    assert!(r.set_cookie().is_some());
    assert!(r.headers.get("cache-control").is_none());
    assert!(r.headers.get("vary").is_none());
    let r = fetch(&f.app, "/count", Some(&r.cookie())).await;
    assert_eq!(r.body, "1");
    assert!(r.headers.get("vary").is_none());
}

/// Case 32: same: the deadline is sealed in the cookie; the browser keeps each
/// refreshed cookie.
async fn a_longer_idle_timeout_refreshes_before_the_old_store_deadline(mode: Mode) {
    let clock = ManualClock::starting_now();
    let build = |idle: u64| counter_app(mode, &clock, Duration::from_mins(idle));
    let mut browser = Browser::default();
    browser.receive(&submit(&build(10), "/incr", None).await);
    // Redeployed with a 60-minute idle timeout: a read every 8 minutes keeps
    // the session alive, although a quarter of 60 minutes is 15.
    let longer = build(60);
    for _ in 0..4 {
        clock.advance(Duration::from_mins(8));
        let r = fetch(&longer, "/count", browser.cookie()).await;
        assert_eq!(r.body, "1", "{mode:?}");
        browser.receive(&r);
    }
}
