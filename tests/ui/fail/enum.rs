use typed_sessions::SessionData;

#[derive(SessionData)]
enum Cart {
    Empty,
    Full { items: Vec<String> },
}

fn main() {}
