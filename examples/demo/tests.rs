//! The demo example (`examples/demo`): every route through `oneshot`, the
//! CSRF defences (form token, API `Origin` check), the command line, and
//! one round trip through a real listener.

use typed_sessions_test_support as common;

use crate::{app, args};

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use common::{Reply, attr, fetch, has_flag, is_removal, max_age, send, submit};
use serde_json::{Value, json};
use typed_sessions::stores::MemoryStore;
use typed_sessions::{Session, SessionData, SessionLayer};

use args::{ArgError, Command, CookieMode, KeyOrigin, Options, RedisTarget, StoreKind};
use typed_sessions::stores::CookieKey;

// ---------------------------------------------------------------------------
// Helpers.

/// The demo as it runs without options: its own layer, whose `Secure`
/// cookie is named `__Host-session`. (The tests of `--insecure`, whose
/// cookie is `session`, build theirs from the parsed options; the cookie
/// helpers below take either name.)
fn demo() -> Router {
    app::app(
        Options::default()
            .session_layer(test_key())
            .unwrap()
            .unwrap(),
    )
}

/// A fixed cookie-store key for tests.
fn test_key() -> CookieKey {
    CookieKey::from_bytes(vec![0x42; 32])
}

/// The demo over `--store cookie` in `mode`.
fn cookie_demo(mode: CookieMode) -> Router {
    let options = Options {
        store: StoreKind::Cookie(mode),
        ..Options::default()
    };
    app::app(options.session_layer(test_key()).unwrap().unwrap())
}

/// [`demo`] over a `MemoryStore` of the test's, to look at what is kept.
fn demo_with_store() -> (Router, MemoryStore) {
    let store = MemoryStore::new();
    let layer = Options::default()
        .session_layer_over(store.clone())
        .unwrap();
    (app::app(layer), store)
}

fn body_json(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", reply.body))
}

fn content_type(reply: &Reply) -> &str {
    reply
        .headers
        .get(http::header::CONTENT_TYPE)
        .map_or("", |v| v.to_str().unwrap())
}

/// A request with any headers and body.
async fn request(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(http::HeaderName, &str)],
    body: &[u8],
) -> Reply {
    let mut request = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    common::reply(app, request.body(Body::from(body.to_vec())).unwrap()).await
}

/// A request with any body and content type.
async fn raw(
    app: &Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Reply {
    let mut headers = Vec::new();
    if let Some(cookie) = cookie {
        headers.push((http::header::COOKIE, cookie));
    }
    if let Some(content_type) = content_type {
        headers.push((http::header::CONTENT_TYPE, content_type));
    }
    request(app, method, uri, &headers, body).await
}

/// A JSON `POST`.
async fn post_json(app: &Router, uri: &str, cookie: Option<&str>, body: &str) -> Reply {
    send(app, "POST", uri, cookie, Some(body)).await
}

/// An HTML form `POST` (`application/x-www-form-urlencoded`).
async fn post_form(app: &Router, uri: &str, cookie: Option<&str>, body: &str) -> Reply {
    raw(
        app,
        "POST",
        uri,
        cookie,
        Some("application/x-www-form-urlencoded"),
        body.as_bytes(),
    )
    .await
}

/// The form token of a rendered page: the value of its hidden `csrf`
/// inputs, which must all be the same.
fn page_token(page: &Reply) -> String {
    token_in(&page.body)
}

/// The form token in a page's HTML (see [`page_token`]).
fn token_in(html: &str) -> String {
    const MARK: &str = r#"<input type="hidden" name="csrf" value=""#;
    let tokens: Vec<&str> = html
        .split(MARK)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert!(!tokens.is_empty(), "no token on the page: {html}");
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "one token per page: {tokens:?}"
    );
    tokens[0].to_owned()
}

