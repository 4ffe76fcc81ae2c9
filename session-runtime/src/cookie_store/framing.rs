//! The binary framing of a session inside a sealed cookie: compact, and
//! read back strictly (every length checked, nothing left over).
//!
//! ```text
//! body      = id[16] created:varint last_seen:zigzag expires:zigzag
//!             count:varint namespace*count
//! namespace = name:bytes version:varint revision:varint count:varint field*count
//! field     = name:bytes value:bytes
//! bytes     = length:varint byte*length
//! ```
//!
//! `varint` is unsigned LEB128 (at most 10 bytes); `last_seen` is stored as
//! the signed difference to `created`, `expires` as the difference to
//! `last_seen` (zigzag-encoded), so the three timestamps take about
//! 11 bytes instead of 24. Field values are the codec's bytes as they are.

use std::ops::Range;
use std::sync::Arc;

use crate::data::FieldMap;
use crate::id::{ID_BYTES, RawId};
use crate::store::{NamespaceRecord, Record};

/// Appends the body for `id` and `record` to `out`.
pub(crate) fn encode(id: &RawId, record: &Record, out: &mut Vec<u8>) {
    out.extend_from_slice(id.as_bytes());
    put_varint(out, record.created_at_ms);
    put_signed(out, record.last_seen_ms, record.created_at_ms);
    put_signed(out, record.expires_at_ms, record.last_seen_ms);
    put_varint(out, record.namespaces.len() as u64);
    for ns in record.namespaces.iter() {
        put_bytes(out, ns.name.as_bytes());
        put_varint(out, u64::from(ns.version));
        put_varint(out, ns.revision);
        put_varint(out, ns.fields.len() as u64);
        for (name, value) in ns.fields.iter_bytes() {
            put_bytes(out, name);
            put_bytes(out, value);
        }
    }
}

/// The exact length [`encode`] appends.
pub(crate) fn encoded_len(record: &Record) -> usize {
    let mut len = ID_BYTES
        + varint_len(record.created_at_ms)
        + varint_len(zigzag(record.last_seen_ms, record.created_at_ms))
        + varint_len(zigzag(record.expires_at_ms, record.last_seen_ms))
        + varint_len(record.namespaces.len() as u64);
    for ns in record.namespaces.iter() {
        len += bytes_len(ns.name.len())
            + varint_len(u64::from(ns.version))
            + varint_len(ns.revision)
            + varint_len(ns.fields.len() as u64);
        for (name, value) in ns.fields.iter_bytes() {
            len += bytes_len(name.len()) + bytes_len(value.len());
        }
    }
    len
}

/// Whether [`decode`] reads `record` back from what [`encode`] writes for
/// it: every namespace name unique (a repeated name is the only thing it
/// refuses in a record; a `FieldMap` never holds a name twice).
pub(crate) fn reads_back(record: &Record) -> bool {
    let namespaces = &record.namespaces;
    namespaces
        .iter()
        .enumerate()
        .all(|(i, ns)| namespaces[..i].iter().all(|other| other.name != ns.name))
}

/// Reads a body back. `None` for anything [`encode`] cannot have written:
/// a short or over-long body, a length past the end, a count or varint
/// that cannot be, a name that is not UTF-8, a version over `u32`, a
/// duplicate namespace or field.
///
/// The fields' names and values stay in one shared copy of `body` (one
/// allocation for all of them, not two per field).
pub(crate) fn decode(body: &[u8]) -> Option<(RawId, Record)> {
    let shared: Arc<[u8]> = Arc::from(body);
    decode_in(&shared, 0..shared.len())
}

/// [`decode`] of the body at `body` inside `shared`, whose fields then
/// refer to `shared` itself (no copy).
pub(crate) fn decode_in(shared: &Arc<[u8]>, body: Range<usize>) -> Option<(RawId, Record)> {
    let mut input = Reader {
        body: &shared[..body.end],
        pos: body.start,
    };
    let id = RawId::from_bytes(input.take(ID_BYTES)?.try_into().ok()?);
    let created = input.varint()?;
    let last_seen = input.signed(created)?;
    let expires = input.signed(last_seen)?;
    let count = input.count()?;
    let mut namespaces: Vec<NamespaceRecord> = Vec::with_capacity(count);
    for _ in 0..count {
        let name = input.text()?;
        let version = u32::try_from(input.varint()?).ok()?;
        let revision = input.varint()?;
        let fields_count = input.count()?;
        let mut fields = FieldMap::with_capacity(fields_count);
        for _ in 0..fields_count {
            let field = input.text_range()?;
            let value = input.bytes_range()?;
            if !fields.insert_shared(shared, field, value) {
                return None;
            }
        }
        if namespaces.iter().any(|ns| ns.name == name) {
            return None;
        }
        namespaces.push(NamespaceRecord::new(name, version, revision, fields));
    }
    if !input.rest().is_empty() {
        return None;
    }
    Some((id, Record::new(created, last_seen, expires, namespaces)))
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        #[allow(clippy::cast_possible_truncation, reason = "the low 7 bits")]
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    #[allow(clippy::cast_possible_truncation, reason = "under 0x80")]
    out.push(value as u8);
}

fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// `value - base` as a zigzag varint (small either way).
fn zigzag(value: u64, base: u64) -> u64 {
    #[allow(
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss,
        reason = "wrapping difference, undone by `unzigzag`"
    )]
    {
        let delta = value.wrapping_sub(base) as i64;
        ((delta << 1) ^ (delta >> 63)) as u64
    }
}

fn unzigzag(encoded: u64, base: u64) -> u64 {
    #[allow(
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss,
        reason = "the inverse of `zigzag`"
    )]
    {
        let delta = ((encoded >> 1) as i64) ^ -((encoded & 1) as i64);
        base.wrapping_add(delta as u64)
    }
}

fn put_signed(out: &mut Vec<u8>, value: u64, base: u64) {
    put_varint(out, zigzag(value, base));
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn bytes_len(len: usize) -> usize {
    varint_len(len as u64) + len
}

/// A cursor over a body: `pos` is where the unread part starts.
struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[cfg(test)]
    fn new(body: &'a [u8]) -> Self {
        Self { body, pos: 0 }
    }

    fn rest(&self) -> &'a [u8] {
        &self.body[self.pos..]
    }

    fn take_range(&mut self, len: usize) -> Option<Range<usize>> {
        if len > self.body.len() - self.pos {
            return None;
        }
        let start = self.pos;
        self.pos += len;
        Some(start..self.pos)
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let range = self.take_range(len)?;
        Some(&self.body[range])
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let &byte = self.body.get(self.pos)?;
            self.pos += 1;
            let bits = u64::from(byte & 0x7f);
            // The tenth byte may carry only the top bit.
            if shift == 63 && bits > 1 {
                return None;
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                // A last byte of zero after others is a longer spelling of
                // a shorter number: one spelling per value.
                return (byte != 0 || shift == 0).then_some(value);
            }
        }
        None
    }

    fn signed(&mut self, base: u64) -> Option<u64> {
        self.varint().map(|encoded| unzigzag(encoded, base))
    }

    /// A count of items that each take at least one byte: never more than
    /// the bytes left, so a forged count cannot make a large allocation.
    fn count(&mut self) -> Option<usize> {
        let count = usize::try_from(self.varint()?).ok()?;
        (count <= self.body.len() - self.pos).then_some(count)
    }

    fn bytes_range(&mut self) -> Option<Range<usize>> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.take_range(len)
    }

    /// A name's range, checked to be UTF-8 (short ASCII names, the usual
    /// case, without `from_utf8`'s set-up).
    fn text_range(&mut self) -> Option<Range<usize>> {
        let range = self.bytes_range()?;
        let bytes = &self.body[range.clone()];
        (bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()).then_some(range)
    }

    fn text(&mut self) -> Option<&'a str> {
        let range = self.bytes_range()?;
        std::str::from_utf8(&self.body[range]).ok()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn record_strategy() -> impl Strategy<Value = Record> {
        let field = (
            "[a-z_]{1,12}",
            proptest::collection::vec(any::<u8>(), 0..40),
        );
        let namespace = (
            "[a-z_]{1,10}",
            any::<u32>(),
            any::<u64>(),
            proptest::collection::btree_map(field.0, field.1, 0..6),
        );
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::btree_map("[a-z]{1,8}", namespace, 0..4),
        )
            .prop_map(|(created, last_seen, expires, namespaces)| {
                let namespaces = namespaces
                    .into_values()
                    .enumerate()
                    .map(|(i, (name, version, revision, fields))| {
                        let fields: FieldMap = fields.into_iter().collect();
                        NamespaceRecord::new(format!("{name}{i}"), version, revision, fields)
                    })
                    .collect();
                Record::new(created, last_seen, expires, namespaces)
            })
    }

    proptest! {
        #[test]
        fn any_record_round_trips(id in any::<[u8; 16]>(), record in record_strategy()) {
            let id = RawId::from_bytes(id);
            let mut body = Vec::new();
            encode(&id, &record, &mut body);
            prop_assert_eq!(body.len(), encoded_len(&record));
            let (back_id, back) = decode(&body).expect("an encoded body decodes");
            prop_assert!(back_id == id);
            prop_assert_eq!(back, record);
        }

        #[test]
        fn reads_back_says_whether_a_record_round_trips(
            id in any::<[u8; 16]>(),
            record in record_strategy(),
            repeat in proptest::option::of(any::<prop::sample::Index>()),
        ) {
            // Maybe a namespace name repeated (the only way a record can
            // hold a repeated name: a field map keeps its names unique).
            let mut namespaces = (*record.namespaces).clone();
            if let (Some(at), false) = (repeat, namespaces.is_empty()) {
                let mut copy = namespaces[at.index(namespaces.len())].clone();
                copy.revision = copy.revision.wrapping_add(1);
                namespaces.push(copy);
            }
            let record = Record::new(record.created_at_ms, record.last_seen_ms, record.expires_at_ms, namespaces);
            let id = RawId::from_bytes(id);
            let mut body = Vec::new();
            encode(&id, &record, &mut body);
            let back = decode(&body);
            prop_assert_eq!(reads_back(&record), back.is_some());
            if let Some((back_id, back)) = back {
                prop_assert!(back_id == id);
                prop_assert_eq!(back, record);
            }
        }

        #[test]
        fn whatever_decodes_encodes_back_to_the_same_bytes(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Some((id, record)) = decode(&body) {
                let mut again = Vec::new();
                encode(&id, &record, &mut again);
                prop_assert_eq!(again, body);
            }
        }

        #[test]
        fn truncated_or_extended_bodies_are_refused(record in record_strategy(), cut in any::<prop::sample::Index>(), extra in any::<u8>()) {
            let mut body = Vec::new();
            encode(&RawId::from_bytes([1; 16]), &record, &mut body);
            let short = &body[..cut.index(body.len())];
            prop_assert!(decode(short).is_none());
            body.push(extra);
            prop_assert!(decode(&body).is_none());
        }
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for value in [0, 1, 127, 128, 16_383, 16_384, u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "{value}");
            assert_eq!(Reader::new(&out).varint(), Some(value));
        }
        // An eleventh byte, or a tenth with more than one bit, overflows.
        assert_eq!(Reader::new(&[0xff; 10]).varint(), None);
        // Non-minimal spellings are refused.
        assert_eq!(Reader::new(&[0x80, 0x00]).varint(), None);
        assert_eq!(Reader::new(&[0x81, 0x80, 0x00]).varint(), None);
        assert_eq!(
            Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]).varint(),
            None
        );
    }

    /// Decoded fields live in one shared buffer; the map still behaves as
    /// A map keeps one shared buffer: a field offered from another buffer
    /// is copied, and reads back its own bytes, not the first buffer's.
    #[test]
    fn a_field_from_a_second_buffer_is_copied() {
        let first: Arc<[u8]> = Arc::from(&b"aaXX"[..]);
        let second: Arc<[u8]> = Arc::from(&b"bbYYYY"[..]);
        let mut map = FieldMap::new();
        assert!(map.insert_shared(&first, 0..2, 2..4));
        assert!(map.insert_shared(&second, 0..2, 2..6));
        assert!(
            !map.insert_shared(&second, 0..2, 2..3),
            "a repeated name is refused"
        );
        assert_eq!(map.get("aa"), Some(&b"XX"[..]));
        assert_eq!(map.get("bb"), Some(&b"YYYY"[..]));
        assert_eq!(map.buffer_state(), (true, true));
        // Only the first buffer is held (the second's bytes were copied).
        assert_eq!(Arc::strong_count(&second), 1);
        assert_eq!(Arc::strong_count(&first), 2);
        map.remove("aa");
        assert_eq!(map.buffer_state(), (false, false));
        assert_eq!(Arc::strong_count(&first), 1);
        assert_eq!(map.get("bb"), Some(&b"YYYY"[..]));
    }

    /// one of owned bytes: lookups, replacing, merging, removing, equality.
    #[test]
    fn decoded_fields_behave_like_owned_ones() {
        let mut fields = FieldMap::new();
        fields.insert("user", br#""ann""#.to_vec());
        fields.insert(String::from("visits"), b"7".to_vec());
        let record = Record::new(
            1,
            2,
            3,
            vec![NamespaceRecord::new("p", 1, 4, fields.clone())],
        );
        let mut body = Vec::new();
        encode(&RawId::from_bytes([3; 16]), &record, &mut body);
        let (_, back) = decode(&body).expect("decodes");
        let mut shared = back.namespaces[0].fields.clone();
        assert_eq!(shared, fields);
        assert_eq!(shared.get("visits"), Some(&b"7"[..]));
        assert_eq!(shared.get("visit"), None);
        assert_eq!(shared.byte_size(), fields.byte_size());
        assert_eq!(
            shared.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            ["user", "visits"]
        );
        assert_eq!(shared.insert("visits", b"8".to_vec()), Some(b"7".to_vec()));
        assert_ne!(shared, fields);
        let mut patch = FieldMap::new();
        patch.insert("user", br#""bob""#.to_vec());
        shared.merge(&patch);
        assert_eq!(shared.get("user"), Some(&br#""bob""#[..]));
        assert_eq!(shared.remove("user"), Some(br#""bob""#.to_vec()));
        assert_eq!(shared.len(), 1);
        // The decoded record itself is untouched by changes to a copy.
        assert_eq!(back.namespaces[0].fields, fields);
    }

    #[test]
    fn duplicates_are_refused() {
        let mut fields = FieldMap::new();
        fields.insert("a", b"1".to_vec());
        let ns = NamespaceRecord::new("n", 1, 1, fields);
        let record = Record::new(
            1,
            2,
            3,
            vec![ns.clone(), NamespaceRecord::new("m", 1, 1, FieldMap::new())],
        );
        let mut body = Vec::new();
        encode(&RawId::from_bytes([0; 16]), &record, &mut body);
        // Rename namespace "m" to "n": same length, now a duplicate.
        let at = body.iter().rposition(|&b| b == b'm').unwrap();
        body[at] = b'n';
        assert!(decode(&body).is_none());
    }
}

#[cfg(test)]
mod shared_buffer_model {
    //! A `FieldMap` built from a decoded cookie (shared buffer) behaves
    //! exactly like a plain `Vec<(String, Vec<u8>)>` model under any
    //! sequence of operations, and its copies stay independent.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, Vec<u8>),
        Remove(u8),
        Merge(Vec<(u8, Vec<u8>)>),
        Retain(u8),
        CloneSwap,
    }

    fn name(n: u8) -> String {
        // names of different lengths, same lengths, prefixes, non-ASCII
        ["a", "b", "ab", "ba", "abc", "é", "ée", "", "user", "users"][usize::from(n) % 10]
            .to_owned()
    }

    fn model_insert(m: &mut Vec<(String, Vec<u8>)>, k: String, v: Vec<u8>) -> Option<Vec<u8>> {
        if let Some(slot) = m.iter_mut().find(|(n, _)| *n == k) {
            return Some(std::mem::replace(&mut slot.1, v));
        }
        m.push((k, v));
        None
    }

    fn check(map: &FieldMap, model: &[(String, Vec<u8>)]) {
        let got: Vec<(String, Vec<u8>)> = map
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect();
        assert_eq!(got, model);
        let (held, used) = map.buffer_state();
        assert_eq!(
            held, used,
            "a buffer is held exactly while an entry uses it"
        );
        let mut owned = FieldMap::new();
        for (n, v) in model {
            owned.insert(n.clone(), v.clone());
        }
        assert_eq!(*map, owned, "shared vs owned equality");
        assert_eq!(owned, *map);
        assert_eq!(map.byte_size(), owned.byte_size());
        for i in 0..10 {
            let k = name(i);
            assert_eq!(
                map.get(&k),
                model
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.as_slice())
            );
        }
        // a single-byte change anywhere must make the maps unequal
        for (i, (n, v)) in model.iter().enumerate() {
            let mut changed = owned.clone();
            let mut nv = v.clone();
            nv.push(0);
            changed.insert(n.clone(), nv);
            assert_ne!(*map, changed, "field {i} changed but equal");
            if !v.is_empty() {
                let mut nv = v.clone();
                nv[0] ^= 1;
                let mut changed = owned.clone();
                changed.insert(n.clone(), nv);
                assert_ne!(*map, changed, "field {i} flipped but equal");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn shared_fieldmap_matches_model(
            initial in proptest::collection::vec((0u8..10, proptest::collection::vec(any::<u8>(), 0..6)), 0..8),
            ops in proptest::collection::vec(prop_oneof![
                (0u8..10, proptest::collection::vec(any::<u8>(), 0..6)).prop_map(|(k, v)| Op::Insert(k, v)),
                (0u8..10).prop_map(Op::Remove),
                proptest::collection::vec((0u8..10, proptest::collection::vec(any::<u8>(), 0..6)), 0..4).prop_map(Op::Merge),
                (0u8..10).prop_map(Op::Retain),
                Just(Op::CloneSwap),
            ], 0..12),
        ) {
            let mut model: Vec<(String, Vec<u8>)> = Vec::new();
            let mut fields = FieldMap::new();
            for (k, v) in initial {
                model_insert(&mut model, name(k), v.clone());
                fields.insert(name(k), v);
            }
            let record = Record::new(1, 2, 3, vec![NamespaceRecord::new("p", 1, 4, fields)]);
            let mut body = Vec::new();
            encode(&RawId::from_bytes([3; 16]), &record, &mut body);
            let (_, back) = decode(&body).expect("decodes");
            let pristine = back.namespaces[0].fields.clone();
            let pristine_model = model.clone();
            let mut map = back.namespaces[0].fields.clone();
            check(&map, &model);
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let a = map.insert(name(k), v.clone());
                        let b = model_insert(&mut model, name(k), v);
                        prop_assert_eq!(a, b);
                    }
                    Op::Remove(k) => {
                        let a = map.remove(&name(k));
                        let b = model.iter().position(|(n, _)| *n == name(k)).map(|i| model.remove(i).1);
                        prop_assert_eq!(a, b);
                    }
                    Op::Merge(items) => {
                        let mut other = FieldMap::new();
                        let mut other_model = Vec::new();
                        for (k, v) in items {
                            other.insert(name(k), v.clone());
                            model_insert(&mut other_model, name(k), v);
                        }
                        map.merge(&other);
                        for (k, v) in other_model { model_insert(&mut model, k, v); }
                    }
                    Op::Retain(k) => {
                        let k = name(k);
                        map.retain(|n, _| n != k);
                        model.retain(|(n, _)| *n != k);
                    }
                    Op::CloneSwap => {
                        // merge a decoded (shared) map into the owned copy direction too
                        let copy = map.clone();
                        let mut fresh = pristine.clone();
                        let mut fresh_model = pristine_model.clone();
                        fresh.merge(&copy);
                        for (k, v) in model.clone() { model_insert(&mut fresh_model, k, v); }
                        check(&fresh, &fresh_model);
                    }
                }
                check(&map, &model);
                check(&back.namespaces[0].fields, &pristine_model);
                // re-encode / decode round trip of the mixed map
                let rec = Record::new(1, 2, 3, vec![NamespaceRecord::new("p", 1, 4, map.clone())]);
                let mut body = Vec::new();
                encode(&RawId::from_bytes([3; 16]), &rec, &mut body);
                prop_assert_eq!(body.len(), encoded_len(&rec));
                let (_, again) = decode(&body).expect("re-decodes");
                check(&again.namespaces[0].fields, &model);
            }
        }

        /// Any byte string: decode never panics, and what decodes re-encodes identically.
        #[test]
        fn decode_garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some((id, rec)) = decode(&body) {
                let mut out = Vec::new();
                encode(&id, &rec, &mut out);
                prop_assert_eq!(out, body);
            }
        }
    }

    /// `decode_in` at an offset inside a larger buffer: ranges stay inside
    /// the body, and bytes after the body (the tag) are never read as data.
    #[test]
    fn decode_in_offset_and_trailing() {
        let mut fields = FieldMap::new();
        fields.insert("user", b"ann".to_vec());
        let record = Record::new(
            1,
            2,
            3,
            vec![NamespaceRecord::new("p", 1, 4, fields.clone())],
        );
        let mut body = Vec::new();
        encode(&RawId::from_bytes([3; 16]), &record, &mut body);
        let mut raw = vec![0xAAu8; 18];
        raw.extend_from_slice(&body);
        raw.extend_from_slice(&[0xBB; 16]);
        let shared: Arc<[u8]> = Arc::from(raw);
        let (_, back) = decode_in(&shared, 18..18 + body.len()).expect("decodes");
        assert_eq!(back.namespaces[0].fields, fields);
        // every truncation of the body fails instead of reading the trailer
        for cut in 0..body.len() {
            assert!(decode_in(&shared, 18..18 + cut).is_none(), "cut {cut}");
        }
    }
}
