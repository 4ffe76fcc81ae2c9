//! Reading a session hash back: strict about what this version wrote,
//! tolerant of metadata a newer version adds.

use std::collections::BTreeMap;

use ::redis::Value;

use crate::data::FieldMap;
use crate::store::{NamespaceRecord, Record};

/// A session hash in Redis that this version cannot read: a metadata field
/// that is missing or not a number, or a field of an unknown namespace.
/// The message names the field, never a value.
#[derive(Debug, thiserror::Error)]
#[error("malformed session hash in Redis: {0}")]
pub struct MalformedHash(String);

/// A hash's fields and values, as Redis returned them.
pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The field/value pairs of an `HGETALL` reply (RESP2 array or RESP3 map),
/// taken out of it without copying; the reply itself when it is not one.
pub(crate) fn into_pairs(reply: Value) -> Result<Pairs, Value> {
    fn bytes(v: Value) -> Result<Vec<u8>, Value> {
        match v {
            Value::BulkString(b) => Ok(b),
            Value::SimpleString(s) => Ok(s.into_bytes()),
            other => Err(other),
        }
    }
    match reply {
        Value::Array(items) if items.len() % 2 == 0 => {
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(name), Some(value)) = (items.next(), items.next()) {
                pairs.push((bytes(name)?, bytes(value)?));
            }
            Ok(pairs)
        }
        Value::Map(items) => items
            .into_iter()
            .map(|(k, v)| Ok((bytes(k)?, bytes(v)?)))
            .collect(),
        Value::Nil => Ok(Vec::new()),
        other => Err(other),
    }
}

/// A decimal `u64` written by the scripts: ASCII digits only.
pub(crate) fn number(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The record in a session hash, `None` when there is none, it expired at
/// `now`, or it is the tombstone of a finished move.
///
/// # Errors
/// When the hash is not one this store wrote.
pub(crate) fn record(pairs: Pairs, now: u64) -> Result<Option<Record>, MalformedHash> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut created = None;
    let mut last_seen = None;
    let mut deadline = None;
    let mut namespaces: BTreeMap<String, (u32, u64, FieldMap)> = BTreeMap::new();
    // `<ns>:<field>` names, the position of their colon, and the values.
    let mut data: Vec<(String, usize, Vec<u8>)> = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        let name = String::from_utf8(name)
            .map_err(|_| MalformedHash("a field name is not UTF-8".to_owned()))?;
        let meta = |what: &str| {
            number(&value).ok_or_else(|| MalformedHash(format!("`{what}` is not a number")))
        };
        match name.as_str() {
            "@c" => created = Some(meta("@c")?),
            "@l" => last_seen = Some(meta("@l")?),
            "@e" => deadline = Some(meta("@e")?),
            "@r" => {
                meta("@r")?;
            }
            "@m" => {
                // A record being moved reads as it is (a logout may still
                // delete it, which the move then respects); the tombstone a
                // finished move leaves reads as nothing.
                if value.starts_with(b"done|") {
                    return Ok(None);
                }
            }
            _ => {
                if let Some(ns) = name.strip_prefix("@n:") {
                    let (version, revision) = std::str::from_utf8(&value)
                        .ok()
                        .and_then(|v| v.split_once(':'))
                        .and_then(|(v, r)| {
                            let version = u32::try_from(number(v.as_bytes())?).ok()?;
                            Some((version, number(r.as_bytes())?))
                        })
                        .ok_or_else(|| {
                            MalformedHash(format!("`@n:{ns}` is not `version:revision`"))
                        })?;
                    namespaces.insert(ns.to_owned(), (version, revision, FieldMap::new()));
                } else if name.starts_with('@') {
                    // Metadata of a newer version: not ours to judge.
                } else if let Some(colon) = name.find(':') {
                    data.push((name, colon, value));
                } else {
                    return Err(MalformedHash(format!(
                        "field `{name}` is neither metadata nor `namespace:field`"
                    )));
                }
            }
        }
    }
    if deadline.is_none() && namespaces.is_empty() && data.is_empty() {
        // Metadata alone (the call id a deleting save leaves for a minute):
        // no session.
        return Ok(None);
    }
    let missing = |what: &str| MalformedHash(format!("`{what}` is missing"));
    let deadline = deadline.ok_or_else(|| missing("@e"))?;
    let created = created.ok_or_else(|| missing("@c"))?;
    let last_seen = last_seen.ok_or_else(|| missing("@l"))?;
    if deadline <= now {
        return Ok(None);
    }
    // Redis returns a hash in no particular order; fields read back in name
    // order, so one stored state is always the same record.
    data.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (mut name, colon, value) in data {
        let Some((_, _, fields)) = namespaces.get_mut(&name[..colon]) else {
            let (ns, field) = name.split_at(colon);
            return Err(MalformedHash(format!(
                "field `{ns}{field}` has no `@n:{ns}` entry"
            )));
        };
        name.drain(..=colon);
        fields.insert(name, value);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|(name, (version, revision, fields))| {
            NamespaceRecord::new(name, version, revision, fields)
        })
        .collect();
    Ok(Some(Record::new(created, last_seen, deadline, namespaces)))
}

