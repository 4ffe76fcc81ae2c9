//! The embedded store: sessions in this process's memory.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    Changeset, Record, SaveMode, SaveOutcome, SessionKey, SessionStore, StoreError, apply_changes,
};
use crate::clock::{Clock, SharedClock};

const DEFAULT_SHARDS: usize = 32;

/// Sessions in this process's memory: the default for development and tests.
///
/// Sharded by key so concurrent requests rarely wait for each other (a lock
/// is held only to clone an `Arc` or apply a change, never across an
/// `.await`). Expired records are evicted in deadline order as writes happen,
/// with no scan of the whole map; an optional capacity bound evicts the
/// record closest to its deadline first. Data is lost on restart and is not
/// shared between processes.
///
/// ```
/// use typed_sessions::stores::MemoryStore;
/// let store = MemoryStore::new();
/// let bounded = MemoryStore::builder().capacity(10_000).build();
/// # let _ = (store, bounded);
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shards: Box<[Mutex<Shard>]>,
    capacity_per_shard: Option<usize>,
    clock: SharedClock,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<SessionKey, Entry>,
    by_deadline: BTreeSet<(u64, SessionKey)>,
}

#[derive(Debug)]
struct Entry {
    record: Record,
    counter: u64,
}

/// Options for a [`MemoryStore`].
///
/// ```
/// use typed_sessions::{SessionLayer, stores::MemoryStore};
///
/// // At most about 100 000 sessions; past that, the session nearest its
/// // deadline is evicted.
/// let store = MemoryStore::builder().capacity(100_000).build();
/// let layer = SessionLayer::new(store.clone());
/// assert!(store.is_empty());
/// # let _ = layer;
/// ```
#[derive(Debug)]
#[must_use]
pub struct MemoryStoreBuilder {
    capacity: Option<usize>,
    clock: SharedClock,
}

impl MemoryStoreBuilder {
    /// Keep at most about `capacity` sessions; beyond it the session closest
    /// to its deadline is evicted. The bound applies per shard (`capacity /
    /// 32` each, at least 1), so the effective minimum is 32 sessions and a
    /// shard may evict while others have room.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// The clock that decides expiry (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = SharedClock(clock);
        self
    }

    /// The store.
    pub fn build(self) -> MemoryStore {
        let shards = (0..DEFAULT_SHARDS)
            .map(|_| Mutex::new(Shard::default()))
            .collect();
        MemoryStore {
            inner: Arc::new(Inner {
                shards,
                capacity_per_shard: self.capacity.map(|c| (c / DEFAULT_SHARDS).max(1)),
                clock: self.clock,
            }),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An unbounded store on the system clock.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for capacity and clock.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            capacity: None,
            clock: SharedClock::system(),
        }
    }

    /// The number of unexpired sessions held.
    pub fn len(&self) -> usize {
        let now = self.inner.clock.now_ms();
        (0..self.inner.shards.len())
            .map(|i| {
                let mut shard = self.lock(i);
                shard.evict_expired(now);
                shard.map.len()
            })
            .sum()
    }

    /// Whether no unexpired session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard_index(&self, key: &SessionKey) -> usize {
        // Keys are SHA-256 outputs: any byte is uniformly distributed.
        usize::from(key.as_bytes()[0]) % self.inner.shards.len()
    }

    fn lock(&self, index: usize) -> MutexGuard<'_, Shard> {
        // A panic while holding a shard lock cannot leave a shard half
        // updated (every mutation is a single map/set operation pair), so a
        // poisoned lock is safe to keep using.
        self.inner.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn save_now(
        &self,
        key: &SessionKey,
        changes: &Changeset,
    ) -> Result<SaveOutcome, StoreError> {
        let now = self.inner.clock.now_ms();
        let target = self.shard_index(key);
        let conflict = |(_, namespace): (Entry, &'static str)| SaveOutcome::Conflict { namespace };
        match changes.mode {
            SaveMode::Create => {
                let mut shard = self.lock(target);
                shard.evict_expired(now);
                if shard.map.contains_key(key) {
                    return Err(StoreError::backend(
                        "a session already exists under a fresh key",
                    ));
                }
                let entry = Entry {
                    record: Record::new(
                        changes.created_at_ms,
                        changes.last_seen_ms,
                        changes.expires_at_ms,
                        Vec::new(),
                    ),
                    counter: 0,
                };
                Ok(shard
                    .commit(*key, entry, changes, self.inner.capacity_per_shard)
                    .unwrap_or_else(conflict))
            }
            SaveMode::Update => {
                let mut shard = self.lock(target);
                shard.evict_expired(now);
                Ok(shard.update_in_place(key, changes))
            }
            SaveMode::Rename { from } => Ok(self.rename(&from, key, changes, now)),
        }
    }

    /// [`SaveMode::Rename`]: takes the record out from under `from`, applies
    /// the changes and files it under `to`; on a conflict it goes back
    /// where it was.
    fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        changes: &Changeset,
        now: u64,
    ) -> SaveOutcome {
        let source = self.shard_index(from);
        let target = self.shard_index(to);
        if source == target {
            let mut shard = self.lock(target);
            shard.evict_expired(now);
            let Some(entry) = shard.remove(from) else {
                return SaveOutcome::Missing;
            };
            return shard
                .commit(*to, entry, changes, None)
                .unwrap_or_else(|(entry, namespace)| {
                    shard.insert(*from, entry, None);
                    SaveOutcome::Conflict { namespace }
                });
        }
        // Lock both shards in index order so two renames cannot deadlock.
        let (mut a, mut b) = if source < target {
            let a = self.lock(source);
            (a, self.lock(target))
        } else {
            let b = self.lock(target);
            (self.lock(source), b)
        };
        a.evict_expired(now);
        b.evict_expired(now);
        let Some(entry) = a.remove(from) else {
            return SaveOutcome::Missing;
        };
        b.commit(*to, entry, changes, self.inner.capacity_per_shard)
            .unwrap_or_else(|(entry, namespace)| {
                a.insert(*from, entry, None);
                SaveOutcome::Conflict { namespace }
            })
    }
}

