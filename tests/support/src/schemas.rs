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
