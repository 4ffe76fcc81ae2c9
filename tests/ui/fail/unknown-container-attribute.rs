use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart", verison = 2)]
struct Cart {
    items: Vec<String>,
}

fn main() {}
