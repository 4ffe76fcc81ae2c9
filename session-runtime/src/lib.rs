//! The runtime of typed-sessions. Use it through the `typed-sessions` facade.

#[doc(hidden)]
pub mod __private;
mod codec;
mod data;

pub use codec::{Codec, CodecError, JsonCodec};
pub use data::{DecodeError, FieldInfo, FieldMap, SessionData};
