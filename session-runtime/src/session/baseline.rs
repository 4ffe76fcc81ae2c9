//! The baseline of a namespace: what storage holds for it as far as this
//! request knows, the reference every diff is computed against.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use crate::codec::CodecError;
use crate::data::{FieldMap, SessionData};
use crate::store::NamespaceRecord;

/// What storage holds for one namespace.
pub(crate) enum Baseline {
    /// Not stored: reads as `Default`.
    Absent,
    /// Stored at the schema's own version, as loaded.
    Loaded {
        namespaces: Arc<Vec<NamespaceRecord>>,
        index: usize,
    },
    /// Computed in this request: after an `update` commit or a reload
    /// (`whole: false`), or for a namespace that was migrated or reset
    /// (`whole: true`: the stored bytes are not at this version, so a write
    /// replaces the namespace whole). `ns.version` is the version stored.
    Computed { ns: NamespaceRecord, whole: bool },
}

/// The parts of a baseline a diff needs.
#[derive(Clone, Copy)]
pub(crate) struct BaselineView<'a> {
    /// The stored fields; `None` when absent.
    pub(crate) fields: Option<&'a FieldMap>,
    /// Whether a write must replace the namespace whole.
    pub(crate) whole: bool,
    /// The stored revision (0 when absent): what a guarded write expects.
    pub(crate) revision: u64,
    /// The stored version (`None` when absent): what a removal names.
    pub(crate) version: Option<u32>,
}

impl Baseline {
    pub(crate) fn view(&self) -> BaselineView<'_> {
        match self {
            Self::Absent => BaselineView {
                fields: None,
                whole: false,
                revision: 0,
                version: None,
            },
            Self::Loaded { namespaces, index } => {
                let ns = &namespaces[*index];
                BaselineView {
                    fields: Some(&ns.fields),
                    whole: false,
                    revision: ns.revision,
                    version: Some(ns.version),
                }
            }
            Self::Computed { ns, whole } => BaselineView {
                fields: Some(&ns.fields),
                whole: *whole,
                revision: ns.revision,
                version: Some(ns.version),
            },
        }
    }

    /// Whether the baseline is the loaded record's namespace (otherwise
    /// the loaded record no longer describes the namespace: it was
    /// computed, or removed, in this request).
    pub(crate) fn is_loaded(&self) -> bool {
        matches!(self, Self::Loaded { .. })
    }
}

/// The encoding of `T::default()`, computed once per type per process:
/// what an absent namespace reads as.
///
/// "Is this namespace at its default?" is asked on every write; encoding a
/// fresh default each time would double the cost of a write. A schema's
/// `Default` is expected to be deterministic (it is what "absent" reads as).
pub(crate) fn default_fields<T: SessionData>() -> Result<&'static FieldMap, CodecError> {
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
