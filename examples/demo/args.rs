//! The demo's command line, parsed by hand (no argument-parsing crate).
//!
//! Every rule here is tested (in `tests.rs`) without starting a process.
//!
//! # The cookie name
//!
//! With a `Secure` cookie (the default) the session cookie is named
//! [`SECURE_COOKIE_NAME`], `__Host-session`. Browsers accept a `__Host-`
//! cookie only from the host itself, with `Secure`, `Path=/` and no
//! `Domain`, so a sibling subdomain (`evil.example.com` next to
//! `demo.example.com`) cannot plant one: it cannot toss in a session of its
//! own, with a form token it knows, to sign the victim in to the attacker's
//! account or fixate the token. A cookie it does plant under another name
//! (`session`, with `Domain=example.com`) is not the demo's and is ignored.
//!
//! `--insecure` (plain http development) names it [`INSECURE_COOKIE_NAME`],
//! `session`, instead: browsers refuse a `__Host-` cookie without `Secure`.
//! That cookie has no such protection; use `--insecure` on a development
//! host only.

use std::ffi::OsString;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use typed_sessions::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use typed_sessions::stores::{
    CookieKey, CookieStore, MemoryStore, PostgresStore, RedisStore, SessionBackend, SqliteStore,
};

/// The Redis server `--store redis` uses unless `--redis-url` says otherwise.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// The PostgreSQL database `--store postgres` uses unless `--database-url`
/// says otherwise.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The SQLite file `--store sqlite` uses unless `--sqlite-path` says otherwise.
pub const DEFAULT_SQLITE_PATH: &str = "demo-sessions.db";
use typed_sessions::{ConfigError, SessionLayer};

/// Where the demo listens unless `--addr` says otherwise.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 3000);

/// The longest timeout accepted: 400 days, the longest cookie lifetime
/// browsers keep (RFC 6265bis caps `Max-Age` there).
pub const MAX_TIMEOUT_SECS: u64 = 400 * 24 * 60 * 60;

/// How many sessions the `MemoryStore` keeps unless `--max-sessions` says
/// otherwise.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

/// The session cookie's name when it is `Secure` (the default): the
/// `__Host-` prefix keeps sibling subdomains from planting it.
pub const SECURE_COOKIE_NAME: &str = "__Host-session";

/// The session cookie's name with `--insecure`: browsers refuse a `__Host-`
/// cookie without `Secure`, so it is the library's default name.
pub const INSECURE_COOKIE_NAME: &str = "session";

/// The environment variable that holds the cookie store's key (hex or
/// base64, at least 32 bytes), read with `--store cookie`.
pub const KEY_ENV: &str = "SESSION_KEY";

/// The exit code for a command line that cannot be used.
pub const USAGE_EXIT_CODE: u8 = 2;

/// The text `--help` prints.
pub const USAGE: &str = "\
typed-sessions demo: a counter, a login and a cart, each a typed session namespace

USAGE:
    cargo run --example demo -- [OPTIONS]

