//! The extractors: `Session<T>` (typed data) and `SessionHandle` (id and lifecycle).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum_core::extract::FromRequestParts;
use http::request::Parts;

use crate::clock::from_ms;
use crate::data::SessionData;
use crate::error::{SessionRejection, UpdateError};
use crate::id::{RawId, SessionId};
use crate::layer::SessionContext;
use crate::state::{Base, RequestSession, decode_slot, jitter, plan, timed};
use crate::store::{
    Changeset, NamespaceChange, NamespaceOp, NamespaceRecord, SaveMode, SaveOutcome, SessionKey,
    StoreError,
};

fn context(parts: &Parts) -> Result<Arc<RequestSession>, SessionRejection> {
    parts
        .extensions
        .get::<SessionContext>()
        .map(|ctx| Arc::clone(&ctx.0))
        .ok_or(SessionRejection::MissingLayer)
}

/// One namespace of the request's session, typed as `T`.
///
/// Derefs to `T`: read and assign fields directly. When it is dropped (at
/// the end of the handler) the runtime diffs `T` against what was loaded and,
/// after the handler's response, writes only the fields that changed.
/// Loading is lazy (no store I/O unless extracted) and happens at most once
/// per request, however many `Session<_>` and [`SessionHandle`]s it has.
///
/// ```
/// use axum::{Json, Router, routing::post};
/// use typed_sessions::{Session, SessionData, SessionLayer, stores::MemoryStore};
///
/// #[derive(SessionData, Default)]
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
/// mutable borrow that changes nothing writes nothing.
///
/// A `Session<T>` must not outlive the request: changes made after the
/// response has been produced are not saved.
pub struct Session<T: SessionData + Default> {
    value: Option<T>,
    context: Arc<RequestSession>,
    dirty: bool,
    epoch: u64,
}

impl<T, S> FromRequestParts<S> for Session<T>
where
    T: SessionData + Default,
    S: Send + Sync,
{
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let context = context(parts)?;
        context.ensure_loaded().await?;
        let (value, epoch) = context.check_out::<T>()?;
        Ok(Self {
            value: Some(value),
            context,
            dirty: false,
            epoch,
        })
    }
}

impl<T: SessionData + Default> Session<T> {
    fn value(&self) -> &T {
        self.value.as_ref().expect("value is present until drop")
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
            self.dirty = false;
            if let Some(slot) = self.context.lock().slot_of::<T>() {
                slot.dirty = false;
            }
        }
        result
    }

    async fn update_loop<R>(&mut self, f: &mut impl FnMut(&mut T) -> R) -> Result<R, UpdateError> {
        let deadline = self.context.layer.update_deadline;
        let started = Instant::now();
        let mut attempts: u32 = 0;
        let mut backoff = Duration::from_millis(1);
        loop {
            attempts += 1;
            let output = f(self.value.as_mut().expect("value is present until drop"));
            let Some(conflict_key) = self.try_commit().await? else {
                return Ok(output);
            };
            // Wait first, then reload: the retry starts from the freshest state.
            tokio::time::sleep(jitter(backoff)).await;
            backoff = (backoff * 2).min(Duration::from_millis(50));
            self.reload(&conflict_key).await?;
            let waited = started.elapsed();
            if waited >= deadline {
                return Err(UpdateError::Contended { attempts, waited });
            }
        }
    }

    /// One compare-and-swap attempt of this namespace's changes. `None` when
    /// committed (or nothing to commit); the key to reload on a conflict.
    ///
    /// A change of a `rotate_id` field on a stored session moves the record
    /// to a fresh id in this same save: the old id never carries the new
    /// identity, not even for the rest of the handler.
    async fn try_commit(&mut self) -> Result<Option<SessionKey>, UpdateError> {
        let layer = Arc::clone(&self.context.layer);
        let now = layer.clock.now_ms();
        // Plan under the lock, then release it before any await.
        let (plan, revision, target, load_failed) = {
            let state = self.context.lock();
            if state.destroyed || self.epoch != state.epoch {
                return Err(UpdateError::Destroyed);
            }
            let slot = state
                .slot_ref::<T>()
                .expect("an extracted Session has a slot");
            let (fields, replace, revision) = state.base_fields(&slot.base);
            let plan = plan(self.value(), fields, replace, true)?;
            let target = state
                .current
                .as_ref()
                .map(|c| (c.id.clone(), c.key, c.created_at_ms));
            (plan, revision, target, state.load_failed)
        };
        let Some(op) = plan.op else {
            return Ok(None);
        };
        let removing = op == NamespaceOp::Remove;
        let change = NamespaceChange::new(T::NAMESPACE, T::VERSION, Some(revision), op);
        let (id, key, mode, created_at) = match target {
            Some((_, key, created_at)) if plan.rotate => {
                let fresh = RawId::generate().map_err(StoreError::backend)?;
                let fresh_key = fresh.key();
                (fresh, fresh_key, SaveMode::Rename { from: key }, created_at)
            }
            Some((id, key, created_at)) => (id, key, SaveMode::Update, created_at),
            // The load failed and the layer failed open: the client's own
            // session may exist, so nothing may be created in its place.
            None if load_failed => {
                return Err(UpdateError::Store(StoreError::unavailable(
                    "the session could not be loaded, so nothing is saved in its place",
                )));
            }
            None => {
                let id = RawId::generate().map_err(StoreError::backend)?;
                let key = id.key();
                (id, key, SaveMode::Create, now)
            }
        };
        let deadline = layer.write_deadline(created_at, now);
        let changeset = Changeset::new(mode, created_at, now, deadline, vec![change]);
        let span = tracing::debug_span!(
            "session_save",
            session = tracing::field::Empty,
            latency_us = tracing::field::Empty,
            namespaces = 1
        );
        match timed(&span, &id, &layer, layer.store.save(&key, &changeset)).await? {
            SaveOutcome::Saved { revisions } => {
                let mut state = self.context.lock();
                let slot = state.slot_of::<T>().expect("slot");
                slot.base = if removing {
                    Base::Absent
                } else {
                    Base::Owned {
                        ns: NamespaceRecord {
                            name: T::NAMESPACE.to_owned(),
                            version: T::VERSION,
                            revision: revisions.first().copied().unwrap_or_default(),
                            fields: plan.current.unwrap_or_default(),
                        },
                        replace: false,
                    }
                };
                slot.dirty = false;
                self.dirty = false;
                state.record_commit(id, key, mode, created_at, now, deadline);
                Ok(None)
            }
            SaveOutcome::Deleted => {
                let mut state = self.context.lock();
                state.record_deleted();
                self.dirty = false;
                Ok(None)
            }
            SaveOutcome::Missing => Err(UpdateError::SessionGone),
            SaveOutcome::Conflict { .. } => Ok(Some(match mode {
                SaveMode::Rename { from } => from,
                _ => key,
            })),
        }
    }

    /// After a conflict: the namespace as stored now becomes both the value
    /// and the baseline.
    async fn reload(&mut self, key: &SessionKey) -> Result<(), UpdateError> {
        let layer = Arc::clone(&self.context.layer);
        let Some(record) = layer.store.load(key).await? else {
            return Err(UpdateError::SessionGone);
        };
        // Unreadable or newer data under the layer's policy: stop rather
        // than loop on data this code must not overwrite.
        let (fresh, base) = decode_slot::<T>(Some(&record), &layer)?;
        let base = match base {
            Base::InRecord(i) => Base::Owned {
                ns: record.namespaces[i].clone(),
                replace: false,
            },
            other => other,
        };
        self.context.lock().slot_of::<T>().expect("slot").base = base;
        self.value = Some(fresh);
        Ok(())
    }
}

