use typed_sessions::SessionData;

#[derive(SessionData)]
#[session(namespace, version, migrate_from)]
struct Cart {
    #[session(rename)]
    items: Vec<String>,
}

fn main() {}
