//! The per-request session: loaded at most once, shared by every extractor
//! of the request, handed to the write-back after the handler.
//!
//! - [`state`]: what the request did to the session (events, slots);
//! - [`baseline`]: what storage holds for a namespace, the diff's reference;
//! - [`diff`]: field-level diffs and the rebase of a conflicting write;
//! - [`decode`]: stored bytes to schema values, under the layer's policies;
//! - [`held`]: a value of the request's own, or a decoded copy it shares;
//! - [`update`]: the atomic read-modify-write of `Session::update`;
//! - [`request`]: the request's session, loaded once, shared by extractors.

mod baseline;
mod decode;
pub(crate) mod diff;
pub(crate) mod held;
mod request;
mod state;
pub(crate) mod update;

pub(crate) use request::{RequestSession, SessionContext};
pub(crate) use state::{CommittedId, Finish, StoredSession};
