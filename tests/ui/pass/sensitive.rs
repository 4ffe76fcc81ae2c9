use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "login")]
struct Login {
    user: String,
    #[session(sensitive)]
    csrf_token: String,
}

fn main() {
    let sensitive: Vec<_> = Login::FIELDS
        .iter()
        .map(|f| (f.name(), f.sensitive()))
        .collect();
    assert_eq!(sensitive, [("user", false), ("csrf_token", true)]);
    assert!(Login::FIELDS.iter().all(|f| !f.rotate_id()));

    let stored = Login {
        user: "ann".into(),
        csrf_token: "t0k".into(),
    }
    .encode_fields()
    .unwrap();
    assert_eq!(Login::decode_fields(1, &stored).unwrap().csrf_token, "t0k");
}
