//! The seam between the layer and where sessions live.
//!
//! A [`Backend`] is chosen when the layer is built; every request then talks
//! to its [`RequestStorage`] only: the request state, the diff, `update` and
//! the write-back see one store contract (`load`, `save` a [`Changeset`],
//! `delete`, `touch`) whichever backend is behind it. Two hooks sit at the
//! edges, where the cookie is read and written:
//!
//! - a **server-side** store keeps records by the SHA-256 of the id; the
//!   cookie carries the id ([`Token::Id`]) and a request's storage is the
//!   shared store itself;
//! - a **client-side** store keeps no server state: the cookie carries the
//!   record, sealed ([`Token::Sealed`]). At load it is opened into a
//!   request-local store ([`LocalStore`]), every change of the request is
//!   applied there with the same semantics, and the cookie written at the
//!   end seals whatever that store holds under the final id.
//!
//! Every operation runs in a `tracing` span (`session_load`,
//! `session_save`, `session_delete`, `session_touch`) that carries the
//! hashed id and the latency, and logs a failure inside it; with no
//! subscriber listening it costs neither a hash nor a clock read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tracing::Instrument as _;

use crate::cookie::{CookieValue, Token};
use crate::error::{ConfigError, ErrorChain};
use crate::id::{LogSecret, RawId};
use crate::store::{
    Changeset, DynStore, MemoryStore, Record, SaveMode, SaveOutcome, SessionKey, SessionStore,
    StoreError, apply_changes,
};

/// Seals a session record into a cookie value and opens it again: what a
/// client-side backend adds. Opening must authenticate the value; a value
/// that does not open reads as no session, and its cookie is cleared.
pub(crate) trait Sealer: Send + Sync + 'static {
    /// The cookie value carrying `record`, identified by `id`; an error when
    /// it would not fit [`budget`](Self::budget) (with the cookie name).
    fn seal(&self, id: &RawId, record: &Record) -> Result<String, SealError>;
    /// The id and record a cookie value carries, if it is genuine.
    fn open(&self, value: &str) -> Result<Opened, OpenError>;
    /// The most bytes the cookie's `name=value` may take.
    fn budget(&self) -> usize;
    /// The key of the hashed ids in logs and `SessionHandle::id`, when the
    /// sealer's keys fix one (the same in every process with the same key).
    fn log_secret(&self) -> Option<LogSecret> {
        None
    }
}

/// What a sealed cookie value held.
pub(crate) struct Opened {
    pub(crate) id: RawId,
    pub(crate) record: Record,
    /// Sealed by a fallback key: re-seal with the primary on this response.
    pub(crate) fallback: bool,
}

/// Why a cookie value did not open. It names the reason for the log; the
/// value itself is never logged.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("larger than the cookie budget")]
    TooLarge,
    #[error("not base64url")]
    Encoding,
    #[error("too short to be a sealed session")]
    Truncated,
    #[error("sealed in another format or mode")]
    Format,
    #[error("sealed by a key this layer does not have")]
    UnknownKey,
    #[error("does not authenticate (tampered, another key, or another cookie name)")]
    Forged,
    #[error("authentic but unreadable payload")]
    Payload,
}

/// Why a session could not be sealed into a cookie.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SealError {
    #[error(
        "the session cookie would take {size} bytes (name=value), over its budget of {budget}; this response's session changes are not sent"
    )]
    TooLarge { size: usize, budget: usize },
    #[error("no OS randomness for a nonce")]
    NoRandomness(#[source] getrandom::Error),
    #[error("the cipher refused the payload")]
    Cipher,
}

/// Where a layer keeps its sessions: every [`SessionStore`] (records on the
/// server, the cookie carries an id) and
/// [`CookieStore`](crate::cookie_store::CookieStore) (the record sealed in
/// the cookie). [`SessionLayer::new`](crate::SessionLayer::new) and
/// [`SessionLayer::builder`](crate::SessionLayer::builder) take either.
///
/// Sealed: implement [`SessionStore`] for a store of your own.
pub trait SessionBackend: sealed::IntoBackend {}

impl<T: sealed::IntoBackend> SessionBackend for T {}

