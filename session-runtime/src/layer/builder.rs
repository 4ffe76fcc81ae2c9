//! Configuration of a [`SessionLayer`]: cookie attributes, expiry, error
//! policies. Every invalid combination is a [`ConfigError`] from
//! [`SessionLayerBuilder::build`], never a failure at request time.

use std::sync::Arc;
use std::time::Duration;

use super::session_layer::SessionLayer;
use crate::backend::{Backend, SessionBackend};
use crate::clock::{Clock, SharedClock};
use crate::cookie::{CookieConfig, SameSite, SessionCookie};
use crate::error::ConfigError;
use crate::id::LogSecret;
use crate::settings::{DecodeFailurePolicy, Expiry, NewerVersionPolicy, Settings, StoreDownPolicy};

impl SessionLayer {
    /// A layer with the default configuration: cookie `session`, `Path=/`,
    /// `HttpOnly`, `SameSite=Lax`, `Secure`; browser-session cookie with a
    /// 24-hour store TTL (with a [`CookieStore`], a 24-hour absolute
    /// timeout instead); fail closed when the store is down.
    ///
    /// `store` is any [`SessionStore`](crate::store::SessionStore) or a
    /// [`CookieStore`].
    ///
    /// # Panics
    /// When the store's own configuration is invalid: a [`CookieStore`]
    /// key shorter than 32 bytes, or a cookie budget out of range. Use
    /// [`builder`](Self::builder) to get those as a [`ConfigError`]. The
    /// layer's default configuration itself is valid (a test pins this).
    ///
    /// [`CookieStore`]: crate::cookie_store::CookieStore
    pub fn new<S: SessionBackend>(store: S) -> Self {
        match Self::builder(store).build() {
            Ok(layer) => layer,
            Err(err) => panic!("invalid session store configuration: {err}"),
        }
    }

    /// A builder for cookie attributes, expiry and error policies.
    ///
    /// ```
    /// use std::time::Duration;
    /// use typed_sessions::{SameSite, SessionLayer, stores::MemoryStore};
    ///
    /// let layer = SessionLayer::builder(MemoryStore::new())
    ///     .cookie_name("__Host-sid")
    ///     .same_site(SameSite::Strict)
    ///     .idle_timeout(Duration::from_secs(30 * 60))
    ///     .absolute_timeout(Duration::from_secs(12 * 60 * 60))
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn builder<S: SessionBackend>(store: S) -> SessionLayerBuilder {
        let mut builder =
            SessionLayerBuilder::with_backend(Box::new(move |cookie: &CookieConfig| {
                store.into_backend(&cookie.name).map(|made| made.0)
            }));
        if S::CLIENT_SIDE {
            // A copied cookie cannot be revoked: bound how long it works.
            builder.absolute = Some(CLIENT_SIDE_ABSOLUTE_TIMEOUT);
        }
        builder
    }
}

/// The shortest log key accepted, in bytes.
const MIN_LOG_KEY: usize = 16;

/// The longest cookie lifetime browsers keep (RFC 6265bis caps `Max-Age`).
const BROWSER_COOKIE_CAP: Duration = Duration::from_hours(400 * 24);

/// The default absolute timeout with a client-side store.
const CLIENT_SIDE_ABSOLUTE_TIMEOUT: Duration = Duration::from_hours(24);

/// Makes the backend once the cookie's attributes are known.
type MakeBackend = Box<dyn FnOnce(&CookieConfig) -> Result<Backend, ConfigError> + Send + Sync>;

/// Builds a [`SessionLayer`]; see [`SessionLayer::builder`].
#[must_use]
pub struct SessionLayerBuilder {
    backend: MakeBackend,
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
    log_key: Option<zeroize::Zeroizing<Vec<u8>>>,
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
    /// A builder over a backend made already (tests of the seam).
    #[cfg(test)]
    pub(crate) fn new(backend: Backend) -> Self {
        Self::with_backend(Box::new(move |_| Ok(backend)))
    }

    fn with_backend(backend: MakeBackend) -> Self {
        Self {
            backend,
            cookie: CookieConfig::default(),
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
            log_key: None,
        }
    }

