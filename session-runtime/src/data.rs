//! The schema side: what `#[derive(SessionData)]` generates and the types it uses.

use std::any::Any;
use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

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

    /// Whether a value of this schema may be shared between requests: `true`
    /// for schemas declared `#[session(cached)]` (the derive then also
    /// implements [`__share`](Self::__share) and
    /// [`__clone_shared`](Self::__clone_shared), which must return `Some`).
    /// Not part of the public API.
    #[doc(hidden)]
    const __CACHED: bool = false;

    /// Keeps `self`, decoded from `fields` at the current version and not
    /// changed since, as their shared decoded copy (schemas declared
    /// `#[session(cached)]`); other schemas drop it. Not part of the public
    /// API.
    #[doc(hidden)]
    fn __share(self, fields: &FieldMap) {
        let _ = fields;
    }

    /// A copy of a shared value, taken when a request borrows it mutably:
    /// `Some` for schemas declared `#[session(cached)]`, `None` otherwise.
    /// Not part of the public API.
    #[doc(hidden)]
    fn __clone_shared(&self) -> Option<Self> {
        None
    }

    /// Appends what [`encode_field`](Self::encode_field) returns to `out`
    /// (left as it was on an error). The derive implements it through the
    /// codec's [`Codec::encode_into`]; the default calls `encode_field`.
    /// Not part of the public API.
    ///
    /// # Errors
    /// As [`encode_field`](Self::encode_field).
    #[doc(hidden)]
    fn __encode_field_into(&self, index: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&self.encode_field(index)?);
        Ok(())
    }

    /// Encodes every stored field.
    ///
    /// # Errors
    /// When the codec fails on a field.
    fn encode_fields(&self) -> Result<FieldMap, CodecError> {
        let mut map = FieldMap::with_capacity(Self::FIELDS.len());
        for (index, info) in Self::FIELDS.iter().enumerate() {
            // Stored names are unique (an invariant of the schema).
            map.push_new(info.name(), self.encode_field(index)?);
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
#[derive(Clone, Default)]
pub struct FieldMap {
    /// Never two entries with one name: every way in (`insert`,
    /// `push_new`, `insert_shared`, `merge`, `FromIterator`) replaces or
    /// refuses a name already there; the cookie framing relies on it.
    entries: Vec<(Name, Value)>,
    /// The buffer every shared name and value of `entries` is a range of
    /// (set when the map was decoded from one sealed cookie): one reference
    /// count for all of them, so cloning or dropping the map touches it
    /// once, not twice per field. `None` when no entry is shared.
    buf: Option<Arc<[u8]>>,
    /// A schema value decoded from exactly these entries, kept for schemas
    /// that opt in with `#[session(cached)]`; every `&mut self` method
    /// empties it, so it never outlives the bytes it was decoded from.
    decoded: Decoded,
}

/// The memo of [`FieldMap::decoded`]: one decoded value, of one type, at the
/// type's current version. A clone shares it (the clone holds the same
/// bytes until its own first change, which empties its copy).
#[derive(Clone, Default)]
struct Decoded(OnceLock<Arc<dyn Any + Send + Sync>>);

// The memo only ever holds a finished, immutable value (`OnceLock` sets it
// whole or not at all), so a panic cannot leave it half-changed.
impl std::panic::UnwindSafe for Decoded {}
impl std::panic::RefUnwindSafe for Decoded {}

impl Decoded {
    const fn new() -> Self {
        Self(OnceLock::new())
    }

    #[inline]
    fn clear(&mut self) {
        self.0.take();
    }
}

/// The bytes of the map's shared buffer (empty when it has none).
#[inline]
fn bytes_of(buf: Option<&Arc<[u8]>>) -> &[u8] {
    buf.map_or(&[], |buf| &buf[..])
}

/// A field name, with its length at hand: most names a lookup passes over
/// differ in length, and are skipped without reaching their bytes.
#[derive(Clone)]
struct Name {
    len: usize,
    text: NameText,
}

/// A schema's `&'static str`, an owned name, or a range of the map's
/// shared buffer that was checked to be UTF-8 when it was decoded.
#[derive(Clone)]
enum NameText {
    Static(&'static str),
    Owned(Box<str>),
    Shared(Range<usize>),
}

impl Name {
    fn new(name: Cow<'static, str>) -> Self {
        match name {
            Cow::Borrowed(name) => Self::fixed(name),
            Cow::Owned(name) => Self::owned(name.into_boxed_str()),
        }
    }

    fn fixed(name: &'static str) -> Self {
        Self {
            len: name.len(),
            text: NameText::Static(name),
        }
    }

    fn owned(name: Box<str>) -> Self {
        Self {
            len: name.len(),
            text: NameText::Owned(name),
        }
    }

    fn shared(range: Range<usize>) -> Self {
        Self {
            len: range.len(),
            text: NameText::Shared(range),
        }
    }

    /// Whether this is `name` (`buf`: the map's shared buffer).
    #[inline]
    fn is(&self, buf: &[u8], name: &[u8]) -> bool {
        self.len == name.len() && self.as_bytes(buf) == name
    }

    #[inline]
    fn as_bytes<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        match &self.text {
            NameText::Static(name) => name.as_bytes(),
            NameText::Owned(name) => name.as_bytes(),
            NameText::Shared(range) => &buf[range.clone()],
        }
    }

    fn as_str<'a>(&'a self, buf: &'a [u8]) -> &'a str {
        match &self.text {
            NameText::Static(name) => name,
            NameText::Owned(name) => name,
            NameText::Shared(range) => {
                std::str::from_utf8(&buf[range.clone()]).expect("checked to be UTF-8 when decoded")
            }
        }
    }

    /// This name in a map whose shared buffer is `to`, taken from a map
    /// whose shared buffer is `from`: a shared name is copied unless both
    /// maps share the same buffer.
    fn moved(&self, from: Option<&Arc<[u8]>>, to: Option<&Arc<[u8]>>) -> Self {
        match &self.text {
            NameText::Shared(_) if !same_buffer(from, to) => {
                Self::owned(self.as_str(bytes_of(from)).into())
            }
            _ => self.clone(),
        }
    }
}

/// A field value: owned bytes, or a range of the map's shared buffer.
#[derive(Clone)]
enum Value {
    Owned(Vec<u8>),
    Shared(Range<usize>),
}

impl Value {
    #[inline]
    fn as_slice<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        match self {
            Self::Owned(bytes) => bytes,
            Self::Shared(range) => &buf[range.clone()],
        }
    }

    fn into_vec(self, buf: &[u8]) -> Vec<u8> {
        match self {
            Self::Owned(bytes) => bytes,
            Self::Shared(range) => buf[range].to_vec(),
        }
    }

    /// This value in a map whose shared buffer is `to`, taken from a map
    /// whose shared buffer is `from` (see [`Name::moved`]).
    fn moved(&self, from: Option<&Arc<[u8]>>, to: Option<&Arc<[u8]>>) -> Self {
        match self {
            Self::Shared(range) if !same_buffer(from, to) => {
                Self::Owned(bytes_of(from)[range.clone()].to_vec())
            }
            _ => self.clone(),
        }
    }
}

/// Whether two maps' shared buffers are one.
fn same_buffer(a: Option<&Arc<[u8]>>, b: Option<&Arc<[u8]>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

/// Equal when they hold the same names with the same bytes, in the same
/// order (however the bytes are held).
impl PartialEq for FieldMap {
    fn eq(&self, other: &Self) -> bool {
        let (ours, theirs) = (bytes_of(self.buf.as_ref()), bytes_of(other.buf.as_ref()));
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|((a, x), (b, y))| {
                    a.is(ours, b.as_bytes(theirs)) && x.as_slice(ours) == y.as_slice(theirs)
                })
    }
}

impl Eq for FieldMap {}

impl std::fmt::Debug for FieldMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// A value's size, in place of its bytes.
        struct Size(usize);
        impl std::fmt::Debug for Size {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "<{} bytes>", self.0)
            }
        }
        let buf = bytes_of(self.buf.as_ref());
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|(name, value)| (name.as_str(buf), Size(value.as_slice(buf).len()))),
            )
            .finish()
    }
}

