//! `MemoryStore` passes the shared store conformance suite, and keeps its
//! own promises: eviction without scans, a capacity bound, an injectable clock.

use std::sync::Arc;
use std::time::Duration;

use typed_sessions::stores::{
    Changeset, MemoryStore, NamespaceChange, NamespaceOp, SaveMode, SessionKey, SessionStore,
};

use typed_sessions_test_support as common;

mod conformance {
    session_runtime::conformance_tests!(typed_sessions::stores::MemoryStore::new());
}

fn key(n: u8) -> SessionKey {
    let mut bytes = [0u8; 32];
    bytes[0] = n;
    bytes[31] = n.wrapping_mul(7);
    SessionKey::from_bytes(bytes)
}

fn create(now: u64, ttl: u64) -> Changeset {
    let fields = std::iter::once(("x", b"1".to_vec())).collect();
    Changeset::new(
        SaveMode::Create,
        now,
        now,
        now + ttl,
        vec![NamespaceChange::new(
            "a",
            1,
            None,
            NamespaceOp::Replace(fields),
        )],
    )
}

#[tokio::test]
async fn data_is_readable_before_its_ttl_and_gone_after() {
    let clock = common::ManualClock::new();
    let store = MemoryStore::builder().clock(clock.clone()).build();
    let now = clock.now_secs() * 1000;
    store.save(&key(1), &create(now, 10_000)).await.unwrap();
    clock.advance(Duration::from_secs(9));
    assert!(store.load(&key(1)).await.unwrap().is_some());
    clock.advance(Duration::from_secs(2));
    assert!(store.load(&key(1)).await.unwrap().is_none());
    assert_eq!(store.len(), 0, "expired entries are evicted");
}

#[tokio::test]
async fn removing_a_missing_id_does_not_fail() {
    let store = MemoryStore::new();
    assert!(!store.delete(&key(9)).await.unwrap());
}

#[tokio::test]
async fn capacity_bound_evicts_the_session_closest_to_expiry() {
    let clock = common::ManualClock::new();
    // 32 shards: a capacity of 32 allows one record per shard.
    let store = MemoryStore::builder()
        .capacity(32)
        .clock(clock.clone())
        .build();
    let now = clock.now_secs() * 1000;
    // Same first byte → same shard.
    let (a, b) = (key(4), SessionKey::from_bytes([4; 32]));
    store.save(&a, &create(now, 5_000)).await.unwrap();
    store.save(&b, &create(now, 50_000)).await.unwrap();
    assert!(
        store.load(&a).await.unwrap().is_none(),
        "the earlier deadline was evicted"
    );
    assert!(store.load(&b).await.unwrap().is_some());
}

#[tokio::test]
async fn store_is_shared_between_clones() {
    let store = MemoryStore::new();
    let clone = store.clone();
    let now = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    store.save(&key(3), &create(now, 60_000)).await.unwrap();
    assert!(clone.exists(&key(3)).await.unwrap());
    let _ = Arc::new(clone);
}
