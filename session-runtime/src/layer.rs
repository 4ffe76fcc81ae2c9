//! The middleware: attaches a lazy per-request session, and writes it back
//! after the handler.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{CACHE_CONTROL, COOKIE, HeaderValue, RETRY_AFTER, SET_COOKIE, VARY};
use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::clock::SharedClock;
use crate::config::{
    CookieConfig, DecodeFailurePolicy, ExpiryConfig, NewerVersionPolicy, SameSite,
    SessionLayerBuilder, StoreDownPolicy,
};
use crate::data::FieldMap;
use crate::error::{ErrorChain, retry_after_value};
use crate::id::{LogSecret, RawId};
use crate::state::{
    CommittedId, CookieState, MAX_COOKIE_IDS, Migrator, RequestSession, jitter, timed,
};
use crate::store::Record;
use crate::store::{
    Changeset, DynStore, NamespaceChange, NamespaceOp, SaveMode, SaveOutcome, SessionKey,
    SessionStore, StoreError,
};

pub(crate) struct LayerInner {
    pub(crate) store: Arc<dyn DynStore>,
    pub(crate) cookie: CookieConfig,
    /// `; HttpOnly; SameSite=…; Secure; Path=…`, rendered at build time.
    pub(crate) cookie_attrs: String,
    pub(crate) removal_cookie: HeaderValue,
    pub(crate) expiry: ExpiryConfig,
    pub(crate) store_down: StoreDownPolicy,
    pub(crate) decode_failure: DecodeFailurePolicy,
    pub(crate) newer_version: NewerVersionPolicy,
    pub(crate) update_deadline: Duration,
    pub(crate) clock: SharedClock,
    pub(crate) log_secret: LogSecret,
    /// Add `Vary: Cookie` and `Cache-Control: private` (see the builder).
    pub(crate) cache_headers: bool,
}

impl LayerInner {
    /// The session's own deadline under the current configuration,
    /// `min(created + absolute, last_seen + idle)`, or `None` for a
    /// browser-session cookie. Both timeouts are applied as configured now,
    /// so a shorter timeout also ends sessions stored before it was set.
    pub(crate) fn session_deadline(&self, created_at_ms: u64, last_seen_ms: u64) -> Option<u64> {
        let absolute = self
            .expiry
            .absolute_ms
            .map(|a| created_at_ms.saturating_add(a));
        let idle = self.expiry.idle_ms.map(|i| last_seen_ms.saturating_add(i));
        match (absolute, idle) {
            (Some(a), Some(i)) => Some(a.min(i)),
            (a, i) => a.or(i),
        }
    }

    /// The store deadline for a write at `now`: the session's deadline when a
    /// timeout is set, otherwise `now + store TTL`.
    pub(crate) fn write_deadline(&self, created_at_ms: u64, now_ms: u64) -> u64 {
        let absolute = self
            .expiry
            .absolute_ms
            .map(|a| created_at_ms.saturating_add(a));
        let idle = self.expiry.idle_ms.map(|i| now_ms.saturating_add(i));
        match (absolute, idle) {
            (Some(a), Some(i)) => a.min(i),
            (Some(a), None) => a,
            (None, Some(i)) => i,
            (None, None) => now_ms.saturating_add(self.expiry.store_ttl_ms),
        }
    }

    /// Whether the cookie carries `Max-Age` (a timeout is configured).
    fn persistent_cookie(&self) -> bool {
        self.expiry.idle_ms.is_some() || self.expiry.absolute_ms.is_some()
    }

    /// The `Set-Cookie` value for `id`, valid until `deadline_ms`: the
    /// name, the id, `Max-Age` when a timeout is set, and the attributes
    /// rendered once when the layer was built.
    fn session_cookie(&self, id: &RawId, deadline_ms: u64, now_ms: u64) -> HeaderValue {
        use std::fmt::Write as _;
        let mut value =
            String::with_capacity(self.cookie.name.len() + 40 + self.cookie_attrs.len());
        value.push_str(&self.cookie.name);
        value.push('=');
        id.encode_into(&mut value);
        if self.persistent_cookie() {
            let _ = write!(
                value,
                "; Max-Age={}",
                deadline_ms.saturating_sub(now_ms) / 1000
            );
        }
        value.push_str(&self.cookie_attrs);
        // The name and attributes were validated when the layer was built,
        // and ids are base64url.
        HeaderValue::try_from(value).expect("validated cookie attributes form a valid header")
    }

