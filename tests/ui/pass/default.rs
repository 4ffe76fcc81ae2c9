use typed_sessions::{DecodeError, FieldMap, SessionData};

#[derive(SessionData, Debug, PartialEq, Default)]
#[session(namespace = "cart")]
struct Cart {
    items: Vec<String>,
    #[session(default)]
    coupon: Option<String>,
    #[session(default)]
    visits: u32,
}

fn main() {
    let mut stored = FieldMap::new();
    stored.insert("items", br#"["a"]"#.to_vec());
    let cart = Cart::decode_fields(1, &stored).unwrap();
    assert_eq!(
        cart,
        Cart {
            items: vec!["a".into()],
            coupon: None,
            visits: 0,
        }
    );

    // A stored value wins over the default; a field without `default` is required.
    stored.insert("visits", b"3".to_vec());
    assert_eq!(Cart::decode_fields(1, &stored).unwrap().visits, 3);
    assert!(matches!(
        Cart::decode_fields(1, &FieldMap::new()),
        Err(DecodeError::MissingField { field: "items" })
    ));
}
