use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct Cart {
    items: Vec<String>,
    #[session(skip, rename = "c", default, sensitive, rotate_id)]
    cache: Vec<u8>,
}

fn main() {}