OPTIONS:
    --addr HOST:PORT          where to listen; HOST is an IP address or localhost
                              (default 127.0.0.1:3000; port 0 picks a free port)
    --store KIND              where sessions live: memory (default), cookie (the
                              whole session sealed in the cookie, no server state),
                              redis (shared by every instance of the app), postgres
                              (in PostgreSQL), or sqlite (in a file that survives
                              restarts, no server needed)
    --cookie-mode MODE        with --store cookie: private (default; AES-256-GCM, the
                              browser cannot read the session) or signed
                              (HMAC-SHA256, readable but tamper-proof)
    --redis-url URL           with --store redis: the server (default
                              redis://127.0.0.1:6379/)
    --redis-cluster URLS      with --store redis: a Redis Cluster, as comma-separated
                              node URLs (any of its nodes; the rest is discovered)
    --database-url URL        with --store postgres: the database (default
                              postgres://postgres@127.0.0.1:5432/postgres); the demo
                              creates its tables there (typed_sessions*)
    --sqlite-path PATH        with --store sqlite: the database file, created when
                              missing (default demo-sessions.db)
    --idle-timeout SECS       end a session after SECS seconds without a request
    --absolute-timeout SECS   end a session SECS seconds after it began, however active
    --max-sessions N          keep at most about N sessions in memory (default 100000);
                              when full, the session nearest its deadline is evicted
                              (the bound is per shard, N/32 each, so at least 32)
    --insecure                leave the Secure flag off the cookie, for plain http
                              on a host other than localhost. The cookie is then
                              named `session` instead of `__Host-session` (browsers
                              refuse the __Host- prefix without Secure), so a sibling
                              subdomain can plant one: for development only
    -h, --help                print this help

Without a timeout the cookie lasts until the browser closes. With --store
cookie the absolute timeout defaults to 24 hours (a copied cookie cannot be
revoked), so the cookie carries Max-Age and lasts at most that long.

With --store redis, start a server first, e.g. `redis-server --port 6379`
(Debian/Ubuntu: `apt-get install redis-server`); sessions then survive a
restart of the demo and are shared by every demo pointed at that server.

ENVIRONMENT:
    SESSION_KEY               with --store cookie: the key that seals the cookies,
                              at least 32 bytes as hex or base64 (make one with
                              `openssl rand -hex 32`). Without it the demo makes a
                              random key and warns: sessions then do not survive a
                              restart
    RUST_LOG                  log filter (default `info`)
";

/// Which session store to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// `MemoryStore`: sessions live in this process and vanish when it exits.
    Memory,
    /// `CookieStore`: sessions live, sealed, in the browser's cookie.
    Cookie(CookieMode),
    /// `RedisStore`: sessions live in Redis, shared by every instance.
    Redis(RedisTarget),
    /// `PostgresStore`: sessions live in PostgreSQL, at this URL.
    Postgres(String),
    /// `SqliteStore`: sessions live in this SQLite file.
    Sqlite(std::path::PathBuf),
}

/// Where `--store redis` connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server (`--redis-url`).
    Server(String),
    /// A Redis Cluster (`--redis-cluster`), through these nodes.
    Cluster(Vec<String>),
}

/// How `--store cookie` seals the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieMode {
    /// AES-256-GCM: unreadable by the browser (the default).
    Private,
    /// HMAC-SHA256: readable, not changeable.
    Signed,
}

/// Where the cookie store's key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The [`KEY_ENV`] environment variable.
    Environment,
    /// Generated at start-up: sessions do not survive a restart.
    Generated,
}

/// The cookie store's key from the value of [`KEY_ENV`] (hex or base64),
/// or a fresh random one when the variable is unset.
///
/// # Errors
/// An [`ArgError`] when the variable is set but is not hex or base64 (a
/// typo must not silently become a random key). Its length is checked when
/// the layer is built.
pub fn cookie_key(env_value: Option<&str>) -> Result<(CookieKey, KeyOrigin), ArgError> {
    match env_value {
        Some(text) => CookieKey::parse(text)
            .map(|key| (key, KeyOrigin::Environment))
            .map_err(|_| {
                ArgError::new(format!(
                    "`{KEY_ENV}` is neither hex nor base64; make a key with `openssl rand -hex 32`"
                ))
            }),
        None => CookieKey::generate()
            .map(|key| (key, KeyOrigin::Generated))
            .map_err(|err| ArgError::new(format!("cannot generate a key: {err}"))),
    }
}

/// What the demo was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve with these options.
    Run(Options),
    /// Print [`USAGE`] and exit successfully.
    Help,
}

/// The options of a `Run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The address to listen on.
    pub addr: SocketAddr,
    /// The session store.
    pub store: StoreKind,
    /// `--idle-timeout`.
    pub idle_timeout: Option<Duration>,
    /// `--absolute-timeout`.
    pub absolute_timeout: Option<Duration>,
    /// Whether the cookie carries `Secure` (off with `--insecure`).
    pub secure: bool,
    /// `--max-sessions`: the capacity of the `MemoryStore`.
    pub max_sessions: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            addr: DEFAULT_ADDR,
            store: StoreKind::Memory,
            idle_timeout: None,
            absolute_timeout: None,
            secure: true,
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }
}

