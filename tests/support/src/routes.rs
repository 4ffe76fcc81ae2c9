//! The counter routes many tests serve, over the shared `Counter` schema:
//! one definition instead of one per test file.

use axum::Router;
use axum::routing::{get, post};
use typed_sessions::{Session, SessionHandle};

use crate::Gate;
use crate::schemas::{Counter, Profile};

/// `POST /incr` (count + 1, answers the new count), `GET /count`,
/// `POST /atomic` (the same through `Session::update`, answering its
/// error's response when it fails) and `POST /logout` (`destroy()`).
/// Add the layer (and more routes) to it.
pub fn counter_routes() -> Router {
    Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move {
                c.count += 1;
                c.count.to_string()
            }),
        )
        .route(
            "/count",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .route(
            "/atomic",
            post(|mut c: Session<Counter>| async move {
                c.update(|c| {
                    c.count += 1;
                    c.count
                })
                .await
                .map(|n| n.to_string())
            }),
        )
        .route(
            "/logout",
            post(|h: SessionHandle| async move {
                h.destroy();
                "bye"
            }),
        )
}

/// [`counter_routes`] plus `/held-incr`, `/held-atomic` and
/// `/held-logout` (answering the count it loaded): the same, each waiting
/// at `gate` after the session is loaded and before it changes anything.
pub fn held_counter_routes(gate: &Gate) -> Router {
    let (g1, g2, g3) = (gate.clone(), gate.clone(), gate.clone());
    counter_routes()
        .route(
            "/held-incr",
            post(move |mut c: Session<Counter>| async move {
                g1.hold().await;
                c.count += 1;
                c.count.to_string()
            }),
        )
        .route(
            "/held-atomic",
            post(move |mut c: Session<Counter>| async move {
                g2.hold().await;
                c.update(|c| {
                    c.count += 1;
                    c.count
                })
                .await
                .map(|n| n.to_string())
            }),
        )
        .route(
            "/held-logout",
            post(move |h: SessionHandle, c: Session<Counter>| async move {
                let seen = c.count;
                g3.hold().await;
                h.destroy();
                seen.to_string()
            }),
        )
}

/// `POST /login` (sets all three `Profile` fields), `POST /visit` (one
/// field) and `GET /profile` (`"<user> <theme> <visits>"`). Add the layer.
pub fn profile_routes() -> Router {
    Router::new()
        .route(
            "/login",
            post(|mut p: Session<Profile>| async move {
                "alice".clone_into(&mut p.user_name);
                "dark".clone_into(&mut p.theme);
                p.visits = 1;
            }),
        )
        .route(
            "/visit",
            post(|mut p: Session<Profile>| async move { p.visits += 1 }),
        )
        .route(
            "/profile",
            get(|p: Session<Profile>| async move {
                format!("{} {} {}", p.user_name, p.theme, p.visits)
            }),
        )
}
