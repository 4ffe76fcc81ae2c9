//! The request's session: loaded at most once, shared by every extractor
//! of the request through the [`SessionContext`] extension.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use http::request::Parts;
use tokio::sync::OnceCell;

use super::held::Held;
use super::state::{State, StoredSession};
use crate::backend::RequestStorage;
use crate::cookie::{CookieState, MAX_COOKIE_IDS, Token};
use crate::data::SessionData;
use crate::error::{ErrorChain, SessionRejection};

use crate::settings::{Settings, StoreDownPolicy};
use crate::store::{Record, StoreError};

/// The request extension through which extractors find the session.
#[derive(Clone)]
pub(crate) struct SessionContext(pub(crate) Arc<RequestSession>);

impl SessionContext {
    /// The session of the request these parts belong to.
    pub(crate) fn of(parts: &Parts) -> Result<Arc<RequestSession>, SessionRejection> {
        parts
            .extensions
            .get::<Self>()
            .map(|ctx| Arc::clone(&ctx.0))
            .ok_or(SessionRejection::MissingLayer)
    }
}

pub(crate) struct RequestSession {
    settings: Arc<Settings>,
    /// Where this request's session is kept (see `backend`).
    storage: RequestStorage,
    cookie: CookieState,
    loaded: OnceCell<Result<(), LoadFailure>>,
    /// The request's time, read once (expiry decisions of one request agree).
    now_ms: OnceLock<u64>,
    state: Mutex<State>,
}

/// A load failure, kept so that every extractor of the request sees it.
#[derive(Clone)]
enum LoadFailure {
    Unavailable(Arc<StoreError>),
    Failed(Arc<StoreError>),
}

impl RequestSession {
    pub(crate) fn new(settings: Arc<Settings>, cookie: CookieState) -> Self {
        Self {
            storage: settings.backend.begin(),
            settings,
            cookie,
            loaded: OnceCell::new(),
            now_ms: OnceLock::new(),
            state: Mutex::new(State::new()),
        }
    }

    pub(crate) fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    pub(crate) fn storage(&self) -> &RequestStorage {
        &self.storage
    }

