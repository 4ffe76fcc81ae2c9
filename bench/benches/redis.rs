//! Redis: typed-sessions' `RedisStore` against tower-sessions 0.14 with
//! tower-sessions-redis-store 0.16 (on the `fred` client), on the same Redis
//! server, with the same data, in the same run. See `bench/README.md`.
//!
//! Every peer serves the same routes with the same handler shape and the same
//! response body as `requests.rs`:
//! - `GET /read`: reads the profile, answers `"{user_name}:{visits}"`
//!   (scenario B; bare axum's is scenario A, the floor);
//! - `POST /write`: increments `visits`, answers the same body (scenario C);
//! - `POST /login`: stores `Profile::sample()` in a new session (scenario D
//!   when sent without a cookie).
//!
//! The run, in order:
//! 1. starts `redis-server` on a free loopback port (`--save "" --appendonly
//!    no`, killed at the end), unless `REDIS_URL` names a server to use;
//! 2. throughput: requests per second end to end in process, `Router::oneshot`
//!    on a multi-thread runtime with `REDIS_BENCH_CONCURRENCY` (64) requests
//!    in flight, each in-flight worker on its own session (as 64 users would
//!    be), `REDIS_BENCH_ROUNDS` (5) rounds of `REDIS_BENCH_SECS` (1.0) seconds
//!    per case and peer, the peers' order rotated every round; with the CPU
//!    time of this process and of Redis per request;
//! 3. Redis commands per request from `INFO commandstats` (after `CONFIG
//!    RESETSTAT`) over `REDIS_BENCH_COMMANDS` (2,000) requests of each case;
//! 4. `MEMORY USAGE` of one freshly stored session of each library;
//! 5. criterion: single-request latency of read and write, one request at a
//!    time on a current-thread runtime (`REDIS_BENCH_LATENCY=0` skips it).
//!
//! `PROFILE_LOOP=<read|write|create>/<peer>:<n>` sends exactly `n` requests
//! of one case at the configured concurrency and exits (for `perf`).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use criterion::Criterion;
use http::{Request, header};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// The cookie name every peer uses, so requests are built identically.
const COOKIE_NAME: &str = "session";

#[path = "common/profile.rs"]
mod profile;
use profile::Profile;

/// The response body of the read and write routes, for every peer.
fn body_of(profile: &Profile) -> String {
    format!("{}:{}", profile.user_name, profile.visits)
}

// ------------------------------------------------------------------ config

/// The run's knobs, from the environment.
#[derive(Clone, Copy, Debug)]
struct Config {
    concurrency: usize,
    rounds: usize,
    secs: f64,
    warmup_secs: f64,
    commands: u64,
    latency: bool,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} does not parse")),
        Err(_) => default,
    }
}

impl Config {
    fn from_env() -> Self {
        Self {
            concurrency: env_or("REDIS_BENCH_CONCURRENCY", 64),
            rounds: env_or("REDIS_BENCH_ROUNDS", 5),
            secs: env_or("REDIS_BENCH_SECS", 1.0),
            warmup_secs: env_or("REDIS_BENCH_WARMUP_SECS", 0.2),
            commands: env_or("REDIS_BENCH_COMMANDS", 2_000),
            latency: env_or("REDIS_BENCH_LATENCY", 1u8) != 0,
        }
    }
}

// ------------------------------------------------------------------- redis

#[path = "common/redis_server.rs"]
mod redis_server;
use redis_server::Redis;

/// This process's CPU time so far (user + system of all threads, seconds),
/// from `/proc/self/stat` in clock ticks of 10 ms.
fn process_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are 11 and 12 here.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

// --------------------------------------------------------------- requests

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Case {
    Read,
    Write,
    Create,
}

impl Case {
    const ALL: [Self; 3] = [Self::Read, Self::Write, Self::Create];

    fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Create => "create",
        }
    }

    fn scenario(self) -> &'static str {
        match self {
            Self::Read => "B (read-only, valid session)",
            Self::Write => "C (increment a counter)",
            Self::Create => "D (first request, creates a session)",
        }
    }

    fn parse(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("unknown case {name:?}"))
    }
}

