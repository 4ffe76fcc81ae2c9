//! Test helpers of typed-sessions, shared by the integration tests, the
//! demo's tests and every store's tests: a manual clock, a store wrapper
//! that counts operations and can fail on demand, request helpers over
//! `Router::oneshot`, `Set-Cookie` parsing, and the store-generic
//! router-level lifecycle suite ([`lifecycle_tests!`]).
#![allow(
    missing_docs,
    clippy::missing_panics_doc,
    reason = "test helpers: a panic is a failed test"
)]

pub mod backed;
pub mod http_client;
pub mod keepalive;
pub mod lifecycle;
pub mod redis_server;
pub mod routes;
pub mod schemas;
pub mod sql;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use typed_sessions::Clock;

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock at a fixed, realistic start: 2026-01-01T00:00:00Z.
    pub fn new() -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(1_767_225_600_000)))
    }

    /// A clock at the current time (whole seconds): for stores that keep
    /// their own real-time deadlines (a server's key expiry).
    pub fn starting_now() -> Arc<Self> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        Arc::new(Self(AtomicU64::new(now * 1000)))
    }

    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(u64::try_from(by.as_millis()).unwrap(), Ordering::SeqCst);
    }

    pub fn now_secs(&self) -> u64 {
        self.0.load(Ordering::SeqCst) / 1000
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0.load(Ordering::SeqCst))
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Reply {
    /// The only Set-Cookie of the reply, if any; more than one is a test failure.
    pub fn set_cookie(&self) -> Option<&str> {
        assert!(
            self.set_cookies.len() <= 1,
            "several Set-Cookie headers: {:?}",
            self.set_cookies
        );
        self.set_cookies.first().map(String::as_str)
    }

    /// The `name=value` pair to send back, from the reply's Set-Cookie.
    pub fn cookie(&self) -> String {
        let set = self.set_cookie().expect("a Set-Cookie header");
        set.split(';').next().unwrap().trim().to_owned()
    }

    pub fn has_removal(&self) -> bool {
        self.set_cookie().is_some_and(is_removal)
    }
}

pub fn is_removal(set_cookie: &str) -> bool {
    attr(set_cookie, "Max-Age").as_deref() == Some("0")
}

/// The value of attribute `name` in a Set-Cookie string (case-insensitive name).
pub fn attr(set_cookie: &str, name: &str) -> Option<String> {
    set_cookie.split(';').skip(1).find_map(|part| {
        let part = part.trim();
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        key.eq_ignore_ascii_case(name).then(|| value.to_owned())
    })
}

pub fn has_flag(set_cookie: &str, name: &str) -> bool {
    set_cookie.split(';').skip(1).any(|part| {
        part.trim()
            .split('=')
            .next()
            .unwrap()
            .eq_ignore_ascii_case(name)
    })
}

pub fn max_age(set_cookie: &str) -> Option<u64> {
    attr(set_cookie, "Max-Age").map(|v| v.parse().expect("numeric Max-Age"))
}

pub async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut request = http::Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        request = request.header(http::header::COOKIE, cookie);
    }
    if body.is_some() {
        request = request.header(http::header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Body::from(body.unwrap_or("").to_owned()))
        .unwrap();
    reply(app, request).await
}

/// Sends `request` through `app` and collects the reply (the body decoded
/// lossily, so that non-UTF-8 answers still show).
pub async fn reply(app: &Router, request: http::Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let set_cookies = headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        set_cookies,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub async fn fetch(app: &Router, uri: &str, cookie: Option<&str>) -> Reply {
    send(app, "GET", uri, cookie, None).await
}

pub async fn submit(app: &Router, uri: &str, cookie: Option<&str>) -> Reply {
    send(app, "POST", uri, cookie, None).await
}

use std::sync::atomic::AtomicBool;
use typed_sessions::stores::{
    Changeset, MemoryStore, Record, SaveOutcome, SessionKey, SessionStore, StoreError,
};

/// Operation counts of a [`CountingStore`].
#[derive(Debug, Default)]
pub struct Counts {
    pub loads: AtomicU64,
    pub saves: AtomicU64,
    pub deletes: AtomicU64,
    pub touches: AtomicU64,
    /// When set, every operation fails with `StoreError::Unavailable`.
    pub down: AtomicBool,
    /// When set, only saves fail.
    pub saves_down: AtomicBool,
    /// When set, only loads fail.
    pub down_for_loads_only: AtomicBool,
    /// When set, saves fail with `StoreError::Backend` (not worth retrying).
    pub saves_broken: AtomicBool,
    /// The changesets saved, as debug strings, for inspection.
    pub last_save: std::sync::Mutex<Option<Changeset>>,
    /// The key of the last save.
    pub last_key: std::sync::Mutex<Option<SessionKey>>,
}

impl Counts {
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::SeqCst)
    }
    pub fn saves(&self) -> u64 {
        self.saves.load(Ordering::SeqCst)
    }
    pub fn deletes(&self) -> u64 {
        self.deletes.load(Ordering::SeqCst)
    }
    pub fn touches(&self) -> u64 {
        self.touches.load(Ordering::SeqCst)
    }
    pub fn io(&self) -> u64 {
        self.loads() + self.saves() + self.deletes() + self.touches()
    }
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
    pub fn last_save(&self) -> Changeset {
        self.last_save
            .lock()
            .unwrap()
            .clone()
            .expect("a save happened")
    }
}

