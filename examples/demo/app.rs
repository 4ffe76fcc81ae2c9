//! The demo application: three session schemas, an HTML page with plain
//! forms, and a JSON API.
//!
//! Shared with `tests/demo.rs` through `#[path]`: [`app`] is the whole
//! application minus the listener.
//!
//! Each schema is its own namespace in the same session, loaded once per
//! request however many of them a handler extracts, and written back field
//! by field after the handler. Input errors answer JSON (API) or HTML
//! (forms); session errors (store down, a contended `update`) answer with
//! the library's own short plain-text responses.
//!
//! The form routes need no CSRF token here because the session cookie is
//! `SameSite=Lax`: browsers do not send it with a cross-site `POST`.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
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

// ---------------------------------------------------------------------------
// Schemas: three namespaces of one session.

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

// ---------------------------------------------------------------------------
// The application.

/// The demo application, with `layer` around every route.
pub fn app(layer: SessionLayer) -> Router {
    Router::new()
        // HTML page and its form routes (each answers 303 See Other to `/`).
        .route("/", get(page))
        .route("/incr", post(form_incr))
        .route("/atomic-incr", post(form_atomic_incr))
        .route("/login", post(form_login))
        .route("/logout", post(form_logout))
        .route("/cart", post(form_cart_add))
        .route("/cart/clear", post(form_cart_clear))
        // JSON API.
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
        .layer(layer)
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

async fn api_login(
    mut auth: Session<Auth>,
    input: Result<Json<LoginInput>, JsonRejection>,
) -> Result<Json<UserBody>, ApiError> {
    let Json(input) = input?;
    let user = validate_user(&input.user).map_err(ApiError::invalid)?;
    sign_in(&mut auth, user);
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

fn sign_in(auth: &mut Auth, user: String) {
    if auth.user.as_deref() != Some(user.as_str()) {
        auth.user = Some(user);
        auth.signed_in_at = Some(unix_secs(SystemTime::now()));
    }
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

/// `GET /`: reads the three namespaces (one store load) and writes nothing.
async fn page(
    counter: Session<Counter>,
    auth: Session<Auth>,
    cart: Session<Cart>,
    session: SessionHandle,
) -> Response {
    let html = render_page(&counter, &auth, &cart, &session);
    // Per-session content: never cached.
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

fn render_page(counter: &Counter, auth: &Auth, cart: &Cart, session: &SessionHandle) -> String {
    let user_section = match &auth.user {
        Some(user) => format!(
            r#"<p>Signed in as <strong>{}</strong>.</p>
<form method="post" action="/logout"><button type="submit">Log out (ends the whole session)</button></form>"#,
            escape_html(user)
        ),
        None => format!(
            r#"<p>Not signed in.</p>
<form method="post" action="/login">
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
        None => "No session is stored yet: everything above is a default.".to_owned(),
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
<form method="post" action="/incr"><button type="submit">+1</button></form>
<form method="post" action="/atomic-incr"><button type="submit">+1 (atomic update)</button></form>
</section>

<section>
<h2>Account</h2>
{user_section}
</section>

<section>
<h2>Cart</h2>
{cart_lines}
<form method="post" action="/cart">
  <label>SKU <input name="sku" required maxlength="{MAX_SKU_CHARS}" pattern="[A-Za-z0-9._\-]+"></label>
  <label>Qty <input name="qty" type="number" value="1" min="1" max="{MAX_QTY}" required></label>
  <button type="submit">Add</button>
</form>
<form method="post" action="/cart/clear"><button type="submit">Empty the cart</button></form>
</section>

<footer>
<p>{session_info}</p>
<p>JSON API: <code>/api/counter</code>, <code>/api/me</code>, <code>/api/cart</code>, <code>/api/session</code>.</p>
</footer>
</body>
</html>
"#,
        count = counter.count,
    )
}

/// A form that could not be used: its status and a small HTML page.
fn form_error(status: StatusCode, message: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Invalid input</title></head>
<body><h1>Invalid input</h1><p>{}</p><p><a href="/">Back</a></p></body></html>
"#,
        escape_html(message)
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

async fn form_login(
    mut auth: Session<Auth>,
    input: Result<Form<LoginInput>, FormRejection>,
) -> Response {
    let input = match input {
        Ok(Form(input)) => input,
        Err(rejection) => return form_rejection(&rejection),
    };
    match validate_user(&input.user) {
        Ok(user) => {
            sign_in(&mut auth, user);
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
