use typed_sessions::SessionData;

struct Connection;

#[derive(SessionData)]
#[session(namespace = "cart")]
struct Cart {
    items: Vec<String>,
    #[session(skip)]
    connection: Connection,
}

fn main() {}
