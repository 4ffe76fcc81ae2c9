//! The extractors: [`Session<T>`](Session) (typed data) and
//! [`SessionHandle`] (id and lifecycle). Both find the request's session
//! through the extension the layer inserts.

use std::sync::Arc;

use http::request::Parts;

use crate::error::SessionRejection;
use crate::session::{RequestSession, SessionContext};

mod handle;
mod session;

pub use handle::SessionHandle;
pub use session::Session;

fn context(parts: &Parts) -> Result<Arc<RequestSession>, SessionRejection> {
    parts
        .extensions
        .get::<SessionContext>()
        .map(|ctx| Arc::clone(&ctx.0))
        .ok_or(SessionRejection::MissingLayer)
}
