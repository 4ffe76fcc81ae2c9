//! A custom `SessionStore`: each session is one JSON file in a directory,
//! named by its `SessionKey` in hex. The walk-through is
//! `docs/guide/custom-store.md`.
//!
//! ```sh
//! cargo run --example file_store --features conformance   # http://127.0.0.1:3003
//! curl -c jar -b jar localhost:3003/                      # 1, 2, … (survives a restart)
//! cargo test --example file_store --features conformance  # the store suites
//! ```
//!
//! This is an example, not a production store. One mutex makes every
//! operation atomic within this process only: two processes sharing the
//! directory would race (use a database, or file locks, for that). Files
//! are written whole and renamed into place, but never fsynced, and every
//! operation does blocking file I/O on the async runtime's thread, which
//! is fine for small local files; a store on slow storage would use
//! `tokio::task::spawn_blocking`. An expired file goes when it is next
//! read; one that nobody asks for again stays (a real store would sweep
//! the directory now and then).

use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::UNIX_EPOCH;

use axum::Router;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use typed_sessions::stores::{
    Changeset, NamespaceRecord, Record, SaveMode, SaveOutcome, SessionKey, SessionStore,
    StoreError, apply_changes,
};
use typed_sessions::{Clock, Session, SessionData, SessionLayer, SystemClock};

/// Sessions as files in one directory, one file per session.
#[derive(Clone)]
struct FileStore {
    /// The directory, behind the lock that every operation holds from its
    /// first read to its last write, so operations never interleave.
    dir: Arc<Mutex<PathBuf>>,
    /// Decides expiry; tests pass a manual clock.
    clock: Arc<dyn Clock>,
}

/// What one file holds: a serde mirror of `Record` (which has no serde
/// impls), plus the record's revision counter, which `Record` does not
/// carry but the store must keep: a revision is never reused, even after
/// its namespace was removed.
#[derive(Serialize, Deserialize)]
struct StoredRecord {
    created_at_ms: u64,
    last_seen_ms: u64,
    expires_at_ms: u64,
    counter: u64,
    namespaces: Vec<StoredNamespace>,
}

/// A `NamespaceRecord`. The fields are `(name, encoded value)` pairs; the
/// store never decodes the bytes (stored as JSON arrays of numbers: simple,
/// not compact).
#[derive(Serialize, Deserialize)]
struct StoredNamespace {
    name: String,
    version: u32,
    revision: u64,
    fields: Vec<(String, Vec<u8>)>,
}

impl StoredRecord {
    fn new(record: &Record, counter: u64) -> Self {
        let namespaces = record.namespaces.iter().map(|ns| StoredNamespace {
            name: ns.name.clone(),
            version: ns.version,
            revision: ns.revision,
            fields: ns
                .fields
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_vec()))
                .collect(),
        });
        Self {
            created_at_ms: record.created_at_ms,
            last_seen_ms: record.last_seen_ms,
            expires_at_ms: record.expires_at_ms,
            counter,
            namespaces: namespaces.collect(),
        }
    }

    fn into_record(self) -> (Record, u64) {
        let namespaces = self.namespaces.into_iter().map(|ns| {
            NamespaceRecord::new(
                ns.name,
                ns.version,
                ns.revision,
                ns.fields.into_iter().collect(),
            )
        });
        let (created, seen, expires) = (self.created_at_ms, self.last_seen_ms, self.expires_at_ms);
        (
            Record::new(created, seen, expires, namespaces.collect()),
            self.counter,
        )
    }
}

impl FileStore {
    /// A store in `dir` (created if missing) whose expiry follows `clock`.
    fn new(dir: impl Into<PathBuf>, clock: Arc<dyn Clock>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(Self {
            dir: Arc::new(Mutex::new(dir)),
            clock,
        })
    }

    /// Runs `op` on the locked directory: one operation at a time.
    fn locked<T>(
        &self,
        op: impl FnOnce(Dir<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let now = self
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let now = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        // Every write replaces a whole file by a rename, so a panic cannot
        // leave a file half-written: a poisoned lock is safe to keep using.
        let path = self.dir.lock().unwrap_or_else(PoisonError::into_inner);
        op(Dir { path: &path, now })
    }
}

/// The locked directory, and the time the operation started.
struct Dir<'a> {
    path: &'a Path,
    now: u64,
}

