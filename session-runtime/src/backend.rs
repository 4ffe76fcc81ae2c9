//! The seam between the layer and where sessions live.
//!
//! The request state and the write-back talk only to [`Backend`]. Today it
//! has one kind: a server-side [`SessionStore`](crate::store::SessionStore)
//! keeping records by the SHA-256 of the id. A client-side store (the record
//! sealed inside the cookie value) becomes a second variant: its `load`
//! opens the cookie value instead of looking up a key, and its `save`
//! applies the same [`Changeset`] to that record in memory and returns the
//! sealed result as the next cookie value.
//!
//! Every operation runs in a `tracing` span (`session_load`,
//! `session_save`, `session_delete`, `session_touch`) that carries the
//! hashed id and the latency; with no subscriber listening it costs neither
//! a hash nor a clock read.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument as _;

use crate::error::ErrorChain;
use crate::id::{LogSecret, RawId};
use crate::store::{
    Changeset, DynStore, Record, SaveOutcome, SessionKey, SessionStore, StoreError,
};

/// Where a layer keeps its sessions.
pub(crate) enum Backend {
    /// Records in a store, by hashed id.
    Server(Arc<dyn DynStore>),
}

impl Backend {
    /// A backend over a server-side store.
    pub(crate) fn server<S: SessionStore>(store: S) -> Self {
        Self::Server(Arc::new(store))
    }

    /// The record of `id`, if the store has one.
    pub(crate) async fn load(
        &self,
        id: &RawId,
        key: &SessionKey,
        secret: &LogSecret,
    ) -> Result<Option<Record>, StoreError> {
        let span = tracing::debug_span!(
            "session_load",
            session = tracing::field::Empty,
            latency_us = tracing::field::Empty
        );
        match self {
            Self::Server(store) => timed("load", &span, id, secret, store.load(key)).await,
        }
    }

    /// Applies `changes` to the record under `key`.
    pub(crate) async fn save(
        &self,
        id: &RawId,
        key: &SessionKey,
        changes: &Changeset,
        secret: &LogSecret,
    ) -> Result<SaveOutcome, StoreError> {
        let span = tracing::debug_span!(
            "session_save",
            session = tracing::field::Empty,
            latency_us = tracing::field::Empty,
            namespaces = changes.namespaces.len()
        );
        match self {
            Self::Server(store) => timed("save", &span, id, secret, store.save(key, changes)).await,
        }
    }

    /// Deletes the record under `key`.
    pub(crate) async fn delete(
        &self,
        id: &RawId,
        key: &SessionKey,
        secret: &LogSecret,
    ) -> Result<bool, StoreError> {
        let span = tracing::debug_span!(
            "session_delete",
            session = tracing::field::Empty,
            latency_us = tracing::field::Empty
        );
        match self {
            Self::Server(store) => timed("delete", &span, id, secret, store.delete(key)).await,
        }
    }

    /// Moves the record's `last_seen` and deadline; `true` when it exists.
    pub(crate) async fn touch(
        &self,
        id: &RawId,
        key: &SessionKey,
        last_seen_ms: u64,
        expires_at_ms: u64,
        secret: &LogSecret,
    ) -> Result<bool, StoreError> {
        let span = tracing::debug_span!(
            "session_touch",
            session = tracing::field::Empty,
            latency_us = tracing::field::Empty
        );
        match self {
            Self::Server(store) => {
                timed(
                    "refresh",
                    &span,
                    id,
                    secret,
                    store.touch(key, last_seen_ms, expires_at_ms),
                )
                .await
            }
        }
    }
}

/// Runs one store operation inside `span`, recording the hashed id and the
/// latency, and logs a failure inside the span (so the warning carries the
/// hashed id). With no subscriber interested in the span, it costs neither
/// a hash nor a clock read.
async fn timed<T, F: std::future::Future<Output = Result<T, StoreError>>>(
    operation_name: &'static str,
    span: &tracing::Span,
    id: &RawId,
    secret: &LogSecret,
    operation: F,
) -> Result<T, StoreError> {
    if span.is_disabled() {
        let output = operation.await;
        if let Err(err) = &output {
            tracing::warn!(error = %ErrorChain(err), "session store failed on {operation_name}");
        }
        return output;
    }
    span.record("session", tracing::field::display(id.log_hash(secret)));
    let started = Instant::now();
    let output = operation.instrument(span.clone()).await;
    span.record(
        "latency_us",
        u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    );
    if let Err(err) = &output {
        tracing::warn!(parent: span, error = %ErrorChain(err), "session store failed on {operation_name}");
    }
    output
}