/// A request of the benchmark: the same construction for every peer.
fn request(case: Case, cookie: &str) -> Request<Body> {
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

/// Sends one request through a clone of `app` and drains the response body.
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

/// The visit count of a read or write response body.
fn visits_of(body: &Bytes) -> u64 {
    std::str::from_utf8(body)
        .ok()
        .and_then(|b| b.strip_prefix("alice.liddell:"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected body {body:?}"))
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

/// One `POST /login` without a cookie: a new session holding the sample
/// profile. Returns its cookie's `name=value`.
async fn login(app: &Router) -> String {
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

/// A peer of the comparison.
struct Peer {
    name: &'static str,
    app: Router,
    /// One session per in-flight worker (bare axum: one stand-in cookie).
    cookies: Vec<String>,
    /// Whether it has sessions (scenarios C's per-session check and D apply).
    sessions: bool,
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

/// Bare axum: the same handlers without sessions (scenario A).
fn bare() -> Peer {
    *BARE_PROFILE.lock().expect("not poisoned") = Some(Profile::sample());
    let app = Router::new()
        .route("/read", get(bare_read))
        .route("/write", post(bare_write));
    Peer {
        name: "bare_axum",
        app,
        cookies: vec![format!("{COOKIE_NAME}=AAAAAAAAAAAAAAAAAAAAAA")],
        sessions: false,
    }
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

/// typed-sessions' `RedisStore` under `prefix`, default layer configuration
/// but `Secure` off.
async fn typed_app(url: &str, prefix: &str) -> Router {
    let store = typed_sessions::stores::RedisStore::builder()
        .prefix(prefix)
        .open(url)
        .await
        .expect("Redis answers");
    let layer = typed_sessions::SessionLayer::builder(store)
        .cookie_name(COOKIE_NAME)
        .secure(false)
        .build()
        .expect("a valid configuration");
    Router::new()
        .route("/read", get(ours_read))
        .route("/write", post(ours_write))
        .route("/login", post(ours_login))
        .layer(layer)
}

async fn typed_sessions(url: &str, sessions: usize) -> Peer {
    let app = typed_app(url, "session:").await;
    let mut cookies = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        cookies.push(login(&app).await);
    }
    Peer {
        name: "typed_sessions",
        app,
        cookies,
        sessions: true,
    }
}

// ---------------------------------------- tower-sessions 0.14 + redis store

const TS_KEY: &str = "data";

async fn theirs_read(session: tower_sessions_014::Session) -> String {
    let profile: Profile = session
        .get(TS_KEY)
        .await
        .expect("store works")
        .expect("the session holds a profile");
    body_of(&profile)
}

async fn theirs_write(session: tower_sessions_014::Session) -> String {
    let mut profile: Profile = session
        .get(TS_KEY)
        .await
        .expect("store works")
        .expect("the session holds a profile");
    profile.visits += 1;
    session.insert(TS_KEY, &profile).await.expect("store works");
    body_of(&profile)
}

async fn theirs_login(session: tower_sessions_014::Session) -> &'static str {
    session
        .insert(TS_KEY, Profile::sample())
        .await
        .expect("store works");
    "ok"
}

/// tower-sessions 0.14 over tower-sessions-redis-store 0.16 on a fred `Pool`
/// of `pool_size` clients (its README's example uses 6), the whole profile
/// under one key, `Secure` off.
async fn tower_sessions_redis(
    name: &'static str,
    url: &str,
    pool_size: usize,
    sessions: usize,
) -> Peer {
    use tower_sessions_redis_store::fred::prelude::{ClientLike as _, Config, Pool};
    let config = Config::from_url(url).expect("a valid Redis URL");
    let pool = Pool::new(config, None, None, None, pool_size).expect("a fred pool");
    let _connection_task = pool.init().await.expect("Redis answers");
    let store = tower_sessions_redis_store::RedisStore::new(pool);
    let layer = tower_sessions_014::SessionManagerLayer::new(store)
        .with_name(COOKIE_NAME)
        .with_secure(false);
    let app = Router::new()
        .route("/read", get(theirs_read))
        .route("/write", post(theirs_write))
        .route("/login", post(theirs_login))
        .layer(layer);
    let mut cookies = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        cookies.push(login(&app).await);
    }
    Peer {
        name,
        app,
        cookies,
        sessions: true,
    }
}

/// All peers: bare axum, ours, the peer as its README sets it up (a pool of
/// 6 connections), and the peer on one connection like ours.
async fn peers(url: &str, sessions: usize) -> Vec<Peer> {
    vec![
        bare(),
        typed_sessions(url, sessions).await,
        tower_sessions_redis("tower_sessions_redis", url, 6, sessions).await,
        tower_sessions_redis("tower_sessions_redis_1conn", url, 1, sessions).await,
    ]
}

/// Checks, outside any timed loop, that each peer behaves as the benchmark
/// assumes: reads see the stored profile and set no cookie, writes persist.
async fn sanity_check(peer: &Peer) {
    let cookie = &peer.cookies[0];
    let (status, body, set_cookie) = send(&peer.app, request(Case::Read, cookie)).await;
    assert_eq!(status, 200, "{}: read status", peer.name);
    let before = visits_of(&body);
    assert!(!set_cookie, "{}: a read sets no cookie", peer.name);

    let (status, body, _) = send(&peer.app, request(Case::Write, cookie)).await;
    assert_eq!(status, 200, "{}: write status", peer.name);
    assert_eq!(visits_of(&body), before + 1, "{}: write", peer.name);

    let (_, body, _) = send(&peer.app, request(Case::Read, cookie)).await;
    assert_eq!(
        visits_of(&body),
        before + 1,
        "{}: the write persisted",
        peer.name
    );
}

// ------------------------------------------------------------------ driver

/// Sends requests of `case` from `concurrency` tasks, worker `i` on session
/// `i` (modulo the peer's sessions), until `duration` has passed or `limit`
/// requests were issued. Returns the requests done and the elapsed time.
async fn drive(
    peer: &Peer,
    case: Case,
    concurrency: usize,
    duration: Option<Duration>,
    limit: Option<u64>,
) -> (u64, Duration) {
    let issued = Arc::new(AtomicU64::new(0));
    let limit = limit.unwrap_or(u64::MAX);
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let app = peer.app.clone();
        let cookie = peer.cookies[worker % peer.cookies.len()].clone();
        let issued = Arc::clone(&issued);
        // With one session per worker, each write must see the previous
        // one: a lost update or a failed save would show here.
        let check_writes =
            case == Case::Write && peer.sessions && peer.cookies.len() >= concurrency;
        let name = peer.name;
        tasks.spawn(async move {
            let mut done = 0u64;
            let mut last: Option<u64> = None;
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if issued.fetch_add(1, Ordering::Relaxed) >= limit {
                    break;
                }
                let (status, body, _) = send(&app, request(case, &cookie)).await;
                assert_eq!(status, 200, "{name}: {} status", case.name());
                if check_writes {
                    let visits = visits_of(&body);
                    if let Some(last) = last {
                        assert_eq!(visits, last + 1, "{name}: a write was lost");
                    }
                    last = Some(visits);
                }
                black_box(body);
                done += 1;
            }
            done
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done.expect("a worker finished");
    }
    (total, start.elapsed())
}

/// One throughput measurement.
#[derive(Clone, Copy, Debug)]
struct Sample {
    rps: f64,
    /// This process's CPU per request, µs.
    client_cpu_us: f64,
    /// Redis's CPU per request, µs.
    redis_cpu_us: f64,
}

impl Sample {
    /// CPU per request, this process and Redis together, µs.
    fn cpu_us(&self) -> f64 {
        self.client_cpu_us + self.redis_cpu_us
    }
}

fn measure(
    rt: &tokio::runtime::Runtime,
    redis: &Redis,
    config: &Config,
    peer: &Peer,
    case: Case,
) -> Sample {
    let warmup = Duration::from_secs_f64(config.warmup_secs);
    rt.block_on(drive(peer, case, config.concurrency, Some(warmup), None));
    let redis0 = redis.cpu_secs();
    let cpu0 = process_cpu_secs();
    let (done, elapsed) = rt.block_on(drive(
        peer,
        case,
        config.concurrency,
        Some(Duration::from_secs_f64(config.secs)),
        None,
    ));
    let cpu1 = process_cpu_secs();
    let redis1 = redis.cpu_secs();
    let n = done as f64;
    Sample {
        rps: n / elapsed.as_secs_f64(),
        client_cpu_us: (cpu1 - cpu0) * 1e6 / n,
        redis_cpu_us: (redis1 - redis0) * 1e6 / n,
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

const OURS: &str = "typed_sessions";
const THEIRS: [&str; 2] = ["tower_sessions_redis", "tower_sessions_redis_1conn"];

fn throughput(rt: &tokio::runtime::Runtime, redis: &Redis, config: &Config, peers: &[Peer]) {
    println!(
        "\n## Throughput: {} in flight, {} rounds of {} s per case and peer (load average at start: {})\n",
        config.concurrency,
        config.rounds,
        config.secs,
        load_average()
    );
    // samples[(case, peer)] = one Sample per round
    let mut samples: BTreeMap<(&str, &str), Vec<Sample>> = BTreeMap::new();
    for round in 0..config.rounds {
        for case in Case::ALL {
            let n = peers.len();
            for i in 0..n {
                let peer = &peers[(i + round) % n];
                if case == Case::Create && !peer.sessions {
                    continue;
                }
                let sample = measure(rt, redis, config, peer, case);
                eprintln!(
                    "round {} {}/{}: {:.0} req/s, client {:.1} µs CPU/req, Redis {:.1} µs CPU/req",
                    round + 1,
                    case.name(),
                    peer.name,
                    sample.rps,
                    sample.client_cpu_us,
                    sample.redis_cpu_us
                );
                samples
                    .entry((case.name(), peer.name))
                    .or_default()
                    .push(sample);
            }
        }
    }
    println!("load average at the end: {}\n", load_average());
    println!(
        "| case | peer | req/s per round | median req/s | client CPU µs/req | Redis CPU µs/req | both |"
    );
    println!("|---|---|---|---|---|---|---|");
    for case in Case::ALL {
        for peer in peers {
            let Some(s) = samples.get(&(case.name(), peer.name)) else {
                continue;
            };
            let rounds: Vec<String> = s.iter().map(|s| format!("{:.0}", s.rps)).collect();
            let scenario = if peer.sessions {
                case.scenario()
            } else {
                "A (no session layer)"
            };
            println!(
                "| {} {} | {} | {} | **{:.0}** | {:.1} | {:.1} | {:.1} |",
                case.name(),
                scenario,
                peer.name,
                rounds.join(", "),
                median(&mut s.iter().map(|s| s.rps).collect::<Vec<_>>()),
                median(&mut s.iter().map(|s| s.client_cpu_us).collect::<Vec<_>>()),
                median(&mut s.iter().map(|s| s.redis_cpu_us).collect::<Vec<_>>()),
                median(&mut s.iter().map(Sample::cpu_us).collect::<Vec<_>>()),
            );
        }
    }
    println!(
        "\nRatios, typed_sessions / peer: throughput (target ≥ 1.5 for read and write), and the \
         peer's CPU per request (this process + Redis) over ours, which is what throughput \
         tends to when the cores are the limit:\n"
    );
    println!(
        "| case | against | throughput ratio per round | median of the rounds' ratios | CPU per request, peer / ours (median of rounds) |"
    );
    println!("|---|---|---|---|---|");
    for case in Case::ALL {
        for theirs in THEIRS {
            let (Some(ours), Some(their)) = (
                samples.get(&(case.name(), OURS)),
                samples.get(&(case.name(), theirs)),
            ) else {
                continue;
            };
            let mut ratios: Vec<f64> = ours.iter().zip(their).map(|(o, t)| o.rps / t.rps).collect();
            let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
            let mut cpu: Vec<f64> = ours
                .iter()
                .zip(their)
                .map(|(o, t)| t.cpu_us() / o.cpu_us())
                .collect();
            println!(
                "| {} | {} | {} | **{:.2}** | {:.2} |",
                case.name(),
                theirs,
                listed.join(", "),
                median(&mut ratios),
                median(&mut cpu)
            );
        }
    }
}

// --------------------------------------------------- commands per request

/// Commands that typed-sessions' `RedisStore` sends itself during these
/// requests (see `session-runtime/src/store/redis.rs`); any other command
/// counted during its requests runs inside its Lua scripts. (Its
/// `exists()` sends a top-level `HMGET`, but the layer never calls it on
/// these paths; the `HMGET` counted on writes is the save script's guard.)
const OURS_TOP_LEVEL: [&str; 6] = ["hgetall", "evalsha", "eval", "script|load", "script", "del"];

fn commands_per_request(
    rt: &tokio::runtime::Runtime,
    redis: &Redis,
    config: &Config,
    peers: &[Peer],
) {
    let n = config.commands;
    println!(
        "\n## Redis commands per request (`INFO commandstats` after `CONFIG RESETSTAT`, {n} requests each, {} in flight)\n",
        config.concurrency
    );
    println!(
        "| case | peer | commands per request | inside scripts | Redis µs in commands per request | bytes to Redis / from Redis per request |"
    );
    println!("|---|---|---|---|---|---|");
    for case in Case::ALL {
        for peer in peers.iter().filter(|p| p.sessions) {
            redis.cli(&["CONFIG", "RESETSTAT"]);
            let (done, _) = rt.block_on(drive(peer, case, config.concurrency, None, Some(n)));
            assert_eq!(done, n);
            let info = redis.info(&["commandstats", "stats"]);
            let mut top = Vec::new();
            let mut inner = Vec::new();
            // Time Redis spent executing the top-level commands (a script's
            // time includes its inner commands, so those are not added).
            let mut usec = 0.0;
            for (key, value) in &info {
                let Some(command) = key.strip_prefix("cmdstat_") else {
                    continue;
                };
                if command.starts_with("config") || command.starts_with("info") {
                    continue;
                }
                let stat = |name: &str| -> f64 {
                    value
                        .split(',')
                        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                        .and_then(|c| c.parse().ok())
                        .unwrap_or_else(|| panic!("{name}= in {value}"))
                };
                let calls = stat("calls");
                let entry = format!("{} {:.2}", command.to_uppercase(), calls / n as f64);
                if peer.name == OURS && !OURS_TOP_LEVEL.contains(&command) {
                    inner.push(entry);
                } else {
                    top.push(entry);
                    usec += stat("usec");
                }
            }
            let bytes = |k: &str| -> f64 { info[k].parse::<f64>().expect("a number") / n as f64 };
            println!(
                "| {} | {} | {} | {} | {:.1} | {:.0} / {:.0} |",
                case.name(),
                peer.name,
                top.join(" + "),
                if inner.is_empty() {
                    "–".to_owned()
                } else {
                    inner.join(", ")
                },
                usec / n as f64,
                bytes("total_net_input_bytes"),
                bytes("total_net_output_bytes"),
            );
        }
    }
}

// ----------------------------------------------------------- memory usage

fn memory_usage(rt: &tokio::runtime::Runtime, redis: &Redis, peers: &[Peer]) {
    println!("\n## One stored session, `Profile::sample()` just after login\n");
    println!("| peer | key | type / encoding | size | `MEMORY USAGE key SAMPLES 0` |");
    println!("|---|---|---|---|---|");
    // Ours: a store under a prefix of its own, so its one key can be found.
    let prefix = "memprobe:";
    rt.block_on(async {
        let app = typed_app(&redis.url, prefix).await;
        login(&app).await;
    });
    let keys = redis.cli(&["--scan", "--pattern", &format!("{prefix}*")]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 1, "one probe session: {keys:?}");
    report_key(redis, OURS, keys[0], "HLEN", "fields");
    // The peer: the Redis key is the session id, which is the cookie value.
    let peer = peers
        .iter()
        .find(|p| p.name == THEIRS[0])
        .expect("the peer");
    let cookie = rt.block_on(login(&peer.app));
    let id = cookie
        .strip_prefix(&format!("{COOKIE_NAME}="))
        .expect("name=value");
    report_key(redis, peer.name, id, "STRLEN", "bytes of MessagePack");
    redis.cli(&["DEL", keys[0], id]);
}

fn report_key(redis: &Redis, name: &str, key: &str, size_command: &str, unit: &str) {
    assert_eq!(
        redis.cli(&["EXISTS", key]).trim(),
        "1",
        "{name}: key {key} exists"
    );
    let kind = redis.cli(&["TYPE", key]);
    let encoding = redis.cli(&["OBJECT", "ENCODING", key]);
    let size = redis.cli(&[size_command, key]);
    let usage = redis.cli(&["MEMORY", "USAGE", key, "SAMPLES", "0"]);
    let shown = if key.len() > 24 {
        format!("{}… ({} bytes)", &key[..24], key.len())
    } else {
        format!("{key} ({} bytes)", key.len())
    };
    println!(
        "| {name} | `{shown}` | {} / {} | {} {unit} | **{} bytes** |",
        kind.trim(),
        encoding.trim(),
        size.trim(),
        usage.trim()
    );
}

// ---------------------------------------------------------------- criterion

/// Single-request latency: one request at a time, read and write, on a
/// current-thread runtime like `requests.rs` (the peers are built again on
/// it, so their connection tasks run on the benchmark thread too: on the
/// multi-thread runtime, each request would mostly time thread wake-ups
/// between the benchmark thread and the workers).
fn latency(url: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let peers = rt.block_on(async {
        vec![
            bare(),
            typed_sessions(url, 1).await,
            tower_sessions_redis(THEIRS[0], url, 6, 1).await,
        ]
    });
    for peer in &peers {
        rt.block_on(sanity_check(peer));
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    for case in [Case::Read, Case::Write] {
        let mut group = c.benchmark_group(format!("redis_{}", case.name()));
        for peer in &peers {
            let cookie = &peer.cookies[0];
            group.bench_function(peer.name, |b| {
                b.to_async(&rt).iter(|| async {
                    let (status, body, set_cookie) = send(&peer.app, request(case, cookie)).await;
                    debug_assert_eq!(status, 200);
                    black_box((body, set_cookie))
                });
            });
        }
        group.finish();
    }
    c.final_summary();
}

// --------------------------------------------------------------------- main

fn runtime() -> tokio::runtime::Runtime {
    // A multi-thread runtime (one worker per core), as a server would run:
    // requests in flight overlap their Redis round trips.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn main() {
    let config = Config::from_env();
    let Some(redis) = Redis::start() else {
        println!("redis bench skipped: redis-server could not be started and REDIS_URL is unset");
        return;
    };
    let rt = runtime();
    let server = redis.info(&["server"]);
    println!(
        "Redis {} at {} ({}); session data: Profile, {} bytes as one serde_json object; {:?}",
        server.get("redis_version").map_or("?", String::as_str),
        redis.url,
        if redis.child.is_some() {
            "started by the bench"
        } else {
            "REDIS_URL"
        },
        serde_json::to_vec(&Profile::sample())
            .expect("serializes")
            .len(),
        config
    );
    let peers = rt.block_on(peers(&redis.url, config.concurrency));
    for peer in &peers {
        rt.block_on(sanity_check(peer));
    }
    if let Ok(spec) = std::env::var("PROFILE_LOOP") {
        profile_loop(&rt, &config, &peers, &spec);
        return;
    }
    throughput(&rt, &redis, &config, &peers);
    let memory = redis.info(&["memory"]);
    println!(
        "\nRedis after the throughput part: {} keys, used_memory {}",
        redis.cli(&["DBSIZE"]).trim(),
        memory.get("used_memory_human").map_or("?", String::as_str)
    );
    commands_per_request(&rt, &redis, &config, &peers);
    memory_usage(&rt, &redis, &peers);
    if config.latency {
        drop(peers);
        latency(&redis.url);
    }
}

fn profile_loop(rt: &tokio::runtime::Runtime, config: &Config, peers: &[Peer], spec: &str) {
    let (case, count) = spec
        .split_once(':')
        .expect("PROFILE_LOOP=<read|write|create>/<peer>:<n>");
    let (case, name) = case.split_once('/').expect("<case>/<peer>");
    let case = Case::parse(case);
    let count: u64 = count.parse().expect("a request count");
    let peer = peers
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("unknown peer {name:?}"));
    let (done, elapsed) = rt.block_on(drive(peer, case, config.concurrency, None, Some(count)));
    eprintln!(
        "{done} requests in {:.3} s: {:.0} req/s",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64()
    );
}
