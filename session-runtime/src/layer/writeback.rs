//! The end of a request: from the request state to store writes and a
//! cookie, decided synchronously, then the store work (if any) run.
//!
//! | request state | store | cookie |
//! |---|---|---|
//! | `destroy()` | delete | removal, when the cookie named something |
//! | nothing stored, values not all `Default` | create under a fresh id | the new id |
//! | stored session, changes or a new id due | one save (update or rename), rebased on conflict | the id it lives under |
//! | stored session, no change | a refresh when due | `Max-Age` re-sent on refresh |
//! | the session ended meanwhile | nothing | left alone; 409 when data was lost |

use std::time::Duration;

use http::header::Entry;
use http::header::{CACHE_CONTROL, HeaderValue, RETRY_AFTER, SET_COOKIE, VARY};
use http::{HeaderMap, Response, StatusCode};

use crate::backend::{RequestStorage, SealError};
use crate::codec::CodecError;
use crate::cookie::CookieState;
use crate::error::{ErrorChain, retry_after_value};
use crate::id::{RawId, SessionKey};
use crate::retry::Backoff;
use crate::session::diff::{Rebase, Refusal};
use crate::session::{CommittedId, Finish, RequestSession, StoredSession};
use crate::settings::{DecodeFailurePolicy, NewerVersionPolicy, Settings};
use crate::store::{
    Changeset, NamespaceChange, NamespaceOp, Record, SaveMode, SaveOutcome, StoreError,
};

/// What the end of a request does to the cookie.
#[derive(Clone)]
pub(crate) enum CookieAction {
    /// Leave the browser's cookie as it is.
    Keep,
    Set(HeaderValue),
    Remove,
}

