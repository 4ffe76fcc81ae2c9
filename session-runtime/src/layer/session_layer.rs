//! [`SessionLayer`]: the `tower::Layer` users add to their router.

use std::sync::Arc;

use tower_layer::Layer;

use super::service::SessionService;
use crate::settings::Settings;

/// Adds typed sessions to every request of the service it wraps.
///
/// Nothing happens for a request whose handler does not extract a session:
/// no store I/O, no cookie. See the crate docs for the whole lifecycle.
///
/// ```
/// use axum::{Router, routing::get};
/// use typed_sessions::{SessionLayer, stores::MemoryStore};
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(SessionLayer::new(MemoryStore::new()));
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    pub(super) settings: Arc<Settings>,
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("cookie", self.settings.cookie.config())
            .field("expiry", &self.settings.expiry)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, Arc::clone(&self.settings))
    }
}
