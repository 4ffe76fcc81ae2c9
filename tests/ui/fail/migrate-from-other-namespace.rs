use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "basket")]
struct Basket {
    items: Vec<String>,
}

#[derive(SessionData, Default)]
#[session(namespace = "cart", version = 2, migrate_from = Basket)]
struct Cart {
    items: Vec<String>,
}

impl From<Basket> for Cart {
    fn from(old: Basket) -> Self {
        Self { items: old.items }
    }
}

fn main() {}
