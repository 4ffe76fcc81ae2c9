use typed_sessions::SessionData;

#[derive(SessionData)]
struct Cart(Vec<String>, u32);

fn main() {}
