use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
#[session(skip)]
struct Cart {
    #[session(version = 2)]
    items: Vec<String>,
}

fn main() {}
