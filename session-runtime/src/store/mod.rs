//! The storage contract and the built-in stores.
//!
//! A store keeps records by [`SessionKey`] (the SHA-256 of the session id)
//! and applies [`Changeset`]s atomically. It never interprets field bytes:
//! decoding, diffing and migration happen in the runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::data::FieldMap;
pub use crate::id::SessionKey;

mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;

pub use memory::{MemoryStore, MemoryStoreBuilder};
#[cfg(feature = "redis")]
#[doc(hidden)]
pub use redis::__fuzz as __redis_fuzz;
#[cfg(feature = "redis")]
pub use redis::{MalformedHash, RedisStore, RedisStoreBuilder};
#[cfg(feature = "postgres")]
pub use sql::postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sql::sqlite::{SqliteStore, SqliteStoreBuilder};

/// One stored session.
///
/// Cloning is cheap: the namespaces sit behind an `Arc`, so a store can hand
/// out its record without copying the data.
///
/// ```
/// use typed_sessions::FieldMap;
/// use typed_sessions::stores::{NamespaceRecord, Record};
///
/// let mut fields = FieldMap::new();
/// fields.insert("user", br#""ann""#.to_vec());
/// let record = Record::new(1_000, 2_000, 3_600_000, vec![NamespaceRecord::new("auth", 1, 1, fields)]);
/// assert_eq!(record.namespace("auth").unwrap().fields.get("user"), Some(&br#""ann""#[..]));
/// assert!(record.namespace("cart").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// When the session was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When the session was last written or refreshed, in milliseconds since
    /// the Unix epoch: the idle timeout counts from here, so a timeout
    /// shortened by configuration applies to sessions already stored.
    pub last_seen_ms: u64,
    /// When the store may forget the session, in milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
    /// The stored namespaces (a namespace at its `Default` is absent).
    pub namespaces: Arc<Vec<NamespaceRecord>>,
}

impl Record {
    /// A record; see the fields for their meaning.
    pub fn new(
        created_at_ms: u64,
        last_seen_ms: u64,
        expires_at_ms: u64,
        namespaces: Vec<NamespaceRecord>,
    ) -> Self {
        Self {
            created_at_ms,
            last_seen_ms,
            expires_at_ms,
            namespaces: Arc::new(namespaces),
        }
    }

    /// The namespace named `name`.
    pub fn namespace(&self, name: &str) -> Option<&NamespaceRecord> {
        self.namespaces.iter().find(|ns| ns.name == name)
    }
}

/// One stored namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NamespaceRecord {
    /// The namespace (`SessionData::NAMESPACE`).
    pub name: String,
    /// The schema version the fields were written at.
    pub version: u32,
    /// Bumped by every write to this namespace; never reused within a record,
    /// even after the namespace is removed and written again. Absent = 0.
    pub revision: u64,
    /// The encoded fields.
    pub fields: FieldMap,
}

impl NamespaceRecord {
    /// A stored namespace; see the fields for their meaning.
    pub fn new(name: impl Into<String>, version: u32, revision: u64, fields: FieldMap) -> Self {
        Self {
            name: name.into(),
            version,
            revision,
            fields,
        }
    }
}

/// What to change in one save, applied all-or-nothing.
///
/// A store applies it with the rules of [`guard_holds`]; a store that keeps
/// records in memory can use [`apply_changes`]:
///
/// ```
/// use typed_sessions::FieldMap;
/// use typed_sessions::stores::{
///     Changeset, NamespaceChange, NamespaceOp, NamespaceRecord, Record, SaveMode, apply_changes,
/// };
///
/// let mut fields = FieldMap::new();
/// fields.insert("count", b"1".to_vec());
/// let stored = Record::new(1_000, 1_000, 9_000, vec![NamespaceRecord::new("counter", 1, 7, fields)]);
///
/// // Set `count` to 2, only if the namespace is still at revision 7.
/// let mut patch = FieldMap::new();
/// patch.insert("count", b"2".to_vec());
/// let change = NamespaceChange::new("counter", 1, Some(7), NamespaceOp::Patch(patch));
/// let changes = Changeset::new(SaveMode::Update, 1_000, 2_000, 10_000, vec![change]);
///
/// let mut namespaces = (*stored.namespaces).clone();
/// let mut counter = 7; // the record's revision counter: revisions are never reused
/// let revisions = apply_changes(&mut namespaces, &mut counter, &changes.namespaces).unwrap();
/// assert_eq!(revisions, [8]);
/// assert_eq!(namespaces[0].fields.get("count"), Some(&b"2"[..]));
/// // The same change again expects revision 7: a conflict, nothing applied.
/// assert_eq!(apply_changes(&mut namespaces, &mut counter, &changes.namespaces), Err("counter"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Changeset {
    /// Which record the save applies to.
    pub mode: SaveMode,
    /// Creation time for [`SaveMode::Create`], in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The time of this write, stored as the record's
    /// [`last_seen_ms`](Record::last_seen_ms).
    pub last_seen_ms: u64,
    /// The new store deadline, in ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// The namespace changes, at most one per namespace.
    pub namespaces: Vec<NamespaceChange>,
}

