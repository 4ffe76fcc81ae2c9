use typed_sessions::SessionData;

struct Postcard;

#[derive(SessionData)]
#[session(codec = Postcard)]
struct Cart {
    items: Vec<String>,
    count: u32,
}

fn main() {}
