//! What `#[derive(SessionData)]` generates: metadata, encode/decode, the
//! migration chain, typed errors and the field-level diff.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use typed_sessions::{DecodeError, FieldMap, SessionData};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    sku: String,
    qty: u32,
}

// The v1 → v2 → v3 chain of one namespace.

#[derive(SessionData, Debug, Default, PartialEq)]
#[session(namespace = "cart", version = 1)]
struct CartV1 {
    items: Vec<String>,
}

#[derive(SessionData, Debug, Default, PartialEq)]
#[session(namespace = "cart", version = 2, migrate_from = CartV1)]
struct CartV2 {
    items: Vec<Item>,
}

impl From<CartV1> for CartV2 {
    fn from(v1: CartV1) -> Self {
        Self {
            items: v1
                .items
                .into_iter()
                .map(|sku| Item { sku, qty: 1 })
                .collect(),
        }
    }
}

#[derive(SessionData, Debug, Default, PartialEq)]
#[session(namespace = "cart")]
#[session(version = 3, migrate_from = CartV2)]
struct Cart {
    items: Vec<Item>,
    #[session(default)]
    coupon: Option<String>,
    #[session(skip)]
    cache: Vec<u8>,
}

impl From<CartV2> for Cart {
    fn from(v2: CartV2) -> Self {
        Self {
            items: v2.items,
            coupon: Some("migrated".into()),
            cache: Vec::new(),
        }
    }
}

#[derive(SessionData, Debug, Default, PartialEq, Clone)]
#[session(namespace = "profile")]
struct Profile {
    #[session(rename = "n")]
    name: String,
    age: u8,
    #[session(sensitive)]
    token: Option<String>,
    #[session(rotate_id)]
    user_id: Option<u64>,
    tags: Vec<String>,
}

#[test]
fn metadata_comes_from_attributes_and_names() {
    assert_eq!(Cart::NAMESPACE, "cart");
    assert_eq!(Cart::VERSION, 3);
    assert_eq!(CartV1::VERSION, 1);
    let names: Vec<_> = Cart::FIELDS
        .iter()
        .map(typed_sessions::FieldInfo::name)
        .collect();
    assert_eq!(names, ["items", "coupon"], "skipped fields are not stored");

    assert_eq!(Profile::NAMESPACE, "profile");
    assert_eq!(Profile::VERSION, 1);
    let names: Vec<_> = Profile::FIELDS
        .iter()
        .map(typed_sessions::FieldInfo::name)
        .collect();
    assert_eq!(names, ["n", "age", "token", "user_id", "tags"]);
    let sensitive: Vec<_> = Profile::FIELDS
        .iter()
        .filter(|f| f.sensitive())
        .map(typed_sessions::FieldInfo::name)
        .collect();
    assert_eq!(sensitive, ["token"]);
    let rotating: Vec<_> = Profile::FIELDS
        .iter()
        .filter(|f| f.rotate_id())
        .map(typed_sessions::FieldInfo::name)
        .collect();
    assert_eq!(rotating, ["user_id"]);
}

#[test]
fn v1_data_decodes_as_v3_through_the_chain() {
    let stored = CartV1 {
        items: vec!["a1".into(), "b2".into()],
    }
    .encode_fields()
    .unwrap();
    let cart = Cart::decode_fields(1, &stored).unwrap();
    assert_eq!(
        cart,
        Cart {
            items: vec![
                Item {
                    sku: "a1".into(),
                    qty: 1
                },
                Item {
                    sku: "b2".into(),
                    qty: 1
                }
            ],
            coupon: Some("migrated".into()),
            cache: Vec::new(),
        }
    );
}

#[test]
fn v2_data_decodes_as_v3_with_one_step() {
    let stored = CartV2 {
        items: vec![Item {
            sku: "x".into(),
            qty: 5,
        }],
    }
    .encode_fields()
    .unwrap();
    let cart = Cart::decode_fields(2, &stored).unwrap();
    assert_eq!(
        cart.items,
        vec![Item {
            sku: "x".into(),
            qty: 5
        }]
    );
    assert_eq!(cart.coupon.as_deref(), Some("migrated"));
}

#[test]
fn future_version_is_a_typed_error() {
    let stored = Cart::default().encode_fields().unwrap();
    match Cart::decode_fields(4, &stored) {
        Err(DecodeError::NewerVersion { found, latest }) => {
            assert_eq!((found, latest), (4, 3));
        }
        other => panic!("expected NewerVersion, got {other:?}"),
    }
}

