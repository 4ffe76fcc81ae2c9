//! Layer configuration: cookie attributes, expiry, error policies. Every
//! invalid combination is a [`ConfigError`] from
//! [`SessionLayerBuilder::build`], never a failure at request time.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SharedClock};
use crate::id::LogSecret;
use crate::layer::{LayerInner, SessionLayer};
use crate::store::{DynStore, SessionStore};

/// The `SameSite` attribute of the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SameSite {
    /// Sent only on same-site requests.
    Strict,
    /// Sent on same-site requests and top-level navigations (the default).
    Lax,
    /// Sent on every request; requires `Secure`.
    None,
}

/// What a request gets when the store cannot be reached to load its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreDownPolicy {
    /// 503 Service Unavailable with `Retry-After` (the default).
    FailClosed {
        /// The `Retry-After` delay sent to the client (whole seconds).
        retry_after: Duration,
    },
    /// Treat the request as anonymous: a fresh, empty session. Writes still
    /// fail with 503 if the store is still down when they are saved.
    FailOpen,
}

/// What happens when a stored field no longer decodes into its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DecodeFailurePolicy {
    /// That namespace reads as `Default` (logged); other namespaces are untouched (the default).
    #[default]
    Reset,
    /// The request fails with 500.
    Strict,
}

/// What happens when a namespace was stored by a newer version of the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NewerVersionPolicy {
    /// The request fails with 500 and the stored data is never overwritten (the default).
    #[default]
    Reject,
    /// The namespace reads as `Default`; a write replaces the newer data.
    Reset,
}

/// A configuration that cannot work, reported when the layer is built.
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
    #[error("invalid cookie path {0:?}")]
    InvalidPath(String),
    /// The domain must be a host name: no `;`, control characters or spaces.
    #[error("invalid cookie domain {0:?}")]
    InvalidDomain(String),
    /// A timeout or TTL under one millisecond would expire every session at once.
    #[error("{0} must be at least one millisecond")]
    ZeroDuration(&'static str),
    /// The refresh share must be a fraction in (0, 1].
    #[error("refresh share must be greater than 0 and at most 1")]
    RefreshShare,
}

#[derive(Debug, Clone)]
pub(crate) struct CookieConfig {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) same_site: SameSite,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) partitioned: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ExpiryConfig {
    pub(crate) idle_ms: Option<u64>,
    pub(crate) absolute_ms: Option<u64>,
    pub(crate) store_ttl_ms: u64,
    pub(crate) refresh_share: f64,
}

/// Builds a [`SessionLayer`]; see [`SessionLayer::builder`].
#[must_use]
pub struct SessionLayerBuilder {
    store: Arc<dyn DynStore>,
    cookie: CookieConfig,
    idle: Option<Duration>,
    absolute: Option<Duration>,
    store_ttl: Duration,
    refresh_share: f64,
    store_down: StoreDownPolicy,
    decode_failure: DecodeFailurePolicy,
    newer_version: NewerVersionPolicy,
    update_deadline: Duration,
    clock: SharedClock,
    cache_headers: bool,
}

impl std::fmt::Debug for SessionLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayerBuilder")
            .field("cookie", &self.cookie)
            .field("idle", &self.idle)
            .field("absolute", &self.absolute)
            .finish_non_exhaustive()
    }
}

impl SessionLayerBuilder {
    pub(crate) fn new<S: SessionStore>(store: S) -> Self {
        Self {
            store: Arc::new(store),
            cookie: CookieConfig {
                name: "session".into(),
                path: "/".into(),
                domain: None,
                same_site: SameSite::Lax,
                secure: true,
                http_only: true,
                partitioned: false,
            },
            idle: None,
            absolute: None,
            store_ttl: Duration::from_hours(24),
            refresh_share: 0.25,
            store_down: StoreDownPolicy::FailClosed {
                retry_after: Duration::from_secs(5),
            },
            decode_failure: DecodeFailurePolicy::Reset,
            newer_version: NewerVersionPolicy::Reject,
            update_deadline: Duration::from_secs(2),
            clock: SharedClock::system(),
            cache_headers: true,
        }
    }

