//! The session data every bench carries: one `Profile`, about 230 bytes
//! as one serde_json object, the same for every peer.

use serde::{Deserialize, Serialize};

/// About 230 bytes of session data when serialized as one JSON object.
#[derive(typed_sessions::SessionData, Default, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[session(namespace = "profile")]
pub struct Profile {
    pub user_name: String,
    pub email: String,
    pub user_id: u64,
    pub visits: u64,
    pub plan_level: u32,
    pub credit_cents: i64,
    pub roles: Vec<String>,
    pub verified: bool,
}

impl Profile {
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
