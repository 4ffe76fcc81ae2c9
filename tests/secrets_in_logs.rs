//! Everything the library logs at TRACE level during a whole flow (sign
//! in, which rotates the id; a cart; reads; a tampered cookie; sign out)
//! on every store (PostgreSQL's and SQLite's statement logs included),
//! searched for secrets: no session id, no cookie value,
//! no key material, no `sensitive` field value may appear. Alone in its
//! test binary: `tracing` caches whether a log line is wanted per call
//! site, process-wide, so a test without a subscriber could hide lines
//! from this one.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use base64::Engine as _;
use typed_sessions::stores::{CookieKey, CookieStore, MemoryStore, RedisStore, SessionBackend};
use typed_sessions::{Session, SessionData, SessionHandle, SessionLayer};
use typed_sessions_test_support::redis_server::RedisServer;
use typed_sessions_test_support::sql::{postgres_available, postgres_store_with, sqlite_store};
use typed_sessions_test_support::{Reply, capture_logs, fetch, session_value, submit};

/// The cookie store's key: known here, so that the log can be searched
/// for it in every form a careless log line could print.
const KEY_HEX: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";
const TOKEN: &str = "tok-7hQ2-Zk9x-SECRET";
const PASSWORD: &str = "hunter2-correct-horse";

#[derive(SessionData, Default)]
#[session(namespace = "auth")]
struct Auth {
    user: String,
    #[session(sensitive, rotate_id)]
    token: String,
}

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct Cart {
    items: Vec<String>,
}

fn app(backend: impl SessionBackend) -> Router {
    Router::new()
        .route(
            "/login",
            post(|mut a: Session<Auth>| async move {
                a.user = "alice".into();
                a.token = TOKEN.into();
                // A password seen by the handler: never stored, never logged.
                let _ = PASSWORD;
            }),
        )
        .route(
            "/cart",
            post(|mut c: Session<Cart>| async move { c.items.push("tea".into()) }),
        )
        .route(
            "/me",
            get(|a: Session<Auth>, c: Session<Cart>| async move {
                format!("{} {}", a.user, c.items.len())
            }),
        )
        .route(
            "/logout",
            post(|h: SessionHandle| async move { h.destroy() }),
        )
        .layer(
            SessionLayer::builder(backend)
                .secure(false)
                .build()
                .unwrap(),
        )
}

/// Runs the flow and returns every cookie value the client saw.
async fn flow(app: &Router) -> Vec<String> {
    let mut seen = Vec::new();
    let mut keep = |reply: &Reply| {
        for set_cookie in &reply.set_cookies {
            let pair = set_cookie.split(';').next().unwrap_or_default();
            let value = session_value(pair);
            if !value.is_empty() {
                seen.push(value.to_owned());
            }
        }
    };
    let first = submit(app, "/cart", None).await;
    keep(&first);
    let cookie = first.cookie();
    let login = submit(app, "/login", Some(&cookie)).await;
    keep(&login);
    let cookie = login.cookie();
    assert_eq!(fetch(app, "/me", Some(&cookie)).await.body, "alice 1");
    keep(&submit(app, "/cart", Some(&cookie)).await);
    // A tampered cookie: its value must not be logged either.
    let mut tampered = cookie.clone();
    tampered.pop();
    tampered.push(if cookie.ends_with('A') { 'B' } else { 'A' });
    keep(&fetch(app, "/me", Some(&tampered)).await);
    keep(&submit(app, "/logout", Some(&cookie)).await);
    seen.push(session_value(&tampered).to_owned());
    seen
}

fn assert_clean(store: &str, log: &str, cookie_values: &[String]) {
    assert!(
        log.contains("typed_sessions"),
        "{store}: the capture saw the library's events:\n{log}"
    );
    let key = hex_bytes(KEY_HEX);
    let standard = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut secrets = vec![
        KEY_HEX.to_owned(),
        KEY_HEX.to_uppercase(),
        standard.encode(&key),
        url.encode(&key),
        format!("{key:?}"),
        TOKEN.to_owned(),
        PASSWORD.to_owned(),
    ];
    for value in cookie_values {
        secrets.push(value.clone());
        // The raw id inside a server-side cookie, in hex.
        if let Ok(raw) = url.decode(value) {
            secrets.push(raw.iter().fold(String::new(), |mut hex, b| {
                use std::fmt::Write as _;
                let _ = write!(hex, "{b:02x}");
                hex
            }));
        }
    }
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "{store}: `{secret}` reached the log:\n{log}"
        );
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn no_secret_reaches_a_trace_log_on_any_store() {
    let (captured, _guard) = capture_logs(tracing::Level::TRACE);
    let mut checked = Vec::new();

    let seen = flow(&app(MemoryStore::new())).await;
    assert_clean("MemoryStore", &captured.text(), &seen);
    checked.push("MemoryStore");

    for (name, store) in [
        (
            "CookieStore::private",
            CookieStore::private(CookieKey::from_hex(KEY_HEX).unwrap()),
        ),
        (
            "CookieStore::signed",
            CookieStore::signed(CookieKey::from_hex(KEY_HEX).unwrap()),
        ),
    ] {
        let seen = flow(&app(store)).await;
        assert_clean(name, &captured.text(), &seen);
        checked.push(name);
    }

    if let Some(server) = RedisServer::start() {
        let store = RedisStore::open(&server.url()).await.unwrap();
        let seen = flow(&app(store)).await;
        // The store's own view: the raw ids never reached Redis either.
        let dump = server.command(&["KEYS", "*"]);
        for value in &seen {
            assert!(!dump.contains(value.as_str()));
        }
        assert_clean("RedisStore", &captured.text(), &seen);
        checked.push("RedisStore");
        let _server = Arc::new(server);
    }

    if postgres_available() {
        // (What the store keeps is checked by the lifecycle suite's
        // `store_sees_only_the_sha256_of_the_id`; the flow ends deleted.)
        let (store, _schema) = postgres_store_with(None, 2, |builder| builder);
        let seen = flow(&app(store.clone())).await;
        assert_clean("PostgresStore", &captured.text(), &seen);
        checked.push("PostgresStore");
    }

    let store = sqlite_store(None);
    let seen = flow(&app(store.clone())).await;
    assert_clean("SqliteStore", &captured.text(), &seen);
    checked.push("SqliteStore");
    eprintln!("checked: {checked:?}");
}
