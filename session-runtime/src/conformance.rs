//! The store conformance suite: every [`SessionStore`] runs it with one line.
//!
//! ```
//! # use session_runtime::store::MemoryStore as MyStore;
//! session_runtime::conformance_tests!(MyStore::new());
//! # fn main() {}
//! ```
//!
//! expands to one `#[test]` per case, each on a fresh store made by the
//! expression and a multi-threaded Tokio runtime. Keys are random, so a
//! shared backend (a Redis server) can run the cases in parallel.

#![allow(
    clippy::missing_panics_doc,
    reason = "test code: a panic is a failed case"
)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::data::FieldMap;
use crate::id::RawId;
use crate::store::{
    Changeset, NamespaceChange, NamespaceOp, SaveMode, SaveOutcome, SessionKey, SessionStore,
};

/// Expands to one `#[test]` per conformance case for the store made by `$make`.
///
/// `conformance_tests!(when $available; $make)` runs a case only when
/// `$available` (a `bool` expression, evaluated in each test) is true, for
/// stores that need a server the machine may not have; the expression
/// should say loudly why it skips.
#[macro_export]
macro_rules! conformance_tests {
    (@cases $available:expr, $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                if $available {
                    $crate::conformance::run(|| $make, $crate::conformance::$case);
                }
            }
        )*
    };
    (@all $available:expr, $make:expr) => {
        $crate::conformance_tests!(@cases $available, $make;
            create_then_load_round_trips,
            unknown_key_loads_as_none,
            patch_sets_fields_and_keeps_the_others,
            update_of_missing_record_creates_nothing,
            replace_drops_fields_not_given_and_sets_version,
            removing_the_last_namespace_deletes_the_record,
            removing_one_namespace_keeps_the_others,
            delete_reports_whether_a_record_existed,
            exists_follows_the_record,
            touch_moves_the_deadline_without_changing_data,
            expired_record_reads_as_none,
            cas_conflict_writes_nothing,
            revisions_are_never_reused,
            rename_moves_the_record_and_frees_the_old_key,
            rename_of_missing_source_creates_nothing,
            conflicting_rename_leaves_the_source_intact,
            create_over_an_existing_key_is_an_error,
            concurrent_cas_increments_are_exact,
            concurrent_writes_to_different_fields_both_survive,
            save_racing_delete_never_recreates,
            patch_of_a_missing_namespace_conflicts,
            patch_at_another_version_conflicts,
            remove_with_a_stale_revision_conflicts,
            remove_at_another_version_conflicts,
        );
    };
    (when $available:expr; $make:expr) => {
        $crate::conformance_tests!(@all $available, $make);
    };
    ($make:expr) => {
        $crate::conformance_tests!(@all true, $make);
    };
}

/// Runs one case on a fresh store, on a multi-threaded runtime.
pub fn run<S, M, C, F>(make: M, case: C)
where
    S: SessionStore,
    M: FnOnce() -> S,
    C: FnOnce(S) -> F,
    F: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let store = make();
        case(store).await;
    });
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn key() -> SessionKey {
    RawId::generate().unwrap().key()
}

