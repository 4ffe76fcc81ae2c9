#![cfg(feature = "redis")]
//! Redis faults under load (issue #12): the demo's real router
//! (`examples/demo/app.rs`, with the layer `examples/demo/args.rs` builds
//! for `--insecure`) on a `RedisStore`, served by `axum::serve` on a
//! loopback port, driven by [`CLIENTS`] keep-alive connections, each
//! sending `POST /api/counter/atomic-incr` (`Session::update`, a
//! compare-and-swap) on a session of its own, in a loop, while Redis fails
//! under it.
//!
//! # `kill -9` and a restart 2 s later
//!
//! [`redis_killed_and_restarted_under_load`]: a private `redis-server`
//! with persistence on (`RedisServer::start_persistent`: an append-only
//! file with `appendfsync always`, checked with `CONFIG GET`, so every
//! acknowledged write is on disk before its reply leaves Redis), killed
//! with SIGKILL a quarter into the run and started again on the same port
//! 2 s later. The app and its store are never restarted. Asserted:
//!
//! - before the kill, every answer is a `200 {"count":N}`;
//! - every answer of the whole run is a 200 or a 503 with `Retry-After`
//!   (and a 503 never sets a cookie); no other status, no broken
//!   connection, no request without an answer;
//! - from the kill until Redis answers `PING` again, a 200 comes only from
//!   a request sent before the kill (its write reached Redis in time), and
//!   every answer in that window arrives within the command timeout plus
//!   [`MARGIN`] (the maximum is printed);
//! - every client saw at least one 503 (the outage reached everyone);
//! - after Redis answers `PING` again: every client's first 200 within
//!   [`RECOVERY`] (1 s; the maximum is printed), and from then on nothing
//!   but 200s;
//! - no lost and no doubled increment, to exactly what the library
//!   promises (below);
//! - [`DORMANT`] sessions written before the outage (a login, a cart, a
//!   counter) and not touched during it read back exactly as before, both
//!   through the API and as raw Redis hashes.
//!
//! ## What an answer says about its increment
//!
//! From `session-runtime/src/store/redis.rs` and the README's error table:
//!
//! - `200 {"count":N}`: `update` committed (its save script ran and
//!   answered); the write was acknowledged, so with `appendfsync always`
//!   it is on disk and survives `kill -9`. Applied exactly once: a save
//!   resent after a dead connection is recognized by its call id (`@x`)
//!   and answers the first run's reply instead of applying again.
//! - `503` with `Retry-After: 5` (the layer's default `FailClosed`
//!   policy): the session could not be *loaded*, so the handler never ran
//!   and nothing was sent to Redis. Never applied.
//! - `503` with `Retry-After: 1` (`UpdateError::Store(Unavailable)`): the
//!   save was not confirmed. The README says what it means: "not
//!   confirmed", not "not written" (Redis may have run the script, and
//!   fsynced it, just before it died, and the reply was lost). Applied at
//!   most once.
//!
//! So on each client's own session (no other writer): a 200's count is
//! the previous 200's count plus one, plus at most the number of
//! `Retry-After: 1` answers in between; and the count read back at the end
//! lies between the number of 200s and that plus the `Retry-After: 1`
//! answers. The test prints how many unconfirmed increments were applied.
//!
//! # A stalled Redis
//!
//! [`stalled_redis_under_load`]: `DEBUG SLEEP 3` (longer than the command
//! timeout) a quarter into the run. Asserted: every answer during the stall
//! within the command timeout plus [`MARGIN`], each a 200 (a request done
//! before the stall) or a 503 with `Retry-After`; the outage reached every
//! client; after `DEBUG SLEEP` returns, every client is served again within
//! [`RECOVERY`] and then only 200s; the same accounting of increments
//! (saves queued during the stall do run when Redis wakes: their 503 is
//! the "not confirmed" kind).
//!
//! # Dropped connections
//!
//! [`redis_dropping_connections_under_load`]: Redis stays up but closes
//! the app's connections ten times, 150 ms apart (`CLIENT KILL TYPE
//! normal`), while commands are in flight. The store sends a call that met
//! a dead connection once more, on a new one, and a save script that ran
//! already answers its first reply (its call id is in `@x`). Asserted:
//! not one 503 (nor anything else but 200s), latencies within the bound,
//! the exact accounting of increments above (so no save applied twice),
//! and, from `INFO commandstats`, that more save scripts ran than
//! increments were answered: some calls did run twice, so the resend path
//! was exercised. (The DEBUG SLEEP test prints the same numbers.)
//!
//! # Running
//!
//! Each run lasts `OUTAGE_SECS` seconds (default [`DEFAULT_SECS`], at least
//! [`MIN_SECS`]); the three tests run one after the other. The numbers go to
//! stderr:
//!
//! ```text
//! cargo test --all-features --test redis_outage -- --nocapture
//! OUTAGE_SECS=60 cargo test --all-features --test redis_outage -- --nocapture
//! ```
//!
//! Without a `redis-server` binary the tests print a loud `SKIPPED` line
//! and pass, except under `CI=true`, where that is a failure (see
//! `RedisServer::start`).

