//! The typed-sessions demo: a counter, a login and a cart, each its own
//! typed session namespace, as an HTML page and a JSON API.
//!
//! ```text
//! cargo run --example demo                      # http://127.0.0.1:3000/
//! cargo run --example demo -- --help
//! cargo run --example demo -- --addr 127.0.0.1:8080 --idle-timeout 1800 --insecure
//! cargo run --example demo -- --max-sessions 10000
//! cargo run --example demo -- --store redis --redis-url redis://127.0.0.1:6379/
//! ```
//!
//! The session cookie is `Secure` and named `__Host-session`, which a
//! sibling subdomain cannot plant in a visitor's browser (see `args.rs`).
//! `--insecure`, for plain http on a development host, drops `Secure`, and
//! with it the `__Host-` prefix, which browsers refuse without `Secure`: the
//! cookie is then named `session`, and a sibling subdomain can plant one.
//!
//! Drive the API with curl and a cookie jar (curl sends no `Origin`
//! header; a browser request whose `Origin` names another site gets 403).
//! Start the demo with `--insecure` for this: curl may not keep a `Secure`
//! cookie that came over plain http.
//!
//! ```text
//! cargo run --example demo -- --insecure
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/api/counter/incr
//! curl -c jar -b jar -X POST -H 'content-type: application/json' \
//!      -d '{"user":"alice"}' http://127.0.0.1:3000/api/login
//! curl -c jar -b jar http://127.0.0.1:3000/api/session
//! ```
//!
//! Set `RUST_LOG` (default `info`) to see what the session layer logs.

pub mod app;
pub mod args;
#[cfg(test)]
mod tests;

use std::process::ExitCode;

use args::{Command, CookieMode, KeyOrigin, RedisTarget, StoreKind};

fn main() -> ExitCode {
    let options = match args::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("demo: {err}\nRun with --help for usage.");
            return ExitCode::from(args::USAGE_EXIT_CODE);
        }
    };
    let env_key = match std::env::var(args::KEY_ENV) {
        Ok(value) => Some(value),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            eprintln!("demo: `{}` is not valid UTF-8", args::KEY_ENV);
            return ExitCode::from(args::USAGE_EXIT_CODE);
        }
    };
    // Read (or made) only for the cookie store; the others need none.
    let (cookie_key, key_origin) = match &options.store {
        StoreKind::Memory | StoreKind::Redis(_) | StoreKind::Postgres(_) | StoreKind::Sqlite(_) => {
            match typed_sessions::stores::CookieKey::generate() {
                Ok(key) => (key, None),
                Err(err) => {
                    eprintln!("demo: {err}");
                    return ExitCode::FAILURE;
                }
            }
        }
        StoreKind::Cookie(_) => match args::cookie_key(env_key.as_deref()) {
            Ok((key, origin)) => (key, Some(origin)),
            Err(err) => {
                eprintln!("demo: {err}");
                return ExitCode::from(args::USAGE_EXIT_CODE);
            }
        },
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("demo: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // The Redis and SQL stores connect first (and fail fast when their
        // server or file is not there).
        let sql = match options.sql_layer().await {
            Some(Ok(layer)) => Some(layer),
            Some(Err(message)) => {
                eprintln!("demo: {message}");
                return ExitCode::FAILURE;
            }
            None => None,
        };
        let layer = match options.redis_store().await {
            _ if sql.is_some() => Ok(sql.expect("checked")),
            Some(Ok(store)) => options.session_layer_over(store),
            Some(Err(message)) => {
                eprintln!("demo: {message}");
                return ExitCode::FAILURE;
            }
            None => {
                let Some(layer) = options.session_layer(cookie_key) else {
                    eprintln!("demo: this store needs a connection");
                    return ExitCode::FAILURE;
                };
                layer
            }
        };
        let layer = match layer {
            Ok(layer) => layer,
            Err(err) => {
                eprintln!("demo: invalid session configuration: {err}");
                return ExitCode::from(args::USAGE_EXIT_CODE);
            }
        };
        serve(options, layer, key_origin).await
    })
}

async fn serve(
    options: args::Options,
    layer: typed_sessions::SessionLayer,
    key_origin: Option<KeyOrigin>,
) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(options.addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("demo: cannot listen on {}: {err}", options.addr);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(options.addr);
    let store = match &options.store {
        StoreKind::Memory => format!(
            "store: memory, at most about {} sessions",
            options.max_sessions
        ),
        StoreKind::Cookie(CookieMode::Private) => "store: cookie, private".to_owned(),
        StoreKind::Cookie(CookieMode::Signed) => "store: cookie, signed".to_owned(),
        StoreKind::Redis(RedisTarget::Server(url)) => format!("store: redis at {url}"),
        StoreKind::Postgres(url) => format!("store: postgres at {}", args::without_password(url)),
        StoreKind::Sqlite(path) => format!("store: sqlite at {}", path.display()),
        StoreKind::Redis(RedisTarget::Cluster(urls)) => {
            format!("store: redis cluster at {}", urls.join(","))
        }
    };
    println!("typed-sessions demo listening on http://{addr}/ ({store}; Ctrl-C to stop)");
    if key_origin == Some(KeyOrigin::Generated) {
        println!(
            "warning: `{}` is not set: the cookies are sealed with a random key made at \
             start-up, so sessions will not survive a restart. Set it to a key of at least \
             32 bytes in hex or base64 (`openssl rand -hex 32`).",
            args::KEY_ENV
        );
    }
    if options.secure && !addr.ip().is_loopback() {
        println!(
            "note: the session cookie is Secure; over plain http only localhost gets it back. \
             Use https, or --insecure for a development host."
        );
    }
    if !options.secure {
        println!(
            "note: --insecure: the session cookie is `{}`, not `{}`; a sibling subdomain \
             can plant one. For development only.",
            args::INSECURE_COOKIE_NAME,
            args::SECURE_COOKIE_NAME
        );
    }

    let served = axum::serve(listener, app::app(layer))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    match served {
        Ok(()) => {
            println!("demo: stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("demo: server error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C, or on SIGTERM on Unix (`kill PID`).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No handler could be installed: wait for the other signal.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    println!("demo: shutting down, finishing open requests");
}
