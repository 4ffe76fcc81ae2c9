use typed_sessions::SessionData;

struct Connection;

#[derive(SessionData)]
struct Cart {
    items: Vec<String>,
    #[session(skip)]
    connection: Connection,
}

fn main() {}
