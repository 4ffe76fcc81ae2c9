use std::cell::Cell;

use typed_sessions::SessionData;

/// A shared copy is read by many requests at once: the schema must be `Sync`.
#[derive(SessionData, Default, Clone)]
#[session(namespace = "cart", cached)]
struct Cart {
    items: Vec<String>,
    #[session(skip)]
    seen: Cell<u32>,
}

fn main() {}
