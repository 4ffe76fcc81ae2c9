use typed_sessions::{FieldInfo, SessionData};

#[derive(SessionData, Debug, PartialEq, Default)]
#[session(namespace = "match")]
struct r#Match {
    r#type: String,
    r#fn: u8,
    #[session(rename = "loop")]
    r#in: bool,
}

fn main() {
    assert_eq!(Match::NAMESPACE, "match");
    let names: Vec<_> = Match::FIELDS.iter().map(FieldInfo::name).collect();
    assert_eq!(names, ["type", "fn", "loop"]);

    let value = Match {
        r#type: "t".into(),
        r#fn: 1,
        r#in: true,
    };
    let stored = value.encode_fields().unwrap();
    assert_eq!(stored.get("type"), Some(&br#""t""#[..]));
    assert_eq!(Match::decode_fields(1, &stored).unwrap(), value);
}
