//! The demo example (`examples/demo`): every route through `oneshot`, the
//! command line, and one round trip through a real listener.

mod common;

#[path = "../examples/demo/app.rs"]
pub mod app;
#[path = "../examples/demo/args.rs"]
pub mod args;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use common::{Reply, fetch, has_flag, is_removal, max_age, send, submit};
use serde_json::{Value, json};
use typed_sessions::SessionLayer;
use typed_sessions::stores::MemoryStore;

use args::{ArgError, Command, Options, StoreKind};

// ---------------------------------------------------------------------------
// Helpers.

/// The demo with the default layer over a fresh `MemoryStore`.
fn demo() -> Router {
    app::app(SessionLayer::new(MemoryStore::new()))
}

/// The demo and its store, to look at what is kept.
fn demo_with_store() -> (Router, MemoryStore) {
    let store = MemoryStore::new();
    (app::app(SessionLayer::new(store.clone())), store)
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

/// A request with any body and content type.
async fn raw(
    app: &Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Reply {
    let mut request = http::Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        request = request.header(http::header::COOKIE, cookie);
    }
    if let Some(content_type) = content_type {
        request = request.header(http::header::CONTENT_TYPE, content_type);
    }
    common::reply(app, request.body(Body::from(body.to_vec())).unwrap()).await
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

/// The `name=value` of the cookie a reply set.
fn cookie_of(reply: &Reply) -> String {
    reply.cookie()
}

/// The raw session id inside a `session=ID` pair.
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
    let app = app::app(options.session_layer().unwrap());
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
}

// ---------------------------------------------------------------------------
// HTML page and form routes.

#[tokio::test]
async fn page_renders_defaults_and_sets_no_cookie() {
    let app = demo();
    let r = fetch(&app, "/", None).await;
    assert_eq!(r.status, 200);
    assert!(content_type(&r).starts_with("text/html"));
    assert_eq!(
        r.headers.get(http::header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    assert!(
        r.set_cookies.is_empty(),
        "rendering the page stores nothing"
    );
    assert!(
        r.body.contains(r#"<strong id="count">0</strong>"#),
        "{}",
        r.body
    );
    assert!(r.body.contains("Not signed in"));
    assert!(r.body.contains("The cart is empty"));
    assert!(r.body.contains("No session is stored yet"));
    for action in ["/incr", "/atomic-incr", "/login", "/cart", "/cart/clear"] {
        assert!(
            r.body
                .contains(&format!(r#"method="post" action="{action}""#)),
            "form for {action}"
        );
    }
    assert!(!r.body.contains("<script"), "no JavaScript needed");
}

#[tokio::test]
async fn form_routes_redirect_home_and_the_page_shows_the_state() {
    let app = demo();
    let r = post_form(&app, "/incr", None, "").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.headers.get(http::header::LOCATION).unwrap(), "/");
    let mut cookie = cookie_of(&r);

    let r = post_form(&app, "/atomic-incr", Some(&cookie), "").await;
    assert_eq!(r.status, 303);
    let r = post_form(&app, "/login", Some(&cookie), "user=alice").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.headers.get(http::header::LOCATION).unwrap(), "/");
    let rotated = cookie_of(&r);
    assert_ne!(rotated, cookie, "the form login rotates the id too");
    cookie = rotated;
    let r = post_form(&app, "/cart", Some(&cookie), "sku=a1&qty=2").await;
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

    let r = post_form(&app, "/cart/clear", Some(&cookie), "").await;
    assert_eq!(r.status, 303);
    assert!(
        fetch(&app, "/", Some(&cookie))
            .await
            .body
            .contains("The cart is empty")
    );

    let r = post_form(&app, "/logout", Some(&cookie), "").await;
    assert_eq!(r.status, 303);
    assert!(r.has_removal());
    let page = fetch(&app, "/", Some(&cookie)).await;
    assert!(page.body.contains("Not signed in"));
    assert!(page.body.contains(r#"<strong id="count">0</strong>"#));
}

#[tokio::test]
async fn page_escapes_user_provided_strings() {
    let app = demo();
    let r = post_form(
        &app,
        "/login",
        None,
        "user=%3Cscript%3Ealert(%22x%22)%3C%2Fscript%3E%26%27",
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
        let r = post_form(&app, uri, None, body).await;
        assert_eq!(r.status, status, "{uri} {body}: {}", r.body);
        assert!(content_type(&r).starts_with("text/html"), "{uri} {body}");
        assert!(r.body.contains("Invalid input"), "{uri} {body}");
        assert!(!r.body.contains("<b>"), "messages are escaped");
        assert!(r.set_cookies.is_empty(), "{uri} {body}");
    }
    let r = raw(
        &app,
        "POST",
        "/login",
        None,
        Some("application/json"),
        br#"{"user":"a"}"#,
    )
    .await;
    assert!(r.status.is_client_error(), "{}", r.status);
}

// ---------------------------------------------------------------------------
// Layer options from the command line.

#[tokio::test]
async fn cookie_is_secure_by_default_and_insecure_on_request() {
    let secure = app::app(Options::default().session_layer().unwrap());
    let r = submit(&secure, "/api/counter/incr", None).await;
    let set = r.set_cookie().unwrap();
    assert!(has_flag(set, "Secure"), "{set}");
    assert!(has_flag(set, "HttpOnly"), "{set}");
    assert_eq!(max_age(set), None, "no timeout: a browser-session cookie");

    let Command::Run(options) = args::parse(["--insecure"]).unwrap() else {
        panic!("expected Run");
    };
    let insecure = app::app(options.session_layer().unwrap());
    let r = submit(&insecure, "/api/counter/incr", None).await;
    let set = r.set_cookie().unwrap();
    assert!(!has_flag(set, "Secure"), "{set}");
    assert!(has_flag(set, "HttpOnly"), "{set}");
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
        }
    );
    let same = run(&[
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
        "--insecure",
        "--help",
    ] {
        assert!(args::USAGE.contains(option), "usage mentions {option}");
    }
}

#[test]
fn stores_that_come_later_are_a_clear_error() {
    for store in ["cookie", "redis"] {
        let message = error(&["--store", store]);
        assert!(
            message.contains(&format!("store `{store}` is not available yet")),
            "{message}"
        );
    }
}

#[test]
fn unknown_store_is_a_clear_error() {
    let message = error(&["--store", "postgres"]);
    assert!(message.contains("unknown store `postgres`"), "{message}");
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
    let err: ArgError = args::parse(["--store", "cookie"]).unwrap_err();
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
        axum::serve(listener, app::app(options.session_layer().unwrap())).await
    });

    let exchange = async {
        let page = raw_http(
            addr,
            "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains("typed-sessions demo"));

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