    /// The cookie name (default `session`). A `__Host-` or `__Secure-`
    /// prefix adds the browser's rules for it to the checks at build time.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie.name = name.into();
        self
    }

    /// The cookie `Path` (default `/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }

    /// The cookie `Domain` (default: none, the cookie is host-only).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }

    /// The cookie `SameSite` (default [`SameSite::Lax`]).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.cookie.same_site = same_site;
        self
    }

    /// Whether the cookie is `Secure` (default `true`). Turn it off only for
    /// plain-http development.
    pub fn secure(mut self, secure: bool) -> Self {
        self.cookie.secure = secure;
        self
    }

    /// Whether the cookie is `HttpOnly` (default `true`).
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.cookie.http_only = http_only;
        self
    }

    /// Whether the cookie is `Partitioned` (CHIPS; default `false`).
    pub fn partitioned(mut self, partitioned: bool) -> Self {
        self.cookie.partitioned = partitioned;
        self
    }

    /// Expire a session after this long without a request that loads it.
    /// Reads slide the deadline forward (throttled, see
    /// [`refresh_share`](Self::refresh_share)).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle = Some(timeout);
        self
    }

    /// Expire a session this long after it was created, however active.
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.absolute = Some(timeout);
        self
    }

    /// How long the store keeps a session whose cookie is a browser-session
    /// cookie (no timeout configured), counted from its last write or
    /// refresh (default 24 hours).
    pub fn store_ttl(mut self, ttl: Duration) -> Self {
        self.store_ttl = ttl;
        self
    }

    /// The share of the idle timeout (or store TTL) that must pass since the
    /// last refresh before a read-only request refreshes again (default
    /// `0.25`): a burst of reads touches the store once.
    pub fn refresh_share(mut self, share: f64) -> Self {
        self.refresh_share = share;
        self
    }

    /// What a request gets when the store is down on load (default
    /// [`StoreDownPolicy::FailClosed`] with `Retry-After: 5`).
    pub fn on_store_down(mut self, policy: StoreDownPolicy) -> Self {
        self.store_down = policy;
        self
    }

    /// What happens when a stored field no longer decodes (default [`DecodeFailurePolicy::Reset`]).
    pub fn on_decode_failure(mut self, policy: DecodeFailurePolicy) -> Self {
        self.decode_failure = policy;
        self
    }

    /// What happens when data was stored by newer code (default [`NewerVersionPolicy::Reject`]).
    pub fn on_newer_version(mut self, policy: NewerVersionPolicy) -> Self {
        self.newer_version = policy;
        self
    }

    /// How long [`Session::update`](crate::Session::update) keeps retrying
    /// on conflicts before it gives up (default 2 seconds).
    pub fn update_deadline(mut self, deadline: Duration) -> Self {
        self.update_deadline = deadline;
        self
    }

    /// Whether responses carry the caching headers a session needs (default
    /// `true`): `Vary: Cookie` on every response of a request that loaded
    /// the session, and `Cache-Control: private` on every response that
    /// sets or removes the session cookie, unless the handler set its own
    /// `Cache-Control`. Without them a shared cache (a CDN, a proxy) may
    /// serve one user's page, or cookie, to another. Turn them off only
    /// when something else in the stack sets them.
    pub fn cache_headers(mut self, enabled: bool) -> Self {
        self.cache_headers = enabled;
        self
    }

    /// The clock for expiry (default: the system clock). For tests.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = SharedClock(clock);
        self
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    /// A [`ConfigError`] for any combination that cannot work.
    pub fn build(self) -> Result<SessionLayer, ConfigError> {
        validate_cookie(&self.cookie)?;
        // Durations are kept in whole milliseconds: anything shorter is zero.
        let nonzero = |d: Option<Duration>, what| match d {
            Some(d) if d.as_millis() == 0 => Err(ConfigError::ZeroDuration(what)),
            _ => Ok(d),
        };
        let idle = nonzero(self.idle, "idle timeout")?;
        let absolute = nonzero(self.absolute, "absolute timeout")?;
        let store_ttl = nonzero(Some(self.store_ttl), "store TTL")?.unwrap_or_default();
        nonzero(Some(self.update_deadline), "update deadline")?;
        if let StoreDownPolicy::FailClosed { retry_after } = self.store_down {
            nonzero(Some(retry_after), "retry-after")?;
        }
        if !(self.refresh_share > 0.0 && self.refresh_share <= 1.0) {
            return Err(ConfigError::RefreshShare);
        }
        let (cookie_attrs, removal_cookie) = crate::layer::render_cookie(&self.cookie);
        Ok(SessionLayer::from_inner(LayerInner {
            store: self.store,
            cookie: self.cookie,
            cookie_attrs,
            removal_cookie,
            expiry: ExpiryConfig {
                idle_ms: idle.map(crate::clock::duration_ms),
                absolute_ms: absolute.map(crate::clock::duration_ms),
                store_ttl_ms: crate::clock::duration_ms(store_ttl),
                refresh_share: self.refresh_share,
            },
            store_down: self.store_down,
            decode_failure: self.decode_failure,
            newer_version: self.newer_version,
            update_deadline: self.update_deadline,
            clock: self.clock,
            log_secret: LogSecret::generate(),
            cache_headers: self.cache_headers,
        }))
    }
}

/// RFC 6265 `token`: visible ASCII except separators.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_attr_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x21..0x7f).contains(&b) && b != b';')
}

fn validate_cookie(cookie: &CookieConfig) -> Result<(), ConfigError> {
    if !is_token(&cookie.name) {
        return Err(ConfigError::InvalidCookieName(cookie.name.clone()));
    }
    if !cookie.path.starts_with('/') || !is_attr_value(&cookie.path) {
        return Err(ConfigError::InvalidPath(cookie.path.clone()));
    }
    if let Some(domain) = &cookie.domain
        && (domain.is_empty() || !is_attr_value(domain))
    {
        return Err(ConfigError::InvalidDomain(domain.clone()));
    }
    if cookie.name.starts_with("__Host-")
        && (!cookie.secure || cookie.path != "/" || cookie.domain.is_some())
    {
        return Err(ConfigError::HostPrefix);
    }
    if cookie.name.starts_with("__Secure-") && !cookie.secure {
        return Err(ConfigError::SecurePrefix);
    }
    if cookie.same_site == SameSite::None && !cookie.secure {
        return Err(ConfigError::SameSiteNoneWithoutSecure);
    }
    if cookie.partitioned && !cookie.secure {
        return Err(ConfigError::PartitionedWithoutSecure);
    }
    Ok(())
}
