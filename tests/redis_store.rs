//! `RedisStore` on one Redis server that each test starts and owns: the
//! conformance and lifecycle suites, commands per request (from `INFO
//! commandstats`), the hash layout, field-level writes, schema migration,
//! and seed scenario 39.
//!
//! Without a `redis-server` binary these tests say so loudly and pass
//! without running, except under `CI=true`, where they fail.
#![cfg(feature = "redis")]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use typed_sessions::stores::{RedisStore, SessionStore};
use typed_sessions::{Session, SessionHandle, SessionLayer, SessionLayerBuilder};
use typed_sessions_test_support::backed::Backed;
use typed_sessions_test_support::redis_server::{RedisServer, stats_delta};
use typed_sessions_test_support::routes::counter_routes;
use typed_sessions_test_support::schemas::{Counter, Other, PrefsV1, PrefsV2};
use typed_sessions_test_support::{
    Gate, ManualClock, capture_logs, fetch, key_of, session_value, submit,
};

/// Whether a Redis server can be started here (asked once per test binary).
fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| RedisServer::start().is_some())
}

/// A store on a server of its own, which lives as long as the store.
fn store_on_own_server(clock: Option<Arc<ManualClock>>) -> Backed<RedisStore> {
    let server = RedisServer::start().expect("redis-server was available a moment ago");
    let mut builder = RedisStore::builder();
    if let Some(clock) = clock {
        builder = builder.clock(clock);
    }
    let store = builder.open_lazy(&server.url()).expect("a valid URL");
    Backed::new(store, server)
}

mod conformance {
    typed_sessions::conformance_tests!(when super::available(); super::store_on_own_server(None));
}

mod lifecycle {
    typed_sessions_test_support::lifecycle_tests!(when super::available(); |clock| {
        super::store_on_own_server(Some(clock))
    });
}

/// A server, a store on it and an app with counter, prefs and logout routes.
struct Fixture {
    server: RedisServer,
    store: RedisStore,
    app: Router,
    clock: Arc<ManualClock>,
    /// Holds `/theme-held` between its load and its write.
    gate: Gate,
}

fn fixture_with(
    configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
) -> Option<Fixture> {
    let server = RedisServer::start()?;
    let clock = ManualClock::starting_now();
    let store = RedisStore::builder()
        .clock(clock.clone())
        .open_lazy(&server.url())
        .unwrap();
    let gate = Gate::default();
    let held = gate.clone();
    let layer = configure(SessionLayer::builder(store.clone()).clock(clock.clone()))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .route(
            "/count",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .route(
            "/atomic",
            post(|mut c: Session<Counter>| async move {
                c.update(|c| c.count += 1).await.unwrap();
            }),
        )
        .route(
            "/other",
            post(|mut o: Session<Other>| async move { o.n += 1 }),
        )
        .route(
            "/theme/{theme}",
            post(
                |axum::extract::Path(theme): axum::extract::Path<String>,
                 mut p: Session<PrefsV2>| async move {
                    p.theme = theme;
                },
            ),
        )
        .route(
            "/theme-held/{theme}",
            post(
                move |axum::extract::Path(theme): axum::extract::Path<String>,
                      mut p: Session<PrefsV2>| async move {
                    let _ = &p.lang; // loaded before the hold
                    held.hold().await;
                    p.theme = theme;
                },
            ),
        )
        .route(
            "/prefs",
            get(|p: Session<PrefsV2>| async move { format!("{}/{}", p.theme, p.lang) }),
        )
        .route(
            "/prefs-v1",
            post(|mut p: Session<PrefsV1>| async move { p.theme = "dark".into() }),
        )
        .route(
            "/logout",
            post(|h: SessionHandle| async move { h.destroy() }),
        )
        .layer(layer);
    Some(Fixture {
        server,
        store,
        app,
        clock,
        gate,
    })
}

fn fixture() -> Option<Fixture> {
    fixture_with(|b| b)
}

impl Fixture {
    /// Runs `request` and returns the commands Redis executed meanwhile.
    async fn commands_of<T>(
        &self,
        request: impl std::future::Future<Output = T>,
    ) -> (T, BTreeMap<String, u64>) {
        let before = self.server.command_stats();
        let out = request.await;
        let after = self.server.command_stats();
        (out, stats_delta(&before, &after))
    }

    fn hash(&self, cookie: &str) -> BTreeMap<String, String> {
        let key = self.store.redis_key(&key_of(cookie));
        let text = self.server.command(&["HGETALL", &key]);
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(2)
            .filter(|pair| pair.len() == 2)
            .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
            .collect()
    }
}

fn stats(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test]
async fn a_read_only_request_is_one_hgetall() {
    let Some(f) = fixture() else { return };
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let (reply, commands) = f.commands_of(fetch(&f.app, "/count", Some(&cookie))).await;
    assert_eq!(reply.body, "1");
    assert_eq!(commands, stats(&[("hgetall", 1)]));
}

#[tokio::test]
async fn a_write_is_the_load_and_one_script_that_sets_only_the_changed_field() {
    let Some(f) = fixture() else { return };
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let (reply, commands) = f.commands_of(submit(&f.app, "/incr", Some(&cookie))).await;
    assert_eq!(reply.status, 200);
    // Two commands from the client: HGETALL, EVALSHA. The rest run inside
    // the script: one HMGET (liveness, the revision counter, the
    // namespace's version and revision), one HSET (the changed field, the
    // revisions, the call id, the deadline) and PEXPIRE.
    assert_eq!(
        commands,
        stats(&[
            ("hgetall", 1),
            ("evalsha", 1),
            ("hmget", 1),
            ("hset", 1),
            ("pexpire", 1),
        ])
    );
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "2");
}

