//! The runtime of typed-sessions. Use it through the `typed-sessions` facade.

mod clock;
mod codec;
mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
mod data;
mod error;
mod extract;
mod id;
mod layer;
mod state;
pub mod store;

#[doc(hidden)]
pub mod __private;

pub use clock::{Clock, SystemClock};
pub use codec::{Codec, CodecError, JsonCodec};
pub use config::{
    ConfigError, DecodeFailurePolicy, NewerVersionPolicy, SameSite, SessionLayerBuilder,
    StoreDownPolicy,
};
pub use data::{DecodeError, FieldInfo, FieldMap, SessionData};
pub use error::{SessionRejection, UpdateError};
pub use extract::{Session, SessionHandle};
pub use id::SessionId;
pub use layer::{ResponseFuture, SessionLayer, SessionService};
