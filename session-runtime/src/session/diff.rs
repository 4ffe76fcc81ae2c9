//! Field-level diffs: what one namespace's value needs written, and how a
//! write that met a concurrent change is re-planned onto the stored data.

use std::any::Any;

use super::baseline::{BaselineView, default_fields};
use super::decode::redact_values;
use crate::codec::CodecError;
use crate::data::{FieldMap, SessionData};
use crate::error::ErrorChain;
use crate::settings::{DecodeFailurePolicy, NewerVersionPolicy};
use crate::store::{NamespaceChange, NamespaceOp, Record};

/// The change one namespace needs.
pub(crate) struct Diff {
    pub(crate) op: Option<NamespaceOp>,
    /// The version the change names: the schema's for a write, the stored
    /// one for a removal (it removes what is stored, whatever its version).
    pub(crate) version: u32,
    /// A `rotate_id` field changed.
    pub(crate) rotate: bool,
    /// The full current encoding, when asked for: the new baseline once committed.
    pub(crate) current: Option<FieldMap>,
    /// How to re-plan the change after a conflict.
    pub(crate) rebase: Rebase,
}

/// Decodes stored fields of any version and re-encodes them at the current
/// one (the `migrate_from` chain), with the error as a loggable text.
pub(crate) type Migrator = fn(u32, &FieldMap) -> Result<FieldMap, String>;

fn migrate_fields<T: SessionData>(version: u32, fields: &FieldMap) -> Result<FieldMap, String> {
    let value = T::decode_fields(version, fields)
        .map_err(|e| ErrorChain(&redact_values::<T>(e)).to_string())?;
    value
        .encode_fields()
        .map_err(|e| ErrorChain(&e).to_string())
}

/// A value handed back by a dropped `Session<T>`, with its type erased so
/// that the write-back can diff it.
pub(crate) trait Parked: Send {
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn as_any(&self) -> &dyn Any;
    fn diff(&self, baseline: BaselineView<'_>) -> Result<Diff, CodecError>;
}

pub(crate) struct ParkedValue<T>(pub(crate) T);

impl<T: SessionData> Parked for ParkedValue<T> {
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        Box::new(self.0)
    }

    fn as_any(&self) -> &dyn Any {
        &self.0
    }

    fn diff(&self, baseline: BaselineView<'_>) -> Result<Diff, CodecError> {
        diff(&self.0, baseline, false)
    }
}

/// Field-level diff of `value` against its baseline. A value equal to
/// `Default` is not stored: it becomes a removal (or nothing, when already
/// absent). `keep_current` keeps the full encoding (the next baseline).
pub(crate) fn diff<T: SessionData>(
    value: &T,
    baseline: BaselineView<'_>,
    keep_current: bool,
) -> Result<Diff, CodecError> {
    let defaults = default_fields::<T>()?;
    if !keep_current
        && !T::COMPARES_BY_VALUE
        && let Some(stored) = baseline.fields.filter(|_| !baseline.whole)
    {
        return patch_diff(value, stored, defaults, baseline.version);
    }
    let mut current = value.encode_fields()?;
    let reference = baseline.fields.unwrap_or(defaults);
    // A field equal by value to its reference (a hash map or set, whose
    // bytes follow iteration order) keeps the reference's bytes: unchanged.
    for (index, info) in T::FIELDS.iter().enumerate() {
        if !T::COMPARES_BY_VALUE {
            break;
        }
        if let Some(old) = reference.get(info.name())
            && current.get(info.name()) != Some(old)
            && value.field_equals_stored(index, old)
        {
            current.insert(info.name(), old.to_vec());
        }
    }
    let differs = |name: &str, bytes: &[u8]| reference.get(name) != Some(bytes);
    let mut rebase = Rebase {
        ours: None,
        defaults,
        version: T::VERSION,
        migrate: migrate_fields::<T>,
    };
    if !current.iter().any(|(name, bytes)| differs(name, bytes)) {
        return Ok(Diff {
            op: None,
            version: T::VERSION,
            rotate: false,
            current: keep_current.then_some(current),
            rebase,
        });
    }
    let rotate = T::FIELDS
        .iter()
        .any(|f| f.rotate_id() && current.get(f.name()) != reference.get(f.name()));
    let kept = keep_current.then(|| current.clone());
    let mut version = T::VERSION;
    let op = if current == *defaults {
        version = baseline.version.unwrap_or(T::VERSION);
        // Absent and default was handled above (nothing differs).
        rebase.ours = Some(current.subset(differs));
        NamespaceOp::Remove
    } else if baseline.fields.is_none() || baseline.whole {
        rebase.ours = Some(current.subset(differs));
        NamespaceOp::Replace(current)
    } else {
        // The patch itself holds this request's fields (see `Rebase::ours`).
        current.retain(differs);
        NamespaceOp::Patch(current)
    };
    Ok(Diff {
        op: Some(op),
        version,
        rotate,
        current: kept,
        rebase,
    })
}

