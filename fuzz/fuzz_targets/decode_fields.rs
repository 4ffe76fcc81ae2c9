//! Arbitrary stored data through `SessionData::decode_fields`: a version and
//! a few `(name, bytes)` pairs, as a hostile or corrupted store could return
//! them. Decoding must never panic, and a value that decodes must survive
//! `encode_fields` → `decode_fields` unchanged (and encode to the same bytes
//! twice: dirty detection compares encodings).

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use typed_sessions::{FieldMap, SessionData};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Address {
    city: String,
    zip: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
enum Role {
    #[default]
    Guest,
    Member {
        since: u64,
    },
    Admin(String),
}

/// Version 1 of the `profile` namespace.
#[derive(SessionData, Debug, Default, PartialEq)]
#[session(namespace = "profile", version = 1)]
struct ProfileV1 {
    name: String,
    age: u8,
    tags: Vec<String>,
}

/// Version 2, the current one: several field types, a default, a rename.
#[derive(SessionData, Debug, Default, PartialEq)]
#[session(namespace = "profile", version = 2, migrate_from = ProfileV1)]
struct Profile {
    #[session(rename = "n")]
    name: String,
    age: u16,
    admin: bool,
    balance: i64,
    ratio: f64,
    initial: char,
    user_id: Option<u64>,
    tags: Vec<String>,
    scores: BTreeMap<String, i32>,
    address: Address,
    role: Role,
    pair: (u8, String),
    #[session(default)]
    theme: Option<String>,
    #[session(skip)]
    cache: Vec<u8>,
}

impl From<ProfileV1> for Profile {
    fn from(v1: ProfileV1) -> Self {
        Self {
            name: v1.name,
            age: u16::from(v1.age),
            tags: v1.tags,
            theme: Some("migrated".into()),
            ..Self::default()
        }
    }
}

/// The stored names the schemas know (`name` is v1's name of v2's `n`), each
/// with valid encodings of values of its type: an input gives each name a
/// sample, any other name's sample, raw bytes, or nothing. Raw bytes alone
/// almost never make all twelve v2 fields decode, and the interesting cases
/// are the values that do, and their near misses.
const FIELDS: &[(&str, &[&[u8]])] = &[
    ("n", STRINGS),
    ("name", STRINGS),
    ("age", &[b"0", b"255", b"65535", b"65536", b"-1"]),
    ("admin", &[b"true", b"false", b"0"]),
    (
        "balance",
        &[
            b"-9223372036854775808",
            b"9223372036854775807",
            b"9223372036854775808",
            b"1.0",
        ],
    ),
    (
        "ratio",
        &[
            b"0.5",
            b"-0.0",
            b"7",
            b"1e309",
            b"0.30000000000000004",
            b"1.7976931348623157e308",
            b"2.2250738585072014e-308",
            b"5e-324",
            b"1.2345678901234567e-250",
            b"9.8765432109876543e200",
        ],
    ),
    (
        "initial",
        &[b"\"x\"", b"\"\\ud83d\\ude00\"", b"\"xy\"", b"\"\""],
    ),
    (
        "user_id",
        &[
            b"null",
            b"0",
            b"18446744073709551615",
            b"18446744073709551616",
        ],
    ),
    ("tags", &[b"[]", b"[\"a\",\"b\"]", b"[\"\\u0000\"]", b"[1]"]),
    (
        "scores",
        &[
            b"{}",
            b"{\"a\":1,\"b\":-2}",
            b"{\"a\":1,\"a\":2}",
            b"{\"1\":2147483648}",
        ],
    ),
    (
        "address",
        &[
            b"{\"city\":\"Oslo\",\"zip\":null}",
            b"{\"city\":\"\",\"zip\":4294967295}",
            b"{\"zip\":1,\"city\":\"x\",\"extra\":[]}",
            b"[\"Oslo\",1]",
            b"{\"city\":\"x\"}",
        ],
    ),
    (
        "role",
        &[
            b"\"Guest\"",
            b"{\"Member\":{\"since\":1}}",
            b"{\"Admin\":\"root\"}",
            b"{\"Guest\":null}",
            b"\"Admin\"",
        ],
    ),
    (
        "pair",
        &[b"[1,\"a\"]", b"[256,\"a\"]", b"[1]", b"[1,\"a\",2]"],
    ),
    ("theme", &[b"null", b"\"dark\""]),
    ("cache", &[b"[1,2]"]),
    ("", &[b"null"]),
];

const STRINGS: &[&[u8]] = &[
    b"\"ann\"",
    b"\"\"",
    b"\"\\u00e9\\ud83d\\ude00\"",
    b"\"\\ud800\"",
    b"\"a\\\"b\"",
    b"\"\xc3\xa9\"",
    b"\"\xff\"",
];

#[derive(Debug)]
struct Input {
    version: u32,
    fields: Vec<(String, Vec<u8>)>,
}

fn value(u: &mut Unstructured<'_>, own: &[&[u8]]) -> arbitrary::Result<Vec<u8>> {
    Ok(match u.int_in_range(0u8..=15)? {
        // Mostly a valid value of the field's own type.
        0..=10 => u.choose(own)?.to_vec(),
        // A valid value of some other field's type.
        11 => {
            let other = u.choose(FIELDS)?.1;
            u.choose(other)?.to_vec()
        }
        // A valid value followed by hostile bytes.
        12 => {
            let mut bytes = u.choose(own)?.to_vec();
            bytes.extend_from_slice(u.arbitrary::<&[u8]>()?);
            bytes
        }
        // Anything at all.
        _ => u.arbitrary()?,
    })
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        // Mostly the versions the chain knows (0..=3: below, v1, v2, newer),
        // sometimes any u32.
        let version = if u.ratio(7u8, 8u8)? {
            u32::from(u.int_in_range(0u8..=3)?)
        } else {
            u.arbitrary()?
        };
        let mut fields = Vec::new();
        for (name, own) in FIELDS {
            // Present more often than not.
            if u.ratio(3u8, 4u8)? {
                fields.push(((*name).to_owned(), value(u, own)?));
            }
        }
        // A few more entries: duplicates, unknown names, anything.
        for _ in 0..u.int_in_range(0u8..=3)? {
            let name = if u.ratio(1u8, 2u8)? {
                u.choose(FIELDS)?.0.to_owned()
            } else {
                u.arbitrary()?
            };
            fields.push((name, u.arbitrary()?));
        }
        Ok(Self { version, fields })
    }
}

fuzz_target!(|input: Input| {
    let stored: FieldMap = input
        .fields
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let Ok(decoded) = Profile::decode_fields(input.version, &stored) else {
        return;
    };
    // Whatever version it was read at, the value is now a current-version one.
    let encoded = decoded.encode_fields().expect("a decoded value encodes");
    let again = Profile::decode_fields(Profile::VERSION, &encoded)
        .expect("an encoded value decodes at the current version");
    assert_eq!(again, decoded, "encode → decode is not the identity");
    let reencoded = again.encode_fields().expect("a decoded value encodes");
    assert_eq!(reencoded, encoded, "encoding is not stable");
    assert_eq!(
        decoded
            .changed_fields(&encoded)
            .expect("a decoded value encodes"),
        Vec::<&str>::new(),
        "a freshly encoded value reports changes"
    );
});
