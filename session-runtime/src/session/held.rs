//! A schema value as a request holds it: its own copy, or the decoded copy
//! a store that keeps records in memory shares between read-only requests
//! (schemas declared `#[session(cached)]`).

use std::sync::Arc;

use crate::data::SessionData;

pub(crate) enum Held<T> {
    /// Decoded for this request, or already borrowed mutably.
    Owned(T),
    /// The stored record's decoded copy; copied on the first mutable borrow.
    Shared(Arc<T>),
}

impl<T: SessionData> Held<T> {
    pub(crate) fn get(&self) -> &T {
        match self {
            Self::Owned(value) => value,
            Self::Shared(value) => value,
        }
    }

    /// The value to change: a shared copy becomes this request's own first.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        if let Self::Shared(shared) = self {
            *self = Self::Owned(copy_of(shared));
        }
        match self {
            Self::Owned(value) => value,
            Self::Shared(_) => unreachable!("made owned above"),
        }
    }

    pub(crate) fn into_owned(self) -> T {
        match self {
            Self::Owned(value) => value,
            Self::Shared(shared) => {
                Arc::try_unwrap(shared).unwrap_or_else(|shared| copy_of(&shared))
            }
        }
    }
}

fn copy_of<T: SessionData>(shared: &T) -> T {
    // Only `#[session(cached)]` schemas are ever shared, and the derive
    // gives those a copy (it requires `Clone`).
    shared
        .__clone_shared()
        .expect("a shared value's schema is #[session(cached)], which is Clone")
}