pub(crate) mod sealed {
    use super::{Backend, ConfigError};

    /// Turns what the user passed into the layer's backend, once the
    /// cookie's name is known.
    pub trait IntoBackend: Send + Sync + 'static {
        /// Whether the session travels in the cookie.
        const CLIENT_SIDE: bool = false;
        /// The backend for a layer whose cookie is named `cookie_name`.
        fn into_backend(self, cookie_name: &str) -> Result<MadeBackend, ConfigError>;
    }

    /// A backend, behind a name outside code cannot reach.
    pub struct MadeBackend(pub(crate) Backend);
}

impl<S: SessionStore> sealed::IntoBackend for S {
    fn into_backend(self, _cookie_name: &str) -> Result<sealed::MadeBackend, ConfigError> {
        Ok(sealed::MadeBackend(Backend::Server(Arc::new(self))))
    }
}

/// Where a layer keeps its sessions.
pub(crate) enum Backend {
    /// Records in a shared store, by hashed id.
    Server(Arc<dyn DynStore>),
    /// Records sealed inside the cookie.
    Client(Arc<dyn Sealer>),
}

impl Backend {
    /// The key of hashed ids for a layer over this backend: the sealer's,
    /// or a random one per layer.
    pub(crate) fn log_secret(&self) -> LogSecret {
        match self {
            Self::Client(sealer) => sealer.log_secret(),
            Self::Server(_) => None,
        }
        .unwrap_or_else(LogSecret::generate)
    }

    /// What a cookie value under our name stands for, if it can be ours.
    /// (A sealed value is only checked for size here; it is
    /// opened when the session loads.)
    pub(crate) fn token(&self, value: &str) -> Option<Token> {
        match self {
            Self::Server(_) => RawId::parse(value).map(Token::Id),
            // Over the budget it cannot be ours (logged when the session
            // loads, as `CookieState::Malformed`); anything else is checked
            // by opening it.
            Self::Client(sealer) => {
                (value.len() < sealer.budget()).then(|| Token::Sealed(value.into()))
            }
        }
    }

    /// The storage one request talks to.
    pub(crate) fn begin(&self) -> RequestStorage {
        match self {
            Self::Server(store) => RequestStorage {
                store: match store.as_any().downcast_ref::<MemoryStore>() {
                    Some(memory) => Shared::Memory(memory.clone()),
                    None => Shared::Dyn(Arc::clone(store)),
                },
                client: None,
            },
            Self::Client(sealer) => RequestStorage {
                store: Shared::Local,
                client: Some((Arc::clone(sealer), Arc::new(LocalStore::default()))),
            },
        }
    }
}

/// The storage of one request: the shared store, or a request-local store
/// with the sealer that fills it from the cookie and empties it into the
/// next cookie.
///
/// The request-local store and a [`MemoryStore`] are called directly, not
/// through [`DynStore`]: their operations are synchronous, so they need no
/// boxed future (nor, for the local store, a second `Arc`).
#[derive(Clone)]
pub(crate) struct RequestStorage {
    store: Shared,
    client: Option<(Arc<dyn Sealer>, Arc<LocalStore>)>,
}

/// The store behind a [`RequestStorage`].
#[derive(Clone)]
enum Shared {
    /// Any store, through boxed futures.
    Dyn(Arc<dyn DynStore>),
    /// The embedded store, called synchronously.
    Memory(MemoryStore),
    /// A client-side backend: the request-local store of `client`.
    Local,
}

impl RequestStorage {
    /// The id and key a cookie token names, to [`load`](Self::load) next;
    /// a sealed record is opened into the request-local store here (and
    /// whether a fallback key opened it). `None` for a value that does not
    /// open. (The key is hashed once per request: SHA-256 is the costliest
    /// step of a read. This step is synchronous so that the load future
    /// stays one level deep.)
    ///
    /// Several values may carry the same id: the session the request
    /// settles on is [`adopt`](Self::adopt)ed afterwards, so the record
    /// that is kept is the one that was checked, never a later value's.
    pub(crate) fn resolve(&self, token: &Token) -> Option<(RawId, SessionKey, bool)> {
        match (token, &self.client) {
            (Token::Id(id), _) => Some((id.clone(), id.key(), false)),
            (Token::Sealed(value), Some((sealer, local))) => match sealer.open(value) {
                Ok(opened) => {
                    let key = opened.id.local_key();
                    local.put(key, opened.record);
                    Some((opened.id, key, opened.fallback))
                }
                Err(reason) => {
                    tracing::warn!(target: crate::LOG_TARGET, %reason, "session cookie does not open; starting a fresh session and clearing the cookie");
                    local.rejected.store(true, Ordering::Relaxed);
                    None
                }
            },
            (Token::Sealed(_), None) => None,
        }
    }

