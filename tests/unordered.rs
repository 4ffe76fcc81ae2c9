//! "Assigning an identical value does no write" holds for hash maps and
//! sets, whose encoding follows their (per-instance) iteration order.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::Router;
use axum::routing::{get, post};
use typed_sessions::stores::SessionStore as _;
use typed_sessions::{Session, SessionData, SessionLayer};
use typed_sessions_test_support::{CountingStore, ManualClock, fetch, key_of, submit};

#[derive(SessionData, Default)]
#[session(namespace = "tags")]
struct Tags {
    scores: HashMap<String, u32>,
    seen: HashSet<u64>,
    nested: Option<Vec<HashMap<u8, String>>>,
    ordered: BTreeMap<String, u32>,
    count: u32,
}

fn filled() -> Tags {
    Tags {
        scores: (0..100).map(|i| (format!("player-{i}"), i)).collect(),
        seen: (0..100).map(|i| i * 7919).collect(),
        nested: Some(vec![(0..100u8).map(|i| (i, i.to_string())).collect()]),
        ordered: (0..100).map(|i| (format!("k{i}"), i)).collect(),
        count: 0,
    }
}

fn app(store: &CountingStore) -> Router {
    Router::new()
        .route(
            "/fill",
            post(|mut t: Session<Tags>| async move { *t = filled() }),
        )
        // Rebuilds every field from scratch: new maps, new iteration orders.
        .route(
            "/same-again",
            post(|mut t: Session<Tags>| async move {
                let count = t.count;
                *t = filled();
                t.count = count;
            }),
        )
        .route(
            "/touch",
            post(|mut t: Session<Tags>| async move {
                let _ = &mut *t;
            }),
        )
        .route(
            "/add",
            post(|mut t: Session<Tags>| async move {
                t.scores.insert("newcomer".into(), 1);
            }),
        )
        .route(
            "/count",
            get(|t: Session<Tags>| async move {
                format!("{} {} {}", t.scores.len(), t.seen.len(), t.count)
            }),
        )
        .layer(
            SessionLayer::builder(store.clone())
                .secure(false)
                .build()
                .unwrap(),
        )
}

#[tokio::test]
async fn equal_maps_and_sets_of_100_entries_write_nothing() {
    let store = CountingStore::new(ManualClock::starting_now());
    let app = app(&store);
    let cookie = submit(&app, "/fill", None).await.cookie();
    let writes_before = store.counts.saves();
    for _ in 0..5 {
        for route in ["/same-again", "/touch"] {
            let reply = submit(&app, route, Some(&cookie)).await;
            assert_eq!(reply.status, 200);
            assert!(
                reply.set_cookie().is_none(),
                "{route}: {:?}",
                reply.set_cookies
            );
        }
    }
    assert_eq!(
        store.counts.saves(),
        writes_before,
        "no write for equal values"
    );
    // A real change is still written, and only that field.
    let reply = submit(&app, "/add", Some(&cookie)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(store.counts.saves(), writes_before + 1);
    let saved = store.counts.last_save();
    let typed_sessions::stores::NamespaceOp::Patch(fields) = &saved.namespaces[0].op else {
        panic!("a patch: {saved:?}");
    };
    assert_eq!(
        fields.iter().map(|(name, _)| name).collect::<Vec<_>>(),
        ["scores"]
    );
    assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "101 100 0");
    let record = store.inner.load(&key_of(&cookie)).await.unwrap().unwrap();
    assert!(record.namespace("tags").is_some());
}

/// A member equal by id only: its `PartialEq` ignores the role.
#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Member {
    id: u32,
    role: String,
}

impl PartialEq for Member {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

#[derive(SessionData, Default)]
#[session(namespace = "team")]
struct Team {
    members: HashMap<String, Member>,
    weights: HashMap<String, f64>,
}

/// By-value comparison never hides a change its encoding shows: a type
/// with its own `PartialEq` (equal by id while the role changed) and floats
/// (`0.0 == -0.0`) are compared by bytes, so the change is written.
#[tokio::test]
async fn a_change_that_equality_cannot_see_is_still_written() {
    let store = CountingStore::new(ManualClock::starting_now());
    let app = Router::new()
        .route(
            "/seed",
            post(|mut t: Session<Team>| async move {
                t.members.insert(
                    "ann".into(),
                    Member {
                        id: 1,
                        role: "user".into(),
                    },
                );
                t.weights.insert("ann".into(), 0.0);
            }),
        )
        .route(
            "/promote",
            post(|mut t: Session<Team>| async move {
                t.members.get_mut("ann").unwrap().role = "admin".into();
                t.weights.insert("ann".into(), -0.0);
            }),
        )
        .route(
            "/show",
            get(|t: Session<Team>| async move {
                format!(
                    "{} {}",
                    t.members["ann"].role,
                    t.weights["ann"].is_sign_negative()
                )
            }),
        )
        .layer(
            SessionLayer::builder(store.clone())
                .secure(false)
                .build()
                .unwrap(),
        );
    let cookie = submit(&app, "/seed", None).await.cookie();
    submit(&app, "/promote", Some(&cookie)).await;
    assert_eq!(fetch(&app, "/show", Some(&cookie)).await.body, "admin true");
}
