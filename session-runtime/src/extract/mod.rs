//! The extractors: [`Session<T>`](Session) (typed data),
//! [`SessionRef<T>`](SessionRef) (a read-only copy, for guards) and
//! [`SessionHandle`] (id and lifecycle). Both find the request's session
//! through the extension the layer inserts.

mod handle;
mod session;
mod session_ref;

pub use handle::SessionHandle;
pub use session::Session;
pub use session_ref::SessionRef;
