use typed_sessions::{FieldInfo, SessionData};

#[derive(SessionData, Debug, PartialEq, Default)]
#[session(namespace = "profile")]
struct Profile {
    #[session(rename = "n")]
    name: String,
    /// A field may take a name another field gave up.
    #[session(rename = "name")]
    display_name: String,
}

fn main() {
    let names: Vec<_> = Profile::FIELDS.iter().map(FieldInfo::name).collect();
    assert_eq!(names, ["n", "name"]);

    let profile = Profile {
        name: "ann".into(),
        display_name: "Ann".into(),
    };
    let stored = profile.encode_fields().unwrap();
    assert_eq!(stored.get("n"), Some(&br#""ann""#[..]));
    assert_eq!(stored.get("name"), Some(&br#""Ann""#[..]));
    assert_eq!(stored.get("display_name"), None);
    assert_eq!(Profile::decode_fields(1, &stored).unwrap(), profile);
}