impl Dir<'_> {
    fn file(&self, key: &SessionKey) -> PathBuf {
        self.path.join(key.to_hex())
    }

    /// The unexpired record under `key`, with its revision counter. An
    /// expired one reads as absent (and its file goes); a file that does
    /// not parse is an error.
    fn read(&self, key: &SessionKey) -> Result<Option<(Record, u64)>, StoreError> {
        let bytes = match fs::read(self.file(key)) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(StoreError::backend(err)),
        };
        let stored: StoredRecord = serde_json::from_slice(&bytes).map_err(StoreError::backend)?;
        if stored.expires_at_ms <= self.now {
            self.remove(key)?;
            return Ok(None);
        }
        Ok(Some(stored.into_record()))
    }

    /// Writes the record to a temporary file, then renames it over the
    /// key's file, so a reader sees the old record or the new one, never a
    /// mix. `retire` (a renamed record's old key) is deleted in between: a
    /// crash there loses the session (the user logs in again) rather than
    /// leaving valid the id that regeneration retires.
    fn write(
        &self,
        key: &SessionKey,
        record: &Record,
        counter: u64,
        retire: Option<SessionKey>,
    ) -> Result<(), StoreError> {
        let temp = self.path.join(format!("{}.tmp", key.to_hex()));
        let json = serde_json::to_vec(&StoredRecord::new(record, counter));
        fs::write(&temp, json.map_err(StoreError::backend)?).map_err(StoreError::backend)?;
        if let Some(old) = retire {
            self.remove(&old)?;
        }
        fs::rename(&temp, self.file(key)).map_err(StoreError::backend)
    }

    fn remove(&self, key: &SessionKey) -> Result<(), StoreError> {
        match fs::remove_file(self.file(key)) {
            Err(err) if err.kind() != ErrorKind::NotFound => Err(StoreError::backend(err)),
            _ => Ok(()),
        }
    }
}

impl SessionStore for FileStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>, StoreError> {
        self.locked(|dir| Ok(dir.read(key)?.map(|(record, _)| record)))
    }

    async fn save(&self, key: &SessionKey, changes: &Changeset) -> Result<SaveOutcome, StoreError> {
        self.locked(|dir| {
            // Where the record comes from: nowhere (a new one), this key, or
            // the key it is renamed from.
            let source = match changes.mode {
                SaveMode::Create => None,
                SaveMode::Update => Some(*key),
                SaveMode::Rename { from } => Some(from),
                // `SaveMode` is non-exhaustive: refuse what this store does not know.
                _ => return Err(StoreError::backend("a save mode this store does not know")),
            };
            let (mut record, mut counter) = match source {
                None if dir.read(key)?.is_some() => {
                    return Err(StoreError::backend(
                        "a session already exists under a fresh key",
                    ));
                }
                None => (Record::new(changes.created_at_ms, 0, 0, Vec::new()), 0),
                // Never re-create a record that was deleted or expired.
                Some(source) => match dir.read(&source)? {
                    Some(found) => found,
                    None => return Ok(SaveOutcome::Missing),
                },
            };
            // The changeset semantics, guards first: on a conflict nothing
            // has been written, and nothing will be.
            let namespaces = Arc::make_mut(&mut record.namespaces);
            let revisions = match apply_changes(namespaces, &mut counter, &changes.namespaces) {
                Ok(revisions) => revisions,
                Err(namespace) => return Ok(SaveOutcome::Conflict { namespace }),
            };
            if namespaces.is_empty() {
                // A record left with no namespace is deleted.
                if let Some(source) = source {
                    dir.remove(&source)?;
                }
                return Ok(SaveOutcome::Deleted);
            }
            record.last_seen_ms = changes.last_seen_ms;
            record.expires_at_ms = changes.expires_at_ms;
            dir.write(key, &record, counter, source.filter(|from| from != key))?;
            Ok(SaveOutcome::Saved { revisions })
        })
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.locked(|dir| {
            // A file that no longer parses is deleted too (and counts as a
            // record), so a damaged session can still be logged out of.
            let existed = !matches!(dir.read(key), Ok(None));
            dir.remove(key)?;
            Ok(existed)
        })
    }

    async fn touch(
        &self,
        key: &SessionKey,
        last_seen_ms: u64,
        expires_at_ms: u64,
    ) -> Result<bool, StoreError> {
        self.locked(|dir| {
            let Some((mut record, counter)) = dir.read(key)? else {
                return Ok(false);
            };
            record.last_seen_ms = last_seen_ms;
            record.expires_at_ms = expires_at_ms;
            dir.write(key, &record, counter, None)?;
            Ok(true)
        })
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.locked(|dir| Ok(dir.read(key)?.is_some()))
    }
}