    /// Whether every store operation completes without waiting (a
    /// [`MemoryStore`] or the request-local store of a client-side backend).
    pub(crate) fn is_synchronous(&self) -> bool {
        matches!(self.store, Shared::Memory(_) | Shared::Local)
    }

    /// Whether the cookie carries the record (a client-side backend): then
    /// every change of the record, a refresh included, re-sends the cookie.
    pub(crate) fn carries_record(&self) -> bool {
        self.client.is_some()
    }

    /// The session the request settled on (a live one): a client-side
    /// store keeps exactly this record, and re-seals it under the primary
    /// key when a fallback key opened it.
    pub(crate) fn adopt(&self, key: SessionKey, record: &Record, fallback: bool) {
        if let Some((_, local)) = &self.client {
            if fallback {
                tracing::debug!(target: crate::LOG_TARGET, "session cookie sealed by a fallback key; re-issuing it under the primary key"
                );
            }
            local.put(key, record.clone());
            local.reseal.store(fallback, Ordering::Relaxed);
        }
    }

    /// A copy of the record a client-side store holds under `key` now.
    pub(crate) fn snapshot(&self, key: &SessionKey) -> Option<Record> {
        self.client.as_ref().and_then(|(_, local)| local.get(key))
    }

    /// Whether the cookie the request sent must be cleared even though it
    /// named no session: a sealed value that did not open, or had expired.
    pub(crate) fn cookie_rejected(&self) -> bool {
        self.client
            .as_ref()
            .is_some_and(|(_, local)| local.rejected.load(Ordering::Relaxed))
    }

    /// Marks the request's sealed cookie as one to clear (it expired).
    pub(crate) fn reject_cookie(&self) {
        if let Some((_, local)) = &self.client {
            local.rejected.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the cookie must be re-sent although nothing changed: it was
    /// sealed by a fallback key.
    pub(crate) fn reseal_due(&self) -> bool {
        self.client
            .as_ref()
            .is_some_and(|(_, local)| local.reseal.load(Ordering::Relaxed))
    }

    /// The value of the `Set-Cookie` for the session under `id`: the id
    /// itself, or `record` (the request-local store's, taken with
    /// [`snapshot`](Self::snapshot)) sealed; `Ok(None)` when a client-side
    /// store holds no record.
    pub(crate) fn cookie_value_of<'a>(
        &self,
        id: &'a RawId,
        record: Option<&Record>,
    ) -> Result<Option<CookieValue<'a>>, SealError> {
        match (&self.client, record) {
            (None, _) => Ok(Some(CookieValue::Id(id))),
            (Some(_), None) => Ok(None),
            (Some((sealer, _)), Some(record)) => sealer
                .seal(id, record)
                .map(|sealed| Some(CookieValue::Sealed(sealed))),
        }
    }

    /// The record of `id`, if the store has one.
    pub(crate) async fn load(
        &self,
        id: &RawId,
        key: &SessionKey,
        secret: &LogSecret,
    ) -> Result<Option<Record>, StoreError> {
        let span = tracing::debug_span!(target: crate::LOG_TARGET, "session_load",
            session = tracing::field::Empty,
            latency_us = tracing::field::Empty
        );
        match (&self.store, &self.client) {
            (Shared::Dyn(store), _) => timed("load", &span, id, secret, store.load(key)).await,
            (Shared::Memory(store), _) => {
                timed("load", &span, id, secret, async { Ok(store.load_now(key)) }).await
            }
            (Shared::Local, Some((_, local))) => {
                timed("load", &span, id, secret, async { Ok(local.get(key)) }).await
            }
            (Shared::Local, None) => unreachable!("a client-side storage has its local store"),
        }
    }

