//! The mutable state of one request's session, changed only through
//! methods named for the events of a request.

use std::any::TypeId;

use super::baseline::Baseline;
use super::decode::{decode_namespace, shared_namespace};
use super::diff::{Diff, Parked, ParkedValue, Rebase};
use super::held::Held;
use crate::codec::CodecError;
use crate::data::{FieldMap, SessionData};
use crate::error::{SessionRejection, UpdateError};
use crate::id::{RawId, SessionKey};
use crate::settings::Settings;
use crate::store::{NamespaceChange, NamespaceOp, NamespaceRecord, Record, SaveMode};

/// In debug builds: a value handed back without a mutable borrow whose
/// encoding differs from its baseline was changed where the runtime does not
/// look (through `&T`: a `Cell`, `RefCell` or `Mutex` field), or holds a
/// type that does not encode deterministically. Either way the change is
/// not saved; say so instead of dropping it silently.
#[cfg(debug_assertions)]
fn warn_if_changed_unseen<T: SessionData>(value: &T, baseline: &Baseline) {
    if let Ok(diff) = super::diff::diff(value, baseline.view(), false)
        && diff.op.is_some()
    {
        tracing::warn!(target: crate::LOG_TARGET, namespace = T::NAMESPACE,
            "a session value changed without a mutable borrow, and the change is not saved: \
             borrow it mutably (DerefMut) or change it inside update(); a field type whose \
             encoding is not deterministic (HashMap, HashSet) shows up here too \
             (this check runs in debug builds only)"
        );
    }
}

/// The session as it exists in the store.
#[derive(Clone)]
pub(crate) struct StoredSession {
    pub(crate) id: RawId,
    pub(crate) key: SessionKey,
    pub(crate) created_at_ms: u64,
    /// The last write or refresh: the idle timeout counts from here.
    pub(crate) last_seen_ms: u64,
    /// The store deadline.
    pub(crate) expires_at_ms: u64,
}

/// What `update` commits did to the session's id.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum CommittedId {
    /// No `update` committed anything.
    Untouched,
    /// An `update` created the session or moved it to a fresh id: the
    /// browser learns the id from this response.
    Fresh,
    /// An `update` wrote under the id the client sent: only the deadline
    /// moved, so the cookie is re-sent (for its `Max-Age`) only after
    /// checking that the id still names the session.
    Same,
}

/// One namespace extracted in this request.
struct Slot {
    namespace: &'static str,
    type_id: TypeId,
    type_name: &'static str,
    baseline: Baseline,
    /// The value a dropped `Session<T>` handed back, when it must be kept
    /// (changed, or its baseline is not the loaded record).
    parked: Option<Box<dyn Parked>>,
    /// Borrowed mutably since its last commit: diffed at the end.
    changed: bool,
    /// A `Session<T>` holds the value now.
    checked_out: bool,
    /// A failed `update` left its uncommitted result in the value on
    /// purpose: not a change made behind the runtime's back.
    kept_uncommitted: bool,
}

/// The request's session state.
///
/// Invariants: a slot's `Baseline::Loaded` shares the namespaces of the
/// record it was decoded from; `stored` is `None` whenever the store holds
/// nothing this request may write to (never loaded, cleared, emptied).
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent events of a request, each read in one place of the write-back"
)]
pub(crate) struct State {
    stored: Option<StoredSession>,
    record: Option<Record>,
    slots: Vec<Slot>,
    destroy_requested: bool,
    regenerate_requested: bool,
    /// Bumped by `clear()`: values extracted before it are stale.
    epoch: u64,
    /// Sessions to delete at the end of the request (`clear()`).
    to_delete: Vec<(RawId, SessionKey)>,
    /// Live sessions named by several cookies under our name: none is
    /// this request's, but `destroy()` and `clear()` end them all.
    ambiguous: Vec<(RawId, SessionKey)>,
    committed: CommittedId,
    /// An `update` emptied the session, and the store deleted it.
    emptied: bool,
    /// The load failed and the layer failed open: the client's session may
    /// still exist, so nothing may be created in its place.
    load_failed: bool,
}

/// What an `update` commit needs, read under the lock.
pub(crate) struct CommitPlan {
    pub(crate) diff: Diff,
    pub(crate) revision: u64,
    pub(crate) stored: Option<StoredSession>,
    pub(crate) load_failed: bool,
}

