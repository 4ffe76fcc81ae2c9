//! The schema side: what `#[derive(SessionData)]` generates and the types it uses.

use std::borrow::Cow;

use crate::codec::{Codec, CodecError};

/// A typed session schema: one namespace of a session.
///
/// Implement it with `#[derive(SessionData)]`; a hand-written impl is
/// possible but must keep the invariants the derive guarantees (stored names
/// unique, `FIELDS[i]` describes what `encode_field(i)` encodes).
///
/// A schema is `Default`: the default is what an absent namespace reads
/// as, and a namespace equal to it is not stored. (Previous versions named
/// by `migrate_from` are schemas too.) A schema without it is one error,
/// at the struct.
///
/// ```
/// use typed_sessions::{SessionData, FieldMap};
///
/// #[derive(SessionData, Default, PartialEq, Debug)]
/// #[session(namespace = "visits")]
/// struct Visits { count: u64 }
///
/// assert_eq!(Visits::NAMESPACE, "visits");
/// let stored = Visits { count: 3 }.encode_fields().unwrap();
/// assert_eq!(stored.get("count"), Some(&b"3"[..]));
/// assert_eq!(Visits::decode_fields(1, &stored).unwrap(), Visits { count: 3 });
/// assert_eq!(Visits { count: 4 }.changed_fields(&stored).unwrap(), ["count"]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a session schema",
    label = "not a session schema",
    note = "add `#[derive(SessionData)]` to `{Self}`"
)]
pub trait SessionData: Sized + Send + Default + 'static {
    /// The slot of this schema inside a session.
    const NAMESPACE: &'static str;
    /// The schema version stored with the data (at least 1).
    const VERSION: u32;
    /// The stored fields, in declaration order (skipped fields are absent).
    const FIELDS: &'static [FieldInfo];
    /// The codec that turns each field into bytes.
    type Codec: Codec;
    /// Whether some field may be equal by value while its bytes differ
    /// (see [`field_equals_stored`](Self::field_equals_stored)); `false`
    /// spares the runtime the by-value check.
    const COMPARES_BY_VALUE: bool = false;

    /// Encodes the field described by `FIELDS[index]`.
    ///
    /// # Errors
    /// When the codec fails, or `index` is out of range.
    fn encode_field(&self, index: usize) -> Result<Vec<u8>, CodecError>;

    /// Decodes a stored entry written at `version`, running the
    /// `migrate_from` chain when `version` is older than [`Self::VERSION`].
    /// Stored fields the schema does not know are ignored.
    ///
    /// # Errors
    /// [`DecodeError::NewerVersion`] for a version newer than the code,
    /// [`DecodeError::UnsupportedVersion`] for an older one no schema in the
    /// chain covers, [`DecodeError::MissingField`] for an absent field without
    /// `#[session(default)]`, [`DecodeError::Field`] when stored bytes do not
    /// decode.
    fn decode_fields(version: u32, fields: &FieldMap) -> Result<Self, DecodeError>;

    /// Whether the value of the field described by `FIELDS[index]` equals
    /// the value `stored` decodes to. The runtime asks only when the bytes
    /// differ: a hash map or set encodes in its iteration order, which
    /// changes from one instance to the next, so equal values can have
    /// different bytes. The derive compares such fields (a type that
    /// mentions `HashMap` or `HashSet`) by value when their `==` agrees with
    /// their encoding: built from integers, `bool`, `char`, `String`, and
    /// `Option`, `Vec`, `Box`, arrays, pairs, triples, maps and sets of
    /// those. Every other field (floats, types with their own `PartialEq`)
    /// is equal only when its bytes are.
    fn field_equals_stored(&self, index: usize, stored: &[u8]) -> bool {
        let _ = (index, stored);
        false
    }

    /// Encodes every stored field.
    ///
    /// # Errors
    /// When the codec fails on a field.
    fn encode_fields(&self) -> Result<FieldMap, CodecError> {
        let mut map = FieldMap::with_capacity(Self::FIELDS.len());
        for (index, info) in Self::FIELDS.iter().enumerate() {
            map.insert(info.name(), self.encode_field(index)?);
        }
        Ok(map)
    }

    /// The stored names of the fields whose encoding differs from `stored`
    /// (a field absent from `stored` counts as changed), in declaration order.
    ///
    /// # Errors
    /// When the codec fails on a field.
    fn changed_fields(&self, stored: &FieldMap) -> Result<Vec<&'static str>, CodecError> {
        let mut changed = Vec::new();
        for (index, info) in Self::FIELDS.iter().enumerate() {
            let bytes = self.encode_field(index)?;
            let same = match stored.get(info.name()) {
                Some(old) => {
                    old == bytes.as_slice()
                        || (Self::COMPARES_BY_VALUE && self.field_equals_stored(index, old))
                }
                None => false,
            };
            if !same {
                changed.push(info.name());
            }
        }
        Ok(changed)
    }
}

/// What the runtime knows about one stored field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldInfo {
    name: &'static str,
    sensitive: bool,
    rotate_id: bool,
}

