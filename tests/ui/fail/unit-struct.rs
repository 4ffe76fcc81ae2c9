use typed_sessions::SessionData;

#[derive(SessionData)]
struct Marker;

fn main() {}
