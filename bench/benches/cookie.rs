//! Client-side sessions: typed-sessions' `CookieStore` (private and signed)
//! against axum-extra's `PrivateCookieJar` and `SignedCookieJar` carrying
//! the same profile as JSON, with bare axum as the floor. See
//! `bench/README.md`.
//!
//! Every peer serves the same two routes with the same handler shape and the
//! same response body as `requests.rs`:
//! - `GET /read`: reads the profile, answers `"{user_name}:{visits}"`;
//! - `POST /write`: increments `visits`, answers the same body.
//!
//! Each session peer's requests carry a cookie that peer made itself: one
//! real `POST /login` before timing, whose `Set-Cookie` `name=value` every
//! timed read sends. A timed write sends the cookie the previous write set,
//! as a browser does (so no peer reopens one value over and over).

use std::sync::Mutex;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use axum_extra::extract::cookie::{Cookie, Key, PrivateCookieJar, SignedCookieJar};
use criterion::{Criterion, criterion_group};
use http::{Request, header};
use http_body_util::BodyExt as _;
use std::hint::black_box;
use tower::ServiceExt as _;
use typed_sessions::stores::{CookieKey, CookieStore};

/// The cookie name every peer uses (typed-sessions' default).
const COOKIE_NAME: &str = "session";

#[path = "common/profile.rs"]
mod profile;
use profile::Profile;

#[path = "common/floor.rs"]
mod floor;

/// The serde_json encoding of a profile: what the axum-extra peers store.
fn json_of(profile: &Profile) -> String {
    serde_json::to_string(profile).expect("the profile serializes")
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

/// What one request returned.
struct Answer {
    status: http::StatusCode,
    body: Bytes,
    /// The `name=value` of the response's `Set-Cookie`, if any.
    set_cookie: Option<String>,
}

/// Sends one request through a clone of `app` and drains the response body:
/// the timed unit of work.
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

/// Like [`send`], keeping the `Set-Cookie` pair (setup and checks only).
async fn answer(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let mut pairs = response.headers().get_all(header::SET_COOKIE).iter();
    let set_cookie = pairs.next().map(|value| {
        value
            .to_str()
            .expect("ascii cookie")
            .split(';')
            .next()
            .expect("a name=value pair")
            .to_owned()
    });
    assert!(pairs.next().is_none(), "at most one Set-Cookie");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        body,
        set_cookie,
    }
}

fn text(body: &Bytes) -> &str {
    std::str::from_utf8(body).expect("utf-8 body")
}

/// A peer of the comparison: its router and the cookie header its requests carry.
struct Peer {
    name: &'static str,
    app: Router,
    /// `name=value` as the login response set it (bare axum: a stand-in).
    cookie: String,
}

/// Sends `POST /login` (no cookie) and returns the `name=value` it set.
async fn login(app: &Router) -> String {
    let login = Request::post("/login")
        .header(header::HOST, "bench.example")
        .body(Body::empty())
        .expect("request");
    let answer = answer(app, login).await;
    assert!(answer.status.is_success(), "login: {}", answer.status);
    answer.set_cookie.expect("the login sets a cookie")
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

/// Bare axum: the same handlers without sessions, on a process-wide
/// profile. Its cookie is a stand-in of `len` bytes, so its request is as
/// long as a session peer's.
fn bare(len: usize) -> Peer {
    *BARE_PROFILE.lock().expect("not poisoned") = Some(Profile::sample());
    let app = Router::new()
        .route("/read", get(bare_read))
        .route("/write", post(bare_write));
    let filler = len.saturating_sub(COOKIE_NAME.len() + 1);
    Peer {
        name: "bare_axum",
        app,
        cookie: format!("{COOKIE_NAME}={}", "A".repeat(filler)),
    }
}

// ---------------------------------------------------------- typed-sessions

async fn typed_read(profile: typed_sessions::Session<Profile>) -> String {
    body_of(&profile)
}

async fn typed_write(mut profile: typed_sessions::Session<Profile>) -> String {
    profile.visits += 1;
    body_of(&profile)
}

async fn typed_login(mut profile: typed_sessions::Session<Profile>) -> &'static str {
    *profile = Profile::sample();
    "ok"
}

