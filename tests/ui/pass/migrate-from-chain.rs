use typed_sessions::{DecodeError, SessionData};

#[derive(SessionData, Default)]
#[session(namespace = "cart")]
struct CartV1 {
    items: Vec<String>,
}

#[derive(SessionData, Default)]
#[session(namespace = "cart", version = 2, migrate_from = CartV1)]
struct CartV2 {
    items: Vec<(String, u32)>,
}

impl From<CartV1> for CartV2 {
    fn from(v1: CartV1) -> Self {
        Self {
            items: v1.items.into_iter().map(|sku| (sku, 1)).collect(),
        }
    }
}

/// The namespace is derived ("cart") and matches the chain's.
#[derive(SessionData, Debug, PartialEq, Default)]
#[session(namespace = "cart")]
#[session(version = 3, migrate_from = CartV2)]
struct Cart {
    items: Vec<(String, u32)>,
    #[session(default)]
    coupon: Option<String>,
}

impl From<CartV2> for Cart {
    fn from(v2: CartV2) -> Self {
        Self {
            items: v2.items,
            coupon: None,
        }
    }
}

fn main() {
    let v1 = CartV1 {
        items: vec!["a".into(), "b".into()],
    }
    .encode_fields()
    .unwrap();
    let cart = Cart::decode_fields(1, &v1).unwrap();
    assert_eq!(
        cart,
        Cart {
            items: vec![("a".into(), 1), ("b".into(), 1)],
            coupon: None,
        }
    );

    let v2 = CartV2 {
        items: vec![("c".into(), 4)],
    }
    .encode_fields()
    .unwrap();
    assert_eq!(
        Cart::decode_fields(2, &v2).unwrap().items,
        [("c".into(), 4)]
    );

    assert!(matches!(
        Cart::decode_fields(0, &v1),
        Err(DecodeError::UnsupportedVersion { found: 0 })
    ));
}