impl FieldInfo {
    #[doc(hidden)]
    #[must_use]
    pub const fn __new(name: &'static str, sensitive: bool, rotate_id: bool) -> Self {
        Self {
            name,
            sensitive,
            rotate_id,
        }
    }

    /// The name the field is stored under (after `rename`).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// `#[session(sensitive)]`: the value is never logged and is redacted in `Debug`.
    pub const fn sensitive(&self) -> bool {
        self.sensitive
    }

    /// `#[session(rotate_id)]`: a change of this value regenerates the session id.
    pub const fn rotate_id(&self) -> bool {
        self.rotate_id
    }
}

/// The encoded fields of one namespace, by stored name.
///
/// Small and ordered by insertion: a schema has a handful of fields, so a
/// vector beats a hash map for both lookups and memory. Names given as
/// `&'static str` (a schema's own field names) are not copied.
///
/// ```
/// use typed_sessions::FieldMap;
/// let mut map = FieldMap::new();
/// map.insert("count", b"1".to_vec());
/// map.insert(String::from("owned"), b"2".to_vec());
/// assert_eq!(map.get("count"), Some(&b"1"[..]));
/// assert_eq!(map.insert("count", b"3".to_vec()), Some(b"1".to_vec()));
/// assert_eq!(map.len(), 2);
/// assert_eq!(format!("{map:?}"), r#"{"count": <1 bytes>, "owned": <1 bytes>}"#);
/// ```
///
/// Its `Debug` shows the field names and sizes, never the bytes: a map may
/// hold the value of a `sensitive` field, and `Record` or `Changeset` print
/// through it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FieldMap {
    entries: Vec<(Cow<'static, str>, Vec<u8>)>,
}

impl std::fmt::Debug for FieldMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// A value's size, in place of its bytes.
        struct Size(usize);
        impl std::fmt::Debug for Size {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "<{} bytes>", self.0)
            }
        }
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|(name, value)| (name, Size(value.len()))),
            )
            .finish()
    }
}

impl FieldMap {
    /// An empty map.
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// An empty map with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// The bytes stored under `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(key, _)| &**key == name)
            .map(|(_, value)| value.as_slice())
    }

    /// Sets `name` to `value`, returning the previous bytes.
    pub fn insert(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        value: Vec<u8>,
    ) -> Option<Vec<u8>> {
        let name = name.into();
        if let Some((_, slot)) = self.entries.iter_mut().find(|(key, _)| *key == name) {
            return Some(std::mem::replace(slot, value));
        }
        self.entries.push((name, value));
        None
    }

    /// Sets every field of `other`, keeping the fields it does not name.
    pub fn merge(&mut self, other: &FieldMap) {
        for (name, value) in &other.entries {
            if let Some((_, slot)) = self.entries.iter_mut().find(|(key, _)| key == name) {
                slot.clone_from(value);
            } else {
                self.entries.push((name.clone(), value.clone()));
            }
        }
    }

    /// Removes `name`, returning its bytes.
    pub fn remove(&mut self, name: &str) -> Option<Vec<u8>> {
        let index = self.entries.iter().position(|(key, _)| &**key == name)?;
        Some(self.entries.remove(index).1)
    }

    /// Keeps only the fields for which `keep(name, bytes)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &[u8]) -> bool) {
        self.entries.retain(|(name, value)| keep(name, value));
    }

    /// A copy of the fields for which `keep(name, bytes)` is true.
    pub(crate) fn subset(&self, mut keep: impl FnMut(&str, &[u8]) -> bool) -> FieldMap {
        FieldMap {
            entries: self
                .entries
                .iter()
                .filter(|(name, value)| keep(name, value))
                .cloned()
                .collect(),
        }
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The fields as `(name, bytes)` pairs.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &[u8])> {
        self.entries
            .iter()
            .map(|(key, value)| (&**key, value.as_slice()))
    }

    /// The sum of name and value lengths: what the fields weigh in storage.
    pub fn byte_size(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

impl<K: Into<Cow<'static, str>>> FromIterator<(K, Vec<u8>)> for FieldMap {
    fn from_iter<I: IntoIterator<Item = (K, Vec<u8>)>>(iter: I) -> Self {
        let mut map = Self::new();
        for (name, value) in iter {
            map.insert(name, value);
        }
        map
    }
}

/// Why a stored namespace could not be turned into the current schema.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The data was written by a newer version of the code.
    #[error("stored version {found} is newer than the latest known version {latest}")]
    NewerVersion {
        /// The version found in storage.
        found: u32,
        /// The newest version this code knows.
        latest: u32,
    },
    /// The data is older than every schema in the `migrate_from` chain.
    #[error("no schema in the migration chain handles stored version {found}")]
    UnsupportedVersion {
        /// The version found in storage.
        found: u32,
    },
    /// A field without `#[session(default)]` is absent from storage.
    #[error("stored data lacks field `{field}`, which has no #[session(default)]")]
    MissingField {
        /// The stored name of the field.
        field: &'static str,
    },
    /// A stored field did not decode.
    #[error("stored field `{field}` does not decode")]
    Field {
        /// The stored name of the field.
        field: &'static str,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
}