impl Options {
    /// The session layer these options describe; `cookie_key` seals the
    /// cookies with `--store cookie` (see [`cookie_key`]), and is ignored
    /// otherwise. With `--store redis` this connects to Redis first (use
    /// [`Options::redis_store`] and [`Options::session_layer_over`]); here
    /// it is `None`.
    ///
    /// # Errors
    /// The layer's [`ConfigError`]: a cookie key shorter than 32 bytes; the
    /// parser already rules out the other values that would cause one.
    pub fn session_layer(
        &self,
        cookie_key: CookieKey,
    ) -> Option<Result<SessionLayer, ConfigError>> {
        Some(match &self.store {
            // Bounded: every page view that starts a session (the form token
            // does) costs memory, so an unbounded store would grow with
            // every client that never sends its cookie back.
            StoreKind::Memory => {
                self.session_layer_over(MemoryStore::builder().capacity(self.max_sessions).build())
            }
            StoreKind::Cookie(CookieMode::Private) => {
                self.session_layer_over(CookieStore::private(cookie_key))
            }
            StoreKind::Cookie(CookieMode::Signed) => {
                self.session_layer_over(CookieStore::signed(cookie_key))
            }
            StoreKind::Redis(_) | StoreKind::Postgres(_) | StoreKind::Sqlite(_) => return None,
        })
    }

    /// Connects to the database of `--store postgres` or `--store sqlite`
    /// (creating the tables, or the file, when missing) and builds the
    /// layer over it; `None` for the other stores.
    ///
    /// # Errors
    /// A message naming the database when it cannot be used.
    pub async fn sql_layer(&self) -> Option<Result<SessionLayer, String>> {
        let layer = match &self.store {
            StoreKind::Postgres(url) => {
                let store = async {
                    // The server gives up on a lock or statement a little
                    // before the store's 5 s bound (PostgresStore's docs).
                    let options = url
                        .parse::<PgConnectOptions>()
                        .map_err(|err| err.to_string())?
                        .options([("lock_timeout", "4s"), ("statement_timeout", "4s")]);
                    let pool = PgPoolOptions::new()
                        .acquire_timeout(Duration::from_secs(5))
                        .connect_with(options)
                        .await
                        .map_err(|err| err.to_string())?;
                    let store = PostgresStore::new(pool);
                    store
                        .migrate()
                        .await
                        .map_err(|err| format!("{err}{}", source_text(&err)))?;
                    Ok::<_, String>(store)
                }
                .await
                .map_err(|err| {
                    format!(
                        "cannot use PostgreSQL at {}: {err}. Is it running?",
                        without_password(url)
                    )
                });
                store.map(|store| self.session_layer_over(store))
            }
            StoreKind::Sqlite(path) => SqliteStore::open(path)
                .await
                .map_err(|err| format!("{err}{}", source_text(&err)))
                .map(|store| self.session_layer_over(store)),
            _ => return None,
        };
        Some(layer.and_then(|layer| layer.map_err(|err| err.to_string())))
    }

    /// Connects to the Redis server or cluster of `--store redis`; `None`
    /// for the other stores.
    ///
    /// # Errors
    /// A message naming the URL when Redis cannot be reached.
    pub async fn redis_store(&self) -> Option<Result<RedisStore, String>> {
        let StoreKind::Redis(target) = &self.store else {
            return None;
        };
        Some(match target {
            RedisTarget::Server(url) => RedisStore::open(url).await.map_err(|err| {
                format!(
                    "cannot use Redis at {url}: {err}{}. Is it running? Start one with \
                     `redis-server --port {}`",
                    source_text(&err),
                    url_port(url)
                )
            }),
            RedisTarget::Cluster(urls) => RedisStore::open_cluster(urls).await.map_err(|err| {
                format!(
                    "cannot use the Redis Cluster at {}: {err}{}",
                    urls.join(","),
                    source_text(&err)
                )
            }),
        })
    }

    /// The session layer these options describe, over `store` instead of
    /// the one `--store` and `--max-sessions` describe (the tests use it to
    /// look into the store).
    ///
    /// # Errors
    /// As [`Options::session_layer`].
    pub fn session_layer_over<S: SessionBackend>(
        &self,
        store: S,
    ) -> Result<SessionLayer, ConfigError> {
        let mut builder = SessionLayer::builder(store)
            .secure(self.secure)
            .cookie_name(self.cookie_name());
        if let Some(idle) = self.idle_timeout {
            builder = builder.idle_timeout(idle);
        }
        if let Some(absolute) = self.absolute_timeout {
            builder = builder.absolute_timeout(absolute);
        }
        builder.build()
    }

