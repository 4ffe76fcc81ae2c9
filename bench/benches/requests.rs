//! One read-only and one writing request through `Router::oneshot`:
//! typed-sessions (its `MemoryStore`) against bare axum and tower-sessions
//! (its `MemoryStore`). See `bench/README.md`.
//!
//! Every peer serves the same two routes with the same handler shape and the
//! same response body:
//! - `GET /read`: reads the profile, answers `"{user_name}:{visits}"`;
//! - `POST /write`: increments `visits`, answers the same body.

use std::sync::Mutex;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use criterion::{Criterion, criterion_group};
use http::{Request, header};
use http_body_util::BodyExt as _;
use std::hint::black_box;
use tower::ServiceExt as _;

/// The cookie name every peer uses, so requests are built identically.
const COOKIE_NAME: &str = "session";

#[path = "common/profile.rs"]
mod profile;
use profile::Profile;

/// The serde_json size of [`Profile::sample`] as one object, in bytes.
fn serialized_size() -> usize {
    serde_json::to_vec(&Profile::sample())
        .expect("the profile serializes")
        .len()
}

/// The response body of both routes, for every peer.
fn body_of(profile: &Profile) -> String {
    format!("{}:{}", profile.user_name, profile.visits)
}

/// A request of the benchmark: the same construction for every peer.
fn request(write: bool, cookie: &str) -> Request<Body> {
    Request::builder()
        .method(if write { "POST" } else { "GET" })
        .uri(if write { "/write" } else { "/read" })
        .header(header::HOST, "bench.example")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .expect("a valid request")
}

/// Sends one request through a clone of `app` and drains the response body:
/// the timed unit of work. Returns the status, the body and whether the
/// response set a cookie.
async fn send(app: &Router, request: Request<Body>) -> (http::StatusCode, Bytes, bool) {
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

fn text(body: &Bytes) -> &str {
    std::str::from_utf8(body).expect("utf-8 body")
}

/// A peer of the comparison: its router and the cookie header its requests carry.
struct Peer {
    name: &'static str,
    app: Router,
    cookie: String,
}

/// The `name=value` part of a `Set-Cookie` header.
fn cookie_pair(response: &http::Response<Body>) -> String {
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

// ---------------------------------------------------------------- bare axum

static BARE_PROFILE: Mutex<Option<Profile>> = Mutex::new(None);

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

/// Bare axum: the same handlers without sessions, on a process-wide profile.
async fn bare() -> Peer {
    *BARE_PROFILE.lock().expect("not poisoned") = Some(Profile::sample());
    let app = Router::new()
        .route("/read", get(bare_read))
        .route("/write", post(bare_write));
    // A cookie of the same shape as typed-sessions' (22 base64url chars),
    // so the request is byte for byte as long as the others.
    Peer {
        name: "bare_axum",
        app,
        cookie: format!("{COOKIE_NAME}=AAAAAAAAAAAAAAAAAAAAAA"),
    }
}

/// Bare axum behind one pass-through tower layer: the floor that any
/// session layer pays for being a layer (the request and response travel
/// through one more service and future).
async fn noop_layer() -> Peer {
    let mut peer = bare().await;
    peer.name = "noop_layer";
    peer.app = peer.app.layer(tower::util::MapResponseLayer::new(
        |response: axum::response::Response| response,
    ));
    peer
}

// ---------------------------------------------------------- typed-sessions

async fn ours_read(profile: typed_sessions::Session<Profile>) -> String {
    body_of(&profile)
}

async fn ours_write(mut profile: typed_sessions::Session<Profile>) -> String {
    profile.visits += 1;
    body_of(&profile)
}

async fn ours_login(mut profile: typed_sessions::Session<Profile>) -> &'static str {
    *profile = Profile::sample();
    "ok"
}

/// typed-sessions with its `MemoryStore`, default configuration but `Secure` off.
async fn typed_sessions() -> Peer {
    let layer = typed_sessions::SessionLayer::builder(typed_sessions::stores::MemoryStore::new())
        .cookie_name(COOKIE_NAME)
        .secure(false)
        .build()
        .expect("a valid configuration");
    let app = Router::new()
        .route("/read", get(ours_read))
        .route("/write", post(ours_write))
        .route("/login", post(ours_login))
        .layer(layer);
    let login = Request::post("/login")
        .body(Body::empty())
        .expect("request");
    let response = app.clone().oneshot(login).await.expect("infallible");
    assert!(
        response.status().is_success(),
        "login: {}",
        response.status()
    );
    let cookie = cookie_pair(&response);
    Peer {
        name: "typed_sessions",
        app,
        cookie,
    }
}

// ----------------------------------------------------------- tower-sessions

const TS_KEY: &str = "data";

async fn theirs_read(session: tower_sessions::Session) -> String {
    let profile: Profile = session
        .get(TS_KEY)
        .await
        .expect("store works")
        .expect("the session holds a profile");
    body_of(&profile)
}

async fn theirs_write(session: tower_sessions::Session) -> String {
    let mut profile: Profile = session
        .get(TS_KEY)
        .await
        .expect("store works")
        .expect("the session holds a profile");
    profile.visits += 1;
    session.insert(TS_KEY, &profile).await.expect("store works");
    body_of(&profile)
}

async fn theirs_login(session: tower_sessions::Session) -> &'static str {
    session
        .insert(TS_KEY, Profile::sample())
        .await
        .expect("store works");
    "ok"
}

