//! The store seam with a client-side backend: the whole record travels in
//! the cookie, and the request state, the diff, `update` and the write-back
//! work unchanged. The sealer here is a plain (unauthenticated) encoding for
//! the test; a real one authenticates and encrypts.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::{Backend, OpenError, Opened, SealError, Sealer};
use crate::data::FieldMap;
use crate::id::RawId;
use crate::layer::{SessionLayer, SessionLayerBuilder};
use crate::store::{NamespaceRecord, Record};
use crate::{Session, SessionHandle};

/// JSON in base64url: the record, readable by anyone (tests only).
struct PlainSealer;

impl Sealer for PlainSealer {
    fn seal(&self, id: &RawId, record: &Record) -> Result<String, SealError> {
        let namespaces: Vec<Value> = record
            .namespaces
            .iter()
            .map(|ns| {
                let fields: Vec<Value> = ns
                    .fields
                    .iter()
                    .map(|(name, bytes)| json!([name, URL_SAFE_NO_PAD.encode(bytes)]))
                    .collect();
                json!({"n": ns.name, "v": ns.version, "r": ns.revision, "f": fields})
            })
            .collect();
        let mut id_text = String::new();
        id.encode_into(&mut id_text);
        let value = json!({
            "id": id_text,
            "c": record.created_at_ms,
            "l": record.last_seen_ms,
            "e": record.expires_at_ms,
            "ns": namespaces,
        });
        Ok(URL_SAFE_NO_PAD.encode(value.to_string()))
    }

    fn budget(&self) -> usize {
        4096
    }

    fn open(&self, value: &str) -> Result<Opened, OpenError> {
        Self::read(value).ok_or(OpenError::Forged)
    }
}

impl PlainSealer {
    fn read(value: &str) -> Option<Opened> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        let value: Value = serde_json::from_slice(&bytes).ok()?;
        let id = RawId::parse(value["id"].as_str()?)?;
        let mut namespaces = Vec::new();
        for ns in value["ns"].as_array()? {
            let mut fields = FieldMap::new();
            for field in ns["f"].as_array()? {
                let name = field[0].as_str()?.to_owned();
                fields.insert(name, URL_SAFE_NO_PAD.decode(field[1].as_str()?).ok()?);
            }
            namespaces.push(NamespaceRecord::new(
                ns["n"].as_str()?,
                u32::try_from(ns["v"].as_u64()?).ok()?,
                ns["r"].as_u64()?,
                fields,
            ));
        }
        let record = Record::new(
            value["c"].as_u64()?,
            value["l"].as_u64()?,
            value["e"].as_u64()?,
            namespaces,
        );
        Some(Opened {
            id,
            record,
            fallback: false,
        })
    }
}

#[derive(typed_sessions::SessionData, Default)]
#[session(crate = "crate", namespace = "counter")]
struct Counter {
    count: u64,
}

#[derive(typed_sessions::SessionData, Default)]
#[session(crate = "crate", namespace = "auth")]
struct Auth {
    #[session(rotate_id)]
    user: Option<String>,
}

fn app(configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder) -> Router {
    let layer: SessionLayer =
        configure(SessionLayerBuilder::new(Backend::Client(Arc::new(PlainSealer))).secure(false))
            .build()
            .unwrap();
    Router::new()
        .route(
            "/incr",
            post(|mut c: Session<Counter>| async move { c.count += 1 }),
        )
        .route(
            "/count",
            get(|c: Session<Counter>| async move { c.count.to_string() }),
        )
        .route(
            "/reset",
            post(|mut c: Session<Counter>| async move { c.count = 0 }),
        )
        .route(
            "/login",
            post(|mut a: Session<Auth>| async move {
                a.update(|a| a.user = Some("ann".into())).await.unwrap();
            }),
        )
        .route(
            "/me",
            get(|a: Session<Auth>, h: SessionHandle| async move {
                format!(
                    "{}@{}",
                    a.user.clone().unwrap_or_default(),
                    h.id().map(|id| id.to_string()).unwrap_or_default()
                )
            }),
        )
        .route(
            "/logout",
            post(|h: SessionHandle| async move { h.destroy() }),
        )
        .layer(layer)
}

struct Reply {
    body: String,
    set_cookie: Option<String>,
}

async fn call(app: &Router, method: &str, uri: &str, cookie: Option<&str>) -> Reply {
    let mut request = http::Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        request = request.header(http::header::COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{uri}: {}",
        response.status()
    );
    let set_cookie = response
        .headers()
        .get(http::header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        body: String::from_utf8(body.to_vec()).unwrap(),
        set_cookie,
    }
}

/// `name=value` of a `Set-Cookie`.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_client_side_backend_runs_the_whole_lifecycle_with_no_server_state() {
    let app = app(|b| b);
    // A write: the cookie carries the record itself.
    let first = pair(
        &call(&app, "POST", "/incr", None)
            .await
            .set_cookie
            .expect("a cookie"),
    );
    let value = first.split_once('=').unwrap().1;
    assert!(value.len() > 22, "the record, not an id: {value}");
    let record = PlainSealer.open(value).expect("a sealed record").record;
    assert_eq!(
        record.namespace("counter").unwrap().fields.get("count"),
        Some(&b"1"[..])
    );
    // A read: no cookie, nothing to re-seal.
    let read = call(&app, "GET", "/count", Some(&first)).await;
    assert_eq!(read.body, "1");
    assert!(read.set_cookie.is_none());
    // Another write: re-sealed with the change.
    let second = pair(
        &call(&app, "POST", "/incr", Some(&first))
            .await
            .set_cookie
            .unwrap(),
    );
    assert_eq!(call(&app, "GET", "/count", Some(&second)).await.body, "2");
    // A login through update(): the record moves to a fresh id, the
    // other namespace travels with it.
    let before = call(&app, "GET", "/me", Some(&second)).await.body;
    let login = pair(
        &call(&app, "POST", "/login", Some(&second))
            .await
            .set_cookie
            .unwrap(),
    );
    let after = call(&app, "GET", "/me", Some(&login)).await.body;
    assert!(after.starts_with("ann@"), "{after}");
    assert_ne!(
        before.split('@').nth(1),
        after.split('@').nth(1),
        "a fresh id"
    );
    assert_eq!(call(&app, "GET", "/count", Some(&login)).await.body, "2");
    // Back to the default: the cookie is removed.
    let emptied = call(&app, "POST", "/logout", Some(&login)).await;
    assert!(emptied.set_cookie.unwrap().contains("Max-Age=0"));
    // A value that does not open reads as no session.
    assert_eq!(
        call(&app, "GET", "/count", Some("session=garbage"))
            .await
            .body,
        "0"
    );
}

#[tokio::test]
async fn a_client_side_backend_refresh_reseals_the_deadline() {
    let app = app(|b| {
        b.idle_timeout(std::time::Duration::from_mins(1))
            .refresh_share(0.000_01)
    });
    let cookie = pair(&call(&app, "POST", "/incr", None).await.set_cookie.unwrap());
    let before = PlainSealer
        .open(cookie.split_once('=').unwrap().1)
        .unwrap()
        .record;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let refreshed = call(&app, "GET", "/count", Some(&cookie)).await;
    let after = PlainSealer
        .open(
            pair(&refreshed.set_cookie.expect("re-sealed"))
                .split_once('=')
                .unwrap()
                .1,
        )
        .unwrap()
        .record;
    assert!(after.expires_at_ms > before.expires_at_ms);
    assert!(after.last_seen_ms > before.last_seen_ms);
    assert_eq!(
        after.namespaces, before.namespaces,
        "a refresh changes no data"
    );
}