    pub(crate) fn cookie(&self) -> &CookieState {
        &self.cookie
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding this lock with the state half
        // updated; a poisoned lock still holds consistent data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The time of this request, in ms since the Unix epoch.
    pub(crate) fn now_ms(&self) -> u64 {
        *self.now_ms.get_or_init(|| self.settings.clock.now_ms())
    }

    /// Whether any extractor asked for the session in this request.
    pub(crate) fn was_loaded(&self) -> bool {
        self.loaded.initialized()
    }

    /// Loads the session once per request.
    pub(crate) async fn ensure_loaded(&self) -> Result<(), SessionRejection> {
        let result = self.loaded.get_or_init(|| self.load()).await;
        match result {
            Ok(()) => Ok(()),
            Err(LoadFailure::Unavailable(err)) => match self.settings.store_down {
                StoreDownPolicy::FailClosed { retry_after } => {
                    Err(SessionRejection::StoreUnavailable {
                        retry_after,
                        source: StoreError::unavailable(SharedError(Arc::clone(err))),
                    })
                }
                // Fail open: the request continues as anonymous (load() left no session).
                StoreDownPolicy::FailOpen => {
                    self.lock().record_load_failed();
                    Ok(())
                }
            },
            Err(LoadFailure::Failed(err)) => Err(SessionRejection::StoreFailed(
                StoreError::backend(SharedError(Arc::clone(err))),
            )),
        }
    }

    async fn load(&self) -> Result<(), LoadFailure> {
        let found = match &self.cookie {
            CookieState::Present(token) => self.load_live(token).await?,
            // Rare: boxed, so that its future does not enlarge every
            // request's (and every handler's) future.
            CookieState::Several(tokens) => Box::pin(self.load_one_of(tokens)).await?,
            CookieState::Absent => None,
            CookieState::Malformed => {
                tracing::warn!(target: crate::LOG_TARGET, "session cookie is malformed (not a value this layer issues); starting a fresh session and clearing the cookie");
                None
            }
            CookieState::TooMany => {
                tracing::warn!(target: crate::LOG_TARGET, "more than {MAX_COOKIE_IDS} session ids under the session cookie name; serving the request as anonymous"
                );
                None
            }
        };
        if let Some((stored, record, fallback)) = found {
            self.storage.adopt(stored.key, &record, fallback);
            self.lock().record_loaded(stored, record);
        }
        Ok(())
    }

    /// Several ids under our cookie name (a sibling subdomain's `Domain=`
    /// cookie, a stale `Path`): ids that name no live session are ignored;
    /// when more than one does, the request cannot know which is the
    /// client's own, so it is served as anonymous and a write goes to a
    /// fresh id.
    async fn load_one_of(
        &self,
        tokens: &[Token],
    ) -> Result<Option<(StoredSession, Record, bool)>, LoadFailure> {
        let mut live = Vec::new();
        for token in tokens {
            if let Some(found) = self.load_live(token).await? {
                live.push(found);
            }
        }
        if live.len() > 1 {
            let hashes: Vec<String> = live
                .iter()
                .map(|(stored, _, _)| stored.id.log_hash(&self.settings.log_secret))
                .collect();
            tracing::warn!(target: crate::LOG_TARGET, sessions = ?hashes,
                "several live sessions under the session cookie name; serving the request as anonymous (a __Host- cookie name prevents this)"
            );
            let sessions = live
                .into_iter()
                .map(|(stored, _, _)| (stored.id, stored.key))
                .collect();
            self.lock().record_ambiguous(sessions);
            return Ok(None);
        }
        Ok(live.pop())
    }

    /// The session a cookie value names, when it exists and is not over
    /// (and whether a fallback key opened it).
    async fn load_live(
        &self,
        token: &Token,
    ) -> Result<Option<(StoredSession, Record, bool)>, LoadFailure> {
        let settings = &self.settings;
        let Some((id, key, fallback)) = self.storage.resolve(token) else {
            return Ok(None);
        };
        let record = match self.storage.load(&id, &key, &settings.log_secret).await {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(None),
            // Logged by the backend, inside the load's span.
            Err(err) => {
                let err = Arc::new(err);
                return Err(match *err {
                    StoreError::Unavailable(_) => LoadFailure::Unavailable(err),
                    _ => LoadFailure::Failed(err),
                });
            }
        };
        if settings.expiry.is_over(
            record.created_at_ms,
            record.last_seen_ms,
            record.expires_at_ms,
            self.now_ms(),
        ) {
            tracing::debug!(target: crate::LOG_TARGET, "session expired");
            // A sealed session carries its own deadline: clear the cookie.
            self.storage.reject_cookie();
            return Ok(None);
        }
        let stored = StoredSession {
            key,
            id,
            created_at_ms: record.created_at_ms,
            last_seen_ms: record.last_seen_ms,
            expires_at_ms: record.expires_at_ms,
        };
        Ok(Some((stored, record, fallback)))
    }

    /// A copy of `T` as the request sees it now (`SessionRef<T>`).
    pub(crate) fn snapshot<T: SessionData>(&self) -> Result<T, SessionRejection> {
        self.lock().snapshot::<T>(&self.settings)
    }

    /// Takes the value of `T` out of the request state.
    pub(crate) fn check_out<T: SessionData>(&self) -> Result<(Held<T>, u64), SessionRejection> {
        self.lock().check_out::<T>(&self.settings)
    }

    /// Hands a value back when its `Session<T>` is dropped.
    pub(crate) fn check_in<T: SessionData>(
        &self,
        value: Held<T>,
        changed: bool,
        untouched: bool,
        epoch: u64,
    ) {
        self.lock().check_in(value, changed, untouched, epoch);
    }
}

/// An `Arc`ed store error that can be a source again.
#[derive(Debug)]
struct SharedError(Arc<StoreError>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&ErrorChain(&*self.0), f)
    }
}

impl std::error::Error for SharedError {}