    /// The session cookie's name: [`SECURE_COOKIE_NAME`] when the cookie is
    /// `Secure`, [`INSECURE_COOKIE_NAME`] with `--insecure` (see the module
    /// documentation).
    pub fn cookie_name(&self) -> &'static str {
        if self.secure {
            SECURE_COOKIE_NAME
        } else {
            INSECURE_COOKIE_NAME
        }
    }
}

/// A command line that cannot be used; the process should print it and
/// exit with [`USAGE_EXIT_CODE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(String);

impl ArgError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The message, without a trailing newline.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// Parses the arguments that follow the program name.
///
/// `--help` (or `-h`) anywhere wins over everything else. Options take their
/// value as the next argument or after `=` (`--addr=127.0.0.1:8080`); each
/// may be given once.
///
/// # Errors
/// An [`ArgError`] naming the offending argument and what was expected.
#[allow(clippy::too_many_lines, reason = "one short arm per option")]
pub fn parse<I>(args: I) -> Result<Command, ArgError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let args = utf8_args(args)?;
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        return Ok(Command::Help);
    }

    let mut addr = None;
    let mut store = None;
    let mut idle_timeout = None;
    let mut absolute_timeout = None;
    let mut max_sessions = None;
    let mut cookie_mode = None;
    let mut redis_url = None;
    let mut redis_cluster = None;
    let mut database_url = None;
    let mut sqlite_path = None;
    let mut insecure = false;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        match name.as_str() {
            "--insecure" => {
                if inline.is_some() {
                    return Err(ArgError::new("`--insecure` takes no value"));
                }
                once(&name, insecure)?;
                insecure = true;
            }
            "--addr" => {
                once(&name, addr.is_some())?;
                let value = value(&name, "HOST:PORT", inline, &mut args)?;
                addr = Some(parse_addr(&value)?);
            }
            "--store" => {
                once(&name, store.is_some())?;
                let value = value(&name, "KIND", inline, &mut args)?;
                store = Some(parse_store(&value)?);
            }
            "--cookie-mode" => {
                once(&name, cookie_mode.is_some())?;
                let value = value(&name, "MODE", inline, &mut args)?;
                cookie_mode = Some(parse_cookie_mode(&value)?);
            }
            "--redis-url" => {
                once(&name, redis_url.is_some())?;
                let value = value(&name, "URL", inline, &mut args)?;
                redis_url = Some(parse_redis_url(&name, &value)?);
            }
            "--redis-cluster" => {
                once(&name, redis_cluster.is_some())?;
                let value = value(&name, "URLS", inline, &mut args)?;
                redis_cluster = Some(parse_redis_urls(&name, &value)?);
            }
            "--database-url" => {
                once(&name, database_url.is_some())?;
                database_url = Some(parse_database_url(&value(
                    &name, "URL", inline, &mut args,
                )?)?);
            }
            "--sqlite-path" => {
                once(&name, sqlite_path.is_some())?;
                let value = value(&name, "PATH", inline, &mut args)?;
                sqlite_path = Some(std::path::PathBuf::from(value));
            }
            "--idle-timeout" => {
                once(&name, idle_timeout.is_some())?;
                let value = value(&name, "SECS", inline, &mut args)?;
                idle_timeout = Some(parse_secs(&name, &value)?);
            }
            "--absolute-timeout" => {
                once(&name, absolute_timeout.is_some())?;
                let value = value(&name, "SECS", inline, &mut args)?;
                absolute_timeout = Some(parse_secs(&name, &value)?);
            }
            "--max-sessions" => {
                once(&name, max_sessions.is_some())?;
                let value = value(&name, "N", inline, &mut args)?;
                max_sessions = Some(parse_max_sessions(&value)?);
            }
            other if other.starts_with('-') => {
                return Err(ArgError::new(format!("unknown option `{other}`")));
            }
            other => {
                return Err(ArgError::new(format!(
                    "unexpected argument `{other}`: the demo takes options only"
                )));
            }
        }
    }

    let defaults = Options::default();
    let store = resolve_store(
        store.unwrap_or(defaults.store),
        cookie_mode,
        redis_url,
        redis_cluster,
    )?;
    let store = resolve_sql(store, database_url, sqlite_path)?;
    if max_sessions.is_some() && store != StoreKind::Memory {
        return Err(ArgError::new(MAX_SESSIONS_MEMORY_ONLY));
    }
    Ok(Command::Run(Options {
        addr: addr.unwrap_or(defaults.addr),
        store,
        idle_timeout,
        absolute_timeout,
        secure: !insecure,
        max_sessions: max_sessions.unwrap_or(defaults.max_sessions),
    }))
}

