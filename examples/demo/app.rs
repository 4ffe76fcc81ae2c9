//! The demo application: three session schemas, an HTML page with plain
//! forms, and a JSON API.
//!
//! [`app`] is the whole application minus the listener, so the tests next
//! to it (`tests.rs`) drive it through `oneshot`.
//!
//! Each schema is its own namespace in the same session, loaded once per
//! request however many of them a handler extracts, and written back field
//! by field after the handler. Input errors answer JSON (API) or HTML
//! (forms); session errors (store down, a contended `update`) answer with
//! the library's own short plain-text responses.
//!
//! # Cross-site request forgery
//!
//! The session cookie is `SameSite=Lax`: a browser does not send it with a
//! cross-site `POST`. That alone does not make the forms safe:
//!
//! - Login CSRF. A cross-site `POST /login` needs no cookie: without a
//!   token check it would create a session signed in as the attacker, and
//!   the browser would accept the `Set-Cookie` of the answer. The victim
//!   then works, and types, in the attacker's account.
//! - `SameSite` is about the site (the registrable domain), not the origin:
//!   a page on a sibling subdomain is same-site, and its forms arrive with
//!   the cookie.
//!
//! So every HTML form carries a per-session token (namespace `csrf`, a
//! `sensitive` field: never logged, redacted in `Debug`), and the form
//! routes compare it in constant time before anything else. A form without
//! the session's token, including any form sent without a session, is
//! refused with 403 and changes nothing.
//!
//! Two ways around a per-session token, and what closes them:
//!
//! - Cookie tossing. A sibling subdomain can also *set* a cookie for the
//!   whole site (`Domain=example.com`): it could plant a session of the
//!   attacker's own, whose token the attacker knows, in the victim's
//!   browser, and then post the login form with that token. The demo's
//!   cookie is `__Host-session` when it is `Secure` (see `args.rs`): a
//!   browser takes a `__Host-` cookie only from the host itself, without
//!   `Domain`, and a planted cookie of another name is not the demo's.
//!   `--insecure` keeps the plain name `session` (browsers refuse `__Host-`
//!   without `Secure`), and this protection with it: development only.
//! - Token fixation. A token learned before login (from a planted or shared
//!   anonymous session) must not work after it. A login that signs a user
//!   in rotates the session id (`rotate_id`) and, in the same save, replaces
//!   the token (the form login) or removes it (the JSON API login); see
//!   [`renew_csrf_token`].
//!
//! The JSON API takes no token (curl and scripts have no page to read one
//! from). It refuses, with 403, a request whose `Origin` header names
//! another origin: browsers send `Origin` with every cross-origin `POST`,
//! `PUT` and `DELETE` (and with cross-origin `fetch` reads), while curl and
//! other non-browser clients send none and keep working unchanged.

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Request;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::handler::Handler;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use typed_sessions::{Session, SessionData, SessionHandle, SessionLayer, UpdateError};

/// The longest user name accepted, in characters.
pub const MAX_USER_CHARS: usize = 64;
/// The longest SKU accepted, in characters.
pub const MAX_SKU_CHARS: usize = 32;
/// The largest quantity of one cart line.
pub const MAX_QTY: u32 = 999;
/// The most lines a cart holds.
pub const MAX_CART_ITEMS: usize = 50;
/// The largest form body accepted, in bytes: the page's forms send well
/// under 1 KiB.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// The random bytes in a form token.
pub const CSRF_TOKEN_BYTES: usize = 32;
/// The name of the hidden form field that carries the token.
pub const CSRF_FIELD: &str = "csrf";

// ---------------------------------------------------------------------------
// Schemas: four namespaces of one session.

/// Namespace `counter`: incremented directly (`DerefMut`) or atomically
/// (`update`).
#[derive(SessionData, Default, Debug)]
#[session(namespace = "counter", version = 1)]
pub struct Counter {
    /// How many times it was incremented.
    pub count: u64,
}

