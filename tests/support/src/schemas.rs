//! Session schemas that many tests share.

use typed_sessions::SessionData;

/// Namespace `counter`: one number.
#[derive(SessionData, Default, Debug, Clone)]
#[session(namespace = "counter")]
pub struct Counter {
    pub count: u64,
}

/// Namespace `other`: a second namespace beside another one.
#[derive(SessionData, Default, Debug, Clone)]
#[session(namespace = "other")]
pub struct Other {
    pub n: u64,
}
