//! The master key of a [`CookieStore`](super::CookieStore) and the sub-keys
//! derived from it.
//!
//! One master secret (at least [`CookieKey::MIN_LEN`] bytes) feeds
//! HKDF-SHA256; each purpose gets its own sub-key (`info` names it), so the
//! encryption key, the signing key and the public key id never share bytes
//! and knowing one reveals nothing of the others.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// HKDF salt: fixes the derivation to this library and envelope format.
const SALT: &[u8] = b"typed-sessions cookie store v1";

/// A master key for a [`CookieStore`](super::CookieStore): random bytes
/// from which the encryption, signing and key-id sub-keys are derived.
///
/// Make one with `openssl rand -hex 32` (or `-base64 32`), keep it in a
/// secret store or an environment variable, and read it with
/// [`parse`](Self::parse). Its length is checked when the layer is built:
/// under [`MIN_LEN`](Self::MIN_LEN) bytes is a
/// [`ConfigError`](crate::ConfigError).
///
/// Its `Debug` shows only the public key id and the length:
///
/// ```
/// use typed_sessions::stores::CookieKey;
///
/// let key = CookieKey::parse(&"ab".repeat(32))?;
/// let shown = format!("{key:?}");
/// assert!(shown.starts_with("CookieKey { id: ") && shown.ends_with(", len: 32 }"));
/// assert!(!shown.contains("abab"));
/// # Ok::<(), typed_sessions::stores::KeyError>(())
/// ```
#[derive(Clone)]
pub struct CookieKey {
    bytes: Zeroizing<Vec<u8>>,
}

/// A master key that could not be read or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is neither hex nor base64 (standard or URL-safe, padded or not).
    #[error("the key is neither hex nor base64")]
    Encoding,
    /// The operating system gave no randomness for a new key.
    #[error("no OS randomness for a new key")]
    NoRandomness(#[source] getrandom::Error),
}

impl CookieKey {
    /// The shortest master key accepted, in bytes (256 bits).
    pub const MIN_LEN: usize = 32;

    /// A new random key of [`MIN_LEN`](Self::MIN_LEN) bytes from the OS
    /// CSPRNG. Sessions sealed with it do not survive a restart unless the
    /// key is kept; for production, read a stored key with
    /// [`parse`](Self::parse).
    ///
    /// # Errors
    /// [`KeyError::NoRandomness`] when the OS has no randomness to give.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new(vec![0u8; Self::MIN_LEN]);
        getrandom::fill(&mut bytes).map_err(KeyError::NoRandomness)?;
        Ok(Self { bytes })
    }

    /// A key from raw bytes (the length is checked when the layer is built).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: Zeroizing::new(bytes.into()),
        }
    }

    /// A key from hex text (either case; surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`KeyError::Encoding`] for anything but an even number of hex digits.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim().as_bytes();
        if text.is_empty() || !text.len().is_multiple_of(2) {
            return Err(KeyError::Encoding);
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(text.len() / 2));
        for pair in text.chunks_exact(2) {
            let high = hex_digit(pair[0]).ok_or(KeyError::Encoding)?;
            let low = hex_digit(pair[1]).ok_or(KeyError::Encoding)?;
            bytes.push(high << 4 | low);
        }
        Ok(Self { bytes })
    }

    /// A key from base64 text: standard or URL-safe alphabet, with or
    /// without padding; whitespace, line breaks included, is ignored (as
    /// `openssl rand -base64 64` wraps its output).
    ///
    /// # Errors
    /// [`KeyError::Encoding`] when the text is not base64.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let text: String = text.split_ascii_whitespace().collect();
        let text = text.as_str();
        if text.is_empty() {
            return Err(KeyError::Encoding);
        }
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .map(|bytes| Self {
                bytes: Zeroizing::new(bytes),
            })
            .ok_or(KeyError::Encoding)
    }

    /// A key from text as an environment variable holds it: hex when the
    /// text is an even number of hex digits, base64 otherwise.
    ///
    /// ```
    /// use typed_sessions::stores::CookieKey;
    ///
    /// let from_env = std::env::var("SESSION_KEY")
    ///     .unwrap_or_else(|_| "0123456789abcdef".repeat(4)); // for this example
    /// let key = CookieKey::parse(&from_env)?;
    /// # let _ = key;
    /// # Ok::<(), typed_sessions::stores::KeyError>(())
    /// ```
    ///
    /// # Errors
    /// [`KeyError::Encoding`] when the text is neither.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let trimmed = text.trim();
        if !trimmed.is_empty()
            && trimmed.len().is_multiple_of(2)
            && trimmed.bytes().all(|b| b.is_ascii_hexdigit())
        {
            Self::from_hex(trimmed)
        } else {
            Self::from_base64(trimmed)
        }
    }

    /// The length of the key in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the key has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The public id of this key: one byte of a derived sub-key. An envelope
    /// names the key that sealed it, so opening tries only keys with that id.
    pub(crate) fn id(&self) -> u8 {
        let mut id = [0u8; 1];
        self.derive(b"key id", &mut id);
        id[0]
    }

    /// A sub-key for `purpose`.
    pub(crate) fn derive(&self, purpose: &[u8], out: &mut [u8]) {
        Hkdf::<Sha256>::new(Some(SALT), &self.bytes)
            .expand(purpose, out)
            .expect("sub-keys are far shorter than HKDF's limit");
    }
}