    /// A cookie that makes the browser drop the session cookie; it carries
    /// the same Path and Domain, or the browser would keep the original.
    fn removal_cookie(&self) -> HeaderValue {
        self.removal_cookie.clone()
    }

    fn parse_cookie<B>(&self, request: &Request<B>) -> CookieState {
        let mut state = CookieState::Absent;
        for header in request.headers().get_all(COOKIE) {
            // Split on `;` before any UTF-8 check: another application's
            // cookie with non-ASCII bytes must not hide ours.
            for pair in header.as_bytes().split(|&b| b == b';') {
                let Ok(pair) = std::str::from_utf8(pair) else {
                    continue;
                };
                let Ok(cookie) = cookie::Cookie::parse(pair.trim()) else {
                    continue;
                };
                if cookie.name() != self.cookie.name {
                    continue;
                }
                state = match (state, RawId::parse(cookie.value())) {
                    (state, None) => match state {
                        CookieState::Absent => CookieState::Malformed,
                        other => other,
                    },
                    (CookieState::Absent | CookieState::Malformed, Some(id)) => {
                        CookieState::Present(id)
                    }
                    (CookieState::Present(first), Some(id)) if first == id => {
                        CookieState::Present(first)
                    }
                    (CookieState::Present(first), Some(id)) => {
                        CookieState::Several(vec![first, id])
                    }
                    (CookieState::Several(mut ids), Some(id)) => {
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                        if ids.len() > MAX_COOKIE_IDS {
                            CookieState::TooMany
                        } else {
                            CookieState::Several(ids)
                        }
                    }
                    (CookieState::TooMany, Some(_)) => CookieState::TooMany,
                };
            }
        }
        state
    }
}

/// Renders the cookie attributes once: `(attributes, removal cookie)`,
/// where `attributes` is everything after `name=value` (starting with `;`).
pub(crate) fn render_cookie(config: &CookieConfig) -> (String, HeaderValue) {
    let mut builder = cookie::Cookie::build((config.name.clone(), String::new()))
        .path(config.path.clone())
        .secure(config.secure)
        .http_only(config.http_only)
        .same_site(match config.same_site {
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::None => cookie::SameSite::None,
        })
        .partitioned(config.partitioned);
    if let Some(domain) = &config.domain {
        builder = builder.domain(domain.clone());
    }
    let cookie = builder.build();
    let rendered = cookie.to_string();
    let attrs = rendered[config.name.len() + 1..].to_owned();
    let mut removal = cookie;
    removal.make_removal();
    let removal = HeaderValue::try_from(removal.to_string())
        .expect("validated cookie attributes form a valid header");
    (attrs, removal)
}

/// Adds typed sessions to every request of the service it wraps.
///
/// Nothing happens for a request whose handler does not extract a session:
/// no store I/O, no cookie. See the crate docs for the whole lifecycle.
///
/// ```
/// use axum::{Router, routing::get};
/// use typed_sessions::{SessionLayer, stores::MemoryStore};
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(SessionLayer::new(MemoryStore::new()));
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    inner: Arc<LayerInner>,
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("cookie", &self.inner.cookie)
            .field("expiry", &self.inner.expiry)
            .finish_non_exhaustive()
    }
}

impl SessionLayer {
    /// A layer with the default configuration: cookie `session`, `Path=/`,
    /// `HttpOnly`, `SameSite=Lax`, `Secure`; browser-session cookie with a
    /// 24-hour store TTL; fail closed when the store is down.
    ///
    /// # Panics
    /// Never: the default configuration is valid (a test pins this).
    pub fn new<S: SessionStore>(store: S) -> Self {
        SessionLayerBuilder::new(store)
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder for cookie attributes, expiry and error policies.
    ///
    /// ```
    /// use std::time::Duration;
    /// use typed_sessions::{SameSite, SessionLayer, stores::MemoryStore};
    ///
    /// let layer = SessionLayer::builder(MemoryStore::new())
    ///     .cookie_name("__Host-sid")
    ///     .same_site(SameSite::Strict)
    ///     .idle_timeout(Duration::from_secs(30 * 60))
    ///     .absolute_timeout(Duration::from_secs(12 * 60 * 60))
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), typed_sessions::ConfigError>(())
    /// ```
    pub fn builder<S: SessionStore>(store: S) -> SessionLayerBuilder {
        SessionLayerBuilder::new(store)
    }

