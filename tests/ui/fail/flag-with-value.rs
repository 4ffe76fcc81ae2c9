use typed_sessions::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(default = true)]
    items: Vec<String>,
}

fn main() {}
