use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart", version = 2)]
struct CartV2 {
    items: Vec<String>,
}

#[derive(SessionData, Default)]
#[session(namespace = "cart", version = 2, migrate_from = CartV2)]
struct Cart {
    items: Vec<String>,
}

impl From<CartV2> for Cart {
    fn from(old: CartV2) -> Self {
        Self { items: old.items }
    }
}

fn main() {}
