use typed_sessions::SessionData;

// Only the missing namespace is reported, not a namespace mismatch with
// the schema that migrates from it.
#[derive(SessionData, Default)]
struct CartV1 {
    skus: Vec<String>,
}

#[derive(SessionData, Default)]
#[session(namespace = "cart", version = 2, migrate_from = CartV1)]
struct Cart {
    skus: Vec<String>,
}

impl From<CartV1> for Cart {
    fn from(v1: CartV1) -> Self {
        Self { skus: v1.skus }
    }
}

fn main() {}
