//! Every load and save runs in a `tracing` span with the store latency and a
//! short keyed hash of the id; logs never carry the raw id or field values.

use typed_sessions_test_support as common;

use axum::Router;
use axum::routing::{get, post};
use common::schemas::Counter;
use common::{CountingStore, ManualClock, fetch, submit};
use typed_sessions::{Session, SessionData, SessionLayer, stores::MemoryStore};

#[derive(SessionData, Default)]
#[session(namespace = "account")]
struct Account {
    user: String,
    #[session(sensitive)]
    password_hint: String,
}

#[tokio::test]
async fn load_and_save_spans_carry_latency_and_hashed_id_only() {
    let (captured, _guard) = common::capture_logs(tracing::Level::DEBUG);

    let app = Router::new()
        .route(
            "/set",
            post(|mut a: Session<Account>| async move {
                a.user = "ann".into();
                a.password_hint = "blue-whale-42".into();
                "ok"
            }),
        )
        .route(
            "/bump",
            post(|mut a: Session<Account>| async move {
                a.update(|a| a.user.push('!')).await.unwrap();
                "ok"
            }),
        )
        .route(
            "/get",
            get(|a: Session<Account>| async move { a.user.clone() }),
        )
        .layer(SessionLayer::new(MemoryStore::new()));
    let cookie = submit(&app, "/set", None).await.cookie();
    assert_eq!(fetch(&app, "/get", Some(&cookie)).await.body, "ann");
    submit(&app, "/bump", Some(&cookie)).await;

    let log = captured.text();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("session_save") && l.contains(": close"))
            .count(),
        2,
        "the write-back and the update each run in a save span:\n{log}"
    );
    let raw_id = cookie.split_once('=').unwrap().1;
    let save = log
        .lines()
        .find(|l| l.contains("session_save"))
        .unwrap_or_else(|| panic!("no save span:\n{log}"));
    let load = log
        .lines()
        .find(|l| l.contains("session_load"))
        .unwrap_or_else(|| panic!("no load span:\n{log}"));
    for line in [save, load] {
        assert!(line.contains("latency_us="), "{line}");
        let hash = line
            .split("session=")
            .nth(1)
            .expect("hashed id field")
            .split(|c: char| !c.is_ascii_hexdigit())
            .next()
            .unwrap();
        assert_eq!(hash.len(), 16, "{line}");
    }
    assert!(!log.contains(raw_id), "the raw id leaked into logs:\n{log}");
    assert!(
        !log.contains("blue-whale-42"),
        "a field value leaked into logs:\n{log}"
    );
}

/// A store failure is logged inside the operation's span, with the hashed id.
#[tokio::test]
async fn load_failure_warning_carries_the_hashed_session_id() {
    let (captured, _guard) = common::capture_logs(tracing::Level::DEBUG);

    let clock = ManualClock::new();
    let store = CountingStore::new(clock);
    let app = Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .layer(SessionLayer::new(store.clone()));
    let cookie = submit(&app, "/incr", None).await.cookie();
    store.counts.set_down(true);
    let r = submit(&app, "/incr", Some(&cookie)).await;
    assert_eq!(r.status, 503);
    let log = captured.text();
    let line = log
        .lines()
        .find(|l| l.contains("session store failed on load"))
        .unwrap_or_else(|| panic!("no load warning:\n{log}"));
    assert!(
        line.contains("session_load{session="),
        "the warning is outside the load span:\n{line}"
    );
}
