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

/// The stored names the schemas know, plus names they do not.
const NAMES: &[&str] = &[
    "n", "name", "age", "admin", "balance", "ratio", "initial", "user_id", "tags", "scores",
    "address", "role", "pair", "theme", "cache", "",
];

/// Valid encodings of values of every field type. An input picks one of
/// them or raw bytes for each field: raw bytes alone almost never make all
/// twelve fields decode, and the interesting cases are values that do.
const SAMPLES: &[&[u8]] = &[
    b"\"ann\"",
    b"\"\"",
    b"\"\\u00e9\\ud83d\\ude00\"",
    b"0",
    b"255",
    b"65535",
    b"-9223372036854775808",
    b"18446744073709551615",
    b"0.5",
    b"-1.7976931348623157e308",
    b"5e-324",
    b"true",
    b"false",
    b"null",
    b"\"x\"",
    b"[]",
    b"[\"a\",\"b\"]",
    b"{}",
    b"{\"a\":1,\"b\":-2}",
    b"{\"city\":\"Oslo\",\"zip\":null}",
    b"{\"city\":\"\",\"zip\":4294967295}",
    b"\"Guest\"",
    b"{\"Member\":{\"since\":1}}",
    b"{\"Admin\":\"root\"}",
    b"[1,\"a\"]",
];

#[derive(Debug)]
struct Input {
    version: u32,
    fields: Vec<(String, Vec<u8>)>,
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
        let count = u.int_in_range(0u8..=16)?;
        let mut fields = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let name = if u.ratio(15u8, 16u8)? {
                (*u.choose(NAMES)?).to_owned()
            } else {
                u.arbitrary()?
            };
            let value: Vec<u8> = if u.ratio(3u8, 4u8)? {
                let mut sample = u.choose(SAMPLES)?.to_vec();
                // Sometimes with hostile bytes appended to a valid value.
                if u.ratio(1u8, 8u8)? {
                    sample.extend_from_slice(u.arbitrary()?);
                }
                sample
            } else {
                u.arbitrary()?
            };
            fields.push((name, value));
        }
        Ok(Self { version, fields })
    }
}

fuzz_target!(|input: Input| {
    let stored: FieldMap = input
        .fields
        .iter()
        .map(|(name, value)| (name.as_str(), value.clone()))
        .collect();
    let Ok(decoded) = Profile::decode_fields(input.version, &stored) else {
        return;
    };
    {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N1: AtomicUsize = AtomicUsize::new(0);
        static N2: AtomicUsize = AtomicUsize::new(0);
        let n = if input.version == 1 { &N1 } else { &N2 };
        let c = n.fetch_add(1, Ordering::Relaxed);
        if c.is_power_of_two() { eprintln!("TMPSUCCESS v{} #{c}", input.version); }
    }
    // Whatever version it was read at, the value is now a current-version one.
    let encoded = decoded
        .encode_fields()
        .expect("a decoded value encodes");
    let again = Profile::decode_fields(Profile::VERSION, &encoded)
        .expect("an encoded value decodes at the current version");
    assert_eq!(again, decoded, "encode → decode is not the identity");
    let reencoded = again.encode_fields().expect("a decoded value encodes");
    assert_eq!(reencoded, encoded, "encoding is not stable");
    assert_eq!(
        decoded.changed_fields(&encoded).expect("a decoded value encodes"),
        Vec::<&str>::new(),
        "a freshly encoded value reports changes"
    );
});
