//! The behaviours starsessions' own test suite checks (its middleware,
//! stores, serializers and session helpers, numbered 1 to 38 here), ported
//! scenario by scenario. Every test runs through a real axum `Router`
//! (or, for the codec and store scenarios, the public API directly). Test
//! names start with the scenario number; the scenarios marked **differs**
//! (25, 28, 30, 34) assert this project's contract, not starsessions'.
//! Scenario 39, the Redis store, needs a Redis server and lives with the
//! other Redis tests: `seed_39_…` in `tests/redis_store.rs`.

use typed_sessions_test_support as common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{
    CountingStore, ManualClock, Reply, attr, fetch, has_flag, is_removal, max_age, send, submit,
};
use http::HeaderValue;
use serde::Deserialize;
use serde_json::{Value, json};
use typed_sessions::stores::{
    Changeset, MemoryStore, NamespaceChange, NamespaceOp, Record, SaveMode, SaveOutcome,
    SessionKey, SessionStore, StoreError,
};
use typed_sessions::{
    Codec, ConfigError, JsonCodec, SameSite, Session, SessionData, SessionHandle, SessionLayer,
    SessionLayerBuilder,
};

// ---------------------------------------------------------------------------
// The schema: starsessions' session is a dict of JSON values; ours is a typed
// struct, here one that holds such a map.

#[derive(SessionData, Default, Debug)]
#[session(namespace = "bag")]
struct Bag {
    values: BTreeMap<String, Value>,
}

/// A cookie value in the right shape (22 base64url chars) that the server
/// never issued.
const FORGED: &str = "session=AAAAAAAAAAAAAAAAAAAAAA";

// ---------------------------------------------------------------------------
// Handlers.

#[allow(
    clippy::unused_async,
    reason = "axum handlers are async fns even when they do not await"
)]
mod handlers {
    use axum::RequestPartsExt as _;
    use axum::extract::Path;
    use http::request::Parts;

    use super::{BTreeMap, Bag, Json, Session, SessionHandle, Value, json, millis};

    pub(super) async fn read_bag(bag: Session<Bag>) -> Json<BTreeMap<String, Value>> {
        Json(bag.values.clone())
    }

    pub(super) async fn replace_bag(
        mut bag: Session<Bag>,
        Json(values): Json<BTreeMap<String, Value>>,
    ) -> &'static str {
        bag.values = values;
        "ok"
    }

    pub(super) async fn set_value(
        Path((key, value)): Path<(String, String)>,
        mut bag: Session<Bag>,
    ) -> &'static str {
        bag.values.insert(key, Value::String(value));
        "ok"
    }

    pub(super) async fn clear(handle: SessionHandle) -> &'static str {
        handle.clear();
        "cleared"
    }

    pub(super) async fn destroy(handle: SessionHandle) -> &'static str {
        handle.destroy();
        "destroyed"
    }

    pub(super) async fn regenerate(handle: SessionHandle) -> &'static str {
        handle.regenerate_id();
        "regenerated"
    }

    pub(super) async fn regenerate_then_clear(handle: SessionHandle) -> &'static str {
        handle.regenerate_id();
        handle.clear();
        "regenerated and cleared"
    }

    /// Regenerate, clear, then write: the write goes to a new session.
    pub(super) async fn regenerate_clear_write(
        Path(value): Path<String>,
        handle: SessionHandle,
        mut parts: Parts,
    ) -> &'static str {
        handle.regenerate_id();
        handle.clear();
        let mut bag: Session<Bag> = parts.extract().await.expect("session after clear");
        bag.values.insert("after".into(), Value::String(value));
        "ok"
    }

    /// Writes, then destroys: a session that never got an id.
    pub(super) async fn write_then_destroy(
        handle: SessionHandle,
        mut bag: Session<Bag>,
    ) -> &'static str {
        bag.values.insert("doomed".into(), Value::Bool(true));
        handle.destroy();
        "destroyed"
    }

    pub(super) async fn meta(handle: SessionHandle) -> Json<Value> {
        Json(meta_json(&handle))
    }

    /// Writes, and reports the metadata as seen inside the writing request.
    pub(super) async fn set_then_meta(
        Path((key, value)): Path<(String, String)>,
        handle: SessionHandle,
        mut bag: Session<Bag>,
    ) -> Json<Value> {
        bag.values.insert(key, Value::String(value));
        Json(meta_json(&handle))
    }

    /// Both extractors in one handler: the id and the data.
    pub(super) async fn bag_and_id(handle: SessionHandle, bag: Session<Bag>) -> Json<Value> {
        Json(json!({
            "has_id": handle.id().is_some(),
            "values": bag.values,
        }))
    }

    fn meta_json(handle: &SessionHandle) -> Value {
        json!({
            "id": handle.id().map(|id| id.to_string()),
            "created_ms": handle.created_at().map(millis),
            "expires_ms": handle.expires_at().map(millis),
            "remaining_ms": handle
                .remaining()
                .map(|d| u64::try_from(d.as_millis()).unwrap()),
        })
    }
}

