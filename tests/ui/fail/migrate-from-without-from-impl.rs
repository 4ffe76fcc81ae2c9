use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct CartV1 {
    items: Vec<String>,
}

#[derive(SessionData, Default)]
#[session(namespace = "cart", version = 2, migrate_from = CartV1)]
struct CartV2 {
    items: Vec<String>,
}

fn main() {}
