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

/// Namespace `prefs` as older code wrote it (version 1).
#[derive(SessionData, Default, Debug)]
#[session(namespace = "prefs", version = 1)]
pub struct PrefsV1 {
    pub theme: String,
}

/// Namespace `prefs` at version 2: `lang` added, migrated from version 1.
#[derive(SessionData, Default, Debug)]
#[session(namespace = "prefs", version = 2, migrate_from = PrefsV1)]
pub struct PrefsV2 {
    pub theme: String,
    pub lang: String,
}

impl From<PrefsV1> for PrefsV2 {
    fn from(v1: PrefsV1) -> Self {
        Self {
            theme: v1.theme,
            lang: "en".into(),
        }
    }
}

/// Namespace `profile`: three fields, for writes that change one of them.
#[derive(SessionData, Default, Debug)]
#[session(namespace = "profile")]
pub struct Profile {
    pub user_name: String,
    pub theme: String,
    pub visits: u64,
}

thread_local! {
    static DECODES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many [`Tracked`] values this thread has deserialized: each
/// `#[tokio::test]` runs on its own current-thread runtime, so the count
/// is the test's own.
pub fn decodes() -> u64 {
    DECODES.with(std::cell::Cell::get)
}

/// A number that counts how often it is deserialized.
#[derive(serde::Serialize, Default, Clone, Copy, PartialEq, Debug)]
pub struct Tracked(pub u64);

impl<'de> serde::Deserialize<'de> for Tracked {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODES.with(|c| c.set(c.get() + 1));
        <u64 as serde::Deserialize>::deserialize(d).map(Tracked)
    }
}
