use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "bad")]
#[session(version = "3")]
struct Bad {
    items: Vec<String>,
}

fn namespace_of<T: SessionData>() -> &'static str {
    T::NAMESPACE
}

fn main() {
    let _ = namespace_of::<Bad>();
    let _ = <Bad as SessionData>::NAMESPACE;
    let _ = Bad { items: Vec::new() }.encode_fields();
}
