//! Bad input gets a fresh session, never a panic or a 5xx: arbitrary Cookie
//! headers through the real layer (property test; `fuzz/` has the fuzz target).

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use proptest::prelude::*;
use tower::ServiceExt as _;
use typed_sessions::{Session, SessionLayer, stores::MemoryStore};
use typed_sessions_test_support::schemas::Counter;

fn app() -> Router {
    Router::new()
        .route(
            "/",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .layer(SessionLayer::new(MemoryStore::new()))
}

async fn status_for(app: &Router, cookie: &[u8]) -> Option<http::StatusCode> {
    // Bytes a client cannot send as a header value are refused by `http`
    // before they reach any server: nothing to test there.
    let value = http::HeaderValue::from_bytes(cookie).ok()?;
    let request = http::Request::builder()
        .uri("/")
        .header(http::header::COOKIE, value)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    Some(response.status())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_cookie_bytes_never_fail_the_request(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let app = app();
        if let Some(status) = runtime().block_on(status_for(&app, &bytes)) {
            prop_assert_eq!(status, http::StatusCode::OK);
        }
    }

    #[test]
    fn session_cookie_with_arbitrary_value_never_fails_the_request(value in "[ -~]{0,64}") {
        let app = app();
        let cookie = format!("other=1; session={value}; session=x");
        if let Some(status) = runtime().block_on(status_for(&app, cookie.as_bytes())) {
            prop_assert_eq!(status, http::StatusCode::OK);
        }
    }
}

#[tokio::test]
async fn oversized_and_repeated_cookies_start_fresh() {
    let app = app();
    let huge = format!("session={}", "A".repeat(64 * 1024));
    assert_eq!(
        status_for(&app, huge.as_bytes()).await,
        Some(http::StatusCode::OK)
    );
    let many = (0..500)
        .map(|i| format!("session=v{i}"))
        .collect::<Vec<_>>()
        .join("; ");
    assert_eq!(
        status_for(&app, many.as_bytes()).await,
        Some(http::StatusCode::OK)
    );
    assert_eq!(
        status_for(&app, b"session=\xff\xfe\xfd").await,
        Some(http::StatusCode::OK)
    );
}
