#![doc = include_str!("../README.md")]

pub use session_derive::SessionData;
pub use session_runtime::{
    Clock, Codec, CodecError, ConfigError, DecodeError, DecodeFailurePolicy, FieldInfo, FieldMap,
    JsonCodec, NewerVersionPolicy, SameSite, Session, SessionData, SessionHandle, SessionId,
    SessionLayer, SessionLayerBuilder, SessionRef, SessionRejection, StoreDownPolicy, SystemClock,
    UpdateError,
};

/// The middleware's plumbing types, for code that names them (a
/// `tower::Service` bound, a boxed future): the service [`SessionLayer`]
/// makes and its response future.
pub mod layer {
    pub use session_runtime::layer::{ResponseFuture, SessionService};
}

/// Where sessions live: the [`SessionStore`](stores::SessionStore) contract and the built-in stores.
pub mod stores {
    pub use session_runtime::SessionBackend;
    pub use session_runtime::cookie_store::{CookieKey, CookieStore, KeyError};
    pub use session_runtime::store::*;
    // Named as well as globbed: without the feature, rustc then says that
    // `RedisStore` needs the `redis` feature instead of "no `RedisStore`".
    #[cfg(feature = "redis")]
    pub use session_runtime::store::{MalformedHash, RedisStore, RedisStoreBuilder};
    #[cfg(feature = "postgres")]
    pub use session_runtime::store::{PostgresStore, PostgresStoreBuilder};
    #[cfg(feature = "sqlite")]
    pub use session_runtime::store::{SqliteStore, SqliteStoreBuilder};
}

/// Runs the shared store conformance suite against a store: one `#[test]` per case.
///
/// In the store's crate, with `typed-sessions` as a dev-dependency with the
/// `conformance` feature, in a test file (`tests/conformance.rs`) or a
/// `#[cfg(test)]` module; the expression makes a fresh store for each case:
///
/// ```
/// typed_sessions::conformance_tests!(typed_sessions::stores::MemoryStore::new());
/// # fn main() {}
/// ```
#[cfg(feature = "conformance")]
pub use session_runtime::conformance_tests;

/// The `redis` crate [`RedisStore`](stores::RedisStore) is built on, for apps
/// that hand the store a connection they made
/// ([`RedisStoreBuilder::connection`](stores::RedisStoreBuilder::connection)).
#[cfg(feature = "redis")]
pub use session_runtime::redis;

/// The `sqlx` crate the SQL stores are built on, for the pool they take
/// ([`PostgresStore::new`](stores::PostgresStore::new),
/// [`SqliteStore::new`](stores::SqliteStore::new)).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use session_runtime::sqlx;

#[doc(hidden)]
pub use session_runtime::__private;

/// What the type of every stored field of a schema implements: serde's
/// `Serialize` and `Deserialize` (it is implemented for every such type).
/// `#[derive(SessionData)]` names it in its error for a field that cannot
/// be stored.
pub use session_runtime::__private::StoredField;
