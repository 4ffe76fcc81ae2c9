use typed_sessions::{DecodeError, FieldMap, SessionData};

#[derive(SessionData, Debug, PartialEq, Default)]
#[session(namespace = "cart")]
#[session(version = 7)]
struct Cart {
    items: Vec<String>,
}

/// Without the attribute, the version is 1.
#[derive(SessionData, Default)]
#[session(namespace = "visits")]
struct Visits {
    count: u32,
}

fn main() {
    assert_eq!(Cart::VERSION, 7);
    assert_eq!(Visits::VERSION, 1);

    let cart = Cart {
        items: vec!["a".into()],
    };
    let stored = cart.encode_fields().unwrap();
    assert_eq!(Cart::decode_fields(7, &stored).unwrap(), cart);
    assert!(matches!(
        Cart::decode_fields(8, &stored),
        Err(DecodeError::NewerVersion {
            found: 8,
            latest: 7
        })
    ));
    assert!(matches!(
        Cart::decode_fields(6, &stored),
        Err(DecodeError::UnsupportedVersion { found: 6 })
    ));
    assert!(Visits::decode_fields(1, &FieldMap::new()).is_err());
}
