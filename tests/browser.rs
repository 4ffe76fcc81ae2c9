//! A real browser (issue #12): headless Chromium, driven through `WebDriver`
//! (`chromedriver` and the `fantoccini` client), against the demo's HTML
//! page (`examples/demo/app.rs`), once per store.
//!
//! The demo is served in-process by `axum::serve` on `127.0.0.1:0`, over
//! plain http, with the layer `examples/demo/args.rs` builds by default: a
//! `Secure`, `HttpOnly`, `SameSite=Lax` cookie named `__Host-session`. The
//! browser visits it as `http://localhost:PORT/`. Chromium counts
//! `http://localhost` as a secure context: it keeps a `Secure` cookie (and
//! so a `__Host-` one) set over plain http there, and sends it back. So the
//! test runs the demo's real default configuration, not `--insecure`; if a
//! Chromium ever stopped doing that, the first check (the page's cookie is
//! there) fails and says so. (Chromium 156 keeps it from
//! `http://127.0.0.1` too; the test does not rely on that.)
//!
//! Per store, in one fresh browser profile, it checks:
//! - the first view of the page is anonymous (count 0, not signed in, an
//!   empty cart, no session id yet) and starts a session: the browser
//!   holds the session cookie, with `HttpOnly`, `Secure`, `SameSite=Lax`
//!   and `Path=/`; a second view shows its id (a keyed hash) and changes
//!   no cookie (a read-only request writes nothing);
//! - the counter's forms (`+1` and `+1 (atomic update)`) count 1, 2, 3 on
//!   the page, with the same session id;
//! - the login form signs in a user (a name with `<`, `&` and a non-ASCII
//!   letter, which the page must show as text): the page shows the user
//!   and the count, and the session id changes at login, both as the
//!   browser's cookie (read with `WebDriver`'s cookie API, which sees
//!   `HttpOnly` cookies) and as the id the page shows; the form token
//!   changes too;
//! - the cart form adds two lines, shown in order;
//! - a reload shows count, user and cart, with the same id and cookie;
//! - `document.cookie` does not contain the session cookie, although it
//!   works (a cookie set by script shows up in it);
//! - the logout form, posted with `fetch(…, {redirect: "manual"})` so that
//!   the cookie jar can be read between the logout's answer and the next
//!   page view (which would start a new session): the answer is a
//!   redirect, and the browser no longer has the session cookie (the
//!   script's cookie is still there); the next view of the page is
//!   anonymous again (count 0, not signed in, an empty cart) with a new
//!   cookie.
//!
//! After the reload it saves a screenshot to
//! `$CARGO_TARGET_DIR/browser/<store>.png` (`target/browser/` without
//! `CARGO_TARGET_DIR`).
//!
//! Chromium is started by `chromedriver` (on a free loopback port, in a
//! process group of its own that is killed when the test ends, also on a
//! failure) with `--headless --no-sandbox --disable-gpu
//! --disable-dev-shm-usage --disable-background-networking
//! --disable-component-update --disable-sync --no-first-run` and a fresh
//! `--user-data-dir`. Without `chromium` or `chromedriver` on `PATH` each
//! test prints a loud `SKIPPED` line and passes, except under `CI=true`,
//! where that is a failure (`.ci/install-chromium` installs both). The same
//! holds for `redis-server` in the Redis test. The stores run one after the
//! other, each bounded by [`STORE_TIMEOUT`], every wait by [`WAIT`].
//!
//! Another store is one more test function: build its layer with the
//! demo's [`Options`] (`session_layer_over`) inside [`in_browser`].

#[path = "../examples/demo/app.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "the demo's module, of which the browser test uses only `app`"
)]
mod app;
#[path = "../examples/demo/args.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "the demo's module, of which the browser test uses only `Options`"
)]
mod args;

use std::fs::{self, File};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde::Deserialize;
use serde_json::{Value, json};
use typed_sessions::SessionLayer;
use typed_sessions::stores::{CookieKey, RedisStore};
use typed_sessions_test_support::redis_server::RedisServer;
use typed_sessions_test_support::sql::{postgres_available, postgres_store, sqlite_store};

use args::{CookieMode, Options, StoreKind};

/// The longest one store's whole run may take.
const STORE_TIMEOUT: Duration = Duration::from_secs(45);
/// The longest any single wait may take: for chromedriver to listen, for
/// a page to show what it should, for a script or a page load.
const WAIT: Duration = Duration::from_secs(10);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);
/// The flags the issue gives for Chromium (plus a window size, for the
/// screenshot); `--user-data-dir` is added per test.
const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=900,1100",
];
/// The user who signs in: `<` and `&` must be shown as text, `ë` must
/// survive the form's encoding.
const USER: &str = "Zoë <admin> & co";

