#![doc = include_str!("../README.md")]

pub use session_derive::SessionData;
pub use session_runtime::{
    Codec, CodecError, DecodeError, FieldInfo, FieldMap, JsonCodec, SessionData,
};

#[doc(hidden)]
pub use session_runtime::__private;
