#![doc = include_str!("../README.md")]

pub use session_derive::SessionData;
pub use session_runtime::{
    Clock, Codec, CodecError, ConfigError, DecodeError, DecodeFailurePolicy, FieldInfo, FieldMap,
    JsonCodec, NewerVersionPolicy, ResponseFuture, SameSite, Session, SessionData, SessionHandle,
    SessionId, SessionLayer, SessionLayerBuilder, SessionRejection, SessionService,
    StoreDownPolicy, SystemClock, UpdateError,
};

/// Where sessions live: the [`SessionStore`](stores::SessionStore) contract and the built-in stores.
pub mod stores {
    pub use session_runtime::store::*;
}

/// Runs the shared store conformance suite against a store: one `#[test]` per case.
#[cfg(feature = "conformance")]
pub use session_runtime::conformance_tests;

#[doc(hidden)]
pub use session_runtime::__private;