impl fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieKey")
            .field("id", &format_args!("{:02x}", self.id()))
            .field("len", &self.bytes.len())
            .finish()
    }
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_read_the_same_key() {
        let bytes: Vec<u8> = (0u8..32).collect();
        let hex: String = bytes.iter().fold(String::new(), |mut out, b| {
            use std::fmt::Write as _;
            let _ = write!(out, "{b:02x}");
            out
        });
        let from_hex = CookieKey::parse(&hex).unwrap();
        let from_upper = CookieKey::from_hex(&hex.to_uppercase()).unwrap();
        let from_std = CookieKey::parse(&STANDARD.encode(&bytes)).unwrap();
        let from_url = CookieKey::parse(&format!(" {}\n", URL_SAFE_NO_PAD.encode(&bytes))).unwrap();
        let encoded = STANDARD.encode(&bytes);
        let wrapped = format!("{}\n{}\n", &encoded[..20], &encoded[20..]);
        let from_wrapped = CookieKey::parse(&wrapped).unwrap();
        assert_eq!(from_wrapped.bytes.as_slice(), bytes.as_slice());
        for key in [&from_hex, &from_upper, &from_std, &from_url] {
            assert_eq!(key.bytes.as_slice(), bytes.as_slice());
        }
    }

    #[test]
    fn bad_text_is_an_encoding_error() {
        for text in ["", "   ", "a", "not base64 at all!", "ab~cd"] {
            assert!(
                matches!(CookieKey::parse(text), Err(KeyError::Encoding)),
                "{text:?}"
            );
        }
        assert!(CookieKey::from_hex("0g").is_err());
        assert!(CookieKey::from_base64("***").is_err());
    }

    #[test]
    fn generated_keys_are_random_and_long_enough() {
        let a = CookieKey::generate().unwrap();
        let b = CookieKey::generate().unwrap();
        assert_eq!(a.len(), CookieKey::MIN_LEN);
        assert_ne!(a.bytes.as_slice(), b.bytes.as_slice());
    }

    #[test]
    fn sub_keys_are_separated_by_purpose() {
        let key = CookieKey::from_bytes(vec![7u8; 32]);
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        key.derive(b"one", &mut a);
        key.derive(b"two", &mut b);
        assert_ne!(a, b);
        assert_ne!(&a[..], &key.bytes[..]);
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = CookieKey::from_bytes(vec![0xab; 40]);
        let shown = format!("{key:?}");
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
        assert!(shown.contains("len: 40"), "{shown}");
    }
}