fn fields(pairs: &[(&str, &str)]) -> FieldMap {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

fn change(ns: &'static str, op: NamespaceOp) -> NamespaceChange {
    NamespaceChange::new(ns, 1, None, op)
}

fn set(mode: SaveMode, changes: Vec<NamespaceChange>) -> Changeset {
    let now = now_ms();
    Changeset::new(mode, now, now, now + 60_000, changes)
}

async fn create<S: SessionStore>(
    store: &S,
    key: &SessionKey,
    ns: &'static str,
    pairs: &[(&str, &str)],
) -> u64 {
    let outcome = store
        .save(
            key,
            &set(
                SaveMode::Create,
                vec![change(ns, NamespaceOp::Replace(fields(pairs)))],
            ),
        )
        .await
        .unwrap();
    match outcome {
        SaveOutcome::Saved { revisions } => revisions[0],
        other => panic!("create: {other:?}"),
    }
}

async fn field<S: SessionStore>(
    store: &S,
    key: &SessionKey,
    ns: &str,
    name: &str,
) -> Option<Vec<u8>> {
    let record = store.load(key).await.unwrap()?;
    record.namespace(ns)?.fields.get(name).map(<[u8]>::to_vec)
}

/// A created record loads back with its fields, version, times and revision.
pub async fn create_then_load_round_trips<S: SessionStore>(store: S) {
    let k = key();
    let changes = set(
        SaveMode::Create,
        vec![NamespaceChange::new(
            "cart",
            3,
            None,
            NamespaceOp::Replace(fields(&[("items", "[1]"), ("coupon", "null")])),
        )],
    );
    let revisions = match store.save(&k, &changes).await.unwrap() {
        SaveOutcome::Saved { revisions } => revisions,
        other => panic!("{other:?}"),
    };
    let record = store.load(&k).await.unwrap().expect("record");
    assert_eq!(record.created_at_ms, changes.created_at_ms);
    assert_eq!(record.last_seen_ms, changes.last_seen_ms);
    assert_eq!(record.expires_at_ms, changes.expires_at_ms);
    let ns = record.namespace("cart").expect("namespace");
    assert_eq!(ns.version, 3);
    assert_eq!(ns.revision, revisions[0]);
    assert!(ns.revision > 0);
    assert_eq!(ns.fields.get("items"), Some(&b"[1]"[..]));
    assert_eq!(ns.fields.get("coupon"), Some(&b"null"[..]));
}

/// An unknown key is `None`, not an error.
pub async fn unknown_key_loads_as_none<S: SessionStore>(store: S) {
    assert!(store.load(&key()).await.unwrap().is_none());
    assert!(!store.exists(&key()).await.unwrap());
}

/// A patch writes the given fields only.
pub async fn patch_sets_fields_and_keeps_the_others<S: SessionStore>(store: S) {
    let k = key();
    create(&store, &k, "prefs", &[("theme", "1"), ("lang", "2")]).await;
    let outcome = store
        .save(
            &k,
            &set(
                SaveMode::Update,
                vec![change(
                    "prefs",
                    NamespaceOp::Patch(fields(&[("lang", "3")])),
                )],
            ),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, SaveOutcome::Saved { .. }), "{outcome:?}");
    assert_eq!(
        field(&store, &k, "prefs", "theme").await.as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        field(&store, &k, "prefs", "lang").await.as_deref(),
        Some(&b"3"[..])
    );
}

/// Updating a record that does not exist writes nothing.
pub async fn update_of_missing_record_creates_nothing<S: SessionStore>(store: S) {
    let k = key();
    let outcome = store
        .save(
            &k,
            &set(
                SaveMode::Update,
                vec![change("a", NamespaceOp::Patch(fields(&[("x", "1")])))],
            ),
        )
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Missing);
    assert!(store.load(&k).await.unwrap().is_none());
}

/// A replace drops the namespace's old fields and sets its version.
pub async fn replace_drops_fields_not_given_and_sets_version<S: SessionStore>(store: S) {
    let k = key();
    create(&store, &k, "cart", &[("old", "1"), ("keep", "2")]).await;
    let changes = set(
        SaveMode::Update,
        vec![NamespaceChange::new(
            "cart",
            2,
            None,
            NamespaceOp::Replace(fields(&[("keep", "5")])),
        )],
    );
    store.save(&k, &changes).await.unwrap();
    let record = store.load(&k).await.unwrap().unwrap();
    let ns = record.namespace("cart").unwrap();
    assert_eq!(ns.version, 2);
    assert_eq!(ns.fields.get("old"), None);
    assert_eq!(ns.fields.get("keep"), Some(&b"5"[..]));
}

/// A record left without namespaces is deleted.
pub async fn removing_the_last_namespace_deletes_the_record<S: SessionStore>(store: S) {
    let k = key();
    create(&store, &k, "a", &[("x", "1")]).await;
    let outcome = store
        .save(
            &k,
            &set(SaveMode::Update, vec![change("a", NamespaceOp::Remove)]),
        )
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Deleted);
    assert!(store.load(&k).await.unwrap().is_none());
    assert!(!store.exists(&k).await.unwrap());
}

