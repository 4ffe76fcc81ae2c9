//! The in-process peers shared by `requests.rs`, `allocs.rs`, `growth.rs`
//! and `memory.rs`: the scenarios, the request every peer receives, the
//! routes and handlers of each library, and the one sanity check.
//!
//! Include it with `#[path = "common/peers.rs"] mod peers;` next to
//! `#[path = "common/profile.rs"] mod profile;` (it implements [`BenchData`]
//! for `crate::profile::Profile`). Not every bench uses every item.
#![allow(dead_code)]

use std::sync::Mutex;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use http::{Request, header};
use http_body_util::BodyExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt as _;

use crate::profile::{CachedProfile, Profile};

/// The cookie name every peer uses, so requests are built identically.
pub const COOKIE_NAME: &str = "session";

/// The key under which the tower-sessions peers store the whole value.
pub const TS_KEY: &str = "data";

/// A stand-in cookie for bare axum, as long as typed-sessions' (22
/// base64url characters), so its requests are byte for byte as long.
pub const BARE_COOKIE: &str = "session=AAAAAAAAAAAAAAAAAAAAAA";

/// Session data a bench can carry: the same value goes to every library
/// (typed-sessions stores it field by field, tower-sessions as one value
/// under [`TS_KEY`]).
pub trait BenchData:
    typed_sessions::SessionData + Serialize + DeserializeOwned + Clone + Sync
{
    /// What a new session stores (`POST /login`).
    fn sample() -> Self;
    fn user_name(&self) -> &str;
    fn visits(&self) -> u64;
    fn visits_mut(&mut self) -> &mut u64;
}

macro_rules! bench_data {
    ($ty:ty) => {
        impl BenchData for $ty {
            fn sample() -> Self {
                <$ty>::sample()
            }
            fn user_name(&self) -> &str {
                &self.user_name
            }
            fn visits(&self) -> u64 {
                self.visits
            }
            fn visits_mut(&mut self) -> &mut u64 {
                &mut self.visits
            }
        }
    };
}

bench_data!(Profile);
bench_data!(CachedProfile);

/// The response body of the read and write routes, for every peer.
pub fn body_of<T: BenchData>(data: &T) -> String {
    format!("{}:{}", data.user_name(), data.visits())
}

/// The serde_json size of `T::sample()` as one object, in bytes.
pub fn json_size<T: BenchData>() -> usize {
    serde_json::to_vec(&T::sample())
        .expect("the data serializes")
        .len()
}

// --------------------------------------------------------------- scenarios

/// The scenarios of issue #11 that carry a session; A is the `bare_axum`
/// peer in each of them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Case {
    /// B: a read-only request on a valid session (`GET /read`).
    Read,
    /// C: increment a counter (`POST /write`).
    Write,
    /// D: a first request without cookie that stores `T::sample()` in a new
    /// session (`POST /login`).
    Create,
}

impl Case {
    pub const ALL: [Self; 3] = [Self::Read, Self::Write, Self::Create];

    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Create => "create",
        }
    }

    pub fn parse(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("unknown scenario {name:?} (read, write or create)"))
    }
}

/// A request of the benchmark: the same construction for every peer. A
/// create request carries no cookie.
pub fn request(case: Case, cookie: &str) -> Request<Body> {
    let builder = match case {
        Case::Read => Request::get("/read").header(header::COOKIE, cookie),
        Case::Write => Request::post("/write").header(header::COOKIE, cookie),
        Case::Create => Request::post("/login"),
    };
    builder
        .header(header::HOST, "bench.example")
        .body(Body::empty())
        .expect("a valid request")
}

/// Sends one request through a clone of `app` and drains the response body:
/// the timed unit of work. Returns the status, the body and whether the
/// response set a cookie.
pub async fn send(app: &Router, request: Request<Body>) -> (http::StatusCode, Bytes, bool) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let set_cookie = response.headers().contains_key(header::SET_COOKIE);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body, set_cookie)
}

/// The `name=value` part of a `Set-Cookie` header.
pub fn cookie_pair(response: &http::Response<Body>) -> String {
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("the login request sets a cookie")
        .to_str()
        .expect("ascii cookie");
    set_cookie
        .split(';')
        .next()
        .expect("a name=value pair")
        .to_owned()
}

/// One `POST /login` without a cookie: a new session holding the sample.
/// Returns its cookie's `name=value`.
pub async fn login(app: &Router) -> String {
    let response = app
        .clone()
        .oneshot(request(Case::Create, ""))
        .await
        .expect("infallible");
    assert!(
        response.status().is_success(),
        "login: {}",
        response.status()
    );
    cookie_pair(&response)
}

/// The visit count of a read or write response body `"{user_name}:{visits}"`.
pub fn visits_of(body: &Bytes) -> u64 {
    std::str::from_utf8(body)
        .ok()
        .and_then(|b| b.rsplit_once(':'))
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected body {body:?}"))
}