#[test]
fn version_below_the_chain_is_unsupported() {
    // Version 0 is below CartV1, the oldest schema of the chain.
    let err = Cart::decode_fields(0, &FieldMap::new()).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnsupportedVersion { found: 0 }),
        "{err:?}"
    );
    // A schema without migrate_from only reads its own version.
    let err = Profile::decode_fields(0, &FieldMap::new()).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnsupportedVersion { found: 0 }),
        "{err:?}"
    );
}

#[test]
fn missing_default_field_decodes_to_default() {
    let mut stored = FieldMap::new();
    stored.insert("items", b"[]".to_vec());
    let cart = Cart::decode_fields(3, &stored).unwrap();
    assert_eq!(cart.coupon, None);
}

#[test]
fn missing_field_without_default_is_a_typed_error() {
    let mut stored = FieldMap::new();
    stored.insert("coupon", b"null".to_vec());
    let err = Cart::decode_fields(3, &stored).unwrap_err();
    assert!(
        matches!(err, DecodeError::MissingField { field: "items" }),
        "{err:?}"
    );
}

#[test]
fn undecodable_field_names_the_field_and_keeps_the_source() {
    let mut stored = Cart::default().encode_fields().unwrap();
    stored.insert("items", b"{not json".to_vec());
    let err = Cart::decode_fields(3, &stored).unwrap_err();
    assert!(
        matches!(err, DecodeError::Field { field: "items", .. }),
        "{err:?}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "source chain kept"
    );
}

#[test]
fn unknown_stored_fields_are_ignored() {
    let mut stored = Cart::default().encode_fields().unwrap();
    stored.insert("removed_long_ago", b"\"whatever\"".to_vec());
    assert_eq!(Cart::decode_fields(3, &stored).unwrap(), Cart::default());
}

#[test]
fn encode_field_out_of_range_is_an_error_not_a_panic() {
    assert!(Cart::default().encode_field(2).is_err());
}

#[test]
fn renamed_field_is_stored_under_its_new_name() {
    let profile = Profile {
        name: "ann".into(),
        ..Profile::default()
    };
    let stored = profile.encode_fields().unwrap();
    assert_eq!(stored.get("n"), Some(&b"\"ann\""[..]));
    assert_eq!(stored.get("name"), None);
}

fn profile_strategy() -> impl Strategy<Value = Profile> {
    (
        any::<String>(),
        any::<u8>(),
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<u64>()),
        proptest::collection::vec(any::<String>(), 0..4),
    )
        .prop_map(|(name, age, token, user_id, tags)| Profile {
            name,
            age,
            token,
            user_id,
            tags,
        })
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(profile in profile_strategy()) {
        let stored = profile.encode_fields().unwrap();
        prop_assert_eq!(Profile::decode_fields(1, &stored).unwrap(), profile);
    }

    #[test]
    fn diff_of_unchanged_value_is_empty(profile in profile_strategy()) {
        let stored = profile.encode_fields().unwrap();
        prop_assert!(profile.changed_fields(&stored).unwrap().is_empty());
    }

    #[test]
    fn changing_one_field_yields_exactly_that_field(
        profile in profile_strategy(),
        which in 0usize..5,
        salt in 1u8..=255,
    ) {
        let stored = profile.encode_fields().unwrap();
        let mut changed = profile.clone();
        match which {
            0 => changed.name.push(char::from(b'a' + salt % 26)),
            1 => changed.age = profile.age.wrapping_add(salt),
            2 => changed.token = if profile.token.is_some() { None } else { Some(String::new()) },
            3 => changed.user_id = Some(profile.user_id.map_or(0, |v| v.wrapping_add(u64::from(salt)))),
            _ => changed.tags.push(String::new()),
        }
        let expected = Profile::FIELDS[which].name();
        prop_assert_eq!(changed.changed_fields(&stored).unwrap(), vec![expected]);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        version in 0u32..6,
        items in proptest::collection::vec(any::<u8>(), 0..64),
        coupon in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut stored = FieldMap::new();
        stored.insert("items", items);
        stored.insert("coupon", coupon);
        let _ = Cart::decode_fields(version, &stored);
    }
}