    pub(crate) fn from_inner(inner: LayerInner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            layer: Arc::clone(&self.inner),
        }
    }
}

/// The service made by [`SessionLayer`].
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    layer: Arc<LayerInner>,
}

impl<S> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub(crate) struct SessionContext(pub(crate) Arc<RequestSession>);

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let cookie = self.layer.parse_cookie(&request);
        let session = Arc::new(RequestSession::new(Arc::clone(&self.layer), cookie));
        request
            .extensions_mut()
            .insert(SessionContext(Arc::clone(&session)));
        ResponseFuture {
            inner: self.inner.call(request),
            session: Some(session),
            finishing: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`SessionService`]: the inner service's
    /// response, then the session's write-back.
    ///
    /// The write-back runs only for requests that extracted a session; it is
    /// boxed separately so that the (often large) inner future is never moved.
    pub struct ResponseFuture<F, B> {
        #[pin]
        inner: F,
        session: Option<Arc<RequestSession>>,
        finishing: Option<Pin<Box<dyn Future<Output = Response<B>> + Send>>>,
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default + Send + 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(finishing) = this.finishing.as_mut() {
            return finishing.as_mut().poll(cx).map(Ok);
        }
        let mut response = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Ready(Ok(response)) => response,
        };
        let session = this.session.take().expect("polled after completion");
        if !session.was_loaded() || response.status().is_server_error() {
            return Poll::Ready(Ok(response));
        }
        // Most requests need no store I/O at the end (read-only, no refresh
        // due): they finish here, synchronously.
        let io = match prepare(&session) {
            Step::Done(outcome) => {
                apply(&session.layer, outcome, &mut response);
                return Poll::Ready(Ok(response));
            }
            Step::Io(io) => io,
        };
        let layer = Arc::clone(&session.layer);
        drop(session);
        let mut finishing: Pin<Box<dyn Future<Output = Response<B>> + Send>> =
            Box::pin(async move {
                let outcome = io.run(&layer).await;
                apply(&layer, outcome, &mut response);
                response
            });
        let poll = finishing.as_mut().poll(cx);
        if poll.is_pending() {
            *this.finishing = Some(finishing);
        }
        poll.map(Ok)
    }
}

/// What the end of a request does to the cookie.
enum CookieAction {
    None,
    Set(HeaderValue),
    Remove,
}

enum Failure {
    Store(StoreError),
    /// The session was ended (logout, emptied, moved to a new id) by a
    /// concurrent request before this request's changes could be saved.
    SessionGone,
    Internal(String),
}

/// Puts the outcome of the write-back on the response: a cookie, or a
/// replacement response when the data could not be kept; then the caching
/// headers.
fn apply<B: Default>(
    layer: &LayerInner,
    outcome: Result<CookieAction, Failure>,
    response: &mut Response<B>,
) {
    let mut set_cookie = true;
    match outcome {
        Ok(CookieAction::None) => set_cookie = false,
        Ok(CookieAction::Set(value)) => {
            response.headers_mut().append(SET_COOKIE, value);
        }
        Ok(CookieAction::Remove) => {
            response
                .headers_mut()
                .append(SET_COOKIE, layer.removal_cookie());
        }
        Err(failure) => {
            set_cookie = false;
            *response = failure_response(layer, failure);
        }
    }
    if layer.cache_headers {
        add_cache_headers(response.headers_mut(), set_cookie);
    }
}

/// The response that replaces the handler's when the session could not be kept.
fn failure_response<B: Default>(layer: &LayerInner, failure: Failure) -> Response<B> {
    let mut replacement = Response::new(B::default());
    match failure {
        Failure::Store(err) => {
            tracing::error!(error = %ErrorChain(&err), "session not saved; answering 503 instead of the handler's response");
            *replacement.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            let retry = match layer.store_down {
                StoreDownPolicy::FailClosed { retry_after } => retry_after,
                StoreDownPolicy::FailOpen => Duration::from_secs(5),
            };
            replacement
                .headers_mut()
                .insert(RETRY_AFTER, retry_after_value(retry));
        }
        Failure::SessionGone => {
            tracing::warn!(
                "session ended by a concurrent request; its changes were not saved; answering 409 instead of the handler's response"
            );
            *replacement.status_mut() = StatusCode::CONFLICT;
        }
        Failure::Internal(message) => {
            tracing::error!(error = %message, "session not saved; answering 500 instead of the handler's response");
            *replacement.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    replacement
}

/// A response that depends on the session varies with the `Cookie` header;
/// one that sets a session cookie must not be stored by a shared cache
/// (another user would receive the cookie). The app's own `Cache-Control`
/// wins.
fn add_cache_headers(headers: &mut http::HeaderMap, set_cookie: bool) {
    let varies = headers.get_all(VARY).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("cookie"))
        })
    });
    if !varies {
        headers.append(VARY, HeaderValue::from_static("cookie"));
    }
    if set_cookie && !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
    }
}

