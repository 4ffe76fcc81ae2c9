//! What reaches the log when stored data does not decode. Alone in its
//! test binary: `tracing` caches whether a log line is wanted per call
//! site, process-wide, so another test reaching the same line without a
//! subscriber could hide it from this one.

use typed_sessions_test_support as common;

use axum::Router;
use axum::routing::{get, post};
use common::{fetch, submit};
use typed_sessions::stores::MemoryStore;
use typed_sessions::{DecodeFailurePolicy, Session, SessionData, SessionLayer};

#[derive(SessionData, Default)]
#[session(namespace = "auth")]
struct AuthOld {
    #[session(sensitive)]
    token: String,
}

#[derive(SessionData, Default)]
#[session(namespace = "auth")]
struct AuthNew {
    #[session(sensitive)]
    token: u64,
}

#[tokio::test]
async fn sensitive_value_never_reaches_the_log_when_it_does_not_decode() {
    let (captured, _guard) = common::capture_logs(tracing::Level::INFO);
    let store = MemoryStore::new();
    let old = Router::new()
        .route(
            "/",
            post(|mut a: Session<AuthOld>| async move { a.token = "s3cr3t-T0KEN".into() }),
        )
        .layer(SessionLayer::new(store.clone()));
    let new = Router::new()
        .route(
            "/",
            get(|a: Session<AuthNew>| async move { a.token.to_string() }),
        )
        .layer(
            SessionLayer::builder(store)
                .on_decode_failure(DecodeFailurePolicy::Reset)
                .build()
                .unwrap(),
        );
    let cookie = submit(&old, "/", None).await.cookie();
    assert_eq!(fetch(&new, "/", Some(&cookie)).await.body, "0");
    let log = captured.text();
    assert!(
        log.contains("token"),
        "the reset is logged with the field name:\n{log}"
    );
    assert!(
        !log.contains("s3cr3t-T0KEN"),
        "sensitive value leaked into the log:\n{log}"
    );
}