/// Namespace `auth`: who is signed in.
#[derive(SessionData, Default, Debug)]
#[session(namespace = "auth", version = 1)]
pub struct Auth {
    /// The signed-in user. `rotate_id`: when it changes, the session gets a
    /// new id before the response, so a login cannot be fixated.
    #[session(rotate_id)]
    pub user: Option<String>,
    /// When the user signed in (Unix seconds). `default`: sessions stored
    /// before this field existed read it as `None` instead of failing.
    /// `sensitive`: the runtime never logs its value and `Debug` redacts it.
    #[session(default, sensitive)]
    pub signed_in_at: Option<u64>,
}

/// One cart line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The stock-keeping unit.
    pub sku: String,
    /// How many, `1..=MAX_QTY`.
    pub qty: u32,
}

/// Namespace `cart`.
#[derive(SessionData, Default, Debug)]
#[session(namespace = "cart", version = 1)]
pub struct Cart {
    /// The lines, in the order they were added.
    pub items: Vec<Item>,
}

/// Namespace `csrf`: the token the HTML forms of this session carry.
#[derive(SessionData, Default)]
#[session(namespace = "csrf", version = 1)]
pub struct Csrf {
    /// [`CSRF_TOKEN_BYTES`] bytes from the operating system's CSPRNG,
    /// base64url. Made by the first `GET /` of a session; replaced (form
    /// login) or removed (API login) by a login that signs a user in, which
    /// also rotates the session id, so a token known before the login is
    /// worthless after it; a logout ends the session and the token with it.
    /// `sensitive`: the runtime never logs its value and the `Debug` of
    /// `Session<Csrf>` redacts it.
    #[session(sensitive)]
    pub token: Option<String>,
}

/// Redacts the token, like the `Debug` of `Session<Csrf>`.
impl fmt::Debug for Csrf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Csrf")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

// ---------------------------------------------------------------------------
// The application.

/// The demo application, with `layer` around every route.
pub fn app(layer: SessionLayer) -> Router {
    // The form routes (each answers 303 See Other to `/`), behind the token
    // check.
    let forms = Router::new()
        .route("/incr", form_post(form_incr))
        .route("/atomic-incr", form_post(form_atomic_incr))
        .route("/login", form_post(form_login))
        .route("/logout", form_post(form_logout))
        .route("/cart", form_post(form_cart_add))
        .route("/cart/clear", form_post(form_cart_clear));
    // The JSON API, behind the `Origin` check.
    let api = Router::new()
        .route("/api/counter", get(api_counter))
        .route("/api/counter/incr", post(api_incr))
        .route("/api/counter/atomic-incr", post(api_atomic_incr))
        .route("/api/login", post(api_login))
        .route("/api/me", get(api_me))
        .route("/api/logout", post(api_logout))
        .route(
            "/api/cart",
            get(api_cart).post(api_cart_add).delete(api_cart_clear),
        )
        .route("/api/session", get(api_session))
        .route_layer(middleware::from_fn(same_origin_only));
    Router::new()
        // The HTML page: it makes the session's form token.
        .route("/", get(page))
        .merge(forms)
        .merge(api)
        // Outermost, so the checks above can read the session.
        .layer(layer)
}

// ---------------------------------------------------------------------------
// Cross-site request forgery: the form token and the API's `Origin` check.

/// `POST` to `handler` behind [`require_form_token`]. Other methods get 405
/// as before: the check guards the handler, not the method fallback.
fn form_post<H, T>(handler: H) -> MethodRouter
where
    H: Handler<T, ()>,
    T: 'static,
{
    post(handler).route_layer(middleware::from_fn(require_form_token))
}

