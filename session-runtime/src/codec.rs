//! How one field value becomes bytes in a store, and back.

use serde::Serialize;
use serde::de::DeserializeOwned;

mod finite;

/// The error of a [`Codec`]: the codec's own error, boxed so that the public
/// API does not expose any codec crate's types.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CodecError {
    message: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl CodecError {
    /// Wraps a codec's error.
    ///
    /// ```
    /// use typed_sessions::CodecError;
    /// let err = CodecError::encode(std::fmt::Error);
    /// assert_eq!(err.to_string(), "could not encode a session field");
    /// ```
    pub fn encode(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: "could not encode a session field",
            source: Box::new(source),
        }
    }

    /// Wraps a codec's error met while decoding stored bytes.
    ///
    /// ```
    /// use typed_sessions::CodecError;
    /// let err = CodecError::decode(std::fmt::Error);
    /// assert_eq!(err.to_string(), "could not decode a stored session field");
    /// ```
    pub fn decode(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: "could not decode a stored session field",
            source: Box::new(source),
        }
    }
}

/// Turns one field value into bytes and back.
///
/// A codec is chosen per schema (`#[session(codec = MyCodec)]`, default
/// [`JsonCodec`]), so the format of stored bytes is part of the schema and
/// the runtime never needs to know it: it stores, compares and returns bytes.
/// A codec must be deterministic: encoding equal values must give equal bytes,
/// because dirty detection compares encodings. (With JSON, use `BTreeMap`
/// rather than `HashMap` for map fields, whose iteration order varies, and
/// note that `Option<Option<T>>` stores `Some(None)` and `None` alike.)
///
/// ```
/// use typed_sessions::{Codec, CodecError};
///
/// /// Stores every field as pretty-printed JSON.
/// struct PrettyJson;
///
/// impl Codec for PrettyJson {
///     fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
///         serde_json::to_vec_pretty(value).map_err(CodecError::encode)
///     }
///     fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
///         serde_json::from_slice(bytes).map_err(CodecError::decode)
///     }
/// }
///
/// let bytes = PrettyJson::encode(&vec![1, 2]).unwrap();
/// assert_eq!(PrettyJson::decode::<Vec<u8>>(&bytes).unwrap(), vec![1, 2]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a session codec",
    label = "not a session codec",
    note = "implement `Codec` for `{Self}`, or drop `codec = …` to use the default `JsonCodec`"
)]
pub trait Codec: 'static {
    /// Encodes one value.
    ///
    /// # Errors
    /// When the value cannot be represented (for `serde_json`: a map whose keys
    /// are not strings, or a `Serialize` impl that fails).
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError>;

    /// Appends what [`encode`](Self::encode) returns to `out`; on an error,
    /// `out` is left as it was. The default calls `encode`; a codec that
    /// can write into a buffer overrides it, saving an allocation per field
    /// when a write compares each field with its stored bytes. An override
    /// must append exactly the bytes `encode` returns and fail exactly when
    /// it fails: the runtime uses both and compares their output (debug
    /// builds check that they agree).
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&Self::encode(value)?);
        Ok(())
    }

    /// Decodes one value from bytes this codec produced.
    ///
    /// # Errors
    /// When the bytes are not a valid encoding of `T`.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError>;
}

/// The default codec: compact JSON through `serde_json`.
///
/// JSON has no NaN or infinity: `serde_json` would write them as `null`,
/// which does not read back as a float. `JsonCodec` refuses such a value
/// with a [`CodecError`] instead, so nothing is written and the stored data
/// stays readable (the request answers 500, or [`UpdateError::Codec`](crate::UpdateError::Codec)).
///
/// ```
/// use typed_sessions::{Codec, JsonCodec};
/// assert_eq!(JsonCodec::encode(&("a", 1)).unwrap(), br#"["a",1]"#);
/// assert!(JsonCodec::decode::<u8>(b"300").is_err());
/// assert!(JsonCodec::encode(&f64::NAN).is_err());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
        let bytes = serde_json::to_vec(value).map_err(CodecError::encode)?;
        // A non-finite float is written as `null`: only output holding that
        // word needs the walk that tells a float from a `None` or a string.
        if contains_null(&bytes) {
            finite::check(value).map_err(CodecError::encode)?;
        }
        Ok(bytes)
    }

    fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let start = out.len();
        let written = serde_json::to_writer(&mut *out, value)
            .map_err(CodecError::encode)
            .and_then(|()| {
                if contains_null(&out[start..]) {
                    finite::check(value).map_err(CodecError::encode)?;
                }
                Ok(())
            });
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(bytes).map_err(CodecError::decode)
    }
}

fn contains_null(bytes: &[u8]) -> bool {
    // A one-byte search, then a look at the three bytes after each hit: no
    // searcher to build per call (fields are short, and most hold no `n`).
    memchr::memchr_iter(b'n', bytes).any(|at| bytes[at..].starts_with(b"null"))
}

#[cfg(test)]
mod encode_into {
    use super::*;
    use proptest::prelude::*;

    /// A codec that only implements `encode`: the default `encode_into`.
    struct Plain;
    impl Codec for Plain {
        fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
            JsonCodec::encode(value)
        }
        fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
            JsonCodec::decode(bytes)
        }
    }

    proptest! {
        #[test]
        fn appends_what_encode_returns(
            prefix in proptest::collection::vec(any::<u8>(), 0..8),
            text in ".{0,20}",
            numbers in proptest::collection::vec(any::<f64>(), 0..4),
            flag in proptest::option::of(any::<bool>()),
        ) {
            let value = (&text, &numbers, flag);
            let expected = JsonCodec::encode(&value);
            for into in [JsonCodec::encode_into::<_>, Plain::encode_into::<_>] {
                let mut out = prefix.clone();
                let got = into(&value, &mut out);
                if let Ok(bytes) = &expected {
                    prop_assert!(got.is_ok());
                    prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
                    prop_assert_eq!(&out[prefix.len()..], &bytes[..]);
                } else {
                    // A non-finite float: refused, and `out` untouched.
                    prop_assert!(got.is_err());
                    prop_assert_eq!(&out, &prefix);
                }
            }
        }
    }

    #[test]
    fn a_refused_value_leaves_the_buffer_as_it_was() {
        let mut out = b"kept".to_vec();
        assert!(JsonCodec::encode_into(&[1.0, f64::NAN], &mut out).is_err());
        assert_eq!(out, b"kept");
        // `null` from an `Option` is fine.
        JsonCodec::encode_into(&None::<u8>, &mut out).unwrap();
        assert_eq!(out, b"keptnull");
    }
}