#[path = "../examples/demo/app.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "the demo's module, of which this test uses only `app`"
)]
mod app;
#[path = "../examples/demo/args.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "the demo's module, of which this test uses only `Options`"
)]
mod args;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use typed_sessions::stores::RedisStore;
use typed_sessions_test_support::keepalive::{Answer, Conn, parse_count};
use typed_sessions_test_support::key_of;
use typed_sessions_test_support::redis_server::{RedisServer, Reply, stats_delta};

use args::{Options, StoreKind};

/// Connections, each incrementing a session of its own.
const CLIENTS: usize = 32;
/// Sessions written before the outage and left alone during it.
const DORMANT: usize = 8;
/// The store's command timeout (the library's default, spelled out).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// What an answer may take on top of the command timeout: scheduling on a
/// loaded two-core machine running a debug build.
const MARGIN: Duration = Duration::from_millis(750);
/// How soon after Redis answers again every client must be served.
const RECOVERY: Duration = Duration::from_secs(1);
/// How long Redis stays dead.
const OUTAGE: Duration = Duration::from_secs(2);
/// How long the stall lasts, in seconds (`DEBUG SLEEP`).
const STALL_SECS: u64 = 3;
/// A client's pause after a 503, so that 32 clients do not spin on the two
/// cores while Redis is away. It is also the resolution of the recovery
/// time measured.
const PAUSE_AFTER_503: Duration = Duration::from_millis(20);
/// Seconds per run without `OUTAGE_SECS`.
const DEFAULT_SECS: u64 = 8;
/// The shortest run: a quarter before the fault, the fault, and time to
/// recover and keep going.
const MIN_SECS: u64 = 8;
/// The longest a request may take before the client gives up on it: far
/// beyond any bound asserted, so that a hang is reported, not waited out.
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the clients have after the end of the run to finish.
const GRACE: Duration = Duration::from_secs(30);
/// The `Retry-After` of a 503 whose session could not be loaded (the
/// layer's default `FailClosed` policy, which the demo keeps).
const RETRY_AFTER_LOAD: u64 = 5;
/// The `Retry-After` of a 503 from `update` (`UpdateError`).
const RETRY_AFTER_UPDATE: u64 = 1;

const INCR: &str = "/api/counter/atomic-incr";
const COUNTER: &str = "/api/counter";

/// The tests run one at a time: each wants the cores to itself.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn redis_killed_and_restarted_under_load() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(server) = RedisServer::start_persistent() else {
        eprintln!("redis_outage [kill -9]: SKIPPED, no redis-server");
        return;
    };
    assert_eq!(
        server.command(&["CONFIG", "GET", "appendonly"]),
        "appendonly\nyes",
        "persistence on"
    );
    assert_eq!(
        server.command(&["CONFIG", "GET", "appendfsync"]),
        "appendfsync\nalways",
        "every acknowledged write is on disk before its reply"
    );
    runtime().block_on(run(server, Fault::Kill));
}

