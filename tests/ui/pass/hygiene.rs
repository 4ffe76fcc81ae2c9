//! A user crate that shadows every prelude, primitive and std name the
//! generated code could pick up by accident, and the runtime's own names.

#![allow(dead_code, non_camel_case_types, unused_macros)]

struct Result;
struct Option;
struct Some;
struct None;
struct Ok;
struct Err;
struct Vec;
struct String;
struct Box;
struct Default;
struct From;
struct Into;
struct Send;
struct Sized;
struct Self_;
struct u8;
struct u32;
struct usize;
struct str;
struct bool;
struct FieldMap;
struct FieldInfo;
struct JsonCodec;
struct Codec;
struct CodecError;
struct DecodeError;
struct SessionData;
struct Arc;
struct Clone;
struct Sync;

mod core {}
mod std {}
mod alloc {}
mod serde {}
mod __private {}
mod typed_sessions {}

macro_rules! assert {
    ($($t:tt)*) => {
        compile_error!("the user's assert! was used")
    };
}
macro_rules! unreachable {
    ($($t:tt)*) => {
        compile_error!("the user's unreachable! was used")
    };
}

#[derive(::typed_sessions::SessionData, Default)]
#[session(namespace = "cart")]
struct CartV1 {
    items: ::std::vec::Vec<::std::string::String>,
}

#[derive(::typed_sessions::SessionData, Default, ::core::clone::Clone)]
#[session(namespace = "cart", version = 2, migrate_from = CartV1, cached)]
struct Cart {
    items: ::std::vec::Vec<::std::string::String>,
    #[session(default)]
    coupon: ::core::option::Option<::std::string::String>,
    #[session(skip)]
    scratch: ::core::primitive::u32,
    #[session(rename = "n", sensitive, rotate_id)]
    owner: ::core::option::Option<::core::primitive::u64>,
}

impl ::core::convert::From<CartV1> for Cart {
    fn from(v1: CartV1) -> Self {
        Self {
            items: v1.items,
            coupon: ::core::option::Option::None,
            scratch: 0,
            owner: ::core::option::Option::None,
        }
    }
}

fn main() {
    use ::typed_sessions::SessionData as _;

    ::core::assert_eq!(<Cart as ::typed_sessions::SessionData>::NAMESPACE, "cart");
    ::core::assert_eq!(<Cart as ::typed_sessions::SessionData>::VERSION, 2);

    let v1 = CartV1 {
        items: ::std::vec!["a".into()],
    };
    let stored = v1.encode_fields().unwrap();
    let cart = Cart::decode_fields(1, &stored).unwrap();
    ::core::assert_eq!(cart.items, ["a"]);
    ::core::assert!(cart.coupon.is_none());

    let stored = cart.encode_fields().unwrap();
    let again = Cart::decode_fields(2, &stored).unwrap();
    ::core::assert_eq!(again.items, ["a"]);
    ::core::assert!(Cart::decode_fields(3, &stored).is_err());
}