/// The end of a request, decided synchronously from the request state.
enum Step {
    /// Nothing to do in the store.
    Done(Result<CookieAction, Failure>),
    /// Store work to do, then a cookie.
    Io(Io),
}

/// Store work at the end of a request: deletions first, then one final step.
struct Io {
    now: u64,
    deletes: Vec<(RawId, SessionKey)>,
    then: Then,
}

enum Then {
    /// After the deletions, this cookie.
    Cookie(CookieAction),
    /// Save, then a cookie for `id` (or a removal when the record is gone).
    Save {
        id: RawId,
        key: SessionKey,
        changeset: Changeset,
        /// One per change: how to rebase it after a conflict.
        rebase: Vec<Rebase>,
    },
    /// Move the deadline (sliding refresh); a cookie when it has a Max-Age.
    Touch {
        id: RawId,
        key: SessionKey,
        created_at: u64,
        deadline: u64,
    },
}

impl Io {
    async fn run(self, layer: &LayerInner) -> Result<CookieAction, Failure> {
        for (id, key) in &self.deletes {
            timed_delete(layer, id, key).await?;
        }
        let now = self.now;
        match self.then {
            Then::Cookie(action) => Ok(action),
            Then::Save {
                id,
                key,
                changeset,
                mut rebase,
            } => save_with_rebase(layer, &id, &key, changeset, &mut rebase, now).await,
            Then::Touch {
                id,
                key,
                created_at,
                deadline,
            } => {
                let span = tracing::debug_span!(
                    "session_touch",
                    session = tracing::field::Empty,
                    latency_us = tracing::field::Empty
                );
                match timed(&span, &id, layer, layer.store.touch(&key, now, deadline)).await {
                    Ok(true) if layer.persistent_cookie() => {
                        Ok(CookieAction::Set(layer.session_cookie(
                            &id,
                            cookie_deadline(layer, created_at, now, deadline),
                            now,
                        )))
                    }
                    Ok(_) => Ok(CookieAction::None),
                    Err(err) => {
                        // A missed refresh only shortens the session; the response stands.
                        tracing::warn!(parent: &span, error = %ErrorChain(&err), "session refresh failed");
                        Ok(CookieAction::None)
                    }
                }
            }
        }
    }
}

/// What a conflicting write needs to be rebased onto the stored data.
struct Rebase {
    /// The fields this request changed, with their new bytes (`None` for a
    /// patch until the first conflict: the patch itself holds them).
    ours: Option<FieldMap>,
    /// The encoding of the schema's `Default`.
    defaults: &'static FieldMap,
    /// The schema's version.
    version: u32,
    /// Reads stored fields of an older version at the current one.
    migrate: Migrator,
}

impl Rebase {
    fn ours(&mut self, change: &NamespaceChange) -> &FieldMap {
        if self.ours.is_none()
            && let NamespaceOp::Patch(fields) = &change.op
        {
            self.ours = Some(fields.clone());
        }
        self.ours.get_or_insert_with(FieldMap::new)
    }

    /// Whether `fields` read back as the schema's `Default`.
    fn is_default(&self, fields: &FieldMap) -> bool {
        self.defaults
            .iter()
            .all(|(name, bytes)| fields.get(name) == Some(bytes))
    }
}