#[test]
fn stalled_redis_under_load() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(server) = RedisServer::start() else {
        eprintln!("redis_outage [DEBUG SLEEP]: SKIPPED, no redis-server");
        return;
    };
    runtime().block_on(run(server, Fault::Stall));
}

#[test]
fn redis_dropping_connections_under_load() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(server) = RedisServer::start() else {
        eprintln!("redis_outage [CLIENT KILL]: SKIPPED, no redis-server");
        return;
    };
    runtime().block_on(run(server, Fault::Drop));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `kill -9`, then a restart on the same port [`OUTAGE`] later.
    Kill,
    /// `DEBUG SLEEP` [`STALL_SECS`].
    Stall,
    /// Redis stays up but closes the app's connections ([`DROPS`] ×
    /// `CLIENT KILL TYPE normal`, [`DROP_EVERY`] apart): commands in
    /// flight lose their replies, and the store sends them once more.
    Drop,
}

/// How many times [`Fault::Drop`] closes the app's connections.
const DROPS: u32 = 10;
/// The time between two of them.
const DROP_EVERY: Duration = Duration::from_millis(150);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn run_secs() -> u64 {
    match std::env::var("OUTAGE_SECS") {
        Ok(value) => value
            .parse()
            .ok()
            .filter(|&secs| secs >= MIN_SECS)
            .unwrap_or_else(|| {
                panic!("OUTAGE_SECS={value:?}: expected whole seconds, at least {MIN_SECS}")
            }),
        Err(_) => DEFAULT_SECS,
    }
}

/// When the fault happened, by the test's clock.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    /// Just before the fault was injected.
    fault_started: Instant,
    /// Redis is certainly away from here (the process has exited; the
    /// `DEBUG SLEEP` was sent).
    fault_in_effect: Instant,
    /// Redis may answer from here (the new process was spawned; the stall
    /// may end any moment).
    may_answer: Instant,
    /// Redis answers again (`PING` answered; `DEBUG SLEEP` returned).
    answers: Instant,
}