#[tokio::test]
async fn a_first_write_is_one_script_and_no_load() {
    let Some(f) = fixture() else { return };
    // Load the scripts into Redis first, as any running app has.
    submit(&f.app, "/incr", None).await;
    let (reply, commands) = f.commands_of(submit(&f.app, "/incr", None)).await;
    assert!(reply.set_cookie().is_some());
    // EXISTS (the fresh key is free), one HSET, PEXPIRE; no load.
    assert_eq!(
        commands,
        stats(&[("evalsha", 1), ("exists", 1), ("hset", 1), ("pexpire", 1)])
    );
}

#[tokio::test]
async fn a_sliding_refresh_is_one_small_script_that_moves_the_deadline_only() {
    let Some(f) = fixture_with(|b| b.idle_timeout(Duration::from_mins(1))) else {
        return;
    };
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    // A first refresh loads the script into Redis, as in any running app.
    f.clock.advance(Duration::from_secs(20));
    fetch(&f.app, "/count", Some(&cookie)).await;
    let before = f.hash(&cookie);
    f.clock.advance(Duration::from_secs(20));
    let (reply, commands) = f.commands_of(fetch(&f.app, "/count", Some(&cookie))).await;
    assert_eq!(reply.body, "1");
    assert!(reply.set_cookie().is_some(), "the refresh re-sends Max-Age");
    assert_eq!(
        commands,
        stats(&[
            ("hgetall", 1),
            ("evalsha", 1),
            ("hmget", 1),
            ("hset", 1),
            ("pexpire", 1),
        ])
    );
    let after = f.hash(&cookie);
    assert_eq!(after["counter:count"], before["counter:count"]);
    assert_eq!(after["@n:counter"], before["@n:counter"], "no data write");
    assert!(after["@e"].parse::<u64>().unwrap() > before["@e"].parse::<u64>().unwrap());
    let pttl: u64 = f
        .server
        .command(&["PTTL", &f.store.redis_key(&key_of(&cookie))])
        .parse()
        .unwrap();
    // The idle timeout from this refresh, as the layer's clock counts it
    // (that clock is 40 s ahead of Redis's here: the TTL is relative).
    assert!(
        (59_000..=60_000).contains(&pttl),
        "the TTL follows the new deadline: {pttl}"
    );
}

#[tokio::test]
async fn scripts_are_loaded_again_after_redis_forgets_them() {
    let Some(f) = fixture() else { return };
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    assert_eq!(f.server.command(&["SCRIPT", "FLUSH"]), "OK");
    let (reply, commands) = f.commands_of(submit(&f.app, "/incr", Some(&cookie))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(commands.get("evalsha"), Some(&1), "NOSCRIPT…");
    assert_eq!(commands.get("eval"), Some(&1), "…then EVAL with the body");
    assert_eq!(commands.get("script|load"), None);
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "2");
    // EVAL cached the script: the next write is one EVALSHA again.
    let (_, commands) = f.commands_of(submit(&f.app, "/incr", Some(&cookie))).await;
    assert_eq!(commands.get("evalsha"), Some(&1));
    assert_eq!(commands.get("eval"), None);
}

