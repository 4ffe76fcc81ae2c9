use typed_sessions::SessionData;

#[derive(SessionData)]
#[session(namespace = "marker")]
struct Marker;

fn main() {}
