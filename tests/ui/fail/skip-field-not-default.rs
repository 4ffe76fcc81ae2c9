use typed_sessions::SessionData;

struct Connection;

#[derive(SessionData)]
#[session(namespace = "cart")]
struct Cart {
    items: Vec<String>,
    #[session(skip)]
    connection: Connection,
}

impl Default for Cart {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            connection: Connection,
        }
    }
}

fn main() {}