/// The request state at its end: what the write-back decides from.
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent events of a request, each read in one place of the write-back"
)]
pub(crate) struct Finish {
    pub(crate) destroy: bool,
    pub(crate) to_delete: Vec<(RawId, SessionKey)>,
    pub(crate) stored: Option<StoredSession>,
    pub(crate) committed: CommittedId,
    /// `regenerate_id()` was called or a `rotate_id` field changed.
    pub(crate) rotate: bool,
    pub(crate) emptied: bool,
    pub(crate) load_failed: bool,
    /// One change per namespace that needs writing...
    pub(crate) changes: Vec<NamespaceChange>,
    /// ...and, at the same index, how to rebase it.
    pub(crate) rebase: Vec<Rebase>,
}

impl State {
    pub(crate) fn new() -> Self {
        Self {
            stored: None,
            record: None,
            slots: Vec::new(),
            destroy_requested: false,
            regenerate_requested: false,
            epoch: 0,
            to_delete: Vec::new(),
            ambiguous: Vec::new(),
            committed: CommittedId::Untouched,
            emptied: false,
            load_failed: false,
        }
    }

    pub(crate) fn stored(&self) -> Option<&StoredSession> {
        self.stored.as_ref()
    }

    /// The session an `update` moved to a fresh id, unless `destroy()` was
    /// asked for: the browser must learn that id whatever else happens.
    pub(crate) fn fresh_id(&self) -> Option<&StoredSession> {
        (self.committed == CommittedId::Fresh && !self.destroy_requested)
            .then_some(self.stored.as_ref())
            .flatten()
    }

    /// The session an `update` committed to (under the same id or a fresh
    /// one), unless `destroy()` was asked for.
    pub(crate) fn committed_session(&self) -> Option<&StoredSession> {
        (self.committed != CommittedId::Untouched && !self.destroy_requested)
            .then_some(self.stored.as_ref())
            .flatten()
    }

    /// The load found a live session.
    pub(crate) fn record_loaded(&mut self, stored: StoredSession, record: Record) {
        self.stored = Some(stored);
        self.record = Some(record);
    }

    /// The cookies named several live sessions: the request is anonymous.
    pub(crate) fn record_ambiguous(&mut self, sessions: Vec<(RawId, SessionKey)>) {
        self.ambiguous = sessions;
    }

    /// The load failed and the layer fails open.
    pub(crate) fn record_load_failed(&mut self) {
        self.load_failed = true;
    }

    pub(crate) fn request_regenerate(&mut self) {
        self.regenerate_requested = true;
    }

    /// Whether `destroy()` was called in this request.
    pub(crate) fn destroy_requested(&self) -> bool {
        self.destroy_requested
    }

    pub(crate) fn request_destroy(&mut self) {
        self.destroy_requested = true;
    }

    /// `clear()`: every namespace reads as `Default` from now on; values
    /// extracted before are discarded; the stored session is deleted at the
    /// end of the request.
    pub(crate) fn request_clear(&mut self) {
        self.epoch += 1;
        if let Some(stored) = self.stored.take() {
            self.to_delete.push((stored.id, stored.key));
        }
        self.to_delete.append(&mut self.ambiguous);
        self.record = None;
        for slot in &mut self.slots {
            slot.baseline = Baseline::Absent;
            slot.parked = None;
            slot.changed = false;
            slot.checked_out = false;
        }
    }

    /// Takes the value of `T` out of the state: the one a previous
    /// extractor handed back, or a fresh decode of the stored namespace.
    pub(crate) fn check_out<T: SessionData>(
        &mut self,
        settings: &Settings,
    ) -> Result<(Held<T>, u64), SessionRejection> {
        let index = self.slot_index::<T>()?;
        let slot = &mut self.slots[index];
        if slot.checked_out {
            return Err(SessionRejection::AlreadyExtracted {
                type_name: std::any::type_name::<T>(),
            });
        }
        let value = if let Some(parked) = slot.parked.take() {
            Held::Owned(
                *parked
                    .into_any()
                    .downcast::<T>()
                    .expect("a slot holds values of its own type"),
            )
        } else if let Some((value, baseline)) = shared_namespace::<T>(self.record.as_ref()) {
            self.slots[index].baseline = baseline;
            value
        } else {
            let (value, baseline) = decode_namespace::<T>(self.record.as_ref(), settings)?;
            self.slots[index].baseline = baseline;
            Held::Owned(value)
        };
        self.slots[index].checked_out = true;
        Ok((value, self.epoch))
    }

