//! The end-to-end benchmark's HTTP server (issue #11), driven by
//! `bench/e2e.sh`: one peer of the comparison, served over HTTP/1.1 on
//! 127.0.0.1 from a tokio **current-thread** runtime (so the server uses one
//! core; the script pins it with `taskset`).
//!
//! ```text
//! e2e_server --peer <bare|typed|typed_cached|tower|typed_redis|tower_redis> --port P [--redis-url URL] [--pool N]
//! ```
//!
//! It prints `e2e_server: peer <peer> on http://127.0.0.1:<port>` on
//! standard error once it listens (`--port 0`: a port the system picks).
//!
//! Every peer serves the same routes, with the same handler shape and the
//! same response bodies as `benches/requests.rs` and `benches/redis.rs`:
//! - `GET /read`: reads the profile, answers `"{user_name}:{visits}"`
//!   (scenario B; the bare peer's is scenario A, the floor);
//! - `POST /write`: `visits += 1`, same body (scenario C);
//! - `POST /create`: the first request of a visitor, sent without a cookie:
//!   stores `Profile::sample()` in a new session and sets its cookie, same
//!   body (scenario D; the bare peer clones the sample and answers);
//! - `POST /login`: the same as `/create`, used by the script before timing
//!   to make the sessions whose cookies the load generator sends (the bare
//!   peer answers with a stand-in cookie of the same length as ours).
//!
//! The peers:
//! - `bare`: no session layer, a process-wide `Mutex<Profile>`;
//! - `typed`: typed-sessions' `MemoryStore`;
//! - `typed_cached`: the same with the schema declared `#[session(cached)]`;
//! - `tower`: tower-sessions 0.15 with its `MemoryStore`, the whole profile
//!   under the key `"data"`;
//! - `typed_redis`: typed-sessions' `RedisStore` under the prefix `session:`;
//! - `tower_redis`: tower-sessions 0.14 with tower-sessions-redis-store 0.16
//!   on a fred pool of `--pool` clients (6, as in that crate's README).
//!
//! The session layers use the cookie name `session` and turn `Secure` off
//! (plain HTTP on loopback); everything else is their default.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Mutex;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;

#[path = "../../benches/common/profile.rs"]
mod profile;
use profile::Profile;

/// The cookie name of every peer.
const COOKIE_NAME: &str = "session";

