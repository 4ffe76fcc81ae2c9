use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
#[session(version = 0)]
struct Cart {
    items: Vec<String>,
}

fn main() {}
