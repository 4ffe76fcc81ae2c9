use typed_sessions::SessionData;

#[derive(SessionData)]
#[session(namespace = "cart")]
#[session]
struct Cart {
    items: Vec<String>,
}

fn main() {}
