//! The public errors: [`ConfigError`] when a layer is built, and the
//! request-time rejections of the extractors and of `update`.

use std::fmt;
use std::time::Duration;

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{HeaderValue, RETRY_AFTER};

use crate::codec::CodecError;
use crate::data::DecodeError;
use crate::store::StoreError;

/// A configuration that cannot work, reported when the layer (or a store
/// with options, such as an SQL store) is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cookie name is empty or has characters outside an RFC 6265 token.
    #[error("invalid cookie name {0:?}: use letters, digits and !#$%&'*+-.^_`|~")]
    InvalidCookieName(String),
    /// A `__Host-` cookie must be `Secure`, have `Path=/` and no `Domain`.
    #[error("a __Host- cookie needs Secure, Path=/ and no Domain")]
    HostPrefix,
    /// A `__Secure-` cookie must be `Secure`.
    #[error("a __Secure- cookie needs Secure")]
    SecurePrefix,
    /// Browsers reject `SameSite=None` without `Secure`.
    #[error("SameSite=None needs Secure")]
    SameSiteNoneWithoutSecure,
    /// Browsers reject `Partitioned` without `Secure`.
    #[error("Partitioned needs Secure")]
    PartitionedWithoutSecure,
    /// The path must start with `/` and hold no `;`, control characters or spaces.
    #[error(
        "invalid cookie path {0:?}: a path starts with `/` and holds no `;`, spaces or control characters"
    )]
    InvalidPath(String),
    /// The domain must be a bare host name: labels of ASCII letters, digits,
    /// `-` and `_`, with no scheme, port, path or trailing dot (browsers
    /// ignore such a `Domain`, and the session would never stick).
    #[error(
        "invalid cookie domain {0:?}: a bare host name such as `example.com` (labels of letters, digits, `-`, `_`; no scheme, port, path or trailing dot; internationalized names in punycode, `xn--…`)"
    )]
    InvalidDomain(String),
    /// A timeout or TTL under one millisecond would expire every session at once.
    #[error("{0} must be at least one millisecond")]
    ZeroDuration(&'static str),
    /// A cookie lifetime over 400 days: browsers cap `Max-Age` there
    /// (RFC 6265bis), so the cookie would end before the session. (An idle
    /// timeout over 400 days, or an absolute one with no idle timeout.)
    #[error("{0} is over 400 days, the longest cookie lifetime browsers keep (RFC 6265bis)")]
    OverBrowserCap(&'static str),
    /// The refresh share must be a fraction in (0, 1].
    #[error("refresh share must be greater than 0 and at most 1")]
    RefreshShare,
    /// A [`CookieStore`](crate::cookie_store::CookieStore) key is shorter than 32 bytes.
    #[error("a cookie store key must have at least {min} bytes, this one has {len}")]
    KeyTooShort {
        /// The key's length in bytes.
        len: usize,
        /// The least accepted.
        min: usize,
    },
    /// A log key shorter than 16 bytes
    /// ([`SessionLayerBuilder::log_key`](crate::SessionLayerBuilder::log_key)).
    #[error("a log key must have at least {min} bytes, this one has {len}")]
    LogKeyTooShort {
        /// The key's length in bytes.
        len: usize,
        /// The least accepted.
        min: usize,
    },
    /// A schema or table name for an SQL store that is not a plain
    /// identifier (ASCII letters, digits and `_`, not starting with a digit;
    /// a schema at most 63 bytes and not `pg_…` or `information_schema`, a
    /// table at most 52, so that `<table>_namespaces` fits PostgreSQL's 63).
    #[error(
        "invalid SQL name {0:?}: use ASCII letters, digits and `_`, not starting with a digit; at most 63 bytes for a schema (not pg_… or information_schema), 52 for a table"
    )]
    InvalidSqlName(String),
    /// A [`CookieStore`](crate::cookie_store::CookieStore) cookie budget out of range.
    #[error("a cookie budget must be between {min} and {max} bytes, not {budget}")]
    CookieBudget {
        /// The budget asked for.
        budget: usize,
        /// The least accepted.
        min: usize,
        /// The most browsers keep.
        max: usize,
    },
}