fn millis(time: SystemTime) -> u64 {
    u64::try_from(time.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// The routes every fixture serves, before the layer is applied.
fn routes() -> Router {
    use handlers::{
        bag_and_id, clear, destroy, meta, read_bag, regenerate, regenerate_clear_write,
        regenerate_then_clear, replace_bag, set_then_meta, set_value, write_then_destroy,
    };
    let admin = Router::new()
        .route("/bag", get(read_bag))
        .route("/set/{key}/{value}", post(set_value))
        .route("/clear", post(clear));
    Router::new()
        .route("/plain", get(|| async { "no session here" }))
        .route("/bag", get(read_bag).post(replace_bag))
        .route("/set/{key}/{value}", post(set_value))
        .route("/clear", post(clear))
        .route("/destroy", post(destroy))
        .route("/regenerate", post(regenerate))
        .route("/regenerate-then-clear", post(regenerate_then_clear))
        .route(
            "/regenerate-clear-write/{value}",
            post(regenerate_clear_write),
        )
        .route("/write-then-destroy", post(write_then_destroy))
        .route("/meta", get(meta))
        .route("/set-meta/{key}/{value}", post(set_then_meta))
        .route("/bag-and-id", get(bag_and_id))
        .nest("/admin", admin)
}

// ---------------------------------------------------------------------------
// A store that logs the keys it is asked to save under, so that a test can
// check what the store holds under an old key (raw ids are never exposed).

#[derive(Clone, Debug)]
struct KeyLog {
    inner: CountingStore,
    saved: Arc<Mutex<Vec<SessionKey>>>,
}

impl SessionStore for KeyLog {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>, StoreError> {
        self.inner.load(key).await
    }

    async fn save(&self, key: &SessionKey, changes: &Changeset) -> Result<SaveOutcome, StoreError> {
        self.saved.lock().unwrap().push(*key);
        self.inner.save(key, changes).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.inner.delete(key).await
    }

    async fn touch(
        &self,
        key: &SessionKey,
        last_seen_ms: u64,
        expires_at_ms: u64,
    ) -> Result<bool, StoreError> {
        self.inner.touch(key, last_seen_ms, expires_at_ms).await
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.inner.exists(key).await
    }
}

struct Fixture {
    app: Router,
    store: CountingStore,
    saved_keys: Arc<Mutex<Vec<SessionKey>>>,
    clock: Arc<ManualClock>,
}

impl Fixture {
    fn new() -> Self {
        Self::with(|b| b)
    }

    fn with(configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder) -> Self {
        let clock = ManualClock::new();
        let store = CountingStore::new(Arc::clone(&clock));
        let saved_keys = Arc::default();
        let mut fixture = Self {
            app: Router::new(),
            store,
            saved_keys,
            clock,
        };
        fixture.app = fixture.another_app(configure);
        fixture
    }

    /// The same routes behind another layer over the same store and clock.
    fn another_app(
        &self,
        configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
    ) -> Router {
        let store = KeyLog {
            inner: self.store.clone(),
            saved: Arc::clone(&self.saved_keys),
        };
        let clock: Arc<ManualClock> = Arc::clone(&self.clock);
        let layer = configure(SessionLayer::builder(store).clock(clock))
            .build()
            .expect("a valid configuration");
        routes().layer(layer)
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_secs() * 1000
    }

    fn saved_keys(&self) -> Vec<SessionKey> {
        self.saved_keys.lock().unwrap().clone()
    }

    /// Creates a session holding `{key: value}` and returns its cookie.
    async fn preload(&self, key: &str, value: &str) -> String {
        let r = submit(&self.app, &format!("/set/{key}/{value}"), None).await;
        assert_eq!(r.status, 200);
        r.cookie()
    }
}

fn session_value(cookie: &str) -> &str {
    cookie.split_once('=').unwrap().1
}

fn body_json(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

#[derive(Debug, Deserialize)]
struct Meta {
    id: Option<String>,
    created_ms: Option<u64>,
    expires_ms: Option<u64>,
    remaining_ms: Option<u64>,
}

async fn meta(app: &Router, cookie: Option<&str>) -> Meta {
    let r = fetch(app, "/meta", cookie).await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// A GET with a raw `Cookie` header value (which may not be UTF-8).
async fn fetch_raw_cookie(app: &Router, method: &str, uri: &str, cookie: HeaderValue) -> Reply {
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    common::reply(app, request).await
}

/// Asserts the attributes every cookie of the default configuration carries.
fn assert_default_attributes(set_cookie: &str) {
    assert_eq!(
        attr(set_cookie, "Path").as_deref(),
        Some("/"),
        "{set_cookie}"
    );
    assert!(has_flag(set_cookie, "Secure"), "{set_cookie}");
    assert!(has_flag(set_cookie, "HttpOnly"), "{set_cookie}");
    assert_eq!(
        attr(set_cookie, "SameSite").as_deref(),
        Some("Lax"),
        "{set_cookie}"
    );
    assert!(attr(set_cookie, "Domain").is_none(), "{set_cookie}");
}

// ---------------------------------------------------------------------------
// Middleware (test_middleware.py)

/// 1. No cookie; the handler reads the session → default data.
#[tokio::test]
async fn s01_no_cookie_reads_default_data() {
    let f = Fixture::new();
    let r = fetch(&f.app, "/bag", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(body_json(&r), json!({}));
    assert!(r.set_cookies.is_empty());
    assert_eq!(f.store.counts.io(), 0, "no cookie: nothing to load");
}

/// 2. A cookie with an id the store does not know → default data.
#[tokio::test]
async fn s02_unknown_id_reads_default_data() {
    let f = Fixture::new();
    f.preload("other", "session").await;
    let r = fetch(&f.app, "/bag", Some(FORGED)).await;
    assert_eq!(r.status, 200);
    assert_eq!(body_json(&r), json!({}));
    assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
}

/// 3. A stored session, the cookie carries its id → the handler sees the data.
#[tokio::test]
async fn s03_stored_session_is_visible_to_the_handler() {
    let f = Fixture::new();
    let cookie = f.preload("user", "alice").await;
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert_eq!(body_json(&r), json!({"user": "alice"}));
    assert!(
        r.set_cookies.is_empty(),
        "a read-only request sends no cookie"
    );
}

/// 4. No cookie; the handler writes → Set-Cookie for the new session.
#[tokio::test]
async fn s04_first_write_sets_a_session_cookie() {
    let f = Fixture::new();
    let r = submit(&f.app, "/set/user/alice", None).await;
    assert_eq!(r.status, 200);
    let set = r.set_cookie().expect("a Set-Cookie header");
    assert!(set.starts_with("session="), "{set}");
    assert!(!is_removal(set));
    assert_default_attributes(set);
    assert_eq!(session_value(&r.cookie()).len(), 22);
    assert_eq!(f.store.counts.saves(), 1);
}

/// 5. An existing session; the handler writes → Set-Cookie present (same id:
/// only regeneration changes it).
#[tokio::test]
async fn s05_write_to_existing_session_sets_the_cookie_again() {
    let f = Fixture::new();
    let cookie = f.preload("a", "1").await;
    let r = submit(&f.app, "/set/b/2", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert!(!r.has_removal());
    assert_eq!(r.cookie(), cookie, "a write keeps the session's id");
    assert_default_attributes(r.set_cookie().unwrap());
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({"a": "1", "b": "2"}));
}

/// 6. A stored session; the handler clears it → a Set-Cookie that expires the
/// cookie, with the same attributes as the session cookie.
#[tokio::test]
async fn s06_clearing_a_session_expires_the_cookie() {
    let f = Fixture::new();
    let cookie = f.preload("a", "1").await;
    let r = submit(&f.app, "/clear", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    let set = r.set_cookie().expect("a removal cookie");
    assert!(is_removal(set), "Max-Age=0 expected: {set}");
    assert!(set.starts_with("session=;"), "empty value: {set}");
    assert!(attr(set, "Expires").is_some(), "{set}");
    assert_default_attributes(set);

    // destroy() does the same.
    let cookie = f.preload("b", "2").await;
    let r = submit(&f.app, "/destroy", Some(&cookie)).await;
    let set = r.set_cookie().expect("a removal cookie");
    assert!(is_removal(set), "{set}");
    assert_default_attributes(set);
}

/// 7. Same, with a cookie domain configured → the removal cookie carries the
/// Domain (and the other configured attributes).
#[tokio::test]
async fn s07_removal_cookie_carries_the_configured_domain() {
    let f = Fixture::with(|b| {
        b.domain("example.com")
            .same_site(SameSite::Strict)
            .http_only(false)
    });
    let r = submit(&f.app, "/set/a/1", None).await;
    let set = r.set_cookie().unwrap().to_owned();
    assert_eq!(attr(&set, "Domain").as_deref(), Some("example.com"));
    let cookie = r.cookie();
    let r = submit(&f.app, "/clear", Some(&cookie)).await;
    let removal = r.set_cookie().expect("a removal cookie");
    assert!(is_removal(removal), "{removal}");
    for name in ["Domain", "Path", "SameSite"] {
        assert_eq!(attr(removal, name), attr(&set, name), "{name}: {removal}");
    }
    for flag in ["Secure", "HttpOnly"] {
        assert_eq!(has_flag(removal, flag), has_flag(&set, flag), "{flag}");
    }
    assert!(!has_flag(removal, "HttpOnly"));
}

/// 8. Same → the store no longer holds the record afterwards.
#[tokio::test]
async fn s08_clearing_a_session_deletes_the_stored_record() {
    let f = Fixture::new();
    let cookie = f.preload("a", "1").await;
    assert_eq!(f.store.inner.len(), 1);
    submit(&f.app, "/clear", Some(&cookie)).await;
    assert_eq!(f.store.counts.deletes(), 1);
    assert!(f.store.inner.is_empty());
    let key = f.saved_keys()[0];
    assert!(!f.store.inner.exists(&key).await.unwrap());
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({}), "the old cookie reads defaults");
}

/// 9. A cookie with an unknown id; the handler clears → no Set-Cookie at all.
#[tokio::test]
async fn s09_clearing_an_unknown_session_sets_no_cookie() {
    let f = Fixture::new();
    let r = submit(&f.app, "/clear", Some(FORGED)).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
    assert_eq!(f.store.counts.saves(), 0);
    assert_eq!(f.store.counts.deletes(), 0);
}

/// 10. A lifetime of 1 s → Max-Age on the cookie.
#[tokio::test]
async fn s10_lifetime_puts_max_age_on_the_cookie() {
    let f = Fixture::with(|b| b.absolute_timeout(Duration::from_secs(1)));
    let r = submit(&f.app, "/set/a/1", None).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(1));

    let f = Fixture::with(|b| b.idle_timeout(Duration::from_secs(1)));
    let r = submit(&f.app, "/set/a/1", None).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(1));
}

/// 11. SameSite=None configured → `SameSite=None` on the cookie, with Secure.
#[tokio::test]
async fn s11_same_site_none_is_sent_with_secure() {
    let f = Fixture::with(|b| b.same_site(SameSite::None));
    let r = submit(&f.app, "/set/a/1", None).await;
    let set = r.set_cookie().unwrap();
    assert_eq!(attr(set, "SameSite").as_deref(), Some("None"), "{set}");
    assert!(has_flag(set, "Secure"), "{set}");
}

/// 12. Cookie path `/admin` → `Path=/admin` on the cookie.
#[tokio::test]
async fn s12_cookie_path_is_sent() {
    let f = Fixture::with(|b| b.path("/admin"));
    let r = submit(&f.app, "/admin/set/a/1", None).await;
    let set = r.set_cookie().unwrap();
    assert_eq!(attr(set, "Path").as_deref(), Some("/admin"), "{set}");
    let cookie = r.cookie();
    let r = fetch(&f.app, "/admin/bag", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({"a": "1"}));
}

/// 13. Cookie domain `example.com` → `Domain=example.com`.
#[tokio::test]
async fn s13_cookie_domain_is_sent() {
    let f = Fixture::with(|b| b.domain("example.com"));
    let r = submit(&f.app, "/set/a/1", None).await;
    let set = r.set_cookie().unwrap();
    assert_eq!(attr(set, "Domain").as_deref(), Some("example.com"), "{set}");
}

/// 14. Secure configured → `Secure`; turned off (plain-http development) → absent.
#[tokio::test]
async fn s14_secure_flag_follows_configuration() {
    let f = Fixture::with(|b| b.secure(true));
    let r = submit(&f.app, "/set/a/1", None).await;
    assert!(has_flag(r.set_cookie().unwrap(), "Secure"));

    let f = Fixture::with(|b| b.secure(false));
    let r = submit(&f.app, "/set/a/1", None).await;
    let set = r.set_cookie().unwrap();
    assert!(!has_flag(set, "Secure"), "{set}");
    let r = submit(&f.app, "/clear", Some(&r.cookie())).await;
    let removal = r.set_cookie().unwrap();
    assert!(is_removal(removal));
    assert!(!has_flag(removal, "Secure"), "{removal}");
}

/// 15. No lifetime (browser session) → neither Max-Age nor Expires.
#[tokio::test]
async fn s15_browser_session_cookie_has_no_max_age_or_expires() {
    let f = Fixture::new();
    let r = submit(&f.app, "/set/a/1", None).await;
    let set = r.set_cookie().unwrap();
    assert!(attr(set, "Max-Age").is_none(), "{set}");
    assert!(attr(set, "Expires").is_none(), "{set}");
    let cookie = r.cookie();
    let r = submit(&f.app, "/set/b/2", Some(&cookie)).await;
    let set = r.set_cookie().unwrap();
    assert!(attr(set, "Max-Age").is_none(), "{set}");
    assert!(attr(set, "Expires").is_none(), "{set}");
    assert!(meta(&f.app, Some(&cookie)).await.expires_ms.is_none());
}

/// 16. A lifetime given as a `Duration` is honoured, on the cookie and on the
/// server.
#[tokio::test]
async fn s16_lifetime_duration_is_honoured() {
    let f = Fixture::with(|b| b.absolute_timeout(Duration::from_hours(2)));
    let r = submit(&f.app, "/set/a/1", None).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(7200));

    let f = Fixture::with(|b| b.idle_timeout(Duration::from_mins(30)));
    let r = submit(&f.app, "/set/a/1", None).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(1800));
    let cookie = r.cookie();
    f.clock.advance(Duration::from_mins(29));
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({"a": "1"}));
    f.clock.advance(Duration::from_mins(31));
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({}), "expired after 30 idle minutes");

    // Both: the earlier deadline wins.
    let f = Fixture::with(|b| {
        b.idle_timeout(Duration::from_mins(30))
            .absolute_timeout(Duration::from_hours(2))
    });
    let r = submit(&f.app, "/set/a/1", None).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(1800));
}

