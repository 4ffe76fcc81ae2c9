use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
#[session(version = 4294967296)]
struct Cart {
    items: Vec<String>,
}

fn main() {}
