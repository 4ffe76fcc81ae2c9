//! Auth guards in middleware: a `from_fn` middleware reads the session to
//! check the login, and the handlers behind it extract the same namespace.
//!
//! ```sh
//! cargo run --example guard          # http://127.0.0.1:3002
//! curl -c jar -b jar -X POST localhost:3002/login -d ann
//! curl -c jar -b jar localhost:3002/me            # ann (past the guard)
//! curl -c jar -b jar -X POST localhost:3002/visit # 1, 2, … (the handler writes)
//! curl localhost:3002/me                          # 401 without the cookie
//! ```
//!
//! The guard takes `SessionRef<Auth>`: a read-only copy that takes nothing
//! out of the request, so the handler's own `Session<Auth>` works. A guard
//! that writes takes `Session<Auth>` and drops it before calling the next
//! service (`stamp_last_seen` below); the session is loaded once per
//! request either way, and written back once.

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use typed_sessions::stores::MemoryStore;
use typed_sessions::{Session, SessionData, SessionLayer, SessionRef};

/// Who is logged in, and what the guard and the handlers record.
#[derive(SessionData, Default)]
#[session(namespace = "auth")]
pub struct Auth {
    #[session(rotate_id)]
    user: Option<String>,
    /// Requests that passed the guard (written by the guard).
    guarded: u64,
    /// Visits (written by a handler behind the guard).
    visits: u64,
}

/// Refuses requests without a login; reads only.
async fn require_login(
    auth: SessionRef<Auth>,
    request: Request,
    next: Next,
) -> Result<Response, StatusCode> {
    if auth.user.is_none() {
        return Err(StatusCode::UNAUTHORIZED);
    }
    Ok(next.run(request).await)
}

/// A guard that writes: it drops its `Session` before the next service,
/// so the handler can extract the namespace and sees the change.
async fn stamp_last_seen(mut auth: Session<Auth>, request: Request, next: Next) -> Response {
    if auth.user.is_some() {
        auth.guarded += 1;
    }
    drop(auth);
    next.run(request).await
}

async fn login(mut auth: Session<Auth>, user: String) -> StatusCode {
    auth.user = Some(user.trim().to_owned());
    StatusCode::NO_CONTENT
}

async fn me(auth: Session<Auth>) -> String {
    format!(
        "{} (guarded {} times)",
        auth.user.as_deref().unwrap_or_default(),
        auth.guarded
    )
}

async fn visit(mut auth: Session<Auth>) -> String {
    auth.visits += 1;
    auth.visits.to_string()
}

/// The app: `/login` is open; `/me` and `/visit` sit behind both guards.
pub fn app(layer: SessionLayer) -> Router {
    let guarded = Router::new()
        .route("/me", get(me))
        .route("/visit", post(visit))
        // Layers run outside in: the login check first, then the stamp.
        .route_layer(middleware::from_fn(stamp_last_seen))
        .route_layer(middleware::from_fn(require_login));
    Router::new()
        .route("/login", post(login))
        .merge(guarded)
        .layer(layer)
}

#[tokio::main]
async fn main() {
    // `secure(false)`: plain http on localhost for this example; keep the
    // default (`Secure`) behind https.
    let layer = SessionLayer::builder(MemoryStore::new())
        .secure(false)
        .build()
        .expect("a valid configuration");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3002")
        .await
        .expect("port 3002 is free");
    println!("guard example on http://127.0.0.1:3002 (Ctrl-C to stop)");
    axum::serve(listener, app(layer))
        .await
        .expect("server runs");
}

#[cfg(test)]
mod tests {
    use typed_sessions_test_support::{CountingStore, ManualClock, fetch, send, submit};

    use super::*;

    fn test_app() -> (Router, CountingStore) {
        let store = CountingStore::new(ManualClock::starting_now());
        let layer = SessionLayer::builder(store.clone())
            .secure(false)
            .build()
            .unwrap();
        (app(layer), store)
    }

    #[tokio::test]
    async fn the_guard_refuses_anonymous_requests() {
        let (app, store) = test_app();
        assert_eq!(fetch(&app, "/me", None).await.status, 401);
        assert_eq!(submit(&app, "/visit", None).await.status, 401);
        assert_eq!(store.counts.saves(), 0);
    }

    #[tokio::test]
    async fn handlers_behind_the_guards_extract_the_same_namespace() {
        let (app, store) = test_app();
        let login = send(&app, "POST", "/login", None, Some("ann")).await;
        assert_eq!(login.status, 204);
        let cookie = login.cookie();
        let loads = store.counts.loads();
        let me = fetch(&app, "/me", Some(&cookie)).await;
        assert_eq!(me.status, 200, "{}", me.body);
        assert_eq!(
            me.body, "ann (guarded 1 times)",
            "the handler sees the guard's write"
        );
        assert_eq!(
            store.counts.loads() - loads,
            1,
            "one load for guard and handler"
        );
        let saves = store.counts.saves();
        let visit = submit(&app, "/visit", Some(&cookie)).await;
        assert_eq!((visit.status.as_u16(), visit.body.as_str()), (200, "1"));
        assert_eq!(store.counts.saves() - saves, 1, "one write-back for both");
        // Both writes (the guard's stamp and the handler's visit) were kept.
        assert_eq!(
            fetch(&app, "/me", Some(&cookie)).await.body,
            "ann (guarded 3 times)"
        );
        let again = submit(&app, "/visit", Some(&cookie)).await;
        assert_eq!(again.body, "2");
    }
}
