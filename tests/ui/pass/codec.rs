use typed_sessions::{Codec, SessionData};

mod codecs {
    use typed_sessions::{Codec, CodecError};

    /// JSON with a one-byte format tag, to prove this codec is the one used.
    pub struct TaggedJson;

    impl Codec for TaggedJson {
        fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
            let mut bytes = vec![b'j'];
            serde_json::to_writer(&mut bytes, value).map_err(CodecError::encode)?;
            Ok(bytes)
        }

        fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
            let json = bytes.strip_prefix(b"j").unwrap_or(bytes);
            serde_json::from_slice(json).map_err(CodecError::decode)
        }
    }
}

#[derive(SessionData, Debug, PartialEq, Default)]
#[session(namespace = "cart")]
#[session(codec = codecs::TaggedJson)]
struct Cart {
    items: Vec<String>,
    total: u32,
}

fn main() {
    let cart = Cart {
        items: vec!["a".into()],
        total: 12,
    };
    let stored = cart.encode_fields().unwrap();
    assert_eq!(stored.get("items"), Some(&br#"j["a"]"#[..]));
    assert_eq!(stored.get("total"), Some(&b"j12"[..]));
    assert_eq!(Cart::decode_fields(1, &stored).unwrap(), cart);
    assert_eq!(
        <Cart as SessionData>::Codec::encode(&1u8).unwrap(),
        codecs::TaggedJson::encode(&1u8).unwrap()
    );
}