/// Saves; when the save meets a concurrent write (a compare-and-swap
/// conflict, a patch of a namespace removed meanwhile, data of another
/// version), reloads and rebases only this request's changed fields onto
/// what is stored now, until the layer's update deadline.
async fn save_with_rebase(
    layer: &LayerInner,
    id: &RawId,
    key: &SessionKey,
    mut changeset: Changeset,
    rebase: &mut Vec<Rebase>,
    now: u64,
) -> Result<CookieAction, Failure> {
    let create = changeset.mode == SaveMode::Create;
    let mut started = None;
    let mut backoff = Duration::from_millis(1);
    loop {
        match timed_save(layer, id, key, &changeset).await? {
            SaveOutcome::Saved { .. } => {
                return Ok(CookieAction::Set(layer.session_cookie(
                    id,
                    changeset.expires_at_ms,
                    now,
                )));
            }
            // Emptied by this save: the cookie names nothing now.
            SaveOutcome::Deleted if !create => return Ok(CookieAction::Remove),
            SaveOutcome::Missing if !create => return gone(&changeset),
            SaveOutcome::Conflict { namespace } if !create => {
                if started
                    .get_or_insert_with(std::time::Instant::now)
                    .elapsed()
                    >= layer.update_deadline
                {
                    return Err(Failure::Store(StoreError::unavailable(format!(
                        "namespace `{namespace}` kept changing under this request's write"
                    ))));
                }
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(Duration::from_millis(50));
                let source = match changeset.mode {
                    SaveMode::Rename { from } => from,
                    _ => *key,
                };
                let Some(record) = layer.store.load(&source).await.map_err(Failure::Store)? else {
                    return gone(&changeset);
                };
                rebase_changes(&mut changeset.namespaces, rebase, &record)?;
                if changeset.namespaces.is_empty() && changeset.mode == SaveMode::Update {
                    // What this request wanted is what is stored now.
                    return Ok(CookieAction::None);
                }
            }
            other => {
                return Err(Failure::Internal(format!(
                    "the store answered {other:?} to a {:?}",
                    changeset.mode
                )));
            }
        }
    }
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
        Ok(CookieAction::None)
    }
}

/// Re-plans every change against `record`; a change with nothing left to
/// do is dropped (with its rebase entry).
fn rebase_changes(
    changes: &mut Vec<NamespaceChange>,
    rebase: &mut Vec<Rebase>,
    record: &Record,
) -> Result<(), Failure> {
    let mut index = 0;
    while index < changes.len() {
        if rebase_change(&mut changes[index], &mut rebase[index], record)? {
            index += 1;
        } else {
            changes.remove(index);
            rebase.remove(index);
        }
    }
    Ok(())
}

/// Re-plans one change: this request's changed fields on top of the
/// namespace as stored now (migrated first when it is older; refused when
/// newer code wrote it). A result equal to `Default` becomes a guarded
/// removal. `false` when there is nothing left to do.
fn rebase_change(
    change: &mut NamespaceChange,
    rebase: &mut Rebase,
    record: &Record,
) -> Result<bool, Failure> {
    let version = rebase.version;
    let ours = rebase.ours(change).clone();
    let Some(stored) = record.namespace(change.namespace) else {
        let mut whole = rebase.defaults.clone();
        whole.merge(&ours);
        if rebase.is_default(&whole) {
            return Ok(false);
        }
        *change = NamespaceChange::new(
            change.namespace,
            version,
            Some(0),
            NamespaceOp::Replace(whole),
        );
        return Ok(true);
    };
    if stored.version > version {
        return Err(Failure::Internal(format!(
            "namespace `{}` was written at version {} by newer code meanwhile; not overwriting it",
            change.namespace, stored.version
        )));
    }
    let mut whole = if stored.version == version {
        stored.fields.clone()
    } else {
        match (rebase.migrate)(stored.version, &stored.fields) {
            Ok(migrated) => migrated,
            // Unreadable: this request's value replaces it, as the reset
            // policy that let it be read decided.
            Err(message) => {
                tracing::warn!(namespace = change.namespace, error = %message, "stored namespace replaced after a conflict");
                rebase.defaults.clone()
            }
        }
    };
    whole.merge(&ours);
    let revision = Some(stored.revision);
    *change = if rebase.is_default(&whole) {
        NamespaceChange::new(
            change.namespace,
            stored.version,
            revision,
            NamespaceOp::Remove,
        )
    } else if stored.version == version {
        NamespaceChange::new(change.namespace, version, None, NamespaceOp::Patch(ours))
    } else {
        NamespaceChange::new(
            change.namespace,
            version,
            revision,
            NamespaceOp::Replace(whole),
        )
    };
    Ok(true)
}