impl<T: SessionData + Default> Deref for Session<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value()
    }
}

impl<T: SessionData + Default> DerefMut for Session<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.dirty = true;
        self.value.as_mut().expect("value is present until drop")
    }
}

impl<T: SessionData + Default> Drop for Session<T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            self.context.check_in(value, self.dirty, self.epoch);
        }
    }
}

/// Shows the namespace and each stored field's encoding; fields marked
/// `#[session(sensitive)]` print as `<redacted>`. `T` needs no `Debug`.
impl<T: SessionData + Default> fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Session");
        out.field("namespace", &T::NAMESPACE);
        for (index, info) in T::FIELDS.iter().enumerate() {
            if info.sensitive() {
                out.field(info.name(), &format_args!("<redacted>"));
            } else {
                match self.value().encode_field(index) {
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
}

/// The session's identity and lifecycle: id, times, regenerate, destroy, clear.
///
/// ```
/// use typed_sessions::SessionHandle;
///
/// async fn logout(session: SessionHandle) -> &'static str {
///     session.destroy();
///     "bye"
/// }
/// ```
#[derive(Clone)]
pub struct SessionHandle {
    context: Arc<RequestSession>,
}

impl<S: Send + Sync> FromRequestParts<S> for SessionHandle {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let context = context(parts)?;
        context.ensure_loaded().await?;
        Ok(Self { context })
    }
}

impl SessionHandle {
    /// The id of the stored session, shown only as a keyed hash; `None`
    /// while the session exists only in this request (it gets an id when
    /// first saved).
    pub fn id(&self) -> Option<SessionId> {
        let state = self.context.lock();
        state
            .current
            .as_ref()
            .map(|c| SessionId::new(&c.id, &self.context.layer.log_secret))
    }

    /// When the stored session was created.
    pub fn created_at(&self) -> Option<SystemTime> {
        self.context
            .lock()
            .current
            .as_ref()
            .map(|c| from_ms(c.created_at_ms))
    }

    /// When the session expires on the server, or `None` for a
    /// browser-session cookie (no timeout configured) or no stored session.
    pub fn expires_at(&self) -> Option<SystemTime> {
        let state = self.context.lock();
        let current = state.current.as_ref()?;
        self.context
            .layer
            .session_deadline(current.created_at_ms, current.last_seen_ms)
            .map(from_ms)
    }

    /// The time left until [`expires_at`](Self::expires_at).
    pub fn remaining(&self) -> Option<Duration> {
        let deadline = self.expires_at()?;
        let now = crate::clock::from_ms(self.context.now_ms());
        Some(deadline.duration_since(now).unwrap_or_default())
    }

    /// Gives the session a new id at the end of the request, keeping its
    /// data; the old id stops working. Call it on login (or mark the user
    /// field `#[session(rotate_id)]`) to prevent session fixation.
    pub fn regenerate_id(&self) {
        self.context.lock().regenerate = true;
    }

    /// Deletes the session at the end of the request and removes the cookie.
    /// Changes made in this request are discarded.
    pub fn destroy(&self) {
        self.context.lock().destroyed = true;
    }

    /// Empties the session now: every namespace reads as `Default` from here
    /// on (values extracted earlier are discarded) and the stored record is
    /// deleted at the end of the request. Data written after `clear` goes to
    /// a new session with a new id.
    pub fn clear(&self) {
        self.context.lock().clear();
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHandle")
            .field("id", &self.id())
            .finish()
    }
}