/// Why the session could not be kept: the handler's response is replaced.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("session store failed")]
    Store(#[source] StoreError),
    #[error(
        "the session was ended (logout, emptied, or moved to a new id) by a concurrent request"
    )]
    SessionGone,
    #[error("namespace `{namespace}` kept changing under this request's write")]
    Contended { namespace: &'static str },
    #[error(
        "namespace `{namespace}` was written at version {version} by newer code meanwhile; not overwriting it"
    )]
    NewerData {
        namespace: &'static str,
        version: u32,
    },
    #[error(
        "stored namespace `{namespace}` does not decode, and the strict policy forbids replacing it: {message}"
    )]
    Unreadable {
        namespace: &'static str,
        message: String,
    },
    #[error("a value of namespace `{namespace}` does not encode")]
    Codec {
        namespace: &'static str,
        #[source]
        source: CodecError,
    },
    #[error("no OS randomness for a session id")]
    NoRandomness(#[source] getrandom::Error),
    #[error("the session could not be sealed into its cookie")]
    Seal(#[source] SealError),
    #[error("the store answered {outcome:?} to a {mode:?}")]
    UnexpectedOutcome {
        outcome: SaveOutcome,
        mode: SaveMode,
    },
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Self::Store(StoreError::Unavailable(_)) | Self::Contended { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::SessionGone => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The end of a request, decided synchronously from the request state.
pub(crate) enum WriteBack {
    /// Nothing to do in the store.
    Ready(Result<CookieAction, Failure>),
    /// Store work to do, then a cookie.
    Pending(StoreWork),
}

/// Store work at the end of a request: deletions first, then one last step.
pub(crate) struct StoreWork {
    now: u64,
    deletes: Vec<(RawId, SessionKey)>,
    last: LastStep,
}

enum LastStep {
    /// After the deletions, this cookie.
    Cookie(CookieAction),
    /// Save, then a cookie for `id` (or a removal when the record is gone).
    Save {
        id: RawId,
        key: SessionKey,
        changeset: Changeset,
        /// One per change: how to re-plan it after a conflict.
        rebase: Vec<Rebase>,
        /// For a rename: the id the record lives under until it succeeds.
        renamed_from: Option<RawId>,
    },
    /// Move the deadline (sliding refresh); a cookie when it has a Max-Age.
    Refresh {
        id: RawId,
        key: SessionKey,
        created_at: u64,
        last_seen: u64,
        deadline: u64,
    },
}

/// The cookie of what an `update` already committed, made only when a
/// failure response needs it: the session an `update` moved to a fresh id
/// (the browser must learn it, or the committed session is orphaned) and,
/// with a client-side store, any `update` commit (it lives in the cookie
/// only). The record is taken when the request ends, before the handler's
/// own changes are applied.
pub(crate) struct CommittedCookie {
    stored: StoredSession,
    record: Option<Record>,
    now: u64,
}

impl CommittedCookie {
    fn render(&self, settings: &Settings, storage: &RequestStorage) -> Option<HeaderValue> {
        let stored = &self.stored;
        let record = self.record.as_ref();
        match session_cookie_of(
            settings,
            storage,
            stored,
            record,
            stored.expires_at_ms,
            self.now,
        ) {
            Ok(CookieAction::Set(value)) => Some(value),
            Ok(_) => None,
            Err(err) => {
                tracing::error!(target: crate::LOG_TARGET, error = %ErrorChain(&err), "the session committed by update() cannot be sent");
                None
            }
        }
    }
}

/// Decides what the store and the cookie need at the end of the request.
/// Runs under the request-state lock, which is released before any I/O.
///
/// Also returns the cookie of what an `update` already committed, for a
/// replacement response should the write-back fail ([`CommittedCookie`]).
pub(crate) fn plan(
    session: &RequestSession,
    handler_failed: bool,
) -> (WriteBack, Option<CommittedCookie>) {
    let settings = session.settings();
    let storage = session.storage();
    let now = session.now_ms();
    let (committed, finished) = {
        let mut state = session.lock();
        let committed = if storage.carries_record() {
            state.committed_session()
        } else {
            state.fresh_id()
        };
        let committed = committed.map(|stored| CommittedCookie {
            stored: stored.clone(),
            record: storage.snapshot(&stored.key),
            now,
        });
        if handler_failed {
            // None of the handler's changes is written; what `update`
            // already committed stays committed, so its cookie is sent.
            let action = committed
                .and_then(|committed| committed.render(settings, storage))
                .map_or(CookieAction::Keep, CookieAction::Set);
            return (WriteBack::Ready(Ok(action)), None);
        }
        (committed, state.finish())
    };
    let mut finish = match finished {
        Ok(finish) => finish,
        Err((namespace, source)) => {
            return (
                WriteBack::Ready(Err(Failure::Codec { namespace, source })),
                committed,
            );
        }
    };
    let cookie = session.cookie();
    let rejected = storage.cookie_rejected();
    let work = if finish.destroy {
        plan_destroy(finish, cookie, rejected, now)
    } else {
        match finish.stored.take() {
            None => plan_new_session(settings, finish, (cookie, rejected), now),
            Some(stored) => plan_existing(settings, storage, finish, stored, now),
        }
    };
    (work, committed)
}

/// The `Set-Cookie` for `stored` with the store deadline `store_deadline`
/// (a removal when a client-side backend no longer holds the record; an
/// error when its sealed record does not fit the cookie budget).
fn session_cookie(
    settings: &Settings,
    storage: &RequestStorage,
    stored: &StoredSession,
    store_deadline: u64,
    now: u64,
) -> Result<CookieAction, Failure> {
    let record = storage.snapshot(&stored.key);
    session_cookie_of(
        settings,
        storage,
        stored,
        record.as_ref(),
        store_deadline,
        now,
    )
}

/// [`session_cookie`] with the record a client-side store seals given
/// (taken earlier; `None` for a server-side store, or no record).
fn session_cookie_of(
    settings: &Settings,
    storage: &RequestStorage,
    stored: &StoredSession,
    record: Option<&Record>,
    store_deadline: u64,
    now: u64,
) -> Result<CookieAction, Failure> {
    let Some(value) = storage
        .cookie_value_of(&stored.id, record)
        .map_err(Failure::Seal)?
    else {
        return Ok(CookieAction::Remove);
    };
    let deadline =
        settings
            .expiry
            .cookie_deadline(stored.created_at_ms, stored.last_seen_ms, store_deadline);
    Ok(CookieAction::Set(
        settings.cookie.set(&value, deadline, now),
    ))
}

/// One rule for every path that leaves no session: clear a cookie that was
/// malformed (or one of more values than are looked up) or named a session
/// this request ended; an unknown id is left alone (nothing to clear, and
/// no reason to answer it).
fn removal_rule(cookie: &CookieState, named_something: bool) -> CookieAction {
    if matches!(cookie, CookieState::Malformed | CookieState::TooMany)
        || (cookie.sent() && named_something)
    {
        CookieAction::Remove
    } else {
        CookieAction::Keep
    }
}

/// `destroy()`: delete whatever this request knows of, remove the cookie.
fn plan_destroy(finish: Finish, cookie: &CookieState, rejected: bool, now: u64) -> WriteBack {
    let mut deletes = finish.to_delete;
    let named_something = rejected
        || finish.stored.is_some()
        || !deletes.is_empty()
        || finish.committed != CommittedId::Untouched;
    let action = removal_rule(cookie, named_something);
    if let Some(stored) = finish.stored {
        deletes.push((stored.id, stored.key));
    }
    pending_or_ready(now, deletes, LastStep::Cookie(action))
}

/// No stored session: create one only for values that are not all defaults.
/// (`rejected`: the request's cookie was a sealed session that did not
/// open or had expired, and is cleared.)
fn plan_new_session(
    settings: &Settings,
    finish: Finish,
    (cookie, rejected): (&CookieState, bool),
    now: u64,
) -> WriteBack {
    let mut changes = finish.changes;
    changes.retain(|change| change.op != NamespaceOp::Remove);
    if changes.is_empty() {
        let named_something = rejected || finish.emptied || !finish.to_delete.is_empty();
        let action = removal_rule(cookie, named_something);
        return pending_or_ready(now, finish.to_delete, LastStep::Cookie(action));
    }
    if finish.load_failed {
        // Failing open served this request as anonymous, but the client's
        // own session may well exist: creating a new one would replace its
        // cookie and lose that session.
        return WriteBack::Ready(Err(Failure::Store(StoreError::unavailable(
            "the session could not be loaded, so nothing is saved in its place",
        ))));
    }
    let id = match fresh_id() {
        Ok(id) => id,
        Err(failure) => return WriteBack::Ready(Err(failure)),
    };
    let deadline = settings.expiry.write_deadline(now, now);
    let changeset = Changeset::new(SaveMode::Create, now, now, deadline, changes);
    let key = id.key();
    // A create never conflicts, so it is never rebased.
    save(
        now,
        finish.to_delete,
        (id, key, None),
        changeset,
        Vec::new(),
    )
}

/// Store work that ends in one save.
fn save(
    now: u64,
    deletes: Vec<(RawId, SessionKey)>,
    (id, key, renamed_from): (RawId, SessionKey, Option<RawId>),
    changeset: Changeset,
    rebase: Vec<Rebase>,
) -> WriteBack {
    WriteBack::Pending(StoreWork {
        now,
        deletes,
        last: LastStep::Save {
            id,
            key,
            changeset,
            rebase,
            renamed_from,
        },
    })
}

/// A stored session: save the changes (under a fresh id when one is due),
/// or re-send the cookie / refresh the deadline when nothing changed.
fn plan_existing(
    settings: &Settings,
    storage: &RequestStorage,
    finish: Finish,
    stored: StoredSession,
    now: u64,
) -> WriteBack {
    if finish.changes.is_empty() && !finish.rotate {
        return match plan_unchanged(settings, storage, finish.committed, stored, now) {
            Ok(last) => pending_or_ready(now, finish.to_delete, last),
            Err(failure) => WriteBack::Ready(Err(failure)),
        };
    }
    let (target, mode) = if finish.rotate {
        let fresh = match fresh_id() {
            Ok(id) => id,
            Err(failure) => return WriteBack::Ready(Err(failure)),
        };
        let fresh_key = fresh.key();
        let from = stored.key;
        (
            (fresh, fresh_key, Some(stored.id)),
            SaveMode::Rename { from },
        )
    } else {
        ((stored.id, stored.key, None), SaveMode::Update)
    };
    let (changes, rebase) = (finish.changes, finish.rebase);
    let deadline = settings.expiry.write_deadline(stored.created_at_ms, now);
    let changeset = Changeset::new(mode, stored.created_at_ms, now, deadline, changes);
    save(now, finish.to_delete, target, changeset, rebase)
}

/// Nothing to write: the cookie after `update` commits, or a refresh.
fn plan_unchanged(
    settings: &Settings,
    storage: &RequestStorage,
    committed: CommittedId,
    stored: StoredSession,
    now: u64,
) -> Result<LastStep, Failure> {
    let expiry = &settings.expiry;
    let cookie = |stored: &StoredSession| {
        session_cookie(settings, storage, stored, stored.expires_at_ms, now).map(LastStep::Cookie)
    };
    Ok(match committed {
        CommittedId::Fresh => cookie(&stored)?,
        // A client-side store: what `update` committed travels in the cookie.
        CommittedId::Same if storage.carries_record() => cookie(&stored)?,
        // An `update` moved the deadline: re-send the Max-Age, but only
        // after the store confirms the id still names the session (a
        // concurrent login may have moved it; re-sending the old id would
        // replace the browser's new cookie with a dead one).
        CommittedId::Same if expiry.persistent() => LastStep::Refresh {
            id: stored.id,
            key: stored.key,
            created_at: stored.created_at_ms,
            // What the `update` wrote: a touch never moves it backwards.
            last_seen: stored.last_seen_ms,
            deadline: stored.expires_at_ms,
        },
        CommittedId::Same | CommittedId::Untouched => match expiry.refresh_due(
            stored.created_at_ms,
            stored.last_seen_ms,
            stored.expires_at_ms,
            now,
        ) {
            Some(deadline) => LastStep::Refresh {
                id: stored.id,
                key: stored.key,
                created_at: stored.created_at_ms,
                last_seen: now,
                deadline,
            },
            // Opened with a fallback key: re-issue under the primary.
            None if storage.reseal_due() => cookie(&stored)?,
            None => LastStep::Cookie(CookieAction::Keep),
        },
    })
}

/// A fresh session id from the OS CSPRNG.
fn fresh_id() -> Result<RawId, Failure> {
    RawId::generate().map_err(Failure::NoRandomness)
}

fn pending_or_ready(now: u64, deletes: Vec<(RawId, SessionKey)>, last: LastStep) -> WriteBack {
    match last {
        LastStep::Cookie(action) if deletes.is_empty() => WriteBack::Ready(Ok(action)),
        last => WriteBack::Pending(StoreWork { now, deletes, last }),
    }
}

impl StoreWork {
    /// Runs the work. It only borrows it, so that a caller that polled it
    /// once without a waker (a synchronous store) can start it again.
    pub(crate) async fn run(
        &self,
        settings: &Settings,
        storage: &RequestStorage,
    ) -> Result<CookieAction, Failure> {
        let secret = &settings.log_secret;
        for (id, key) in &self.deletes {
            storage
                .delete(id, key, secret)
                .await
                .map_err(Failure::Store)?;
        }
        let now = self.now;
        match &self.last {
            LastStep::Cookie(action) => Ok(action.clone()),
            LastStep::Save {
                id,
                key,
                changeset,
                rebase,
                renamed_from,
            } => {
                let target = (id, key, renamed_from.as_ref());
                save_with_rebase(settings, storage, target, changeset, rebase, now).await
            }
            LastStep::Refresh {
                id,
                key,
                created_at,
                last_seen,
                deadline,
            } => match storage.touch(id, key, *last_seen, *deadline, secret).await {
                // The browser learns the new deadline from `Max-Age`, or
                // from the record when the cookie carries it.
                Ok(true) if settings.expiry.persistent() || storage.carries_record() => {
                    let stored = StoredSession {
                        id: id.clone(),
                        key: *key,
                        created_at_ms: *created_at,
                        last_seen_ms: *last_seen,
                        expires_at_ms: *deadline,
                    };
                    session_cookie(settings, storage, &stored, *deadline, now)
                }
                // Gone meanwhile, a browser-session cookie, or a missed
                // refresh (logged by the backend), which only shortens the
                // session: the response stands.
                Ok(_) | Err(_) => Ok(CookieAction::Keep),
            },
        }
    }
}

/// Saves; when the save meets a concurrent write (a compare-and-swap
/// conflict, a patch of a namespace removed meanwhile, data of another
/// version), reloads and rebases only this request's changed fields onto
/// what is stored now, until the layer's retry deadline.
async fn save_with_rebase(
    settings: &Settings,
    storage: &RequestStorage,
    (id, key, renamed_from): (&RawId, &SessionKey, Option<&RawId>),
    planned: &Changeset,
    planned_rebase: &[Rebase],
    now: u64,
) -> Result<CookieAction, Failure> {
    let create = planned.mode == SaveMode::Create;
    let secret = &settings.log_secret;
    let mut backoff = None;
    // The changes as re-planned after a conflict (copied on the first one).
    let mut replanned: Option<(Changeset, Vec<Rebase>)> = None;
    loop {
        let changeset = replanned
            .as_ref()
            .map_or(planned, |(changeset, _)| changeset);
        let outcome = storage
            .save(id, key, changeset, secret)
            .await
            .map_err(Failure::Store)?;
        match outcome {
            SaveOutcome::Saved { .. } => {
                let stored = StoredSession {
                    id: id.clone(),
                    key: *key,
                    created_at_ms: changeset.created_at_ms,
                    last_seen_ms: changeset.last_seen_ms,
                    expires_at_ms: changeset.expires_at_ms,
                };
                let deadline = changeset.expires_at_ms;
                return session_cookie(settings, storage, &stored, deadline, now);
            }
            // Emptied by this save: the cookie names nothing now.
            SaveOutcome::Deleted if !create => return Ok(CookieAction::Remove),
            SaveOutcome::Missing if !create => return gone(changeset),
            SaveOutcome::Conflict { namespace } if !create => {
                tracing::debug!(target: crate::LOG_TARGET, namespace, "session write met a concurrent change; rebasing it");
                backoff
                    .get_or_insert_with(|| Backoff::new(settings.update_deadline))
                    .pause()
                    .await
                    .map_err(|_| Failure::Contended { namespace })?;
                // A conflicting rename left the record under the id it had.
                let source = match (changeset.mode, renamed_from) {
                    (SaveMode::Rename { from }, Some(old)) => (old, from),
                    _ => (id, *key),
                };
                let (changeset, rebase) =
                    replanned.get_or_insert_with(|| (planned.clone(), planned_rebase.to_vec()));
                // Rare: boxed, so that every write-back future stays small.
                let again = Box::pin(replan(settings, storage, source, changeset, rebase));
                if let Some(done) = again.await? {
                    return Ok(done);
                }
            }
            outcome => {
                return Err(Failure::UnexpectedOutcome {
                    outcome,
                    mode: changeset.mode,
                });
            }
        }
    }
}

/// After a conflict: reloads the record from `(id, key)` and re-plans the
/// changes onto it. `Some` when the save is over (the session is gone, or
/// nothing is left to write).
async fn replan(
    settings: &Settings,
    storage: &RequestStorage,
    (id, key): (&RawId, SessionKey),
    changeset: &mut Changeset,
    rebase: &mut Vec<Rebase>,
) -> Result<Option<CookieAction>, Failure> {
    let record = storage
        .load(id, &key, &settings.log_secret)
        .await
        .map_err(Failure::Store)?;
    let Some(record) = record else {
        return gone(changeset).map(Some);
    };
    let policies = (settings.decode_failure, settings.newer_version);
    rebase_changes(&mut changeset.namespaces, rebase, &record, policies)?;
    if changeset.namespaces.is_empty() && changeset.mode == SaveMode::Update {
        // What this request wanted is what is stored now.
        return Ok(Some(CookieAction::Keep));
    }
    Ok(None)
}

/// The session is gone (a concurrent logout wins, or a concurrent login
/// moved it to a new id whose cookie the browser may hold by now): leave
/// the cookie alone, since a stale one reads as an anonymous session. When
/// the request had data to store, it was not kept, and the client must not
/// be told otherwise.
fn gone(changeset: &Changeset) -> Result<CookieAction, Failure> {
    if changeset
        .namespaces
        .iter()
        .any(|change| change.op != NamespaceOp::Remove)
    {
        Err(Failure::SessionGone)
    } else {
        Ok(CookieAction::Keep)
    }
}

/// Re-plans every change against `record`; a change with nothing left to
/// do is dropped (with its rebase entry).
fn rebase_changes(
    changes: &mut Vec<NamespaceChange>,
    rebase: &mut Vec<Rebase>,
    record: &crate::store::Record,
    policies: (DecodeFailurePolicy, NewerVersionPolicy),
) -> Result<(), Failure> {
    let mut index = 0;
    while index < changes.len() {
        match rebase[index].replan(&mut changes[index], record, policies) {
            Ok(true) => index += 1,
            Ok(false) => {
                changes.remove(index);
                rebase.remove(index);
            }
            Err(Refusal::NewerData { namespace, version }) => {
                return Err(Failure::NewerData { namespace, version });
            }
            Err(Refusal::Unreadable { namespace, message }) => {
                return Err(Failure::Unreadable { namespace, message });
            }
        }
    }
    Ok(())
}

/// Puts the outcome of the write-back on the response: a cookie, or a
/// replacement response when the data could not be kept; then the caching
/// headers.
pub(crate) fn apply<B: Default>(
    (settings, storage): (&Settings, &RequestStorage),
    outcome: Result<CookieAction, Failure>,
    committed: Option<CommittedCookie>,
    response: &mut Response<B>,
) {
    let mut set_cookie = true;
    match outcome {
        Ok(CookieAction::Keep) => set_cookie = false,
        Ok(CookieAction::Set(value)) => {
            response.headers_mut().append(SET_COOKIE, value);
        }
        Ok(CookieAction::Remove) => {
            response
                .headers_mut()
                .append(SET_COOKIE, settings.cookie.removal());
        }
        Err(failure) => {
            *response = failure_response(settings, &failure);
            // What `update` already committed is kept.
            let cookie = committed.and_then(|committed| committed.render(settings, storage));
            set_cookie = cookie.is_some();
            if let Some(cookie) = cookie {
                response.headers_mut().append(SET_COOKIE, cookie);
            }
        }
    }
    if settings.cache_headers {
        add_cache_headers(response.headers_mut(), set_cookie);
    }
}

/// The response that replaces the handler's when the session could not be
/// kept: a status and no body, the detail in the log.
fn failure_response<B: Default>(settings: &Settings, failure: &Failure) -> Response<B> {
    let status = failure.status();
    match failure {
        Failure::Seal(SealError::TooLarge { size, budget }) => {
            tracing::error!(target: crate::LOG_TARGET, size, budget, error = %ErrorChain(failure), "session not saved; answering {status} instead of the handler's response");
        }
        Failure::SessionGone => {
            tracing::warn!(target: crate::LOG_TARGET, error = %ErrorChain(failure), "session changes not saved; answering {status} instead of the handler's response");
        }
        _ => {
            tracing::error!(target: crate::LOG_TARGET, error = %ErrorChain(failure), "session not saved; answering {status} instead of the handler's response");
        }
    }
    let mut replacement = Response::new(B::default());
    *replacement.status_mut() = status;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let retry: Duration = settings.store_down.retry_after();
        replacement
            .headers_mut()
            .insert(RETRY_AFTER, retry_after_value(retry));
    }
    replacement
}

/// A response that depends on the session varies with the `Cookie` header;
/// one that sets a session cookie must not be stored by a shared cache
/// (another user would receive the cookie). The app's own `Cache-Control`
/// wins.
fn add_cache_headers(headers: &mut HeaderMap, set_cookie: bool) {
    match headers.entry(VARY) {
        Entry::Vacant(vacant) => {
            vacant.insert(HeaderValue::from_static("cookie"));
        }
        Entry::Occupied(mut occupied) => {
            let varies = occupied.iter().any(|value| {
                value.to_str().is_ok_and(|v| {
                    v.split(',')
                        .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("cookie"))
                })
            });
            if !varies {
                occupied.append(HeaderValue::from_static("cookie"));
            }
        }
    }
    if set_cookie && let Entry::Vacant(vacant) = headers.entry(CACHE_CONTROL) {
        vacant.insert(HeaderValue::from_static("private"));
    }
}