/// [`diff`] of a value against stored fields it may patch (a baseline
/// that is present and not to be replaced whole), when the full encoding
/// is not needed and bytes decide equality: the same result in one pass,
/// keeping only the changed fields' bytes.
fn patch_diff<T: SessionData>(
    value: &T,
    stored: &FieldMap,
    defaults: &'static FieldMap,
    stored_version: Option<u32>,
) -> Result<Diff, CodecError> {
    let mut changed = FieldMap::new();
    let mut rotate = false;
    // Whether every field encodes as the schema's `Default` does (both
    // encodings list `T::FIELDS` in order, so this is `current == defaults`).
    let mut all_default = defaults.len() == T::FIELDS.len();
    // Each field is encoded into one buffer; only a changed one is copied.
    let mut bytes = Vec::with_capacity(128);
    for (index, info) in T::FIELDS.iter().enumerate() {
        bytes.clear();
        value.__encode_field_into(index, &mut bytes)?;
        debug_assert!(
            value.encode_field(index).is_ok_and(|whole| whole == bytes),
            "encode_into and encode disagree on field {index} of {}",
            T::NAMESPACE
        );
        let name = info.name();
        all_default = all_default && defaults.get(name) == Some(bytes.as_slice());
        if stored.get(name) != Some(bytes.as_slice()) {
            rotate |= info.rotate_id();
            changed.push_new(name, bytes.clone());
        }
    }
    let mut rebase = Rebase {
        ours: None,
        defaults,
        version: T::VERSION,
        migrate: migrate_fields::<T>,
    };
    if changed.is_empty() {
        return Ok(Diff {
            op: None,
            version: T::VERSION,
            rotate: false,
            current: None,
            rebase,
        });
    }
    let (op, version) = if all_default {
        rebase.ours = Some(changed);
        (NamespaceOp::Remove, stored_version.unwrap_or(T::VERSION))
    } else {
        // The patch itself holds this request's fields (see `Rebase::ours`).
        (NamespaceOp::Patch(changed), T::VERSION)
    };
    Ok(Diff {
        op: Some(op),
        version,
        rotate,
        current: None,
        rebase,
    })
}

/// What a conflicting write needs to be re-planned onto the stored data.
#[derive(Clone)]
pub(crate) struct Rebase {
    /// The fields this request changed, with their new bytes (`None` for a
    /// patch until the first conflict: the patch itself holds them).
    ours: Option<FieldMap>,
    /// The encoding of the schema's `Default`.
    defaults: &'static FieldMap,
    /// The schema's version.
    version: u32,
    /// Reads stored fields of an older version at the current one.
    migrate: Migrator,
}

/// Why a rebase cannot be done under the layer's policies.
pub(crate) enum Refusal {
    /// Newer code wrote the namespace meanwhile ([`NewerVersionPolicy::Reject`]).
    NewerData {
        namespace: &'static str,
        version: u32,
    },
    /// The stored data no longer decodes ([`DecodeFailurePolicy::Strict`]).
    Unreadable {
        namespace: &'static str,
        message: String,
    },
}

impl Rebase {
    fn ours(&mut self, change: &NamespaceChange) -> FieldMap {
        if self.ours.is_none()
            && let NamespaceOp::Patch(fields) = &change.op
        {
            self.ours = Some(fields.clone());
        }
        self.ours.clone().unwrap_or_default()
    }

    /// Whether `fields` read back as the schema's `Default`.
    fn is_default(&self, fields: &FieldMap) -> bool {
        self.defaults
            .iter()
            .all(|(name, bytes)| fields.get(name) == Some(bytes))
    }

