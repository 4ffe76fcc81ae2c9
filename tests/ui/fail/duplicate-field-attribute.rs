use typed_sessions::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(rename = "i", default, rename = "its")]
    items: Vec<String>,
    #[session(sensitive, sensitive)]
    token: String,
}

fn main() {}