/// typed-sessions with a `CookieStore`, default layer configuration.
async fn typed(name: &'static str, store: CookieStore) -> Peer {
    let app = Router::new()
        .route("/read", get(typed_read))
        .route("/write", post(typed_write))
        .route("/login", post(typed_login))
        .layer(typed_sessions::SessionLayer::new(store));
    let cookie = login(&app).await;
    Peer { name, app, cookie }
}

fn typed_key() -> CookieKey {
    CookieKey::from_bytes(vec![7u8; 32])
}

// --------------------------------------------------------------- axum-extra

/// The profile in the jar's `session` cookie (already opened by the jar).
fn profile_in(cookie: Option<Cookie<'static>>) -> Profile {
    let cookie = cookie.expect("the request carries a session cookie");
    serde_json::from_str(cookie.value()).expect("the cookie holds a profile")
}

async fn private_read(jar: PrivateCookieJar) -> String {
    body_of(&profile_in(jar.get(COOKIE_NAME)))
}

async fn private_write(jar: PrivateCookieJar) -> (PrivateCookieJar, String) {
    let mut profile = profile_in(jar.get(COOKIE_NAME));
    profile.visits += 1;
    let body = body_of(&profile);
    (jar.add(Cookie::new(COOKIE_NAME, json_of(&profile))), body)
}

async fn private_login(jar: PrivateCookieJar) -> (PrivateCookieJar, &'static str) {
    let json = json_of(&Profile::sample());
    (jar.add(Cookie::new(COOKIE_NAME, json)), "ok")
}

async fn signed_read(jar: SignedCookieJar) -> String {
    body_of(&profile_in(jar.get(COOKIE_NAME)))
}

async fn signed_write(jar: SignedCookieJar) -> (SignedCookieJar, String) {
    let mut profile = profile_in(jar.get(COOKIE_NAME));
    profile.visits += 1;
    let body = body_of(&profile);
    (jar.add(Cookie::new(COOKIE_NAME, json_of(&profile))), body)
}

async fn signed_login(jar: SignedCookieJar) -> (SignedCookieJar, &'static str) {
    let json = json_of(&Profile::sample());
    (jar.add(Cookie::new(COOKIE_NAME, json)), "ok")
}

/// The jars' key: `cookie::Key` wants 64 bytes (32 to sign, 32 to encrypt).
fn extra_key() -> Key {
    Key::from(&[7u8; 64])
}

async fn axum_extra_private() -> Peer {
    let app = Router::new()
        .route("/read", get(private_read))
        .route("/write", post(private_write))
        .route("/login", post(private_login))
        .with_state(extra_key());
    let cookie = login(&app).await;
    Peer {
        name: "axum_extra_private",
        app,
        cookie,
    }
}

async fn axum_extra_signed() -> Peer {
    let app = Router::new()
        .route("/read", get(signed_read))
        .route("/write", post(signed_write))
        .route("/login", post(signed_login))
        .with_state(extra_key());
    let cookie = login(&app).await;
    Peer {
        name: "axum_extra_signed",
        app,
        cookie,
    }
}

/// All peers, bare axum first. Bare axum's stand-in cookie is as long as
/// the longest session cookie.
async fn peers() -> Vec<Peer> {
    let mut peers = vec![
        typed("typed_private", CookieStore::private(typed_key())).await,
        typed("typed_signed", CookieStore::signed(typed_key())).await,
        axum_extra_private().await,
        axum_extra_signed().await,
    ];
    let longest = peers.iter().map(|p| p.cookie.len()).max().expect("peers");
    peers.insert(0, bare(longest));
    peers
}

/// Prints each session peer's `Set-Cookie` `name=value` length for the same
/// profile, and whether axum-extra's signed cookie carries the JSON
/// percent-encoded.
fn print_sizes(peers: &[Peer]) {
    println!(
        "session data: Profile, {} bytes as one serde_json object",
        json_of(&Profile::sample()).len()
    );
    for peer in &peers[1..] {
        println!(
            "Set-Cookie name=value: {:<19} {} bytes",
            peer.name,
            peer.cookie.len()
        );
    }
    let signed = peers
        .iter()
        .find(|p| p.name == "axum_extra_signed")
        .expect("the signed jar");
    let value = &signed.cookie[COOKIE_NAME.len() + 1..];
    let encoded = value.contains("%22") && !value.contains('"');
    println!(
        "axum_extra_signed percent-encodes the JSON: {} (value starts {:?})",
        if encoded { "yes" } else { "no" },
        &value[..value.len().min(80)]
    );
}

