//! The per-request session: loaded at most once, shared by every extractor
//! of the request, written back once after the handler.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use tokio::sync::OnceCell;
use tracing::Instrument as _;

use crate::codec::CodecError;
use crate::config::{DecodeFailurePolicy, NewerVersionPolicy, StoreDownPolicy};
use crate::data::{DecodeError, FieldMap, SessionData};
use crate::error::{ErrorChain, SessionRejection};
use crate::id::{RawId, SessionKey};
use crate::layer::LayerInner;
use crate::store::{NamespaceOp, NamespaceRecord, Record, SaveMode, StoreError};

/// The most distinct ids under our cookie name that a request may make us
/// look up. Browsers send at most a few (a sibling subdomain's cookie, a
/// stale path); more is an attempt to multiply store reads.
pub(crate) const MAX_COOKIE_IDS: usize = 4;

/// What the request's cookie said.
pub(crate) enum CookieState {
    Absent,
    /// Present but not an id we could have issued: never looked up.
    Malformed,
    Present(RawId),
    /// Several distinct well-formed ids (2 to [`MAX_COOKIE_IDS`]): the one
    /// that names a live session is used; when several do, none is.
    Several(Vec<RawId>),
    /// More distinct ids than [`MAX_COOKIE_IDS`]: none is looked up.
    TooMany,
}

/// The session as it exists in the store.
pub(crate) struct Current {
    pub(crate) id: RawId,
    pub(crate) key: SessionKey,
    pub(crate) created_at_ms: u64,
    /// The last write or refresh: the idle timeout counts from here.
    pub(crate) last_seen_ms: u64,
    /// The store deadline.
    pub(crate) expires_at_ms: u64,
}

/// What an `update` commit means for the cookie at the end of the request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum CommittedId {
    /// No `update` committed, or it committed nothing.
    Untouched,
    /// An `update` created the session or moved it to a fresh id: the
    /// browser learns the id from this response.
    Fresh,
    /// An `update` wrote under the id the client sent: only the deadline
    /// moved, so the cookie is re-sent (for its `Max-Age`) only after
    /// checking that the id still names the session.
    Same,
}

/// What storage holds for one namespace, as the diff sees it.
pub(crate) enum Base {
    /// Not stored: reads as `Default`.
    Absent,
    /// `record.namespaces[i]`, at the schema's own version.
    InRecord(usize),
    /// A baseline computed in this request: after an `update` commit, or for
    /// a namespace that was migrated or reset (`replace`: stored bytes are
    /// not at this version, so a write replaces the namespace whole).
    Owned { ns: NamespaceRecord, replace: bool },
}

pub(crate) struct Slot {
    pub(crate) namespace: &'static str,
    type_id: TypeId,
    type_name: &'static str,
    pub(crate) base: Base,
    /// A value handed back by a dropped `Session<T>` that changed it.
    pub(crate) value: Option<Box<dyn ErasedValue>>,
    pub(crate) dirty: bool,
    pub(crate) checked_out: bool,
}

#[allow(
    clippy::struct_excessive_bools,
    reason = "independent request flags, each read in one place of writeback"
)]
pub(crate) struct State {
    pub(crate) current: Option<Current>,
    pub(crate) record: Option<Record>,
    pub(crate) slots: Vec<Slot>,
    pub(crate) destroyed: bool,
    pub(crate) regenerate: bool,
    /// Bumped by `clear()`: values extracted before it are discarded.
    pub(crate) epoch: u64,
    /// Records to delete at the end of the request (`clear()`).
    pub(crate) delete_pending: Vec<(RawId, SessionKey)>,
    /// What `update` commits did to the session's id.
    pub(crate) committed: CommittedId,
    /// An `update` emptied and so deleted the session: remove the cookie.
    pub(crate) deleted: bool,
    /// The load failed and the layer failed open: the client's session may
    /// still exist, so nothing may be created in its place.
    pub(crate) load_failed: bool,
}