/// The stores run one at a time: two cores, and a browser each.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn memory_store_in_a_browser() {
    in_browser("memory", async |options| {
        let options = Options {
            store: StoreKind::Memory,
            ..options.clone()
        };
        options
            .session_layer(CookieKey::generate().unwrap())
            .expect("a memory store needs no connection")
            .unwrap()
    });
}

#[test]
fn cookie_store_private_in_a_browser() {
    in_browser("cookie-private", async |options| {
        let options = Options {
            store: StoreKind::Cookie(CookieMode::Private),
            ..options.clone()
        };
        options
            .session_layer(CookieKey::generate().unwrap())
            .expect("a cookie store needs no connection")
            .unwrap()
    });
}

#[test]
fn cookie_store_signed_in_a_browser() {
    in_browser("cookie-signed", async |options| {
        let options = Options {
            store: StoreKind::Cookie(CookieMode::Signed),
            ..options.clone()
        };
        options
            .session_layer(CookieKey::generate().unwrap())
            .expect("a cookie store needs no connection")
            .unwrap()
    });
}

#[test]
fn postgres_store_in_a_browser() {
    if !postgres_available() {
        return;
    }
    in_browser("postgres", async |options| {
        options.session_layer_over(postgres_store(None)).unwrap()
    });
}

#[test]
fn sqlite_store_in_a_browser() {
    in_browser("sqlite", async |options| {
        options.session_layer_over(sqlite_store(None)).unwrap()
    });
}

#[test]
fn redis_store_in_a_browser() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    in_browser("redis", async |options| {
        let store = RedisStore::open(&server.url())
            .await
            .expect("the test's redis-server answers");
        options.session_layer_over(store).unwrap()
    });
}

/// Runs the browser checks (see the module documentation) against the demo
/// served with the layer `make_layer` builds from the demo's default
/// options (a `Secure` cookie named `__Host-session`). `store` names the
/// screenshot and the messages. Skips (or, with `CI=true`, fails) without
/// Chromium.
///
/// Another store is one more test like the ones above.
fn in_browser(store: &str, make_layer: impl AsyncFnOnce(&Options) -> SessionLayer) {
    let Some(tools) = Tools::find(store) else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = Options::default();
        assert!(options.secure, "the demo's default cookie is Secure");
        let layer = make_layer(&options).await;
        let driver = Driver::start(&tools);
        tokio::time::timeout(STORE_TIMEOUT, browse(store, &options, layer, &driver))
            .await
            .unwrap_or_else(|_| panic!("[{store}] the browser run took over {STORE_TIMEOUT:?}"));
        drop(driver);
    });
    eprintln!(
        "browser [{store}]: passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// The checks.

/// What the demo's page shows, read in one script so that it is one
/// document's view.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct View {
    /// The counter.
    count: u64,
    /// The signed-in user (`None`: "Not signed in.").
    user: Option<String>,
    /// The cart's lines, as shown: SKU and quantity.
    cart: Vec<(String, u32)>,
    /// The session id's keyed hash in the footer; `None` while the page
    /// says that a new session starts with it.
    session: Option<String>,
    /// The form token (every form carries the same one).
    token: String,
}

/// The part of a [`View`] that the forms change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    count: u64,
    user: Option<String>,
    cart: Vec<(String, u32)>,
}

impl View {
    fn state(&self) -> State {
        State {
            count: self.count,
            user: self.user.clone(),
            cart: self.cart.clone(),
        }
    }
}

/// Reads the page, or `None` when it is not (yet) the demo's page.
const READ_VIEW: &str = r#"
const count = document.getElementById('count');
const account = document.querySelectorAll('section')[1];
const cart = document.querySelectorAll('section')[2];
const footer = document.querySelector('footer p');
const token = document.querySelector('input[name="csrf"]');
if (document.readyState !== 'complete' || !count || !account || !cart || !footer || !token) {
  return null;
}
const user = account.querySelector('p strong');
const code = footer.querySelector('code');
const signedOut = account.textContent.includes('Not signed in.');
if (!user && !signedOut) { return null; }
return {
  count: Number(count.textContent),
  user: user ? user.textContent : null,
  cart: Array.from(cart.querySelectorAll('tr'))
    .filter(row => row.querySelectorAll('td').length === 2)
    .map(row => { const cells = row.querySelectorAll('td');
                  return [cells[0].textContent, Number(cells[1].textContent)]; }),
  session: footer.textContent.startsWith('Session ') && code ? code.textContent : null,
  token: token.value,
};
"#;

