//! The envelope: round trips, tampering, keys, names, sizes.

use proptest::prelude::*;

use super::*;
use crate::backend::Sealer;
use crate::data::FieldMap;
use crate::store::NamespaceRecord;

fn key(byte: u8) -> CookieKey {
    CookieKey::from_bytes(vec![byte; 32])
}

/// A sealer that remembers nothing: every `open` here runs base64, the
/// MAC or AEAD and the parse (`remembered_values_open_as_the_keys_do`
/// covers the memory).
fn sealer(store: CookieStore, name: &str) -> CookieSealer {
    store.cache_capacity(0).sealer(name).expect("a valid store")
}

fn record(user: &str) -> Record {
    let mut fields = FieldMap::new();
    fields.insert("user", format!("\"{user}\"").into_bytes());
    fields.insert("visits", b"7".to_vec());
    Record::new(
        1_700_000_000_000,
        1_700_000_100_000,
        1_700_086_400_000,
        vec![NamespaceRecord::new("auth", 2, 5, fields)],
    )
}

fn both(primary: u8) -> [CookieStore; 2] {
    [
        CookieStore::private(key(primary)),
        CookieStore::signed(key(primary)),
    ]
}

#[test]
fn round_trip_in_both_modes() {
    for store in both(1) {
        let s = sealer(store, "session");
        let id = RawId::generate().unwrap();
        let value = s.seal(&id, &record("ann")).unwrap();
        let opened = s.open(&value).unwrap();
        assert!(opened.id == id);
        assert_eq!(opened.record, record("ann"));
        assert!(!opened.fallback);
    }
}

#[test]
fn remembered_values_open_as_the_keys_do() {
    for store in both(1) {
        let remembering = store.clone().sealer("session").unwrap();
        let fresh = sealer(store, "session");
        let id = RawId::generate().unwrap();
        let value = remembering.seal(&id, &record("ann")).unwrap();
        for s in [&remembering, &fresh, &remembering] {
            let opened = s.open(&value).unwrap();
            assert!(opened.id == id);
            assert_eq!(opened.record, record("ann"));
            assert!(!opened.fallback);
        }
        // A value the keys open is remembered by a sealer that opened it.
        let other = fresh.seal(&id, &record("bob")).unwrap();
        assert_eq!(remembering.open(&other).unwrap().record, record("bob"));
        assert!(remembering.opened.get(&other).is_some());
    }
}

#[test]
fn private_mode_hides_the_data_and_signed_mode_does_not() {
    let id = RawId::generate().unwrap();
    let private = sealer(CookieStore::private(key(1)), "session");
    let signed = sealer(CookieStore::signed(key(1)), "session");
    let needle = b"ann-the-secret-user";
    let raw_private = URL_SAFE_NO_PAD
        .decode(private.seal(&id, &record("ann-the-secret-user")).unwrap())
        .unwrap();
    let raw_signed = URL_SAFE_NO_PAD
        .decode(signed.seal(&id, &record("ann-the-secret-user")).unwrap())
        .unwrap();
    let contains = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(&raw_private));
    assert!(contains(&raw_signed));
}

#[test]
fn two_seals_of_the_same_data_differ_in_private_mode() {
    let s = sealer(CookieStore::private(key(1)), "session");
    let id = RawId::generate().unwrap();
    let a = s.seal(&id, &record("ann")).unwrap();
    let b = s.seal(&id, &record("ann")).unwrap();
    assert_ne!(a, b, "a fresh nonce per seal");
}

#[test]
fn wrong_key_unknown_key_and_other_mode_do_not_open() {
    let id = RawId::generate().unwrap();
    for (seal_with, open_with) in [
        (CookieStore::private(key(1)), CookieStore::private(key(2))),
        (CookieStore::signed(key(1)), CookieStore::signed(key(2))),
        (CookieStore::private(key(1)), CookieStore::signed(key(1))),
        (CookieStore::signed(key(1)), CookieStore::private(key(1))),
    ] {
        let value = sealer(seal_with, "session")
            .seal(&id, &record("ann"))
            .unwrap();
        assert!(sealer(open_with, "session").open(&value).is_err());
    }
}

#[test]
fn a_value_moved_to_another_cookie_name_does_not_open() {
    for store in both(1) {
        let id = RawId::generate().unwrap();
        let value = sealer(store.clone(), "session")
            .seal(&id, &record("ann"))
            .unwrap();
        assert!(matches!(
            sealer(store, "other").open(&value),
            Err(OpenError::Forged)
        ));
    }
}

