//! The client-side store: the whole session sealed in the cookie.
//!
//! [`CookieStore`] is what users configure; `key` holds the master key and
//! its HKDF sub-keys, `framing` the compact binary body, `store` the
//! envelope (AES-256-GCM or HMAC-SHA256) and the sealer the layer uses,
//! `opened` the values sealed or opened recently, kept with what they hold.

mod framing;
mod key;
mod opened;
mod store;

pub use key::{CookieKey, KeyError};
pub use store::CookieStore;

/// Entry points for the fuzz target (`fuzz/fuzz_targets/cookie_envelope.rs`):
/// the decoders of untrusted cookie bytes, without a layer around them.
#[doc(hidden)]
pub mod __fuzz {
    use crate::backend::Sealer as _;
    use crate::id::RawId;

    /// Decodes an envelope body; when it decodes, checks that it encodes
    /// back to the same bytes, and that sealing it and opening the result
    /// gives it back. `None` when it does not decode.
    ///
    /// # Panics
    /// When a check fails: that is what the fuzzer looks for.
    pub fn body(body: &[u8]) -> Option<usize> {
        let (id, record) = super::framing::decode(body)?;
        let mut again = Vec::new();
        super::framing::encode(&id, &record, &mut again);
        assert_eq!(again, body, "one encoding per record");
        for store in stores() {
            // Sealed by a sealer that remembers it; opened by one that does
            // not (base64, MAC or AEAD, parse), then from memory.
            let remembering = store.clone().cache_capacity(64);
            let sealer = remembering.sealer("session").expect("a valid store");
            let fresh = store.sealer("session").expect("a valid store");
            if let Ok(value) = sealer.seal(&id, &record) {
                let opened = fresh.open(&value).expect("a sealed record opens");
                assert!(opened.id == id && opened.record == record);
                let remembered = sealer.open(&value).expect("a sealed record opens");
                assert!(remembered.id == id && remembered.record == record);
            }
        }
        Some(record.namespaces.len())
    }

    /// Opens an arbitrary cookie value in both modes; `true` if either
    /// opened (the fuzzer should never find one).
    pub fn open(value: &str) -> bool {
        stores().into_iter().any(|store| {
            let sealer = store.sealer("session").expect("a valid store");
            sealer.open(value).is_ok()
        })
    }

    /// A value sealed by the stores [`open`] uses, for seeding a corpus.
    pub fn sealed_sample(signed: bool) -> String {
        let store = stores().swap_remove(usize::from(signed));
        let sealer = store.sealer("session").expect("a valid store");
        let record = crate::store::Record::new(1, 2, 3, Vec::new());
        sealer
            .seal(&RawId::from_bytes([7; 16]), &record)
            .expect("an empty record fits")
    }

    /// Stores that remember nothing: every open runs the real decoders.
    fn stores() -> Vec<super::CookieStore> {
        let key = || super::CookieKey::from_bytes(vec![0x5a; 32]);
        vec![
            super::CookieStore::private(key()).cache_capacity(0),
            super::CookieStore::signed(key()).cache_capacity(0),
        ]
    }
}
