//! Growth: a write that changes one field (`visits += 1`) of a session of
//! about 230 B, 2 KB and 16 KB, typed-sessions against tower-sessions.
//! See `bench/README.md`.
//!
//! 1. Time per write request, `MemoryStore` against tower-sessions 0.15's
//!    `MemoryStore`: criterion, group `growth_write`, ids
//!    `<peer>/<size>` (one request at a time, current-thread runtime).
//! 2. Bytes sent to the store per write on Redis: typed-sessions'
//!    `RedisStore` against tower-sessions 0.14 with
//!    tower-sessions-redis-store 0.16, as the growth of Redis's
//!    `total_net_input_bytes` (`INFO stats`) over `GROWTH_REDIS_WRITES`
//!    (200) writes, divided by their number (and `total_net_output_bytes`,
//!    what the store sent back). A private `redis-server` is started as in
//!    `redis.rs`; without one (and without `REDIS_URL`) this part is
//!    skipped with a message.
//!
//! Then one Markdown table: size, peer, write time, ratio ours / theirs,
//! bytes to and from the store per write.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use serde::{Deserialize, Serialize};

#[path = "common/profile.rs"]
mod profile;

#[path = "common/peers.rs"]
mod peers;
use peers::{BenchData, Case, Peer, env_or, json_size, request, runtime, send};

#[path = "common/redis_server.rs"]
mod redis_server;
use redis_server::Redis;

/// `Profile`'s fields plus `notes`, which holds the bulk of the data. A
/// write changes `visits` only.
#[derive(typed_sessions::SessionData, Default, Serialize, Deserialize, Clone, Debug)]
#[session(namespace = "grown")]
struct Grown {
    user_name: String,
    email: String,
    user_id: u64,
    visits: u64,
    plan_level: u32,
    credit_cents: i64,
    roles: Vec<String>,
    verified: bool,
    notes: Vec<String>,
}

/// How many notes `Grown::sample()` holds: set per size before the peers
/// of that size log in.
static NOTES: AtomicUsize = AtomicUsize::new(0);

/// One note: 100 characters, numbered so that no two are equal.
fn note(i: usize) -> String {
    format!("note {i:05}: {}", "x".repeat(89))
}

