use typed_sessions::SessionData;

#[derive(SessionData)]
#[session]
struct Cart {
    items: Vec<String>,
}

fn main() {}