/// 17. Cookie path `/admin`, request to `/`, the handler clears → no removal
/// cookie, store untouched. (A browser does not send a `Path=/admin` cookie
/// to `/`, so the request carries none.)
#[tokio::test]
async fn s17_clear_outside_the_cookie_path_leaves_the_session_alone() {
    let f = Fixture::with(|b| b.path("/admin"));
    let cookie = submit(&f.app, "/admin/set/a/1", None).await.cookie();
    let r = submit(&f.app, "/clear", None).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
    assert_eq!(f.store.counts.deletes(), 0);
    assert_eq!(f.store.inner.len(), 1);
    let r = fetch(&f.app, "/admin/bag", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({"a": "1"}));
}

/// 18. Invalid cookie names are refused when the layer is built; valid ones build.
#[test]
fn s18_invalid_cookie_names_are_refused_at_build_time() {
    for bad in [
        "bad name; inject=1",
        "bad\r\nname",
        "",
        "bad name",
        "a=b",
        "a;b",
        "sess,ion",
        "(session)",
        "s\u{e9}ssion",
        "tab\tname",
    ] {
        let err = SessionLayer::builder(MemoryStore::new())
            .cookie_name(bad)
            .build()
            .expect_err(bad);
        assert_eq!(
            err,
            ConfigError::InvalidCookieName(bad.to_owned()),
            "{bad:?}"
        );
    }
    for good in [
        "session",
        "my-session_v2",
        "SID",
        "__Host-sid",
        "__Secure-sid",
    ] {
        SessionLayer::builder(MemoryStore::new())
            .cookie_name(good)
            .build()
            .unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
}

/// 18. A `__Host-` name needs Secure, `Path=/` and no Domain.
#[test]
fn s18_host_prefix_rules_are_checked_at_build_time() {
    let host = || SessionLayer::builder(MemoryStore::new()).cookie_name("__Host-sid");
    assert_eq!(
        host().domain("example.com").build().unwrap_err(),
        ConfigError::HostPrefix
    );
    assert_eq!(
        host().path("/admin").build().unwrap_err(),
        ConfigError::HostPrefix
    );
    assert_eq!(
        host().secure(false).build().unwrap_err(),
        ConfigError::HostPrefix
    );
    host().path("/").secure(true).build().unwrap();
    assert_eq!(
        SessionLayer::builder(MemoryStore::new())
            .cookie_name("__Secure-sid")
            .secure(false)
            .build()
            .unwrap_err(),
        ConfigError::SecurePrefix
    );
}

/// 18. `SameSite=None` and `Partitioned` need Secure.
#[tokio::test]
async fn s18_same_site_none_and_partitioned_need_secure() {
    let builder = || SessionLayer::builder(MemoryStore::new());
    assert_eq!(
        builder()
            .same_site(SameSite::None)
            .secure(false)
            .build()
            .unwrap_err(),
        ConfigError::SameSiteNoneWithoutSecure
    );
    assert_eq!(
        builder()
            .partitioned(true)
            .secure(false)
            .build()
            .unwrap_err(),
        ConfigError::PartitionedWithoutSecure
    );
    builder().same_site(SameSite::None).build().unwrap();
    // With Secure, Partitioned builds and is sent.
    let f = Fixture::with(|b| b.partitioned(true));
    let r = submit(&f.app, "/set/a/1", None).await;
    let set = r.set_cookie().unwrap();
    assert!(has_flag(set, "Partitioned"), "{set}");
    assert!(has_flag(set, "Secure"), "{set}");
}

/// 18. A path or domain that would inject attributes is refused.
#[test]
fn s18_attribute_injection_through_path_or_domain_is_refused() {
    let builder = || SessionLayer::builder(MemoryStore::new());
    for bad in ["admin", "/a; Domain=evil.com", "/a b", "/a\r\nb", ""] {
        assert_eq!(
            builder().path(bad).build().unwrap_err(),
            ConfigError::InvalidPath(bad.to_owned()),
            "{bad:?}"
        );
    }
    for bad in ["example.com; Secure", "exa mple.com", "", "a\nb"] {
        assert_eq!(
            builder().domain(bad).build().unwrap_err(),
            ConfigError::InvalidDomain(bad.to_owned()),
            "{bad:?}"
        );
    }
}

/// 19. A cookie value with CR/LF or other unsafe bytes is treated as no
/// session: 200, defaults, never looked up, never a 500.
#[tokio::test]
async fn s19_cookie_with_unsafe_bytes_is_no_session() {
    // CR/LF cannot even reach a service: `http` refuses such header values.
    assert!(HeaderValue::from_bytes(b"session=a\r\nSet-Cookie: x=y").is_err());
    assert!(HeaderValue::from_str("session=a\nb").is_err());
    assert!(HeaderValue::from_bytes(b"session=a\0b").is_err());

    let f = Fixture::new();
    let real = f.preload("secret", "data").await;
    let id = session_value(&real).to_owned();
    let mut non_utf8 = b"session=".to_vec();
    non_utf8.extend_from_slice(&[0xff, 0xfe, 0x80, 0xc3]);
    non_utf8.extend_from_slice(&id.as_bytes()[..18]);
    let mut utf8_tail = format!("session={}", &id[..21]).into_bytes();
    utf8_tail.extend_from_slice("\u{e9}".as_bytes());
    let values: Vec<HeaderValue> = vec![
        HeaderValue::from_static("session=abc def"),
        HeaderValue::from_static("session=\"quoted\""),
        HeaderValue::from_static("session=abc;inject=1"),
        HeaderValue::from_static("session="),
        HeaderValue::from_static("session=abc\tdef"),
        HeaderValue::from_bytes(&non_utf8).unwrap(),
        HeaderValue::from_bytes(&utf8_tail).unwrap(),
        HeaderValue::from_str(&format!("session={id} junk")).unwrap(),
        HeaderValue::from_str(&format!("session=\"{id}")).unwrap(),
        HeaderValue::from_str(&format!("session={id}%00")).unwrap(),
        HeaderValue::from_str(&format!("session={id}=")).unwrap(),
    ];
    for value in values {
        let loads = f.store.counts.loads();
        let r = fetch_raw_cookie(&f.app, "GET", "/bag", value.clone()).await;
        assert_eq!(r.status, 200, "{value:?}: {}", r.body);
        assert_eq!(body_json(&r), json!({}), "{value:?}");
        assert!(
            r.set_cookies.iter().all(|c| is_removal(c)),
            "{value:?}: only a removal may be sent: {:?}",
            r.set_cookies
        );
        assert_eq!(f.store.counts.loads(), loads, "{value:?} was looked up");

        // A write with such a cookie creates a fresh, server-made session.
        let r = fetch_raw_cookie(&f.app, "POST", "/set/k/v", value.clone()).await;
        assert_eq!(r.status, 200, "{value:?}: {}", r.body);
        let fresh = r.cookie();
        assert_eq!(session_value(&fresh).len(), 22, "{value:?}");
        assert_ne!(session_value(&fresh), id, "{value:?}");
    }
    // The real session was never touched.
    let r = fetch(&f.app, "/bag", Some(&real)).await;
    assert_eq!(body_json(&r), json!({"secret": "data"}));
}

/// 20. The store's read fails → a server error: 503 with Retry-After.
#[tokio::test]
async fn s20_store_read_failure_is_503_with_retry_after() {
    let f = Fixture::new();
    let cookie = f.preload("a", "1").await;
    f.store.counts.set_down(true);
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers.get(http::header::RETRY_AFTER).unwrap(), "5");
    assert!(r.set_cookies.is_empty());
    assert!(!r.body.contains("switched off"), "no internals: {}", r.body);
    let r = fetch(&f.app, "/meta", Some(&cookie)).await;
    assert_eq!(r.status, 503, "SessionHandle fails the same way");

    // A request with nothing to load does not need the store.
    let r = fetch(&f.app, "/bag", None).await;
    assert_eq!(r.status, 200);

    f.store.counts.set_down(false);
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({"a": "1"}), "data survives the outage");
}

