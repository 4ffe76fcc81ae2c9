//! The extractors: [`Session<T>`](Session) (typed data) and
//! [`SessionHandle`] (id and lifecycle). Both find the request's session
//! through the extension the layer inserts.

mod handle;
mod session;

pub use handle::SessionHandle;
pub use session::Session;