    /// Applies `changes` to the record under `key`.
    pub(crate) async fn save(
        &self,
        id: &RawId,
        key: &SessionKey,
        changes: &Changeset,
        secret: &LogSecret,
    ) -> Result<SaveOutcome, StoreError> {
        let span = tracing::debug_span!(target: crate::LOG_TARGET, "session_save",
            session = tracing::field::Empty,
            latency_us = tracing::field::Empty,
            namespaces = changes.namespaces.len()
        );
        match (&self.store, &self.client) {
            (Shared::Dyn(store), _) => {
                timed("save", &span, id, secret, store.save(key, changes)).await
            }
            (Shared::Memory(store), _) => {
                timed("save", &span, id, secret, async {
                    store.save_now(key, changes)
                })
                .await
            }
            (Shared::Local, Some((_, local))) => {
                timed("save", &span, id, secret, async {
                    local.apply(key, changes)
                })
                .await
            }
            (Shared::Local, None) => unreachable!("a client-side storage has its local store"),
        }
    }

    /// Deletes the record under `key`.
    pub(crate) async fn delete(
        &self,
        id: &RawId,
        key: &SessionKey,
        secret: &LogSecret,
    ) -> Result<bool, StoreError> {
        let span = tracing::debug_span!(target: crate::LOG_TARGET, "session_delete",
            session = tracing::field::Empty,
            latency_us = tracing::field::Empty
        );
        match (&self.store, &self.client) {
            (Shared::Dyn(store), _) => timed("delete", &span, id, secret, store.delete(key)).await,
            (Shared::Memory(store), _) => {
                timed("delete", &span, id, secret, async {
                    Ok(store.delete_now(key))
                })
                .await
            }
            (Shared::Local, Some((_, local))) => {
                timed("delete", &span, id, secret, async { Ok(local.delete(key)) }).await
            }
            (Shared::Local, None) => unreachable!("a client-side storage has its local store"),
        }
    }

    /// Moves the record's `last_seen` and deadline; `true` when it exists.
    pub(crate) async fn touch(
        &self,
        id: &RawId,
        key: &SessionKey,
        last_seen_ms: u64,
        expires_at_ms: u64,
        secret: &LogSecret,
    ) -> Result<bool, StoreError> {
        let span = tracing::debug_span!(target: crate::LOG_TARGET, "session_touch",
            session = tracing::field::Empty,
            latency_us = tracing::field::Empty
        );
        match (&self.store, &self.client) {
            (Shared::Dyn(store), _) => {
                let touch = store.touch(key, last_seen_ms, expires_at_ms);
                timed("refresh", &span, id, secret, touch).await
            }
            (Shared::Memory(store), _) => {
                let touch = async { Ok(store.touch_now(key, last_seen_ms, expires_at_ms)) };
                timed("refresh", &span, id, secret, touch).await
            }
            (Shared::Local, Some((_, local))) => {
                let touch = async { Ok(local.touch(key, last_seen_ms, expires_at_ms)) };
                timed("refresh", &span, id, secret, touch).await
            }
            (Shared::Local, None) => unreachable!("a client-side storage has its local store"),
        }
    }
}

/// Runs one store operation inside `span`, recording the hashed id and the
/// latency, and logs a failure inside the span (so the warning carries the
/// hashed id). With no subscriber interested in the span, it costs neither
/// a hash nor a clock read.
async fn timed<T, F: std::future::Future<Output = Result<T, StoreError>>>(
    operation_name: &'static str,
    span: &tracing::Span,
    id: &RawId,
    secret: &LogSecret,
    operation: F,
) -> Result<T, StoreError> {
    if span.is_disabled() {
        let output = operation.await;
        if let Err(err) = &output {
            tracing::warn!(target: crate::LOG_TARGET, error = %ErrorChain(err), "session store failed on {operation_name}");
        }
        return output;
    }
    let session = id.log_hash(secret);
    span.record("session", tracing::field::display(&session));
    let started = Instant::now();
    let output = operation.instrument(span.clone()).await;
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    span.record("latency_us", latency_us);
    match &output {
        // One event per operation, so that a plain `fmt` subscriber shows
        // it without span-close formatting.
        Ok(_) => {
            tracing::debug!(target: crate::LOG_TARGET, parent: span, session = %session, latency_us, "session {operation_name}");
        }
        Err(err) => {
            tracing::warn!(target: crate::LOG_TARGET, parent: span, session = %session, latency_us, error = %ErrorChain(err), "session store failed on {operation_name}");
        }
    }
    output
}

