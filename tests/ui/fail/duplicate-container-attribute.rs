use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(version = 2)]
#[session(namespace = "cart", version = 3)]
struct Cart {
    items: Vec<String>,
}

fn main() {}