/// Removing one namespace leaves the others.
pub async fn removing_one_namespace_keeps_the_others<S: SessionStore>(store: S) {
    let k = key();
    create(&store, &k, "a", &[("x", "1")]).await;
    store
        .save(
            &k,
            &set(
                SaveMode::Update,
                vec![change("b", NamespaceOp::Replace(fields(&[("y", "2")])))],
            ),
        )
        .await
        .unwrap();
    let outcome = store
        .save(
            &k,
            &set(SaveMode::Update, vec![change("a", NamespaceOp::Remove)]),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, SaveOutcome::Saved { .. }), "{outcome:?}");
    let record = store.load(&k).await.unwrap().unwrap();
    assert!(record.namespace("a").is_none());
    assert_eq!(
        record.namespace("b").unwrap().fields.get("y"),
        Some(&b"2"[..])
    );
}

/// `delete` reports whether something was deleted; deleting nothing is fine.
pub async fn delete_reports_whether_a_record_existed<S: SessionStore>(store: S) {
    let k = key();
    assert!(!store.delete(&k).await.unwrap());
    create(&store, &k, "a", &[("x", "1")]).await;
    assert!(store.delete(&k).await.unwrap());
    assert!(store.load(&k).await.unwrap().is_none());
    assert!(!store.delete(&k).await.unwrap());
}

/// `exists` is true exactly while the record is there.
pub async fn exists_follows_the_record<S: SessionStore>(store: S) {
    let k = key();
    assert!(!store.exists(&k).await.unwrap());
    create(&store, &k, "a", &[("x", "1")]).await;
    assert!(store.exists(&k).await.unwrap());
    store.delete(&k).await.unwrap();
    assert!(!store.exists(&k).await.unwrap());
}

/// `touch` moves `last_seen_ms` and the deadline, and nothing else.
pub async fn touch_moves_the_deadline_without_changing_data<S: SessionStore>(store: S) {
    let k = key();
    let revision = create(&store, &k, "a", &[("x", "1")]).await;
    let seen = now_ms() + 1_000;
    let later = now_ms() + 3_600_000;
    assert!(store.touch(&k, seen, later).await.unwrap());
    let record = store.load(&k).await.unwrap().unwrap();
    assert_eq!(record.expires_at_ms, later);
    assert_eq!(record.last_seen_ms, seen);
    let ns = record.namespace("a").unwrap();
    assert_eq!(ns.revision, revision, "a touch is not a write");
    assert_eq!(ns.fields.get("x"), Some(&b"1"[..]));
    assert!(!store.touch(&key(), seen, later).await.unwrap());
}