/// tower-sessions with its `MemoryStore`, the whole profile under one key.
async fn tower_sessions() -> Peer {
    let layer = tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
        .with_name(COOKIE_NAME)
        .with_secure(false);
    let app = Router::new()
        .route("/read", get(theirs_read))
        .route("/write", post(theirs_write))
        .route("/login", post(theirs_login))
        .layer(layer);
    let login = Request::post("/login")
        .body(Body::empty())
        .expect("request");
    let response = app.clone().oneshot(login).await.expect("infallible");
    assert!(
        response.status().is_success(),
        "login: {}",
        response.status()
    );
    let cookie = cookie_pair(&response);
    Peer {
        name: "tower_sessions",
        app,
        cookie,
    }
}

/// All peers, bare axum first.
async fn peers() -> Vec<Peer> {
    vec![
        bare().await,
        noop_layer().await,
        typed_sessions().await,
        tower_sessions().await,
    ]
}

/// Checks, outside any timed loop, that each peer behaves as the benchmark
/// assumes: reads see the stored profile and set no cookie, writes persist.
async fn sanity_check(peer: &Peer) {
    let (status, body, set_cookie) = send(&peer.app, request(false, &peer.cookie)).await;
    assert_eq!(status, 200, "{}: read status", peer.name);
    let before: u64 = text(&body)
        .strip_prefix("alice.liddell:")
        .unwrap_or_else(|| panic!("{}: read body {:?}", peer.name, text(&body)))
        .parse()
        .expect("a number");
    assert!(!set_cookie, "{}: a read sets no cookie", peer.name);

    let (status, body, _) = send(&peer.app, request(true, &peer.cookie)).await;
    assert_eq!(status, 200, "{}: write status", peer.name);
    assert_eq!(text(&body), format!("alice.liddell:{}", before + 1));

    let (_, body, _) = send(&peer.app, request(false, &peer.cookie)).await;
    assert_eq!(
        text(&body),
        format!("alice.liddell:{}", before + 1),
        "{}: the write persisted",
        peer.name
    );
}

// ---------------------------------------------------------------- criterion

fn runtime() -> tokio::runtime::Runtime {
    // One current-thread runtime for every peer: the request runs on the
    // benchmark thread, so no cross-thread wake-ups blur the comparison.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// One group per scenario; inside it the peers run one after another in the
/// same process, so the report shows them side by side.
fn scenario(c: &mut Criterion, rt: &tokio::runtime::Runtime, peers: &[Peer], write: bool) {
    let mut group = c.benchmark_group(if write { "write" } else { "read" });
    for peer in peers {
        group.bench_function(peer.name, |b| {
            b.to_async(rt).iter(|| async {
                let (status, body, set_cookie) =
                    send(&peer.app, request(write, &peer.cookie)).await;
                debug_assert_eq!(status, 200);
                black_box((body, set_cookie))
            });
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    println!(
        "session data: Profile, {} bytes as one serde_json object",
        serialized_size()
    );
    let peers = rt.block_on(peers());
    for peer in &peers {
        rt.block_on(sanity_check(peer));
    }
    scenario(c, &rt, &peers, false);
    scenario(c, &rt, &peers, true);
}

criterion_group!(requests, benches);

/// `PROFILE_LOOP=<read|write>/<peer>:<n>` runs exactly `n` requests of one
/// case without criterion (for `valgrind --tool=callgrind`, where a fixed
/// count makes instruction counts per request comparable); otherwise the
/// criterion benchmarks run as usual.
fn main() {
    if let Ok(spec) = std::env::var("PROFILE_LOOP") {
        profile_loop(&spec);
        return;
    }
    // What `criterion_main!(requests)` expands to.
    requests();
    Criterion::default().configure_from_args().final_summary();
}

fn profile_loop(spec: &str) {
    let (case, count) = spec
        .split_once(':')
        .expect("PROFILE_LOOP=<read|write>/<peer>:<n>");
    let (scenario, name) = case.split_once('/').expect("<read|write>/<peer>");
    let write = match scenario {
        "read" => false,
        "write" => true,
        other => panic!("unknown scenario {other:?}"),
    };
    let count: u64 = count.parse().expect("a request count");
    let rt = runtime();
    let peers = rt.block_on(peers());
    let peer = peers
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("unknown peer {name:?}"));
    rt.block_on(async {
        for _ in 0..count {
            black_box(send(&peer.app, request(write, &peer.cookie)).await);
        }
    });
}
