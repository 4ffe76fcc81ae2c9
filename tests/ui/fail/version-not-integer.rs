use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
#[session(version = "2")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
