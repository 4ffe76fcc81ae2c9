//! The middleware: [`SessionLayer`] attaches a lazy per-request session to
//! every request, and writes it back after the handler.
//!
//! - `builder`: [`SessionLayerBuilder`], configuration checked at `build()`;
//! - `session_layer`: the [`SessionLayer`] itself;
//! - `service`: the [`SessionService`] made by the layer;
//! - `future`: its [`ResponseFuture`];
//! - `writeback`: the end of a request, from request state to store and cookie.
//!
//! Each file uses only the ones below it in this list (and none uses this
//! module's root, which only declares and re-exports).

mod builder;
mod future;
mod service;
mod session_layer;
mod writeback;

pub use builder::SessionLayerBuilder;
pub use future::ResponseFuture;
pub use service::SessionService;
pub use session_layer::SessionLayer;
