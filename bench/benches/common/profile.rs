//! The session data every bench carries: one `Profile`, about 230 bytes
//! as one serde_json object, the same for every peer.

use serde::{Deserialize, Serialize};

/// Declares a profile schema: the same fields and sample under another
/// name and `#[session(...)]` attributes.
macro_rules! profile_schema {
    ($(#[$meta:meta])* $name:ident, $($attr:tt)*) => {
        $(#[$meta])*
        #[derive(typed_sessions::SessionData, Default, Serialize, Deserialize, Clone, Debug, PartialEq)]
        #[session($($attr)*)]
        pub struct $name {
            pub user_name: String,
            pub email: String,
            pub user_id: u64,
            pub visits: u64,
            pub plan_level: u32,
            pub credit_cents: i64,
            pub roles: Vec<String>,
            pub verified: bool,
        }

        #[allow(dead_code, reason = "not every bench uses every schema")]
        impl $name {
            /// The profile every session starts with.
            pub fn sample() -> Self {
                Self {
                    user_name: "alice.liddell".to_owned(),
                    email: "alice.liddell@looking-glass.wonderland.example.org".to_owned(),
                    user_id: 4_815_162_342,
                    visits: 1_000,
                    plan_level: 3,
                    credit_cents: -125_050,
                    roles: vec![
                        "reader".to_owned(),
                        "editor".to_owned(),
                        "billing-administrator".to_owned(),
                    ],
                    verified: true,
                }
            }
        }
    };
}

profile_schema!(
    /// About 230 bytes of session data when serialized as one JSON object.
    Profile, namespace = "profile"
);

profile_schema!(
    /// `Profile` declared `#[session(cached)]`: with `MemoryStore`, read-only
    /// requests share one decoded copy (the `typed_cached` peer).
    #[allow(dead_code, reason = "only the in-memory benches use it")]
    CachedProfile, namespace = "profile", cached
);