/// A peer of the comparison: its router and the cookie its requests carry.
pub struct Peer {
    pub name: &'static str,
    pub app: Router,
    /// The session made before timing (bare axum: [`BARE_COOKIE`]).
    pub cookie: String,
    /// Whether it has sessions (create must set a cookie).
    pub sessions: bool,
}

impl Peer {
    /// A session peer: `app` plus the cookie of one login.
    pub async fn with_session(name: &'static str, app: Router) -> Self {
        let cookie = login(&app).await;
        Self {
            name,
            app,
            cookie,
            sessions: true,
        }
    }
}

/// Checks, outside any timed loop, that a peer behaves as the benchmark
/// assumes: reads see the stored data and set no cookie, writes persist, a
/// create answers 200 and (session peers) sets a cookie.
pub async fn sanity_check(peer: &Peer) {
    let name = peer.name;
    let (status, body, set_cookie) = send(&peer.app, request(Case::Read, &peer.cookie)).await;
    assert_eq!(status, 200, "{name}: read status");
    let before = visits_of(&body);
    assert!(!set_cookie, "{name}: a read sets no cookie");

    let (status, body, _) = send(&peer.app, request(Case::Write, &peer.cookie)).await;
    assert_eq!(status, 200, "{name}: write status");
    assert_eq!(visits_of(&body), before + 1, "{name}: write");

    let (_, body, _) = send(&peer.app, request(Case::Read, &peer.cookie)).await;
    assert_eq!(visits_of(&body), before + 1, "{name}: the write persisted");

    let (status, body, set_cookie) = send(&peer.app, request(Case::Create, "")).await;
    assert_eq!(status, 200, "{name}: create status");
    assert_eq!(&body[..], b"ok", "{name}: create body");
    assert_eq!(
        set_cookie, peer.sessions,
        "{name}: a create sets a cookie exactly when the peer has sessions"
    );
}

// ---------------------------------------------------------------- bare axum

static BARE_PROFILE: Mutex<Option<Profile>> = Mutex::new(None);

/// Where bare axum's create stores its sample (apart from the profile that
/// read and write use, so a create does not reset their counter).
static BARE_CREATED: Mutex<Option<Profile>> = Mutex::new(None);

async fn bare_read() -> String {
    let guard = BARE_PROFILE.lock().expect("not poisoned");
    body_of(guard.as_ref().expect("initialised"))
}

async fn bare_write() -> String {
    let mut guard = BARE_PROFILE.lock().expect("not poisoned");
    let profile = guard.as_mut().expect("initialised");
    profile.visits += 1;
    body_of(profile)
}

async fn bare_login() -> &'static str {
    // The same work as a session peer's handler, without a session: the
    // sample is built and stored.
    *BARE_CREATED.lock().expect("not poisoned") = Some(Profile::sample());
    "ok"
}

/// Bare axum: the same handlers without sessions, on a process-wide
/// profile (scenario A).
pub fn bare() -> Peer {
    *BARE_PROFILE.lock().expect("not poisoned") = Some(Profile::sample());
    let app = Router::new()
        .route("/read", get(bare_read))
        .route("/write", post(bare_write))
        .route("/login", post(bare_login));
    Peer {
        name: "bare_axum",
        app,
        cookie: BARE_COOKIE.to_owned(),
        sessions: false,
    }
}

/// Bare axum behind one pass-through tower layer: the floor that any
/// session layer pays for being a layer (the request and response travel
/// through one more service and future).
pub fn noop_layer() -> Peer {
    let mut peer = bare();
    peer.name = "noop_layer";
    peer.app = peer.app.layer(tower::util::MapResponseLayer::new(
        |response: axum::response::Response| response,
    ));
    peer
}

// ---------------------------------------------------------- typed-sessions

async fn ours_read<T: BenchData>(data: typed_sessions::Session<T>) -> String {
    body_of(&*data)
}

async fn ours_write<T: BenchData>(mut data: typed_sessions::Session<T>) -> String {
    *data.visits_mut() += 1;
    body_of(&*data)
}

async fn ours_login<T: BenchData>(mut data: typed_sessions::Session<T>) -> &'static str {
    *data = T::sample();
    "ok"
}

/// typed-sessions' routes for `T`, without the layer.
pub fn ours_routes<T: BenchData>() -> Router {
    Router::new()
        .route("/read", get(ours_read::<T>))
        .route("/write", post(ours_write::<T>))
        .route("/login", post(ours_login::<T>))
}

/// typed-sessions' layer over `store`: default configuration, `Secure` off.
pub fn ours_layer(
    store: impl typed_sessions::stores::SessionBackend,
) -> typed_sessions::SessionLayer {
    typed_sessions::SessionLayer::builder(store)
        .cookie_name(COOKIE_NAME)
        .secure(false)
        .build()
        .expect("a valid configuration")
}

/// typed-sessions on its `MemoryStore`, routes for `T`, no session yet.
pub fn ours_memory_app<T: BenchData>() -> Router {
    ours_routes::<T>().layer(ours_layer(typed_sessions::stores::MemoryStore::new()))
}