/// A new form token: [`CSRF_TOKEN_BYTES`] bytes from the operating system's
/// CSPRNG, base64url without padding (43 characters).
///
/// # Errors
/// The operating system's generator could not be read.
pub fn new_csrf_token() -> std::io::Result<String> {
    let mut bytes = [0u8; CSRF_TOKEN_BYTES];
    os_random(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Fills `bytes` from the operating system's CSPRNG.
fn os_random(bytes: &mut [u8]) -> std::io::Result<()> {
    getrandom::fill(bytes).map_err(std::io::Error::from)
}

/// Whether `a` and `b` are equal, in time that depends only on their
/// lengths (which are public: every token has the same length), never on
/// where they first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

/// Whether the token sent with a form is the session's. No stored token
/// (no session, or a session that never rendered the page) matches nothing.
fn token_matches(stored: Option<&str>, sent: Option<&str>) -> bool {
    match (stored, sent) {
        (Some(stored), Some(sent)) => constant_time_eq(stored.as_bytes(), sent.as_bytes()),
        _ => false,
    }
}

/// Takes the [`CSRF_FIELD`] out of an `application/x-www-form-urlencoded`
/// body: its value (`None` when absent, given more than once, or not
/// UTF-8) and the rest of the body, byte for byte, for the handler's `Form`
/// (whose input types deny unknown fields). The value is compared as sent,
/// undecoded: a token is base64url, which a browser never percent-encodes.
pub fn split_token(body: &[u8]) -> (Option<String>, Vec<u8>) {
    let mut token = None;
    let mut seen = 0_usize;
    let mut rest = Vec::with_capacity(body.len());
    let mut first = true;
    for pair in body.split(|&b| b == b'&') {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        if name == CSRF_FIELD.as_bytes() {
            seen += 1;
            token = std::str::from_utf8(value).ok().map(str::to_owned);
            continue;
        }
        if !first {
            rest.push(b'&');
        }
        first = false;
        rest.extend_from_slice(pair);
    }
    (if seen == 1 { token } else { None }, rest)
}

/// Middleware of the form routes: refuses (403, HTML) a form whose token is
/// missing or not the session's, before the handler or anything else runs,
/// so a refused form changes nothing and creates no session. A form that
/// passes reaches its handler without the token field.
async fn require_form_token(csrf: Session<Csrf>, request: Request, next: Next) -> Response {
    // Only the stored token is needed: release the namespace before the
    // handler runs. Read through `Deref`, so nothing is written back.
    let stored = csrf.token.clone();
    drop(csrf);

    let (mut parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
        Ok(bytes) => bytes,
        Err(err) => {
            let too_large = err.into_inner().is::<http_body_util::LengthLimitError>();
            return if too_large {
                form_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("a form holds at most {MAX_FORM_BYTES} bytes"),
                )
            } else {
                form_error(StatusCode::BAD_REQUEST, "the form could not be read")
            };
        }
    };
    let (sent, rest) = split_token(&bytes);
    if !token_matches(stored.as_deref(), sent.as_deref()) {
        return html_message(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "This form did not come from this site's page, or the page is out of date \
             (its CSRF token is missing or wrong). Reload the page and try again.",
        );
    }
    if parts.headers.contains_key(header::CONTENT_LENGTH) {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(rest.len()));
    }
    next.run(Request::from_parts(parts, Body::from(rest))).await
}

/// Middleware of the JSON API: refuses (403, JSON) a request whose `Origin`
/// header is present and names another origin. No `Origin` (curl, scripts,
/// a browser's same-origin `GET`) passes unchanged.
///
/// The demo does not know the address its clients use (`--addr` may be
/// `0.0.0.0`, a proxy may sit in front), so its own origin is the one the
/// request names: the `Host` header, or the URI's authority (HTTP/2). An
/// `Origin` matches when its `host[:port]` equals that, ASCII
/// case-insensitively, with `http` or `https` as its scheme: the demo serves
/// plain http and may be behind a TLS proxy, so the scheme is not compared;
/// the host and port are what tell another site apart. A deployment that
/// knows its public origin should compare with exactly that instead.
/// `Origin: null` (sandboxed frames, some redirects) and anything
/// unparsable count as another origin. (A DNS-rebinding page passes this
/// check, but the browser files its requests under the attacker's host
/// name: they carry no cookie of this site and their `Set-Cookie` does not
/// reach it.)
async fn same_origin_only(request: Request, next: Next) -> Response {
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let own = request
            .headers()
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .or_else(|| {
                request
                    .uri()
                    .authority()
                    .map(axum::http::uri::Authority::as_str)
            });
        if !same_origin(origin, own) {
            return ApiError {
                status: StatusCode::FORBIDDEN,
                message: "cross-origin request refused: the Origin header names another site"
                    .into(),
            }
            .into_response();
        }
    }
    next.run(request).await
}

