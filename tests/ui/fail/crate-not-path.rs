use typed_sessions::SessionData;

#[derive(SessionData)]
#[session(namespace = "cart")]
#[session(crate = "typed sessions")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