/// Checks, outside any timed loop, that each peer behaves as the benchmark
/// assumes: a read sees the profile and sets no cookie; a write answers the
/// incremented count, and (session peers) its cookie reads back that count.
async fn sanity_check(peer: &Peer) {
    let read = answer(&peer.app, request(false, &peer.cookie)).await;
    assert_eq!(read.status, 200, "{}: read status", peer.name);
    let before: u64 = text(&read.body)
        .strip_prefix("alice.liddell:")
        .unwrap_or_else(|| panic!("{}: read body {:?}", peer.name, text(&read.body)))
        .parse()
        .expect("a number");
    assert!(
        read.set_cookie.is_none(),
        "{}: a read sets no cookie",
        peer.name
    );

    let write = answer(&peer.app, request(true, &peer.cookie)).await;
    assert_eq!(write.status, 200, "{}: write status", peer.name);
    let after = format!("alice.liddell:{}", before + 1);
    assert_eq!(text(&write.body), after, "{}: write body", peer.name);

    let next = if peer.name == "bare_axum" {
        peer.cookie.clone()
    } else {
        write
            .set_cookie
            .unwrap_or_else(|| panic!("{}: a write sets the cookie", peer.name))
    };
    let again = answer(&peer.app, request(false, &next)).await;
    assert_eq!(
        text(&again.body),
        after,
        "{}: the write persisted",
        peer.name
    );
}

// ---------------------------------------------------------------- criterion

fn runtime() -> tokio::runtime::Runtime {
    // One current-thread runtime for every peer, as in `requests.rs`.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// One group per scenario; inside it the peers run one after another in the
/// same process, so the report shows them side by side.
fn scenario(c: &mut Criterion, rt: &tokio::runtime::Runtime, peers: &[Peer], write: bool) {
    let mut group = c.benchmark_group(if write { "cookie_write" } else { "cookie_read" });
    // The primitives alone, no framework: see `common/floor.rs`.
    let floor = floor::Floor::new();
    for (name, signed) in [("floor_signed", true), ("floor_private", false)] {
        group.bench_function(name, |b| b.iter(|| black_box(floor.run(signed, write))));
    }
    for peer in peers {
        // A write sends the cookie the previous write set, as a browser
        // does (a read sends the login's cookie every time).
        let cookie = std::cell::RefCell::new(peer.cookie.clone());
        group.bench_function(peer.name, |b| {
            b.to_async(rt)
                .iter(|| async { black_box(step(peer, write, &cookie).await) });
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let peers = rt.block_on(peers());
    print_sizes(&peers);
    for peer in &peers {
        rt.block_on(sanity_check(peer));
    }
    scenario(c, &rt, &peers, false);
    scenario(c, &rt, &peers, true);
}

criterion_group!(cookie, benches);

/// `PROFILE_LOOP=<read|write>/<peer>:<n>` runs exactly `n` requests of one
/// case without criterion (for callgrind or `perf record`); otherwise the
/// criterion benchmarks run as usual.
fn main() {
    if let Ok(spec) = std::env::var("PROFILE_LOOP") {
        profile_loop(&spec);
        return;
    }
    // What `criterion_main!(cookie)` expands to.
    cookie();
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
    let cookie = std::cell::RefCell::new(peer.cookie.clone());
    rt.block_on(async {
        for _ in 0..count {
            black_box(step(peer, write, &cookie).await);
        }
    });
}

/// One timed request: a read with the login's cookie, or a write with the
/// cookie the previous write set (kept in `cookie`), as a browser sends.
async fn step(peer: &Peer, write: bool, cookie: &std::cell::RefCell<String>) -> Bytes {
    if !write {
        let (status, body, set_cookie) = send(&peer.app, request(false, &peer.cookie)).await;
        debug_assert_eq!(status, 200);
        debug_assert!(!set_cookie);
        return body;
    }
    let current = cookie.borrow().clone();
    let reply = answer(&peer.app, request(true, &current)).await;
    debug_assert_eq!(reply.status, 200);
    if let Some(next) = reply.set_cookie {
        *cookie.borrow_mut() = next;
    }
    reply.body
}
