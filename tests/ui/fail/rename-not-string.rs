use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct Cart {
    #[session(rename = items_v2)]
    items: Vec<String>,
}

fn main() {}