/// Why a [`Session`](crate::Session) or [`SessionHandle`](crate::SessionHandle)
/// could not be extracted.
///
/// Its response carries a status and a short generic text; the detail (and
/// the source chain) goes to the log, never to the client.
///
/// An API that answers errors as JSON takes `Result<Session<T>,
/// SessionRejection>` and shapes its own response from
/// [`status`](Self::status) and [`body_text`](Self::body_text) (plus
/// `Retry-After` for [`StoreUnavailable`](Self::StoreUnavailable)):
///
/// ```
/// use axum::{Json, http::StatusCode};
/// use serde_json::{Value, json};
/// use typed_sessions::{Session, SessionData, SessionRejection};
///
/// #[derive(SessionData, Default)]
/// #[session(namespace = "counter")]
/// struct Counter { count: u64 }
///
/// async fn count(
///     counter: Result<Session<Counter>, SessionRejection>,
/// ) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
///     let counter = counter.map_err(|rejection| {
///         let body = json!({ "error": rejection.body_text() });
///         (rejection.status(), Json(body))
///     })?;
///     Ok(Json(json!({ "count": counter.count })))
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionRejection {
    /// The handler is not wrapped in a `SessionLayer` (500).
    #[error(
        "Session extractor used without a SessionLayer: add `.layer(SessionLayer::new(store))` around this route"
    )]
    MissingLayer,
    /// The store could not be reached to load the session (503 + `Retry-After`).
    #[error("session store unavailable while loading the session")]
    StoreUnavailable {
        /// The delay suggested to the client.
        retry_after: Duration,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The store failed while loading the session (500).
    #[error("session store failed while loading the session")]
    StoreFailed(#[source] StoreError),
    /// Stored data of namespace `namespace` was written by newer code (500,
    /// [`NewerVersionPolicy::Reject`](crate::NewerVersionPolicy::Reject)).
    #[error(
        "namespace `{namespace}` holds data of a newer schema version; refusing to overwrite it"
    )]
    NewerVersion {
        /// The namespace.
        namespace: &'static str,
        /// The decoder's error, with the versions.
        #[source]
        source: DecodeError,
    },
    /// A stored field of `namespace` does not decode (500,
    /// [`DecodeFailurePolicy::Strict`](crate::DecodeFailurePolicy::Strict)).
    #[error("namespace `{namespace}` holds data that does not decode")]
    Undecodable {
        /// The namespace.
        namespace: &'static str,
        /// The decoder's error.
        #[source]
        source: DecodeError,
    },
    /// Two different schema types claim namespace `namespace` (500).
    #[error("two schema types use the namespace `{namespace}`: `{first}` and `{second}`")]
    NamespaceClash {
        /// The namespace.
        namespace: &'static str,
        /// The type extracted first.
        first: &'static str,
        /// The type extracted second.
        second: &'static str,
    },
    /// `Session<T>` for the same `T` is already held elsewhere in this request (500).
    #[error(
        "Session<{type_name}> is already extracted in this request; hold at most one at a time (a middleware guard that only reads should take SessionRef<{type_name}>, or drop its Session before `next.run`)"
    )]
    AlreadyExtracted {
        /// The schema type.
        type_name: &'static str,
    },
}

impl SessionRejection {
    /// The status the client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::StoreUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body the client receives: generic, with no internals.
    pub fn body_text(&self) -> &'static str {
        match self {
            Self::StoreUnavailable { .. } => "session store unavailable, retry later",
            _ => "session error",
        }
    }
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        tracing::error!(target: crate::LOG_TARGET, error = %ErrorChain(&self), "session rejected the request");
        let mut response = (self.status(), self.body_text()).into_response();
        if let Self::StoreUnavailable { retry_after, .. } = &self {
            response
                .headers_mut()
                .insert(RETRY_AFTER, retry_after_value(*retry_after));
        }
        response
    }
}

pub(crate) fn retry_after_value(delay: Duration) -> HeaderValue {
    HeaderValue::from(delay.as_secs().max(1))
}

/// Why [`Session::update`](crate::Session::update) did not commit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// Concurrent writers kept winning until the deadline passed.
    #[error("gave up after {attempts} conflicting attempts in {waited:?}")]
    Contended {
        /// How many times the closure ran.
        attempts: u32,
        /// How long it tried.
        waited: Duration,
    },
    /// The session was destroyed by another request meanwhile.
    #[error("the session was destroyed by another request")]
    SessionGone,
    /// The session was destroyed or cleared earlier in this request.
    #[error("the session was destroyed earlier in this request")]
    Destroyed,
    /// The stored data met on a retry is rejected by the layer's policies
    /// (newer version, or undecodable under the strict policy).
    #[error("the stored session data was rejected")]
    Rejected(#[from] SessionRejection),
    /// The store failed.
    #[error("session store failed during update")]
    Store(#[from] StoreError),
    /// The value could not be encoded.
    #[error("could not encode the session value")]
    Codec(#[from] CodecError),
}

impl UpdateError {
    /// The status a handler should answer with: 503 when retrying may help
    /// (contention, store down; the response carries `Retry-After: 1`), 409
    /// when the session is gone, 500 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Contended { .. } | Self::Store(StoreError::Unavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::SessionGone | Self::Destroyed => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for UpdateError {
    fn into_response(self) -> Response {
        tracing::warn!(target: crate::LOG_TARGET, error = %ErrorChain(&self), "session update failed");
        let status = self.status();
        let body = match &self {
            Self::Store(StoreError::Unavailable(_)) => "session store unavailable, retry later",
            Self::Contended { .. } => "session busy, retry later",
            _ if status == StatusCode::CONFLICT => "session ended",
            _ => "session error",
        };
        let mut response = (status, body).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Contention clears, and a store comes back, within moments.
            response
                .headers_mut()
                .insert(RETRY_AFTER, retry_after_value(Duration::from_secs(1)));
        }
        response
    }
}

/// Formats an error with its whole source chain, for logs.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}
