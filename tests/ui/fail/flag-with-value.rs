use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct Cart {
    #[session(default = true)]
    items: Vec<String>,
}

fn main() {}
