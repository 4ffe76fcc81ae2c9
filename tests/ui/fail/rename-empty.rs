use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct Cart {
    #[session(rename = "")]
    items: Vec<String>,
}

fn main() {}