/// The change one namespace needs.
pub(crate) struct Plan {
    pub(crate) op: Option<NamespaceOp>,
    pub(crate) rotate: bool,
    /// The full current encoding, when asked for: the new baseline once committed.
    pub(crate) current: Option<FieldMap>,
    /// For a [`NamespaceOp::Replace`] or [`NamespaceOp::Remove`]: the
    /// fields this request changed (against the baseline, or against
    /// `Default` when nothing was stored), with their new bytes, so that a
    /// conflicting write can be rebased onto what another request wrote
    /// meanwhile. For a [`NamespaceOp::Patch`] they are the patch itself.
    pub(crate) ours: Option<FieldMap>,
    /// The encoding of the schema's `Default`.
    pub(crate) defaults: &'static FieldMap,
}

/// Decodes stored fields of any version and re-encodes them at the current
/// one (the `migrate_from` chain), with the error as a loggable text.
pub(crate) type Migrator = fn(u32, &FieldMap) -> Result<FieldMap, String>;

fn migrate_fields<T: SessionData>(version: u32, fields: &FieldMap) -> Result<FieldMap, String> {
    let value = T::decode_fields(version, fields)
        .map_err(|e| ErrorChain(&withhold_values::<T>(e)).to_string())?;
    value
        .encode_fields()
        .map_err(|e| ErrorChain(&e).to_string())
}

/// A schema value with its type erased, so the layer can diff it.
pub(crate) trait ErasedValue: Send {
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn plan(&self, base: Option<&FieldMap>, replace: bool) -> Result<Plan, CodecError>;
    fn version(&self) -> u32;
    fn migrator(&self) -> Migrator;
}

pub(crate) struct Holder<T>(pub(crate) T);

impl<T: SessionData + Default> ErasedValue for Holder<T> {
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        Box::new(self.0)
    }

    fn plan(&self, base: Option<&FieldMap>, replace: bool) -> Result<Plan, CodecError> {
        plan(&self.0, base, replace, false)
    }

    fn version(&self) -> u32 {
        T::VERSION
    }

    fn migrator(&self) -> Migrator {
        migrate_fields::<T>
    }
}

/// The encoding of `T::default()`, computed once per type per process.
///
/// "Is this namespace at its default?" is asked on every write; encoding a
/// fresh default each time would double the cost of a write. A schema's
/// `Default` is expected to be deterministic (it is what "absent" reads as).
fn default_fields<T: SessionData + Default>() -> Result<&'static FieldMap, CodecError> {
    type Cache = RwLock<HashMap<TypeId, &'static FieldMap>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    let id = TypeId::of::<T>();
    if let Some(fields) = cache
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&id)
    {
        return Ok(fields);
    }
    // One small allocation per schema type for the life of the process.
    let fields: &'static FieldMap = Box::leak(Box::new(T::default().encode_fields()?));
    Ok(*cache
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(id)
        .or_insert(fields))
}

/// Field-level diff of `value` against what storage holds (`base`, `None`
/// when absent). A value equal to `Default` is not stored: it becomes a
/// removal (or nothing, when already absent).
pub(crate) fn plan<T: SessionData + Default>(
    value: &T,
    base: Option<&FieldMap>,
    replace: bool,
    keep_current: bool,
) -> Result<Plan, CodecError> {
    let mut current = value.encode_fields()?;
    let default = default_fields::<T>()?;
    let reference = base.unwrap_or(default);
    let differs = |name: &str, bytes: &[u8]| reference.get(name) != Some(bytes);
    if !current.iter().any(|(name, bytes)| differs(name, bytes)) {
        return Ok(Plan {
            op: None,
            rotate: false,
            current: keep_current.then_some(current),
            ours: None,
            defaults: default,
        });
    }
    let rotate = T::FIELDS
        .iter()
        .any(|f| f.rotate_id() && current.get(f.name()) != reference.get(f.name()));
    let kept = keep_current.then(|| current.clone());
    let (op, ours) = if current == *default {
        // Absent and default was handled above (nothing differs).
        let ours = current.subset(differs);
        (NamespaceOp::Remove, Some(ours))
    } else if base.is_none() || replace {
        let ours = current.subset(differs);
        (NamespaceOp::Replace(current), Some(ours))
    } else {
        current.retain(differs);
        (NamespaceOp::Patch(current), None)
    };
    Ok(Plan {
        op: Some(op),
        rotate,
        current: kept,
        ours,
        defaults: default,
    })
}

