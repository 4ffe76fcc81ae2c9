use typed_sessions::SessionData;

#[derive(SessionData)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