#[tokio::test]
async fn the_hash_has_the_documented_layout_and_never_the_raw_id() {
    let Some(f) = fixture() else { return };
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    submit(&f.app, "/theme/dark", Some(&cookie)).await;
    let hash = f.hash(&cookie);
    let names: Vec<&str> = hash.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "@c",
            "@e",
            "@l",
            "@n:counter",
            "@n:prefs",
            "@r",
            "@x",
            "counter:count",
            "prefs:lang",
            "prefs:theme"
        ]
    );
    assert_eq!(hash["counter:count"], "1");
    assert_eq!(hash["prefs:theme"], "\"dark\"");
    assert_eq!(hash["@n:counter"], "1:1");
    assert_eq!(hash["@n:prefs"], "2:2");
    assert_eq!(hash["@r"], "2");
    let key = f.store.redis_key(&key_of(&cookie));
    assert_eq!(key, format!("session:{}", key_of(&cookie).to_hex()));
    // The raw id is nowhere: not in a key name, not in a value.
    let raw = session_value(&cookie);
    let keys = f.server.command(&["KEYS", "*"]);
    assert!(!keys.contains(raw));
    for name in keys.lines() {
        let dump = f.server.command(&["HGETALL", name]);
        assert!(!dump.contains(raw), "{name} holds the raw id");
    }
}

#[tokio::test]
async fn a_write_sends_only_the_changed_fields() {
    let Some(f) = fixture() else { return };
    let cookie = submit(&f.app, "/theme/dark", None).await.cookie();
    let key = f.store.redis_key(&key_of(&cookie));
    let gate = f.gate.clone();
    let app = f.app.clone();
    let held_cookie = cookie.clone();
    let held =
        tokio::spawn(async move { submit(&app, "/theme-held/light", Some(&held_cookie)).await });
    gate.loaded().await;
    // Another writer changes `lang` behind the held request's back.
    assert_eq!(
        f.server.command(&["HSET", &key, "prefs:lang", "\"de\""]),
        "0"
    );
    gate.release();
    assert_eq!(held.await.unwrap().status, 200);
    // The held request wrote `theme` only: `lang` keeps the other value.
    assert_eq!(
        fetch(&f.app, "/prefs", Some(&cookie)).await.body,
        "light/de"
    );
}

#[tokio::test]
async fn an_older_version_migrates_on_read_and_is_rewritten_only_by_a_write() {
    let Some(f) = fixture() else { return };
    let cookie = submit(&f.app, "/prefs-v1", None).await.cookie();
    assert_eq!(f.hash(&cookie)["@n:prefs"], "1:1");
    // Read by the newer schema: migrated in memory, nothing written.
    let (reply, commands) = f.commands_of(fetch(&f.app, "/prefs", Some(&cookie))).await;
    assert_eq!(reply.body, "dark/en");
    assert_eq!(commands, stats(&[("hgetall", 1)]));
    assert_eq!(f.hash(&cookie)["@n:prefs"], "1:1");
    // A write stores the namespace at version 2.
    submit(&f.app, "/theme/blue", Some(&cookie)).await;
    let hash = f.hash(&cookie);
    assert!(hash["@n:prefs"].starts_with("2:"), "{hash:?}");
    assert_eq!(hash["prefs:lang"], "\"en\"");
    assert_eq!(fetch(&f.app, "/prefs", Some(&cookie)).await.body, "blue/en");
}

#[tokio::test]
async fn a_field_that_no_longer_decodes_resets_its_namespace_only() {
    let Some(f) = fixture() else { return };
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    submit(&f.app, "/theme/dark", Some(&cookie)).await;
    let key = f.store.redis_key(&key_of(&cookie));
    f.server
        .command(&["HSET", &key, "counter:count", "\"not a number\""]);
    let reply = fetch(&f.app, "/count", Some(&cookie)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body, "0",
        "the counter namespace reads as its default"
    );
    assert_eq!(fetch(&f.app, "/prefs", Some(&cookie)).await.body, "dark/");
    assert_eq!(f.hash(&cookie)["prefs:theme"], "\"dark\"");
}

#[tokio::test]
async fn a_hash_this_store_did_not_write_is_a_clear_error_not_a_panic() {
    let Some(f) = fixture() else { return };
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let key = f.store.redis_key(&key_of(&cookie));
    f.server.command(&["HSET", &key, "@l", "yesterday"]);
    let (logs, _guard) = capture_logs(tracing::Level::WARN);
    let reply = fetch(&f.app, "/count", Some(&cookie)).await;
    assert_eq!(reply.status, 500);
    let text = logs.text();
    assert!(text.contains("malformed session hash"), "{text}");
    assert!(
        !text.contains("yesterday"),
        "values stay out of the log: {text}"
    );
    // A key of another type is a backend error too, never a panic.
    f.server.command(&["DEL", &key]);
    f.server.command(&["SET", &key, "x"]);
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.status, 500);
}

