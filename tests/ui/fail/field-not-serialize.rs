use serde::Deserialize;
use typed_sessions::SessionData;

#[derive(Deserialize)]
struct Item {
    sku: String,
}

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct Cart {
    count: u32,
    items: Vec<Item>,
}

fn main() {}