// ---------------------------------------------------------------------------
// Autoloading (test_autoloading.py)

/// 23. The layer over every route → the handler sees the stored data without
/// any explicit load; several extractors share one load.
#[tokio::test]
async fn s23_handler_sees_stored_data_without_loading_it() {
    let f = Fixture::new();
    let cookie = f.preload("user", "alice").await;
    let loads = f.store.counts.loads();
    let r = fetch(&f.app, "/bag-and-id", Some(&cookie)).await;
    assert_eq!(
        body_json(&r),
        json!({"has_id": true, "values": {"user": "alice"}})
    );
    assert_eq!(f.store.counts.loads() - loads, 1, "one load per request");
}

/// Routes under `/app` and `/admin` inside the layer; `/` and `/public/…` outside.
fn split_app(store: CountingStore) -> Router {
    use handlers::{read_bag, set_value};
    let app = Router::new()
        .route("/", get(read_bag))
        .route("/{id}/users", get(read_bag))
        .route("/login/{key}/{value}", post(set_value))
        .route("/static", get(|| async { "static" }));
    let admin = Router::new()
        .route("/", get(read_bag))
        .route("/settings", get(read_bag));
    Router::new()
        .nest("/app", app)
        .nest("/admin", admin)
        .layer(SessionLayer::new(store))
        // Routes added after `layer` are not wrapped by it.
        .route("/", get(|| async { "home" }))
        .route("/public/{page}", get(|| async { "public" }))
}

/// 24. Sessions for `/admin` and `/app` → `/app`, `/admin`, `/app/1/users`,
/// `/admin/settings` see the data; `/` does not load.
#[tokio::test]
async fn s24_routers_under_the_layer_see_the_session_and_others_do_not_load() {
    let store = CountingStore::new(ManualClock::new());
    let app = split_app(store.clone());
    let cookie = submit(&app, "/app/login/user/alice", None).await.cookie();
    for path in ["/app", "/admin", "/app/1/users", "/admin/settings"] {
        let loads = store.counts.loads();
        let r = fetch(&app, path, Some(&cookie)).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(body_json(&r), json!({"user": "alice"}), "{path}");
        assert_eq!(store.counts.loads() - loads, 1, "{path}");
    }
    let io = store.counts.io();
    let r = fetch(&app, "/", Some(&cookie)).await;
    assert_eq!(r.body, "home");
    assert_eq!(store.counts.io(), io, "`/` does not load");
    assert!(r.set_cookies.is_empty());
}