/// Decides, from the request state, what the store and the cookie need at
/// the end of the request (see the crate docs' lifecycle table). Runs
/// under the request-state lock, which is released before any I/O.
#[allow(
    clippy::too_many_lines,
    reason = "split into named steps by the architecture issue (#7)"
)]
fn prepare(session: &RequestSession) -> Step {
    let layer = &*session.layer;
    let now = session.now_ms();
    let client_cookie = !matches!(session.cookie, CookieState::Absent);
    let malformed = matches!(session.cookie, CookieState::Malformed);
    let mut guard = session.lock();
    let state = &mut *guard;

    let mut deletes: Vec<(RawId, SessionKey)> = std::mem::take(&mut state.delete_pending);
    let cleared = !deletes.is_empty();
    let current = state.current.as_ref().map(|c| {
        (
            c.id.clone(),
            c.key,
            c.created_at_ms,
            c.last_seen_ms,
            c.expires_at_ms,
        )
    });
    let committed = state.committed;

    if state.destroyed {
        // Same rule as for an emptied session: clear a cookie that named a
        // session or was malformed; an unknown id is left alone.
        let named_something = current.is_some() || cleared || committed != CommittedId::Untouched;
        let cookie = if malformed || (client_cookie && named_something) {
            CookieAction::Remove
        } else {
            CookieAction::None
        };
        if let Some((id, key, ..)) = current {
            deletes.push((id, key));
        }
        return io_or_done(now, deletes, Then::Cookie(cookie));
    }

    let mut changes = Vec::new();
    let mut rebase = Vec::new();
    let mut rotate = state.regenerate;
    for slot in &state.slots {
        let Some(value) = slot.value.as_ref().filter(|_| slot.dirty) else {
            continue;
        };
        let (base, replace, revision) = state.base_fields(&slot.base);
        let plan = match value.plan(base, replace) {
            Ok(plan) => plan,
            Err(err) => return Step::Done(Err(Failure::Internal(ErrorChain(&err).to_string()))),
        };
        if let Some(op) = plan.op {
            rotate |= plan.rotate;
            // A whole-namespace write or a removal is guarded by the
            // baseline's revision (0: absent); a patch is last-writer-wins
            // per field, guarded by the store against an absent namespace
            // or another version.
            let expected = (!matches!(op, NamespaceOp::Patch(_))).then_some(revision);
            rebase.push(Rebase {
                ours: plan.ours,
                defaults: plan.defaults,
                version: value.version(),
                migrate: value.migrator(),
            });
            changes.push(NamespaceChange::new(
                slot.namespace,
                value.version(),
                expected,
                op,
            ));
        }
    }
    if !changes.is_empty() {
        // The plans are made; let go of the loaded record so that a store
        // holding the only other reference can change it in place.
        state.forget_record();
    }
    let (emptied, load_failed) = (state.deleted, state.load_failed);
    drop(guard);

    let Some((id, key, created_at, last_seen, expires_at)) = current else {
        // No stored session: create one only for values that are not all defaults.
        changes.retain(|c| c.op != NamespaceOp::Remove);
        if changes.is_empty() {
            // A cookie that was malformed, or that named a session this
            // request emptied or cleared, is cleared; an unknown id is left
            // alone (nothing to clear, and no reason to answer it).
            let cookie = if malformed || (client_cookie && (emptied || cleared)) {
                CookieAction::Remove
            } else {
                CookieAction::None
            };
            return io_or_done(now, deletes, Then::Cookie(cookie));
        }
        if load_failed {
            // Failing open served this request as anonymous, but the
            // client's own session may well exist: creating a new one would
            // replace its cookie and lose that session.
            return Step::Done(Err(Failure::Store(StoreError::unavailable(
                "the session could not be loaded, so nothing is saved in its place",
            ))));
        }
        let id = match fresh_id() {
            Ok(id) => id,
            Err(failure) => return Step::Done(Err(failure)),
        };
        let changeset = Changeset::new(
            SaveMode::Create,
            now,
            now,
            layer.write_deadline(now, now),
            changes,
        );
        let key = id.key();
        return Step::Io(Io {
            now,
            deletes,
            then: Then::Save {
                id,
                key,
                changeset,
                // A create never conflicts, so it is never rebased.
                rebase: Vec::new(),
            },
        });
    };

    if changes.is_empty() && !rotate {
        let then = match committed {
            CommittedId::Fresh => {
                let deadline = cookie_deadline(layer, created_at, last_seen, expires_at);
                Then::Cookie(CookieAction::Set(layer.session_cookie(&id, deadline, now)))
            }
            // An `update` moved the deadline: re-send the Max-Age, but only
            // after the store confirms the id still names the session (a
            // concurrent login may have moved it; re-sending the old id
            // would replace the browser's new cookie with a dead one).
            CommittedId::Same if layer.persistent_cookie() => Then::Touch {
                id,
                key,
                created_at,
                deadline: expires_at,
            },
            CommittedId::Same | CommittedId::Untouched => {
                match refresh_due(layer, created_at, last_seen, expires_at, now) {
                    Some(deadline) => Then::Touch {
                        id,
                        key,
                        created_at,
                        deadline,
                    },
                    None => Then::Cookie(CookieAction::None),
                }
            }
        };
        return io_or_done(now, deletes, then);
    }

    let (id, key, mode) = if rotate {
        let fresh = match fresh_id() {
            Ok(id) => id,
            Err(failure) => return Step::Done(Err(failure)),
        };
        let fresh_key = fresh.key();
        (fresh, fresh_key, SaveMode::Rename { from: key })
    } else {
        (id, key, SaveMode::Update)
    };
    let changeset = Changeset::new(
        mode,
        created_at,
        now,
        layer.write_deadline(created_at, now),
        changes,
    );
    Step::Io(Io {
        now,
        deletes,
        then: Then::Save {
            id,
            key,
            changeset,
            rebase,
        },
    })
}