/// typed-sessions with its `MemoryStore` and one session of `Profile`.
pub async fn typed_sessions() -> Peer {
    Peer::with_session("typed_sessions", ours_memory_app::<Profile>()).await
}

// ----------------------------------------------------------- tower-sessions

/// The handlers and routes of tower-sessions peers, for one tower-sessions
/// version (the in-memory peer is 0.15, the Redis peer 0.14: two crates
/// with the same API).
macro_rules! tower_routes {
    ($krate:ident) => {
        async fn read<T: BenchData>(session: $krate::Session) -> String {
            let data: T = session
                .get(TS_KEY)
                .await
                .expect("store works")
                .expect("the session holds the data");
            body_of(&data)
        }

        async fn write<T: BenchData>(session: $krate::Session) -> String {
            let mut data: T = session
                .get(TS_KEY)
                .await
                .expect("store works")
                .expect("the session holds the data");
            *data.visits_mut() += 1;
            session.insert(TS_KEY, &data).await.expect("store works");
            body_of(&data)
        }

        async fn login<T: BenchData>(session: $krate::Session) -> &'static str {
            session
                .insert(TS_KEY, T::sample())
                .await
                .expect("store works");
            "ok"
        }

        /// The routes for `T`, without the layer.
        pub fn routes<T: BenchData>() -> Router {
            Router::new()
                .route("/read", get(read::<T>))
                .route("/write", post(write::<T>))
                .route("/login", post(login::<T>))
        }
    };
}

/// tower-sessions 0.15 (the in-memory peer).
pub mod ts015 {
    use super::*;
    tower_routes!(tower_sessions);

    /// Routes for `T` over tower-sessions 0.15's `MemoryStore`, cookie
    /// `session`, `Secure` off, no session yet.
    pub fn memory_app<T: BenchData>() -> Router {
        let layer =
            tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
                .with_name(COOKIE_NAME)
                .with_secure(false);
        routes::<T>().layer(layer)
    }
}

/// tower-sessions 0.14 (the peer of tower-sessions-redis-store).
pub mod ts014 {
    use super::*;
    tower_routes!(tower_sessions_014);

    /// Routes for `T` over tower-sessions 0.14 with
    /// tower-sessions-redis-store 0.16 on a fred `Pool` of `pool_size`
    /// clients at `url`, cookie `session`, `Secure` off, no session yet.
    /// Its Redis key is the session id, which is the cookie value.
    pub async fn redis_app<T: BenchData>(url: &str, pool_size: usize) -> Router {
        use tower_sessions_redis_store::fred::prelude::{ClientLike as _, Config, Pool};
        let config = Config::from_url(url).expect("a valid Redis URL");
        let pool = Pool::new(config, None, None, None, pool_size).expect("a fred pool");
        let _connection_task = pool.init().await.expect("Redis answers");
        let store = tower_sessions_redis_store::RedisStore::new(pool);
        let layer = tower_sessions_014::SessionManagerLayer::new(store)
            .with_name(COOKIE_NAME)
            .with_secure(false);
        routes::<T>().layer(layer)
    }
}

/// Routes for `T` over typed-sessions' `RedisStore` at `url`, its keys
/// under `prefix`, no session yet.
pub async fn ours_redis_app<T: BenchData>(url: &str, prefix: &str) -> Router {
    let store = typed_sessions::stores::RedisStore::builder()
        .prefix(prefix)
        .open(url)
        .await
        .expect("Redis answers");
    ours_routes::<T>().layer(ours_layer(store))
}

/// tower-sessions 0.15 with its `MemoryStore` and one session of `Profile`.
pub async fn tower_sessions() -> Peer {
    Peer::with_session("tower_sessions", ts015::memory_app::<Profile>()).await
}

/// The in-memory peers of `requests.rs` and `allocs.rs`, bare axum first.
pub const PEER_NAMES: [&str; 5] = [
    "bare_axum",
    "noop_layer",
    "typed_sessions",
    "typed_cached",
    "tower_sessions",
];

/// A fresh peer by name (a new store, one session made by a login).
pub async fn peer(name: &str) -> Peer {
    match name {
        "bare_axum" => bare(),
        "noop_layer" => noop_layer(),
        "typed_sessions" => typed_sessions().await,
        "typed_cached" => {
            Peer::with_session("typed_cached", ours_memory_app::<CachedProfile>()).await
        }
        "tower_sessions" => tower_sessions().await,
        other => panic!("unknown peer {other:?}; one of {PEER_NAMES:?}"),
    }
}

/// All in-memory peers, bare axum first.
pub async fn peers() -> Vec<Peer> {
    let mut all = Vec::with_capacity(PEER_NAMES.len());
    for name in PEER_NAMES {
        all.push(peer(name).await);
    }
    all
}

/// A current-thread runtime: the request runs on the calling thread, so
/// no cross-thread wake-ups blur the comparison.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// An environment knob: `name` parsed, or `default` when unset.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} does not parse")),
        Err(_) => default,
    }
}
