use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct CartV0 {
    items: Vec<String>,
}

#[derive(SessionData, Default)]
#[session(namespace = "cart", migrate_from = CartV0)]
struct Cart {
    items: Vec<String>,
}

impl From<CartV0> for Cart {
    fn from(old: CartV0) -> Self {
        Self { items: old.items }
    }
}

fn main() {}