/// Whether `origin` is `http://` or `https://` followed by exactly `own`
/// (ASCII case-insensitive). No `own` matches nothing.
fn same_origin(origin: &HeaderValue, own: Option<&str>) -> bool {
    let (Ok(origin), Some(own)) = (origin.to_str(), own) else {
        return false;
    };
    let Some(authority) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    !authority.is_empty() && !authority.contains('/') && authority.eq_ignore_ascii_case(own)
}

// ---------------------------------------------------------------------------
// Input: shared validation for the API and the forms.

/// `POST /api/login` and `POST /login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    /// The user name.
    pub user: String,
}

/// `POST /api/cart` and `POST /cart`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// The SKU.
    pub sku: String,
    /// The quantity.
    pub qty: u32,
}

/// A user name, trimmed: 1 to [`MAX_USER_CHARS`] characters, no control
/// characters. Anything else is allowed, and escaped when rendered.
fn validate_user(raw: &str) -> Result<String, String> {
    let user = raw.trim();
    if user.is_empty() {
        return Err("user must not be empty".into());
    }
    if user.chars().count() > MAX_USER_CHARS {
        return Err(format!("user must be at most {MAX_USER_CHARS} characters"));
    }
    if user.chars().any(char::is_control) {
        return Err("user must not contain control characters".into());
    }
    Ok(user.to_owned())
}

/// A cart line: a SKU of 1 to [`MAX_SKU_CHARS`] ASCII letters, digits, `-`,
/// `_` or `.`, and a quantity in `1..=MAX_QTY`.
fn validate_item(input: &ItemInput) -> Result<Item, String> {
    let sku = input.sku.trim();
    if sku.is_empty() {
        return Err("sku must not be empty".into());
    }
    if sku.len() > MAX_SKU_CHARS {
        return Err(format!("sku must be at most {MAX_SKU_CHARS} characters"));
    }
    if !sku
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("sku may contain only ASCII letters, digits, '-', '_' and '.'".into());
    }
    if !(1..=MAX_QTY).contains(&input.qty) {
        return Err(format!("qty must be between 1 and {MAX_QTY}"));
    }
    Ok(Item {
        sku: sku.to_owned(),
        qty: input.qty,
    })
}

fn check_room(cart: &Cart) -> Result<(), String> {
    if cart.items.len() >= MAX_CART_ITEMS {
        Err(format!("the cart holds at most {MAX_CART_ITEMS} items"))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// JSON API.

/// An API error: its status and `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn invalid(message: String) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message,
        }
    }
}

/// A body that is not JSON, or not the expected shape: axum's status (400,
/// 415 or 422) with its message, as JSON.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (
            self.status,
            Json(Body {
                error: self.message,
            }),
        )
            .into_response()
    }
}

#[derive(Serialize)]
struct CounterBody {
    count: u64,
}

#[derive(Serialize)]
struct UserBody {
    user: Option<String>,
}

#[derive(Serialize)]
struct CartBody {
    items: Vec<Item>,
}

#[derive(Serialize)]
struct SessionBody {
    /// A short keyed hash of the id: safe to show, useless to an attacker.
    id_hash: Option<String>,
    created_at: Option<u64>,
    expires_at: Option<u64>,
    remaining: Option<u64>,
}

