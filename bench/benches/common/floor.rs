//! The least work any signed or private cookie session must do per
//! request, with no framework around it: the primitives alone, on the same
//! profile as the `cookie` bench (which times them as `floor_signed` and
//! `floor_private` in each group).
//!
//! - read: base64url-decode the value, verify (HMAC-SHA256) or decrypt
//!   (AES-256-GCM), `serde_json` the profile out of it;
//! - write: the read, `visits += 1`, `serde_json` it back, sign or encrypt
//!   (a fresh random nonce), base64url-encode, format the `Set-Cookie`.
//!
//! Every cookie-session peer does at least this per request, plus its
//! framework: when the floor alone is more than half of axum-extra's
//! overhead over bare axum, no design that verifies, decodes, encodes and
//! seals on every request can have half of axum-extra's overhead.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::profile::Profile;

type HmacSha256 = Hmac<Sha256>;

pub struct Signed {
    mac: HmacSha256,
}

impl Signed {
    pub fn seal(&self, json: &[u8]) -> String {
        let mut raw = json.to_vec();
        let mut mac = self.mac.clone();
        mac.update(json);
        raw.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn open(&self, value: &str) -> Profile {
        let raw = URL_SAFE_NO_PAD.decode(value).expect("base64url");
        let (body, tag) = raw.split_at(raw.len() - 32);
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.verify_slice(tag).expect("genuine");
        serde_json::from_slice(body).expect("a profile")
    }
}

pub struct Private {
    cipher: Aes256Gcm,
}

impl Private {
    pub fn seal(&self, json: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("randomness");
        let mut raw = Vec::with_capacity(12 + json.len() + 16);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(json);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"session", &mut raw[12..])
            .expect("encrypts");
        raw.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn open(&self, value: &str) -> Profile {
        let mut raw = URL_SAFE_NO_PAD.decode(value).expect("base64url");
        let end = raw.len() - 16;
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&raw[end..]);
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&raw[..12]);
        self.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                b"session",
                &mut raw[12..end],
                (&tag).into(),
            )
            .expect("genuine");
        serde_json::from_slice(&raw[12..end]).expect("a profile")
    }
}

pub fn set_cookie(value: &str) -> String {
    format!("session={value}; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax")
}

/// The floor's two sealers and a value each sealed for the sample profile.
pub struct Floor {
    pub signed: Signed,
    pub private: Private,
    pub signed_value: String,
    pub private_value: String,
}

impl Floor {
    pub fn new() -> Self {
        let json = serde_json::to_vec(&Profile::sample()).expect("serializes");
        let signed = Signed {
            mac: <HmacSha256 as Mac>::new_from_slice(&[7; 32]).expect("any key length"),
        };
        let private = Private {
            cipher: Aes256Gcm::new_from_slice(&[7; 32]).expect("a 32-byte key"),
        };
        let signed_value = signed.seal(&json);
        let private_value = private.seal(&json);
        Self {
            signed,
            private,
            signed_value,
            private_value,
        }
    }

    /// One request's worth of primitives: `signed` or private, read or write.
    pub fn run(&self, signed: bool, write: bool) -> usize {
        let mut profile = if signed {
            self.signed.open(&self.signed_value)
        } else {
            self.private.open(&self.private_value)
        };
        if !write {
            return profile.user_name.len();
        }
        profile.visits += 1;
        let json = serde_json::to_vec(&profile).expect("serializes");
        let value = if signed {
            self.signed.seal(&json)
        } else {
            self.private.seal(&json)
        };
        set_cookie(&value).len()
    }
}