/// Opens the page without a cookie, as a browser's first visit: the
/// session it starts and its form token.
async fn open_page(app: &Router) -> (String, String) {
    let page = fetch(app, "/", None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    (cookie_of(&page), page_token(&page))
}

/// The `name=value` of the cookie a reply set, whatever its name
/// (`__Host-session`, or `session` with `--insecure`).
fn cookie_of(reply: &Reply) -> String {
    reply.cookie()
}

/// The raw session id inside a `NAME=ID` pair: `__Host-session=ID`, or
/// `session=ID` with `--insecure` (a session id contains no `=`).
fn raw_id(cookie: &str) -> &str {
    cookie.split_once('=').unwrap().1
}

/// Asserts an input error: the status, a JSON `{"error": "..."}` body, and
/// nothing stored.
fn assert_api_error(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    assert!(
        content_type(reply).starts_with("application/json"),
        "{what}: content type {:?}",
        content_type(reply)
    );
    let body = body_json(reply);
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {body}"));
    assert!(!message.is_empty(), "{what}: empty message");
    assert!(
        reply.set_cookies.is_empty(),
        "{what}: {:?}",
        reply.set_cookies
    );
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------
// Counter.

#[tokio::test]
async fn counter_reads_zero_without_a_session_and_sets_no_cookie() {
    let app = demo();
    let r = fetch(&app, "/api/counter", None).await;
    assert_eq!(r.status, 200);
    assert!(content_type(&r).starts_with("application/json"));
    assert_eq!(r.body, r#"{"count":0}"#);
    assert!(r.set_cookies.is_empty(), "a read creates no session");
}

#[tokio::test]
async fn counter_increments_persist_through_the_cookie() {
    let app = demo();
    let first = submit(&app, "/api/counter/incr", None).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, r#"{"count":1}"#);
    let cookie = cookie_of(&first);

    let second = submit(&app, "/api/counter/incr", Some(&cookie)).await;
    assert_eq!(second.body, r#"{"count":2}"#);
    let atomic = submit(&app, "/api/counter/atomic-incr", Some(&cookie)).await;
    assert_eq!(atomic.status, 200);
    assert_eq!(atomic.body, r#"{"count":3}"#);

    let read = fetch(&app, "/api/counter", Some(&cookie)).await;
    assert_eq!(read.body, r#"{"count":3}"#);
    assert!(
        read.set_cookies.is_empty(),
        "a read-only request sets no cookie"
    );
    assert_eq!(
        fetch(&app, "/api/counter", None).await.body,
        r#"{"count":0}"#,
        "another client has its own count"
    );
}

#[tokio::test]
async fn atomic_incr_creates_a_session_when_there_is_none() {
    let app = demo();
    let r = submit(&app, "/api/counter/atomic-incr", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"count":1}"#);
    let cookie = cookie_of(&r);
    assert_eq!(
        fetch(&app, "/api/counter", Some(&cookie)).await.body,
        r#"{"count":1}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn atomic_incr_under_100_concurrent_requests_is_exact() {
    let app = demo();
    let cookie = cookie_of(&submit(&app, "/api/counter/incr", None).await);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let app = app.clone();
            let cookie = cookie.clone();
            tokio::spawn(
                async move { submit(&app, "/api/counter/atomic-incr", Some(&cookie)).await },
            )
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        seen.push(body_json(&r)["count"].as_u64().unwrap());
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (2..=101).collect::<Vec<u64>>(),
        "every update saw a distinct value"
    );
    assert_eq!(
        fetch(&app, "/api/counter", Some(&cookie)).await.body,
        r#"{"count":101}"#
    );
}

// ---------------------------------------------------------------------------
// Auth.

#[tokio::test]
async fn me_is_null_without_a_session() {
    let app = demo();
    let r = fetch(&app, "/api/me", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"user":null}"#);
    assert!(r.set_cookies.is_empty());
}

#[tokio::test]
async fn login_answers_the_user_and_creates_a_session() {
    let app = demo();
    let r = post_json(&app, "/api/login", None, r#"{"user":"alice"}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"user":"alice"}"#);
    let cookie = cookie_of(&r);
    assert_eq!(
        fetch(&app, "/api/me", Some(&cookie)).await.body,
        r#"{"user":"alice"}"#
    );
}

#[tokio::test]
async fn login_trims_the_user_name() {
    let app = demo();
    let r = post_json(&app, "/api/login", None, r#"{"user":"  alice \t"}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"user":"alice"}"#);
}

#[tokio::test]
async fn login_rotates_the_session_id_and_the_old_cookie_sees_no_user() {
    let (app, store) = demo_with_store();
    let anon = cookie_of(&submit(&app, "/api/counter/incr", None).await);
    let r = post_json(&app, "/api/login", Some(&anon), r#"{"user":"alice"}"#).await;
    assert_eq!(r.status, 200);
    let logged_in = cookie_of(&r);
    assert_ne!(
        raw_id(&logged_in),
        raw_id(&anon),
        "rotate_id gives a new id on login"
    );

    assert_eq!(
        fetch(&app, "/api/me", Some(&logged_in)).await.body,
        r#"{"user":"alice"}"#
    );
    assert_eq!(
        fetch(&app, "/api/me", Some(&anon)).await.body,
        r#"{"user":null}"#,
        "the pre-login id no longer names the session"
    );
    assert_eq!(
        fetch(&app, "/api/counter", Some(&logged_in)).await.body,
        r#"{"count":1}"#,
        "the data came along"
    );
    assert_eq!(store.len(), 1, "the record was moved, not copied");

    // Logging in as the same user again changes nothing: no rotation.
    let again = post_json(&app, "/api/login", Some(&logged_in), r#"{"user":"alice"}"#).await;
    assert_eq!(again.status, 200);
    assert!(again.set_cookies.is_empty(), "{:?}", again.set_cookies);
    // Another user does rotate.
    let bob = post_json(&app, "/api/login", Some(&logged_in), r#"{"user":"bob"}"#).await;
    assert_ne!(raw_id(&cookie_of(&bob)), raw_id(&logged_in));
}

#[tokio::test]
async fn login_rejects_bad_names_with_422() {
    let app = demo();
    let long = "x".repeat(app::MAX_USER_CHARS + 1);
    let cases = [
        (r#"{"user":""}"#.to_owned(), "empty"),
        (r#"{"user":"   "}"#.to_owned(), "blank"),
        (format!(r#"{{"user":"{long}"}}"#), "too long"),
        (r#"{"user":"al\u0007ice"}"#.to_owned(), "control character"),
        (r#"{"user":"a\nb"}"#.to_owned(), "newline"),
    ];
    for (body, what) in &cases {
        let r = post_json(&app, "/api/login", None, body).await;
        assert_api_error(&r, 422, what);
    }
    let longest = "é".repeat(app::MAX_USER_CHARS);
    let r = post_json(
        &app,
        "/api/login",
        None,
        &format!(r#"{{"user":"{longest}"}}"#),
    )
    .await;
    assert_eq!(
        r.status,
        200,
        "{} characters is the limit, not bytes",
        app::MAX_USER_CHARS
    );
}

#[tokio::test]
async fn logout_destroys_the_session_and_removes_the_cookie() {
    let (app, store) = demo_with_store();
    let cookie = cookie_of(&post_json(&app, "/api/login", None, r#"{"user":"alice"}"#).await);
    submit(&app, "/api/counter/incr", Some(&cookie)).await;

    let r = submit(&app, "/api/logout", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"user":null}"#);
    let set = r.set_cookie().expect("a removal cookie");
    assert!(is_removal(set), "{set}");
    assert_eq!(max_age(set), Some(0));
    assert!(store.is_empty(), "the record is deleted");

    assert_eq!(
        fetch(&app, "/api/me", Some(&cookie)).await.body,
        r#"{"user":null}"#
    );
    assert_eq!(
        fetch(&app, "/api/counter", Some(&cookie)).await.body,
        r#"{"count":0}"#,
        "logout ends the whole session"
    );
}

#[tokio::test]
async fn logout_without_a_session_is_harmless() {
    let app = demo();
    let r = submit(&app, "/api/logout", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"user":null}"#);
    assert!(r.set_cookies.is_empty());
}

// ---------------------------------------------------------------------------
// Cart.

#[tokio::test]
async fn cart_add_appends_and_get_reads() {
    let app = demo();
    let empty = fetch(&app, "/api/cart", None).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body, r#"{"items":[]}"#);

    let r = post_json(&app, "/api/cart", None, r#"{"sku":"a1","qty":2}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"items":[{"sku":"a1","qty":2}]}"#);
    let cookie = cookie_of(&r);

    let r = post_json(
        &app,
        "/api/cart",
        Some(&cookie),
        r#"{"sku":"b-2.x_y","qty":1}"#,
    )
    .await;
    assert_eq!(
        body_json(&r),
        json!({"items": [{"sku": "a1", "qty": 2}, {"sku": "b-2.x_y", "qty": 1}]})
    );
    let read = fetch(&app, "/api/cart", Some(&cookie)).await;
    assert_eq!(
        read.body,
        r#"{"items":[{"sku":"a1","qty":2},{"sku":"b-2.x_y","qty":1}]}"#
    );
    assert!(read.set_cookies.is_empty());
}

#[tokio::test]
async fn cart_rejects_bad_items_with_422() {
    let app = demo();
    let long = "a".repeat(app::MAX_SKU_CHARS + 1);
    let cases = [
        (r#"{"sku":"a1","qty":0}"#.to_owned(), "qty 0"),
        (
            format!(r#"{{"sku":"a1","qty":{}}}"#, app::MAX_QTY + 1),
            "qty too large",
        ),
        (r#"{"sku":"a1","qty":-1}"#.to_owned(), "negative qty"),
        (
            r#"{"sku":"a1","qty":99999999999}"#.to_owned(),
            "qty overflows",
        ),
        (r#"{"sku":"a1","qty":1.5}"#.to_owned(), "fractional qty"),
        (r#"{"sku":"a1","qty":"2"}"#.to_owned(), "qty as a string"),
        (r#"{"sku":"","qty":1}"#.to_owned(), "empty sku"),
        (format!(r#"{{"sku":"{long}","qty":1}}"#), "sku too long"),
        (r#"{"sku":"<b>","qty":1}"#.to_owned(), "sku with markup"),
        (r#"{"sku":"a 1","qty":1}"#.to_owned(), "sku with a space"),
        (r#"{"sku":"a1"}"#.to_owned(), "missing qty"),
        (
            r#"{"sku":"a1","qty":1,"price":0}"#.to_owned(),
            "unknown field",
        ),
    ];
    for (body, what) in &cases {
        let r = post_json(&app, "/api/cart", None, body).await;
        assert_api_error(&r, 422, what);
    }
}

#[tokio::test]
async fn cart_holds_a_bounded_number_of_items() {
    let app = demo();
    let cookie = cookie_of(&post_json(&app, "/api/cart", None, r#"{"sku":"a","qty":1}"#).await);
    for _ in 1..app::MAX_CART_ITEMS {
        let r = post_json(&app, "/api/cart", Some(&cookie), r#"{"sku":"a","qty":1}"#).await;
        assert_eq!(r.status, 200);
    }
    let r = post_json(&app, "/api/cart", Some(&cookie), r#"{"sku":"a","qty":1}"#).await;
    assert_api_error(&r, 422, "full cart");
    let items = body_json(&fetch(&app, "/api/cart", Some(&cookie)).await);
    assert_eq!(
        items["items"].as_array().unwrap().len(),
        app::MAX_CART_ITEMS
    );
}

#[tokio::test]
async fn delete_cart_resets_only_the_cart() {
    let app = demo();
    let cookie = cookie_of(&submit(&app, "/api/counter/incr", None).await);
    post_json(&app, "/api/cart", Some(&cookie), r#"{"sku":"a1","qty":2}"#).await;

    let r = send(&app, "DELETE", "/api/cart", Some(&cookie), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"items":[]}"#);
    assert!(
        !r.set_cookies.iter().any(|c| is_removal(c)),
        "the session survives: {:?}",
        r.set_cookies
    );

    assert_eq!(
        fetch(&app, "/api/cart", Some(&cookie)).await.body,
        r#"{"items":[]}"#
    );
    assert_eq!(
        fetch(&app, "/api/counter", Some(&cookie)).await.body,
        r#"{"count":1}"#,
        "the counter namespace is untouched"
    );
}

#[tokio::test]
async fn delete_cart_of_a_cart_only_session_ends_the_session() {
    let (app, store) = demo_with_store();
    let cookie = cookie_of(&post_json(&app, "/api/cart", None, r#"{"sku":"a1","qty":2}"#).await);
    let r = send(&app, "DELETE", "/api/cart", Some(&cookie), None).await;
    assert_eq!(r.body, r#"{"items":[]}"#);
    assert!(r.has_removal(), "nothing left to keep: {:?}", r.set_cookies);
    assert!(store.is_empty());
}

// ---------------------------------------------------------------------------
// Session metadata.

#[tokio::test]
async fn session_metadata_is_null_without_a_session() {
    let app = demo();
    let r = fetch(&app, "/api/session", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        body_json(&r),
        json!({"id_hash": null, "created_at": null, "expires_at": null, "remaining": null})
    );
    assert!(r.set_cookies.is_empty());
}

#[tokio::test]
async fn session_metadata_never_shows_the_raw_id() {
    let app = demo();
    let before = now_secs();
    let cookie = cookie_of(&submit(&app, "/api/counter/incr", None).await);
    let id = raw_id(&cookie).to_owned();

    let r = fetch(&app, "/api/session", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert!(!r.body.contains(&id), "raw id leaked: {}", r.body);
    let body = body_json(&r);
    let object = body.as_object().unwrap();
    let mut keys: Vec<_> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["created_at", "expires_at", "id_hash", "remaining"]);

    let hash = body["id_hash"]
        .as_str()
        .expect("a stored session has an id hash");
    assert!(!hash.is_empty());
    assert_ne!(hash, id);
    assert!(!id.contains(hash) && !hash.contains(&id));
    let created = body["created_at"].as_u64().unwrap();
    assert!((before..=now_secs()).contains(&created), "{created}");
    assert_eq!(
        body["expires_at"],
        Value::Null,
        "no timeout: a browser-session cookie"
    );
    assert_eq!(body["remaining"], Value::Null);

    // The hash is stable for a session, and changes with the id.
    let again = body_json(&fetch(&app, "/api/session", Some(&cookie)).await);
    assert_eq!(again["id_hash"], body["id_hash"]);
    let rotated = cookie_of(&post_json(&app, "/api/login", Some(&cookie), r#"{"user":"a"}"#).await);
    let after = fetch(&app, "/api/session", Some(&rotated)).await;
    assert!(!after.body.contains(raw_id(&rotated)));
    assert_ne!(body_json(&after)["id_hash"], body["id_hash"]);
}

#[tokio::test]
async fn session_metadata_reports_expiry_with_a_timeout() {
    let options = Options {
        idle_timeout: Some(Duration::from_mins(10)),
        absolute_timeout: Some(Duration::from_hours(1)),
        ..Options::default()
    };
    let app = app::app(options.session_layer(test_key()).unwrap().unwrap());
    let r = submit(&app, "/api/counter/incr", None).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(600));
    let cookie = cookie_of(&r);

    let body = body_json(&fetch(&app, "/api/session", Some(&cookie)).await);
    let created = body["created_at"].as_u64().unwrap();
    let expires = body["expires_at"].as_u64().unwrap();
    let remaining = body["remaining"].as_u64().unwrap();
    assert!(
        (created + 599..=created + 600).contains(&expires),
        "idle deadline first: {body}"
    );
    assert!((590..=600).contains(&remaining), "{body}");
}

// ---------------------------------------------------------------------------
// Bad bodies: always 4xx with a JSON message, never a 500.

#[tokio::test]
async fn malformed_json_is_a_client_error_never_a_500() {
    let app = demo();
    let bodies = [
        "",
        "{",
        "not json",
        "{\"user\":",
        "[]",
        "null",
        "42",
        "{\"user\":\"alice\"",
        "\u{0}",
    ];
    for uri in ["/api/login", "/api/cart"] {
        for body in bodies {
            let r = post_json(&app, uri, None, body).await;
            assert!(
                r.status == 400 || r.status == 422,
                "{uri} {body:?}: {} {}",
                r.status,
                r.body
            );
            assert_api_error(&r, r.status.as_u16(), &format!("{uri} {body:?}"));
        }
    }
    let invalid_utf8 = raw(
        &app,
        "POST",
        "/api/login",
        None,
        Some("application/json"),
        b"{\"user\":\"\xff\"}",
    )
    .await;
    assert_api_error(&invalid_utf8, 400, "invalid UTF-8");
}

#[tokio::test]
async fn json_routes_without_a_json_content_type_answer_415() {
    let app = demo();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let r = raw(
            &app,
            "POST",
            "/api/login",
            None,
            content_type,
            br#"{"user":"alice"}"#,
        )
        .await;
        assert_api_error(&r, 415, &format!("{content_type:?}"));
    }
}

#[tokio::test]
async fn wrong_methods_and_unknown_routes_are_client_errors() {
    let app = demo();
    assert_eq!(submit(&app, "/api/me", None).await.status, 405);
    assert_eq!(fetch(&app, "/api/logout", None).await.status, 405);
    assert_eq!(send(&app, "PUT", "/api/cart", None, None).await.status, 405);
    assert_eq!(fetch(&app, "/api/nope", None).await.status, 404);
    // The form routes check their token on `POST` only.
    for uri in FORM_ROUTES {
        assert_eq!(fetch(&app, uri, None).await.status, 405, "{uri}");
    }
}

// ---------------------------------------------------------------------------
// HTML page and form routes.

/// The `<form>` elements of a page, each up to its `</form>`.
fn forms_of(body: &str) -> Vec<&str> {
    body.split("<form ")
        .skip(1)
        .map(|rest| rest.split("</form>").next().unwrap())
        .collect()
}

#[tokio::test]
async fn page_renders_defaults_and_starts_a_session_for_its_form_token() {
    let (app, store) = demo_with_store();
    let r = fetch(&app, "/", None).await;
    assert_eq!(r.status, 200);
    assert!(content_type(&r).starts_with("text/html"));
    assert_eq!(
        r.headers.get(http::header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    assert!(
        r.body.contains(r#"<strong id="count">0</strong>"#),
        "{}",
        r.body
    );
    assert!(r.body.contains("Not signed in"));
    assert!(r.body.contains("The cart is empty"));
    assert!(r.body.contains("A new session starts with this page"));
    for action in ["/incr", "/atomic-incr", "/login", "/cart", "/cart/clear"] {
        assert!(
            r.body
                .contains(&format!(r#"method="post" action="{action}""#)),
            "form for {action}"
        );
    }
    assert!(!r.body.contains("<script"), "no JavaScript needed");

    // The token is session data: the first view stores it, which starts
    // the session.
    let cookie = cookie_of(&r);
    assert_eq!(store.len(), 1);
    let token = page_token(&r);
    let forms = forms_of(&r.body);
    assert_eq!(forms.len(), 5, "{}", r.body);
    for form in forms {
        assert!(
            form.contains(&format!(
                r#"<input type="hidden" name="csrf" value="{token}">"#
            )),
            "every form carries the token: {form}"
        );
    }

    // Seen again: the same token, nothing written, the stored session shown.
    let again = fetch(&app, "/", Some(&cookie)).await;
    assert!(again.set_cookies.is_empty(), "{:?}", again.set_cookies);
    assert_eq!(page_token(&again), token);
    assert!(again.body.contains("a keyed hash, never the id"));
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn form_routes_redirect_home_and_the_page_shows_the_state() {
    let app = demo();
    let (mut cookie, token) = open_page(&app).await;
    let r = post_form(&app, "/incr", Some(&cookie), &format!("csrf={token}")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.headers.get(http::header::LOCATION).unwrap(), "/");

    let r = post_form(
        &app,
        "/atomic-incr",
        Some(&cookie),
        &format!("csrf={token}"),
    )
    .await;
    assert_eq!(r.status, 303);
    let r = post_form(
        &app,
        "/login",
        Some(&cookie),
        &format!("csrf={token}&user=alice"),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.headers.get(http::header::LOCATION).unwrap(), "/");
    let rotated = cookie_of(&r);
    assert_ne!(rotated, cookie, "the form login rotates the id too");
    cookie = rotated;
    // The rest of the data came along; the token did not: the login
    // replaced it, and the page it leads to shows the new one.
    let before_login = token;
    let token = page_token(&fetch(&app, "/", Some(&cookie)).await);
    assert_ne!(token, before_login, "the login replaced the token");
    // Here it is last.
    let r = post_form(
        &app,
        "/cart",
        Some(&cookie),
        &format!("sku=a1&qty=2&csrf={token}"),
    )
    .await;
    assert_eq!(r.status, 303);

    let page = fetch(&app, "/", Some(&cookie)).await;
    assert!(
        page.body.contains(r#"<strong id="count">2</strong>"#),
        "{}",
        page.body
    );
    assert!(page.body.contains("Signed in as <strong>alice</strong>"));
    assert!(page.body.contains("<tr><td>a1</td><td>2</td></tr>"));
    assert!(page.body.contains(r#"action="/logout""#));
    assert!(page.body.contains("a keyed hash, never the id"));
    assert!(
        !page.body.contains(raw_id(&cookie)),
        "the page never shows the raw id"
    );
    assert_eq!(page_token(&page), token, "one token from the login on");

    let r = post_form(&app, "/cart/clear", Some(&cookie), &format!("csrf={token}")).await;
    assert_eq!(r.status, 303);
    assert!(
        fetch(&app, "/", Some(&cookie))
            .await
            .body
            .contains("The cart is empty")
    );

    let r = post_form(&app, "/logout", Some(&cookie), &format!("csrf={token}")).await;
    assert_eq!(r.status, 303);
    assert!(r.has_removal());
    let page = fetch(&app, "/", Some(&cookie)).await;
    assert!(page.body.contains("Not signed in"));
    assert!(page.body.contains(r#"<strong id="count">0</strong>"#));
    assert_ne!(
        page_token(&page),
        token,
        "logout ended the session and its token"
    );
}

#[tokio::test]
async fn page_escapes_user_provided_strings() {
    let app = demo();
    let (cookie, token) = open_page(&app).await;
    let r = post_form(
        &app,
        "/login",
        Some(&cookie),
        &format!("csrf={token}&user=%3Cscript%3Ealert(%22x%22)%3C%2Fscript%3E%26%27"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = cookie_of(&r);
    assert_eq!(
        body_json(&fetch(&app, "/api/me", Some(&cookie)).await)["user"],
        r#"<script>alert("x")</script>&'"#,
        "stored as given; escaping is the page's job"
    );
    let page = fetch(&app, "/", Some(&cookie)).await;
    assert!(!page.body.contains("<script"), "{}", page.body);
    assert!(
        page.body
            .contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#x27;"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn escape_html_covers_the_five_special_characters() {
    assert_eq!(
        app::escape_html(r#"<a href="x">Tom & 'Jerry'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#x27;Jerry&#x27;&lt;/a&gt;"
    );
    assert_eq!(app::escape_html("plain é"), "plain é");
}

#[tokio::test]
async fn form_routes_reject_bad_input_with_an_html_page() {
    let app = demo();
    let (cookie, token) = open_page(&app).await;
    let cases = [
        ("/login", "user=", 422),
        ("/login", "user=%20%20", 422),
        ("/login", "name=alice", 422),
        ("/cart", "sku=a1&qty=0", 422),
        ("/cart", "sku=a1&qty=abc", 422),
        ("/cart", "sku=%3Cb%3E&qty=1", 422),
        ("/cart", "sku=a1", 422),
    ];
    for (uri, body, status) in cases {
        let r = post_form(&app, uri, Some(&cookie), &format!("csrf={token}&{body}")).await;
        assert_eq!(r.status, status, "{uri} {body}: {}", r.body);
        assert!(content_type(&r).starts_with("text/html"), "{uri} {body}");
        assert!(r.body.contains("Invalid input"), "{uri} {body}");
        assert!(!r.body.contains("<b>"), "messages are escaped");
        assert!(r.set_cookies.is_empty(), "{uri} {body}");
    }
    // A JSON body has no form token to find: refused before it is parsed.
    let r = raw(
        &app,
        "POST",
        "/login",
        Some(&cookie),
        Some("application/json"),
        br#"{"user":"a"}"#,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        body_json(&fetch(&app, "/api/me", Some(&cookie)).await)["user"].is_null(),
        "nobody signed in"
    );
}

#[tokio::test]
async fn oversized_form_bodies_are_refused_with_413() {
    let app = demo();
    let (cookie, token) = open_page(&app).await;
    let body = format!("csrf={token}&user={}", "a".repeat(app::MAX_FORM_BYTES));
    let r = post_form(&app, "/login", Some(&cookie), &body).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(content_type(&r).starts_with("text/html"));
    assert!(r.set_cookies.is_empty());
    assert!(body_json(&fetch(&app, "/api/me", Some(&cookie)).await)["user"].is_null());
}

// ---------------------------------------------------------------------------
// CSRF: the form token.

/// Every form route of the page.
const FORM_ROUTES: [&str; 6] = [
    "/incr",
    "/atomic-incr",
    "/login",
    "/logout",
    "/cart",
    "/cart/clear",
];

/// A body `uri` accepts, apart from the token.
fn form_fields(uri: &str) -> &'static str {
    match uri {
        "/login" => "user=mallory",
        "/cart" => "sku=zz&qty=9",
        _ => "",
    }
}

/// A session, opened on the page, with a count of 1, alice signed in and
/// one cart line: the cookie and the form token (the one the login made).
async fn session_with_state(app: &Router) -> (String, String) {
    let (cookie, token) = open_page(app).await;
    let csrf = format!("csrf={token}");
    assert_eq!(
        post_form(app, "/incr", Some(&cookie), &csrf).await.status,
        303
    );
    let r = post_form(app, "/login", Some(&cookie), &format!("{csrf}&user=alice")).await;
    assert_eq!(r.status, 303);
    let cookie = cookie_of(&r);
    // The login replaced the token: the page shows the new one.
    let token = page_token(&fetch(app, "/", Some(&cookie)).await);
    let csrf = format!("csrf={token}");
    let r = post_form(app, "/cart", Some(&cookie), &format!("{csrf}&sku=a1&qty=2")).await;
    assert_eq!(r.status, 303);
    (cookie, token)
}

/// Asserts that the session of [`session_with_state`] is as it left it.
async fn assert_state_unchanged(app: &Router, cookie: &str, what: &str) {
    assert_eq!(
        fetch(app, "/api/counter", Some(cookie)).await.body,
        r#"{"count":1}"#,
        "{what}"
    );
    assert_eq!(
        fetch(app, "/api/me", Some(cookie)).await.body,
        r#"{"user":"alice"}"#,
        "{what}"
    );
    assert_eq!(
        fetch(app, "/api/cart", Some(cookie)).await.body,
        r#"{"items":[{"sku":"a1","qty":2}]}"#,
        "{what}"
    );
}

/// Asserts a refused form: 403, a short HTML page, no cookie.
fn assert_forbidden_form(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 403, "{what}: {}", reply.body);
    assert!(content_type(reply).starts_with("text/html"), "{what}");
    assert!(reply.body.contains("CSRF token"), "{what}: {}", reply.body);
    assert!(
        reply.set_cookies.is_empty(),
        "{what}: {:?}",
        reply.set_cookies
    );
}

#[tokio::test]
async fn form_posts_without_the_token_are_refused_with_403_and_change_nothing() {
    let app = demo();
    let (cookie, token) = session_with_state(&app).await;
    for uri in FORM_ROUTES {
        let r = post_form(&app, uri, Some(&cookie), form_fields(uri)).await;
        assert_forbidden_form(&r, uri);
        assert_state_unchanged(&app, &cookie, uri).await;
    }
    // The same request with the token goes through: the token was missing,
    // nothing else.
    let r = post_form(&app, "/incr", Some(&cookie), &format!("csrf={token}")).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        fetch(&app, "/api/counter", Some(&cookie)).await.body,
        r#"{"count":2}"#
    );
}

#[tokio::test]
async fn form_posts_with_a_wrong_token_are_refused_with_403() {
    let app = demo();
    let (cookie, token) = session_with_state(&app).await;
    let (_, other_session) = open_page(&app).await;
    let mut flipped = token.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let bodies = [
        format!("csrf={other_session}"),
        format!("csrf={flipped}"),
        format!("csrf={}", &token[..token.len() - 1]),
        format!("csrf={token}A"),
        format!("csrf={}", token.to_ascii_lowercase()),
        "csrf=".to_owned(),
        "csrf".to_owned(),
        // Given twice, even with the right value: ambiguous.
        format!("csrf={token}&csrf={token}"),
        format!("csrf={other_session}&csrf={token}"),
        // A field that is not the token field.
        format!("csrf_={token}"),
    ];
    for uri in FORM_ROUTES {
        for body in &bodies {
            let fields = form_fields(uri);
            let body = if fields.is_empty() {
                body.clone()
            } else {
                format!("{body}&{fields}")
            };
            let r = post_form(&app, uri, Some(&cookie), &body).await;
            let what = format!("{uri} {body}");
            assert_forbidden_form(&r, &what);
            assert_state_unchanged(&app, &cookie, &what).await;
        }
    }
}

#[tokio::test]
async fn form_posts_with_the_pages_token_work() {
    for uri in FORM_ROUTES {
        let app = demo();
        let (cookie, token) = open_page(&app).await;
        let fields = form_fields(uri);
        let r = post_form(&app, uri, Some(&cookie), &format!("csrf={token}&{fields}")).await;
        assert_eq!(r.status, 303, "{uri}: {}", r.body);
        assert_eq!(r.headers.get(http::header::LOCATION).unwrap(), "/", "{uri}");
    }
}

#[tokio::test]
async fn cross_site_login_without_a_cookie_is_refused_and_creates_no_session() {
    let (app, store) = demo_with_store();
    // A cross-site form arrives without the cookie (SameSite=Lax), so with
    // no session and no token to match.
    for body in ["user=mallory", "csrf=&user=mallory", "csrf=x&user=mallory"] {
        let r = post_form(&app, "/login", None, body).await;
        assert_forbidden_form(&r, body);
    }
    assert!(store.is_empty(), "no session was created");

    // Not even with a real token, from the attacker's own session.
    let (_, attackers) = open_page(&app).await;
    assert_eq!(store.len(), 1);
    let r = post_form(
        &app,
        "/login",
        None,
        &format!("csrf={attackers}&user=mallory"),
    )
    .await;
    assert_forbidden_form(&r, "the attacker's token");
    assert_eq!(store.len(), 1, "still only the attacker's own session");
}

#[tokio::test]
async fn a_session_started_by_the_api_gets_its_token_from_the_page() {
    let app = demo();
    let cookie = cookie_of(&submit(&app, "/api/counter/incr", None).await);
    let r = post_form(&app, "/incr", Some(&cookie), "csrf=").await;
    assert_forbidden_form(&r, "no token stored yet");

    let page = fetch(&app, "/", Some(&cookie)).await;
    assert!(page.body.contains(r#"<strong id="count">1</strong>"#));
    let token = page_token(&page);
    let r = post_form(&app, "/incr", Some(&cookie), &format!("csrf={token}")).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        fetch(&app, "/api/counter", Some(&cookie)).await.body,
        r#"{"count":2}"#
    );
}

/// Asserts that `token` is [`app::CSRF_TOKEN_BYTES`] bytes, base64url.
fn assert_token_shape(token: &str) {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .unwrap_or_else(|e| panic!("{token}: {e}"));
    assert_eq!(bytes.len(), app::CSRF_TOKEN_BYTES, "{token}");
}

#[tokio::test]
async fn csrf_tokens_are_random_per_session_and_stable_across_views() {
    let app = demo();
    let (cookie, first) = open_page(&app).await;
    let (_, second) = open_page(&app).await;
    assert_ne!(first, second, "every session gets its own token");
    for token in [&first, &second] {
        assert_token_shape(token);
    }

    // Stable across views; the login's id rotation replaces it, and the
    // new one is stable in turn (see
    // `form_login_replaces_the_csrf_token_and_the_old_one_is_refused`).
    assert_eq!(page_token(&fetch(&app, "/", Some(&cookie)).await), first);
    let r = post_form(
        &app,
        "/login",
        Some(&cookie),
        &format!("csrf={first}&user=alice"),
    )
    .await;
    assert_eq!(r.status, 303);
    let rotated = cookie_of(&r);
    let after_login = page_token(&fetch(&app, "/", Some(&rotated)).await);
    assert_ne!(after_login, first, "the login replaced the token");
    assert_token_shape(&after_login);
    assert_eq!(
        page_token(&fetch(&app, "/", Some(&rotated)).await),
        after_login
    );
    // The pre-login id names no session: its page starts a new one.
    let fresh = page_token(&fetch(&app, "/", Some(&cookie)).await);
    assert_ne!(fresh, first);
    assert_ne!(fresh, after_login);
}

#[tokio::test]
async fn form_login_replaces_the_csrf_token_and_the_old_one_is_refused() {
    let (app, store) = demo_with_store();
    let (cookie, before) = open_page(&app).await;
    let r = post_form(
        &app,
        "/login",
        Some(&cookie),
        &format!("csrf={before}&user=alice"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = cookie_of(&r);
    assert_eq!(store.len(), 1, "moved, not copied");

    // The page the login leads to shows a fresh token, already stored by
    // the login: showing it writes nothing.
    let page = fetch(&app, "/", Some(&cookie)).await;
    assert!(page.body.contains("Signed in as <strong>alice</strong>"));
    assert!(page.set_cookies.is_empty(), "{:?}", page.set_cookies);
    let after = page_token(&page);
    assert_ne!(after, before, "a login gives the session a new token");
    assert_token_shape(&after);

    // The token from before the login (which an attacker may have learned
    // from the anonymous session) is refused by every form route, with the
    // session's new cookie, and changes nothing.
    for uri in FORM_ROUTES {
        let fields = form_fields(uri);
        let r = post_form(&app, uri, Some(&cookie), &format!("csrf={before}&{fields}")).await;
        assert_forbidden_form(&r, &format!("{uri} with the pre-login token"));
        assert_eq!(
            fetch(&app, "/api/me", Some(&cookie)).await.body,
            r#"{"user":"alice"}"#,
            "{uri}"
        );
    }
    assert_eq!(
        fetch(&app, "/api/counter", Some(&cookie)).await.body,
        r#"{"count":0}"#
    );
    // The new one works.
    let r = post_form(&app, "/incr", Some(&cookie), &format!("csrf={after}")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        fetch(&app, "/api/counter", Some(&cookie)).await.body,
        r#"{"count":1}"#
    );

    // Signing in as the user already signed in changes nothing: no new id,
    // no new token.
    let r = post_form(
        &app,
        "/login",
        Some(&cookie),
        &format!("csrf={after}&user=alice"),
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
    assert_eq!(page_token(&fetch(&app, "/", Some(&cookie)).await), after);
    // Another user does get a new one.
    let r = post_form(
        &app,
        "/login",
        Some(&cookie),
        &format!("csrf={after}&user=bob"),
    )
    .await;
    assert_eq!(r.status, 303);
    let bobs = cookie_of(&r);
    let bobs_token = page_token(&fetch(&app, "/", Some(&bobs)).await);
    assert_ne!(bobs_token, after);
    let r = post_form(&app, "/incr", Some(&bobs), &format!("csrf={after}")).await;
    assert_forbidden_form(&r, "alice's token after bob's login");
}

#[tokio::test]
async fn api_login_removes_the_csrf_token_and_the_old_one_is_refused() {
    let (app, store) = demo_with_store();
    let (cookie, before) = open_page(&app).await;
    let r = post_json(&app, "/api/login", Some(&cookie), r#"{"user":"alice"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = cookie_of(&r);
    assert_eq!(store.len(), 1, "moved, not copied");

    // The pre-login token is refused by every form route and changes
    // nothing: the session has no token until its page makes one.
    for uri in FORM_ROUTES {
        let fields = form_fields(uri);
        let r = post_form(&app, uri, Some(&cookie), &format!("csrf={before}&{fields}")).await;
        assert_forbidden_form(&r, &format!("{uri} with the pre-login token"));
        assert_eq!(
            fetch(&app, "/api/me", Some(&cookie)).await.body,
            r#"{"user":"alice"}"#,
            "{uri}"
        );
    }
    // The next page makes a fresh one, which works.
    let after = page_token(&fetch(&app, "/", Some(&cookie)).await);
    assert_ne!(after, before, "a login gives the session a new token");
    assert_token_shape(&after);
    let r = post_form(&app, "/incr", Some(&cookie), &format!("csrf={after}")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = post_form(&app, "/incr", Some(&cookie), &format!("csrf={before}")).await;
    assert_forbidden_form(&r, "the pre-login token after the page");
    assert_eq!(
        fetch(&app, "/api/counter", Some(&cookie)).await.body,
        r#"{"count":1}"#
    );
}

#[tokio::test]
async fn csrf_token_is_a_sensitive_field_redacted_in_debug() {
    let fields = <app::Csrf as SessionData>::FIELDS;
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0].name(), "token");
    assert!(fields[0].sensitive());

    let layer = SessionLayer::new(MemoryStore::new());
    let app = app::app(layer.clone());
    // A route of the test's own over the same layer: the `Debug` of the
    // loaded `Session<Csrf>`, and the length of the token it holds.
    let probe = Router::new()
        .route(
            "/probe",
            axum::routing::get(|csrf: Session<app::Csrf>| async move {
                format!(
                    "{csrf:?} len={}",
                    csrf.token.as_ref().map_or(0, String::len)
                )
            }),
        )
        .layer(layer);
    let (cookie, token) = open_page(&app).await;
    let r = fetch(&probe, "/probe", Some(&cookie)).await;
    assert!(
        r.body.ends_with(" len=43"),
        "the session was loaded: {}",
        r.body
    );
    assert!(r.body.contains("<redacted>"), "{}", r.body);
    assert!(!r.body.contains(&token), "{}", r.body);

    let value = app::Csrf {
        token: Some(token.clone()),
    };
    let debug = format!("{value:?}");
    assert!(!debug.contains(&token), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[test]
fn split_token_takes_the_csrf_field_out_of_a_form_body() {
    let cases: &[(&[u8], Option<&str>, &[u8])] = &[
        (b"csrf=abc&user=x", Some("abc"), b"user=x"),
        (b"user=x&csrf=abc", Some("abc"), b"user=x"),
        (b"a=1&csrf=abc&b=2", Some("abc"), b"a=1&b=2"),
        (b"csrf=abc", Some("abc"), b""),
        (b"csrf", Some(""), b""),
        (b"csrf=%41", Some("%41"), b""),
        (b"user=x", None, b"user=x"),
        (b"", None, b""),
        (b"csrf=a&csrf=a", None, b""),
        (b"csrfx=1&xcsrf=2", None, b"csrfx=1&xcsrf=2"),
        (b"a=1&&b=%20+", None, b"a=1&&b=%20+"),
        (b"csrf=\xff&a=1", None, b"a=1"),
    ];
    for (body, token, rest) in cases {
        let (got_token, got_rest) = app::split_token(body);
        let what = String::from_utf8_lossy(body);
        assert_eq!(got_token.as_deref(), *token, "{what}");
        assert_eq!(got_rest, *rest, "{what}");
    }
}

#[test]
fn constant_time_eq_is_byte_equality() {
    assert!(app::constant_time_eq(b"", b""));
    assert!(app::constant_time_eq(b"token", b"token"));
    assert!(!app::constant_time_eq(b"token", b"Token"));
    assert!(!app::constant_time_eq(b"token", b"tokeN"));
    assert!(!app::constant_time_eq(b"token", b"toke"));
    assert!(!app::constant_time_eq(b"token", b"tokens"));
    assert!(!app::constant_time_eq(b"", b"x"));
}

// ---------------------------------------------------------------------------
// CSRF: the API's `Origin` check.

/// The `Host` a browser sends to `http://localhost:3000/`.
const HOST: &str = "localhost:3000";

/// An API request with `Host: localhost:3000`, and `origin` and `cookie`
/// when given; a JSON content type when there is a body.
async fn api_call(
    app: &Router,
    method: &str,
    uri: &str,
    origin: Option<&str>,
    cookie: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut headers = vec![(http::header::HOST, HOST)];
    if let Some(origin) = origin {
        headers.push((http::header::ORIGIN, origin));
    }
    if let Some(cookie) = cookie {
        headers.push((http::header::COOKIE, cookie));
    }
    if body.is_some() {
        headers.push((http::header::CONTENT_TYPE, "application/json"));
    }
    request(app, method, uri, &headers, body.unwrap_or("").as_bytes()).await
}

/// Every API call, with a body where it takes one.
const API_CALLS: [(&str, &str, Option<&str>); 10] = [
    ("POST", "/api/counter/incr", None),
    ("POST", "/api/counter/atomic-incr", None),
    ("POST", "/api/login", Some(r#"{"user":"mallory"}"#)),
    ("POST", "/api/cart", Some(r#"{"sku":"zz","qty":9}"#)),
    ("DELETE", "/api/cart", None),
    ("POST", "/api/logout", None),
    ("GET", "/api/counter", None),
    ("GET", "/api/me", None),
    ("GET", "/api/cart", None),
    ("GET", "/api/session", None),
];

#[tokio::test]
async fn api_refuses_a_cross_origin_request_with_403_and_changes_nothing() {
    let (app, store) = demo_with_store();
    let cookie = cookie_of(&post_json(&app, "/api/login", None, r#"{"user":"alice"}"#).await);
    post_json(&app, "/api/cart", Some(&cookie), r#"{"sku":"a1","qty":2}"#).await;
    submit(&app, "/api/counter/incr", Some(&cookie)).await;

    let origins = [
        "https://evil.example",
        "http://evil.example",
        "null",
        "http://localhost:3001",
        "http://localhost",
        "http://evil.example:3000",
        "https://localhost:3000.evil.example",
        "http://user@localhost:3000",
        "http://localhost:3000/",
        "ftp://localhost:3000",
        "localhost:3000",
        "",
    ];
    for origin in origins {
        for (method, uri, body) in API_CALLS {
            for cookie in [Some(cookie.as_str()), None] {
                let r = api_call(&app, method, uri, Some(origin), cookie, body).await;
                assert_api_error(
                    &r,
                    403,
                    &format!(
                        "{method} {uri} Origin {origin:?} cookie {}",
                        cookie.is_some()
                    ),
                );
            }
        }
    }
    assert_eq!(store.len(), 1, "no session was created or ended");
    assert_eq!(
        fetch(&app, "/api/me", Some(&cookie)).await.body,
        r#"{"user":"alice"}"#
    );
    assert_eq!(
        fetch(&app, "/api/counter", Some(&cookie)).await.body,
        r#"{"count":1}"#
    );
    assert_eq!(
        fetch(&app, "/api/cart", Some(&cookie)).await.body,
        r#"{"items":[{"sku":"a1","qty":2}]}"#
    );
}

#[tokio::test]
async fn api_refuses_an_origin_it_cannot_compare_with_its_own() {
    let app = demo();
    // No `Host` and no authority in the URI: nothing says what this site is.
    let r = request(
        &app,
        "POST",
        "/api/counter/incr",
        &[(http::header::ORIGIN, "http://localhost:3000")],
        b"",
    )
    .await;
    assert_api_error(&r, 403, "no Host");
    // The URI's authority stands in for `Host` (HTTP/2).
    let r = request(
        &app,
        "POST",
        "http://localhost:3000/api/counter/incr",
        &[(http::header::ORIGIN, "http://localhost:3000")],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, r#"{"count":1}"#);
}

#[tokio::test]
async fn api_accepts_a_same_origin_request() {
    let app = demo();
    for origin in [
        "http://localhost:3000",
        "https://localhost:3000",
        "http://LocalHost:3000",
    ] {
        let r = api_call(&app, "POST", "/api/counter/incr", Some(origin), None, None).await;
        assert_eq!(r.status, 200, "{origin}: {}", r.body);
        assert_eq!(r.body, r#"{"count":1}"#, "{origin}");
        let cookie = cookie_of(&r);
        let r = api_call(
            &app,
            "POST",
            "/api/login",
            Some(origin),
            Some(&cookie),
            Some(r#"{"user":"alice"}"#),
        )
        .await;
        assert_eq!(r.body, r#"{"user":"alice"}"#, "{origin}");
        let cookie = cookie_of(&r);
        let r = api_call(
            &app,
            "GET",
            "/api/counter",
            Some(origin),
            Some(&cookie),
            None,
        )
        .await;
        assert_eq!(r.body, r#"{"count":1}"#, "{origin}");
    }
    // Any host, IPv6 included: the request's own `Host` is the reference.
    for (host, origin) in [
        ("[::1]:3000", "http://[::1]:3000"),
        ("demo.example", "https://demo.example"),
    ] {
        let r = request(
            &app,
            "POST",
            "/api/counter/incr",
            &[(http::header::HOST, host), (http::header::ORIGIN, origin)],
            b"",
        )
        .await;
        assert_eq!(r.status, 200, "{origin}: {}", r.body);
    }
}

#[tokio::test]
async fn api_without_an_origin_works_as_before() {
    // What curl sends: no `Origin`; body-less POSTs with no content type.
    let app = demo();
    let r = api_call(&app, "POST", "/api/counter/incr", None, None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, r#"{"count":1}"#);
    let cookie = cookie_of(&r);
    for (method, uri, body) in API_CALLS {
        let r = api_call(&app, method, uri, None, Some(&cookie), body).await;
        assert_eq!(r.status, 200, "{method} {uri}: {}", r.body);
    }
}

// ---------------------------------------------------------------------------
// Layer options from the command line.

#[tokio::test]
async fn cookie_is_secure_by_default_and_insecure_on_request() {
    let secure = app::app(
        Options::default()
            .session_layer(test_key())
            .unwrap()
            .unwrap(),
    );
    let r = submit(&secure, "/api/counter/incr", None).await;
    let set = r.set_cookie().unwrap();
    assert!(has_flag(set, "Secure"), "{set}");
    assert!(has_flag(set, "HttpOnly"), "{set}");
    assert_eq!(max_age(set), None, "no timeout: a browser-session cookie");
    // Secure, so `__Host-`, with the prefix's rules: Path=/, no Domain.
    assert!(set.starts_with("__Host-session="), "{set}");
    assert_eq!(attr(set, "Path").as_deref(), Some("/"), "{set}");
    assert_eq!(attr(set, "Domain"), None, "{set}");
    assert_eq!(Options::default().cookie_name(), "__Host-session");
    assert_eq!(args::SECURE_COOKIE_NAME, "__Host-session");

    let Command::Run(options) = args::parse(["--insecure"]).unwrap() else {
        panic!("expected Run");
    };
    let insecure = app::app(options.session_layer(test_key()).unwrap().unwrap());
    let r = submit(&insecure, "/api/counter/incr", None).await;
    let set = r.set_cookie().unwrap();
    assert!(!has_flag(set, "Secure"), "{set}");
    assert!(has_flag(set, "HttpOnly"), "{set}");
    // Browsers refuse `__Host-` without Secure: the plain name.
    assert!(set.starts_with("session="), "{set}");
    assert_eq!(options.cookie_name(), "session");
    assert_eq!(args::INSECURE_COOKIE_NAME, "session");
    // And the insecure demo reads its cookie back.
    let cookie = cookie_of(&r);
    assert_eq!(
        fetch(&insecure, "/api/counter", Some(&cookie)).await.body,
        r#"{"count":1}"#
    );
}

#[tokio::test]
async fn a_session_cookie_planted_by_a_sibling_subdomain_is_not_the_demos() {
    let (app, store) = demo_with_store();
    // The attacker opens the page: a session of their own, and its token.
    let (attackers, attackers_token) = open_page(&app).await;
    // A page on a sibling subdomain can set a cookie for the whole site
    // (`Domain=`), but never a `__Host-` one: it plants the attacker's
    // session id under the plain name.
    let planted = format!("session={}", raw_id(&attackers));
    let mallory = format!("csrf={attackers_token}&user=mallory");

    // A victim without a session of their own, sent the attacker's login
    // form: the planted cookie names no session of the demo's, so the
    // attacker's token matches nothing.
    let r = post_form(&app, "/login", Some(&planted), &mallory).await;
    assert_forbidden_form(&r, "login with the planted cookie");
    // Nor do names a browser lets a sibling set that only look like the
    // demo's: another case, or percent-encoded (the demo never decodes a
    // cookie name).
    for name in ["__host-session", "__HOST-session", "__%48ost-session"] {
        let lookalike = format!("{name}={}", raw_id(&attackers));
        let r = post_form(&app, "/login", Some(&lookalike), &mallory).await;
        assert_forbidden_form(&r, &format!("login with {name}"));
    }
    assert_eq!(store.len(), 1, "only the attacker's own session");
    assert!(body_json(&fetch(&app, "/api/me", Some(&planted)).await)["user"].is_null());
    assert!(
        body_json(&fetch(&app, "/api/me", Some(&attackers)).await)["user"].is_null(),
        "the attacker's session was not signed in"
    );
    let page = fetch(&app, "/", Some(&planted)).await;
    assert_ne!(
        page_token(&page),
        attackers_token,
        "the page does not show the attacker's token"
    );
    assert!(page.body.contains("A new session starts with this page"));

    // A victim with a session of their own and the planted cookie beside
    // it: the demo reads only its own cookie, so the victim's forms work
    // and the attacker's token does not.
    let (victims, victims_token) = open_page(&app).await;
    let both = format!("{planted}; {victims}");
    let r = post_form(&app, "/login", Some(&both), &mallory).await;
    assert_forbidden_form(&r, "login with both cookies");
    let r = post_form(
        &app,
        "/login",
        Some(&both),
        &format!("csrf={victims_token}&user=alice"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let victims = cookie_of(&r);
    assert_eq!(
        fetch(&app, "/api/me", Some(&format!("{planted}; {victims}")))
            .await
            .body,
        r#"{"user":"alice"}"#
    );
    assert!(body_json(&fetch(&app, "/api/me", Some(&attackers)).await)["user"].is_null());
}

#[tokio::test]
async fn max_sessions_bounds_the_memory_store() {
    // 32 over the store's 32 shards: one session per shard. A new session
    // evicts the one in its shard, so the first session goes once a later
    // one lands in its shard (1 in 32 each time).
    let app = app::app(
        run(&["--max-sessions", "32"])
            .session_layer(test_key())
            .unwrap()
            .unwrap(),
    );
    let first = cookie_of(&submit(&app, "/api/counter/incr", None).await);
    let alive = |cookie: String| {
        let app = app.clone();
        async move { fetch(&app, "/api/counter", Some(&cookie)).await.body == r#"{"count":1}"# }
    };
    assert!(alive(first.clone()).await);
    let mut cookies = vec![first.clone()];
    let mut first_evicted_after = None;
    // (31/32)^2000 < 1e-27: a bound that is applied evicts well before.
    for created in 1..=2000 {
        cookies.push(cookie_of(&submit(&app, "/api/counter/incr", None).await));
        if !alive(first.clone()).await {
            first_evicted_after = Some(created);
            break;
        }
    }
    assert!(
        first_evicted_after.is_some(),
        "the first of 2001 sessions is still stored"
    );
    for _ in 0..200 {
        cookies.push(cookie_of(&submit(&app, "/api/counter/incr", None).await));
    }
    let mut live = 0;
    for cookie in cookies {
        live += usize::from(alive(cookie).await);
    }
    assert!(
        (1..=32).contains(&live),
        "{live} sessions alive under --max-sessions 32"
    );
}

#[tokio::test]
async fn the_default_bound_keeps_every_session_of_a_small_load() {
    // The contrast to `max_sessions_bounds_the_memory_store`: the same
    // load under the default bound loses nothing.
    let app = app::app(
        Options::default()
            .session_layer(test_key())
            .unwrap()
            .unwrap(),
    );
    let mut cookies = Vec::new();
    for _ in 0..300 {
        cookies.push(cookie_of(&submit(&app, "/api/counter/incr", None).await));
    }
    for cookie in cookies {
        assert_eq!(
            fetch(&app, "/api/counter", Some(&cookie)).await.body,
            r#"{"count":1}"#
        );
    }
}

// ---------------------------------------------------------------------------
// Command line.

fn run(args: &[&str]) -> Options {
    match args::parse(args.iter().copied()) {
        Ok(Command::Run(options)) => options,
        other => panic!("{args:?}: expected Run, got {other:?}"),
    }
}

fn error(args: &[&str]) -> String {
    match args::parse(args.iter().copied()) {
        Err(err) => err.message().to_owned(),
        other => panic!("{args:?}: expected an error, got {other:?}"),
    }
}

#[test]
fn no_arguments_mean_the_defaults() {
    let options = run(&[]);
    assert_eq!(options, Options::default());
    assert_eq!(
        options.addr,
        "127.0.0.1:3000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(options.store, StoreKind::Memory);
    assert_eq!(options.idle_timeout, None);
    assert_eq!(options.absolute_timeout, None);
    assert!(options.secure);
    assert_eq!(options.max_sessions, 100_000);
    assert_eq!(args::DEFAULT_MAX_SESSIONS, 100_000);
}

#[test]
fn every_option_is_parsed() {
    let options = run(&[
        "--addr",
        "0.0.0.0:8080",
        "--store",
        "memory",
        "--idle-timeout",
        "1800",
        "--absolute-timeout",
        "43200",
        "--max-sessions",
        "5000",
        "--insecure",
    ]);
    assert_eq!(
        options,
        Options {
            addr: "0.0.0.0:8080".parse().unwrap(),
            store: StoreKind::Memory,
            idle_timeout: Some(Duration::from_mins(30)),
            absolute_timeout: Some(Duration::from_hours(12)),
            secure: false,
            max_sessions: 5000,
        }
    );
    let same = run(&[
        "--max-sessions=5000",
        "--insecure",
        "--absolute-timeout=43200",
        "--idle-timeout=1800",
        "--store=memory",
        "--addr=0.0.0.0:8080",
    ]);
    assert_eq!(same, options, "--name=value works too, in any order");
}

#[test]
fn addresses_accept_ipv6_localhost_and_port_zero() {
    assert_eq!(
        run(&["--addr", "[::1]:3001"]).addr,
        "[::1]:3001".parse().unwrap()
    );
    assert_eq!(
        run(&["--addr", "localhost:4000"]).addr,
        "127.0.0.1:4000".parse().unwrap()
    );
    assert_eq!(run(&["--addr", "127.0.0.1:0"]).addr.port(), 0);
}

#[test]
fn help_wins_over_everything() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["--store", "redis", "--help"],
        &["--bogus", "-h"],
    ] {
        assert_eq!(
            args::parse(args.iter().copied()),
            Ok(Command::Help),
            "{args:?}"
        );
    }
    for option in [
        "--addr",
        "--store",
        "--idle-timeout",
        "--absolute-timeout",
        "--max-sessions",
        "--redis-url",
        "--redis-cluster",
        "--insecure",
        "--help",
    ] {
        assert!(args::USAGE.contains(option), "usage mentions {option}");
    }
}

#[test]
fn help_says_insecure_drops_the_host_prefix() {
    let insecure = args::USAGE
        .split("--insecure")
        .nth(1)
        .and_then(|rest| rest.split("-h, --help").next())
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for words in ["`session`", "`__Host-session`", "sibling subdomain"] {
        assert!(insecure.contains(words), "{words}: {insecure}");
    }
}

#[test]
fn the_redis_store_and_its_target_are_parsed() {
    assert_eq!(
        run(&["--store", "redis"]).store,
        StoreKind::Redis(RedisTarget::Server(args::DEFAULT_REDIS_URL.to_owned())),
        "a local server on the default port unless told otherwise"
    );
    assert_eq!(
        run(&["--store=redis", "--redis-url=redis://10.0.0.5:6380/2"]).store,
        StoreKind::Redis(RedisTarget::Server("redis://10.0.0.5:6380/2".to_owned()))
    );
    assert_eq!(
        run(&[
            "--redis-cluster",
            "redis://127.0.0.1:7000, redis://127.0.0.1:7001",
            "--store",
            "redis"
        ])
        .store,
        StoreKind::Redis(RedisTarget::Cluster(vec![
            "redis://127.0.0.1:7000".to_owned(),
            "redis://127.0.0.1:7001".to_owned()
        ]))
    );
    assert!(error(&["--redis-url", "redis://x/"]).contains("`--store redis` only"));
    assert!(
        error(&["--store", "cookie", "--redis-cluster", "redis://x/"])
            .contains("`--store redis` only")
    );
    assert!(
        error(&["--store", "redis", "--redis-url", "127.0.0.1:6379"]).contains("expected a URL")
    );
    assert!(
        error(&["--store", "redis", "--redis-cluster", "redis://a/,nope"])
            .contains("expected a URL")
    );
    assert!(
        error(&[
            "--store",
            "redis",
            "--redis-url",
            "redis://a/",
            "--redis-cluster",
            "redis://b/"
        ])
        .contains("not both")
    );
    assert!(
        error(&["--store", "redis", "--cookie-mode", "signed"]).contains("`--store cookie` only")
    );
    assert!(error(&["--store", "redis", "--max-sessions", "10"]).contains("`--store memory` only"));
    assert!(
        error(&["--store", "mysql"])
            .contains("expected `memory`, `cookie`, `redis`, `postgres` or `sqlite`")
    );
}

#[test]
fn the_redis_store_connects_before_the_layer_is_built() {
    let options = run(&["--store", "redis"]);
    assert!(
        options.session_layer(test_key()).is_none(),
        "the Redis layer needs a connection first"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Nothing listens on port 1: a clear message naming the URL, no panic.
    let options = run(&["--store", "redis", "--redis-url", "redis://127.0.0.1:1/"]);
    let message = runtime
        .block_on(options.redis_store())
        .unwrap()
        .unwrap_err();
    assert!(message.contains("redis://127.0.0.1:1/"), "{message}");
    assert!(message.contains("redis-server --port 1`"), "{message}");
    assert!(runtime.block_on(run(&[]).redis_store()).is_none());
}

#[test]
fn the_cookie_store_and_its_mode_are_parsed() {
    assert_eq!(
        run(&["--store", "cookie"]).store,
        StoreKind::Cookie(CookieMode::Private),
        "private is the default mode"
    );
    assert_eq!(
        run(&["--store=cookie", "--cookie-mode=signed"]).store,
        StoreKind::Cookie(CookieMode::Signed)
    );
    assert_eq!(
        run(&["--cookie-mode", "private", "--store", "cookie"]).store,
        StoreKind::Cookie(CookieMode::Private)
    );
    assert!(error(&["--cookie-mode", "signed"]).contains("`--store cookie` only"));
    assert!(error(&["--store", "cookie", "--cookie-mode", "open"]).contains("unknown cookie mode"));
    assert!(
        error(&["--store", "cookie", "--max-sessions", "10"]).contains("`--store memory` only")
    );
    for words in [
        "--cookie-mode",
        "SESSION_KEY",
        "openssl rand -hex 32",
        "not survive a restart",
    ] {
        let usage = args::USAGE.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(usage.contains(words), "usage mentions {words}");
    }
}

#[test]
fn the_cookie_key_comes_from_the_environment_as_hex_or_base64() {
    let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let (key, origin) = args::cookie_key(Some(hex)).unwrap();
    assert_eq!((key.len(), origin), (32, KeyOrigin::Environment));
    let base64 = "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=";
    let (key, _) = args::cookie_key(Some(base64)).unwrap();
    assert_eq!(key.len(), 32);
    let (key, origin) = args::cookie_key(None).unwrap();
    assert_eq!((key.len(), origin), (32, KeyOrigin::Generated));
    let err = args::cookie_key(Some("not a key!")).unwrap_err();
    assert!(err.message().contains("SESSION_KEY"), "{err}");
    // A short key parses, and the layer refuses it.
    let (short, _) = args::cookie_key(Some("abcd")).unwrap();
    let options = Options {
        store: StoreKind::Cookie(CookieMode::Private),
        ..Options::default()
    };
    let refused = options.session_layer(short).unwrap().unwrap_err();
    assert!(
        refused.to_string().contains("at least 32 bytes"),
        "{refused}"
    );
}

#[tokio::test]
async fn the_demo_runs_on_the_cookie_store_in_both_modes() {
    for mode in [CookieMode::Private, CookieMode::Signed] {
        let app = cookie_demo(mode);
        let anon = cookie_of(&submit(&app, "/api/counter/incr", None).await);
        let r = post_json(&app, "/api/login", Some(&anon), r#"{"user":"alice"}"#).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let logged_in = cookie_of(&r);
        assert_eq!(
            fetch(&app, "/api/me", Some(&logged_in)).await.body,
            r#"{"user":"alice"}"#
        );
        assert_eq!(
            fetch(&app, "/api/counter", Some(&logged_in)).await.body,
            r#"{"count":1}"#,
            "the data came along"
        );
        let r = post_json(
            &app,
            "/api/cart",
            Some(&logged_in),
            r#"{"sku":"tea","qty":2}"#,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let with_cart = cookie_of(&r);
        let cart = fetch(&app, "/api/cart", Some(&with_cart)).await.body;
        assert!(cart.contains("tea"), "{cart}");
        let r = submit(&app, "/api/counter/atomic-incr", Some(&with_cart)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let counted = cookie_of(&r);
        assert_eq!(
            fetch(&app, "/api/counter", Some(&counted)).await.body,
            r#"{"count":2}"#
        );
        let out = submit(&app, "/api/logout", Some(&counted)).await;
        assert!(out.has_removal(), "{:?}", out.set_cookies);
        // The page and its form token work too.
        let (cookie, token) = open_page(&app).await;
        let r = post_form(&app, "/incr", Some(&cookie), &format!("csrf={token}")).await;
        assert_eq!(r.status, 303, "{}", r.body);
        // Private mode hides the user name; signed mode does not.
        let sealed = raw_id(&logged_in);
        let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sealed)
            .unwrap();
        let visible = raw.windows(5).any(|w| w == b"alice");
        assert_eq!(visible, mode == CookieMode::Signed);
    }
}

#[test]
fn unknown_store_is_a_clear_error() {
    let message = error(&["--store", "mysql"]);
    assert!(message.contains("unknown store `mysql`"), "{message}");
    assert!(message.contains("memory"), "names what works: {message}");
    assert!(error(&["--store", "Memory"]).contains("unknown store"));
}

#[test]
fn bad_values_are_clear_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["--addr", "nowhere"], "invalid `--addr` value `nowhere`"),
        (&["--addr", "127.0.0.1"], "invalid `--addr`"),
        (&["--addr", "127.0.0.1:99999"], "invalid `--addr`"),
        (&["--addr", "localhost:x"], "invalid `--addr`"),
        (
            &["--idle-timeout", "abc"],
            "invalid `--idle-timeout` value `abc`",
        ),
        (&["--idle-timeout", "-5"], "expected whole seconds"),
        (&["--idle-timeout", "1.5"], "expected whole seconds"),
        (&["--idle-timeout", "0"], "at least 1 second"),
        (&["--absolute-timeout", "0"], "at least 1 second"),
        (
            &["--absolute-timeout", "99999999999999999999"],
            "expected whole seconds",
        ),
        (
            &["--absolute-timeout", "34560001"],
            "at most 34560000 seconds",
        ),
        (&["--addr"], "`--addr` needs a value"),
        (&["--addr="], "`--addr` needs a value"),
        (&["--store"], "`--store` needs a value"),
        (
            &["--idle-timeout", "--insecure"],
            "`--idle-timeout` needs a value",
        ),
        (&["--insecure=yes"], "`--insecure` takes no value"),
        (
            &["--max-sessions", "0"],
            "invalid `--max-sessions` value `0`: the store must hold at least 1 session",
        ),
        (
            &["--max-sessions", "many"],
            "invalid `--max-sessions` value `many`: expected a whole number",
        ),
        (&["--max-sessions", "-1"], "expected a whole number"),
        (&["--max-sessions", "1.5"], "expected a whole number"),
        (&["--max-sessions", "1e5"], "expected a whole number"),
        (
            &["--max-sessions", "999999999999999999999999"],
            "expected a whole number",
        ),
        (&["--max-sessions"], "`--max-sessions` needs a value"),
        (
            &["--max-sessions", "10", "--max-sessions=20"],
            "`--max-sessions` is given more than once",
        ),
        (
            &["--addr", "127.0.0.1:1", "--addr", "127.0.0.1:2"],
            "given more than once",
        ),
        (&["--insecure", "--insecure"], "given more than once"),
        (&["--port", "3000"], "unknown option `--port`"),
        (&["-x"], "unknown option `-x`"),
        (&["serve"], "unexpected argument `serve`"),
    ];
    for (args, expected) in cases {
        let message = error(args);
        assert!(message.contains(expected), "{args:?}: {message:?}");
    }
    assert_eq!(
        run(&["--absolute-timeout", "34560000"])
            .absolute_timeout
            .unwrap()
            .as_secs(),
        34_560_000
    );
}

#[cfg(unix)]
#[test]
fn non_utf8_arguments_are_a_clear_error() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt as _;
    let bad = OsString::from_vec(vec![b'-', b'-', 0xff]);
    let err = args::parse([OsString::from("--insecure"), bad]).unwrap_err();
    assert!(err.message().contains("not valid UTF-8"), "{err}");
}

#[test]
fn argument_errors_exit_with_code_2() {
    assert_eq!(args::USAGE_EXIT_CODE, 2);
    let err: ArgError = args::parse(["--store", "mongo"]).unwrap_err();
    assert_eq!(err.to_string(), err.message());
}

// ---------------------------------------------------------------------------
// A real listener.

/// Sends one raw HTTP/1.1 request and reads the whole response (the
/// request asks the server to close the connection). Uses the stream's
/// readiness API: the tokio build here has no `io-util`.
async fn raw_http(addr: SocketAddr, request: &str) -> String {
    use std::io::ErrorKind::WouldBlock;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut unsent = request.as_bytes();
    while !unsent.is_empty() {
        stream.writable().await.unwrap();
        match stream.try_write(unsent) {
            Ok(n) => unsent = &unsent[n..],
            Err(e) if e.kind() == WouldBlock => {}
            Err(e) => panic!("write failed: {e}"),
        }
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        stream.readable().await.unwrap();
        match stream.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == WouldBlock => {}
            Err(e) => panic!("read failed: {e}"),
        }
    }
    String::from_utf8(response).unwrap()
}

fn set_cookie_pair(response: &str) -> String {
    let line = response
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no Set-Cookie in {response}"));
    let value = line.split_once(':').unwrap().1.trim();
    value.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn real_server_round_trip() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = Options {
        secure: false,
        ..Options::default()
    };
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app::app(options.session_layer(test_key()).unwrap().unwrap()),
        )
        .await
    });

    let exchange = async {
        let page = raw_http(
            addr,
            "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains("typed-sessions demo"));
        let page_cookie = set_cookie_pair(&page);
        let token = token_in(&page);

        // A form with the page's token; the server forwards the body
        // without it, with its length corrected.
        let body = format!("csrf={token}");
        let form = raw_http(
            addr,
            &format!(
                "POST /incr HTTP/1.1\r\nHost: localhost\r\nCookie: {page_cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        assert!(form.starts_with("HTTP/1.1 303 See Other\r\n"), "{form}");
        let form = raw_http(
            addr,
            &format!(
                "POST /incr HTTP/1.1\r\nHost: localhost\r\nCookie: {page_cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5\r\nConnection: close\r\n\r\ncsrf="
            ),
        )
        .await;
        assert!(form.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{form}");

        // The API from another origin: refused, no session.
        let evil = raw_http(
            addr,
            "POST /api/counter/incr HTTP/1.1\r\nHost: localhost\r\nOrigin: https://evil.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(evil.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{evil}");
        assert!(!evil.to_ascii_lowercase().contains("set-cookie:"), "{evil}");
        // From its own origin: served.
        let own = raw_http(
            addr,
            &format!(
                "POST /api/counter/incr HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost\r\nCookie: {page_cookie}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert!(own.starts_with("HTTP/1.1 200 OK\r\n"), "{own}");
        assert!(own.ends_with(r#"{"count":2}"#), "{own}");

        let incr = raw_http(
            addr,
            "POST /api/counter/incr HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(incr.starts_with("HTTP/1.1 200 OK\r\n"), "{incr}");
        assert!(incr.ends_with(r#"{"count":1}"#), "{incr}");
        let cookie = set_cookie_pair(&incr);

        let read = raw_http(
            addr,
            &format!(
                "GET /api/counter HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert!(read.starts_with("HTTP/1.1 200 OK\r\n"), "{read}");
        assert!(read.ends_with(r#"{"count":1}"#), "{read}");
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("the round trip finishes in time");
    server.abort();
}

#[test]
fn the_sql_stores_and_their_targets_are_parsed() {
    assert_eq!(
        run(&["--store", "postgres"]).store,
        StoreKind::Postgres(args::DEFAULT_DATABASE_URL.to_owned())
    );
    assert_eq!(
        run(&[
            "--store=postgres",
            "--database-url=postgres://app:pw@db:5432/web"
        ])
        .store,
        StoreKind::Postgres("postgres://app:pw@db:5432/web".to_owned())
    );
    assert_eq!(
        run(&["--store", "sqlite"]).store,
        StoreKind::Sqlite(args::DEFAULT_SQLITE_PATH.into())
    );
    assert_eq!(
        run(&["--sqlite-path", "/tmp/s.db", "--store", "sqlite"]).store,
        StoreKind::Sqlite("/tmp/s.db".into())
    );
    assert!(error(&["--database-url", "postgres://x/"]).contains("`--store postgres` only"));
    assert!(
        error(&["--store", "postgres", "--sqlite-path", "a.db"]).contains("`--store sqlite` only")
    );
    let bad = error(&[
        "--store",
        "postgres",
        "--database-url",
        "mysql://u:secret@h/db",
    ]);
    assert!(bad.contains("expected a URL"), "{bad}");
    assert!(!bad.contains("secret"), "no password in messages: {bad}");
    assert!(error(&["--store", "mongo"]).contains("`postgres` or `sqlite`"));
    assert_eq!(
        args::without_password("postgres://app:pw@db/web"),
        "postgres://app:…@db/web"
    );
    assert_eq!(
        args::without_password("postgres://app@db/web?password=hunter2&sslmode=require"),
        "postgres://app@db/web"
    );
    let odd = error(&[
        "--store",
        "postgres",
        "--database-url",
        "postgresql:app:hunter2@h/db",
    ]);
    assert!(!odd.contains("hunter2"), "{odd}");
}

/// The README's restart demonstration, in process: a session written
/// through the demo on `--store sqlite` reads back after the demo (its
/// layer and pool) is gone and a new one opens the same file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_demo_session_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("typed-sessions-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sessions.db");
    let path_arg = path.to_str().unwrap().to_owned();
    let options = run(&[
        "--store",
        "sqlite",
        "--sqlite-path",
        &path_arg,
        "--insecure",
    ]);
    let first = app::app(options.sql_layer().await.unwrap().unwrap());
    let page = fetch(&first, "/", None).await;
    let cookie = cookie_of(&page);
    let token = page_token(&page);
    let posted = post_form(&first, "/incr", Some(&cookie), &format!("csrf={token}")).await;
    assert!(posted.status.is_redirection(), "{posted:?}");
    drop(first);
    let second = app::app(options.sql_layer().await.unwrap().unwrap());
    let page = fetch(&second, "/", Some(&cookie)).await;
    assert!(
        page.body.contains(r#"<strong id="count">1</strong>"#),
        "{}",
        page.body
    );
    let _ = std::fs::remove_dir_all(&dir);
}