async fn api_counter(counter: Session<Counter>) -> Json<CounterBody> {
    Json(CounterBody {
        count: counter.count,
    })
}

/// Plain `DerefMut`: the change is written back after the handler. Two
/// concurrent requests may both read N and both store N + 1.
async fn api_incr(mut counter: Session<Counter>) -> Json<CounterBody> {
    counter.count = counter.count.saturating_add(1);
    Json(CounterBody {
        count: counter.count,
    })
}

/// `update`: compare-and-swap, so concurrent increments are never lost.
async fn api_atomic_incr(mut counter: Session<Counter>) -> Result<Json<CounterBody>, UpdateError> {
    let count = counter
        .update(|c| {
            c.count = c.count.saturating_add(1);
            c.count
        })
        .await?;
    Ok(Json(CounterBody { count }))
}

/// A login that signs a user in also drops the session's form token, if it
/// has one (see [`renew_csrf_token`]).
async fn api_login(
    mut auth: Session<Auth>,
    mut csrf: Session<Csrf>,
    input: Result<Json<LoginInput>, JsonRejection>,
) -> Result<Json<UserBody>, ApiError> {
    let Json(input) = input?;
    let user = validate_user(&input.user).map_err(ApiError::invalid)?;
    if sign_in(&mut auth, user) {
        renew_csrf_token(&mut csrf, TokenRenewal::Remove);
    }
    Ok(Json(UserBody {
        user: auth.user.clone(),
    }))
}

async fn api_me(auth: Session<Auth>) -> Json<UserBody> {
    Json(UserBody {
        user: auth.user.clone(),
    })
}

/// Logout ends the whole session: every namespace, and the cookie.
async fn api_logout(session: SessionHandle) -> Json<UserBody> {
    session.destroy();
    Json(UserBody { user: None })
}

async fn api_cart(cart: Session<Cart>) -> Json<CartBody> {
    Json(CartBody {
        items: cart.items.clone(),
    })
}

async fn api_cart_add(
    mut cart: Session<Cart>,
    input: Result<Json<ItemInput>, JsonRejection>,
) -> Result<Json<CartBody>, ApiError> {
    let Json(input) = input?;
    let item = validate_item(&input).map_err(ApiError::invalid)?;
    check_room(&cart).map_err(ApiError::invalid)?;
    cart.items.push(item);
    Ok(Json(CartBody {
        items: cart.items.clone(),
    }))
}

/// Back to `Default`: the `cart` namespace is removed from the store; the
/// other namespaces stay (and when none is left, the session is deleted).
async fn api_cart_clear(mut cart: Session<Cart>) -> Json<CartBody> {
    *cart = Cart::default();
    Json(CartBody { items: Vec::new() })
}

async fn api_session(session: SessionHandle) -> Json<SessionBody> {
    Json(SessionBody {
        id_hash: session.id().map(|id| id.to_string()),
        created_at: session.created_at().map(unix_secs),
        expires_at: session.expires_at().map(unix_secs),
        remaining: session.remaining().map(|d| d.as_secs()),
    })
}

/// Signs `user` in; whether that changed who is signed in (and so, through
/// `rotate_id`, rotates the session id). Signing in as the user already
/// signed in changes nothing.
fn sign_in(auth: &mut Auth, user: String) -> bool {
    if auth.user.as_deref() == Some(user.as_str()) {
        return false;
    }
    auth.user = Some(user);
    auth.signed_in_at = Some(unix_secs(SystemTime::now()));
    true
}

/// What a login does with the session's form token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenRenewal {
    /// A fresh token right away: the form login, whose answer sends the
    /// browser to the page, which renders it.
    Fresh,
    /// No token: the JSON API login. Its clients have no page; a session
    /// that never rendered one has no token to replace, and one that did
    /// gets a fresh token from its next `GET /`.
    Remove,
}

