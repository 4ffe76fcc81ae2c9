use typed_sessions::SessionData;

#[derive(SessionData, Default)]
struct HitCounter {
    hits: u64,
}

/// No usable suggestion from this name: the error still says what to add.
#[derive(SessionData, Default)]
struct Café {
    items: Vec<String>,
}

fn main() {}
