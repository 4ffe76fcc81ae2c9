//! Cookie values this process sealed or opened recently, with what they
//! hold: a browser sends the same value with every request until the next
//! write replaces it, and a value found here needs no base64, no MAC or
//! AEAD and no framing parse again.
//!
//! A hit requires the whole value, byte for byte, to equal one that was
//! sealed here with the primary key or opened with it (a value opened by a
//! fallback key is never kept: it must be re-issued on every response).
//! That is what authenticating it again would prove, so a hit opens
//! exactly the values the keys open. Expiry is not decided here: the
//! record's deadlines are checked on every request, as for a fresh open.
//!
//! The map is bounded (entries, in shards with one lock each); a full
//! shard forgets an arbitrary entry. Only genuine values get in, so a
//! client cannot fill it with junk; one that mints many sessions only
//! evicts others' entries, which then open the slow way.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Mutex, PoisonError};

use crate::id::RawId;
use crate::store::Record;

const SHARDS: usize = 8;

/// The maps' keys are already keyed hashes: used as they are.
#[derive(Default)]
struct AsIs(u64);

impl Hasher for AsIs {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed (`write_u64`); fold anything else.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, Entry, BuildHasherDefault<AsIs>>;

pub(crate) struct OpenedCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hasher: RandomState,
}

struct Entry {
    value: Box<str>,
    id: RawId,
    record: Record,
}

impl OpenedCache {
    /// A cache of at most about `entries` values; `0` keeps none.
    pub(crate) fn new(entries: usize) -> Self {
        let per_shard = entries.div_ceil(SHARDS);
        Self {
            shards: (0..if per_shard == 0 { 0 } else { SHARDS })
                .map(|_| Mutex::new(Shard::default()))
                .collect(),
            per_shard,
            hasher: RandomState::new(),
        }
    }

    /// The slot of `value`: a keyed hash of its last characters (the MAC
    /// or AEAD tag of a genuine value, different for every seal); the whole
    /// value is compared on a hit.
    fn slot(&self, value: &str) -> (usize, u64) {
        let tail = &value.as_bytes()[value.len().saturating_sub(16)..];
        let hash = self.hasher.hash_one(tail);
        // Middle bits: the map itself uses the low ones (bucket) and the
        // top seven (tag), which must still differ within a shard.
        let shard = (hash >> 32) as usize & (SHARDS - 1);
        (shard, hash)
    }

    /// What `value` held, if it is here.
    pub(crate) fn get(&self, value: &str) -> Option<(RawId, Record)> {
        if self.shards.is_empty() {
            return None;
        }
        let (shard, hash) = self.slot(value);
        let map = self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = map.get(&hash)?;
        (*entry.value == *value).then(|| (entry.id.clone(), entry.record.clone()))
    }

    /// Keeps `value`, genuine under the primary key, with what it holds.
    pub(crate) fn insert(&self, value: &str, id: RawId, record: Record) {
        if self.shards.is_empty() {
            return;
        }
        let (shard, hash) = self.slot(value);
        let entry = Entry {
            value: value.into(),
            id,
            record,
        };
        let mut map = self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let evicted = if map.len() >= self.per_shard
            && !map.contains_key(&hash)
            && let Some(&victim) = map.keys().next()
        {
            map.remove(&victim)
        } else {
            None
        };
        let replaced = map.insert(hash, entry);
        // What leaves is freed after the shard is unlocked.
        drop(map);
        drop((evicted, replaced));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> Record {
        Record::new(n, n, n + 1, Vec::new())
    }

    #[test]
    fn a_hit_needs_the_whole_value() {
        let cache = OpenedCache::new(64);
        let id = RawId::generate().unwrap();
        cache.insert("AAAA-genuine-value-0123456789abcdef", id.clone(), record(5));
        let (got_id, got) = cache
            .get("AAAA-genuine-value-0123456789abcdef")
            .expect("kept");
        assert_eq!(got_id.as_bytes(), id.as_bytes());
        assert_eq!(got.created_at_ms, 5);
        // Same tail (same slot), different body: a miss, never a hit.
        assert!(cache.get("BBBB-genuine-value-0123456789abcdef").is_none());
        assert!(cache.get("AAAA-genuine-value-0123456789abcdef!").is_none());
        assert!(cache.get("").is_none());
    }

    #[test]
    fn it_stays_within_its_bound() {
        let cache = OpenedCache::new(64);
        for n in 0..10_000u64 {
            cache.insert(
                &format!("value-{n:032}"),
                RawId::generate().unwrap(),
                record(n),
            );
        }
        assert!(cache.len() <= 64, "{} entries", cache.len());
        assert!(cache.len() >= 32, "{} entries", cache.len());
    }

    #[test]
    fn zero_keeps_nothing() {
        let cache = OpenedCache::new(0);
        cache.insert("value", RawId::generate().unwrap(), record(1));
        assert!(cache.get("value").is_none());
        assert_eq!(cache.len(), 0);
    }
}