    /// A copy of `T` as this request sees it now, without taking it out:
    /// the value a dropped `Session<T>` handed back, the last committed or
    /// loaded state while one holds it, or a fresh decode of the stored
    /// namespace.
    pub(crate) fn snapshot<T: SessionData>(
        &mut self,
        settings: &Settings,
    ) -> Result<T, SessionRejection> {
        let index = self.slot_index::<T>()?;
        let slot = &self.slots[index];
        let undecodable = |source| SessionRejection::Undecodable {
            namespace: T::NAMESPACE,
            source,
        };
        let unencodable =
            |source| undecodable(crate::data::DecodeError::Field { field: "", source });
        if let Some(parked) = &slot.parked {
            let value = parked
                .as_any()
                .downcast_ref::<T>()
                .expect("a slot holds values of its own type");
            let fields = value.encode_fields().map_err(unencodable)?;
            return T::decode_fields(T::VERSION, &fields)
                .map_err(|e| undecodable(super::decode::redact_values::<T>(e)));
        }
        let untouched =
            !slot.checked_out && !slot.changed && matches!(slot.baseline, Baseline::Absent);
        if untouched {
            return decode_namespace::<T>(self.record.as_ref(), settings).map(|(value, _)| value);
        }
        match slot.baseline.view().fields {
            Some(fields) => T::decode_fields(T::VERSION, fields)
                .map_err(|e| undecodable(super::decode::redact_values::<T>(e))),
            None => Ok(T::default()),
        }
    }

    /// A dropped `Session<T>` hands its value back.
    ///
    /// `untouched`: the value was never borrowed mutably, not even by an
    /// `update` (whose result may not be stored: it failed, found nothing
    /// to write, or was cancelled), so it is what the loaded bytes decode
    /// to, and may become their shared copy.
    pub(crate) fn check_in<T: SessionData>(
        &mut self,
        value: Held<T>,
        changed: bool,
        untouched: bool,
        epoch: u64,
    ) {
        if epoch != self.epoch {
            // Cleared while this value was out: the value is stale.
            return;
        }
        let Some(slot) = self.slot_mut::<T>() else {
            return;
        };
        slot.checked_out = false;
        slot.changed |= changed;
        #[cfg(debug_assertions)]
        if !slot.changed && !slot.kept_uncommitted {
            warn_if_changed_unseen(value.get(), &slot.baseline);
        }
        // A value equal to its loaded baseline can be decoded again; one
        // whose baseline was computed here (an `update` commit, a migration,
        // a reset) or is absent (an `update` that set it back to its
        // `Default` removed it, while the loaded record still holds it)
        // cannot, so it is kept.
        if slot.changed || !slot.baseline.is_loaded() {
            slot.parked = Some(Box::new(ParkedValue(value.into_owned())));
        } else if let (Held::Owned(value), Baseline::Loaded { namespaces, index }) =
            (value, &slot.baseline)
        {
            // Decoded from the loaded record at the current version (that is
            // what a loaded baseline means) and never borrowed mutably: a
            // `#[session(cached)]` schema keeps it as the record's decoded
            // copy, which a store that keeps records in memory shares with
            // the next requests. Other schemas drop it here.
            if untouched && !slot.kept_uncommitted {
                value.__share(&namespaces[*index].fields);
            }
        }
    }

