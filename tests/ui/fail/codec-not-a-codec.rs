use typed_sessions::SessionData;

struct Postcard;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
#[session(codec = Postcard)]
struct Cart {
    items: Vec<String>,
    count: u32,
}

fn main() {}
