//! A store that keeps what it needs alive: the server a test started for
//! it lives as long as any clone of the store.

use std::any::Any;
use std::sync::Arc;

use typed_sessions::stores::{
    Changeset, Record, SaveOutcome, SessionKey, SessionStore, StoreError,
};

/// `store`, holding `guard` (a server process, say) until the last clone
/// is dropped.
#[derive(Clone)]
pub struct Backed<S> {
    pub store: S,
    _guard: Arc<dyn Any + Send + Sync>,
}

impl<S> Backed<S> {
    pub fn new(store: S, guard: impl Any + Send + Sync) -> Self {
        Self {
            store,
            _guard: Arc::new(guard),
        }
    }
}

impl<S: SessionStore> SessionStore for Backed<S> {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>, StoreError> {
        self.store.load(key).await
    }

    async fn save(&self, key: &SessionKey, changes: &Changeset) -> Result<SaveOutcome, StoreError> {
        self.store.save(key, changes).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.store.delete(key).await
    }

    async fn touch(
        &self,
        key: &SessionKey,
        last_seen_ms: u64,
        expires_at_ms: u64,
    ) -> Result<bool, StoreError> {
        self.store.touch(key, last_seen_ms, expires_at_ms).await
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.store.exists(key).await
    }
}
