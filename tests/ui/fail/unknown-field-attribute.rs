use typed_sessions::SessionData;

#[derive(SessionData)]
struct Cart {
    #[session(renamed = "i")]
    items: Vec<String>,
}

fn main() {}
