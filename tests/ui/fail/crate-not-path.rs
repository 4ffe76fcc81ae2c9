use typed_sessions::SessionData;

#[derive(SessionData)]
#[session(crate = "typed sessions")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
