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

/// The field/value pairs of an `HGETALL` reply (RESP2 array or RESP3 map).
pub(crate) fn pairs(reply: &Value) -> Option<Vec<(&[u8], &[u8])>> {
    fn bytes(v: &Value) -> Option<&[u8]> {
        match v {
            Value::BulkString(b) => Some(b),
            Value::SimpleString(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
    match reply {
        Value::Array(items) if items.len() % 2 == 0 => items
            .chunks(2)
            .map(|pair| Some((bytes(&pair[0])?, bytes(&pair[1])?)))
            .collect(),
        Value::Map(items) => items
            .iter()
            .map(|(k, v)| Some((bytes(k)?, bytes(v)?)))
            .collect(),
        Value::Nil => Some(Vec::new()),
        _ => None,
    }
}

/// A decimal `u64` written by the scripts: ASCII digits only.
pub(crate) fn number(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Whether a move marker (`<target>|<lease end>`) still holds at `now`.
pub(crate) fn lease_holds(marker: &[u8], now: u64) -> bool {
    marker
        .iter()
        .position(|&b| b == b'|')
        .and_then(|bar| number(&marker[bar + 1..]))
        .is_some_and(|lease_end| lease_end > now)
}

/// The record in a session hash, `None` when there is none, it expired at
/// `now`, or it is being moved.
///
/// # Errors
/// When the hash is not one this store wrote.
pub(crate) fn record(pairs: &[(&[u8], &[u8])], now: u64) -> Result<Option<Record>, MalformedHash> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut created = None;
    let mut last_seen = None;
    let mut deadline = None;
    let mut namespaces: BTreeMap<&str, (u32, u64, FieldMap)> = BTreeMap::new();
    let mut data: Vec<(&str, &str, &[u8])> = Vec::new();
    for &(name, value) in pairs {
        let name = std::str::from_utf8(name)
            .map_err(|_| MalformedHash("a field name is not UTF-8".to_owned()))?;
        let meta = |what: &str| {
            number(value).ok_or_else(|| MalformedHash(format!("`{what}` is not a number")))
        };
        match name {
            "@c" => created = Some(meta("@c")?),
            "@l" => last_seen = Some(meta("@l")?),
            "@e" => deadline = Some(meta("@e")?),
            "@r" => {
                meta("@r")?;
            }
            "@m" => {
                if lease_holds(value, now) {
                    return Ok(None);
                }
            }
            _ => {
                if let Some(ns) = name.strip_prefix("@n:") {
                    let (version, revision) = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.split_once(':'))
                        .and_then(|(v, r)| {
                            let version = u32::try_from(number(v.as_bytes())?).ok()?;
                            Some((version, number(r.as_bytes())?))
                        })
                        .ok_or_else(|| {
                            MalformedHash(format!("`@n:{ns}` is not `version:revision`"))
                        })?;
                    namespaces.insert(ns, (version, revision, FieldMap::new()));
                } else if name.starts_with('@') {
                    // Metadata of a newer version: not ours to judge.
                } else if let Some((ns, field)) = name.split_once(':') {
                    data.push((ns, field, value));
                } else {
                    return Err(MalformedHash(format!(
                        "field `{name}` is neither metadata nor `namespace:field`"
                    )));
                }
            }
        }
    }
    let missing = |what: &str| MalformedHash(format!("`{what}` is missing"));
    let deadline = deadline.ok_or_else(|| missing("@e"))?;
    let created = created.ok_or_else(|| missing("@c"))?;
    let last_seen = last_seen.ok_or_else(|| missing("@l"))?;
    if deadline <= now {
        return Ok(None);
    }
    for (ns, field, value) in data {
        let (_, _, fields) = namespaces
            .get_mut(ns)
            .ok_or_else(|| MalformedHash(format!("field `{ns}:{field}` has no `@n:{ns}` entry")))?;
        fields.insert(field.to_owned(), value.to_vec());
    }
    let namespaces = namespaces
        .into_iter()
        .map(|(name, (version, revision, fields))| {
            NamespaceRecord::new(name, version, revision, fields)
        })
        .collect();
    Ok(Some(Record::new(created, last_seen, deadline, namespaces)))
}
