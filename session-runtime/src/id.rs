//! Session ids: random, never adopted from a client, never stored or logged raw.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Length of a raw id: 128 bits from the OS CSPRNG.
pub(crate) const ID_BYTES: usize = 16;
/// Length of the base64url form of an id in the cookie.
const ID_CHARS: usize = 22;

/// A raw session id. Crate-private: it leaves the process only as a cookie
/// value, and a store only ever sees its SHA-256 ([`SessionKey`]).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RawId([u8; ID_BYTES]);

impl RawId {
    /// A fresh id from the operating system's CSPRNG.
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Parses the cookie form. Anything but exactly 22 canonical base64url
    /// characters is `None`.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        if value.len() != ID_CHARS {
            return None;
        }
        let mut bytes = [0u8; ID_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(value.as_bytes(), &mut bytes) {
            Ok(ID_BYTES) => Some(Self(bytes)),
            _ => None,
        }
    }

    /// The id's bytes, for a sealed cookie that carries it.
    pub(crate) fn as_bytes(&self) -> &[u8; ID_BYTES] {
        &self.0
    }

    /// An id read back from a sealed (authenticated) cookie.
    pub(crate) fn from_bytes(bytes: [u8; ID_BYTES]) -> Self {
        Self(bytes)
    }

    #[cfg(test)]
    pub(crate) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub(crate) fn encode_into(&self, out: &mut String) {
        URL_SAFE_NO_PAD.encode_string(self.0, out);
    }

    /// The key of an opened sealed session in its request-local store: the
    /// id itself, padded (a request-local store is never shared, so there
    /// is nothing to hide the id from, and no hash to pay for). It cannot
    /// meet the [`key`](Self::key) of another id, which is a SHA-256.
    pub(crate) fn local_key(&self) -> SessionKey {
        let mut bytes = [0u8; 32];
        bytes[..ID_BYTES].copy_from_slice(&self.0);
        SessionKey(bytes)
    }

    pub(crate) fn key(&self) -> SessionKey {
        SessionKey(Sha256::digest(self.0).into())
    }

    /// A short keyed hash for logs: the first 8 bytes of HMAC-SHA256 under a
    /// per-layer secret, in hex. It identifies a session across log lines
    /// without being usable as (or reversible to) the id.
    pub(crate) fn log_hash(&self, secret: &LogSecret) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&secret.0[..]).expect("HMAC takes any key length");
        mac.update(&self.0);
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(16);
        for byte in &tag[..8] {
            use fmt::Write as _;
            let _ = write!(out, "{byte:02x}");
        }
        out
    }
}

impl fmt::Debug for RawId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawId(<redacted>)")
    }
}

/// The secret behind log hashes: random per layer.
#[derive(Clone)]
pub(crate) struct LogSecret(Arc<[u8; 32]>);

impl LogSecret {
    /// A secret shared by every process that has the same key material
    /// (a client-side store derives one from its master key).
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Arc::new(bytes))
    }

    /// A secret derived from a key the application gives (HKDF-SHA256).
    pub(crate) fn derive(key: &[u8]) -> Self {
        let mut bytes = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(Some(b"typed-sessions log hash"), key)
            .expand(b"", &mut bytes)
            .expect("32 bytes is within HKDF's limit");
        Self(Arc::new(bytes))
    }

    pub(crate) fn generate() -> Self {
        let mut bytes = [0u8; 32];
        // Without OS randomness ids cannot be made either; a zero secret
        // only weakens log hashes, so do not fail here.
        let _ = getrandom::fill(&mut bytes);
        Self(Arc::new(bytes))
    }
}

/// The key a store files a session under: the SHA-256 of the session id.
///
/// A store never sees the id itself, so a leaked store dump or a store log
/// cannot be replayed as a cookie.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// The 32 bytes of the hash.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash in lowercase hex (64 characters), e.g. for a key-value store key.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for byte in &self.0 {
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
        }
        out
    }

    /// A key from its bytes, for stores that read keys back.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({}…)", &self.to_hex()[..12])
    }
}

