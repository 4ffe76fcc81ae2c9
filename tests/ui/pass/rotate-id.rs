use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "auth")]
struct Auth {
    #[session(rotate_id, sensitive)]
    user_id: Option<u64>,
    #[session(rotate_id, rename = "role")]
    privilege: String,
    theme: String,
}

fn main() {
    let flags: Vec<_> = Auth::FIELDS
        .iter()
        .map(|f| (f.name(), f.rotate_id(), f.sensitive()))
        .collect();
    assert_eq!(
        flags,
        [
            ("user_id", true, true),
            ("role", true, false),
            ("theme", false, false)
        ]
    );

    let before = Auth {
        user_id: None,
        privilege: "guest".into(),
        theme: "dark".into(),
    };
    let stored = before.encode_fields().unwrap();
    let after = Auth {
        user_id: Some(1),
        ..before
    };
    assert_eq!(after.changed_fields(&stored).unwrap(), ["user_id"]);
}