/// Posts the logout form with `fetch`, not following the redirect, and
/// reports the answer's type and status.
const FETCH_LOGOUT: &str = r#"
const done = arguments[arguments.length - 1];
const form = document.querySelector('form[action="/logout"]');
if (!form) { done({error: 'no logout form on the page'}); return; }
fetch(form.action, {
  method: 'POST',
  body: new URLSearchParams(new FormData(form)),
  redirect: 'manual',
  credentials: 'same-origin',
}).then(
  answer => done({type: answer.type, status: answer.status}),
  error => done({error: String(error)}),
);
"#;

/// Serves the demo over `layer` on a loopback port and walks through it in
/// `driver`'s browser, checking each step.
async fn browse(store: &str, options: &Options, layer: SessionLayer, driver: &Driver) {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = AbortOnDrop(tokio::spawn(async move {
        axum::serve(listener, app::app(layer)).await
    }));
    let client = driver.client().await;
    let b = Browser {
        store,
        client: &client,
        cookie_name: options.cookie_name(),
        page_url: format!("http://localhost:{port}/"),
    };

    let started = b.first_views().await;
    let before_login_cookie = b.count(&started.id).await;
    let signed_in = b.log_in(&started, &before_login_cookie).await;
    let cart = b.fill_cart().await;
    let everything = State {
        count: 3,
        user: Some(USER.to_owned()),
        cart,
    };
    b.reload(&everything, &signed_in.id).await;
    save_screenshot(store, &client).await;
    b.scripts_cannot_read_the_cookie().await;
    b.log_out(&[&started.first_cookie, &signed_in.cookie]).await;

    client.close().await.unwrap();
    drop(server);
}

fn anonymous() -> State {
    State {
        count: 0,
        user: None,
        cart: Vec::new(),
    }
}

/// The anonymous session, after its first two views.
struct Anonymous {
    /// The cookie of the first view.
    first_cookie: String,
    /// The id the second view shows.
    id: String,
    /// The form token.
    token: String,
}

/// The signed-in session.
struct SignedIn {
    cookie: String,
    id: String,
}

/// The browser, as one store's run uses it.
struct Browser<'a> {
    store: &'a str,
    client: &'a Client,
    cookie_name: &'a str,
    page_url: String,
}

