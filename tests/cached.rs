//! `#[session(cached)]`: a store that keeps records in memory hands one
//! decoded copy of a namespace to every read-only request, until a write
//! changes it. Decodes are counted per thread by a field type whose
//! `Deserialize` counts itself (`schemas::Tracked`).

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use proptest::prelude::*;
use tokio::sync::{Notify, oneshot};
use typed_sessions::stores::{CookieKey, CookieStore, MemoryStore};
use typed_sessions::{Session, SessionData, SessionLayer};
use typed_sessions_test_support::schemas::{Tracked, decodes};
use typed_sessions_test_support::{fetch, submit};

#[derive(SessionData, Default, Clone, Debug, PartialEq)]
#[session(namespace = "cached", cached)]
struct Shared {
    count: Tracked,
    name: String,
    tags: Vec<String>,
}

/// The same shape without `cached`: decoded by every request.
#[derive(SessionData, Default, Clone, Debug, PartialEq)]
#[session(namespace = "plain")]
struct Plain {
    count: Tracked,
    name: String,
    tags: Vec<String>,
}

fn show(count: Tracked, name: &str, tags: &[String]) -> String {
    format!("{}:{name}:{}", count.0, tags.join(","))
}

fn routes() -> Router {
    Router::new()
        .route(
            "/login",
            post(|mut s: Session<Shared>, mut p: Session<Plain>| async move {
                s.name = "alice".into();
                s.tags = vec!["a".into()];
                s.count = Tracked(1);
                p.name = "alice".into();
                p.tags = vec!["a".into()];
                p.count = Tracked(1);
            }),
        )
        .route(
            "/shared",
            get(|s: Session<Shared>| async move { show(s.count, &s.name, &s.tags) }),
        )
        .route(
            "/plain",
            get(|p: Session<Plain>| async move { show(p.count, &p.name, &p.tags) }),
        )
        .route(
            "/shared/incr",
            post(|mut s: Session<Shared>| async move {
                s.count.0 += 1;
                let count = s.count.0.to_string();
                s.tags.push(count);
                show(s.count, &s.name, &s.tags)
            }),
        )
        .route(
            "/shared/update",
            post(|mut s: Session<Shared>| async move {
                s.update(|s| s.count.0 += 10).await.unwrap();
                show(s.count, &s.name, &s.tags)
            }),
        )
}

fn memory_app() -> Router {
    routes().layer(SessionLayer::new(MemoryStore::new()))
}

#[tokio::test]
async fn read_only_requests_share_one_decoded_copy() {
    let app = memory_app();
    let cookie = submit(&app, "/login", None).await.cookie();

    let before = decodes();
    for _ in 0..3 {
        assert_eq!(
            fetch(&app, "/shared", Some(&cookie)).await.body,
            "1:alice:a"
        );
    }
    assert_eq!(
        decodes() - before,
        1,
        "the first read decodes, the next two use its copy"
    );

    let before = decodes();
    for _ in 0..3 {
        assert_eq!(fetch(&app, "/plain", Some(&cookie)).await.body, "1:alice:a");
    }
    assert_eq!(
        decodes() - before,
        3,
        "a schema without `cached` decodes every time"
    );
}

#[tokio::test]
async fn a_write_replaces_the_shared_copy() {
    let app = memory_app();
    let cookie = submit(&app, "/login", None).await.cookie();
    assert_eq!(
        fetch(&app, "/shared", Some(&cookie)).await.body,
        "1:alice:a"
    );

    let reply = submit(&app, "/shared/incr", Some(&cookie)).await;
    assert_eq!(reply.body, "2:alice:a,2");
    let before = decodes();
    assert_eq!(
        fetch(&app, "/shared", Some(&cookie)).await.body,
        "2:alice:a,2"
    );
    assert_eq!(
        decodes() - before,
        1,
        "the changed namespace is decoded again"
    );
    assert_eq!(
        fetch(&app, "/shared", Some(&cookie)).await.body,
        "2:alice:a,2"
    );
    assert_eq!(decodes() - before, 1, "and then shared again");

    assert_eq!(
        submit(&app, "/shared/update", Some(&cookie)).await.body,
        "12:alice:a,2"
    );
    assert_eq!(
        fetch(&app, "/shared", Some(&cookie)).await.body,
        "12:alice:a,2"
    );
}

#[tokio::test]
async fn sessions_never_share_each_others_copy() {
    let app = memory_app();
    let alice = submit(&app, "/login", None).await.cookie();
    let bob = submit(&app, "/login", None).await.cookie();
    submit(&app, "/shared/incr", Some(&bob)).await;
    for _ in 0..2 {
        assert_eq!(fetch(&app, "/shared", Some(&alice)).await.body, "1:alice:a");
        assert_eq!(fetch(&app, "/shared", Some(&bob)).await.body, "2:alice:a,2");
    }
}

