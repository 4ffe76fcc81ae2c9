//! `SessionHandle`: the session's id, times and lifecycle.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum_core::extract::FromRequestParts;
use http::request::Parts;

use crate::clock::from_ms;
use crate::error::SessionRejection;
use crate::id::SessionId;
use crate::session::{RequestSession, SessionContext};

/// The session's identity and lifecycle: id, times, regenerate, destroy, clear.
///
/// ```
/// use typed_sessions::SessionHandle;
///
/// async fn logout(session: SessionHandle) -> &'static str {
///     session.destroy();
///     "bye"
/// }
/// ```
#[derive(Clone)]
pub struct SessionHandle {
    context: Arc<RequestSession>,
}

impl<S: Send + Sync> FromRequestParts<S> for SessionHandle {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let context = SessionContext::of(parts)?;
        context.ensure_loaded().await?;
        Ok(Self { context })
    }
}

impl SessionHandle {
    /// The id of the stored session, shown only as a keyed hash; `None`
    /// while the session exists only in this request (it gets an id when
    /// first saved).
    pub fn id(&self) -> Option<SessionId> {
        let state = self.context.lock();
        state
            .stored()
            .map(|stored| SessionId::new(&stored.id, &self.context.settings().log_secret))
    }

    /// When the stored session was created.
    pub fn created_at(&self) -> Option<SystemTime> {
        self.context
            .lock()
            .stored()
            .map(|stored| from_ms(stored.created_at_ms))
    }

    /// When the session expires (enforced by the layer, from the store's
    /// record or, with a `CookieStore`, from inside the cookie), or `None`
    /// for a browser-session cookie (no timeout configured) or no stored
    /// session.
    ///
    /// It includes the sliding refresh this request makes: when one is due,
    /// the deadline is the refreshed one, which the response's `Max-Age`
    /// also carries.
    ///
    /// It is the deadline as of the call: a write later in the request
    /// counts as an access too (the deadline moves to now plus the idle
    /// timeout), and a 5xx response makes no refresh. `None` once
    /// [`destroy`](Self::destroy) or [`clear`](Self::clear) was called.
    pub fn expires_at(&self) -> Option<SystemTime> {
        let state = self.context.lock();
        if state.destroy_requested() {
            return None;
        }
        let stored = state.stored()?;
        let expiry = &self.context.settings().expiry;
        let now = self.context.now_ms();
        let refreshed = expiry
            .refresh_due(
                stored.created_at_ms,
                stored.last_seen_ms,
                stored.expires_at_ms,
                now,
            )
            .is_some();
        let last_seen = if refreshed { now } else { stored.last_seen_ms };
        expiry
            .session_deadline(stored.created_at_ms, last_seen)
            .map(from_ms)
    }

    /// The time left until [`expires_at`](Self::expires_at).
    pub fn remaining(&self) -> Option<Duration> {
        let deadline = self.expires_at()?;
        let now = crate::clock::from_ms(self.context.now_ms());
        Some(deadline.duration_since(now).unwrap_or_default())
    }

    /// Gives the session a new id at the end of the request, keeping its
    /// data; with a server-side store the old id stops working. Call it on
    /// login (or mark the user field `#[session(rotate_id)]`) to prevent
    /// session fixation. (With a `CookieStore` the new cookie shares no
    /// id, nonce or tag with the old one, but a copy of the old cookie
    /// still opens as the session it was: there is no server state to end.)
    ///
    /// ```
    /// use typed_sessions::{Session, SessionData, SessionHandle};
    ///
    /// #[derive(SessionData, Default)]
    /// #[session(namespace = "auth")]
    /// struct Auth { user: Option<String> }
    ///
    /// async fn login(mut auth: Session<Auth>, handle: SessionHandle, user: String) {
    ///     auth.user = Some(user);
    ///     handle.regenerate_id(); // or mark `user` with #[session(rotate_id)]
    /// }
    /// ```
    pub fn regenerate_id(&self) {
        self.context.lock().request_regenerate();
    }

    /// Deletes the session at the end of the request and removes the cookie.
    /// Changes made in this request are discarded.
    ///
    /// ```
    /// use axum::http::StatusCode;
    /// use typed_sessions::SessionHandle;
    ///
    /// async fn logout(handle: SessionHandle) -> StatusCode {
    ///     handle.destroy();
    ///     StatusCode::NO_CONTENT
    /// }
    /// ```
    pub fn destroy(&self) {
        self.context.lock().request_destroy();
    }

    /// Empties the session now: every namespace reads as `Default` from here
    /// on (values extracted earlier are discarded) and the stored record is
    /// deleted at the end of the request. Data written after `clear` goes to
    /// a new session with a new id.
    ///
    /// ```
    /// use typed_sessions::SessionHandle;
    ///
    /// /// Starts over: every namespace reads as its default, under a new id.
    /// async fn start_over(handle: SessionHandle) {
    ///     handle.clear();
    /// }
    /// ```
    pub fn clear(&self) {
        self.context.lock().request_clear();
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHandle")
            .field("id", &self.id())
            .finish()
    }
}
