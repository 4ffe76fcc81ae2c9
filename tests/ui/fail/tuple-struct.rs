use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct Cart(Vec<String>, u32);

fn main() {}
