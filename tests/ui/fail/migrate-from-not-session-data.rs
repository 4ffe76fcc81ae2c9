use typed_sessions::SessionData;

struct OldCart {
    items: Vec<String>,
}

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
#[session(version = 2, migrate_from = OldCart)]
struct Cart {
    items: Vec<String>,
}

impl From<OldCart> for Cart {
    fn from(old: OldCart) -> Self {
        Self { items: old.items }
    }
}

fn main() {}