#[test]
fn fallback_keys_open_and_are_reported_then_stop_once_removed() {
    for [old, new] in [
        [CookieStore::private(key(1)), CookieStore::private(key(2))],
        [CookieStore::signed(key(1)), CookieStore::signed(key(2))],
    ] {
        let id = RawId::generate().unwrap();
        let value = sealer(old, "session").seal(&id, &record("ann")).unwrap();
        let rotated = sealer(new.clone().fallback_key(key(1)), "session");
        let opened = rotated.open(&value).unwrap();
        assert!(opened.fallback, "opened with the fallback key");
        assert_eq!(opened.record, record("ann"));
        // Re-sealed by the rotated ring: primary key, opens without fallback.
        let resealed = rotated.seal(&opened.id, &opened.record).unwrap();
        assert!(!rotated.open(&resealed).unwrap().fallback);
        assert!(sealer(new.clone(), "session").open(&resealed).is_ok());
        // The old key removed: the old cookie no longer opens.
        assert!(sealer(new, "session").open(&value).is_err());
    }
}

#[test]
fn short_keys_and_bad_budgets_are_config_errors() {
    let short = CookieStore::private(CookieKey::from_bytes(vec![1; 31]));
    assert_eq!(
        short.sealer("session").err(),
        Some(ConfigError::KeyTooShort { len: 31, min: 32 })
    );
    let short_fallback =
        CookieStore::signed(key(1)).fallback_key(CookieKey::from_bytes(vec![1; 8]));
    assert!(matches!(
        short_fallback.sealer("session"),
        Err(ConfigError::KeyTooShort { len: 8, .. })
    ));
    for budget in [0, 127, 4097, usize::MAX] {
        let store = CookieStore::private(key(1)).max_cookie_size(budget);
        assert!(
            matches!(
                store.sealer("session"),
                Err(ConfigError::CookieBudget { .. })
            ),
            "{budget}"
        );
    }
    assert!(
        CookieStore::private(key(1))
            .max_cookie_size(128)
            .sealer("session")
            .is_ok()
    );
}

