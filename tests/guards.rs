//! `SessionRef<T>`: a read-only copy that coexists with `Session<T>`, so
//! middleware guards and the handlers behind them can both read a
//! namespace (the runnable example is `examples/guard.rs`).

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use typed_sessions::stores::MemoryStore;
use typed_sessions::{Session, SessionLayer, SessionRef};
use typed_sessions_test_support::schemas::Counter;
use typed_sessions_test_support::{capture_logs, fetch, submit};

fn layer() -> SessionLayer {
    SessionLayer::builder(MemoryStore::new())
        .secure(false)
        .build()
        .unwrap()
}

/// Within one handler: a copy taken after a `Session` was dropped shows
/// its change; one taken while a `Session` is held shows the state before
/// the held value's changes; none of them is written back.
#[tokio::test]
async fn a_copy_shows_what_the_request_has_handed_back() {
    let app = Router::new()
        .route(
            "/seed",
            post(|mut c: Session<Counter>| async move { c.count = 5 }),
        )
        .route(
            "/steps",
            post(|parts: axum::http::request::Parts| async move {
                let mut parts = parts;
                let before: SessionRef<Counter> = extract(&mut parts).await;
                let mut held: Session<Counter> = extract(&mut parts).await;
                held.count += 10;
                let during: SessionRef<Counter> = extract(&mut parts).await;
                drop(held);
                let after: SessionRef<Counter> = extract(&mut parts).await;
                format!("{} {} {}", before.count, during.count, after.count)
            }),
        )
        .route(
            "/count",
            get(|c: SessionRef<Counter>| async move { c.count.to_string() }),
        )
        .layer(layer());
    let cookie = submit(&app, "/seed", None).await.cookie();
    let steps = submit(&app, "/steps", Some(&cookie)).await;
    assert_eq!(steps.body, "5 5 15");
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "15");
}

async fn extract<T: axum::extract::FromRequestParts<()>>(
    parts: &mut axum::http::request::Parts,
) -> T
where
    T::Rejection: std::fmt::Debug,
{
    T::from_request_parts(parts, &()).await.unwrap()
}

/// A guard that holds `Session<T>` across `next.run` makes the handler's
/// `Session<T>` fail; the log says what to do instead.
#[tokio::test]
async fn holding_a_session_across_next_run_names_the_fix() {
    async fn holding_guard(c: Session<Counter>, request: Request, next: Next) -> Response {
        let response = next.run(request).await;
        drop(c);
        response
    }
    let app = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .route_layer(middleware::from_fn(holding_guard))
        .layer(layer());
    let (logs, _guard) = capture_logs(tracing::Level::ERROR);
    let reply = submit(&app, "/incr", None).await;
    assert_eq!(reply.status, 500);
    let text = logs.text();
    assert!(text.contains("SessionRef<"), "{text}");
    assert!(text.contains("before `next.run`"), "{text}");
}

/// The same guard with `SessionRef<T>` lets the handler write.
#[tokio::test]
async fn a_guard_with_a_copy_lets_the_handler_write() {
    async fn reading_guard(c: SessionRef<Counter>, request: Request, next: Next) -> Response {
        let seen = c.count;
        let mut response = next.run(request).await;
        response
            .headers_mut()
            .insert("x-seen-by-guard", seen.to_string().parse().unwrap());
        response
    }
    let app = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move {
                c.count += 1;
                c.count.to_string()
            }),
        )
        .route_layer(middleware::from_fn(reading_guard))
        .layer(layer());
    let first = submit(&app, "/incr", None).await;
    assert_eq!((first.status.as_u16(), first.body.as_str()), (200, "1"));
    let cookie = first.cookie();
    let second = submit(&app, "/incr", Some(&cookie)).await;
    assert_eq!(second.body, "2");
    assert_eq!(second.headers["x-seen-by-guard"], "1");
}

/// A guard's `update` that sets a namespace back to its `Default` (a
/// revoked login) is what the handler behind it sees, while another
/// namespace keeps the session alive.
#[tokio::test]
async fn a_reset_by_update_in_a_guard_is_what_the_handler_sees() {
    use typed_sessions_test_support::schemas::Other;
    async fn resetting_guard(mut c: Session<Counter>, request: Request, next: Next) -> Response {
        if c.count >= 3 {
            c.update(|c| *c = Counter::default()).await.unwrap();
        }
        drop(c);
        next.run(request).await
    }
    let app = Router::new()
        .route(
            "/seed",
            post(
                |mut c: Session<Counter>, mut o: Session<Other>| async move {
                    c.count = 3;
                    o.n = 1;
                },
            ),
        )
        .route(
            "/read",
            get(|c: SessionRef<Counter>| async move { c.count.to_string() }),
        )
        .route(
            "/bump",
            post(|mut c: Session<Counter>| async move {
                c.count += 1;
                c.count.to_string()
            }),
        )
        .route_layer(middleware::from_fn(resetting_guard))
        .layer(layer());
    let cookie = submit(&app, "/seed", None).await.cookie();
    assert_eq!(fetch(&app, "/read", Some(&cookie)).await.body, "0");
    // Seed again, then a handler that writes after the guard's reset.
    let cookie = submit(&app, "/seed", Some(&cookie)).await.cookie();
    assert_eq!(submit(&app, "/bump", Some(&cookie)).await.body, "1");
    assert_eq!(fetch(&app, "/read", Some(&cookie)).await.body, "1");
}