/// A store that counts its operations and can be switched off: a
/// `MemoryStore` on a manual clock by default, or any store ([`wrap`](Self::wrap)).
#[derive(Clone, Debug)]
pub struct CountingStore<S = MemoryStore> {
    pub inner: S,
    pub counts: Arc<Counts>,
}

impl CountingStore {
    pub fn new(clock: Arc<ManualClock>) -> Self {
        Self::wrap(MemoryStore::builder().clock(clock).build())
    }
}

impl<S: SessionStore> CountingStore<S> {
    pub fn wrap(inner: S) -> Self {
        Self {
            inner,
            counts: Arc::default(),
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.counts.down.load(Ordering::SeqCst) {
            Err(StoreError::unavailable("test store switched off"))
        } else {
            Ok(())
        }
    }
}

impl<S: SessionStore> SessionStore for CountingStore<S> {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>, StoreError> {
        self.counts.loads.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        if self.counts.down_for_loads_only.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("test store refuses loads"));
        }
        self.inner.load(key).await
    }

    async fn save(&self, key: &SessionKey, changes: &Changeset) -> Result<SaveOutcome, StoreError> {
        self.counts.saves.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        if self.counts.saves_broken.load(Ordering::SeqCst) {
            return Err(StoreError::backend("test store cannot write"));
        }
        if self.counts.saves_down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("test store refuses writes"));
        }
        *self.counts.last_save.lock().unwrap() = Some(changes.clone());
        *self.counts.last_key.lock().unwrap() = Some(*key);
        self.inner.save(key, changes).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.counts.deletes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.delete(key).await
    }

    async fn touch(
        &self,
        key: &SessionKey,
        last_seen_ms: u64,
        expires_at_ms: u64,
    ) -> Result<bool, StoreError> {
        self.counts.touches.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.touch(key, last_seen_ms, expires_at_ms).await
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.exists(key).await
    }
}

/// Captures everything logged on this thread at `level` or above (span
/// closes included, with their fields) until the guard is dropped.
pub fn capture_logs(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(level)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// A log writer for `tracing_subscriber::fmt` that keeps what was logged.
#[derive(Clone, Default)]
pub struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The store key of the session named by a `name=value` cookie pair: the
/// SHA-256 of the id's bytes, as every store sees it.
pub fn key_of(cookie: &str) -> SessionKey {
    use base64::Engine as _;
    use sha2::Digest as _;
    let raw = cookie.split_once('=').map_or(cookie, |(_, v)| v);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .expect("a session id");
    SessionKey::from_bytes(sha2::Sha256::digest(bytes).into())
}

/// A pair of gates for holding one request between its load and its
/// write-back while other requests run: the handler calls `reached()` and
/// then `wait()`; the test awaits `loaded()` and later calls `release()`.
#[derive(Clone, Default)]
pub struct Gate {
    loaded: Arc<tokio::sync::Notify>,
    go: Arc<tokio::sync::Notify>,
}

impl Gate {
    pub async fn hold(&self) {
        self.loaded.notify_one();
        self.go.notified().await;
    }
    pub async fn loaded(&self) {
        self.loaded.notified().await;
    }
    pub fn release(&self) {
        self.go.notify_one();
    }
}

/// The value part of a `name=value` cookie pair.
pub fn session_value(cookie: &str) -> &str {
    cookie.split_once('=').map_or(cookie, |(_, v)| v)
}

/// Now, in milliseconds since the Unix epoch, by the system clock.
pub fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("ms fit in u64")
}

/// A store key made from `n` and a `tag` byte: distinct for each pair,
/// for tests that talk to a store directly.
pub fn numbered_key(n: u64, tag: u8) -> SessionKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    bytes[31] = tag;
    SessionKey::from_bytes(bytes)
}