/// The records of one request of a client-side backend, with the store
/// semantics of every backend (guards, revisions, rename, delete).
#[derive(Default)]
pub(crate) struct LocalStore {
    records: Mutex<Vec<LocalEntry>>,
    /// The record the request settled on was opened with a fallback key.
    reseal: AtomicBool,
    /// The request's cookie did not open, or had expired.
    rejected: AtomicBool,
}

struct LocalEntry {
    key: SessionKey,
    record: Record,
    /// The revision counter: above every revision the record holds.
    counter: u64,
}

impl LocalStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<LocalEntry>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn put(&self, key: SessionKey, record: Record) {
        // Within the request revisions stay unique from here. (A sealed
        // record carries no counter, so across requests a removed
        // namespace's revision may come back; a client-side store has no
        // cross-request compare-and-swap anyway: the browser keeps the last
        // cookie.)
        let counter = record
            .namespaces
            .iter()
            .map(|ns| ns.revision)
            .max()
            .unwrap_or(0);
        let mut records = self.lock();
        records.retain(|entry| entry.key != key);
        records.push(LocalEntry {
            key,
            record,
            counter,
        });
    }

    fn get(&self, key: &SessionKey) -> Option<Record> {
        self.lock()
            .iter()
            .find(|entry| entry.key == *key)
            .map(|entry| entry.record.clone())
    }

    fn apply(&self, key: &SessionKey, changes: &Changeset) -> Result<SaveOutcome, StoreError> {
        let mut records = self.lock();
        let source = match changes.mode {
            SaveMode::Create => {
                if records.iter().any(|entry| entry.key == *key) {
                    return Err(StoreError::backend(
                        "a session already exists under a fresh key",
                    ));
                }
                None
            }
            SaveMode::Update => Some(*key),
            SaveMode::Rename { from } => Some(from),
        };
        let mut entry = match source {
            None => LocalEntry {
                key: *key,
                record: Record::new(
                    changes.created_at_ms,
                    changes.last_seen_ms,
                    changes.expires_at_ms,
                    Vec::new(),
                ),
                counter: 0,
            },
            Some(source) => match records.iter().position(|entry| entry.key == source) {
                Some(index) => records.swap_remove(index),
                None => return Ok(SaveOutcome::Missing),
            },
        };
        let namespaces = Arc::make_mut(&mut entry.record.namespaces);
        match apply_changes(namespaces, &mut entry.counter, &changes.namespaces) {
            Err(namespace) => {
                if source.is_some() {
                    records.push(entry);
                }
                Ok(SaveOutcome::Conflict { namespace })
            }
            Ok(_) if entry.record.namespaces.is_empty() => Ok(SaveOutcome::Deleted),
            Ok(revisions) => {
                entry.key = *key;
                entry.record.last_seen_ms = changes.last_seen_ms;
                entry.record.expires_at_ms = changes.expires_at_ms;
                records.push(entry);
                Ok(SaveOutcome::Saved { revisions })
            }
        }
    }
}

impl LocalStore {
    fn delete(&self, key: &SessionKey) -> bool {
        let mut records = self.lock();
        let before = records.len();
        records.retain(|entry| entry.key != *key);
        records.len() != before
    }

    fn touch(&self, key: &SessionKey, last_seen_ms: u64, expires_at_ms: u64) -> bool {
        let mut records = self.lock();
        let Some(entry) = records.iter_mut().find(|entry| entry.key == *key) else {
            return false;
        };
        entry.record.last_seen_ms = last_seen_ms;
        entry.record.expires_at_ms = expires_at_ms;
        true
    }
}

#[cfg(test)]
mod tests;
