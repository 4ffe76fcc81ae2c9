//! A schema value as a request holds it: its own copy, or the decoded copy
//! a store that keeps records in memory shares between read-only requests
//! (schemas declared `#[session(cached)]`).

use std::any::Any;
use std::sync::Arc;

use crate::data::SessionData;

pub(crate) enum Held<T> {
    /// Decoded for this request, or already borrowed mutably.
    Owned(T),
    /// The stored record's decoded copy, a `T` (checked when it was taken:
    /// see [`Held::shared`]); copied on the first mutable borrow. Held as
    /// `dyn Any + Send + Sync` so that `Session<T>` is `Send` whenever `T`
    /// is, as for any schema.
    Shared(Arc<dyn Any + Send + Sync>),
}

impl<T: SessionData> Held<T> {
    /// `shared` as a `T`, when it holds one and `T` is
    /// `#[session(cached)]`.
    pub(crate) fn shared(shared: &Arc<dyn Any + Send + Sync>) -> Option<Self> {
        (T::__CACHED && shared.is::<T>()).then(|| Self::Shared(Arc::clone(shared)))
    }

    pub(crate) fn get(&self) -> &T {
        match self {
            Self::Owned(value) => value,
            Self::Shared(shared) => shared
                .downcast_ref()
                .expect("a shared value is a T (checked in Held::shared)"),
        }
    }

    /// The value to change: a shared copy becomes this request's own first.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        if let Self::Shared(_) = self {
            *self = Self::Owned(copy_of(self.get()));
        }
        match self {
            Self::Owned(value) => value,
            Self::Shared(_) => unreachable!("made owned above"),
        }
    }

    pub(crate) fn into_owned(self) -> T {
        match self {
            Self::Owned(value) => value,
            Self::Shared(_) => copy_of(self.get()),
        }
    }
}

fn copy_of<T: SessionData>(shared: &T) -> T {
    // Only `#[session(cached)]` schemas (`__CACHED`) are ever shared, and
    // the derive gives those a copy (it requires `Clone`).
    shared
        .__clone_shared()
        .expect("a shared value's schema is #[session(cached)], which is Clone")
}