pub(crate) struct RequestSession {
    pub(crate) layer: Arc<LayerInner>,
    pub(crate) cookie: CookieState,
    loaded: OnceCell<Result<(), LoadFailure>>,
    /// The request's time, read once (expiry decisions of one request agree).
    now_ms: std::sync::OnceLock<u64>,
    state: Mutex<State>,
}

/// A load failure, kept so that every extractor of the request sees it.
#[derive(Clone)]
enum LoadFailure {
    Unavailable(Arc<StoreError>),
    Failed(Arc<StoreError>),
}

impl RequestSession {
    pub(crate) fn new(layer: Arc<LayerInner>, cookie: CookieState) -> Self {
        Self {
            layer,
            cookie,
            loaded: OnceCell::new(),
            now_ms: std::sync::OnceLock::new(),
            state: Mutex::new(State {
                current: None,
                record: None,
                slots: Vec::new(),
                destroyed: false,
                regenerate: false,
                epoch: 0,
                delete_pending: Vec::new(),
                committed: CommittedId::Untouched,
                deleted: false,
                load_failed: false,
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding this lock with the state half
        // updated; a poisoned lock still holds consistent data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The time of this request, in ms since the Unix epoch.
    pub(crate) fn now_ms(&self) -> u64 {
        *self.now_ms.get_or_init(|| self.layer.clock.now_ms())
    }

    /// Whether any extractor asked for the session in this request.
    pub(crate) fn was_loaded(&self) -> bool {
        self.loaded.initialized()
    }

    /// Loads the session record once per request.
    pub(crate) async fn ensure_loaded(&self) -> Result<(), SessionRejection> {
        let result = self.loaded.get_or_init(|| self.load()).await;
        match result {
            Ok(()) => Ok(()),
            Err(LoadFailure::Unavailable(err)) => match self.layer.store_down {
                StoreDownPolicy::FailClosed { retry_after } => {
                    Err(SessionRejection::StoreUnavailable {
                        retry_after,
                        source: StoreError::unavailable(SharedError(Arc::clone(err))),
                    })
                }
                // Fail open: the request continues as anonymous (load() left no session).
                StoreDownPolicy::FailOpen => {
                    self.lock().load_failed = true;
                    Ok(())
                }
            },
            Err(LoadFailure::Failed(err)) => Err(SessionRejection::StoreFailed(
                StoreError::backend(SharedError(Arc::clone(err))),
            )),
        }
    }

    async fn load(&self) -> Result<(), LoadFailure> {
        let found = match &self.cookie {
            CookieState::Present(id) => self.load_live(id).await?,
            CookieState::Several(ids) => self.load_one_of(ids).await?,
            CookieState::Absent | CookieState::Malformed => None,
            CookieState::TooMany => {
                tracing::warn!(
                    "more than {MAX_COOKIE_IDS} session ids under the session cookie name; serving the request as anonymous"
                );
                None
            }
        };
        if let Some((id, key, record)) = found {
            let mut state = self.lock();
            state.current = Some(Current {
                id,
                key,
                created_at_ms: record.created_at_ms,
                last_seen_ms: record.last_seen_ms,
                expires_at_ms: record.expires_at_ms,
            });
            state.record = Some(record);
        }
        Ok(())
    }

    /// Several ids under our cookie name (a sibling subdomain's `Domain=`
    /// cookie, a stale `Path`): ids that name no live session are ignored;
    /// when more than one does, the request cannot know which is the
    /// client's own, so it is served as anonymous and a write goes to a
    /// fresh id.
    async fn load_one_of(
        &self,
        ids: &[RawId],
    ) -> Result<Option<(RawId, SessionKey, Record)>, LoadFailure> {
        let mut live = Vec::new();
        for id in ids {
            if let Some(found) = self.load_live(id).await? {
                live.push(found);
            }
        }
        if live.len() > 1 {
            let hashes: Vec<String> = live
                .iter()
                .map(|(id, ..)| id.log_hash(&self.layer.log_secret))
                .collect();
            tracing::warn!(
                sessions = ?hashes,
                "several live sessions under the session cookie name; serving the request as anonymous (a __Host- cookie name prevents this)"
            );
            return Ok(None);
        }
        Ok(live.pop())
    }

    /// The record of `id` when it names a live (stored, unexpired) session.
    async fn load_live(
        &self,
        id: &RawId,
    ) -> Result<Option<(RawId, SessionKey, Record)>, LoadFailure> {
        let key = id.key();
        let span = tracing::debug_span!(
            "session_load",
            session = tracing::field::Empty,
            latency_us = tracing::field::Empty
        );
        let loaded = timed(&span, id, &self.layer, self.layer.store.load(&key)).await;
        let record = match loaded {
            Ok(record) => record,
            Err(err) => {
                tracing::warn!(parent: &span, error = %ErrorChain(&err), "session store failed on load");
                let err = Arc::new(err);
                return Err(match *err {
                    StoreError::Unavailable(_) => LoadFailure::Unavailable(err),
                    _ => LoadFailure::Failed(err),
                });
            }
        };
        let Some(record) = record else {
            return Ok(None);
        };
        let now = self.now_ms();
        let deadline = self
            .layer
            .session_deadline(record.created_at_ms, record.last_seen_ms)
            .unwrap_or(u64::MAX)
            .min(record.expires_at_ms);
        if deadline <= now {
            tracing::debug!(parent: &span, "session expired");
            return Ok(None);
        }
        Ok(Some((id.clone(), key, record)))
    }

    /// Takes the value of `T` out of the request state: the one a previous
    /// extractor handed back, or a fresh decode of the stored namespace.
    pub(crate) fn check_out<T: SessionData + Default>(&self) -> Result<(T, u64), SessionRejection> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let index = state.slot_index::<T>()?;
        let slot = &mut state.slots[index];
        if slot.checked_out {
            return Err(SessionRejection::AlreadyExtracted {
                type_name: std::any::type_name::<T>(),
            });
        }
        let value = if let Some(value) = slot.value.take() {
            *value
                .into_any()
                .downcast::<T>()
                .expect("slot type is checked by slot_index")
        } else {
            let (value, base) = decode_slot::<T>(state.record.as_ref(), &self.layer)?;
            state.slots[index].base = base;
            value
        };
        state.slots[index].checked_out = true;
        Ok((value, state.epoch))
    }

    /// Hands a value back when its `Session<T>` is dropped.
    pub(crate) fn check_in<T: SessionData + Default>(&self, value: T, dirty: bool, epoch: u64) {
        let mut state = self.lock();
        let current_epoch = state.epoch;
        let Some(slot) = state
            .slots
            .iter_mut()
            .find(|s| s.type_id == TypeId::of::<T>())
        else {
            return;
        };
        if epoch != current_epoch {
            // Cleared while this value was out: the value is stale. Only
            // release a slot that this value still holds.
            return;
        }
        slot.checked_out = false;
        slot.dirty |= dirty;
        // A clean value can be decoded again from the record, unless its
        // baseline was computed in this request (an `update` commit, a
        // migration or a reset): then the record is stale, so keep the value.
        if slot.dirty || matches!(slot.base, Base::Owned { .. }) {
            slot.value = Some(Box::new(Holder(value)));
        }
    }
}

/// Decodes `T` from the loaded record and applies the layer's policies.
pub(crate) fn decode_slot<T: SessionData + Default>(
    record: Option<&Record>,
    layer: &LayerInner,
) -> Result<(T, Base), SessionRejection> {
    let Some((index, ns)) = record.and_then(|r| {
        r.namespaces
            .iter()
            .enumerate()
            .find(|(_, ns)| ns.name == T::NAMESPACE)
    }) else {
        return Ok((T::default(), Base::Absent));
    };
    // A baseline computed here: the stored bytes are not at this version
    // (migrated) or not readable (reset), so a write replaces them whole.
    let replacing = |fields: FieldMap| Base::Owned {
        ns: NamespaceRecord {
            name: ns.name.clone(),
            version: T::VERSION,
            revision: ns.revision,
            fields,
        },
        replace: true,
    };
    let unencodable = |source| SessionRejection::Undecodable {
        namespace: T::NAMESPACE,
        source: DecodeError::Field { field: "", source },
    };
    let reset = |err: &DecodeError| -> Result<(T, Base), SessionRejection> {
        tracing::warn!(namespace = T::NAMESPACE, error = %ErrorChain(err), "stored session namespace reset to its default");
        let fields = default_fields::<T>().map_err(unencodable)?.clone();
        Ok((T::default(), replacing(fields)))
    };
    match T::decode_fields(ns.version, &ns.fields).map_err(withhold_values::<T>) {
        Ok(value) if ns.version == T::VERSION => Ok((value, Base::InRecord(index))),
        Ok(value) => {
            // Migrated in memory; the baseline is the migrated value, so only
            // a real change writes (at the new version, replacing the old fields).
            let fields = value.encode_fields().map_err(unencodable)?;
            Ok((value, replacing(fields)))
        }
        Err(err @ DecodeError::NewerVersion { .. }) => match layer.newer_version {
            NewerVersionPolicy::Reject => Err(SessionRejection::NewerVersion {
                namespace: T::NAMESPACE,
                source: err,
            }),
            NewerVersionPolicy::Reset => reset(&err),
        },
        Err(err) => match layer.decode_failure {
            DecodeFailurePolicy::Strict => Err(SessionRejection::Undecodable {
                namespace: T::NAMESPACE,
                source: err,
            }),
            DecodeFailurePolicy::Reset => reset(&err),
        },
    }
}

/// A codec's message can quote the stored bytes it failed on. It is kept
/// only for fields this schema knows and does not mark `sensitive`; for the
/// others (sensitive ones, and fields of older versions whose markings this
/// code cannot see) the value is withheld, so it never reaches a log.
fn withhold_values<T: SessionData>(err: DecodeError) -> DecodeError {
    match err {
        DecodeError::Field { field, .. }
            if !T::FIELDS
                .iter()
                .any(|f| f.name() == field && !f.sensitive()) =>
        {
            DecodeError::Field {
                field,
                source: CodecError::decode(Withheld),
            }
        }
        other => other,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the stored value does not decode (detail withheld: the field may be sensitive)")]
struct Withheld;

impl State {
    /// The slot of `T`, created on first use. Two types claiming one
    /// namespace are refused rather than overwriting each other.
    fn slot_index<T: SessionData + Default>(&mut self) -> Result<usize, SessionRejection> {
        if let Some(index) = self.slots.iter().position(|s| s.namespace == T::NAMESPACE) {
            let slot = &self.slots[index];
            if slot.type_id != TypeId::of::<T>() {
                return Err(SessionRejection::NamespaceClash {
                    namespace: T::NAMESPACE,
                    first: slot.type_name,
                    second: std::any::type_name::<T>(),
                });
            }
            return Ok(index);
        }
        self.slots.push(Slot {
            namespace: T::NAMESPACE,
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            base: Base::Absent,
            value: None,
            dirty: false,
            checked_out: false,
        });
        Ok(self.slots.len() - 1)
    }

    /// The stored fields behind a slot's baseline, and whether a write must
    /// replace the namespace whole.
    pub(crate) fn base_fields<'a>(&'a self, base: &'a Base) -> (Option<&'a FieldMap>, bool, u64) {
        match base {
            Base::Absent => (None, false, 0),
            Base::InRecord(i) => {
                let ns = &self
                    .record
                    .as_ref()
                    .expect("InRecord implies a record")
                    .namespaces[*i];
                (Some(&ns.fields), false, ns.revision)
            }
            Base::Owned { ns, replace } => (Some(&ns.fields), *replace, ns.revision),
        }
    }

    pub(crate) fn slot_ref<T: SessionData>(&self) -> Option<&Slot> {
        self.slots.iter().find(|s| s.type_id == TypeId::of::<T>())
    }

    pub(crate) fn slot_of<T: SessionData>(&mut self) -> Option<&mut Slot> {
        self.slots
            .iter_mut()
            .find(|s| s.type_id == TypeId::of::<T>())
    }

    /// An `update` committed under `id` at `now`: the request's session is
    /// now that one (created, moved to a fresh id, or the same one with a
    /// new deadline).
    pub(crate) fn record_commit(
        &mut self,
        id: RawId,
        key: SessionKey,
        mode: SaveMode,
        created_at_ms: u64,
        now_ms: u64,
        expires_at_ms: u64,
    ) {
        let fresh = mode != SaveMode::Update;
        if fresh {
            // A fresh id satisfies any `regenerate_id()` asked for so far.
            // (The loaded record stays the baseline of the other
            // namespaces: a rename moves their data unchanged.)
            self.regenerate = false;
            self.committed = CommittedId::Fresh;
        } else if self.committed == CommittedId::Untouched {
            self.committed = CommittedId::Same;
        }
        self.current = Some(Current {
            id,
            key,
            created_at_ms,
            last_seen_ms: now_ms,
            expires_at_ms,
        });
    }

    /// An `update` emptied the session and the store deleted it: every
    /// namespace is absent now, whatever its baseline was.
    pub(crate) fn record_deleted(&mut self) {
        self.record = None;
        self.current = None;
        self.deleted = true;
        for slot in &mut self.slots {
            slot.base = Base::Absent;
        }
    }

    /// Drops the loaded record; baselines that pointed into it become
    /// absent (the record is gone or about to change under them).
    pub(crate) fn forget_record(&mut self) {
        self.record = None;
        for slot in &mut self.slots {
            if matches!(slot.base, Base::InRecord(_)) {
                slot.base = Base::Absent;
            }
        }
    }

    /// `clear()`: every namespace reads as `Default` from now on; values
    /// extracted before are discarded; the stored record is deleted at the
    /// end of the request.
    pub(crate) fn clear(&mut self) {
        self.epoch += 1;
        if let Some(current) = self.current.take() {
            self.delete_pending.push((current.id, current.key));
        }
        self.record = None;
        for slot in &mut self.slots {
            slot.base = Base::Absent;
            slot.value = None;
            slot.dirty = false;
            slot.checked_out = false;
        }
    }
}

/// An `Arc`ed store error that can be a source again.
#[derive(Debug)]
struct SharedError(Arc<StoreError>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&ErrorChain(&*self.0), f)
    }
}

impl std::error::Error for SharedError {}

/// Runs one store operation inside `span`, recording the hashed id and the
/// latency. With no subscriber interested in the span, it costs neither a
/// hash nor a clock read.
pub(crate) async fn timed<F: std::future::Future>(
    span: &tracing::Span,
    id: &RawId,
    layer: &LayerInner,
    operation: F,
) -> F::Output {
    if span.is_disabled() {
        return operation.await;
    }
    span.record(
        "session",
        tracing::field::display(id.log_hash(&layer.log_secret)),
    );
    let started = Instant::now();
    let output = operation.instrument(span.clone()).await;
    span.record(
        "latency_us",
        u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    );
    output
}

/// A random delay in `[d/2, d]`, so that conflicting writers spread out.
pub(crate) fn jitter(d: std::time::Duration) -> std::time::Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    d / 2 + d / 2 * u32::from(byte[0]) / 255
}