/// 25. **differs**: starsessions matches paths (string or regex) to autoload;
/// ours loads lazily on extraction, for the routers the layer wraps. Routes
/// outside the layer never touch the store or set cookies, whatever the
/// cookie; routes inside that do not extract do no I/O either; routes inside
/// that extract see the data.
#[tokio::test]
async fn s25_routes_outside_the_layer_never_touch_the_store_or_set_cookies() {
    let store = CountingStore::new(ManualClock::new());
    let app = split_app(store.clone());
    let cookie = submit(&app, "/app/login/user/alice", None).await.cookie();
    let io = store.counts.io();
    for path in ["/", "/public/about", "/public/1/users"] {
        for sent in [
            Some(cookie.as_str()),
            Some("session=broken"),
            Some(FORGED),
            None,
        ] {
            let r = fetch(&app, path, sent).await;
            assert!(r.status == 200 || r.status == 404, "{path}: {}", r.status);
            assert!(
                r.set_cookies.is_empty(),
                "{path} {sent:?}: {:?}",
                r.set_cookies
            );
        }
    }
    // Inside the layer but never extracting: lazy, so nothing happens.
    for sent in [Some(cookie.as_str()), Some("session=broken"), None] {
        let r = fetch(&app, "/app/static", sent).await;
        assert_eq!(r.body, "static");
        assert!(r.set_cookies.is_empty(), "{sent:?}");
    }
    assert_eq!(store.counts.io(), io, "no store I/O outside extraction");
    // Inside and extracting: the data.
    let r = fetch(&app, "/app/7/users", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({"user": "alice"}));
    // The same malformed cookie inside an extracting route is cleared there.
    let r = fetch(&app, "/admin", Some("session=broken")).await;
    assert!(r.has_removal(), "{:?}", r.set_cookies);
}

// ---------------------------------------------------------------------------
// Metadata (test_metadata.py)

/// 26. A new session: created = last access = now, lifetime = the configured
/// one. (The id and times exist once the session is first saved.)
#[tokio::test]
async fn s26_new_session_metadata() {
    let f = Fixture::with(|b| b.idle_timeout(Duration::from_mins(1)));
    let t0 = f.now_ms();
    let r = submit(&f.app, "/set-meta/a/1", None).await;
    let inside: Meta = serde_json::from_str(&r.body).unwrap();
    assert!(
        inside.id.is_none(),
        "no id until the first save: {inside:?}"
    );
    assert!(inside.created_ms.is_none() && inside.expires_ms.is_none());
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(60));
    let cookie = r.cookie();

    let m = meta(&f.app, Some(&cookie)).await;
    assert!(m.id.is_some());
    assert_eq!(m.created_ms, Some(t0));
    // Idle expiry: expires = last access + idle, so last access = created = now.
    assert_eq!(m.expires_ms, Some(t0 + 60_000));
    assert_eq!(m.remaining_ms, Some(60_000));
}

/// 27. An existing session: created is kept, last access moves, and the
/// server's configured lifetime wins over whatever the store recorded.
#[tokio::test]
async fn s27_existing_session_keeps_created_at_and_configured_lifetime_wins() {
    // Created is kept, last access moves with a write.
    let f = Fixture::with(|b| b.idle_timeout(Duration::from_mins(1)));
    let t0 = f.now_ms();
    let cookie = f.preload("a", "1").await;
    f.clock.advance(Duration::from_secs(20));
    let r = submit(&f.app, "/set/b/2", Some(&cookie)).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(60));
    f.clock.advance(Duration::from_secs(1));
    let m = meta(&f.app, Some(&cookie)).await;
    assert_eq!(m.created_ms, Some(t0));
    assert_eq!(m.expires_ms, Some(t0 + 20_000 + 60_000));
    assert_eq!(m.remaining_ms, Some(59_000));

    // The session was stored by a layer with a 60 s lifetime; a layer over
    // the same store configured with 30 s enforces 30 s.
    let f = Fixture::with(|b| b.absolute_timeout(Duration::from_mins(1)));
    let t0 = f.now_ms();
    let cookie = f.preload("a", "1").await;
    let short = f.another_app(|b| b.absolute_timeout(Duration::from_secs(30)));
    f.clock.advance(Duration::from_secs(5));
    let m = meta(&short, Some(&cookie)).await;
    assert_eq!(m.created_ms, Some(t0));
    assert_eq!(m.expires_ms, Some(t0 + 30_000));
    assert_eq!(m.remaining_ms, Some(25_000));
    let r = submit(&short, "/set/b/2", Some(&cookie)).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(25));
    f.clock.advance(Duration::from_secs(35));
    let r = fetch(&short, "/bag", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({}), "expired under the 30 s config");
}

/// 27 (continued): a shorter idle timeout configured after the session was
/// stored wins over the stored deadline: once the new config is in effect,
/// idling longer than it expires the session on the server, even though the
/// store's deadline (and the browser's Max-Age) came from the old config.
#[tokio::test]

async fn s27_shorter_configured_idle_timeout_wins_over_the_stored_deadline() {
    let f = Fixture::with(|b| b.idle_timeout(Duration::from_mins(1)));
    let t0 = f.now_ms();
    let cookie = f.preload("a", "1").await;
    let short = f.another_app(|b| b.idle_timeout(Duration::from_secs(30)));
    f.clock.advance(Duration::from_secs(5));
    let r = fetch(&short, "/bag", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({"a": "1"}));
    let m = meta(&short, Some(&cookie)).await;
    assert!(
        m.expires_ms.unwrap() <= t0 + 5_000 + 30_000,
        "the 30 s idle config bounds the deadline: {m:?}"
    );
    // t0+36: 31 s idle since the last request, under a 30 s idle timeout.
    f.clock.advance(Duration::from_secs(31));
    let r = fetch(&short, "/bag", Some(&cookie)).await;
    assert_eq!(
        body_json(&r),
        json!({}),
        "idle longer than the configured 30 s"
    );
}

/// 27 (continued): a longer absolute timeout configured after the session was
/// stored wins too: the metadata reports it and the session lives that long.
#[tokio::test]

async fn s27_longer_configured_absolute_timeout_wins_over_the_stored_deadline() {
    let f = Fixture::with(|b| b.absolute_timeout(Duration::from_secs(30)));
    let t0 = f.now_ms();
    let cookie = f.preload("a", "1").await;
    let long = f.another_app(|b| b.absolute_timeout(Duration::from_mins(1)));
    f.clock.advance(Duration::from_secs(5));
    let m = meta(&long, Some(&cookie)).await;
    assert_eq!(m.created_ms, Some(t0));
    assert_eq!(m.expires_ms, Some(t0 + 60_000));
    assert_eq!(m.remaining_ms, Some(55_000));
    f.clock.advance(Duration::from_secs(35));
    let r = fetch(&long, "/bag", Some(&cookie)).await;
    assert_eq!(
        body_json(&r),
        json!({"a": "1"}),
        "at t0+40 the session reported to expire at t0+60 is gone"
    );
}

/// 28. **differs**: starsessions passes this by storing data under a
/// client-chosen id; ours never adopts one. An unknown id gets a fresh
/// server-generated id when written, and its metadata then tracks the last
/// access on each request (reads included, subject to the refresh throttle).
#[tokio::test]
async fn s28_unknown_id_gets_a_fresh_server_id_and_metadata_tracks_last_access() {
    let f = Fixture::with(|b| b.idle_timeout(Duration::from_mins(1)));
    let t0 = f.now_ms();
    let r = submit(&f.app, "/set/a/1", Some(FORGED)).await;
    let cookie = r.cookie();
    assert_ne!(cookie, FORGED, "a client-chosen id is never adopted");
    assert_eq!(session_value(&cookie).len(), 22);
    let forged = meta(&f.app, Some(FORGED)).await;
    assert!(
        forged.id.is_none() && forged.created_ms.is_none(),
        "{forged:?}"
    );
    let r = fetch(&f.app, "/bag", Some(FORGED)).await;
    assert_eq!(
        body_json(&r),
        json!({}),
        "nothing lives under the forged id"
    );

    let m = meta(&f.app, Some(&cookie)).await;
    let id = m.id.clone().expect("an id");
    assert_eq!(m.created_ms, Some(t0));
    assert_eq!(m.expires_ms, Some(t0 + 60_000));

    // A write at t0+10: last access moves.
    f.clock.advance(Duration::from_secs(10));
    submit(&f.app, "/set/b/2", Some(&cookie)).await;
    let m = meta(&f.app, Some(&cookie)).await;
    assert_eq!(m.expires_ms, Some(t0 + 70_000));
    // A read at t0+40 (past a quarter of the idle timeout since the last
    // refresh): last access moves again, without a write.
    f.clock.advance(Duration::from_secs(30));
    let saves = f.store.counts.saves();
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(60));
    assert_eq!(f.store.counts.saves(), saves);
    let m = meta(&f.app, Some(&cookie)).await;
    assert_eq!(m.expires_ms, Some(t0 + 100_000));
    assert_eq!(m.created_ms, Some(t0));
    assert_eq!(m.id, Some(id), "same session throughout");
}

