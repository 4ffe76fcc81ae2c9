//! Arbitrary bytes as the `Cookie` header of a request through the real
//! layer: the request must never panic and must always answer 200.
//!
//! The input is taken as the header value, except that every occurrence of
//! `{id}` is replaced by the cookie value of a session that really exists in
//! the store (made once at start-up), so the fuzzer also reaches the path
//! that loads and decodes a stored session. A value `http` refuses as a
//! header value is skipped: no client can send it.

#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;
use typed_sessions::{Session, SessionData, SessionLayer, stores::MemoryStore};

#[derive(SessionData, Default)]
#[session(namespace = "counter")]
struct Counter {
    count: u64,
    #[session(default)]
    label: Option<String>,
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: Router,
    /// The cookie value (the id) of a session stored at start-up.
    known_id: Vec<u8>,
}

/// The placeholder an input uses for the id of the stored session.
const ID_PLACEHOLDER: &[u8] = b"{id}";

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime");
        let app = Router::new()
            // Read-only: the store never grows while fuzzing.
            .route(
                "/",
                get(|c: Session<Counter>| async move { format!("{} {:?}", c.count, c.label) }),
            )
            // Used once, to put a session into the store.
            .route(
                "/seed",
                get(|mut c: Session<Counter>| async move {
                    c.count = 7;
                    c.label = Some("seed".into());
                }),
            )
            .layer(SessionLayer::new(MemoryStore::new()));
        let seed = http::Request::builder()
            .uri("/seed")
            .body(Body::empty())
            .expect("a valid request");
        let response = runtime
            .block_on(app.clone().oneshot(seed))
            .expect("the router is infallible");
        assert_eq!(response.status(), http::StatusCode::OK);
        let set_cookie = response
            .headers()
            .get(http::header::SET_COOKIE)
            .expect("a session was created")
            .as_bytes();
        let pair = set_cookie.split(|&b| b == b';').next().unwrap_or_default();
        let known_id = pair
            .strip_prefix(b"session=")
            .expect("the default cookie name")
            .to_vec();
        Fixture {
            runtime,
            app,
            known_id,
        }
    })
}

fn substitute(data: &[u8], id: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while !rest.is_empty() {
        if rest.starts_with(ID_PLACEHOLDER) {
            out.extend_from_slice(id);
            rest = &rest[ID_PLACEHOLDER.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let cookie = substitute(data, &fixture.known_id);
    // Bytes a client cannot send as a header value never reach a server.
    let Ok(value) = http::HeaderValue::from_bytes(&cookie) else {
        return;
    };
    let request = http::Request::builder()
        .uri("/")
        .header(http::header::COOKIE, value)
        .body(Body::empty())
        .expect("a valid request");
    let response = fixture
        .runtime
        .block_on(fixture.app.clone().oneshot(request))
        .expect("the router is infallible");
    assert_eq!(
        response.status(),
        http::StatusCode::OK,
        "cookie header {:?} got {:?}",
        String::from_utf8_lossy(&cookie),
        response
    );
});
