use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
#[session(crate = "typed sessions")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