#[tokio::test]
async fn metadata_a_newer_version_adds_is_ignored() {
    let Some(f) = fixture() else { return };
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    let key = f.store.redis_key(&key_of(&cookie));
    f.server.command(&["HSET", &key, "@future", "whatever"]);
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "1");
    assert_eq!(submit(&f.app, "/incr", Some(&cookie)).await.status, 200);
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "2");
    assert_eq!(f.hash(&cookie)["@future"], "whatever");
}

/// Seed scenario 39: the key prefix applies to the (hashed) key; a round
/// trip; a browser-session write gets the store TTL; remove then read is
/// empty; an unknown id reads as empty.
#[tokio::test]
async fn seed_39_prefix_round_trip_gc_ttl_remove_and_unknown_id() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::builder()
        .prefix("app1:sess:")
        .open(&server.url())
        .await
        .unwrap();
    let app = counter_routes().layer(
        SessionLayer::builder(store.clone())
            .store_ttl(Duration::from_hours(2))
            .build()
            .unwrap(),
    );
    let first = submit(&app, "/incr", None).await;
    let cookie = first.cookie();
    assert!(
        typed_sessions_test_support::max_age(first.set_cookie().unwrap()).is_none(),
        "a browser-session cookie"
    );
    let key = format!("app1:sess:{}", key_of(&cookie).to_hex());
    assert_eq!(server.command(&["KEYS", "*"]), key);
    let pttl: u64 = server.command(&["PTTL", &key]).parse().unwrap();
    assert!(
        (2 * 60 * 60 * 1000 - 5_000..=2 * 60 * 60 * 1000).contains(&pttl),
        "the store TTL bounds a browser-session record: {pttl}"
    );
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
    submit(&app, "/logout", Some(&cookie)).await;
    assert_eq!(server.command(&["EXISTS", &key]), "0");
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "0");
    assert!(store.load(&key_of(&cookie)).await.unwrap().is_none());
    let unknown = "session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(fetch(&app, "/count", Some(unknown)).await.body, "0");
}

#[tokio::test]
async fn open_reports_an_unreachable_server_and_a_bad_url() {
    let err = RedisStore::builder()
        .command_timeout(Duration::from_millis(300))
        .open("redis://127.0.0.1:1/")
        .await
        .unwrap_err();
    assert!(
        matches!(err, typed_sessions::stores::StoreError::Unavailable(_)),
        "{err:?}"
    );
    let err = RedisStore::open("http://not-redis/").await.unwrap_err();
    assert!(
        matches!(err, typed_sessions::stores::StoreError::Backend(_)),
        "{err:?}"
    );
}

/// `update` commits with one script; with a persistent cookie the layer
/// then re-sends Max-Age, but only after one small refresh confirms that
/// the id still names the session (a login may have moved it while the
/// handler went on): two scripts, and the second writes no data.
#[tokio::test]
async fn an_update_is_the_load_one_save_and_one_confirming_refresh() {
    let Some(f) = fixture_with(|b| b.idle_timeout(Duration::from_mins(30))) else {
        return;
    };
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    submit(&f.app, "/atomic", Some(&cookie)).await;
    let (reply, commands) = f
        .commands_of(submit(&f.app, "/atomic", Some(&cookie)))
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.set_cookie().is_some(), "Max-Age re-sent");
    assert_eq!(
        commands,
        stats(&[
            ("hgetall", 1),
            ("evalsha", 2),
            ("hmget", 2),
            ("hset", 2),
            ("pexpire", 2),
        ])
    );
    assert_eq!(fetch(&f.app, "/count", Some(&cookie)).await.body, "3");
    // Without a timeout there is no Max-Age to re-send: one script.
    let Some(f) = fixture() else { return };
    let cookie = submit(&f.app, "/incr", None).await.cookie();
    submit(&f.app, "/atomic", Some(&cookie)).await;
    let (_, commands) = f
        .commands_of(submit(&f.app, "/atomic", Some(&cookie)))
        .await;
    assert_eq!(commands.get("evalsha"), Some(&1), "{commands:?}");
}
