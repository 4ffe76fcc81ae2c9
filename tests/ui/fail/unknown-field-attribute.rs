use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct Cart {
    #[session(renamed = "i")]
    items: Vec<String>,
}

fn main() {}