/// Serves the demo over a store on `server`, injects `fault` under load,
/// checks and reports.
#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
async fn run(mut server: RedisServer, fault: Fault) {
    let label = match fault {
        Fault::Kill => "kill -9",
        Fault::Stall => "DEBUG SLEEP",
        Fault::Drop => "CLIENT KILL",
    };
    let mut dropped_connections = 0;
    let store = RedisStore::builder()
        .command_timeout(COMMAND_TIMEOUT)
        .open(&server.url())
        .await
        .expect("the test's redis-server answers");
    let layer = Options {
        store: StoreKind::Memory,
        secure: false,
        ..Options::default()
    }
    .session_layer_over(store.clone())
    .unwrap();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app_server = AbortOnDrop(tokio::spawn(async move {
        axum::serve(listener, app::app(layer)).await
    }));

    let dormant = make_dormant(addr, &store, &server).await;

    let stats_before = tokio::task::block_in_place(|| server.command_stats());
    let secs = run_secs();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut clients = JoinSet::new();
    for n in 0..CLIENTS {
        clients.spawn(client(n, addr, deadline));
    }

    sleep_until(start + Duration::from_secs(secs) / 4).await;
    let timeline = match fault {
        Fault::Kill => {
            let fault_started = Instant::now();
            tokio::task::block_in_place(|| server.kill());
            let fault_in_effect = Instant::now();
            sleep(OUTAGE).await;
            let may_answer = Instant::now();
            tokio::task::block_in_place(|| server.restart());
            Timeline {
                fault_started,
                fault_in_effect,
                may_answer,
                answers: Instant::now(),
            }
        }
        Fault::Stall => {
            let fault_started = Instant::now();
            let sleeper =
                server.command_in_background(&["DEBUG", "SLEEP", &STALL_SECS.to_string()]);
            // Redis still answers the commands that reached it in the same
            // turn of its event loop as `DEBUG SLEEP` (requests of the 32
            // clients sent a moment after ours was written): only requests
            // sent 100 ms later are sure to meet a sleeping Redis.
            let fault_in_effect = Instant::now() + Duration::from_millis(100);
            // The stall ends STALL_SECS after Redis read the command; say
            // it may end a little earlier than by this clock.
            sleep(Duration::from_millis(STALL_SECS * 1000 - 200)).await;
            let may_answer = Instant::now();
            let slept =
                tokio::task::block_in_place(|| sleeper.join()).expect("DEBUG SLEEP answered");
            assert_eq!(slept, "OK");
            Timeline {
                fault_started,
                fault_in_effect,
                may_answer,
                answers: Instant::now(),
            }
        }
        Fault::Drop => {
            let fault_started = Instant::now();
            for _ in 0..DROPS {
                // `SKIPME yes` (the default) spares the harness's own connection.
                let killed = tokio::task::block_in_place(|| {
                    server.query(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
                });
                match killed {
                    Ok(Reply::Integer(n)) => dropped_connections += n,
                    other => panic!("CLIENT KILL: {other:?}"),
                }
                sleep(DROP_EVERY).await;
            }
            Timeline {
                fault_started,
                fault_in_effect: fault_started,
                // Redis never stopped answering.
                may_answer: fault_started,
                answers: Instant::now(),
            }
        }
    };

    let reports = timeout(GRACE + Duration::from_secs(secs), async {
        let mut reports = Vec::new();
        while let Some(report) = clients.join_next().await {
            reports.push(report.expect("a load client panicked"));
        }
        reports
    })
    .await
    .expect("the clients finish within the grace period");
    let elapsed = start.elapsed();
    // The save scripts Redis ran during the load (a restart zeroes the
    // statistics: only without one).
    let scripts_run = (fault != Fault::Kill).then(|| {
        let delta = stats_delta(
            &stats_before,
            &tokio::task::block_in_place(|| server.command_stats()),
        );
        delta.get("evalsha").copied().unwrap_or(0) + delta.get("eval").copied().unwrap_or(0)
    });

    let mut problems = Vec::new();
    let mut totals = Totals::default();
    for report in &reports {
        check_client(report, fault, &timeline, &mut totals, &mut problems);
    }
    check_dormant(addr, &store, &server, &dormant, &mut problems).await;
    drop(app_server);

    let offset = |at: Instant| at.duration_since(start).as_secs_f64();
    eprintln!(
        "redis_outage [{label}] {secs} s, {CLIENTS} clients, command timeout {COMMAND_TIMEOUT:?}: \
         fault at {:.2} s (in effect {:.2} s), Redis answering again at {:.2} s; \
         {} requests in {elapsed:.1?}: {} × 200, {} × 503 (Retry-After {RETRY_AFTER_LOAD}: {}, \
         Retry-After {RETRY_AFTER_UPDATE}: {}), {} other; \
         max latency {} ms before the fault, {} ms during it (bound {} ms), {} ms after it; \
         recovery: first 200 per client after Redis answered: max {} ms, median {} ms (bound {} ms); \
         increments: {} answered 200, {} read back, {} of {} unconfirmed (503) applied; \
         dormant sessions: {DORMANT} checked; connections closed by CLIENT KILL: {dropped_connections}",
        offset(timeline.fault_started),
        offset(timeline.fault_in_effect),
        offset(timeline.answers),
        totals.requests,
        totals.ok,
        totals.load_503 + totals.update_503,
        totals.load_503,
        totals.update_503,
        totals.other,
        totals.max_latency_before.as_millis(),
        totals.max_fault_latency.as_millis(),
        (COMMAND_TIMEOUT + MARGIN).as_millis(),
        totals.max_latency_after.as_millis(),
        totals.recovery.iter().max().map_or(0, Duration::as_millis),
        median(&totals.recovery).as_millis(),
        RECOVERY.as_millis(),
        totals.successes,
        totals.read_back,
        totals.applied_unconfirmed,
        totals.update_503,
    );

    if let Some(scripts) = scripts_run {
        // Every 200 is one save script that ran; an unconfirmed 503 may
        // have run one too. Any more runs are calls sent twice: a save
        // whose reply was lost on a dropped connection, sent once more
        // (and recognized by its call id: the counts above show that none
        // was applied twice), or an `update` retried after a conflict.
        let answered = totals.ok;
        let extra = scripts.saturating_sub(answered + totals.update_503);
        eprintln!(
            "redis_outage [{label}]: {scripts} save scripts ran for {answered} increments \
             answered 200 and {} unconfirmed: at least {extra} calls ran twice",
            totals.update_503
        );
        if scripts < answered {
            problems.push(format!(
                "{answered} increments answered 200, only {scripts} save scripts ran"
            ));
        }
        if fault == Fault::Drop && extra == 0 {
            problems.push(
                "no save ran twice: the dropped connections never lost a reply, so the \
                 resend was not exercised"
                    .to_owned(),
            );
        }
    }
    if fault == Fault::Drop && totals.load_503 + totals.update_503 > 0 {
        problems.push(format!(
            "{} × 503 while Redis only dropped connections: a call that met a dead \
             connection is sent once more, on a new one",
            totals.load_503 + totals.update_503
        ));
    }
    if fault != Fault::Drop && totals.load_503 + totals.update_503 == 0 {
        problems.push("no 503 at all: the fault never reached the app".to_owned());
    }
    assert!(
        problems.is_empty(),
        "redis_outage [{label}]: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Aborts the app's server task when the test ends, failed or not.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Sessions left alone during the fault.

/// A session written before the fault: its cookie, what the API answers
/// for it and its raw Redis hash.
struct Dormant {
    cookie: String,
    api: Vec<(&'static str, String)>,
    key: String,
    hash: BTreeMap<Vec<u8>, Vec<u8>>,
    pttl: i64,
}

const DORMANT_READS: [&str; 3] = ["/api/me", "/api/cart", COUNTER];

async fn make_dormant(addr: SocketAddr, store: &RedisStore, server: &RedisServer) -> Vec<Dormant> {
    let mut out = Vec::new();
    let mut conn = Conn::open(addr, IO_TIMEOUT).await;
    for n in 0..DORMANT {
        let answer = conn
            .send(
                "POST",
                "/api/login",
                None,
                Some(&format!(r#"{{"user":"dormant-{n}"}}"#)),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body_text());
        let cookie = answer.cookie.expect("a login sets the cookie");
        let answer = conn
            .send(
                "POST",
                "/api/cart",
                Some(&cookie),
                Some(&format!(r#"{{"sku":"sku-{n}","qty":{}}}"#, n + 1)),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body_text());
        for _ in 0..=n {
            let answer = conn.send("POST", INCR, Some(&cookie), None).await.unwrap();
            assert_eq!(answer.status, 200, "{}", answer.body_text());
        }
        let mut api = Vec::new();
        for uri in DORMANT_READS {
            let answer = conn.send("GET", uri, Some(&cookie), None).await.unwrap();
            assert_eq!(answer.status, 200, "{}", answer.body_text());
            assert!(answer.cookie.is_none(), "a read sets no cookie");
            api.push((uri, answer.body_text()));
        }
        assert!(api[0].1.contains(&format!("dormant-{n}")), "{:?}", api[0]);
        let key = store.redis_key(&key_of(&cookie));
        let (hash, pttl) = tokio::task::block_in_place(|| raw_hash(server, &key));
        assert!(hash.len() > 4, "a stored session: {hash:?}");
        out.push(Dormant {
            cookie,
            api,
            key,
            hash,
            pttl,
        });
    }
    out
}

/// `HGETALL` and `PTTL` of `key`, through the harness's own client.
fn raw_hash(server: &RedisServer, key: &str) -> (BTreeMap<Vec<u8>, Vec<u8>>, i64) {
    let hash = match server.query(&["HGETALL", key]) {
        Ok(Reply::Array(items)) => items
            .chunks(2)
            .map(|pair| match pair {
                [Reply::Bulk(field), Reply::Bulk(value)] => (field.clone(), value.clone()),
                other => panic!("HGETALL {key}: {other:?}"),
            })
            .collect(),
        other => panic!("HGETALL {key}: {other:?}"),
    };
    let pttl = match server.query(&["PTTL", key]) {
        Ok(Reply::Integer(pttl)) => pttl,
        other => panic!("PTTL {key}: {other:?}"),
    };
    (hash, pttl)
}

async fn check_dormant(
    addr: SocketAddr,
    store: &RedisStore,
    server: &RedisServer,
    dormant: &[Dormant],
    problems: &mut Vec<String>,
) {
    let mut conn = Conn::open(addr, IO_TIMEOUT).await;
    for (n, session) in dormant.iter().enumerate() {
        let (hash, pttl) = tokio::task::block_in_place(|| raw_hash(server, &session.key));
        if hash != session.hash {
            problems.push(format!(
                "dormant session {n}: its Redis hash changed: {} fields before, {} after",
                session.hash.len(),
                hash.len()
            ));
        }
        if !(0 < pttl && pttl <= session.pttl) {
            problems.push(format!(
                "dormant session {n}: PTTL {pttl} after, {} before",
                session.pttl
            ));
        }
        for (uri, before) in &session.api {
            match conn.send("GET", uri, Some(&session.cookie), None).await {
                Ok(answer) if answer.status == 200 && answer.body_text() == *before => {}
                Ok(answer) => problems.push(format!(
                    "dormant session {n}: GET {uri}: {} {:?}, before: 200 {before:?}",
                    answer.status,
                    answer.body_text()
                )),
                Err(err) => problems.push(format!("dormant session {n}: {err}")),
            }
        }
        assert_eq!(store.redis_key(&key_of(&session.cookie)), session.key);
    }
}

// ---------------------------------------------------------------------------
// The load client and the checks of what it saw.

/// One request and how it ended.
#[derive(Debug)]
struct Exchange {
    sent: Instant,
    answered: Instant,
    outcome: Outcome,
}

#[derive(Debug)]
enum Outcome {
    /// `200 {"count":N}`.
    Counted(u64),
    /// `503` with `Retry-After: N`.
    Unavailable { retry_after: u64 },
    /// Anything else: a status, a 503 without `Retry-After` or with a
    /// cookie, a body that is not a count, a broken connection.
    Wrong(String),
}

/// What one client saw.
#[derive(Debug)]
struct ClientReport {
    n: usize,
    exchanges: Vec<Exchange>,
    read_back: Result<u64, String>,
}

/// One connection with its own session, made by its first increment;
/// increments until `deadline`, then reads its count back.
async fn client(n: usize, addr: SocketAddr, deadline: Instant) -> ClientReport {
    let mut exchanges = Vec::new();
    let mut conn = Conn::open(addr, IO_TIMEOUT).await;
    let mut cookie: Option<String> = None;
    while Instant::now() < deadline {
        let sent = Instant::now();
        let result = conn.send("POST", INCR, cookie.as_deref(), None).await;
        let answered = Instant::now();
        let outcome = match result {
            Ok(answer) => {
                let outcome = classify(&answer);
                if let (Outcome::Counted(_), Some(new)) = (&outcome, answer.cookie) {
                    if cookie.as_ref().is_some_and(|old| *old != new) {
                        exchanges.push(Exchange {
                            sent,
                            answered,
                            outcome: Outcome::Wrong("the session's cookie changed".to_owned()),
                        });
                    }
                    cookie = Some(new);
                }
                outcome
            }
            Err(err) => {
                // Counted as a problem; carry on over a new connection.
                conn = Conn::open(addr, IO_TIMEOUT).await;
                Outcome::Wrong(err)
            }
        };
        let pause = matches!(outcome, Outcome::Unavailable { .. });
        exchanges.push(Exchange {
            sent,
            answered,
            outcome,
        });
        if pause {
            sleep(PAUSE_AFTER_503).await;
        }
    }
    let read_back = match conn.send("GET", COUNTER, cookie.as_deref(), None).await {
        Ok(answer) if answer.status == 200 => parse_count(&answer.body),
        Ok(answer) => Err(format!(
            "GET {COUNTER}: status {}: {}",
            answer.status,
            answer.body_text()
        )),
        Err(err) => Err(err),
    };
    ClientReport {
        n,
        exchanges,
        read_back,
    }
}

fn classify(answer: &Answer) -> Outcome {
    match answer.status {
        200 => match parse_count(&answer.body) {
            Ok(count) => Outcome::Counted(count),
            Err(err) => Outcome::Wrong(err),
        },
        503 => match (answer.retry_after, &answer.cookie) {
            (Some(retry_after), None) => Outcome::Unavailable { retry_after },
            (None, _) => Outcome::Wrong("a 503 without Retry-After".to_owned()),
            (Some(_), Some(_)) => Outcome::Wrong("a 503 that sets the cookie".to_owned()),
        },
        status => Outcome::Wrong(format!("status {status}: {}", answer.body_text())),
    }
}

#[derive(Debug, Default)]
struct Totals {
    requests: u64,
    ok: u64,
    load_503: u64,
    update_503: u64,
    other: u64,
    /// Answered before the fault began.
    max_latency_before: Duration,
    /// Answered after the fault took effect and sent before Redis
    /// answered again.
    max_fault_latency: Duration,
    /// Sent after Redis answered again.
    max_latency_after: Duration,
    /// Per client: from Redis answering again to its first 200 after that.
    recovery: Vec<Duration>,
    successes: u64,
    read_back: u64,
    applied_unconfirmed: u64,
}

/// At most this many problems per client are listed.
const KEEP_PROBLEMS: usize = 4;

/// Checks one client's exchanges against the timeline (see the module
/// documentation for the rules) and adds them to `totals`.
#[expect(clippy::too_many_lines, reason = "one rule after the other")]
fn check_client(
    report: &ClientReport,
    fault: Fault,
    timeline: &Timeline,
    totals: &mut Totals,
    problems: &mut Vec<String>,
) {
    let n = report.n;
    let mut mine = Vec::new();
    let mut problem = |text: String| mine.push(format!("client {n}: {text}"));

    let mut successes = 0_u64;
    let mut last_count = 0_u64;
    // `Retry-After: 1` answers since the last 200: increments that may
    // have been applied.
    let mut unconfirmed_since = 0_u64;
    let mut unconfirmed = 0_u64;
    let mut applied_unconfirmed = 0_u64;
    let mut saw_503_in_fault = false;
    let mut first_ok_after: Option<Instant> = None;

    for (i, exchange) in report.exchanges.iter().enumerate() {
        totals.requests += 1;
        let latency = exchange.answered.duration_since(exchange.sent);
        if exchange.answered < timeline.fault_started {
            totals.max_latency_before = totals.max_latency_before.max(latency);
        }
        if exchange.sent > timeline.answers {
            totals.max_latency_after = totals.max_latency_after.max(latency);
        }
        // In the fault: answered after it took effect, sent before Redis
        // answered again.
        let in_fault =
            exchange.answered > timeline.fault_in_effect && exchange.sent < timeline.answers;
        if in_fault {
            totals.max_fault_latency = totals.max_fault_latency.max(latency);
            if latency > COMMAND_TIMEOUT + MARGIN {
                problem(format!(
                    "request {i} took {latency:?} during the fault, over {:?}",
                    COMMAND_TIMEOUT + MARGIN
                ));
            }
        }
        let recovered = exchange.answered > timeline.answers + RECOVERY;
        match exchange.outcome {
            Outcome::Counted(count) => {
                totals.ok += 1;
                successes += 1;
                if exchange.answered > timeline.answers && first_ok_after.is_none() {
                    first_ok_after = Some(exchange.answered);
                }
                if exchange.answered < timeline.fault_started
                    || exchange.answered > timeline.answers
                {
                    // Normal service.
                } else if exchange.sent > timeline.fault_in_effect
                    && exchange.answered < timeline.may_answer
                {
                    problem(format!(
                        "request {i}: a 200 for a request sent while Redis was away"
                    ));
                }
                // Exactly once: one more than the last 200, plus at most the
                // unconfirmed increments in between.
                let gap = count.checked_sub(last_count + 1);
                match gap {
                    Some(applied) if applied <= unconfirmed_since => {
                        applied_unconfirmed += applied;
                    }
                    _ => problem(format!(
                        "request {i}: count {count} after {last_count}, with \
                         {unconfirmed_since} unconfirmed increment(s) in between"
                    )),
                }
                last_count = count;
                unconfirmed_since = 0;
            }
            Outcome::Unavailable { retry_after } => {
                match retry_after {
                    RETRY_AFTER_LOAD => totals.load_503 += 1,
                    RETRY_AFTER_UPDATE => {
                        totals.update_503 += 1;
                        unconfirmed += 1;
                        unconfirmed_since += 1;
                    }
                    other => problem(format!("request {i}: a 503 with Retry-After: {other}")),
                }
                if exchange.answered < timeline.fault_started {
                    problem(format!("request {i}: a 503 before the fault"));
                } else if in_fault {
                    saw_503_in_fault = true;
                }
                if recovered {
                    problem(format!(
                        "request {i}: a 503 {:?} after Redis answered again",
                        exchange.answered.duration_since(timeline.answers)
                    ));
                }
            }
            Outcome::Wrong(ref what) => {
                totals.other += 1;
                problem(format!("request {i}: {what}"));
            }
        }
    }

    // Dropped connections are resent by the store: no 503 required.
    if !saw_503_in_fault && fault != Fault::Drop {
        problem("never saw a 503 during the fault".to_owned());
    }
    match first_ok_after {
        Some(at) => {
            let took = at.duration_since(timeline.answers);
            totals.recovery.push(took);
            if took > RECOVERY {
                problem(format!(
                    "first 200 only {took:?} after Redis answered again (bound {RECOVERY:?})"
                ));
            }
        }
        None => problem("no 200 after Redis answered again".to_owned()),
    }
    match report.read_back {
        Ok(read_back) => {
            totals.read_back += read_back;
            // Only the unconfirmed increments after the last 200 may add
            // to its count.
            if (last_count..=last_count + unconfirmed_since).contains(&read_back) {
                applied_unconfirmed += read_back - last_count;
            } else {
                problem(format!(
                    "read back {read_back}: the last 200 answered {last_count}, with \
                     {unconfirmed_since} unconfirmed increment(s) after it"
                ));
            }
            if !(successes..=successes + unconfirmed).contains(&read_back) {
                problem(format!(
                    "read back {read_back}: {successes} increments answered 200 and \
                     {unconfirmed} unconfirmed"
                ));
            }
        }
        Err(ref err) => problem(format!("reading the count back: {err}")),
    }
    totals.successes += successes;
    totals.applied_unconfirmed += applied_unconfirmed;

    let listed = mine.len().min(KEEP_PROBLEMS);
    let more = mine.len() - listed;
    problems.extend(mine.into_iter().take(listed));
    if more > 0 {
        let mut line = String::new();
        let _ = write!(line, "client {n}: … and {more} more");
        problems.push(line);
    }
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client over one keep-alive connection.
