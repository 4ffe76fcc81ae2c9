//! `Session<T>`: one namespace of the request's session, typed.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use axum_core::extract::FromRequestParts;
use http::request::Parts;

use crate::data::SessionData;
use crate::error::{SessionRejection, UpdateError};
use crate::retry::Backoff;
use crate::session::held::Held;
use crate::session::update::Commit;
use crate::session::{RequestSession, SessionContext};

/// One namespace of the request's session, typed as `T`.
///
/// Derefs to `T`: read and assign fields directly. When it is dropped (at
/// the end of the handler) the runtime diffs `T` against what was loaded and,
/// after the handler's response, writes only the fields that changed.
/// Loading is lazy (no store I/O unless extracted) and happens at most once
/// per request, however many `Session<_>` and [`SessionHandle`](crate::SessionHandle)s it has.
///
/// ```
/// use axum::{Json, Router, routing::post};
/// use typed_sessions::{Session, SessionData, SessionLayer, stores::MemoryStore};
///
/// #[derive(SessionData, Default)]
/// #[session(namespace = "counter")]
/// struct Counter { count: u64 }
///
/// async fn incr(mut counter: Session<Counter>) -> Json<u64> {
///     counter.count += 1;
///     Json(counter.count)
/// }
///
/// let app: Router = Router::new()
///     .route("/incr", post(incr))
///     .layer(SessionLayer::new(MemoryStore::new()));
/// ```
///
/// # Which changes are saved
///
/// Changes are found by comparing each field's encoding with what was
/// loaded, and that comparison runs for a namespace that was borrowed
/// mutably in the request: through `DerefMut` (`session.field = v`,
/// `session.items.push(x)`, `&mut *session`) or inside
/// [`update`](Self::update), whose closure gets `&mut T`. A change made only
/// through `&T` (a `Cell`, `RefCell` or `Mutex` field) is not seen and not
/// saved; take a mutable borrow, or make the change inside `update`. A
/// mutable borrow that changes nothing writes nothing. Debug builds log a
/// warning when a value comes back changed without a mutable borrow.
///
/// A `Session<T>` must not outlive the request: changes made after the
/// response has been produced are not saved.
pub struct Session<T: SessionData> {
    value: Option<Held<T>>,
    context: Arc<RequestSession>,
    /// Borrowed mutably since the last commit.
    changed: bool,
    /// Borrowed mutably at all (`DerefMut` or `update`): the value may not
    /// be what the store holds, so it never becomes a shared copy.
    touched: bool,
    epoch: u64,
}

impl<T, S> FromRequestParts<S> for Session<T>
where
    T: SessionData,
    S: Send + Sync,
{
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let context = SessionContext::of(parts)?;
        context.ensure_loaded().await?;
        let (value, epoch) = context.check_out::<T>()?;
        Ok(Self {
            value: Some(value),
            context,
            changed: false,
            touched: false,
            epoch,
        })
    }
}

impl<T: SessionData> Session<T> {
    fn value(&self) -> &T {
        self.value
            .as_ref()
            .expect("value is present until drop")
            .get()
    }

    fn value_mut(&mut self) -> &mut T {
        self.touched = true;
        self.value
            .as_mut()
            .expect("value is present until drop")
            .get_mut()
    }

    /// Atomic read-modify-write of this namespace.
    ///
    /// Applies `f` and commits the changed fields at once with
    /// compare-and-swap on this namespace's revision, so concurrent
    /// `update`s never lose each other's changes (writes to other namespaces
    /// never conflict with it). On a conflict it reloads the namespace,
    /// re-applies `f` to the fresh value, and retries with jittered backoff
    /// until the layer's update deadline; `f` may therefore run more than
    /// once. Direct edits made before the call are committed with the first
    /// attempt, and replaced by the stored value if that attempt conflicts.
    ///
    /// ```
    /// use typed_sessions::{Session, SessionData, UpdateError};
    ///
    /// #[derive(SessionData, Default)]
    /// #[session(namespace = "counter")]
    /// struct Counter { count: u64 }
    ///
    /// async fn incr(mut counter: Session<Counter>) -> Result<String, UpdateError> {
    ///     let count = counter.update(|c| { c.count += 1; c.count }).await?;
    ///     Ok(count.to_string())
    /// }
    /// ```
    ///
    /// When `update` fails, the `Session` holds the value as last loaded
    /// from the store (after a conflict) or `f`'s result (after a store
    /// failure), and it is not written back unless changed again.
    ///
    /// # Panics
    /// Never: the internal `expect`s state invariants of the request state.
    ///
    /// # Errors
    /// [`UpdateError::Contended`] when the deadline passes,
    /// [`UpdateError::SessionGone`] when another request destroyed the
    /// session, [`UpdateError::Destroyed`] after `destroy()` or `clear()` in
    /// this request, [`UpdateError::Rejected`] when the stored data met on a
    /// retry is rejected by the layer's policies, [`UpdateError::Store`] when
    /// the store fails, [`UpdateError::Codec`] when the value does not encode.
    pub async fn update<R>(&mut self, mut f: impl FnMut(&mut T) -> R) -> Result<R, UpdateError> {
        let result = self.update_loop(&mut f).await;
        if result.is_err() {
            // Whatever `f` did was not committed: never let the end-of-request
            // write-back store it behind the caller's back.
            self.changed = false;
            self.context.lock().discard_changes::<T>();
        }
        result
    }

    async fn update_loop<R>(&mut self, f: &mut impl FnMut(&mut T) -> R) -> Result<R, UpdateError> {
        let mut backoff = Backoff::new(self.context.settings().update_deadline);
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let output = f(self.value_mut());
            match self.context.commit(self.value(), self.epoch).await? {
                Commit::Done => {
                    self.changed = false;
                    return Ok(output);
                }
                Commit::Conflict { id, key } => {
                    // Wait first, then reload: the retry starts from the
                    // freshest state, and when the deadline has passed the
                    // value is still the stored one, never `f`'s result.
                    let paused = backoff.pause().await;
                    self.value = Some(Held::Owned(self.context.reload::<T>(&key, &id).await?));
                    if let Err(gave_up) = paused {
                        return Err(UpdateError::Contended {
                            attempts,
                            waited: gave_up.waited,
                        });
                    }
                }
            }
        }
    }
}

impl<T: SessionData> Deref for Session<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value()
    }
}

impl<T: SessionData> DerefMut for Session<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.changed = true;
        self.value_mut()
    }
}

impl<T: SessionData> Drop for Session<T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            self.context
                .check_in(value, self.changed, !self.touched, self.epoch);
        }
    }
}

/// Shows the namespace and each stored field's encoding; fields marked
/// `#[session(sensitive)]` print as `<redacted>`. `T` needs no `Debug`.
impl<T: SessionData> fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_fields(f, "Session", self.value())
    }
}

/// The `Debug` of an extractor holding `value`: the namespace and each
/// stored field's encoding, `sensitive` fields as `<redacted>`.
pub(super) fn debug_fields<T: SessionData>(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    value: &T,
) -> fmt::Result {
    let mut out = f.debug_struct(name);
    out.field("namespace", &T::NAMESPACE);
    for (index, info) in T::FIELDS.iter().enumerate() {
        if info.sensitive() {
            out.field(info.name(), &format_args!("<redacted>"));
        } else {
            match value.encode_field(index) {
                Ok(bytes) => out.field(
                    info.name(),
                    &format_args!("{}", String::from_utf8_lossy(&bytes)),
                ),
                Err(_) => out.field(info.name(), &format_args!("<unencodable>")),
            };
        }
    }
    out.finish()
}