/// A fresh session id from the OS CSPRNG.
fn fresh_id() -> Result<RawId, Failure> {
    RawId::generate()
        .map_err(|err| Failure::Internal(format!("no OS randomness for a session id: {err}")))
}

fn io_or_done(now: u64, deletes: Vec<(RawId, SessionKey)>, then: Then) -> Step {
    match then {
        Then::Cookie(action) if deletes.is_empty() => Step::Done(Ok(action)),
        then => Step::Io(Io { now, deletes, then }),
    }
}

/// The deadline the cookie's Max-Age counts down to: the session's own
/// deadline, never past the store's.
fn cookie_deadline(
    layer: &LayerInner,
    created_at: u64,
    last_seen: u64,
    store_deadline: u64,
) -> u64 {
    layer
        .session_deadline(created_at, last_seen)
        .map_or(store_deadline, |d| d.min(store_deadline))
}

/// Sliding refresh on a read-only request: the new store deadline when one
/// is due. The deadline the current configuration asks for may differ from
/// the stored one: it is lowered at once (a shorter timeout was configured,
/// and this access counts as the last one), raised when it is fixed
/// (absolute only: a longer timeout was configured), and slid for an idle
/// timeout or store TTL at most once per `refresh_share` of the period
/// since the last write or refresh.
fn refresh_due(
    layer: &LayerInner,
    created_at: u64,
    last_seen: u64,
    expires_at: u64,
    now: u64,
) -> Option<u64> {
    let target = layer.write_deadline(created_at, now);
    let due = match (layer.expiry.idle_ms, layer.expiry.absolute_ms) {
        _ if target < expires_at => true,
        _ if target == expires_at => false,
        (None, Some(_)) => true,
        (idle, _) => {
            let period = idle.unwrap_or(layer.expiry.store_ttl_ms);
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "a share of a period in ms fits easily"
            )]
            let throttle = (period as f64 * layer.expiry.refresh_share) as u64;
            now >= last_seen.saturating_add(throttle)
        }
    };
    due.then_some(target)
}

async fn timed_save(
    layer: &LayerInner,
    id: &RawId,
    key: &SessionKey,
    changeset: &Changeset,
) -> Result<SaveOutcome, Failure> {
    let span = tracing::debug_span!(
        "session_save",
        session = tracing::field::Empty,
        latency_us = tracing::field::Empty,
        namespaces = changeset.namespaces.len()
    );
    timed(&span, id, layer, layer.store.save(key, changeset))
        .await
        .map_err(Failure::Store)
}

async fn timed_delete(layer: &LayerInner, id: &RawId, key: &SessionKey) -> Result<bool, Failure> {
    let span = tracing::debug_span!(
        "session_delete",
        session = tracing::field::Empty,
        latency_us = tracing::field::Empty
    );
    timed(&span, id, layer, layer.store.delete(key))
        .await
        .map_err(Failure::Store)
}
