use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "marker")]
struct Marker;

fn main() {}