const MAX_SESSIONS_MEMORY_ONLY: &str = "`--max-sessions` applies to `--store memory` only: the other stores keep no sessions in this process";

/// The arguments as text.
fn utf8_args<I>(args: I) -> Result<Vec<String>, ArgError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    args.into_iter()
        .map(|arg| {
            arg.into().into_string().map_err(|bad| {
                ArgError::new(format!("argument `{}` is not valid UTF-8", bad.display()))
            })
        })
        .collect()
}

/// The store from `--store` and the options that refine it.
fn resolve_store(
    store: StoreKind,
    cookie_mode: Option<CookieMode>,
    redis_url: Option<String>,
    redis_cluster: Option<Vec<String>>,
) -> Result<StoreKind, ArgError> {
    let store = match (store, cookie_mode) {
        (StoreKind::Cookie(_), Some(mode)) => StoreKind::Cookie(mode),
        (_, Some(_)) => {
            return Err(ArgError::new(
                "`--cookie-mode` applies to `--store cookie` only",
            ));
        }
        (store, None) => store,
    };
    Ok(match (store, redis_url, redis_cluster) {
        (StoreKind::Redis(_), Some(_), Some(_)) => {
            return Err(ArgError::new(
                "give `--redis-url` or `--redis-cluster`, not both",
            ));
        }
        (StoreKind::Redis(_), _, Some(urls)) => StoreKind::Redis(RedisTarget::Cluster(urls)),
        (StoreKind::Redis(_), Some(url), None) => StoreKind::Redis(RedisTarget::Server(url)),
        (store, None, None) => store,
        _ => {
            return Err(ArgError::new(
                "`--redis-url` and `--redis-cluster` apply to `--store redis` only",
            ));
        }
    })
}

/// The SQL store from `--store` and its `--database-url` or `--sqlite-path`.
fn resolve_sql(
    store: StoreKind,
    database_url: Option<String>,
    sqlite_path: Option<std::path::PathBuf>,
) -> Result<StoreKind, ArgError> {
    match (store, database_url, sqlite_path) {
        (StoreKind::Postgres(_), Some(url), None) => Ok(StoreKind::Postgres(url)),
        (StoreKind::Sqlite(_), None, Some(path)) => Ok(StoreKind::Sqlite(path)),
        (store, None, None) => Ok(store),
        (_, Some(_), _) => Err(ArgError::new(
            "`--database-url` applies to `--store postgres` only",
        )),
        (_, None, Some(_)) => Err(ArgError::new(
            "`--sqlite-path` applies to `--store sqlite` only",
        )),
    }
}

fn parse_database_url(value: &str) -> Result<String, ArgError> {
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        Ok(value.to_owned())
    } else {
        // Not echoed: a malformed URL may still hold a password.
        Err(ArgError::new(format!(
            "invalid `--database-url` value: expected a URL like {DEFAULT_DATABASE_URL}"
        )))
    }
}