impl Shard {
    fn remove(&mut self, key: &SessionKey) -> Option<Entry> {
        let entry = self.map.remove(key)?;
        self.by_deadline.remove(&(entry.record.expires_at_ms, *key));
        Some(entry)
    }

    fn insert(&mut self, key: SessionKey, entry: Entry, capacity: Option<usize>) {
        if let Some(capacity) = capacity {
            while self.map.len() >= capacity {
                let Some(&(_, victim)) = self.by_deadline.first() else {
                    break;
                };
                self.remove(&victim);
            }
        }
        self.by_deadline.insert((entry.record.expires_at_ms, key));
        self.map.insert(key, entry);
    }

    /// Applies `changes` to `entry` and files it under `key`. On a conflict
    /// the untouched entry is handed back for the caller to put back where it
    /// was; an entry left with no namespace is dropped.
    fn commit(
        &mut self,
        key: SessionKey,
        mut entry: Entry,
        changes: &Changeset,
        capacity: Option<usize>,
    ) -> Result<SaveOutcome, (Entry, &'static str)> {
        // `apply_changes` checks every expected revision before it changes
        // anything, so on a conflict the entry is still as it was.
        match apply_changes(
            Arc::make_mut(&mut entry.record.namespaces),
            &mut entry.counter,
            &changes.namespaces,
        ) {
            Err(namespace) => Err((entry, namespace)),
            Ok(_) if entry.record.namespaces.is_empty() => Ok(SaveOutcome::Deleted),
            Ok(revisions) => {
                entry.record.expires_at_ms = changes.expires_at_ms;
                entry.record.last_seen_ms = changes.last_seen_ms;
                self.insert(key, entry, capacity);
                Ok(SaveOutcome::Saved { revisions })
            }
        }
    }

    /// [`SaveMode::Update`] without taking the entry out of the map: the
    /// record's namespaces are changed in place when no reader shares them.
    fn update_in_place(&mut self, key: &SessionKey, changes: &Changeset) -> SaveOutcome {
        let Some(entry) = self.map.get_mut(key) else {
            return SaveOutcome::Missing;
        };
        let deadline = entry.record.expires_at_ms;
        match apply_changes(
            Arc::make_mut(&mut entry.record.namespaces),
            &mut entry.counter,
            &changes.namespaces,
        ) {
            Err(namespace) => SaveOutcome::Conflict { namespace },
            Ok(_) if entry.record.namespaces.is_empty() => {
                self.remove(key);
                SaveOutcome::Deleted
            }
            Ok(revisions) => {
                entry.record.expires_at_ms = changes.expires_at_ms;
                entry.record.last_seen_ms = changes.last_seen_ms;
                if deadline != changes.expires_at_ms {
                    self.by_deadline.remove(&(deadline, *key));
                    self.by_deadline.insert((changes.expires_at_ms, *key));
                }
                SaveOutcome::Saved { revisions }
            }
        }
    }

    /// Drops every record whose deadline has passed, earliest first. Costs
    /// O(log n) per evicted record and nothing when none is due.
    fn evict_expired(&mut self, now_ms: u64) {
        while let Some(&(deadline, key)) = self.by_deadline.first() {
            if deadline > now_ms {
                break;
            }
            self.by_deadline.pop_first();
            self.map.remove(&key);
        }
    }
}

/// The operations, synchronous: the layer calls them directly, without a
/// boxed future (`backend::RequestStorage`).
impl MemoryStore {
    pub(crate) fn load_now(&self, key: &SessionKey) -> Option<Record> {
        let now = self.inner.clock.now_ms();
        let shard = self.lock(self.shard_index(key));
        shard
            .map
            .get(key)
            .filter(|entry| entry.record.expires_at_ms > now)
            .map(|entry| entry.record.clone())
    }

    pub(crate) fn delete_now(&self, key: &SessionKey) -> bool {
        let now = self.inner.clock.now_ms();
        let mut shard = self.lock(self.shard_index(key));
        shard.evict_expired(now);
        shard.remove(key).is_some()
    }

    pub(crate) fn touch_now(
        &self,
        key: &SessionKey,
        last_seen_ms: u64,
        expires_at_ms: u64,
    ) -> bool {
        let now = self.inner.clock.now_ms();
        let mut shard = self.lock(self.shard_index(key));
        shard.evict_expired(now);
        let Some(mut entry) = shard.remove(key) else {
            return false;
        };
        entry.record.expires_at_ms = expires_at_ms;
        entry.record.last_seen_ms = last_seen_ms;
        shard.insert(*key, entry, None);
        true
    }
}

impl SessionStore for MemoryStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>, StoreError> {
        Ok(self.load_now(key))
    }

    async fn save(&self, key: &SessionKey, changes: &Changeset) -> Result<SaveOutcome, StoreError> {
        self.save_now(key, changes)
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        Ok(self.delete_now(key))
    }

    async fn touch(
        &self,
        key: &SessionKey,
        last_seen_ms: u64,
        expires_at_ms: u64,
    ) -> Result<bool, StoreError> {
        Ok(self.touch_now(key, last_seen_ms, expires_at_ms))
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let now = self.inner.clock.now_ms();
        let shard = self.lock(self.shard_index(key));
        Ok(shard
            .map
            .get(key)
            .is_some_and(|e| e.record.expires_at_ms > now))
    }
}
