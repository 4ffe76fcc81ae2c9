use serde::{Deserialize, Serialize};
use typed_sessions::SessionData;

#[derive(Serialize, Deserialize)]
enum Currency {
    Eur,
    Usd,
}

#[derive(SessionData)]
#[session(namespace = "cart")]
struct Cart {
    items: Vec<String>,
    #[session(default)]
    currency: Currency,
}

impl Default for Cart {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            currency: Currency::Eur,
        }
    }
}

fn main() {}