/// A request that borrows the shared copy mutably gets its own copy: a
/// read in the middle of that request still sees the stored value, and
/// sees the change only once it is saved.
#[tokio::test]
async fn a_mutable_borrow_never_changes_the_shared_copy() {
    let changed = Arc::new(Notify::new());
    let (release, released) = oneshot::channel::<()>();
    let released = Arc::new(tokio::sync::Mutex::new(Some(released)));
    let app = {
        let changed = Arc::clone(&changed);
        routes()
            .route(
                "/shared/slow-incr",
                post(move |mut s: Session<Shared>| {
                    let changed = Arc::clone(&changed);
                    let released = Arc::clone(&released);
                    async move {
                        s.count.0 += 100;
                        s.name.push_str("-changed");
                        changed.notify_one();
                        let rx = released.lock().await.take().expect("one slow request");
                        rx.await.expect("released");
                        show(s.count, &s.name, &s.tags)
                    }
                }),
            )
            .layer(SessionLayer::new(MemoryStore::new()))
    };
    let cookie = submit(&app, "/login", None).await.cookie();
    // Publish the shared copy, then check it is what the next read uses.
    assert_eq!(
        fetch(&app, "/shared", Some(&cookie)).await.body,
        "1:alice:a"
    );
    let before = decodes();
    assert_eq!(
        fetch(&app, "/shared", Some(&cookie)).await.body,
        "1:alice:a"
    );
    assert_eq!(decodes(), before, "served from the shared copy");

    let writer = {
        let app = app.clone();
        let cookie = cookie.clone();
        tokio::spawn(async move { submit(&app, "/shared/slow-incr", Some(&cookie)).await })
    };
    changed.notified().await;
    assert_eq!(
        fetch(&app, "/shared", Some(&cookie)).await.body,
        "1:alice:a",
        "the writer's unsaved change is not visible to other requests"
    );
    release.send(()).expect("the writer waits");
    let reply = writer.await.expect("the writer finishes");
    assert_eq!(reply.body, "101:alice-changed:a");
    assert_eq!(
        fetch(&app, "/shared", Some(&cookie)).await.body,
        "101:alice-changed:a"
    );
}

/// Data stored at an older version is migrated for every request (the
/// migrated value is not the stored bytes' decoding, so it is not shared)
/// and reads correctly each time.
#[tokio::test]
async fn migrated_data_is_not_shared() {
    #[derive(SessionData, Default, Clone)]
    #[session(namespace = "prefs")]
    struct PrefsV1 {
        theme: String,
    }
    #[derive(SessionData, Default, Clone)]
    #[session(namespace = "prefs", version = 2, migrate_from = PrefsV1, cached)]
    struct Prefs {
        theme: String,
        #[session(default)]
        dark: bool,
    }
    impl From<PrefsV1> for Prefs {
        fn from(v1: PrefsV1) -> Self {
            let dark = v1.theme == "dark";
            Self {
                theme: v1.theme,
                dark,
            }
        }
    }
    let store = MemoryStore::new();
    let old = Router::new()
        .route(
            "/set",
            post(|mut p: Session<PrefsV1>| async move { p.theme = "dark".into() }),
        )
        .layer(SessionLayer::new(store.clone()));
    let new = Router::new()
        .route(
            "/get",
            get(|p: Session<Prefs>| async move { format!("{}:{}", p.theme, p.dark) }),
        )
        .route(
            "/light",
            post(|mut p: Session<Prefs>| async move { p.theme = "light".into() }),
        )
        .layer(SessionLayer::new(store));
    let cookie = submit(&old, "/set", None).await.cookie();
    for _ in 0..3 {
        assert_eq!(fetch(&new, "/get", Some(&cookie)).await.body, "dark:true");
    }
    submit(&new, "/light", Some(&cookie)).await;
    for _ in 0..2 {
        assert_eq!(fetch(&new, "/get", Some(&cookie)).await.body, "light:true");
    }
}

/// Client-side state is decoded from each request's own cookie: a cached
/// schema works there as any other.
#[tokio::test]
async fn cached_schemas_work_on_the_cookie_store() {
    let app = routes().layer(
        SessionLayer::builder(CookieStore::private(CookieKey::from_bytes(vec![7; 32])))
            .secure(false)
            .build()
            .expect("valid"),
    );
    let cookie = submit(&app, "/login", None).await.cookie();
    assert_eq!(
        fetch(&app, "/shared", Some(&cookie)).await.body,
        "1:alice:a"
    );
    let reply = submit(&app, "/shared/incr", Some(&cookie)).await;
    assert_eq!(reply.body, "2:alice:a,2");
    let cookie = reply.cookie();
    assert_eq!(
        fetch(&app, "/shared", Some(&cookie)).await.body,
        "2:alice:a,2"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Read,
    Incr,
    Update,
    OtherSessionIncr,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Read),
        2 => Just(Op::Incr),
        1 => Just(Op::Update),
        1 => Just(Op::OtherSessionIncr),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any sequence of reads and writes reads, through the cached schema,
    /// exactly what a model of the session holds.
    #[test]
    fn cached_reads_follow_every_write(ops in proptest::collection::vec(op(), 1..16)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let app = memory_app();
            let cookie = submit(&app, "/login", None).await.cookie();
            let other = submit(&app, "/login", None).await.cookie();
            let (mut count, mut tags) = (1_u64, vec!["a".to_owned()]);
            for op in ops {
                let expected_before = show(Tracked(count), "alice", &tags);
                match op {
                    Op::Read => {}
                    Op::Incr => {
                        count += 1;
                        tags.push(count.to_string());
                        let reply = submit(&app, "/shared/incr", Some(&cookie)).await;
                        prop_assert_eq!(reply.body, show(Tracked(count), "alice", &tags));
                    }
                    Op::Update => {
                        count += 10;
                        let reply = submit(&app, "/shared/update", Some(&cookie)).await;
                        prop_assert_eq!(reply.body, show(Tracked(count), "alice", &tags));
                    }
                    Op::OtherSessionIncr => {
                        submit(&app, "/shared/incr", Some(&other)).await;
                        prop_assert_eq!(
                            fetch(&app, "/shared", Some(&cookie)).await.body,
                            expected_before
                        );
                    }
                }
                let now = show(Tracked(count), "alice", &tags);
                prop_assert_eq!(fetch(&app, "/shared", Some(&cookie)).await.body, now.clone());
                prop_assert_eq!(fetch(&app, "/shared", Some(&cookie)).await.body, now);
            }
            Ok(())
        })?;
    }
}