/// The identity of a session as handlers may see it.
///
/// Its `Display` and `Debug` show only a short keyed hash of the id (the
/// same one the runtime's logs carry), never the id itself. Two values are
/// equal when they name the same session.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId {
    hash: String,
}

impl SessionId {
    pub(crate) fn new(raw: &RawId, secret: &LogSecret) -> Self {
        Self {
            hash: raw.log_hash(secret),
        }
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hash)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_round_trip() {
        let a = RawId::generate().unwrap();
        let b = RawId::generate().unwrap();
        assert_ne!(a, b);
        let encoded = a.encode();
        assert_eq!(encoded.len(), ID_CHARS);
        assert_eq!(RawId::parse(&encoded), Some(a));
    }

    /// A million ids: all distinct, all 22 characters of the base64url
    /// alphabet, and their bits balanced. A constant or counter generator
    /// fails the first check; a generator with a stuck or biased bit fails
    /// the last (each of the 128 bit positions is set in 50 % ± 0.5 % of
    /// the ids: for fair bits the tolerance is over 10 standard deviations,
    /// so a fair generator fails it with negligible probability).
    #[test]
    fn a_million_ids_are_unique_well_formed_and_balanced() {
        const N: usize = 1_000_000;
        let mut seen = std::collections::HashSet::with_capacity(N);
        let mut ones = [0u32; ID_BYTES * 8];
        let mut text = String::with_capacity(ID_CHARS);
        for _ in 0..N {
            let id = RawId::generate().unwrap();
            text.clear();
            id.encode_into(&mut text);
            assert_eq!(text.len(), ID_CHARS);
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{text}"
            );
            for (i, byte) in id.0.iter().enumerate() {
                for bit in 0..8 {
                    ones[i * 8 + bit] += u32::from((byte >> bit) & 1);
                }
            }
            assert!(seen.insert(id.0), "a repeated id");
        }
        for (position, &count) in ones.iter().enumerate() {
            let share = f64::from(count) / 1_000_000.0;
            assert!(
                (0.495..=0.505).contains(&share),
                "bit {position} is set in {share} of the ids"
            );
        }
    }

    #[test]
    fn malformed_ids_are_refused() {
        let good = RawId::generate().unwrap().encode();
        assert!(RawId::parse("").is_none());
        assert!(RawId::parse(&good[..21]).is_none());
        assert!(RawId::parse(&format!("{good}A")).is_none());
        assert!(RawId::parse("!!!!!!!!!!!!!!!!!!!!!!").is_none());
        // Non-canonical trailing bits: the last char of 16 bytes carries 2 bits.
        let mut bad = good.clone();
        bad.replace_range(21.., "B");
        let canonical = RawId::parse(&bad).is_some_and(|id| id.encode() == bad);
        assert!(RawId::parse(&bad).is_none() || canonical);
    }

    proptest::proptest! {
        #[test]
        fn any_string_parses_without_panic_and_only_canonically(value in ".{0,40}") {
            if let Some(id) = RawId::parse(&value) {
                proptest::prop_assert_eq!(id.encode(), value);
            }
        }

        #[test]
        fn any_id_round_trips_through_its_cookie_form(bytes in proptest::array::uniform16(proptest::prelude::any::<u8>())) {
            let id = RawId(bytes);
            proptest::prop_assert_eq!(RawId::parse(&id.encode()), Some(id));
        }

        #[test]
        fn base64url_alphabet_strings_of_id_length_never_panic(value in "[A-Za-z0-9_-]{22}") {
            if let Some(id) = RawId::parse(&value) {
                proptest::prop_assert_eq!(id.encode(), value);
            }
        }
    }

    #[test]
    fn log_hash_is_keyed_and_short() {
        let id = RawId::generate().unwrap();
        let (s1, s2) = (LogSecret::generate(), LogSecret::generate());
        assert_eq!(id.log_hash(&s1).len(), 16);
        assert_eq!(id.log_hash(&s1), id.log_hash(&s1));
        assert_ne!(id.log_hash(&s1), id.log_hash(&s2));
        assert!(!id.log_hash(&s1).contains(&id.encode()));
    }
}
