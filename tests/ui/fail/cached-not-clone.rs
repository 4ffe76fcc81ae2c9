use typed_sessions::SessionData;

/// `cached` shares one decoded copy and copies it on a mutable borrow.
#[derive(SessionData, Default)]
#[session(namespace = "cart", cached)]
struct Cart {
    items: Vec<String>,
}

fn main() {}