impl BenchData for Grown {
    fn sample() -> Self {
        let p = profile::Profile::sample();
        Self {
            user_name: p.user_name,
            email: p.email,
            user_id: p.user_id,
            visits: p.visits,
            plan_level: p.plan_level,
            credit_cents: p.credit_cents,
            roles: p.roles,
            verified: p.verified,
            notes: (0..NOTES.load(Ordering::Relaxed)).map(note).collect(),
        }
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

/// A session size of the comparison.
struct Size {
    /// The label in ids and tables.
    label: &'static str,
    notes: usize,
    /// serde_json bytes of `Grown::sample()` with those notes.
    json: usize,
}

/// The three sizes: no notes (about `Profile`'s 231 bytes), and as many
/// 100-character notes as bring the JSON to at least 2,000 and 16,000 bytes.
fn sizes() -> Vec<Size> {
    [("230B", 0), ("2KB", 2_000), ("16KB", 16_000)]
        .into_iter()
        .map(|(label, target)| {
            let mut notes = 0;
            loop {
                NOTES.store(notes, Ordering::Relaxed);
                let json = json_size::<Grown>();
                if json >= target {
                    break Size { label, notes, json };
                }
                notes += 1;
            }
        })
        .collect()
}

const OURS: &str = "typed_sessions";
const THEIRS: &str = "tower_sessions";

// ---------------------------------------------------------------- criterion

/// The in-memory peers for the current `NOTES`, one session each, checked.
async fn memory_peers() -> Vec<Peer> {
    let peers = vec![
        Peer::with_session(OURS, peers::ours_memory_app::<Grown>()).await,
        Peer::with_session(THEIRS, peers::ts015::memory_app::<Grown>()).await,
    ];
    for peer in &peers {
        peers::sanity_check(peer).await;
    }
    peers
}

fn write_times(rt: &tokio::runtime::Runtime, sizes: &[Size]) {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    let mut group = c.benchmark_group("growth_write");
    for size in sizes {
        NOTES.store(size.notes, Ordering::Relaxed);
        let peers = rt.block_on(memory_peers());
        for peer in &peers {
            group.bench_with_input(BenchmarkId::new(peer.name, size.label), peer, |b, peer| {
                b.to_async(rt).iter(|| async {
                    let (status, body, set_cookie) =
                        send(&peer.app, request(Case::Write, &peer.cookie)).await;
                    debug_assert_eq!(status, 200);
                    black_box((body, set_cookie))
                });
            });
        }
    }
    group.finish();
    c.final_summary();
}

/// criterion's median of `growth_write/<peer>/<size>` in ns, from its
/// `estimates.json` (`None` when that case did not run, e.g. filtered out).
fn criterion_median(peer: &str, size: &str) -> Option<f64> {
    let root = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR").map(|d| PathBuf::from(d).join("criterion"))
        })
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/criterion"));
    let path = root.join(format!("growth_write/{peer}/{size}/new/estimates.json"));
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

// ------------------------------------------------------------------- redis

/// Bytes to and from Redis per write, and the mean wall time of one write
/// (one at a time; indicative).
#[derive(Clone, Copy, Debug)]
struct RedisWrite {
    bytes_in: f64,
    bytes_out: f64,
    micros: f64,
}

fn net_bytes(redis: &Redis) -> (f64, f64) {
    let info = redis.info(&["stats"]);
    let get = |k: &str| -> f64 { info[k].parse().expect("a number") };
    (get("total_net_input_bytes"), get("total_net_output_bytes"))
}

fn redis_writes(
    rt: &tokio::runtime::Runtime,
    redis: &Redis,
    sizes: &[Size],
    writes: u64,
) -> BTreeMap<(&'static str, &'static str), RedisWrite> {
    // What the measurement itself costs: two `INFO stats` with nothing in
    // between (redis-cli's command and reply).
    let (in0, out0) = net_bytes(redis);
    let (in1, out1) = net_bytes(redis);
    let (idle_in, idle_out) = (in1 - in0, out1 - out0);
    let mut results = BTreeMap::new();
    for size in sizes {
        NOTES.store(size.notes, Ordering::Relaxed);
        let peers = rt.block_on(async {
            let prefix = format!("growth{}:", size.label);
            vec![
                Peer::with_session(
                    OURS,
                    peers::ours_redis_app::<Grown>(&redis.url, &prefix).await,
                )
                .await,
                Peer::with_session(
                    THEIRS,
                    peers::ts014::redis_app::<Grown>(&redis.url, 1).await,
                )
                .await,
            ]
        });
        for peer in &peers {
            rt.block_on(peers::sanity_check(peer));
            // A few writes first, so that script loading and the like are
            // not counted.
            rt.block_on(async {
                for _ in 0..5 {
                    send(&peer.app, request(Case::Write, &peer.cookie)).await;
                }
            });
            let (in0, out0) = net_bytes(redis);
            let start = Instant::now();
            rt.block_on(async {
                for _ in 0..writes {
                    let (status, body, _) =
                        send(&peer.app, request(Case::Write, &peer.cookie)).await;
                    assert_eq!(status, 200, "{}: write status", peer.name);
                    black_box(body);
                }
            });
            let elapsed = start.elapsed();
            let (in1, out1) = net_bytes(redis);
            let n = writes as f64;
            results.insert(
                (size.label, peer.name),
                RedisWrite {
                    bytes_in: (in1 - in0 - idle_in) / n,
                    bytes_out: (out1 - out0 - idle_out) / n,
                    micros: elapsed.as_secs_f64() * 1e6 / n,
                },
            );
        }
    }
    results
}

// --------------------------------------------------------------------- main

fn fmt_ns(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn main() {
    let writes: u64 = env_or("GROWTH_REDIS_WRITES", 200);
    let criterion_part = env_or("GROWTH_CRITERION", 1u8) != 0;
    let rt = runtime();
    let sizes = sizes();
    println!("session data: Grown (Profile's fields + notes: Vec<String> of 100-character notes)");
    for size in &sizes {
        println!(
            "  {}: {} notes, {} bytes as one serde_json object",
            size.label, size.notes, size.json
        );
    }

    if criterion_part {
        write_times(&rt, &sizes);
    }

    let redis = Redis::start();
    let redis_results = match &redis {
        Some(redis) => redis_writes(&rt, redis, &sizes, writes),
        None => {
            println!(
                "\n**growth: the Redis part is SKIPPED**: redis-server could not be started and REDIS_URL is unset"
            );
            BTreeMap::new()
        }
    };
    drop(redis);

    println!(
        "\n## Growth: one write that changes one field (`visits += 1`)\n\nWrite time: criterion median, `MemoryStore` (ours) against tower-sessions 0.15's `MemoryStore`. Bytes: to / from Redis per write request (`total_net_input_bytes` / `total_net_output_bytes` over {writes} writes), `RedisStore` (ours) against tower-sessions 0.14 + tower-sessions-redis-store 0.16; the Redis write time is a mean of those sequential writes (indicative).\n"
    );
    println!(
        "| size (JSON bytes) | peer | write time, MemoryStore | ours / theirs | bytes to store / write | bytes from store / write | Redis write, mean |"
    );
    println!("|---|---|---|---|---|---|---|");
    for size in &sizes {
        let theirs = criterion_median(THEIRS, size.label);
        for peer in [OURS, THEIRS] {
            let time = criterion_median(peer, size.label);
            let ratio = match (peer, time, theirs) {
                (OURS, Some(o), Some(t)) => format!("{:.2}", o / t),
                _ => String::new(),
            };
            let (to, from, micros) = match redis_results.get(&(size.label, peer)) {
                Some(r) => (
                    format!("{:.0}", r.bytes_in),
                    format!("{:.0}", r.bytes_out),
                    format!("{:.0} µs", r.micros),
                ),
                None => ("–".into(), "–".into(), "–".into()),
            };
            println!(
                "| {} ({}) | {} | {} | {} | {} | {} | {} |",
                size.label,
                size.json,
                peer,
                time.map_or("–".into(), fmt_ns),
                ratio,
                to,
                from,
                micros
            );
        }
    }
}