// ---------------------------------------------------------------------------
// Expiry (test_expiring_session.py, test_rolling_session.py)

/// 29. Absolute lifetime 10 s: writes at t0 and t0+2 → the expiry stays put
/// (Max-Age 10 then 8).
#[tokio::test]
async fn s29_absolute_lifetime_counts_down() {
    let f = Fixture::with(|b| b.absolute_timeout(Duration::from_secs(10)));
    let t0 = f.now_ms();
    let r = submit(&f.app, "/set/a/1", None).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(10));
    let cookie = r.cookie();
    f.clock.advance(Duration::from_secs(2));
    let r = submit(&f.app, "/set/b/2", Some(&cookie)).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(8));
    assert_eq!(
        meta(&f.app, Some(&cookie)).await.expires_ms,
        Some(t0 + 10_000)
    );
    // Regenerating the id does not restart the absolute lifetime.
    f.clock.advance(Duration::from_secs(1));
    let r = submit(&f.app, "/regenerate", Some(&cookie)).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(7));
    let cookie = r.cookie();
    assert_eq!(
        meta(&f.app, Some(&cookie)).await.expires_ms,
        Some(t0 + 10_000)
    );
    // A read never moves an absolute deadline.
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
    f.clock.advance(Duration::from_secs(7));
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({}), "gone at t0+10");
}

/// 30. **differs**: rolling lifetime 10 s → the expiry moves forward (Max-Age
/// 10 each time); a read-only refresh moves it without rewriting the data.
#[tokio::test]
async fn s30_rolling_lifetime_slides_without_rewriting_data() {
    let f = Fixture::with(|b| b.idle_timeout(Duration::from_secs(10)));
    let t0 = f.now_ms();
    let r = submit(&f.app, "/set/a/1", None).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(10));
    let cookie = r.cookie();
    f.clock.advance(Duration::from_secs(2));
    let r = submit(&f.app, "/set/b/2", Some(&cookie)).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(10));
    assert_eq!(f.store.counts.saves(), 2);
    assert_eq!(f.store.counts.touches(), 0);

    // t0+5, read only: more than a quarter of 10 s since the last refresh.
    f.clock.advance(Duration::from_secs(3));
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    assert_eq!(max_age(r.set_cookie().unwrap()), Some(10));
    assert_eq!(f.store.counts.touches(), 1, "the deadline was touched");
    assert_eq!(f.store.counts.saves(), 2, "the data was not rewritten");
    assert_eq!(
        meta(&f.app, Some(&cookie)).await.expires_ms,
        Some(t0 + 15_000)
    );

    // t0+14: alive only because the refresh moved the deadline from t0+12.
    f.clock.advance(Duration::from_secs(9));
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({"a": "1", "b": "2"}));
    assert_eq!(f.store.counts.saves(), 2);
}

// ---------------------------------------------------------------------------
// Session handling (test_session.py)

/// 31. Generated ids have a fixed length and are unique; regenerate gives an
/// id different from the old one.
#[tokio::test]
async fn s31_ids_are_fixed_length_unique_and_regenerate_changes_them() {
    let f = Fixture::new();
    let mut seen = HashSet::new();
    for _ in 0..1000 {
        let cookie = submit(&f.app, "/set/a/1", None).await.cookie();
        let id = session_value(&cookie).to_owned();
        assert_eq!(id.len(), 22, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "base64url: {id}"
        );
        assert!(seen.insert(id), "duplicate id");
    }
    assert_eq!(f.store.inner.len(), 1000);

    let old = f.preload("a", "1").await;
    let new = submit(&f.app, "/regenerate", Some(&old)).await.cookie();
    assert_ne!(session_value(&new), session_value(&old));
    assert_eq!(session_value(&new).len(), 22);
    assert!(!seen.contains(session_value(&new)));
}

/// 32. The current id is readable; after regenerate and save the old id no
/// longer exists in the store.
#[tokio::test]
async fn s32_regenerate_removes_the_old_id_from_the_store() {
    let f = Fixture::new();
    let old = f.preload("a", "1").await;
    let old_key = f.saved_keys()[0];
    let first = meta(&f.app, Some(&old)).await;
    let before = first.id.clone().expect("a readable id");
    assert_eq!(meta(&f.app, Some(&old)).await.id.as_deref(), Some(&*before));

    let new = submit(&f.app, "/regenerate", Some(&old)).await.cookie();
    let new_key = *f.saved_keys().last().unwrap();
    assert_ne!(new_key, old_key);
    assert!(
        !f.store.inner.exists(&old_key).await.unwrap(),
        "old id gone"
    );
    assert!(f.store.inner.exists(&new_key).await.unwrap());
    assert_eq!(f.store.inner.len(), 1);

    let second = meta(&f.app, Some(&new)).await;
    assert_ne!(second.id.expect("an id"), before);
    assert_eq!(
        second.created_ms, first.created_ms,
        "same session, same age"
    );
    assert_eq!(
        body_json(&fetch(&f.app, "/bag", Some(&new)).await),
        json!({"a": "1"})
    );
    assert_eq!(
        body_json(&fetch(&f.app, "/bag", Some(&old)).await),
        json!({})
    );
    assert!(meta(&f.app, Some(&old)).await.id.is_none());
}

/// 33. Destroying (or clearing) a session that has no id does not fail.
#[tokio::test]
async fn s33_destroying_a_session_without_id_does_not_fail() {
    let f = Fixture::new();
    for path in ["/destroy", "/clear"] {
        let r = submit(&f.app, path, None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.set_cookies.is_empty(), "{path}: {:?}", r.set_cookies);
    }
    assert_eq!(f.store.counts.io(), 0);

    // A session that exists only in this request, destroyed before it got an id.
    let r = submit(&f.app, "/write-then-destroy", None).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
    assert_eq!(f.store.counts.saves(), 0);
    assert!(f.store.inner.is_empty());

    // A session already gone: destroying it again does not fail either.
    let cookie = f.preload("a", "1").await;
    assert_eq!(submit(&f.app, "/destroy", Some(&cookie)).await.status, 200);
    assert_eq!(submit(&f.app, "/destroy", Some(&cookie)).await.status, 200);
    assert!(f.store.inner.is_empty());
}

