use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct Cart {
    items: Vec<String>,
    #[session(rename = "items")]
    legacy_items: Vec<String>,
}

fn main() {}
