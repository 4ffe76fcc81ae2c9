use typed_sessions::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(rename = items_v2)]
    items: Vec<String>,
}

fn main() {}