/// What the counter route keeps in the session.
#[derive(SessionData, Default)]
#[session(namespace = "counter")]
struct Counter {
    count: u64,
}

async fn count(mut counter: Session<Counter>) -> String {
    counter.count += 1;
    counter.count.to_string()
}

#[tokio::main]
async fn main() {
    // A fixed directory, so sessions outlive a restart of the example.
    let dir = std::env::temp_dir().join("typed-sessions-file-store");
    let store =
        FileStore::new(&dir, Arc::new(SystemClock)).expect("a writable temporary directory");
    // `secure(false)`: plain http on localhost for this example, where a
    // `Secure` cookie would not come back; keep the default behind https.
    let layer = SessionLayer::builder(store)
        .secure(false)
        .build()
        .expect("a valid configuration");
    let app = Router::new().route("/", get(count)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3003")
        .await
        .expect("port 3003 is free");
    println!(
        "file store example on http://127.0.0.1:3003 (sessions in {})",
        dir.display()
    );
    axum::serve(listener, app).await.expect("server runs");
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use typed_sessions::stores::{NamespaceChange, NamespaceOp};
    use typed_sessions_test_support::ManualClock;

    use super::*;

    /// A directory no other test uses. Left behind, all in one place:
    /// `typed-sessions-file-store-tests` in the temporary directory.
    fn fresh_dir() -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{n}", std::process::id());
        std::env::temp_dir()
            .join("typed-sessions-file-store-tests")
            .join(name)
    }

    fn create(expires_at_ms: u64) -> Changeset {
        let fields = std::iter::once(("count", b"1".to_vec())).collect();
        let change = NamespaceChange::new("counter", 1, None, NamespaceOp::Replace(fields));
        Changeset::new(SaveMode::Create, 0, 0, expires_at_ms, vec![change])
    }

    #[tokio::test]
    async fn a_new_store_over_the_same_directory_reads_the_sessions() {
        let dir = fresh_dir();
        let key = SessionKey::from_bytes([1; 32]);
        let first = FileStore::new(&dir, Arc::new(SystemClock)).unwrap();
        first.save(&key, &create(u64::MAX)).await.unwrap();
        assert!(
            dir.join(key.to_hex()).is_file(),
            "one file, named by the key"
        );
        let second = FileStore::new(&dir, Arc::new(SystemClock)).unwrap();
        assert_eq!(
            second.load(&key).await.unwrap(),
            first.load(&key).await.unwrap()
        );
    }

    #[tokio::test]
    async fn expiry_follows_the_clock_and_removes_the_file() {
        let (dir, clock) = (fresh_dir(), ManualClock::new());
        let store = FileStore::new(&dir, clock.clone()).unwrap();
        let key = SessionKey::from_bytes([1; 32]);
        let deadline = clock.now_secs() * 1000 + 1_000;
        store.save(&key, &create(deadline)).await.unwrap();
        assert!(store.exists(&key).await.unwrap());
        clock.advance(Duration::from_secs(1));
        assert!(
            store.load(&key).await.unwrap().is_none(),
            "due at the deadline"
        );
        assert!(!dir.join(key.to_hex()).exists());
    }

    // The store contract, case by case, on the system clock (the suite
    // sleeps past a deadline).
    typed_sessions::conformance_tests!(
        FileStore::new(fresh_dir(), Arc::new(SystemClock)).expect("a writable temporary directory")
    );

    // The whole request lifecycle through a router, on the layer's clock.
    typed_sessions_test_support::lifecycle_tests!(|clock| {
        FileStore::new(fresh_dir(), clock).expect("a writable temporary directory")
    });
}
