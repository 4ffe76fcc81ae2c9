use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
#[session]
struct Cart {
    items: Vec<String>,
}

fn main() {}