    /// Re-plans `change`: this request's changed fields on top of the
    /// namespace as stored in `record` (migrated first when it is older).
    /// Data written by newer code, or that no longer decodes, is replaced
    /// only where the layer's policies say reading it resets it. A result
    /// equal to `Default` becomes a guarded removal. `Ok(false)` when
    /// nothing is left to do.
    pub(crate) fn replan(
        &mut self,
        change: &mut NamespaceChange,
        record: &Record,
        policies: (DecodeFailurePolicy, NewerVersionPolicy),
    ) -> Result<bool, Refusal> {
        let version = self.version;
        let namespace = change.namespace;
        let ours = self.ours(change);
        let Some(stored) = record.namespace(namespace) else {
            let mut whole = self.defaults.clone();
            whole.merge(&ours);
            if self.is_default(&whole) {
                return Ok(false);
            }
            *change =
                NamespaceChange::new(namespace, version, Some(0), NamespaceOp::Replace(whole));
            return Ok(true);
        };
        let (decode_failure, newer_version) = policies;
        let mut whole = match stored.version.cmp(&version) {
            std::cmp::Ordering::Equal => stored.fields.clone(),
            std::cmp::Ordering::Greater => {
                if newer_version == NewerVersionPolicy::Reject {
                    return Err(Refusal::NewerData {
                        namespace,
                        version: stored.version,
                    });
                }
                tracing::warn!(target: crate::LOG_TARGET, namespace,
                    "namespace of a newer version replaced after a conflict, as the reset policy says"
                );
                self.defaults.clone()
            }
            std::cmp::Ordering::Less => match (self.migrate)(stored.version, &stored.fields) {
                Ok(migrated) => migrated,
                Err(message) if decode_failure == DecodeFailurePolicy::Strict => {
                    return Err(Refusal::Unreadable { namespace, message });
                }
                // Unreadable: this request's value replaces it, as the reset
                // policy that let it be read decided.
                Err(message) => {
                    tracing::warn!(target: crate::LOG_TARGET, namespace, error = %message, "stored namespace replaced after a conflict");
                    self.defaults.clone()
                }
            },
        };
        whole.merge(&ours);
        let revision = Some(stored.revision);
        *change = if self.is_default(&whole) {
            NamespaceChange::new(namespace, stored.version, revision, NamespaceOp::Remove)
        } else if stored.version == version {
            NamespaceChange::new(namespace, version, None, NamespaceOp::Patch(ours))
        } else {
            NamespaceChange::new(namespace, version, revision, NamespaceOp::Replace(whole))
        };
        Ok(true)
    }
}

#[cfg(test)]
mod one_pass_diff {
    //! The one-pass `patch_diff` (`keep_current = false`) gives the same op,
    //! version, rotate and rebase as the full diff (`keep_current = true`),
    //! for any value and any stored map (extra, missing, shared fields).
    use super::*;
    use crate::data::{DecodeError, FieldInfo};
    use proptest::prelude::*;

    #[derive(Default, Debug, Clone)]
    struct S {
        a: u8,
        b: Vec<u8>,
        r: u8,
    }

    impl SessionData for S {
        const NAMESPACE: &'static str = "s";
        const VERSION: u32 = 3;
        const FIELDS: &'static [FieldInfo] = &[
            FieldInfo::__new("a", false, false),
            FieldInfo::__new("b", false, false),
            FieldInfo::__new("r", false, true),
        ];
        type Codec = crate::codec::JsonCodec;
        fn encode_field(&self, index: usize) -> Result<Vec<u8>, CodecError> {
            Ok(match index {
                0 => vec![self.a],
                1 => self.b.clone(),
                2 => vec![self.r],
                _ => unreachable!(),
            })
        }
        fn decode_fields(_version: u32, fields: &FieldMap) -> Result<Self, DecodeError> {
            Ok(S {
                a: fields
                    .get("a")
                    .and_then(|v| v.first().copied())
                    .unwrap_or(0),
                b: fields.get("b").map(<[u8]>::to_vec).unwrap_or_default(),
                r: fields
                    .get("r")
                    .and_then(|v| v.first().copied())
                    .unwrap_or(0),
            })
        }
    }

    fn field() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop_oneof![
            Just(None),
            proptest::collection::vec(0u8..3, 0..2).prop_map(Some)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]
        #[test]
        fn one_pass_equals_full_diff(
            a in 0u8..2, b in proptest::collection::vec(0u8..2, 0..2), r in 0u8..2,
            sa in field(), sb in field(), sr in field(), extra in field(), order in 0usize..6,
            through_cookie in any::<bool>(), version in proptest::option::of(1u32..4),
        ) {
            let value = S { a, b, r };
            let mut items = vec![("a", sa), ("b", sb), ("r", sr), ("zz", extra)];
            items.rotate_left(order % 4);
            if order >= 4 { items.reverse(); }
            let mut stored = FieldMap::new();
            for (n, v) in items { if let Some(v) = v { stored.insert(n, v); } }
            if through_cookie {
                // the same map, every name and value a range of one shared buffer
                let mut buf = Vec::new();
                let mut ranges = Vec::new();
                for (n, v) in stored.iter() {
                    let s = buf.len(); buf.extend_from_slice(n.as_bytes()); let m = buf.len();
                    buf.extend_from_slice(v); ranges.push((s..m, m..buf.len()));
                }
                let shared: std::sync::Arc<[u8]> = buf.into();
                let mut map = FieldMap::new();
                for (n, v) in ranges { assert!(map.insert_shared(&shared, n, v)); }
                prop_assert_eq!(&map, &stored);
                stored = map;
            }
            let view = BaselineView { fields: Some(&stored), whole: false, revision: 7, version };
            let fast = diff(&value, view, false).unwrap();
            let full = diff(&value, view, true).unwrap();
            prop_assert_eq!(&fast.op, &full.op);
            prop_assert_eq!(fast.version, full.version);
            prop_assert_eq!(fast.rotate, full.rotate);
            prop_assert_eq!(&fast.rebase.ours, &full.rebase.ours);
        }
    }
}
