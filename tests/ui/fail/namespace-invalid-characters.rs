use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "shopping cart!")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
