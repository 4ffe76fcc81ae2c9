//! `RUST_LOG=typed_sessions=debug` shows what the session layer does: one
//! event per store operation with its latency and the hashed id, under the
//! `typed_sessions` target, with a plain `fmt` subscriber (no span-close
//! formatting). Alone in its test binary, as `tracing` caches per call site
//! whether a line is wanted.

use axum::Router;
use axum::routing::{get, post};
use tracing_subscriber::EnvFilter;
use typed_sessions::stores::MemoryStore;
use typed_sessions::{Session, SessionLayer};
use typed_sessions_test_support::schemas::Counter;
use typed_sessions_test_support::{Captured, fetch, session_value, submit};

#[tokio::test]
async fn rust_log_typed_sessions_debug_shows_each_store_operation() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_env_filter(EnvFilter::new("typed_sessions=debug"))
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .route(
            "/count",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .layer(
            SessionLayer::builder(MemoryStore::new())
                .secure(false)
                .build()
                .unwrap(),
        );
    let cookie = submit(&app, "/incr", None).await.cookie();
    submit(&app, "/incr", Some(&cookie)).await;
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "2");
    fetch(&app, "/count", Some("session=not-an-id")).await;

    let text = captured.text();
    for line in ["session save", "session load"] {
        let found = text
            .lines()
            .find(|l| l.contains(line) && l.contains("typed_sessions"))
            .unwrap_or_else(|| panic!("no `{line}` event in:\n{text}"));
        assert!(found.contains("DEBUG"), "{found}");
        assert!(found.contains("latency_us="), "{found}");
        let hash = found
            .split("session=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_default();
        assert_eq!(hash.len(), 16, "a 16-hex hashed id: {found}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("session cookie is malformed")),
        "a warning for a bad cookie:\n{text}"
    );
    assert!(
        !text.contains(session_value(&cookie)),
        "the raw id never appears"
    );
    assert!(
        !text.contains("session_runtime"),
        "one target, `typed_sessions`:\n{text}"
    );
}
