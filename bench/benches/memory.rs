//! Memory per stored session, typed-sessions against tower-sessions, with
//! the same data (`Profile::sample()`, 231 bytes as serde_json). See
//! `bench/README.md`.
//!
//! 1. `MemoryStore` (ours) against tower-sessions 0.15's `MemoryStore`:
//!    each peer in a child process of its own (this binary again, with
//!    `MEMORY_CHILD=<peer>`), so the heaps do not mix. The child makes
//!    1,000 sessions through the peer's router (`POST /login` without a
//!    cookie), then reads its RSS (`VmRSS` in `/proc/self/status`) and the
//!    live heap bytes of a counting allocator, makes `MEMORY_SESSIONS`
//!    (100,000) more, and reads both again: growth / sessions is the cost
//!    of one session. `bare_axum` (the same requests, nothing stored) is
//!    the control.
//! 2. Redis: `MEMORY USAGE <key> SAMPLES 0` of one freshly stored session
//!    of typed-sessions' `RedisStore` and of tower-sessions 0.14 +
//!    tower-sessions-redis-store 0.16, and the growth of `used_memory`
//!    (`INFO memory`) over `MEMORY_REDIS_KEYS` (1,000) sessions each,
//!    divided by their number. A private `redis-server` is started as in
//!    `redis.rs`; without one (and without `REDIS_URL`) this part is
//!    skipped with a message.

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "common/profile.rs"]
mod profile;
use profile::Profile;

#[path = "common/peers.rs"]
mod peers;
use peers::{COOKIE_NAME, Case, env_or, json_size, login, request, runtime, send};

#[path = "common/redis_server.rs"]
mod redis_server;
use redis_server::Redis;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{Counting, Snapshot};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Sessions made before the first reading, so that the runtime, the
/// allocator's arenas and the stores' first allocations are not counted.
const WARMUP_SESSIONS: u64 = 1_000;

const PEERS: [&str; 3] = ["bare_axum", "typed_sessions", "tower_sessions"];

/// This process's resident set size in bytes (`VmRSS`).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a VmRSS line");
    kb * 1024
}

// ------------------------------------------------------------------ child

/// One peer's measurement, in its own process: prints
/// `rss_before rss_after live_before live_after seconds`.
fn child(name: &str, sessions: u64) {
    let rt = runtime();
    let store = typed_sessions::stores::MemoryStore::new();
    let (app, has_sessions) = match name {
        "bare_axum" => (peers::bare().app, false),
        "typed_sessions" => (
            peers::ours_routes::<Profile>().layer(peers::ours_layer(store.clone())),
            true,
        ),
        "tower_sessions" => (peers::ts015::memory_app::<Profile>(), true),
        other => panic!("unknown peer {other:?}; one of {PEERS:?}"),
    };
    let create = |n: u64| {
        rt.block_on(async {
            for _ in 0..n {
                let (status, body, set_cookie) = send(&app, request(Case::Create, "")).await;
                assert_eq!(status, 200, "{name}: create status");
                assert_eq!(set_cookie, has_sessions, "{name}: create sets a cookie");
                black_box(body);
            }
        });
    };
    create(WARMUP_SESSIONS);
    let (rss0, live0) = (rss_bytes(), Snapshot::now().live);
    let start = Instant::now();
    create(sessions);
    let secs = start.elapsed().as_secs_f64();
    let (rss1, live1) = (rss_bytes(), Snapshot::now().live);
    if name == "typed_sessions" {
        assert_eq!(
            store.len() as u64,
            WARMUP_SESSIONS + sessions,
            "every create stored a session"
        );
    }
    println!("{rss0} {rss1} {live0} {live1} {secs}");
    drop(app);
}

/// Runs [`child`] for `name` in a new process of this binary.
fn run_child(name: &str, sessions: u64) -> [f64; 5] {
    let exe = std::env::current_exe().expect("this binary's path");
    let output = Command::new(exe)
        .env("MEMORY_CHILD", name)
        .env("MEMORY_SESSIONS", sessions.to_string())
        .stderr(Stdio::inherit())
        .output()
        .expect("the child runs");
    assert!(output.status.success(), "{name}: the child failed");
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let fields: Vec<f64> = text
        .split_whitespace()
        .map(|f| f.parse().expect("a number"))
        .collect();
    fields
        .try_into()
        .unwrap_or_else(|_| panic!("{name}: unexpected child output {text:?}"))
}

fn memory_store(sessions: u64) {
    println!(
        "\n## MemoryStore: memory per session ({sessions} sessions created through each peer's router after {WARMUP_SESSIONS} warm-up ones, each peer in its own process)\n"
    );
    println!(
        "| peer | RSS growth | RSS bytes / session | live heap growth | heap bytes / session | create time / session |"
    );
    println!("|---|---|---|---|---|---|");
    for name in PEERS {
        let [rss0, rss1, live0, live1, secs] = run_child(name, sessions);
        let n = sessions as f64;
        println!(
            "| {name} | {:.1} MiB | **{:.0}** | {:.1} MiB | {:.0} | {:.2} µs |",
            (rss1 - rss0) / 1_048_576.0,
            (rss1 - rss0) / n,
            (live1 - live0) / 1_048_576.0,
            (live1 - live0) / n,
            secs * 1e6 / n,
        );
    }
    println!(
        "\nRSS is what the kernel sees (whole pages; hash tables grow by doubling, so the figure depends on where {sessions} falls between two resizes). Live heap is the sum of the sizes requested from the allocator minus those freed (counting global allocator), without malloc's own overhead. The create time includes the counting allocator's atomics (and is only indicative)."
    );
}