/// The response body of every route, for every peer.
fn body_of(profile: &Profile) -> String {
    format!("{}:{}", profile.user_name, profile.visits)
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

async fn bare_create() -> String {
    let profile = Profile::sample();
    body_of(&profile)
}

/// The bare peer's login: a stand-in cookie as long as typed-sessions' (22
/// base64url characters), so its requests are as long as the others'.
async fn bare_login() -> impl IntoResponse {
    (
        [(
            header::SET_COOKIE,
            HeaderValue::from_static("session=AAAAAAAAAAAAAAAAAAAAAA; Path=/; HttpOnly"),
        )],
        bare_create().await,
    )
}

fn bare() -> Router {
    *BARE_PROFILE.lock().expect("not poisoned") = Some(Profile::sample());
    Router::new()
        .route("/read", get(bare_read))
        .route("/write", post(bare_write))
        .route("/create", post(bare_create))
        .route("/login", post(bare_login))
}

// ---------------------------------------------------------- typed-sessions

/// The typed-sessions handlers and routes for one schema (`Profile`, or
/// the same fields declared `#[session(cached)]`).
macro_rules! typed_peer {
    ($module:ident, $schema:ty) => {
        mod $module {
            use super::{COOKIE_NAME, Router, get, post};
            use typed_sessions::Session;

            type Schema = $schema;

            async fn read(profile: Session<Schema>) -> String {
                format!("{}:{}", profile.user_name, profile.visits)
            }

            async fn write(mut profile: Session<Schema>) -> String {
                profile.visits += 1;
                format!("{}:{}", profile.user_name, profile.visits)
            }

            async fn create(mut profile: Session<Schema>) -> String {
                *profile = Schema::sample();
                format!("{}:{}", profile.user_name, profile.visits)
            }

            pub fn routes<S>(store: S) -> Router
            where
                S: typed_sessions::stores::SessionBackend,
            {
                let layer = typed_sessions::SessionLayer::builder(store)
                    .cookie_name(COOKIE_NAME)
                    .secure(false)
                    .build()
                    .expect("a valid configuration");
                Router::new()
                    .route("/read", get(read))
                    .route("/write", post(write))
                    .route("/create", post(create))
                    .route("/login", post(create))
                    .layer(layer)
            }
        }
    };
}

typed_peer!(typed_plain, crate::profile::Profile);
typed_peer!(typed_cached, crate::profile::CachedProfile);

// ------------------------------------------------------ tower-sessions peers

/// The whole profile is stored under this key of a tower-sessions session.
const TS_KEY: &str = "data";

/// The handlers of a tower-sessions peer; the 0.15 (memory) and 0.14 (Redis)
/// releases have the same `Session` API but are different crates.
macro_rules! tower_handlers {
    ($module:ident, $session:ty) => {
        mod $module {
            use super::{Profile, TS_KEY, body_of};

            pub async fn read(session: $session) -> String {
                let profile: Profile = session
                    .get(TS_KEY)
                    .await
                    .expect("store works")
                    .expect("the session holds a profile");
                body_of(&profile)
            }

            pub async fn write(session: $session) -> String {
                let mut profile: Profile = session
                    .get(TS_KEY)
                    .await
                    .expect("store works")
                    .expect("the session holds a profile");
                profile.visits += 1;
                session.insert(TS_KEY, &profile).await.expect("store works");
                body_of(&profile)
            }

            pub async fn create(session: $session) -> String {
                let profile = Profile::sample();
                session.insert(TS_KEY, &profile).await.expect("store works");
                body_of(&profile)
            }
        }
    };
}

tower_handlers!(tower015, tower_sessions::Session);
tower_handlers!(tower014, tower_sessions_014::Session);

fn tower() -> Router {
    let layer = tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
        .with_name(COOKIE_NAME)
        .with_secure(false);
    Router::new()
        .route("/read", get(tower015::read))
        .route("/write", post(tower015::write))
        .route("/create", post(tower015::create))
        .route("/login", post(tower015::create))
        .layer(layer)
}

async fn tower_redis(url: &str, pool_size: usize) -> Result<Router, String> {
    use tower_sessions_redis_store::fred::prelude::{ClientLike as _, Config, Pool};
    let config = Config::from_url(url).map_err(|e| format!("Redis URL {url}: {e}"))?;
    let pool = Pool::new(config, None, None, None, pool_size).map_err(|e| e.to_string())?;
    // The connection tasks run on this (current-thread) runtime; the handle
    // is not needed.
    let _connection_task = pool
        .init()
        .await
        .map_err(|e| format!("Redis at {url}: {e}"))?;
    let store = tower_sessions_redis_store::RedisStore::new(pool);
    let layer = tower_sessions_014::SessionManagerLayer::new(store)
        .with_name(COOKIE_NAME)
        .with_secure(false);
    Ok(Router::new()
        .route("/read", get(tower014::read))
        .route("/write", post(tower014::write))
        .route("/create", post(tower014::create))
        .route("/login", post(tower014::create))
        .layer(layer))
}

// --------------------------------------------------------------------- main

struct Args {
    peer: String,
    port: u16,
    redis_url: Option<String>,
    pool: usize,
}

const USAGE: &str = "usage: e2e_server --peer <bare|typed|tower|typed_redis|tower_redis> --port P [--redis-url URL] [--pool N]";

fn parse_args() -> Result<Args, String> {
    let mut peer = None;
    let mut port = None;
    let mut redis_url = None;
    let mut pool = 6;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--peer" => peer = Some(value()?),
            "--port" => {
                port = Some(value()?.parse().map_err(|e| format!("--port: {e}"))?);
            }
            "--redis-url" => redis_url = Some(value()?),
            "--pool" => pool = value()?.parse().map_err(|e| format!("--pool: {e}"))?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Args {
        peer: peer.ok_or_else(|| format!("--peer is required\n{USAGE}"))?,
        port: port.ok_or_else(|| format!("--port is required\n{USAGE}"))?,
        redis_url,
        pool,
    })
}

async fn app(args: &Args) -> Result<Router, String> {
    let redis_url = || {
        args.redis_url
            .as_deref()
            .ok_or_else(|| format!("--peer {} needs --redis-url", args.peer))
    };
    match args.peer.as_str() {
        "bare" => Ok(bare()),
        "typed" => Ok(typed_plain::routes(
            typed_sessions::stores::MemoryStore::new(),
        )),
        "typed_cached" => Ok(typed_cached::routes(
            typed_sessions::stores::MemoryStore::new(),
        )),
        "tower" => Ok(tower()),
        "typed_redis" => {
            let url = redis_url()?;
            let store = typed_sessions::stores::RedisStore::builder()
                .prefix("session:")
                .open(url)
                .await
                .map_err(|e| format!("Redis at {url}: {e}"))?;
            Ok(typed_plain::routes(store))
        }
        "tower_redis" => tower_redis(redis_url()?, args.pool).await,
        other => Err(format!("unknown peer {other:?}\n{USAGE}")),
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let app = app(&args).await?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("bind {addr}: {e}"))?;
    // With `--port 0` the system picks the port; e2e.sh reads it from here.
    let bound = listener
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?;
    let listener = listener.tap_io(|stream| {
        // Small responses go out at once, as behind any real server.
        let _ = stream.set_nodelay(true);
    });
    eprintln!("e2e_server: peer {} on http://{bound}", args.peer);
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("serve: {e}"))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("e2e_server: {message}");
            ExitCode::FAILURE
        }
    }
}
