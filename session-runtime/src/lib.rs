//! The runtime of typed-sessions. Use it through the `typed-sessions` facade.
//!
//! Modules, bottom to top (each uses only modules above it in this list):
//! `clock`, `id`, `codec`, `data` (the schema side), `store` (the storage
//! contract and `MemoryStore`), `error`, `cookie`, `backend` (the seam to
//! stores), `cookie_store` (the client-side store behind it), `settings`, `retry`, `session` (the per-request state), `layer`
//! (the middleware and the write-back), `extract` (the extractors).

mod backend;
mod clock;
mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
mod cookie;
pub mod cookie_store;
mod data;
mod error;
mod extract;
mod id;
pub mod layer;
mod retry;
mod session;
mod settings;
pub mod store;

#[doc(hidden)]
pub mod __private;

/// The `tracing` target of every span and event of the runtime: filter
/// with `RUST_LOG=typed_sessions=debug`.
pub(crate) const LOG_TARGET: &str = "typed_sessions";

pub use backend::SessionBackend;
pub use clock::{Clock, SystemClock};
pub use codec::{Codec, CodecError, JsonCodec};
pub use cookie::SameSite;
pub use data::{DecodeError, FieldInfo, FieldMap, SessionData};
pub use error::{ConfigError, SessionRejection, UpdateError};
pub use extract::{Session, SessionHandle, SessionRef};
pub use id::SessionId;
pub use layer::{SessionLayer, SessionLayerBuilder};
pub use settings::{DecodeFailurePolicy, NewerVersionPolicy, StoreDownPolicy};

/// The `redis` crate [`RedisStore`](store::RedisStore) is built on, for apps
/// that hand the store a connection they made
/// ([`RedisStoreBuilder::connection`](store::RedisStoreBuilder::connection)).
#[cfg(feature = "redis")]
pub use ::redis;

/// The `sqlx` crate the SQL stores are built on, for the pool they take
/// ([`PostgresStore::new`](store::PostgresStore::new),
/// [`SqliteStore::new`](store::SqliteStore::new)).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use ::sqlx;
