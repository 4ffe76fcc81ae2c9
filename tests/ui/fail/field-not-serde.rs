use typed_sessions::SessionData;

struct Connection;
struct Handle;

// One error per field that cannot be stored, naming its type and the
// missing traits.
#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct Cart {
    items: Vec<String>,
    connection: Option<Connection>,
    handle: Vec<Handle>,
}

fn main() {}