impl Browser<'_> {
    /// An anonymous first view, which starts a session with the cookie's
    /// attributes; a second view shows the id and changes no cookie.
    async fn first_views(&self) -> Anonymous {
        let (store, name) = (self.store, self.cookie_name);
        self.client.goto(&self.page_url).await.unwrap();
        let first = self.view_when("the first view", |v| v.count == 0).await;
        assert_eq!(first.state(), anonymous(), "[{store}] the first view");
        assert_eq!(
            first.session, None,
            "[{store}] the first view says a new session starts with it"
        );
        let Some(cookie) = self.session_cookie().await else {
            panic!(
                "[{store}] the browser kept no `{name}` cookie from http://localhost \
                 (a Secure cookie over plain http); the cookies it has: {:?}",
                self.cookie_names().await
            );
        };
        assert!(
            cookie.http_only() == Some(true),
            "[{store}] HttpOnly: {cookie:?}"
        );
        assert!(
            cookie.secure() == Some(true),
            "[{store}] Secure: {cookie:?}"
        );
        assert_eq!(
            cookie.same_site().map(|s| s.to_string()).as_deref(),
            Some("Lax"),
            "[{store}] SameSite: {cookie:?}"
        );
        assert_eq!(cookie.path(), Some("/"), "[{store}] Path: {cookie:?}");
        let first_cookie = cookie.value().to_owned();

        self.client.refresh().await.unwrap();
        let second = self
            .view_when("the second view", |v| v.session.is_some())
            .await;
        assert_eq!(second.state(), anonymous(), "[{store}] the second view");
        assert_eq!(
            second.token, first.token,
            "[{store}] the form token is kept"
        );
        assert_eq!(
            self.session_value().await.as_deref(),
            Some(first_cookie.as_str()),
            "[{store}] a read-only view changes no cookie"
        );
        Anonymous {
            first_cookie,
            id: second.session.unwrap(),
            token: second.token,
        }
    }

    /// The counter's forms count 1, 2, 3 with the same session id; the
    /// session cookie afterwards.
    async fn count(&self, id: &str) -> String {
        let store = self.store;
        for (button, expected) in [("/incr", 1), ("/atomic-incr", 2), ("/incr", 3)] {
            self.click(&format!(r#"form[action="{button}"] button"#))
                .await;
            let view = self
                .view_when(&format!("count {expected}"), |v| v.count == expected)
                .await;
            assert_eq!(
                view.state(),
                State {
                    count: expected,
                    ..anonymous()
                },
                "[{store}] after {button}"
            );
            assert_eq!(
                view.session.as_deref(),
                Some(id),
                "[{store}] counting keeps the session id"
            );
        }
        self.session_value().await.expect("the session cookie")
    }

    /// The login form: the page shows the user and the count, with a new
    /// id, a new cookie and a new form token.
    async fn log_in(&self, started: &Anonymous, cookie_before: &str) -> SignedIn {
        let store = self.store;
        let form = self.find(r#"form[action="/login"]"#).await;
        fill(&form, "user", USER).await;
        submit(&form).await;
        let view = self.view_when("signed in", |v| v.user.is_some()).await;
        assert_eq!(
            view.state(),
            State {
                count: 3,
                user: Some(USER.to_owned()),
                cart: Vec::new(),
            },
            "[{store}] after the login"
        );
        let id = view.session.expect("a session id on the page");
        assert_ne!(id, started.id, "[{store}] the page's id changes at login");
        assert_ne!(
            view.token, started.token,
            "[{store}] the form token changes at login"
        );
        let cookie = self.session_value().await.expect("the session cookie");
        assert_ne!(
            cookie, cookie_before,
            "[{store}] the cookie changes at login"
        );
        SignedIn { cookie, id }
    }

    /// The cart form adds two lines, shown in order; the cart.
    async fn fill_cart(&self) -> Vec<(String, u32)> {
        let mut cart = Vec::new();
        for (sku, qty) in [("BOOK-42", 2_u32), ("pen.blue", 1)] {
            let form = self.find(r#"form[action="/cart"]"#).await;
            fill(&form, "sku", sku).await;
            fill(&form, "qty", &qty.to_string()).await;
            submit(&form).await;
            cart.push((sku.to_owned(), qty));
            let lines = cart.len();
            let view = self
                .view_when(&format!("{lines} cart lines"), |v| v.cart.len() == lines)
                .await;
            assert_eq!(
                view.cart, cart,
                "[{}] the cart after adding {sku}",
                self.store
            );
        }
        cart
    }

    /// A reload shows it all, with the same id and cookie.
    async fn reload(&self, everything: &State, id: &str) {
        let store = self.store;
        let cookie_before = self.session_value().await;
        self.client.refresh().await.unwrap();
        let view = self
            .view_when("the reload", |v| v.state() == *everything)
            .await;
        assert_eq!(view.state(), *everything, "[{store}] after a reload");
        assert_eq!(
            view.session.as_deref(),
            Some(id),
            "[{store}] the id after a reload"
        );
        assert_eq!(
            self.session_value().await,
            cookie_before,
            "[{store}] a reload changes no cookie"
        );
    }

    /// `document.cookie` works (a cookie set by script shows up in it) and
    /// does not show the session cookie.
    async fn scripts_cannot_read_the_cookie(&self) {
        let (store, name) = (self.store, self.cookie_name);
        let seen = self
            .client
            .execute(
                "document.cookie = 'script_probe=visible; path=/; SameSite=Lax'; \
                 return document.cookie;",
                Vec::new(),
            )
            .await
            .unwrap();
        let seen = seen.as_str().expect("document.cookie is a string");
        assert!(
            seen.contains("script_probe=visible"),
            "[{store}] document.cookie works: {seen:?}"
        );
        assert!(
            !seen.contains(name),
            "[{store}] document.cookie shows the session cookie: {seen:?}"
        );
        assert!(
            self.session_value().await.is_some(),
            "[{store}] the session cookie is still there"
        );
    }

    /// The logout answers with a redirect, the browser drops the cookie
    /// (and keeps the script's), and the next view is anonymous again,
    /// with a cookie none of `old_cookies`.
    async fn log_out(&self, old_cookies: &[&String]) {
        let (store, name) = (self.store, self.cookie_name);
        let answer = self
            .client
            .execute_async(FETCH_LOGOUT, Vec::new())
            .await
            .unwrap();
        assert_eq!(
            answer,
            json!({"type": "opaqueredirect", "status": 0}),
            "[{store}] the logout answers with a redirect"
        );
        let names = self.cookie_names().await;
        assert!(
            !names.iter().any(|n| n == name),
            "[{store}] the browser still has `{name}` after the logout: {names:?}"
        );
        assert!(
            names.iter().any(|n| n == "script_probe"),
            "[{store}] the cookie API lists the other cookie: {names:?}"
        );
        self.client.goto(&self.page_url).await.unwrap();
        let view = self
            .view_when("after the logout", |v| v.user.is_none())
            .await;
        assert_eq!(view.state(), anonymous(), "[{store}] after the logout");
        assert_eq!(
            view.session, None,
            "[{store}] after the logout a new session starts"
        );
        let cookie = self.session_value().await.expect("a new session cookie");
        assert!(
            old_cookies.iter().all(|old| **old != cookie),
            "[{store}] the session after the logout is a new one"
        );
    }

    async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("[{}] no `{css}` on the page: {e}", self.store))
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// The page's view, once `ready` holds for it; panics after [`WAIT`]
    /// with the last view seen.
    async fn view_when(&self, what: &str, ready: impl Fn(&View) -> bool) -> View {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        loop {
            match self.client.execute(READ_VIEW, Vec::new()).await {
                Ok(Value::Null) => {}
                Ok(value) => {
                    let view: View = serde_json::from_value(value.clone())
                        .unwrap_or_else(|e| panic!("[{}] a view: {value}: {e}", self.store));
                    if ready(&view) {
                        return view;
                    }
                    last = Some(format!("{view:?}"));
                }
                // A page that is navigating away.
                Err(err) => last = Some(format!("error: {err}")),
            }
            assert!(
                Instant::now() < deadline,
                "[{}] {what}: not shown within {WAIT:?}; the page last showed {}",
                self.store,
                last.as_deref().unwrap_or("nothing of the demo's page"),
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The browser's session cookie for the page, through `WebDriver` (which
    /// sees `HttpOnly` cookies).
    async fn session_cookie(&self) -> Option<Cookie<'static>> {
        self.client
            .get_all_cookies()
            .await
            .unwrap()
            .into_iter()
            .find(|cookie| cookie.name() == self.cookie_name)
    }

    async fn session_value(&self) -> Option<String> {
        self.session_cookie()
            .await
            .map(|cookie| cookie.value().to_owned())
    }

    async fn cookie_names(&self) -> Vec<String> {
        self.client
            .get_all_cookies()
            .await
            .unwrap()
            .iter()
            .map(|cookie| cookie.name().to_owned())
            .collect()
    }
}

/// Replaces the value of the form's input `name` with `text`, typed.
async fn fill(form: &Element, name: &str, text: &str) {
    let input = form
        .find(Locator::Css(&format!(r#"input[name="{name}"]"#)))
        .await
        .unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

/// Clicks the form's submit button.
async fn submit(form: &Element) {
    form.find(Locator::Css(r#"button[type="submit"]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Saves the page as `<target>/browser/<store>.png` and checks it is a
/// PNG.
async fn save_screenshot(store: &str, client: &Client) {
    let png = client.screenshot().await.unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "[{store}] the screenshot is a PNG of {} bytes",
        png.len()
    );
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    let dir = target.join("browser");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{store}.png"));
    fs::write(&path, &png).unwrap();
    eprintln!("browser [{store}]: screenshot {}", path.display());
}

/// Aborts the demo's server task when the run ends, also on a failure.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// ---------------------------------------------------------------------------
// Chromium and chromedriver.

/// The browser and its `WebDriver`, found on `PATH`.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Tools {
    /// Both binaries, or `None` after a loud `SKIPPED` line; with
    /// `CI=true`, a missing one is a failure.
    fn find(store: &str) -> Option<Self> {
        let chromium = on_path("chromium");
        let chromedriver = on_path("chromedriver");
        if let (Some(chromium), Some(chromedriver)) = (&chromium, &chromedriver) {
            return Some(Self {
                chromium: chromium.clone(),
                chromedriver: chromedriver.clone(),
            });
        }
        let missing: Vec<&str> = [("chromium", &chromium), ("chromedriver", &chromedriver)]
            .into_iter()
            .filter(|(_, found)| found.is_none())
            .map(|(name, _)| name)
            .collect();
        let message = format!(
            "{} not on PATH; install Debian's chromium and chromium-driver \
             (.ci/install-chromium) to run the browser tests",
            missing.join(" and ")
        );
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "browser [{store}]: {message}. CI=true, so the browser tests must run: \
             .ci/run installs Chromium before the tests"
        );
        // Straight to stderr: the harness captures `eprintln!` of passing tests.
        let bar = "*".repeat(78);
        let _ = writeln!(
            io::stderr().lock(),
            "\n{bar}\nSKIPPED: {message} (browser [{store}])\n{bar}\n"
        );
        None
    }
}

/// The first executable file called `name` in a directory of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|file| {
            fs::metadata(file)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// A `chromedriver` on a free loopback port, in a process group of its own
/// with the Chromium it starts, and a fresh directory for the browser's
/// profile and the driver's log. Dropping it kills the whole group and
/// removes the directory. (Chromium's crash handler,
/// `chrome_crashpad_handler`, leaves the group; it exits by itself, within
/// a second or two, once the browser is gone.)
struct Driver {
    child: Child,
    port: u16,
    dir: PathBuf,
    chromium: PathBuf,
}

impl Driver {
    /// Starts chromedriver and waits (at most [`WAIT`]) until it listens;
    /// a port lost to another process between choosing and binding is
    /// retried with a new one.
    fn start(tools: &Tools) -> Self {
        let dir = fresh_dir();
        for _ in 0..3 {
            let port = free_port();
            let log = File::create(dir.join("chromedriver.log")).unwrap();
            let child = Command::new(&tools.chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", tools.chromedriver.display()));
            let mut driver = Self {
                child,
                port,
                dir: dir.clone(),
                chromium: tools.chromium.clone(),
            };
            if driver.wait_listening() {
                return driver;
            }
            driver.kill();
        }
        let log = fs::read_to_string(dir.join("chromedriver.log")).unwrap_or_default();
        let _ = fs::remove_dir_all(&dir);
        panic!("chromedriver did not start listening within {WAIT:?}; its log:\n{log}");
    }

    /// Whether chromedriver accepts connections on its port before [`WAIT`]
    /// ends (and before it exits).
    fn wait_listening(&mut self) -> bool {
        let deadline = Instant::now() + WAIT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, POLL).is_ok() {
                return true;
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            std::thread::sleep(POLL);
        }
        false
    }

    /// A `WebDriver` session with a new headless Chromium on a fresh profile.
    async fn client(&self) -> Client {
        let profile = self.dir.join("profile");
        fs::create_dir_all(&profile).unwrap();
        let mut chrome_args: Vec<String> = CHROMIUM_FLAGS.iter().map(|&f| f.to_owned()).collect();
        chrome_args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium.display().to_string(),
                "args": chrome_args,
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "a WebDriver session with Chromium: {e}; chromedriver's log:\n{}",
                    self.log_tail()
                )
            });
        client
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                Some(WAIT),
                Some(WAIT),
                Some(Duration::ZERO),
            ))
            .await
            .unwrap();
        client
    }

    /// The last lines of chromedriver's log.
    fn log_tail(&self) -> String {
        let Ok(mut file) = File::open(self.dir.join("chromedriver.log")) else {
            return String::new();
        };
        let len = file.metadata().map_or(0, |m| m.len());
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(4000)));
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        text
    }

    /// SIGKILL to the whole process group (chromedriver and every Chromium
    /// process it started), then reaps chromedriver.
    fn kill(&mut self) {
        // The group's id is chromedriver's pid (`process_group(0)`); a
        // negative pid names the group. (No `--`: dash's `kill` refuses it.)
        let group = self.child.id();
        let killed = Command::new("sh")
            .args(["-c", r#"kill -KILL "-$1""#, "sh"])
            .arg(group.to_string())
            .stdin(Stdio::null())
            .status();
        if !killed.as_ref().is_ok_and(std::process::ExitStatus::success) {
            // Not a panic: this runs in `Drop`, maybe during one.
            eprintln!(
                "WARNING: could not kill chromedriver's process group {group} ({killed:?}): \
                 Chromium may still be running"
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("chromedriver's log (last lines):\n{}", self.log_tail());
        }
        self.kill();
        // Chromium's last processes may still be exiting: retry briefly.
        for _ in 0..20 {
            if fs::remove_dir_all(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(POLL);
        }
    }
}

fn free_port() -> u16 {
    StdListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port on 127.0.0.1")
}

/// A new, empty directory under the system's temporary directory.
fn fresh_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "typed-sessions-browser-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
    ));
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}
