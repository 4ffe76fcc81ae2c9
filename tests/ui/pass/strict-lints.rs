//! The generated code passes the strictest rustc lints a library might deny.
//! (trybuild runs rustc, not clippy; the clippy groups are denied here so
//! that running clippy over this file checks them too.)

#![deny(
    warnings,
    future_incompatible,
    let_underscore,
    nonstandard_style,
    rust_2018_idioms,
    unused,
    deprecated_safe,
    elided_lifetimes_in_paths,
    explicit_outlives_requirements,
    macro_use_extern_crate,
    meta_variable_misuse,
    missing_copy_implementations,
    missing_debug_implementations,
    missing_docs,
    non_ascii_idents,
    redundant_imports,
    redundant_lifetimes,
    single_use_lifetimes,
    trivial_casts,
    trivial_numeric_casts,
    unit_bindings,
    unnameable_types,
    unreachable_pub,
    unsafe_code,
    unstable_features,
    unused_extern_crates,
    unused_import_braces,
    unused_lifetimes,
    unused_macro_rules,
    unused_qualifications,
    unused_results,
    variant_size_differences,
    clippy::all,
    clippy::pedantic,
    clippy::nursery
)]

use serde::{Deserialize, Serialize};
use typed_sessions::{FieldInfo, FieldMap, JsonCodec, SessionData};

/// One line of the cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The product.
    pub sku: String,
    /// How many.
    pub qty: u32,
}

/// The first version of the cart.
#[derive(Debug, SessionData, Default)]
#[session(namespace = "cart")]
pub struct CartV1 {
    /// Product codes.
    pub items: Vec<String>,
}

/// The cart, with every attribute in use.
#[derive(Debug, Default, PartialEq, Eq, SessionData)]
#[session(
    namespace = "cart",
    version = 2,
    migrate_from = CartV1,
    codec = JsonCodec,
    crate = "typed_sessions"
)]
pub struct Cart {
    /// Lines.
    pub items: Vec<Item>,
    /// A coupon code.
    #[session(default, rename = "c")]
    pub coupon: Option<String>,
    /// Derived, never stored.
    #[session(skip)]
    pub total: u64,
    /// Who owns the cart.
    #[session(sensitive, rotate_id)]
    pub owner: Option<u64>,
}

impl From<CartV1> for Cart {
    fn from(v1: CartV1) -> Self {
        Self {
            items: v1
                .items
                .into_iter()
                .map(|sku| Item { sku, qty: 1 })
                .collect(),
            ..Self::default()
        }
    }
}

/// A schema without fields.
#[derive(Debug, Clone, Copy, SessionData, Default)]
#[session(namespace = "empty")]
pub struct Empty {}

/// The largest version there is.
#[derive(Debug, Clone, Copy, SessionData, Default)]
#[session(namespace = "newest")]
#[session(version = 4_294_967_295)]
pub struct Newest {
    /// A flag.
    pub on: bool,
}

fn main() {
    let stored = CartV1 {
        items: vec!["a".to_owned()],
    }
    .encode_fields()
    .unwrap();
    let cart = Cart::decode_fields(1, &stored).unwrap();
    assert_eq!(
        cart.items,
        [Item {
            sku: "a".to_owned(),
            qty: 1
        }]
    );
    let stored = cart.encode_fields().unwrap();
    assert_eq!(Cart::decode_fields(2, &stored).unwrap(), cart);
    assert_eq!(
        Cart::FIELDS,
        [
            FieldInfo::__new("items", false, false),
            FieldInfo::__new("c", false, false),
            FieldInfo::__new("owner", true, true),
        ]
    );

    assert!(Empty {}.encode_fields().unwrap().is_empty());
    assert!(Empty::decode_fields(1, &FieldMap::new()).is_ok());
    assert!(Empty {}.encode_field(0).is_err());

    assert_eq!(Newest::VERSION, u32::MAX);
    let stored = Newest { on: true }.encode_fields().unwrap();
    assert!(Newest::decode_fields(u32::MAX, &stored).unwrap().on);
    assert!(Newest::decode_fields(0, &stored).is_err());
}