/// 34. **differs** (a starsessions bug): regenerate followed by clear in one
/// request leaves no record in the store.
#[tokio::test]
async fn s34_regenerate_then_clear_leaves_no_record() {
    let f = Fixture::new();
    let cookie = f.preload("a", "1").await;
    let old_key = f.saved_keys()[0];
    let r = submit(&f.app, "/regenerate-then-clear", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert!(r.has_removal(), "{:?}", r.set_cookies);
    assert_eq!(f.store.inner.len(), 0);
    assert!(!f.store.inner.exists(&old_key).await.unwrap());
    assert_eq!(
        body_json(&fetch(&f.app, "/bag", Some(&cookie)).await),
        json!({})
    );
}

/// 34 (continued): regenerate, clear, then write → only the new session exists.
#[tokio::test]
async fn s34_regenerate_clear_then_write_keeps_only_the_new_session() {
    let f = Fixture::new();
    let cookie = f.preload("a", "1").await;
    let r = submit(&f.app, "/regenerate-clear-write/x", Some(&cookie)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new = r.cookie();
    assert_ne!(session_value(&new), session_value(&cookie));
    assert_eq!(f.store.inner.len(), 1);
    assert_eq!(
        body_json(&fetch(&f.app, "/bag", Some(&new)).await),
        json!({"after": "x"})
    );
    assert_eq!(
        body_json(&fetch(&f.app, "/bag", Some(&cookie)).await),
        json!({})
    );
}

// ---------------------------------------------------------------------------
// Serializer and stores

fn sample_map() -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    map.insert("null".into(), Value::Null);
    map.insert("bool".into(), json!(true));
    map.insert("int".into(), json!(-42));
    map.insert("big".into(), json!(u64::MAX));
    map.insert("float".into(), json!(1.5));
    map.insert(
        "text".into(),
        json!("h\u{e9}llo \"w\u{f6}rld\" \n\u{1f980}"),
    );
    map.insert("list".into(), json!([1, "two", null, [3]]));
    map.insert("nested".into(), json!({"a": {"b": [true, false]}, "c": {}}));
    map.insert(String::new(), json!("empty key"));
    map
}

/// 35. Codec round trip of a map of values.
#[test]
fn s35_json_codec_round_trips_a_map_of_values() {
    let map = sample_map();
    let bytes = JsonCodec::encode(&map).unwrap();
    let back: BTreeMap<String, Value> = JsonCodec::decode(&bytes).unwrap();
    assert_eq!(back, map);
    assert_eq!(JsonCodec::encode(&back).unwrap(), bytes, "deterministic");
    let empty = BTreeMap::<String, Value>::new();
    let back: BTreeMap<String, Value> =
        JsonCodec::decode(&JsonCodec::encode(&empty).unwrap()).unwrap();
    assert!(back.is_empty());
    assert!(JsonCodec::decode::<BTreeMap<String, Value>>(b"[1,2]").is_err());

    // The derived schema round-trips it too.
    let bag = Bag {
        values: map.clone(),
    };
    let fields = bag.encode_fields().unwrap();
    assert_eq!(fields.get("values"), Some(bytes.as_slice()));
    assert_eq!(Bag::decode_fields(1, &fields).unwrap().values, map);
}

/// 35 (continued): a `#[derive(SessionData)]` struct holding a map round-trips
/// through a request, stored as the codec's encoding.
#[tokio::test]
async fn s35_map_field_round_trips_through_a_request() {
    let f = Fixture::new();
    let map = sample_map();
    let body = serde_json::to_string(&map).unwrap();
    let r = send(&f.app, "POST", "/bag", None, Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.cookie();
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    let back: BTreeMap<String, Value> = serde_json::from_str(&r.body).unwrap();
    assert_eq!(back, map);

    let record = f
        .store
        .inner
        .load(&f.saved_keys()[0])
        .await
        .unwrap()
        .expect("stored");
    let ns = record.namespace(Bag::NAMESPACE).expect("the bag namespace");
    assert_eq!(ns.version, 1);
    assert_eq!(
        ns.fields.get("values"),
        Some(JsonCodec::encode(&map).unwrap().as_slice())
    );
}

/// 38. Memory store: write/read round trip; readable before its TTL and gone
/// after; removing a missing id does not fail.
#[tokio::test]
async fn s38_memory_store_round_trip_and_ttl() {
    let clock = ManualClock::new();
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let now = clock.now_secs() * 1000;
    let key = SessionKey::from_bytes([7; 32]);
    let fields: typed_sessions::FieldMap = [
        ("values", JsonCodec::encode(&sample_map()).unwrap()),
        ("other", b"\"x\"".to_vec()),
    ]
    .into_iter()
    .collect();
    let changes = Changeset::new(
        SaveMode::Create,
        now,
        now,
        now + 10_000,
        vec![NamespaceChange::new(
            "bag",
            1,
            None,
            NamespaceOp::Replace(fields.clone()),
        )],
    );
    assert!(matches!(
        store.save(&key, &changes).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
    let record = store.load(&key).await.unwrap().expect("round trip");
    assert_eq!(record.created_at_ms, now);
    assert_eq!(record.expires_at_ms, now + 10_000);
    assert_eq!(record.namespace("bag").unwrap().fields, fields);
    assert!(store.exists(&key).await.unwrap());

    clock.advance(Duration::from_millis(9_999));
    assert!(store.load(&key).await.unwrap().is_some(), "before its TTL");
    clock.advance(Duration::from_millis(1));
    assert!(store.load(&key).await.unwrap().is_none(), "gone at its TTL");
    assert!(!store.exists(&key).await.unwrap());
    assert!(store.is_empty());

    assert!(!store.delete(&key).await.unwrap(), "missing: Ok(false)");
    let never = SessionKey::from_bytes([9; 32]);
    assert!(!store.delete(&never).await.unwrap());
    assert!(!store.touch(&never, now, now + 99_000).await.unwrap());
}

/// 38 (continued): through a router, a browser-session cookie's data lives in
/// the memory store for the configured store TTL, then is gone.
#[tokio::test]
async fn s38_memory_store_ttl_through_a_router() {
    let f = Fixture::with(|b| b.store_ttl(Duration::from_mins(1)));
    let cookie = f.preload("a", "1").await;
    f.clock.advance(Duration::from_secs(10));
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({"a": "1"}), "readable before the TTL");
    assert!(
        r.set_cookies.is_empty(),
        "browser-session cookie: no Max-Age to re-send"
    );
    f.clock.advance(Duration::from_secs(51));
    let r = fetch(&f.app, "/bag", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({}), "gone after the TTL");
    assert!(f.store.inner.is_empty());
}

// ---------------------------------------------------------------------------
// Encryption and the cookie store (test_middleware.py's encrypted sessions,
// test_encryptors.py, test_cookie_store.py): 21, 22, 36, 37, through a
// `CookieStore`, where the whole session is sealed in the cookie.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::capture_logs;
use typed_sessions::stores::{CookieKey, CookieStore};

fn cookie_key(byte: u8) -> CookieKey {
    CookieKey::from_bytes(vec![byte; 32])
}

/// The routes every fixture serves, behind a layer over `store`.
fn cookie_app(store: CookieStore) -> Router {
    cookie_app_with(store, |b| b)
}

fn cookie_app_with(
    store: CookieStore,
    configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
) -> Router {
    let layer = configure(SessionLayer::builder(store))
        .build()
        .expect("a valid configuration");
    routes().layer(layer)
}

/// The bytes a sealed cookie carries.
fn sealed_bytes(cookie: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(session_value(cookie))
        .expect("a base64url cookie value")
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that `cookie` reads as an empty session on `app`, with a 200,
/// and that the cookie is cleared.
async fn assert_reads_empty_and_is_cleared(app: &Router, cookie: &str) {
    let r = fetch(app, "/bag", Some(cookie)).await;
    assert_eq!(r.status, 200, "{cookie}: {}", r.body);
    assert_eq!(body_json(&r), json!({}), "{cookie}");
    assert!(r.has_removal(), "{cookie}: {:?}", r.set_cookies);
}

/// 21. An encrypted session read with the wrong key → empty session, 200;
/// ours also clears the cookie, and logs why without the value.
#[tokio::test]
async fn s21_encrypted_session_with_the_wrong_key_reads_empty() {
    let right = cookie_app(CookieStore::private(cookie_key(1)));
    let r = submit(&right, "/set/user/alice", None).await;
    assert_eq!(r.status, 200);
    let cookie = r.cookie();

    let wrong = cookie_app(CookieStore::private(cookie_key(2)));
    let (logs, _guard) = capture_logs(tracing::Level::WARN);
    assert_reads_empty_and_is_cleared(&wrong, &cookie).await;
    let log = logs.text();
    assert!(log.contains("does not open"), "{log}");
    assert!(!log.contains(session_value(&cookie)), "value logged: {log}");
    let m = meta(&wrong, Some(&cookie)).await;
    assert!(m.id.is_none(), "no session under the wrong key");

    // A write with that cookie starts a new session under the wrong key's
    // layer; the original is untouched for the right key.
    let r = submit(&wrong, "/set/user/mallory", Some(&cookie)).await;
    assert_eq!(r.status, 200);
    assert!(!r.has_removal());
    let r = fetch(&right, "/bag", Some(&cookie)).await;
    assert_eq!(body_json(&r), json!({"user": "alice"}));
}

/// 22. An encrypted session read with the right key → the data round-trips,
/// also through another layer with the same key (a restart) and through a
/// fallback key after a rotation.
#[tokio::test]
async fn s22_encrypted_session_with_the_right_key_round_trips() {
    let map = sample_map();
    let body = serde_json::to_string(&map).unwrap();
    let app = cookie_app(CookieStore::private(cookie_key(1)));
    let r = send(&app, "POST", "/bag", None, Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.cookie();
    let bytes = sealed_bytes(&cookie);
    for clear in [&b"empty key"[..], b"nested", b"values", b"false"] {
        assert!(!holds(&bytes, clear), "{clear:?} in clear");
    }

    for reader in [app.clone(), cookie_app(CookieStore::private(cookie_key(1)))] {
        let r = fetch(&reader, "/bag", Some(&cookie)).await;
        assert_eq!(r.status, 200);
        let back: BTreeMap<String, Value> = serde_json::from_str(&r.body).unwrap();
        assert_eq!(back, map);
        assert!(r.set_cookies.is_empty(), "a read sends no cookie");
    }

    // Rotated: the old key as a fallback still opens it, and the cookie is
    // re-issued under the new primary key, which alone then opens it.
    let rotated = cookie_app(CookieStore::private(cookie_key(2)).fallback_key(cookie_key(1)));
    let r = fetch(&rotated, "/bag", Some(&cookie)).await;
    let back: BTreeMap<String, Value> = serde_json::from_str(&r.body).unwrap();
    assert_eq!(back, map);
    let reissued = r.cookie();
    let r = fetch(
        &cookie_app(CookieStore::private(cookie_key(2))),
        "/bag",
        Some(&reissued),
    )
    .await;
    let back: BTreeMap<String, Value> = serde_json::from_str(&r.body).unwrap();
    assert_eq!(back, map);
}

/// 36. Encryption round trip; two encryptions of the same data differ; the
/// wrong key and truncated input are rejected (an empty session, the
/// cookie cleared).
#[tokio::test]
async fn s36_encryption_round_trips_differs_each_time_and_rejects_bad_input() {
    // A clock that does not move: two writes from the same cookie seal
    // records that are identical byte for byte.
    let clock = ManualClock::new();
    let sealed_twice = |store: CookieStore| {
        let app = cookie_app_with(store, |b| b.clock(clock.clone()));
        async move {
            let first = submit(&app, "/set/a/1", None).await.cookie();
            let x = submit(&app, "/set/b/2", Some(&first)).await.cookie();
            let y = submit(&app, "/set/b/2", Some(&first)).await.cookie();
            for cookie in [&x, &y] {
                let r = fetch(&app, "/bag", Some(cookie)).await;
                assert_eq!(body_json(&r), json!({"a": "1", "b": "2"}), "round trip");
            }
            (app, x, y)
        }
    };

    // Signed (deterministic) shows that the two records are the same...
    let (_, x, y) = sealed_twice(CookieStore::signed(cookie_key(1))).await;
    assert_eq!(x, y, "the same record, signed twice");
    // ...and encryption still gives two different cookies: a fresh nonce,
    // so no run of bytes past the header is shared.
    let (app, x, y) = sealed_twice(CookieStore::private(cookie_key(1))).await;
    assert_ne!(x, y, "two encryptions of the same data");
    let (x_raw, y_raw) = (sealed_bytes(&x), sealed_bytes(&y));
    assert_eq!(x_raw.len(), y_raw.len());
    assert_eq!(x_raw[..2], y_raw[..2], "same format and key id");
    let shared = x_raw[2..].windows(8).filter(|w| holds(&y_raw, w)).count();
    assert_eq!(shared, 0, "nonce, ciphertext and tag all differ");

    // The wrong key.
    let wrong = cookie_app_with(CookieStore::private(cookie_key(2)), |b| {
        b.clock(clock.clone())
    });
    assert_reads_empty_and_is_cleared(&wrong, &x).await;

    // Truncated input: one character, the tag, half, all but the header.
    let value = session_value(&x);
    for keep in [value.len() - 1, value.len() - 22, value.len() / 2, 3, 0] {
        let truncated = format!("session={}", &value[..keep]);
        assert_reads_empty_and_is_cleared(&app, &truncated).await;
    }
    // The untouched cookie still opens.
    let r = fetch(&app, "/bag", Some(&x)).await;
    assert_eq!(body_json(&r), json!({"a": "1", "b": "2"}));
}

/// 37. The cookie store: write then read round-trips; a bad signature reads
/// as empty; a payload over the size limit is a clear error (500, the log
/// names the size and the budget, no cookie); a small one round-trips.
#[tokio::test]
async fn s37_cookie_store_round_trip_bad_signature_and_size_limit() {
    for store in [
        CookieStore::signed(cookie_key(1)),
        CookieStore::private(cookie_key(1)),
    ] {
        let app = cookie_app(store.max_cookie_size(512));
        let r = submit(&app, "/set/user/alice", None).await;
        assert_eq!(r.status, 200);
        let cookie = r.cookie();
        let r = fetch(&app, "/bag", Some(&cookie)).await;
        assert_eq!(body_json(&r), json!({"user": "alice"}));

        // A bad signature: one character of the tag (the last 16 bytes)
        // changed.
        let value = session_value(&cookie);
        let at = value.len() - 5;
        let swapped = if &value[at..=at] == "A" { "B" } else { "A" };
        let forged = format!("session={}{swapped}{}", &value[..at], &value[at + 1..]);
        assert_ne!(forged, cookie);
        assert_reads_empty_and_is_cleared(&app, &forged).await;

        // Over the size limit.
        let big = json!({"big": "x".repeat(600)}).to_string();
        let (logs, guard) = capture_logs(tracing::Level::ERROR);
        let r = send(&app, "POST", "/bag", Some(&cookie), Some(&big)).await;
        let log = logs.text();
        drop(guard);
        assert_eq!(r.status, 500, "{}", r.body);
        assert!(r.body.is_empty(), "no internals to the client: {}", r.body);
        assert!(r.set_cookies.is_empty(), "{:?}", r.set_cookies);
        assert!(log.contains("budget=512"), "{log}");
        let size: usize = log
            .split("size=")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse().ok())
            .unwrap_or_else(|| panic!("the size is logged: {log}"));
        assert!(size > 512, "{size}");
        // The browser keeps its previous cookie, which still holds the data.
        let r = fetch(&app, "/bag", Some(&cookie)).await;
        assert_eq!(body_json(&r), json!({"user": "alice"}));

        // A small payload round-trips.
        let small = json!({"small": "y"}).to_string();
        let r = send(&app, "POST", "/bag", Some(&cookie), Some(&small)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let cookie = r.cookie();
        assert!(cookie.len() <= 512);
        let r = fetch(&app, "/bag", Some(&cookie)).await;
        assert_eq!(body_json(&r), json!({"small": "y"}));
    }
}
