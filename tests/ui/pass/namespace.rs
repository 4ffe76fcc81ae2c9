use typed_sessions::SessionData;

#[derive(SessionData, Default)]
#[session(namespace = "shop.cart-v2_eu")]
struct Cart {
    items: Vec<String>,
}

/// The namespace need not follow the type's name.
#[derive(SessionData, Default)]
#[session(namespace = "http_auth_state")]
struct HTTPAuthState {
    user: u64,
}

fn main() {
    assert_eq!(Cart::NAMESPACE, "shop.cart-v2_eu");
    assert_eq!(HTTPAuthState::NAMESPACE, "http_auth_state");

    let stored = Cart {
        items: vec!["a".into()],
    }
    .encode_fields()
    .unwrap();
    assert_eq!(stored.get("items"), Some(&br#"["a"]"#[..]));
    let auth = HTTPAuthState::decode_fields(1, &HTTPAuthState { user: 7 }.encode_fields().unwrap());
    assert_eq!(auth.unwrap().user, 7);
}
