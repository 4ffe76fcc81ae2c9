use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace, version, migrate_from)]
struct Cart {
    #[session(rename)]
    items: Vec<String>,
}

fn main() {}
