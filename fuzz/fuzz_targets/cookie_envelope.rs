//! The `CookieStore` envelope and body decoders on untrusted bytes, through
//! `session_runtime::cookie_store::__fuzz` (no layer around them).
//!
//! The first byte of the input chooses what the rest is:
//!
//! - `0`: an envelope body. `__fuzz::body` decodes it and, when it decodes,
//!   itself asserts that it encodes back to the same bytes and that sealing
//!   and opening it (in both modes) gives it back.
//! - `1`: a cookie value, as text (lossy UTF-8). It must not open unless it
//!   is one of the genuine values of paths 3 and 4 (which the fuzzer learns
//!   from their comparisons): any other value that opens is a forgery.
//! - `2`: raw envelope bytes (format, key id, nonce, body, tag), sent
//!   base64url-encoded, so that the fuzzer reaches the MAC and the AEAD
//!   rather than the alphabet check. The same rule.
//! - `3`, `4`: edits of a genuine value (`__fuzz::sealed_sample`, private
//!   for 3, signed for 4): the rest is a list of `(op, position, byte)`
//!   triples that replace, insert or delete characters of the value, or
//!   flip, insert or delete bytes of what it decodes to. The result must
//!   open exactly when it is the genuine value again.
//!
//! Other first bytes wrap around (`% 5`).

#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use session_runtime::cookie_store::__fuzz;

/// The base64url alphabet: what a value's characters are replaced with.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The genuine values, sealed once (the private one has a random nonce:
/// one per process).
fn samples() -> &'static [String; 2] {
    static SAMPLES: OnceLock<[String; 2]> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let samples = [__fuzz::sealed_sample(false), __fuzz::sealed_sample(true)];
        for sample in &samples {
            assert!(__fuzz::open(sample), "a genuine value opens");
        }
        samples
    })
}

/// Whether `value` is one of the genuine samples. Those open, and the
/// fuzzer does learn them: the comparisons of paths 3 and 4 put them in its
/// table of compared strings, and it splices them into paths 1 and 2.
fn is_genuine(value: &str) -> bool {
    samples().iter().any(|sample| sample == value)
}

/// Applies the `(op, position, byte)` triples of `ops` to `value`.
fn mutate(value: &str, ops: &[u8]) -> String {
    let mut text = value.as_bytes().to_vec();
    for op in ops.chunks_exact(3) {
        let (kind, at, byte) = (op[0], usize::from(op[1]), op[2]);
        match kind % 8 {
            // Character edits of the value.
            0 if !text.is_empty() => {
                let at = at % text.len();
                text[at] = ALPHABET[usize::from(byte) % 64];
            }
            1 => text.insert(at % (text.len() + 1), ALPHABET[usize::from(byte) % 64]),
            2 if !text.is_empty() => {
                text.remove(at % text.len());
            }
            // Any printable ASCII character (`=`, `+`, `/`, `%`, space…).
            3 if !text.is_empty() => {
                let at = at % text.len();
                text[at] = 0x20 + byte % 0x5f;
            }
            4 => text.truncate(at % (text.len() + 1)),
            // Byte edits of what the value decodes to (skipped when the
            // edits so far left it undecodable).
            5..=7 => {
                let Ok(mut raw) = URL_SAFE_NO_PAD.decode(&text) else {
                    continue;
                };
                match kind % 8 {
                    5 if !raw.is_empty() => {
                        let at = at % raw.len();
                        raw[at] ^= byte.max(1);
                    }
                    6 => raw.insert(at % (raw.len() + 1), byte),
                    7 if !raw.is_empty() => {
                        raw.remove(at % raw.len());
                    }
                    _ => {}
                }
                text = URL_SAFE_NO_PAD.encode(&raw).into_bytes();
            }
            _ => {}
        }
    }
    String::from_utf8(text).expect("every edit keeps the value ASCII")
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    match choice % 5 {
        0 => {
            let _ = __fuzz::body(rest);
        }
        1 => {
            let value = String::from_utf8_lossy(rest);
            assert_eq!(
                __fuzz::open(&value),
                is_genuine(&value),
                "forged value opens: {value:?}"
            );
        }
        2 => {
            let value = URL_SAFE_NO_PAD.encode(rest);
            assert_eq!(
                __fuzz::open(&value),
                is_genuine(&value),
                "forged envelope opens: {rest:02x?} ({value})"
            );
        }
        mode => {
            let original = &samples()[usize::from(mode == 4)];
            let edited = mutate(original, rest);
            assert_eq!(
                __fuzz::open(&edited),
                edited == *original,
                "edited {original:?} into {edited:?}"
            );
        }
    }
});