/// Which record a [`Changeset`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveMode {
    /// A new record under a fresh key. A record already under the key is an error.
    Create,
    /// The existing record; when it is absent (deleted, expired) nothing is
    /// written and the outcome is [`SaveOutcome::Missing`]: a save never
    /// re-creates a session that was deleted meanwhile.
    Update,
    /// The record under `from` moves to the new key (id regeneration), then
    /// the changes apply; `from` no longer exists afterwards. When `from` is
    /// absent nothing is written ([`SaveOutcome::Missing`]).
    Rename {
        /// The key the record lives under now.
        from: SessionKey,
    },
}

/// A change to one namespace.
///
/// Guards, checked before anything is written (any failing guard makes the
/// whole save a [`SaveOutcome::Conflict`]):
/// - `expected_revision`, when set, must equal the stored revision (0 for an
///   absent namespace);
/// - a [`NamespaceOp::Patch`] needs the namespace to exist at `version`: a
///   patch never creates a namespace with fields missing, and older code
///   never relabels data written by newer code;
/// - a [`NamespaceOp::Remove`] of a stored namespace needs it at `version`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NamespaceChange {
    /// The namespace.
    pub namespace: &'static str,
    /// The schema version of the written fields.
    pub version: u32,
    /// Compare-and-swap: apply only when the namespace's revision equals this
    /// (0 for an absent namespace); otherwise the whole save is a
    /// [`SaveOutcome::Conflict`]. `None`: last writer wins, field by field.
    pub expected_revision: Option<u64>,
    /// What to do.
    pub op: NamespaceOp,
}

impl NamespaceChange {
    /// A change; see the fields for their meaning.
    pub fn new(
        namespace: &'static str,
        version: u32,
        expected_revision: Option<u64>,
        op: NamespaceOp,
    ) -> Self {
        Self {
            namespace,
            version,
            expected_revision,
            op,
        }
    }
}

impl Changeset {
    /// A changeset; see the fields for their meaning.
    pub fn new(
        mode: SaveMode,
        created_at_ms: u64,
        last_seen_ms: u64,
        expires_at_ms: u64,
        namespaces: Vec<NamespaceChange>,
    ) -> Self {
        Self {
            mode,
            created_at_ms,
            last_seen_ms,
            expires_at_ms,
            namespaces,
        }
    }
}

/// The operation on one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NamespaceOp {
    /// Replace the namespace's fields (and version) entirely.
    Replace(FieldMap),
    /// Set these fields, keep the others. The namespace must exist at the
    /// change's version.
    Patch(FieldMap),
    /// Remove the namespace (nothing to do when it is absent). A record left
    /// with no namespace is deleted.
    Remove,
}

/// What a save did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveOutcome {
    /// Written. `revisions[i]` is the new revision of `namespaces[i]` (0 for a removal).
    Saved {
        /// New revisions, in the order of the changeset's namespaces.
        revisions: Vec<u64>,
    },
    /// Every namespace is gone, so the record was deleted.
    Deleted,
    /// The record to update or rename does not exist; nothing was written.
    Missing,
    /// A guard of a [`NamespaceChange`] failed (revision, version, or a
    /// patch of an absent namespace); nothing was written.
    Conflict {
        /// The first namespace whose revision differed.
        namespace: &'static str,
    },
}

/// A store failure.
///
/// `Unavailable` is worth retrying (the layer answers 503 with
/// `Retry-After`); `Backend` is not (500):
///
/// ```
/// use typed_sessions::stores::StoreError;
///
/// fn from_io(err: std::io::Error) -> StoreError {
///     match err.kind() {
///         std::io::ErrorKind::TimedOut | std::io::ErrorKind::ConnectionRefused => {
///             StoreError::unavailable(err)
///         }
///         _ => StoreError::backend(err),
///     }
/// }
/// assert!(matches!(
///     from_io(std::io::ErrorKind::TimedOut.into()),
///     StoreError::Unavailable(_)
/// ));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached (connection refused, timeout…): worth retrying.
    #[error("session store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The backend answered with an error, or holds data it cannot read.
    #[error("session store failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl StoreError {
    /// A [`StoreError::Unavailable`] from any error.
    pub fn unavailable(
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::Unavailable(source.into())
    }

    /// A [`StoreError::Backend`] from any error.
    pub fn backend(source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Backend(source.into())
    }
}

