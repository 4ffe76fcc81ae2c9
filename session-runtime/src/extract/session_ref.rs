//! `SessionRef<T>`: a read-only copy of one namespace, for guards.

use std::fmt;
use std::ops::Deref;

use axum_core::extract::FromRequestParts;
use http::request::Parts;

use crate::data::SessionData;
use crate::error::SessionRejection;
use crate::session::SessionContext;

/// A read-only copy of one namespace of the request's session, as the
/// request sees it when extracted.
///
/// Unlike [`Session<T>`](crate::Session), it takes nothing out of the
/// request: any number of `SessionRef<T>` and one `Session<T>` can coexist.
/// That makes it the extractor for middleware guards, which check the
/// session and then call the handler, which may extract `Session<T>` for
/// the same `T`. The session is loaded once per request either way, and
/// nothing a `SessionRef` holds is ever written back.
///
/// ```
/// use axum::{Router, extract::Request, http::StatusCode, middleware::{self, Next},
///            response::Response, routing::get};
/// use typed_sessions::{Session, SessionData, SessionLayer, SessionRef, stores::MemoryStore};
///
/// #[derive(SessionData, Default)]
/// #[session(namespace = "auth")]
/// struct Auth { user: Option<String> }
///
/// async fn require_login(auth: SessionRef<Auth>, request: Request, next: Next)
///     -> Result<Response, StatusCode> {
///     if auth.user.is_none() {
///         return Err(StatusCode::UNAUTHORIZED);
///     }
///     Ok(next.run(request).await)
/// }
///
/// async fn me(auth: Session<Auth>) -> String {
///     auth.user.clone().unwrap_or_default()
/// }
///
/// let app: Router = Router::new()
///     .route("/me", get(me))
///     .route_layer(middleware::from_fn(require_login))
///     .layer(SessionLayer::new(MemoryStore::new()));
/// ```
///
/// A `Session<T>` held while a `SessionRef<T>` is extracted has changes the
/// copy does not see: the copy shows the state as of that `Session`'s last
/// `update` (or the load). The copy is made from the stored fields, so
/// `#[session(skip)]` fields read as their `Default`.
pub struct SessionRef<T: SessionData> {
    value: T,
}

impl<T, S> FromRequestParts<S> for SessionRef<T>
where
    T: SessionData,
    S: Send + Sync,
{
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let context = SessionContext::of(parts)?;
        context.ensure_loaded().await?;
        let value = context.snapshot::<T>()?;
        Ok(Self { value })
    }
}

impl<T: SessionData> SessionRef<T> {
    /// The copy, owned.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T: SessionData> Deref for SessionRef<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// Shows the namespace and each stored field's encoding; fields marked
/// `#[session(sensitive)]` print as `<redacted>`. `T` needs no `Debug`.
impl<T: SessionData> fmt::Debug for SessionRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::session::debug_fields(f, "SessionRef", &self.value)
    }
}
