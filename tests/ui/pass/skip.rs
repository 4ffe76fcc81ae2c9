use typed_sessions::{FieldInfo, SessionData};

/// Neither `Serialize` nor `Deserialize`: a skipped field needs only `Default`.
#[derive(Default, Debug, PartialEq)]
struct Cache {
    hits: usize,
}

#[derive(SessionData, Debug, PartialEq, Default)]
#[session(namespace = "cart")]
struct Cart {
    items: Vec<String>,
    #[session(skip)]
    cache: Cache,
}

fn main() {
    let names: Vec<_> = Cart::FIELDS.iter().map(FieldInfo::name).collect();
    assert_eq!(names, ["items"]);

    let cart = Cart {
        items: vec!["a".into()],
        cache: Cache { hits: 9 },
    };
    let stored = cart.encode_fields().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored.get("cache"), None);
    assert_eq!(
        Cart::decode_fields(1, &stored).unwrap().cache,
        Cache::default()
    );
}