    /// The cookie name (default `session`). A `__Host-` or `__Secure-`
    /// prefix adds the browser's rules for it to the checks at build time.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// SessionLayer::builder(MemoryStore::new()).cookie_name("__Host-sid")
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie.name = name.into();
        self
    }

    /// The cookie `Path` (default `/`).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// SessionLayer::builder(MemoryStore::new()).path("/app")
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }

    /// The cookie `Domain` (default: none, the cookie is host-only).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// SessionLayer::builder(MemoryStore::new()).domain("example.com")
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }

    /// The cookie `SameSite` (default [`SameSite::Lax`]).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// SessionLayer::builder(MemoryStore::new()).same_site(typed_sessions::SameSite::Strict)
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.cookie.same_site = same_site;
        self
    }

    /// Whether the cookie is `Secure` (default `true`). Turn it off only for
    /// plain-http development.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// // Plain-http development only: browsers keep a `Secure` cookie over https (and localhost).
    /// SessionLayer::builder(MemoryStore::new()).secure(false)
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn secure(mut self, secure: bool) -> Self {
        self.cookie.secure = secure;
        self
    }

    /// Whether the cookie is `HttpOnly` (default `true`).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// // Only if page scripts must read the cookie (they rarely should).
    /// SessionLayer::builder(MemoryStore::new()).http_only(false)
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.cookie.http_only = http_only;
        self
    }

    /// Whether the cookie is `Partitioned` (CHIPS; default `false`).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// // An embedded (third-party) context: needs `SameSite=None` and `Secure`.
    /// SessionLayer::builder(MemoryStore::new())
    ///     .same_site(typed_sessions::SameSite::None)
    ///     .partitioned(true)
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn partitioned(mut self, partitioned: bool) -> Self {
        self.cookie.partitioned = partitioned;
        self
    }

    /// Expire a session after this long without a request that loads it.
    /// Reads slide the deadline forward (throttled, see
    /// [`refresh_share`](Self::refresh_share)). At most 400 days, the
    /// longest cookie lifetime browsers keep.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// SessionLayer::builder(MemoryStore::new()).idle_timeout(Duration::from_secs(30 * 60))
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle = Some(timeout);
        self
    }

    /// Expire a session this long after it was created, however active. At
    /// most 400 days, the longest cookie lifetime browsers keep, unless an
    /// idle timeout (which then bounds the cookie's lifetime) is set. With a
    /// [`CookieStore`](crate::cookie_store::CookieStore) it defaults to 24
    /// hours (a copied cookie cannot be revoked).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// SessionLayer::builder(MemoryStore::new()).absolute_timeout(Duration::from_secs(12 * 60 * 60))
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.absolute = Some(timeout);
        self
    }

    /// How long the store keeps a session whose cookie is a browser-session
    /// cookie (no timeout configured), counted from its last write or
    /// refresh (default 24 hours).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// // Browser-session cookies; the store forgets a session 2 hours after its last use.
    /// SessionLayer::builder(MemoryStore::new()).store_ttl(Duration::from_secs(2 * 60 * 60))
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn store_ttl(mut self, ttl: Duration) -> Self {
        self.store_ttl = ttl;
        self
    }

    /// The share of the idle timeout (or store TTL) that must pass since the
    /// last refresh before a read-only request refreshes again (default
    /// `0.25`): a burst of reads touches the store once.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// // Slide an idle deadline at most once per tenth of the timeout.
    /// SessionLayer::builder(MemoryStore::new())
    ///     .idle_timeout(Duration::from_secs(30 * 60))
    ///     .refresh_share(0.1)
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn refresh_share(mut self, share: f64) -> Self {
        self.refresh_share = share;
        self
    }

    /// What a request gets when the store is down on load (default
    /// [`StoreDownPolicy::FailClosed`] with `Retry-After: 5`).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// // Serve anonymous sessions while the store is down (writes still answer 503).
    /// SessionLayer::builder(MemoryStore::new()).on_store_down(typed_sessions::StoreDownPolicy::FailOpen)
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn on_store_down(mut self, policy: StoreDownPolicy) -> Self {
        self.store_down = policy;
        self
    }

    /// What happens when a stored field no longer decodes (default [`DecodeFailurePolicy::Reset`]).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// // A stored field that no longer decodes answers 500 instead of resetting its namespace.
    /// SessionLayer::builder(MemoryStore::new())
    ///     .on_decode_failure(typed_sessions::DecodeFailurePolicy::Strict)
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn on_decode_failure(mut self, policy: DecodeFailurePolicy) -> Self {
        self.decode_failure = policy;
        self
    }

    /// What happens when data was stored by newer code (default [`NewerVersionPolicy::Reject`]).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// // Reset data written by newer code instead of answering 500 (it is then overwritten).
    /// SessionLayer::builder(MemoryStore::new())
    ///     .on_newer_version(typed_sessions::NewerVersionPolicy::Reset)
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn on_newer_version(mut self, policy: NewerVersionPolicy) -> Self {
        self.newer_version = policy;
        self
    }

    /// How long [`Session::update`](crate::Session::update) keeps retrying
    /// on conflicts before it gives up (default 2 seconds).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// SessionLayer::builder(MemoryStore::new()).update_deadline(Duration::from_millis(500))
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
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
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// // A proxy in front already adds `Vary: Cookie` and `Cache-Control: private`.
    /// SessionLayer::builder(MemoryStore::new()).cache_headers(false)
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn cache_headers(mut self, enabled: bool) -> Self {
        self.cache_headers = enabled;
        self
    }

    /// The key of the hashed session ids that logs and
    /// [`SessionHandle::id`](crate::SessionHandle::id) show, at least 16
    /// bytes (checked at [`build`](Self::build)). Give every replica the
    /// same key, and the same session shows the same hash in all of them
    /// and across restarts. By default the key is random per layer (per
    /// process), so hashes cannot be correlated between processes; with a
    /// [`CookieStore`](crate::cookie_store::CookieStore) it is derived from
    /// the store's primary key. The hash is a keyed HMAC: without the key,
    /// a hash reveals nothing of the id.
    ///
    /// ```
    /// use typed_sessions::{SessionLayer, stores::MemoryStore};
    ///
    /// let key = std::env::var("SESSION_LOG_KEY").unwrap_or_else(|_| "a".repeat(32));
    /// let layer = SessionLayer::builder(MemoryStore::new())
    ///     .log_key(key.as_bytes())
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn log_key(mut self, key: &[u8]) -> Self {
        self.log_key = Some(zeroize::Zeroizing::new(key.to_vec()));
        self
    }

    /// The clock for expiry (default: the system clock). For tests.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use typed_sessions::{SessionLayer, stores::MemoryStore};
    /// use std::time::SystemTime;
    ///
    /// /// A clock that tests move by hand.
    /// struct Fixed(SystemTime);
    /// impl typed_sessions::Clock for Fixed {
    ///     fn now(&self) -> SystemTime {
    ///         self.0
    ///     }
    /// }
    ///
    /// SessionLayer::builder(MemoryStore::new()).clock(Arc::new(Fixed(SystemTime::now())))
    ///     .build()?;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = SharedClock(clock);
        self
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    /// A [`ConfigError`] for any combination that cannot work.
    pub fn build(self) -> Result<SessionLayer, ConfigError> {
        self.cookie.validate()?;
        let backend = (self.backend)(&self.cookie)?;
        let log_secret = match &self.log_key {
            Some(key) if key.len() < MIN_LOG_KEY => {
                return Err(ConfigError::LogKeyTooShort {
                    len: key.len(),
                    min: MIN_LOG_KEY,
                });
            }
            Some(key) => LogSecret::derive(key),
            None => backend.log_secret(),
        };
        // Durations are kept in whole milliseconds: anything shorter is zero.
        let nonzero = |d: Option<Duration>, what| match d {
            Some(d) if d.as_millis() == 0 => Err(ConfigError::ZeroDuration(what)),
            _ => Ok(d),
        };
        let idle = nonzero(self.idle, "idle timeout")?;
        let absolute = nonzero(self.absolute, "absolute timeout")?;
        // The cookie's Max-Age counts down to the earlier of the two
        // deadlines: only the shorter timeout must fit the browsers' cap
        // (an idle timeout always bounds it; a long absolute one is fine
        // behind a short idle one).
        match (idle, absolute) {
            (Some(idle), _) if idle > BROWSER_COOKIE_CAP => {
                return Err(ConfigError::OverBrowserCap("idle timeout"));
            }
            (None, Some(absolute)) if absolute > BROWSER_COOKIE_CAP => {
                return Err(ConfigError::OverBrowserCap("absolute timeout"));
            }
            _ => {}
        }
        let store_ttl = nonzero(Some(self.store_ttl), "store TTL")?.unwrap_or_default();
        nonzero(Some(self.update_deadline), "update deadline")?;
        if let StoreDownPolicy::FailClosed { retry_after } = self.store_down {
            nonzero(Some(retry_after), "retry-after")?;
        }
        if !(self.refresh_share > 0.0 && self.refresh_share <= 1.0) {
            return Err(ConfigError::RefreshShare);
        }
        let expiry = Expiry {
            idle_ms: idle.map(crate::clock::duration_ms),
            absolute_ms: absolute.map(crate::clock::duration_ms),
            store_ttl_ms: crate::clock::duration_ms(store_ttl),
            refresh_share: self.refresh_share,
        };
        let settings = Settings {
            backend,
            cookie: SessionCookie::new(self.cookie, expiry.persistent()),
            expiry,
            store_down: self.store_down,
            decode_failure: self.decode_failure,
            newer_version: self.newer_version,
            update_deadline: self.update_deadline,
            clock: self.clock,
            log_secret,
            cache_headers: self.cache_headers,
        };
        Ok(SessionLayer {
            settings: Arc::new(settings),
        })
    }
}
