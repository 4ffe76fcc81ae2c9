use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = 5)]
struct Cart {
    items: Vec<String>,
}

fn main() {}