/// A database URL fit for messages: a password in the user part replaced
/// by `…`, and the query string (which may hold `password=`) left out.
pub fn without_password(url: &str) -> String {
    let url = url.split_once('?').map_or(url, |(base, _)| base);
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') { ":…" } else { "" };
            format!("{}://{user}{hidden}@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The port of a `redis://host:port/…` URL, 6379 when it names none.
fn url_port(url: &str) -> u16 {
    url.split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
        .and_then(|authority| authority.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(6379)
}

/// `: <source>` of a store error, or nothing.
fn source_text(err: &(dyn std::error::Error + 'static)) -> String {
    err.source()
        .map(|source| format!(": {source}"))
        .unwrap_or_default()
}

fn once(name: &str, seen: bool) -> Result<(), ArgError> {
    if seen {
        Err(ArgError::new(format!("`{name}` is given more than once")))
    } else {
        Ok(())
    }
}

/// The value of option `name`: after `=`, or the next argument unless that
/// is another option.
fn value(
    name: &str,
    placeholder: &str,
    inline: Option<String>,
    rest: &mut impl Iterator<Item = String>,
) -> Result<String, ArgError> {
    let missing = || ArgError::new(format!("`{name}` needs a value: {name} {placeholder}"));
    let value = match inline {
        Some(value) => value,
        None => rest.next().ok_or_else(missing)?,
    };
    if value.is_empty() || value.starts_with("--") {
        return Err(missing());
    }
    Ok(value)
}

fn parse_addr(value: &str) -> Result<SocketAddr, ArgError> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    // The one host name worth accepting without a resolver.
    if let Some(port) = value.strip_prefix("localhost:")
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    }
    Err(ArgError::new(format!(
        "invalid `--addr` value `{value}`: expected HOST:PORT with an IP address or localhost, e.g. 127.0.0.1:3000 or [::1]:3000"
    )))
}

fn parse_store(value: &str) -> Result<StoreKind, ArgError> {
    match value {
        "memory" => Ok(StoreKind::Memory),
        "cookie" => Ok(StoreKind::Cookie(CookieMode::Private)),
        "redis" => Ok(StoreKind::Redis(RedisTarget::Server(
            DEFAULT_REDIS_URL.to_owned(),
        ))),
        "postgres" => Ok(StoreKind::Postgres(DEFAULT_DATABASE_URL.to_owned())),
        "sqlite" => Ok(StoreKind::Sqlite(DEFAULT_SQLITE_PATH.into())),
        other => Err(ArgError::new(format!(
            "unknown store `{other}`: expected `memory`, `cookie`, `redis`, `postgres` or `sqlite`"
        ))),
    }
}

fn parse_redis_urls(name: &str, value: &str) -> Result<Vec<String>, ArgError> {
    value
        .split(',')
        .map(|url| parse_redis_url(name, url.trim()))
        .collect()
}

fn parse_redis_url(name: &str, value: &str) -> Result<String, ArgError> {
    if value.starts_with("redis://") || value.starts_with("rediss://") {
        Ok(value.to_owned())
    } else {
        Err(ArgError::new(format!(
            "invalid `{name}` value `{value}`: expected a URL like redis://127.0.0.1:6379/"
        )))
    }
}

fn parse_cookie_mode(value: &str) -> Result<CookieMode, ArgError> {
    match value {
        "private" => Ok(CookieMode::Private),
        "signed" => Ok(CookieMode::Signed),
        other => Err(ArgError::new(format!(
            "unknown cookie mode `{other}`: expected `private` or `signed`"
        ))),
    }
}

fn parse_secs(name: &str, value: &str) -> Result<Duration, ArgError> {
    let secs: u64 = value.parse().map_err(|_| {
        ArgError::new(format!(
            "invalid `{name}` value `{value}`: expected whole seconds, e.g. {name} 1800"
        ))
    })?;
    if secs == 0 {
        return Err(ArgError::new(format!(
            "invalid `{name}` value `0`: a timeout must be at least 1 second (leave the option out for none)"
        )));
    }
    if secs > MAX_TIMEOUT_SECS {
        return Err(ArgError::new(format!(
            "invalid `{name}` value `{value}`: at most {MAX_TIMEOUT_SECS} seconds (400 days, the longest cookie lifetime browsers keep)"
        )));
    }
    Ok(Duration::from_secs(secs))
}

fn parse_max_sessions(value: &str) -> Result<usize, ArgError> {
    let max: usize = value.parse().map_err(|_| {
        ArgError::new(format!(
            "invalid `--max-sessions` value `{value}`: expected a whole number, e.g. --max-sessions 10000"
        ))
    })?;
    if max == 0 {
        return Err(ArgError::new(
            "invalid `--max-sessions` value `0`: the store must hold at least 1 session",
        ));
    }
    Ok(max)
}