// ------------------------------------------------------------------- redis

fn used_memory(redis: &Redis) -> f64 {
    redis.info(&["memory"])["used_memory"]
        .parse()
        .expect("a number")
}

/// `MEMORY USAGE` and friends of one key, as a table row.
fn key_row(redis: &Redis, name: &str, key: &str, size_command: &str, unit: &str) -> String {
    assert_eq!(
        redis.cli(&["EXISTS", key]).trim(),
        "1",
        "{name}: key {key} exists"
    );
    let kind = redis.cli(&["TYPE", key]);
    let encoding = redis.cli(&["OBJECT", "ENCODING", key]);
    let size = redis.cli(&[size_command, key]);
    let usage = redis.cli(&["MEMORY", "USAGE", key, "SAMPLES", "0"]);
    format!(
        "| {name} | {} bytes | {} / {} | {} {unit} | **{}** |",
        key.len(),
        kind.trim(),
        encoding.trim(),
        size.trim(),
        usage.trim()
    )
}

fn redis_memory(redis: &Redis, keys: u64) {
    let rt = runtime();
    let ours_probe = "memory-bench-probe:";
    let ours_many = "memory-bench-many:";
    let (ours_app, ours_many_app, theirs_app) = rt.block_on(async {
        (
            peers::ours_redis_app::<Profile>(&redis.url, ours_probe).await,
            peers::ours_redis_app::<Profile>(&redis.url, ours_many).await,
            peers::ts014::redis_app::<Profile>(&redis.url, 1).await,
        )
    });

    // One key each.
    rt.block_on(login(&ours_app));
    let found = redis.cli(&["--scan", "--pattern", &format!("{ours_probe}*")]);
    let found: Vec<&str> = found.lines().collect();
    assert_eq!(found.len(), 1, "one probe session: {found:?}");
    let ours_row = key_row(redis, "typed_sessions", found[0], "HLEN", "fields");
    let cookie = rt.block_on(login(&theirs_app));
    let id = cookie
        .strip_prefix(&format!("{COOKIE_NAME}="))
        .expect("name=value")
        .to_owned();
    let theirs_row = key_row(
        redis,
        "tower_sessions_redis",
        &id,
        "STRLEN",
        "bytes of MessagePack",
    );

    // `keys` sessions each, `used_memory` before and after.
    let mut per_key = Vec::new();
    // Every key this part made, deleted at the end (for a `REDIS_URL` server).
    let mut made = vec![found[0].to_owned(), id];
    for app in [&ours_many_app, &theirs_app] {
        let before = used_memory(redis);
        let cookies = rt.block_on(async {
            let mut cookies = Vec::with_capacity(keys as usize);
            for _ in 0..keys {
                cookies.push(login(app).await);
            }
            cookies
        });
        let after = used_memory(redis);
        per_key.push((after - before) / keys as f64);
        if std::ptr::eq(app, &theirs_app) {
            // The peer's key is its session id, the cookie's value.
            made.extend(
                cookies
                    .iter()
                    .map(|c| c[COOKIE_NAME.len() + 1..].to_owned()),
            );
        }
    }
    let found = redis.cli(&["--scan", "--pattern", &format!("{ours_many}*")]);
    assert_eq!(
        found.lines().count() as u64,
        keys,
        "typed_sessions stored one key per session"
    );
    made.extend(found.lines().map(str::to_owned));
    for chunk in made.chunks(200) {
        let mut args = vec!["DEL"];
        args.extend(chunk.iter().map(String::as_str));
        redis.cli(&args);
    }

    println!(
        "\n## Redis: memory per session (`Profile::sample()` just after login; the average over {keys} sessions from `used_memory`)\n"
    );
    println!(
        "| peer | key | type / encoding | size | `MEMORY USAGE key SAMPLES 0` | `used_memory` growth / session |"
    );
    println!("|---|---|---|---|---|---|");
    println!("{ours_row} {:.0} |", per_key[0]);
    println!("{theirs_row} {:.0} |", per_key[1]);
    println!(
        "\n`used_memory` includes what a key costs the keyspace beyond `MEMORY USAGE` (the main dictionary's and the expiry dictionary's entries, amortised table growth)."
    );
}

// --------------------------------------------------------------------- main

fn main() {
    let sessions: u64 = env_or("MEMORY_SESSIONS", 100_000);
    if let Ok(name) = std::env::var("MEMORY_CHILD") {
        child(&name, sessions);
        return;
    }
    let keys: u64 = env_or("MEMORY_REDIS_KEYS", 1_000);
    println!(
        "session data: Profile, {} bytes as one serde_json object",
        json_size::<Profile>()
    );
    memory_store(sessions);
    match Redis::start() {
        Some(redis) => redis_memory(&redis, keys),
        None => println!(
            "\n**memory: the Redis part is SKIPPED**: redis-server could not be started and REDIS_URL is unset"
        ),
    }
}
