use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct Cart {
    #[session(rename = "i", default, rename = "its")]
    items: Vec<String>,
    #[session(sensitive, sensitive)]
    token: String,
}

fn main() {}
