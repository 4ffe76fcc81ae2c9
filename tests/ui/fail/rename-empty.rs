use typed_sessions::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(rename = "")]
    items: Vec<String>,
}

fn main() {}