/// Replaces the session's form token at a login, so that a token learned
/// before it (from an anonymous session an attacker planted, or read) is
/// refused after it. Called only when the login changed who is signed in:
/// the write joins the id rotation's save, and the token changes exactly
/// when the id does.
///
/// `Fresh` falls back to `Remove` when the operating system's generator
/// cannot be read: the login still succeeds, the old token is gone either
/// way, and the next `GET /` tries again.
fn renew_csrf_token(csrf: &mut Csrf, renewal: TokenRenewal) {
    csrf.token = match renewal {
        TokenRenewal::Remove => None,
        TokenRenewal::Fresh => match new_csrf_token() {
            Ok(token) => Some(token),
            Err(err) => {
                tracing::error!(error = %err, "cannot read the OS random generator for a form token; the login removes the old one");
                None
            }
        },
    };
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------------------
// HTML page and form routes.

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /`: reads the four namespaces (one store load). Writes only when
/// the session has no form token yet (its first view of the page, or the
/// first after an API login removed it): it makes one, which starts a
/// session (`Set-Cookie`) when there was none.
async fn page(
    counter: Session<Counter>,
    auth: Session<Auth>,
    cart: Session<Cart>,
    mut csrf: Session<Csrf>,
    session: SessionHandle,
) -> Response {
    let token = if let Some(token) = &csrf.token {
        token.clone()
    } else {
        match new_csrf_token() {
            Ok(token) => {
                csrf.token = Some(token.clone());
                token
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot read the OS random generator for a form token");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot make a form token",
                )
                    .into_response();
            }
        }
    };
    let html = render_page(&counter, &auth, &cart, &token, &session);
    // Per-session content: never cached.
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

fn render_page(
    counter: &Counter,
    auth: &Auth,
    cart: &Cart,
    token: &str,
    session: &SessionHandle,
) -> String {
    // Every form carries it; `require_form_token` checks it.
    let csrf = format!(
        r#"<input type="hidden" name="{CSRF_FIELD}" value="{}">"#,
        escape_html(token)
    );
    let user_section = match &auth.user {
        Some(user) => format!(
            r#"<p>Signed in as <strong>{}</strong>.</p>
<form method="post" action="/logout">{csrf}<button type="submit">Log out (ends the whole session)</button></form>"#,
            escape_html(user)
        ),
        None => format!(
            r#"<p>Not signed in.</p>
<form method="post" action="/login">{csrf}
  <label>User <input name="user" required maxlength="{MAX_USER_CHARS}" autocomplete="username"></label>
  <button type="submit">Log in</button>
</form>"#
        ),
    };

    let cart_lines = if cart.items.is_empty() {
        "<p>The cart is empty.</p>".to_owned()
    } else {
        let mut rows = String::new();
        for item in &cart.items {
            // Writing to a String cannot fail.
            let _ = writeln!(
                rows,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape_html(&item.sku),
                item.qty
            );
        }
        format!("<table>\n<tr><th>SKU</th><th>Qty</th></tr>\n{rows}</table>")
    };

    let session_info = match session.id() {
        Some(id) => {
            let expiry = match session.remaining() {
                Some(left) => format!("expires in {} s", left.as_secs()),
                None => "lasts until the browser closes".to_owned(),
            };
            format!(
                "Session <code>{}</code> (a keyed hash, never the id), created at {} (Unix), {}.",
                escape_html(&id.to_string()),
                session.created_at().map_or(0, unix_secs),
                expiry
            )
        }
        None => "A new session starts with this page: it holds the form token; everything above is a default.".to_owned(),
    };

    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>typed-sessions demo</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }}
section {{ border: 1px solid #ccc; border-radius: 6px; padding: 0 1rem 1rem; margin-bottom: 1rem; }}
form {{ display: inline-block; margin-right: .5rem; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ddd; padding: .2rem .6rem; }}
footer {{ color: #555; font-size: .9rem; }}
</style>
</head>
<body>
<h1>typed-sessions demo</h1>

<section>
<h2>Counter</h2>
<p>Count: <strong id="count">{count}</strong></p>
<form method="post" action="/incr">{csrf}<button type="submit">+1</button></form>
<form method="post" action="/atomic-incr">{csrf}<button type="submit">+1 (atomic update)</button></form>
</section>

<section>
<h2>Account</h2>
{user_section}
</section>

<section>
<h2>Cart</h2>
{cart_lines}
<form method="post" action="/cart">{csrf}
  <label>SKU <input name="sku" required maxlength="{MAX_SKU_CHARS}" pattern="[A-Za-z0-9._\-]+"></label>
  <label>Qty <input name="qty" type="number" value="1" min="1" max="{MAX_QTY}" required></label>
  <button type="submit">Add</button>
</form>
<form method="post" action="/cart/clear">{csrf}<button type="submit">Empty the cart</button></form>
</section>

<footer>
<p>{session_info}</p>
<p>JSON API: <code>/api/counter</code>, <code>/api/me</code>, <code>/api/cart</code>, <code>/api/session</code> (it refuses requests from other origins).</p>
</footer>
</body>
</html>
"#,
        count = counter.count,
    )
}

/// A form that could not be used: its status and a small HTML page.
fn form_error(status: StatusCode, message: &str) -> Response {
    html_message(status, "Invalid input", message)
}

/// `status` with a small HTML page: `title` and `message`, escaped.
fn html_message(status: StatusCode, title: &str, message: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{message}</p><p><a href="/">Back</a></p></body></html>
"#,
        title = escape_html(title),
        message = escape_html(message)
    );
    (status, Html(html)).into_response()
}

fn form_rejection(rejection: &FormRejection) -> Response {
    form_error(rejection.status(), &rejection.body_text())
}

fn back_home() -> Response {
    Redirect::to("/").into_response()
}

async fn form_incr(mut counter: Session<Counter>) -> Response {
    counter.count = counter.count.saturating_add(1);
    back_home()
}

async fn form_atomic_incr(mut counter: Session<Counter>) -> Result<Response, UpdateError> {
    counter
        .update(|c| c.count = c.count.saturating_add(1))
        .await?;
    Ok(back_home())
}

/// A login that signs a user in also gives the session a fresh form token
/// (see [`renew_csrf_token`]). `Session<Csrf>` can be extracted here:
/// [`require_form_token`] releases its own before the handler runs.
async fn form_login(
    mut auth: Session<Auth>,
    mut csrf: Session<Csrf>,
    input: Result<Form<LoginInput>, FormRejection>,
) -> Response {
    let input = match input {
        Ok(Form(input)) => input,
        Err(rejection) => return form_rejection(&rejection),
    };
    match validate_user(&input.user) {
        Ok(user) => {
            if sign_in(&mut auth, user) {
                renew_csrf_token(&mut csrf, TokenRenewal::Fresh);
            }
            back_home()
        }
        Err(message) => form_error(StatusCode::UNPROCESSABLE_ENTITY, &message),
    }
}

async fn form_logout(session: SessionHandle) -> Response {
    session.destroy();
    back_home()
}

async fn form_cart_add(
    mut cart: Session<Cart>,
    input: Result<Form<ItemInput>, FormRejection>,
) -> Response {
    let input = match input {
        Ok(Form(input)) => input,
        Err(rejection) => return form_rejection(&rejection),
    };
    match validate_item(&input).and_then(|item| check_room(&cart).map(|()| item)) {
        Ok(item) => {
            cart.items.push(item);
            back_home()
        }
        Err(message) => form_error(StatusCode::UNPROCESSABLE_ENTITY, &message),
    }
}

async fn form_cart_clear(mut cart: Session<Cart>) -> Response {
    *cart = Cart::default();
    back_home()
}