/// The hash the save script writes for `record` (with `counter` as `@r`):
/// the inverse of [`record`], for the property tests and the fuzz target.
pub(crate) fn layout(record: &Record, counter: u64) -> Pairs {
    let mut pairs = vec![
        (
            b"@c".to_vec(),
            record.created_at_ms.to_string().into_bytes(),
        ),
        (b"@l".to_vec(), record.last_seen_ms.to_string().into_bytes()),
        (
            b"@e".to_vec(),
            record.expires_at_ms.to_string().into_bytes(),
        ),
        (b"@r".to_vec(), counter.to_string().into_bytes()),
    ];
    for ns in record.namespaces.iter() {
        pairs.push((
            format!("@n:{}", ns.name).into_bytes(),
            format!("{}:{}", ns.version, ns.revision).into_bytes(),
        ));
        for (field, value) in ns.fields.iter() {
            pairs.push((format!("{}:{field}", ns.name).into_bytes(), value.to_vec()));
        }
    }
    pairs
}

/// Splits fuzz input into hash pairs: each name and value is one length
/// byte followed by that many bytes.
pub(crate) fn split_pairs(mut data: &[u8]) -> Pairs {
    fn take<'d>(data: &mut &'d [u8]) -> Option<&'d [u8]> {
        let (&len, rest) = data.split_first()?;
        let len = usize::from(len).min(rest.len());
        let (item, rest) = rest.split_at(len);
        *data = rest;
        Some(item)
    }
    let mut pairs = Vec::new();
    while let (Some(name), Some(value)) = (take(&mut data), take(&mut data)) {
        pairs.push((name.to_vec(), value.to_vec()));
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn namespace_name() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_.-]{0,12}"
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        let ns = (
            namespace_name(),
            any::<u32>(),
            1..u64::MAX / 2,
            proptest::collection::btree_map(
                "[a-zA-Z_][a-zA-Z0-9_:]{0,10}",
                proptest::collection::vec(any::<u8>(), 0..40),
                0..5,
            ),
        );
        (
            0..u64::MAX / 4,
            0..u64::MAX / 4,
            proptest::collection::btree_map(namespace_name(), ns, 0..4),
        )
            .prop_map(|(created, last_seen, namespaces)| {
                let namespaces = namespaces
                    .into_iter()
                    .map(|(name, (_, version, revision, fields))| {
                        NamespaceRecord::new(
                            name,
                            version,
                            revision,
                            fields.into_iter().collect::<FieldMap>(),
                        )
                    })
                    .collect();
                Record::new(created, last_seen, u64::MAX / 2, namespaces)
            })
    }

    proptest! {
        #[test]
        fn every_record_reads_back_from_its_layout(record in arb_record(), counter in any::<u64>()) {
            let pairs = layout(&record, counter);
            let read = super::record(pairs.clone(), 0).unwrap().unwrap();
            prop_assert_eq!(read, record);
        }

        #[test]
        fn the_order_of_the_fields_does_not_matter(record in arb_record(), seed in any::<u64>()) {
            let mut pairs = layout(&record, 7);
            let len = pairs.len();
            for i in 0..len {
                let j = usize::try_from(seed.rotate_left(u32::try_from(i % 64).unwrap()) % len as u64).unwrap();
                pairs.swap(i, j);
            }
            let read = super::record(pairs.clone(), 0).unwrap().unwrap();
            prop_assert_eq!(read, record);
        }

        #[test]
        fn arbitrary_hashes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), now in any::<u64>()) {
            let _ = super::record(split_pairs(&data), now);
        }

        #[test]
        fn a_changed_metadata_byte_is_an_error_or_another_record(record in arb_record(), at in any::<usize>(), byte in any::<u8>()) {
            let mut pairs = layout(&record, 1);
            let meta: Vec<usize> = (0..pairs.len()).filter(|&i| pairs[i].0.starts_with(b"@")).collect();
            let i = meta[at % meta.len()];
            let value = &mut pairs[i].1;
            if !value.is_empty() {
                let j = at % value.len();
                value[j] = byte;
            }
            // Whatever it reads as, it reads without a panic, and an
            // unchanged hash reads as the record.
            let _ = super::record(pairs.clone(), 0);
        }
    }

    #[test]
    fn expired_records_and_tombstones_read_as_none_and_moving_ones_as_they_are() {
        let record = Record::new(1, 1, 100, Vec::new());
        let pairs = layout(&record, 0);
        assert!(super::record(pairs.clone(), 99).unwrap().is_some());
        assert!(super::record(pairs.clone(), 100).unwrap().is_none());
        let mut moving = pairs.clone();
        moving.push((b"@m".to_vec(), b"abcd|50".to_vec()));
        assert_eq!(super::record(moving, 49).unwrap(), Some(record));
        let tombstone = vec![(b"@m".to_vec(), b"done|abcd".to_vec())];
        assert!(super::record(tombstone, 0).unwrap().is_none());
    }

    #[test]
    fn malformed_hashes_name_the_field_not_the_value() {
        let cases: [&[(&[u8], &[u8])]; 5] = [
            &[(b"@c", b"1"), (b"@l", b"1"), (b"a:x", b"secret")],
            &[(b"@c", b"1"), (b"@l", b"1"), (b"@e", b"+9")],
            &[
                (b"@c", b"1"),
                (b"@l", b"1"),
                (b"@e", b"9"),
                (b"@n:a", b"secret"),
            ],
            &[
                (b"@c", b"1"),
                (b"@l", b"1"),
                (b"@e", b"9"),
                (b"a:x", b"secret"),
            ],
            &[
                (b"@c", b"1"),
                (b"@l", b"1"),
                (b"@e", b"9"),
                (b"nocolon", b"secret"),
            ],
        ];
        for pairs in cases {
            let owned = pairs
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect();
            let err = super::record(owned, 0).unwrap_err().to_string();
            assert!(err.starts_with("malformed session hash"), "{err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
