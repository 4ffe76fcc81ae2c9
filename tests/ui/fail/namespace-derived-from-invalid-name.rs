use typed_sessions::SessionData;

#[derive(SessionData)]
struct Café {
    items: Vec<String>,
}

fn main() {}