/// A record is readable before its deadline and gone after it.
pub async fn expired_record_reads_as_none<S: SessionStore>(store: S) {
    let k = key();
    let now = now_ms();
    let changes = Changeset::new(
        SaveMode::Create,
        now,
        now,
        now + 300,
        vec![change("a", NamespaceOp::Replace(fields(&[("x", "1")])))],
    );
    store.save(&k, &changes).await.unwrap();
    assert!(store.load(&k).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(store.load(&k).await.unwrap().is_none());
    assert!(!store.exists(&k).await.unwrap());
    let outcome = store
        .save(
            &k,
            &set(
                SaveMode::Update,
                vec![change("a", NamespaceOp::Patch(fields(&[("x", "2")])))],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        SaveOutcome::Missing,
        "an expired record is not revived"
    );
}

/// A stale expected revision fails the whole save and changes nothing.
pub async fn cas_conflict_writes_nothing<S: SessionStore>(store: S) {
    let k = key();
    let revision = create(&store, &k, "a", &[("x", "1")]).await;
    let stale = set(
        SaveMode::Update,
        vec![
            change("b", NamespaceOp::Replace(fields(&[("y", "1")]))),
            NamespaceChange::new(
                "a",
                1,
                Some(revision + 1000),
                NamespaceOp::Patch(fields(&[("x", "2")])),
            ),
        ],
    );
    assert_eq!(
        store.save(&k, &stale).await.unwrap(),
        SaveOutcome::Conflict { namespace: "a" }
    );
    let record = store.load(&k).await.unwrap().unwrap();
    assert!(record.namespace("b").is_none(), "all or nothing");
    assert_eq!(
        record.namespace("a").unwrap().fields.get("x"),
        Some(&b"1"[..])
    );
    let fresh = set(
        SaveMode::Update,
        vec![NamespaceChange::new(
            "a",
            1,
            Some(revision),
            NamespaceOp::Patch(fields(&[("x", "2")])),
        )],
    );
    assert!(matches!(
        store.save(&k, &fresh).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
    // An absent namespace has revision 0.
    let absent = set(
        SaveMode::Update,
        vec![NamespaceChange::new(
            "c",
            1,
            Some(0),
            NamespaceOp::Replace(fields(&[("z", "1")])),
        )],
    );
    assert!(matches!(
        store.save(&k, &absent).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
}

/// Revisions grow with every write, also across removal and re-creation of
/// a namespace, so a compare-and-swap cannot be fooled by an old revision.
pub async fn revisions_are_never_reused<S: SessionStore>(store: S) {
    let k = key();
    create(&store, &k, "keep", &[("x", "1")]).await;
    let write = |value: &'static str| {
        set(
            SaveMode::Update,
            vec![change("a", NamespaceOp::Replace(fields(&[("v", value)])))],
        )
    };
    let SaveOutcome::Saved { revisions: first } = store.save(&k, &write("1")).await.unwrap() else {
        panic!()
    };
    let SaveOutcome::Saved { revisions: second } = store.save(&k, &write("2")).await.unwrap()
    else {
        panic!()
    };
    assert!(second[0] > first[0]);
    store
        .save(
            &k,
            &set(SaveMode::Update, vec![change("a", NamespaceOp::Remove)]),
        )
        .await
        .unwrap();
    let SaveOutcome::Saved { revisions: third } = store.save(&k, &write("3")).await.unwrap() else {
        panic!()
    };
    assert!(third[0] > second[0], "{third:?} after {second:?}");
}

/// Rename moves data and deadline to the new key; the old key is gone.
pub async fn rename_moves_the_record_and_frees_the_old_key<S: SessionStore>(store: S) {
    let (old, new) = (key(), key());
    create(&store, &old, "a", &[("x", "1")]).await;
    let changes = set(
        SaveMode::Rename { from: old },
        vec![change("b", NamespaceOp::Replace(fields(&[("y", "2")])))],
    );
    assert!(matches!(
        store.save(&new, &changes).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
    assert!(store.load(&old).await.unwrap().is_none());
    let record = store.load(&new).await.unwrap().unwrap();
    assert_eq!(
        record.namespace("a").unwrap().fields.get("x"),
        Some(&b"1"[..])
    );
    assert_eq!(
        record.namespace("b").unwrap().fields.get("y"),
        Some(&b"2"[..])
    );
    // A rename with no changes moves the record as it is.
    let newer = key();
    assert!(matches!(
        store
            .save(&newer, &set(SaveMode::Rename { from: new }, vec![]))
            .await
            .unwrap(),
        SaveOutcome::Saved { .. }
    ));
    assert!(store.exists(&newer).await.unwrap());
    assert!(!store.exists(&new).await.unwrap());
}

/// Renaming from a key that does not exist writes nothing.
pub async fn rename_of_missing_source_creates_nothing<S: SessionStore>(store: S) {
    let (old, new) = (key(), key());
    let changes = set(
        SaveMode::Rename { from: old },
        vec![change("a", NamespaceOp::Replace(fields(&[("x", "1")])))],
    );
    assert_eq!(
        store.save(&new, &changes).await.unwrap(),
        SaveOutcome::Missing
    );
    assert!(!store.exists(&new).await.unwrap());
}

/// A rename whose compare-and-swap fails leaves the record where it was.
pub async fn conflicting_rename_leaves_the_source_intact<S: SessionStore>(store: S) {
    let (old, new) = (key(), key());
    let revision = create(&store, &old, "a", &[("x", "1")]).await;
    let changes = set(
        SaveMode::Rename { from: old },
        vec![NamespaceChange::new(
            "a",
            1,
            Some(revision + 7),
            NamespaceOp::Patch(fields(&[("x", "2")])),
        )],
    );
    assert_eq!(
        store.save(&new, &changes).await.unwrap(),
        SaveOutcome::Conflict { namespace: "a" }
    );
    assert!(!store.exists(&new).await.unwrap());
    assert_eq!(
        field(&store, &old, "a", "x").await.as_deref(),
        Some(&b"1"[..])
    );
}

/// `Create` never overwrites.
pub async fn create_over_an_existing_key_is_an_error<S: SessionStore>(store: S) {
    let k = key();
    create(&store, &k, "a", &[("x", "1")]).await;
    let again = set(
        SaveMode::Create,
        vec![change("a", NamespaceOp::Replace(fields(&[("x", "2")])))],
    );
    assert!(store.save(&k, &again).await.is_err());
    assert_eq!(
        field(&store, &k, "a", "x").await.as_deref(),
        Some(&b"1"[..])
    );
}

/// 200 tasks doing load → increment → compare-and-swap, retrying on
/// conflict, end at exactly 200.
pub async fn concurrent_cas_increments_are_exact<S: SessionStore>(store: S) {
    let k = key();
    create(&store, &k, "keep", &[("x", "1")]).await;
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let record = store.load(&k).await.unwrap().unwrap();
                let (revision, count) = record.namespace("counter").map_or((0, 0), |ns| {
                    let bytes = ns.fields.get("n").unwrap();
                    (
                        ns.revision,
                        std::str::from_utf8(bytes).unwrap().parse::<u64>().unwrap(),
                    )
                });
                let next = (count + 1).to_string();
                let fields: FieldMap = std::iter::once(("n", next.into_bytes())).collect();
                // A patch needs the namespace to exist; the first write replaces.
                let op = if revision == 0 {
                    NamespaceOp::Replace(fields)
                } else {
                    NamespaceOp::Patch(fields)
                };
                let changes = set(
                    SaveMode::Update,
                    vec![NamespaceChange::new("counter", 1, Some(revision), op)],
                );
                match store.save(&k, &changes).await.unwrap() {
                    SaveOutcome::Saved { .. } => break,
                    SaveOutcome::Conflict { .. } => tokio::task::yield_now().await,
                    other => panic!("{other:?}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        field(&store, &k, "counter", "n").await.as_deref(),
        Some(&b"200"[..])
    );
}

/// Writers of different fields of one namespace, without compare-and-swap,
/// never lose each other's fields.
pub async fn concurrent_writes_to_different_fields_both_survive<S: SessionStore>(store: S) {
    let k = key();
    create(&store, &k, "prefs", &[("seed", "0")]).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = store.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let name = format!("f{i}");
            let changes = set(
                SaveMode::Update,
                vec![change(
                    "prefs",
                    NamespaceOp::Patch(
                        std::iter::once((name.clone(), i.to_string().into_bytes())).collect(),
                    ),
                )],
            );
            store.save(&k, &changes).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let record = store.load(&k).await.unwrap().unwrap();
    let ns = record.namespace("prefs").unwrap();
    for i in 0..100 {
        assert_eq!(
            ns.fields.get(&format!("f{i}")),
            Some(i.to_string().as_bytes()),
            "field f{i} lost"
        );
    }
}

/// A save racing a delete leaves the session deleted: saves never re-create.
pub async fn save_racing_delete_never_recreates<S: SessionStore>(store: S) {
    for _ in 0..50 {
        let k = key();
        create(&store, &k, "a", &[("x", "1")]).await;
        let saver = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..5 {
                    let changes = set(
                        SaveMode::Update,
                        vec![change(
                            "a",
                            NamespaceOp::Patch(
                                std::iter::once(("x", i.to_string().into_bytes())).collect(),
                            ),
                        )],
                    );
                    store.save(&k, &changes).await.unwrap();
                }
            })
        };
        let deleter = {
            let store = store.clone();
            tokio::spawn(async move { store.delete(&k).await.unwrap() })
        };
        saver.await.unwrap();
        assert!(deleter.await.unwrap(), "the delete found the record");
        assert!(
            store.load(&k).await.unwrap().is_none(),
            "a save re-created a deleted session"
        );
    }
}

async fn save_one<S: SessionStore>(
    store: &S,
    key: &SessionKey,
    change: NamespaceChange,
) -> SaveOutcome {
    store
        .save(key, &set(SaveMode::Update, vec![change]))
        .await
        .unwrap()
}

/// A patch never creates a namespace with fields missing: patching an
/// absent namespace is a conflict and writes nothing.
pub async fn patch_of_a_missing_namespace_conflicts<S: SessionStore>(store: S) {
    let k = key();
    create(&store, &k, "a", &[("x", "1")]).await;
    let outcome = save_one(
        &store,
        &k,
        change("b", NamespaceOp::Patch(fields(&[("y", "2")]))),
    )
    .await;
    assert_eq!(outcome, SaveOutcome::Conflict { namespace: "b" });
    let record = store.load(&k).await.unwrap().expect("record");
    assert!(
        record.namespace("b").is_none(),
        "a partial namespace was stored"
    );
}

/// Older code never relabels newer data: a patch at a version other than
/// the stored one is a conflict, and the stored namespace is untouched.
pub async fn patch_at_another_version_conflicts<S: SessionStore>(store: S) {
    let k = key();
    let changes = set(
        SaveMode::Create,
        vec![NamespaceChange::new(
            "prefs",
            2,
            None,
            NamespaceOp::Replace(fields(&[("theme", "1"), ("lang", "2")])),
        )],
    );
    store.save(&k, &changes).await.unwrap();
    let outcome = save_one(
        &store,
        &k,
        NamespaceChange::new(
            "prefs",
            1,
            None,
            NamespaceOp::Patch(fields(&[("theme", "9")])),
        ),
    )
    .await;
    assert_eq!(outcome, SaveOutcome::Conflict { namespace: "prefs" });
    let record = store.load(&k).await.unwrap().expect("record");
    let ns = record.namespace("prefs").expect("namespace");
    assert_eq!(ns.version, 2);
    assert_eq!(ns.fields.get("theme"), Some(&b"1"[..]));
    // The same patch at the stored version applies.
    let outcome = save_one(
        &store,
        &k,
        NamespaceChange::new(
            "prefs",
            2,
            None,
            NamespaceOp::Patch(fields(&[("theme", "9")])),
        ),
    )
    .await;
    assert!(matches!(outcome, SaveOutcome::Saved { .. }), "{outcome:?}");
}

/// A guarded removal (the revision its request loaded) conflicts when the
/// namespace was written meanwhile, so a concurrent write is never lost.
pub async fn remove_with_a_stale_revision_conflicts<S: SessionStore>(store: S) {
    let k = key();
    let loaded = create(&store, &k, "a", &[("x", "1"), ("y", "0")]).await;
    save_one(
        &store,
        &k,
        change("a", NamespaceOp::Patch(fields(&[("y", "5")]))),
    )
    .await;
    let outcome = save_one(
        &store,
        &k,
        NamespaceChange::new("a", 1, Some(loaded), NamespaceOp::Remove),
    )
    .await;
    assert_eq!(outcome, SaveOutcome::Conflict { namespace: "a" });
    assert_eq!(
        field(&store, &k, "a", "y").await.as_deref(),
        Some(&b"5"[..])
    );
    // With the current revision it applies (and empties the record).
    let current = store
        .load(&k)
        .await
        .unwrap()
        .unwrap()
        .namespace("a")
        .unwrap()
        .revision;
    let outcome = save_one(
        &store,
        &k,
        NamespaceChange::new("a", 1, Some(current), NamespaceOp::Remove),
    )
    .await;
    assert_eq!(outcome, SaveOutcome::Deleted);
}

/// A removal at a version other than the stored one is a conflict.
pub async fn remove_at_another_version_conflicts<S: SessionStore>(store: S) {
    let k = key();
    create(&store, &k, "a", &[("x", "1")]).await;
    create_or_patch_other(&store, &k).await;
    let outcome = save_one(
        &store,
        &k,
        NamespaceChange::new("a", 2, None, NamespaceOp::Remove),
    )
    .await;
    assert_eq!(outcome, SaveOutcome::Conflict { namespace: "a" });
    assert!(
        store
            .load(&k)
            .await
            .unwrap()
            .unwrap()
            .namespace("a")
            .is_some()
    );
}

async fn create_or_patch_other<S: SessionStore>(store: &S, key: &SessionKey) {
    let outcome = save_one(
        store,
        key,
        change("other", NamespaceOp::Replace(fields(&[("n", "1")]))),
    )
    .await;
    assert!(matches!(outcome, SaveOutcome::Saved { .. }), "{outcome:?}");
}