#[test]
fn over_the_budget_is_an_error_naming_size_and_budget() {
    let s = sealer(CookieStore::private(key(1)).max_cookie_size(300), "session");
    let id = RawId::generate().unwrap();
    assert!(s.seal(&id, &record("ann")).is_ok());
    let big = record(&"x".repeat(400));
    match s.seal(&id, &big) {
        Err(SealError::TooLarge { size, budget }) => {
            assert_eq!(budget, 300);
            assert!(size > 300);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn the_size_estimate_is_exact() {
    for store in both(3) {
        let s = sealer(store, "a-name");
        for user in ["", "a", "ann", &"y".repeat(1000)] {
            let value = s.seal(&RawId::generate().unwrap(), &record(user)).unwrap();
            let raw_len = s.overhead() + framing::encoded_len(&record(user));
            assert_eq!(value.len(), (raw_len * 4).div_ceil(3));
        }
    }
}

#[test]
fn bad_inputs_are_refused_with_a_reason() {
    let s = sealer(CookieStore::private(key(1)), "session");
    let value = s.seal(&RawId::generate().unwrap(), &record("ann")).unwrap();
    assert!(matches!(s.open(""), Err(OpenError::Truncated)));
    assert!(matches!(s.open("AAAA"), Err(OpenError::Truncated)));
    assert!(matches!(s.open("not base64!"), Err(OpenError::Encoding)));
    assert!(matches!(
        s.open(&"A".repeat(5000)),
        Err(OpenError::TooLarge)
    ));
    assert!(s.open(&value[..value.len() - 1]).is_err());
    assert!(matches!(
        s.open(&format!("{value}AAAA")),
        Err(OpenError::Forged)
    ));
    let mut raw = URL_SAFE_NO_PAD.decode(&value).unwrap();
    raw[1] ^= 0xff;
    assert!(matches!(
        s.open(&URL_SAFE_NO_PAD.encode(&raw)),
        Err(OpenError::UnknownKey)
    ));
    raw[1] ^= 0xff;
    raw[0] = 0x7f;
    assert!(matches!(
        s.open(&URL_SAFE_NO_PAD.encode(&raw)),
        Err(OpenError::Format)
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_single_bit_flip_is_rejected(signed in any::<bool>(), user in "[a-z]{0,40}", bit in any::<prop::sample::Index>()) {
        let store = if signed { CookieStore::signed(key(9)) } else { CookieStore::private(key(9)) };
        let s = sealer(store, "session");
        let value = s.seal(&RawId::generate().unwrap(), &record(&user)).unwrap();
        // Flip a bit of the decoded bytes, and separately of the text.
        let mut raw = URL_SAFE_NO_PAD.decode(&value).unwrap();
        let at = bit.index(raw.len() * 8);
        raw[at / 8] ^= 1 << (at % 8);
        prop_assert!(s.open(&URL_SAFE_NO_PAD.encode(&raw)).is_err());
        let mut text = value.clone().into_bytes();
        let at = bit.index(text.len() * 8);
        text[at / 8] ^= 1 << (at % 8);
        if let Ok(text) = String::from_utf8(text) {
            prop_assert!(s.open(&text).is_err());
        }
    }

    #[test]
    fn arbitrary_records_round_trip(signed in any::<bool>(), fields in proptest::collection::btree_map("[a-z_]{1,10}", proptest::collection::vec(any::<u8>(), 0..50), 0..8), times in any::<(u64, u64, u64)>()) {
        let store = if signed { CookieStore::signed(key(4)) } else { CookieStore::private(key(4)) };
        let s = sealer(store, "session");
        let namespaces = vec![NamespaceRecord::new("ns", 1, 3, fields.into_iter().collect())];
        let record = Record::new(times.0, times.1, times.2, namespaces);
        let id = RawId::generate().unwrap();
        let opened = s.open(&s.seal(&id, &record).unwrap()).unwrap();
        prop_assert!(opened.id == id);
        prop_assert_eq!(opened.record, record);
    }

    #[test]
    fn rotation_opens_with_the_fallback_reseals_with_the_primary_and_ends_with_removal(
        signed in any::<bool>(),
        old_key in proptest::collection::vec(any::<u8>(), 32..64),
        new_key in proptest::collection::vec(any::<u8>(), 32..64),
        user in "[a-z]{0,30}",
    ) {
        prop_assume!(old_key != new_key);
        let store = |bytes: &Vec<u8>| {
            let key = CookieKey::from_bytes(bytes.clone());
            if signed { CookieStore::signed(key) } else { CookieStore::private(key) }
        };
        let id = RawId::generate().unwrap();
        let old_cookie = sealer(store(&old_key), "session").seal(&id, &record(&user)).unwrap();
        let ring = sealer(
            store(&new_key).fallback_key(CookieKey::from_bytes(old_key.clone())),
            "session",
        );
        let opened = ring.open(&old_cookie).unwrap();
        prop_assert!(opened.fallback);
        prop_assert_eq!(&opened.record, &record(&user));
        let resealed = ring.seal(&opened.id, &opened.record).unwrap();
        let only_new = sealer(store(&new_key), "session");
        prop_assert!(!ring.open(&resealed).unwrap().fallback);
        prop_assert_eq!(only_new.open(&resealed).unwrap().record, record(&user));
        prop_assert!(only_new.open(&old_cookie).is_err());
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,600}") {
        let s = sealer(CookieStore::signed(key(5)), "session");
        let _ = s.open(&text);
    }
}

/// Two keys of one ring may share the one-byte id: opening tries both, the
/// primary first, and a failed attempt does not spoil the next one.
#[test]
fn keys_sharing_an_id_both_open() {
    let first = key(1);
    let twin = (2u8..=255)
        .map(key)
        .chain((0u16..2000).map(|i| CookieKey::from_bytes(i.to_le_bytes().repeat(16))))
        .find(|k| k.id() == first.id())
        .expect("a key with the same one-byte id among a few thousand");
    for (make, name) in [
        (
            CookieStore::private as fn(CookieKey) -> CookieStore,
            "private",
        ),
        (CookieStore::signed, "signed"),
    ] {
        let id = RawId::generate().unwrap();
        let by_twin = sealer(make(twin.clone()), "session")
            .seal(&id, &record("ann"))
            .unwrap();
        let ring = sealer(make(first.clone()).fallback_key(twin.clone()), "session");
        let opened = ring.open(&by_twin).expect(name);
        assert!(opened.fallback, "{name}");
        assert_eq!(opened.record, record("ann"));
        let by_first = ring.seal(&id, &record("bob")).unwrap();
        assert!(!ring.open(&by_first).unwrap().fallback, "{name}");
    }
}
