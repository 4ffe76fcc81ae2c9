//! The client-side store: the whole session sealed in the cookie.
//!
//! [`CookieStore`] is what users configure; `key` holds the master key and
//! its HKDF sub-keys, `framing` the compact binary body, `store` the
//! envelope (AES-256-GCM or HMAC-SHA256) and the sealer the layer uses.

mod framing;
mod key;
mod store;

pub use key::{CookieKey, KeyError};
pub use store::CookieStore;

/// The decoder of the body inside an opened envelope, for the fuzz target.
#[doc(hidden)]
pub fn __fuzz_decode_body(body: &[u8]) -> bool {
    framing::decode(body).is_some()
}