/// Where sessions live.
///
/// Every method is one atomic operation. Implementations run the shared
/// conformance suite (`typed_sessions::conformance_tests!`, feature
/// `conformance`) to prove the contract.
///
/// ```
/// use typed_sessions::stores::{MemoryStore, SessionStore};
/// fn takes_any_store(_store: impl SessionStore) {}
/// takes_any_store(MemoryStore::new());
/// ```
pub trait SessionStore: Clone + Send + Sync + 'static {
    /// The record under `key`, or `None` when there is none or it expired.
    ///
    /// # Errors
    /// When the backend fails.
    fn load(
        &self,
        key: &SessionKey,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// Applies `changes` atomically (see [`SaveMode`], [`NamespaceOp`]).
    ///
    /// # Errors
    /// When the backend fails, or a [`SaveMode::Create`] key already exists.
    fn save(
        &self,
        key: &SessionKey,
        changes: &Changeset,
    ) -> impl Future<Output = Result<SaveOutcome, StoreError>> + Send;

    /// Deletes the record; `true` when one existed. Deleting nothing is not an error.
    ///
    /// # Errors
    /// When the backend fails.
    fn delete(&self, key: &SessionKey) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Sets the record's `last_seen_ms` and deadline without touching its
    /// data; `true` when it existed.
    ///
    /// # Errors
    /// When the backend fails.
    fn touch(
        &self,
        key: &SessionKey,
        last_seen_ms: u64,
        expires_at_ms: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Whether an unexpired record exists under `key`.
    ///
    /// # Errors
    /// When the backend fails.
    fn exists(&self, key: &SessionKey) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe face of a [`SessionStore`], so the layer and extractors
/// need no store type parameter.
pub(crate) trait DynStore: Send + Sync + 'static {
    /// The store itself, so that the layer can call a [`MemoryStore`]'s
    /// synchronous operations without boxing a future.
    fn as_any(&self) -> &dyn std::any::Any;
    fn load<'a>(&'a self, key: &'a SessionKey)
    -> BoxFuture<'a, Result<Option<Record>, StoreError>>;
    fn save<'a>(
        &'a self,
        key: &'a SessionKey,
        changes: &'a Changeset,
    ) -> BoxFuture<'a, Result<SaveOutcome, StoreError>>;
    fn delete<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn touch<'a>(
        &'a self,
        key: &'a SessionKey,
        last_seen_ms: u64,
        expires_at_ms: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

impl<S: SessionStore> DynStore for S {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn load<'a>(
        &'a self,
        key: &'a SessionKey,
    ) -> BoxFuture<'a, Result<Option<Record>, StoreError>> {
        Box::pin(SessionStore::load(self, key))
    }
    fn save<'a>(
        &'a self,
        key: &'a SessionKey,
        changes: &'a Changeset,
    ) -> BoxFuture<'a, Result<SaveOutcome, StoreError>> {
        Box::pin(SessionStore::save(self, key, changes))
    }
    fn delete<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(SessionStore::delete(self, key))
    }
    fn touch<'a>(
        &'a self,
        key: &'a SessionKey,
        last_seen_ms: u64,
        expires_at_ms: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(SessionStore::touch(self, key, last_seen_ms, expires_at_ms))
    }
}

/// Applies `changes` to `namespaces` in place: the shared semantics of
/// [`NamespaceOp`] for stores that hold records in memory. Returns the new
/// revisions, or the conflicting namespace without changing anything.
///
/// `counter` is the record's revision counter; every write takes the next
/// value, so a revision is never reused.
///
/// # Errors
/// The first namespace whose guard fails (see [`NamespaceChange`]).
pub fn apply_changes(
    namespaces: &mut Vec<NamespaceRecord>,
    counter: &mut u64,
    changes: &[NamespaceChange],
) -> Result<Vec<u64>, &'static str> {
    for change in changes {
        let stored = namespaces.iter().find(|ns| ns.name == change.namespace);
        if !guard_holds(change, stored) {
            return Err(change.namespace);
        }
    }
    let mut revisions = Vec::with_capacity(changes.len());
    for change in changes {
        let position = namespaces.iter().position(|ns| ns.name == change.namespace);
        match &change.op {
            NamespaceOp::Remove => {
                if let Some(i) = position {
                    namespaces.swap_remove(i);
                }
                revisions.push(0);
            }
            NamespaceOp::Replace(fields) | NamespaceOp::Patch(fields) => {
                *counter += 1;
                let revision = *counter;
                let replace = matches!(change.op, NamespaceOp::Replace(_));
                match position {
                    Some(i) => {
                        let ns = &mut namespaces[i];
                        if replace {
                            ns.fields.clone_from(fields);
                        } else {
                            ns.fields.merge(fields);
                        }
                        ns.version = change.version;
                        ns.revision = revision;
                    }
                    None => namespaces.push(NamespaceRecord {
                        name: change.namespace.to_owned(),
                        version: change.version,
                        revision,
                        fields: fields.clone(),
                    }),
                }
                revisions.push(revision);
            }
        }
    }
    Ok(revisions)
}

/// Whether `change` may apply to the namespace as stored (`None`: absent);
/// the rules are listed on [`NamespaceChange`]. Stores that apply changes
/// elsewhere (a script, a query) must implement the same rules.
pub fn guard_holds(change: &NamespaceChange, stored: Option<&NamespaceRecord>) -> bool {
    let revision = stored.map_or(0, |ns| ns.revision);
    if change
        .expected_revision
        .is_some_and(|expected| expected != revision)
    {
        return false;
    }
    match (&change.op, stored) {
        (NamespaceOp::Patch(_), None) => false,
        (NamespaceOp::Patch(_) | NamespaceOp::Remove, Some(ns)) => ns.version == change.version,
        (NamespaceOp::Replace(_) | NamespaceOp::Remove, _) => true,
    }
}