impl FieldMap {
    /// An empty map.
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
            buf: None,
            decoded: Decoded::new(),
        }
    }

    /// An empty map with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
            buf: None,
            decoded: Decoded::new(),
        }
    }

    fn position(&self, name: &[u8]) -> Option<usize> {
        let buf = bytes_of(self.buf.as_ref());
        self.entries.iter().position(|(key, _)| key.is(buf, name))
    }

    /// Whether any entry's name or value is a range of `buf`.
    fn holds_shared(entries: &[(Name, Value)]) -> bool {
        entries.iter().any(|(name, value)| {
            matches!(name.text, NameText::Shared(_)) || matches!(value, Value::Shared(_))
        })
    }

    /// Whether the map holds a shared buffer, and whether an entry refers
    /// to it (the two agree).
    #[cfg(test)]
    pub(crate) fn buffer_state(&self) -> (bool, bool) {
        (self.buf.is_some(), Self::holds_shared(&self.entries))
    }

    /// Lets go of the shared buffer once no entry refers to it (so a map
    /// whose decoded fields were all replaced keeps no copy of the old
    /// bytes).
    fn release_unused(&mut self) {
        if self.buf.is_some() && !Self::holds_shared(&self.entries) {
            self.buf = None;
        }
    }

    /// The bytes stored under `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        let buf = bytes_of(self.buf.as_ref());
        self.entries
            .iter()
            .find(|(key, _)| key.is(buf, name))
            .map(|(_, value)| value.as_slice(buf))
    }

    /// Sets `name` to `value`, returning the previous bytes.
    pub fn insert(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        value: Vec<u8>,
    ) -> Option<Vec<u8>> {
        self.decoded.clear();
        let name = name.into();
        if let Some(index) = self.position(name.as_bytes()) {
            let slot = &mut self.entries[index].1;
            let old = std::mem::replace(slot, Value::Owned(value));
            let old = old.into_vec(bytes_of(self.buf.as_ref()));
            self.release_unused();
            return Some(old);
        }
        self.entries.push((Name::new(name), Value::Owned(value)));
        None
    }

    /// Appends a field the map does not hold yet (a derived schema's names
    /// are unique). A hand-written `SessionData` that repeats a name gets
    /// what `insert` gives, the last value, never two entries (a cookie
    /// with two would not open again).
    pub(crate) fn push_new(&mut self, name: &'static str, value: Vec<u8>) {
        self.decoded.clear();
        if let Some(i) = self.position(name.as_bytes()) {
            self.entries[i].1 = Value::Owned(value);
            self.release_unused();
            return;
        }
        self.entries.push((Name::fixed(name), Value::Owned(value)));
    }

    /// Adds a field whose name and value are ranges of `buf` (the name's
    /// bytes checked to be UTF-8 by the caller); `false`, and nothing
    /// added, when the name is already there. A map shares one buffer: the
    /// first call sets it, and a field from another buffer is copied.
    pub(crate) fn insert_shared(
        &mut self,
        buf: &Arc<[u8]>,
        name: Range<usize>,
        value: Range<usize>,
    ) -> bool {
        debug_assert!(std::str::from_utf8(&buf[name.clone()]).is_ok());
        self.decoded.clear();
        if self.position(&buf[name.clone()]).is_some() {
            return false;
        }
        let entry = match &self.buf {
            None => {
                self.buf = Some(Arc::clone(buf));
                (Name::shared(name), Value::Shared(value))
            }
            Some(own) if Arc::ptr_eq(own, buf) => (Name::shared(name), Value::Shared(value)),
            Some(_) => {
                let text = std::str::from_utf8(&buf[name]).expect("checked by the caller");
                (Name::owned(text.into()), Value::Owned(buf[value].to_vec()))
            }
        };
        self.entries.push(entry);
        true
    }

    /// Sets every field of `other`, keeping the fields it does not name.
    pub fn merge(&mut self, other: &FieldMap) {
        self.decoded.clear();
        if self.buf.is_none() {
            // No shared entries here yet: `other`'s can stay shared.
            self.buf.clone_from(&other.buf);
        }
        let theirs = bytes_of(other.buf.as_ref());
        for (name, value) in &other.entries {
            match self.position(name.as_bytes(theirs)) {
                Some(index) => match (&mut self.entries[index].1, value) {
                    (Value::Owned(slot), Value::Owned(bytes)) => slot.clone_from(bytes),
                    (slot, value) => *slot = value.moved(other.buf.as_ref(), self.buf.as_ref()),
                },
                None => self.entries.push((
                    name.moved(other.buf.as_ref(), self.buf.as_ref()),
                    value.moved(other.buf.as_ref(), self.buf.as_ref()),
                )),
            }
        }
        self.release_unused();
    }

    /// Removes `name`, returning its bytes.
    pub fn remove(&mut self, name: &str) -> Option<Vec<u8>> {
        self.decoded.clear();
        let index = self.position(name.as_bytes())?;
        let removed = self
            .entries
            .remove(index)
            .1
            .into_vec(bytes_of(self.buf.as_ref()));
        self.release_unused();
        Some(removed)
    }

    /// Keeps only the fields for which `keep(name, bytes)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &[u8]) -> bool) {
        self.decoded.clear();
        let buf = bytes_of(self.buf.as_ref());
        self.entries
            .retain(|(name, value)| keep(name.as_str(buf), value.as_slice(buf)));
        self.release_unused();
    }

    /// The value published for exactly these entries by
    /// [`share`](Self::share), if any (of whatever type published it).
    pub(crate) fn shared(&self) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.decoded.0.get()
    }

    /// Publishes `value`, decoded from these entries, for readers of this
    /// map and of its clones, until a change empties the memo. The first
    /// value published stays (a map holds one type's value).
    pub(crate) fn share<T: Send + Sync + 'static>(&self, value: T) {
        if self.decoded.0.get().is_none() {
            let _ = self
                .decoded
                .0
                .set(Arc::new(value) as Arc<dyn Any + Send + Sync>);
        }
    }

    /// A copy of the fields for which `keep(name, bytes)` is true.
    pub(crate) fn subset(&self, mut keep: impl FnMut(&str, &[u8]) -> bool) -> FieldMap {
        let buf = bytes_of(self.buf.as_ref());
        let entries: Vec<(Name, Value)> = self
            .entries
            .iter()
            .filter(|(name, value)| keep(name.as_str(buf), value.as_slice(buf)))
            .cloned()
            .collect();
        FieldMap {
            buf: self.buf.clone().filter(|_| Self::holds_shared(&entries)),
            entries,
            decoded: Decoded::new(),
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
        let buf = bytes_of(self.buf.as_ref());
        self.entries
            .iter()
            .map(move |(key, value)| (key.as_str(buf), value.as_slice(buf)))
    }

    /// The fields as `(name, bytes)` pairs, the names as bytes (no UTF-8
    /// check of a shared name).
    pub(crate) fn iter_bytes(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> {
        let buf = bytes_of(self.buf.as_ref());
        self.entries
            .iter()
            .map(move |(key, value)| (key.as_bytes(buf), value.as_slice(buf)))
    }

    /// The sum of name and value lengths: what the fields weigh in storage.
    pub fn byte_size(&self) -> usize {
        let buf = bytes_of(self.buf.as_ref());
        self.entries
            .iter()
            .map(|(k, v)| k.len + v.as_slice(buf).len())
            .sum()
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