    /// The slot of `T`, created on first use. Two types claiming one
    /// namespace are refused rather than overwriting each other.
    fn slot_index<T: SessionData>(&mut self) -> Result<usize, SessionRejection> {
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
            baseline: Baseline::Absent,
            parked: None,
            changed: false,
            checked_out: false,
            kept_uncommitted: false,
        });
        Ok(self.slots.len() - 1)
    }

    fn slot<T: SessionData>(&self) -> Option<&Slot> {
        self.slots.iter().find(|s| s.type_id == TypeId::of::<T>())
    }

    fn slot_mut<T: SessionData>(&mut self) -> Option<&mut Slot> {
        self.slots
            .iter_mut()
            .find(|s| s.type_id == TypeId::of::<T>())
    }

    /// What an `update` of `value` would commit: its diff against the
    /// baseline (keeping the full encoding for the next baseline), the
    /// revision a guarded write expects, and where it would be written.
    pub(crate) fn plan_commit<T: SessionData>(
        &self,
        value: &T,
        epoch: u64,
    ) -> Result<CommitPlan, UpdateError> {
        if self.destroy_requested || epoch != self.epoch {
            return Err(UpdateError::Destroyed);
        }
        let baseline = self
            .slot::<T>()
            .map_or(Baseline::Absent.view(), |slot| slot.baseline.view());
        let diff = super::diff::diff(value, baseline, true)?;
        Ok(CommitPlan {
            diff,
            revision: baseline.revision,
            stored: self.stored.clone(),
            load_failed: self.load_failed,
        })
    }

    /// An `update` committed `fields` (`None`: removed the namespace) under
    /// `id` at `now`: they are the new baseline, and the request's session
    /// is now that one (created, moved to a fresh id, or the same one with a
    /// new deadline).
    pub(crate) fn record_commit<T: SessionData>(
        &mut self,
        fields: Option<(FieldMap, u64)>,
        stored: StoredSession,
        mode: SaveMode,
    ) {
        if let Some(slot) = self.slot_mut::<T>() {
            slot.baseline = match fields {
                None => Baseline::Absent,
                Some((fields, revision)) => Baseline::Computed {
                    ns: NamespaceRecord::new(T::NAMESPACE, T::VERSION, revision, fields),
                    whole: false,
                },
            };
            slot.changed = false;
        }
        if mode == SaveMode::Update {
            if self.committed == CommittedId::Untouched {
                self.committed = CommittedId::Same;
            }
        } else {
            // A fresh id satisfies any `regenerate_id()` asked for so far.
            // (The loaded record stays the baseline of the other namespaces:
            // a rename moves their data unchanged.)
            self.regenerate_requested = false;
            self.committed = CommittedId::Fresh;
        }
        self.stored = Some(stored);
    }

    /// An `update` emptied the session and the store deleted it: every
    /// namespace is absent now, whatever its baseline was.
    pub(crate) fn record_emptied(&mut self) {
        self.record = None;
        self.stored = None;
        self.emptied = true;
        for slot in &mut self.slots {
            slot.baseline = Baseline::Absent;
        }
    }

    /// After a conflict, `update` reloaded the namespace: the stored data is
    /// its new baseline.
    pub(crate) fn record_reloaded<T: SessionData>(&mut self, baseline: Baseline) {
        if let Some(slot) = self.slot_mut::<T>() {
            slot.baseline = baseline;
        }
    }

    /// A failed `update`: whatever it changed is not written back.
    pub(crate) fn discard_changes<T: SessionData>(&mut self) {
        if let Some(slot) = self.slot_mut::<T>() {
            slot.changed = false;
            slot.kept_uncommitted = true;
        }
    }

    /// The end of the request: diffs every changed namespace and hands the
    /// write-back what it decides from. Baselines that share the loaded
    /// record are released (they become `Absent`: a later `update` then
    /// writes by compare-and-swap from revision 0, conflicts, and reloads),
    /// so that a store holding the only other reference to the record can
    /// change it in place. The stored session stays known: a `Session<T>`
    /// kept past the response still updates the client's own session.
    pub(crate) fn finish(&mut self) -> Result<Finish, (&'static str, CodecError)> {
        let mut changes = Vec::new();
        let mut rebase = Vec::new();
        let mut rotate = self.regenerate_requested;
        if !self.destroy_requested {
            for slot in &self.slots {
                let Some(value) = slot.parked.as_ref().filter(|_| slot.changed) else {
                    continue;
                };
                let baseline = slot.baseline.view();
                let diff = value.diff(baseline).map_err(|err| (slot.namespace, err))?;
                let Some(op) = diff.op else {
                    continue;
                };
                rotate |= diff.rotate;
                // A whole-namespace write or a removal is guarded by the
                // baseline's revision (0: absent); a patch is last-writer-wins
                // per field, guarded by the store against an absent namespace
                // or another version.
                let expected = (!matches!(op, NamespaceOp::Patch(_))).then_some(baseline.revision);
                changes.push(NamespaceChange::new(
                    slot.namespace,
                    diff.version,
                    expected,
                    op,
                ));
                rebase.push(diff.rebase);
            }
        }
        for slot in &mut self.slots {
            slot.changed = false;
            if matches!(slot.baseline, Baseline::Loaded { .. }) {
                slot.baseline = Baseline::Absent;
            }
        }
        self.record = None;
        let mut to_delete = std::mem::take(&mut self.to_delete);
        if self.destroy_requested {
            to_delete.append(&mut self.ambiguous);
        }
        Ok(Finish {
            destroy: self.destroy_requested,
            to_delete,
            stored: self.stored.clone(),
            committed: self.committed,
            rotate,
            emptied: self.emptied,
            load_failed: self.load_failed,
            changes,
            rebase,
        })
    }
}
