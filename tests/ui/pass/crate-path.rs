mod reexport {
    pub use typed_sessions;
}

mod nested {
    use crate::reexport::typed_sessions::SessionData;

    /// In a module, the path is resolved there, so it starts at `crate`.
    #[derive(SessionData, Default)]
    #[session(namespace = "prefs")]
    #[session(crate = "crate::reexport::typed_sessions")]
    pub struct Prefs {
        pub theme: String,
    }
}

use reexport::typed_sessions::SessionData;

#[derive(SessionData, Debug, PartialEq, Default)]
#[session(namespace = "cart")]
#[session(crate = "reexport::typed_sessions")]
struct Cart {
    items: Vec<String>,
}

#[derive(SessionData, Default)]
#[session(namespace = "visits")]
#[session(crate = "::typed_sessions")]
struct Visits {
    count: u32,
}

fn main() {
    let cart = Cart {
        items: vec!["a".into()],
    };
    let stored = cart.encode_fields().unwrap();
    assert_eq!(Cart::decode_fields(1, &stored).unwrap(), cart);
    assert_eq!(nested::Prefs::NAMESPACE, "prefs");
    let prefs = nested::Prefs {
        theme: "dark".into(),
    }
    .encode_fields()
    .unwrap();
    assert_eq!(prefs.get("theme"), Some(&br#""dark""#[..]));
    assert_eq!(
        Visits { count: 2 }.encode_fields().unwrap().get("count"),
        Some(&b"2"[..])
    );
}
