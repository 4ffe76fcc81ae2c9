//! Hostile input against every store (issue #12): one suite, generic over
//! the store, run through the demo's real router (`examples/demo/app.rs`)
//! against `MemoryStore`, `CookieStore` (private and signed), `RedisStore`
//! (a private server), `SqliteStore` (a fresh file) and `PostgresStore` (a
//! fresh schema on the server of `TYPED_SESSIONS_PG_URL`; skipped loudly
//! without one, a failure under `CI=true`). A store is one line at the
//! bottom of this file ([`hostile_suite!`]), e.g.
//! `hostile_suite!(sqlite_store, Kind::ServerSide; |clock| sql::sqlite_store(Some(clock)));`
//! where the closure makes a fresh, independent store on the layer's clock
//! (it is called twice: the second store is "another app instance").
//!
//! # The victims
//!
//! Two live sessions, A (user `alice`, cart `sku-alice`, count 5) and B
//! (`bob`, `sku-bob`, count 7), made through the API, and an expired one, E
//! (`eve`, idle for longer than the layer's idle timeout on a manual
//! clock). Every crafted request starts from A's genuine cookie (or B's,
//! E's, or a cookie from elsewhere).
//!
//! # What every crafted `Cookie` header gets
//!
//! Each crafted header is sent three times:
//!
//! 1. `GET /api/me` (a read): `200 {"user":null}` — a fresh, anonymous
//!    session, never A's, B's or E's identity. Its `Set-Cookie` is what the
//!    README's lifecycle table says: none when nothing was sent under our
//!    name, or (server-side stores) when a well-formed id names no live
//!    session (unknown, expired, rotated away, another instance's); a
//!    removal of our cookie when what was sent under our name is malformed
//!    (not a value the layer issues, non-UTF-8 bytes included), when more
//!    than four distinct values were sent, and with a `CookieStore` when
//!    the value does not open (tampered, another key, expired).
//! 2. `POST /api/counter/incr` (a write): `200 {"count":1}` — the count
//!    starts from zero, so nobody's counter was read — and exactly one
//!    `Set-Cookie` for our name, not a removal, whose value is none of the
//!    values sent, nor A's or B's ("never an adopted id": a server-side
//!    store answers with a new server-generated id, 22 base64url
//!    characters).
//! 3. `GET /api/counter` with the same crafted header again:
//!    `{"count":0}` — the write was not stored under anything the client
//!    sent.
//!
//! Never a 5xx, never a panic. At the end A and B read back exactly as
//! they were (identity, cart, count).
//!
//! Where the contract differs by store, the [`Kind`] says so: a
//! `CookieStore` has no server state, so a rotated-away cookie still opens
//! (README: no revocation); the replay checks then use a session whose
//! only state before the login was the page's form token, so the old
//! cookie must still show no user and no count, and the replay of A's
//! pre-relogin cookie runs against server-side stores only.
//!
//! # The crafted headers
//!
//! Every single-character change class of A's value (the next character
//! of the alphabet, the character with the 6-bit group's top bit flipped,
//! a deletion, a duplication, at every position of an id and at spread
//! positions of a sealed value; characters outside the alphabet; case
//! swaps), truncations and extensions, A's value under other cookie names,
//! a value from another app instance (another key, or another store), a
//! replay of rotated-away ids, E's expired value, well-formed ids nobody
//! issued, 4 KiB and 64 KiB values, 100 duplicate `session` cookies (in one
//! header and in 100 headers), non-UTF-8 bytes, percent-encoding tricks,
//! `__Host-` prefix abuse (against a second layer named `__Host-session`
//! over the same store), huge `Cookie` headers (2 000 cookies, 64 KiB of
//! A's value under other names). NUL, CR and LF cannot be put in an
//! `http::HeaderValue`, so those go over a real socket to the served app:
//! the HTTP server refuses them (a 4xx) or, for a bare LF, reads a header
//! line break; either way no 5xx and nobody's data.
//!
//! # JSON bodies of the wrong shape
//!
//! To `POST /api/login` and `POST /api/cart`, with A's cookie and without
//! one: wrong types, missing and unknown fields, arrays, scalars, `null`,
//! truncated JSON, not JSON, non-UTF-8, deep nesting, a 3 MiB body, the
//! wrong `Content-Type`, values the demo refuses (empty, control
//! characters, out of range). Each answers a 4xx, never a 5xx, and sets no
//! cookie; A is unchanged afterwards.
//!
//! Each store counts its crafted requests, prints the count
//! (`--nocapture`) and asserts at least [`MIN_CRAFTED`].

#[path = "../examples/demo/app.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "the demo's module, of which this test uses only `app`"
)]
mod app;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use typed_sessions::SessionLayer;
use typed_sessions::stores::SessionBackend;
use typed_sessions::stores::{CookieKey, CookieStore, MemoryStore, RedisStore};
use typed_sessions_test_support::backed::Backed;
use typed_sessions_test_support::redis_server::RedisServer;
use typed_sessions_test_support::sql;
use typed_sessions_test_support::{ManualClock, Reply, is_removal, reply, session_value};

/// Every store must get at least this many crafted requests.
const MIN_CRAFTED: usize = 40;
/// The layers' idle timeout: E is idle for longer.
const IDLE: Duration = Duration::from_mins(1);
/// The base64url alphabet, in order.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// The plain layer's cookie name, and the `__Host-` layer's.
const PLAIN: &str = "session";
const HOST: &str = "__Host-session";
/// What a fresh session answers on `GET /api/me`.
const NOBODY: &str = r#"{"user":null}"#;
/// How long a raw-socket exchange may take.
const RAW_TIMEOUT: Duration = Duration::from_secs(10);

/// How the store keeps sessions; decides the few expectations that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The record on the server, an id in the cookie.
    ServerSide,
    /// The record sealed in the cookie (`CookieStore`).
    Cookie,
}

/// Expands to one `#[test]` that runs the whole suite against the store
/// that `$make` (a `Fn(Arc<ManualClock>) -> S` closure, `S:
/// SessionBackend + Clone`) builds; `when $available` skips it when that
/// is false (for stores that need a server; the expression says why).
macro_rules! hostile_suite {
    ($test:ident, $kind:expr, when $available:expr; $make:expr) => {
        #[test]
        fn $test() {
            if $available {
                run_suite(stringify!($test), $kind, $make);
            }
        }
    };
    ($test:ident, $kind:expr; $make:expr) => {
        hostile_suite!($test, $kind, when true; $make);
    };
}

/// Runs the suite on a runtime of its own (the store is made inside it:
/// some stores need one to be built).
fn run_suite<S, F>(name: &str, kind: Kind, make: F)
where
    S: SessionBackend + Clone,
    F: Fn(Arc<ManualClock>) -> S,
{
    block_on(suite(name, kind, make));
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// The checks bite: A's genuine cookie, sent as if it were crafted, fails
/// them (it reads A's data).
#[test]
fn the_checks_fail_on_a_genuine_cookie() {
    let outcome = std::panic::catch_unwind(|| {
        block_on(async {
            let clock = ManualClock::starting_now();
            let store = MemoryStore::builder().clock(clock.clone()).build();
            let target = Target::new(
                app::app(layer(store, &clock, PLAIN)),
                PLAIN,
                Kind::ServerSide,
            );
            let alice = target.victim("alice", 5).await;
            target
                .crafted(
                    "A's genuine cookie (expected to fail)",
                    &[format!("{PLAIN}={}", alice.value).into_bytes()],
                )
                .await;
        });
    });
    let message = outcome.expect_err("a genuine cookie passed as hostile");
    let text = message.downcast_ref::<String>().map_or("", String::as_str);
    assert!(text.contains("someone's data"), "{text}");
}

/// The layer of the suite's apps: `name` for the cookie, `secure` as a
/// `__Host-` name requires, the idle timeout, the manual clock.
fn layer<S: SessionBackend>(store: S, clock: &Arc<ManualClock>, name: &str) -> SessionLayer {
    SessionLayer::builder(store)
        .cookie_name(name)
        .secure(name.starts_with("__Host-"))
        .idle_timeout(IDLE)
        .clock(clock.clone())
        .build()
        .expect("a valid layer")
}

/// The whole suite against one store.
#[expect(clippy::too_many_lines, reason = "the case list, read top to bottom")]
async fn suite<S, F>(name: &str, kind: Kind, make: F)
where
    S: SessionBackend + Clone,
    F: Fn(Arc<ManualClock>) -> S,
{
    let clock = ManualClock::starting_now();
    let store = make(clock.clone());
    let plain = Target::new(app::app(layer(store.clone(), &clock, PLAIN)), PLAIN, kind);
    let host = Target::new(app::app(layer(store, &clock, HOST)), HOST, kind);
    // Another app instance: its own store (and, for a `CookieStore`, its
    // own key).
    let elsewhere = app::app(layer(make(clock.clone()), &clock, PLAIN));

    // E first, then the clock moves past its idle timeout; A and B are
    // made after that, so they are live.
    let eve = plain.victim("eve", 3).await;
    clock.advance(IDLE + Duration::from_secs(1));
    let alice = plain.victim("alice", 5).await;
    let bob = plain.victim("bob", 7).await;
    let expired = plain.read_once(&format!("{PLAIN}={}", eve.value)).await;
    assert_eq!(expired, NOBODY, "E has expired");
    // A is checked to open, so that a crafted variation failing to open
    // says something.
    assert!(
        plain
            .read_once(&format!("{PLAIN}={}", alice.value))
            .await
            .contains("alice"),
        "A opens"
    );

    let v = alice.value.as_bytes();
    let len = v.len();
    let pair = |value: &[u8]| [PLAIN.as_bytes(), b"=", value].concat();

    // -- Every single-character change class. An id is short: every
    // position; a sealed value: spread positions (tests/cookie_hostile.rs
    // has every position of a sealed value).
    let positions: Vec<usize> = if len <= 32 {
        (0..len).collect()
    } else {
        let mut at = vec![
            0,
            1,
            2,
            3,
            8,
            18,
            len / 3,
            len / 2,
            len - 22,
            len - 8,
            len - 2,
            len - 1,
        ];
        at.sort_unstable();
        at.dedup();
        at
    };
    for &at in &positions {
        let index = index_of(v[at]);
        for other in [ALPHABET[(index + 1) % 64], ALPHABET[index ^ 0x20]] {
            let mut changed = v.to_vec();
            changed[at] = other;
            plain
                .crafted(
                    &format!("char {at} -> {:?}", other as char),
                    &[pair(&changed)],
                )
                .await;
        }
        let mut deleted = v.to_vec();
        deleted.remove(at);
        plain
            .crafted(&format!("char {at} deleted"), &[pair(&deleted)])
            .await;
        let mut doubled = v.to_vec();
        doubled.insert(at, v[at]);
        plain
            .crafted(&format!("char {at} doubled"), &[pair(&doubled)])
            .await;
    }
    for &at in positions.iter().step_by(4) {
        for outside in [b'+', b'/', b'=', b'%', b' ', b'.', b'"', b','] {
            let mut changed = v.to_vec();
            changed[at] = outside;
            plain
                .crafted(
                    &format!("char {at} -> {:?}", outside as char),
                    &[pair(&changed)],
                )
                .await;
        }
    }
    let swapped: Vec<u8> = v
        .iter()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    plain
        .crafted("every letter's case swapped", &[pair(&swapped)])
        .await;

    // -- Truncations and extensions.
    let value = alice.value.as_str();
    for (label, crafted) in [
        ("empty", String::new()),
        ("first char", value[..1].to_owned()),
        ("first half", value[..len / 2].to_owned()),
        ("second half", value[len / 2..].to_owned()),
        ("all but the last", value[..len - 1].to_owned()),
        ("all but the first", value[1..].to_owned()),
        ("append A", format!("{value}A")),
        ("append ==", format!("{value}==")),
        ("append 4 chars", format!("{value}Zm9v")),
        ("prefix A", format!("A{value}")),
        ("twice", format!("{value}{value}")),
        ("A's then B's", format!("{value}{}", bob.value)),
        (
            "half A's, half B's",
            format!("{}{}", &value[..len / 2], &bob.value[len / 2..]),
        ),
    ] {
        plain.crafted(label, &[pair(crafted.as_bytes())]).await;
    }

    // -- Another cookie name carrying A's value.
    for other in [
        "Session",
        "SESSION",
        "sessionid",
        "xsession",
        "session_",
        "__Host-session",
        "__Secure-session",
        "sess%69on",
    ] {
        plain
            .crafted(
                &format!("A's value as `{other}`"),
                &[format!("{other}={value}").into_bytes()],
            )
            .await;
    }

    // -- Another key / another app instance.
    let foreign = Session::make(&elsewhere, "mallory", 9).await;
    assert!(
        plain.read_once(&format!("{PLAIN}={}", foreign.value)).await == NOBODY,
        "another instance's session does not open here"
    );
    plain
        .crafted(
            "another instance's cookie",
            &[pair(foreign.value.as_bytes())],
        )
        .await;
    plain
        .crafted(
            "another instance's cookie, one char changed",
            &[pair(&bump(
                foreign.value.as_bytes(),
                foreign.value.len() / 2,
            ))],
        )
        .await;

    // -- Replay of rotated-away ids. A session whose only state was the
    // page's form token (`GET /`) logs in through the API: the login
    // rotates the id. Its old cookie shows no user and no count on every
    // store.
    let page = send(&plain.app, "GET", "/", None, None).await;
    assert_eq!(page.status, 200, "{page:?}");
    let before_login = only_cookie(&page, PLAIN);
    let login = send(
        &plain.app,
        "POST",
        "/api/login",
        Some(&before_login),
        Some(r#"{"user":"carol"}"#),
    )
    .await;
    assert_eq!(login.status, 200, "{login:?}");
    let after_login = only_cookie(&login, PLAIN);
    assert_ne!(after_login, before_login, "the login rotated the id");
    // A `CookieStore` cookie cannot be revoked: the old one still opens,
    // as the anonymous session it was (a plain read, nothing to set).
    plain
        .crafted_expecting(
            "replay of the id a login rotated away",
            &[before_login.clone().into_bytes()],
            Some(Expect::Untouched),
        )
        .await;
    if kind == Kind::ServerSide {
        // A signs in again as someone else: the id rotates, and A's data
        // stays with the new id. The old cookie must not read it.
        let old_a = format!("{PLAIN}={}", alice.value);
        let relogin = send(
            &plain.app,
            "POST",
            "/api/login",
            Some(&old_a),
            Some(r#"{"user":"alice2"}"#),
        )
        .await;
        assert_eq!(relogin.status, 200, "{relogin:?}");
        let rotated = only_cookie(&relogin, PLAIN);
        plain
            .crafted(
                "replay of A's id after a re-login",
                &[old_a.clone().into_bytes()],
            )
            .await;
        // Back to `alice` on the new id, for the final check.
        let back = send(
            &plain.app,
            "POST",
            "/api/login",
            Some(&rotated),
            Some(r#"{"user":"alice"}"#),
        )
        .await;
        assert_eq!(back.status, 200, "{back:?}");
        plain
            .crafted(
                "replay of A's second id after a re-login",
                &[rotated.into_bytes()],
            )
            .await;
        let a_now = only_cookie(&back, PLAIN);
        plain.moved_to(session_value(&a_now));
    }

    // -- Expired payloads.
    plain
        .crafted("E's expired cookie", &[pair(eve.value.as_bytes())])
        .await;
    plain
        .crafted(
            "E's expired cookie beside garbage",
            &[format!("x=1; {PLAIN}={}; y=2", eve.value).into_bytes()],
        )
        .await;

    // -- Well-formed ids nobody issued.
    for unknown in [
        "AAAAAAAAAAAAAAAAAAAAAA",
        "_____________________w",
        "AQIDBAUGBwgJCgsMDQ4PEA",
    ] {
        plain
            .crafted(
                &format!("unknown id {unknown}"),
                &[pair(unknown.as_bytes())],
            )
            .await;
    }
    let mut random = [0_u8; 16];
    getrandom::fill(&mut random).unwrap();
    plain
        .crafted(
            "a random unknown id",
            &[pair(URL_SAFE_NO_PAD.encode(random).as_bytes())],
        )
        .await;

    // -- 4 KiB and 64 KiB values.
    let a_now = plain.victim_value(&alice);
    for (label, crafted) in [
        ("4 KiB of A", "A".repeat(4096)),
        (
            "A's value padded to 4 KiB",
            format!("{a_now}{}", "A".repeat(4096 - a_now.len().min(4096))),
        ),
        ("64 KiB of A", "A".repeat(64 * 1024)),
        (
            "64 KiB of A's value repeated",
            a_now.repeat(64 * 1024 / a_now.len() + 1),
        ),
    ] {
        plain.crafted(label, &[pair(crafted.as_bytes())]).await;
    }

    // -- 100 duplicate `session` cookies: A's and B's genuine values among
    // near misses and garbage; more distinct values than the layer looks at.
    let hundred: Vec<String> = (0..100)
        .map(|i| match i {
            10 => a_now.clone(),
            60 => bob.value.clone(),
            i if i % 3 == 0 => String::from_utf8(bump(a_now.as_bytes(), i % a_now.len())).unwrap(),
            i if i % 3 == 1 => "A".repeat(i),
            _ => format!("!{i}!"),
        })
        .collect();
    let one_header = hundred
        .iter()
        .map(|value| format!("{PLAIN}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
    plain
        .crafted(
            "100 session cookies in one header",
            &[one_header.into_bytes()],
        )
        .await;
    let many_headers: Vec<Vec<u8>> = hundred
        .iter()
        .map(|value| format!("{PLAIN}={value}").into_bytes())
        .collect();
    plain.crafted("100 Cookie headers", &many_headers).await;
    let a_and_b = format!("{PLAIN}={a_now}; {PLAIN}={}", bob.value);
    // Two live sessions under our name: the request is anonymous (the
    // README's row for several cookies); neither is cleared, on any store.
    plain
        .crafted_expecting(
            "A's and B's cookies together",
            &[a_and_b.into_bytes()],
            Some(Expect::Untouched),
        )
        .await;

    // -- Non-UTF-8 bytes.
    let av = a_now.as_bytes();
    for (label, crafted) in [
        (
            "non-UTF-8 inside A's value",
            [&av[..10], b"\xff\xfe", &av[10..]].concat(),
        ),
        ("non-UTF-8 value", b"\xc3\x28\xa0\xa1".to_vec()),
        ("Latin-1 value", b"\xe9t\xe9".to_vec()),
        ("A's value then a 0x80", [av, b"\x80"].concat()),
    ] {
        plain.crafted(label, &[pair(&crafted)]).await;
    }
    plain
        .crafted(
            "a non-UTF-8 cookie beside a tampered A",
            &[[b"x=\xff; ".as_slice(), &pair(&av[1..])].concat()],
        )
        .await;

    // -- Percent-encoding tricks.
    let percent_all = av.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "%{byte:02X}");
        out
    });
    plain
        .crafted(
            "every char of A percent-encoded",
            &[pair(percent_all.as_bytes())],
        )
        .await;
    let one = format!("{}%{:02X}{}", &a_now[..5], av[5], &a_now[6..]);
    plain
        .crafted("one char of A percent-encoded", &[pair(one.as_bytes())])
        .await;
    let percent_name = format!("session%3D{a_now}=1");
    plain
        .crafted(
            "`=` percent-encoded into the name",
            &[percent_name.into_bytes()],
        )
        .await;
    let double = format!("{}%2541{}", &a_now[..4], &a_now[5..]);
    plain
        .crafted("a double-encoded char", &[pair(double.as_bytes())])
        .await;
    plain
        .crafted(
            "%00 inside A's value",
            &[pair(
                format!("{}%00{}", &a_now[..8], &a_now[8..]).as_bytes(),
            )],
        )
        .await;
    plain
        .crafted(
            "A's value quoted",
            &[pair(format!("\"{a_now}\"").as_bytes())],
        )
        .await;

    // -- `__Host-` prefix abuse, against the `__Host-session` layer over
    // the same store: a cookie a sibling subdomain could plant has another
    // name, and is never read.
    for other in [
        "session",
        "__host-session",
        "__HOST-session",
        "__Host-Session",
        "Host-session",
        "__Secure-session",
        "__Host-session_",
    ] {
        host.crafted(
            &format!("A's value as `{other}` to the __Host- layer"),
            &[format!("{other}={a_now}").into_bytes()],
        )
        .await;
    }
    // And the plain layer never reads a `__Host-` cookie.
    plain
        .crafted(
            "`__Host-session` to the plain layer",
            &[format!("{HOST}={a_now}").into_bytes()],
        )
        .await;

    // -- Huge Cookie headers.
    let others: Vec<String> = (0..2000).map(|i| format!("c{i}=v{i}")).collect();
    let tampered = &a_now[..a_now.len() - 1];
    let huge = format!(
        "{}; {PLAIN}={tampered}; {}",
        others[..1000].join("; "),
        others[1000..].join("; ")
    );
    plain
        .crafted("2000 cookies around a tampered A", &[huge.into_bytes()])
        .await;
    let under_other_names = (0..(64 * 1024 / (a_now.len() + 12)))
        .map(|i| format!("s{i}={a_now}"))
        .collect::<Vec<_>>()
        .join("; ");
    plain
        .crafted(
            "64 KiB of A's value under other names",
            &[under_other_names.into_bytes()],
        )
        .await;
    let many = (0..500)
        .map(|i| format!("c{i}=v{i}").into_bytes())
        .collect::<Vec<_>>();
    plain.crafted("500 Cookie headers, none ours", &many).await;

    // -- NUL, CR, LF: not a header value `http` accepts, so over a socket.
    for control in [b'\0', b'\r', b'\n', 0x7f] {
        let header = [&pair(&av[..8]), [control].as_slice(), &av[8..]].concat();
        assert!(
            http::HeaderValue::from_bytes(&header).is_err(),
            "{control:#04x} is now accepted: test it through the layer"
        );
    }
    let served = Served::start(plain.app.clone()).await;
    let mut socket_statuses = Vec::new();
    for (label, raw) in [
        (
            "NUL inside A's value",
            [&pair(&av[..8]), b"\0".as_slice(), &av[8..]].concat(),
        ),
        (
            "CR inside A's value",
            [&pair(&av[..8]), b"\r".as_slice(), &av[8..]].concat(),
        ),
        (
            "LF inside A's value",
            [&pair(&av[..8]), b"\n".as_slice(), &av[8..]].concat(),
        ),
        (
            "CR LF and a second header",
            [&pair(&av[..8]), b"\r\nX-Injected: 1".as_slice()].concat(),
        ),
        (
            "LF and A's value as a header line",
            [b"x=1\n".as_slice(), &pair(av)].concat(),
        ),
        (
            "DEL inside A's value",
            [&pair(&av[..8]), b"\x7f".as_slice(), &av[8..]].concat(),
        ),
        ("a lone NUL value", pair(b"\0")),
    ] {
        let (status, body) = served.get_me(&raw).await;
        plain.count_one();
        socket_statuses.push(format!("{label}: {status}"));
        assert!(
            (400..500).contains(&status) || (status == 200 && body == NOBODY),
            "{name}: {label}: over the socket: {status} {body:?}"
        );
    }
    drop(served);

    // -- JSON bodies of the wrong shape.
    json_bodies(&plain, &a_now).await;

    // -- A and B are as they were.
    alice.check(&plain.app, PLAIN, &a_now).await;
    bob.check(&plain.app, PLAIN, &bob.value).await;

    let sent = plain.count() + host.count();
    eprintln!(
        "hostile_every_store [{name}]: {sent} crafted requests ({} through the plain layer, {} through the __Host- layer); over the socket: {}",
        plain.count(),
        host.count(),
        socket_statuses.join(", ")
    );
    assert!(sent >= MIN_CRAFTED, "{name}: only {sent} crafted requests");
}

/// Wrong-shape JSON to the demo's JSON API: a 4xx, no cookie, A unchanged.
async fn json_bodies(target: &Target, a_value: &str) {
    let a_cookie = format!("{PLAIN}={a_value}");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge_user = format!(r#"{{"user":"{}"}}"#, "u".repeat(3 * 1024 * 1024));
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("/api/login", br"{}".to_vec(), None),
        ("/api/login", br"[]".to_vec(), None),
        ("/api/login", br#""alice""#.to_vec(), None),
        ("/api/login", br"null".to_vec(), None),
        ("/api/login", br#"{"user":1}"#.to_vec(), None),
        ("/api/login", br#"{"user":null}"#.to_vec(), None),
        ("/api/login", br#"{"user":["alice"]}"#.to_vec(), None),
        (
            "/api/login",
            br#"{"user":"alice","admin":true}"#.to_vec(),
            None,
        ),
        ("/api/login", br#"{"User":"alice"}"#.to_vec(), None),
        ("/api/login", br#"{"user":"#.to_vec(), None),
        ("/api/login", br#"{"user":""}"#.to_vec(), None),
        ("/api/login", br#"{"user":"   "}"#.to_vec(), None),
        ("/api/login", br#"{"user":"a\u0000b"}"#.to_vec(), None),
        ("/api/login", br#"{"user":"\ud800"}"#.to_vec(), None),
        ("/api/login", b"{\"user\":\"\xff\xfe\"}".to_vec(), None),
        ("/api/login", b"user=alice".to_vec(), None),
        (
            "/api/login",
            br#"{"user":"alice"}"#.to_vec(),
            Some("text/plain"),
        ),
        (
            "/api/login",
            br#"{"user":"alice"}"#.to_vec(),
            Some("application/x-www-form-urlencoded"),
        ),
        ("/api/login", deep.clone().into_bytes(), None),
        ("/api/login", huge_user.into_bytes(), None),
        ("/api/login", Vec::new(), None),
        ("/api/cart", br#"{"sku":"a1"}"#.to_vec(), None),
        ("/api/cart", br#"{"qty":1}"#.to_vec(), None),
        ("/api/cart", br#"{"sku":"a1","qty":-1}"#.to_vec(), None),
        ("/api/cart", br#"{"sku":"a1","qty":0}"#.to_vec(), None),
        ("/api/cart", br#"{"sku":"a1","qty":1000}"#.to_vec(), None),
        (
            "/api/cart",
            br#"{"sku":"a1","qty":4294967296}"#.to_vec(),
            None,
        ),
        ("/api/cart", br#"{"sku":"a1","qty":1.5}"#.to_vec(), None),
        ("/api/cart", br#"{"sku":"a1","qty":"2"}"#.to_vec(), None),
        ("/api/cart", br#"{"sku":"a b","qty":1}"#.to_vec(), None),
        ("/api/cart", br#"{"sku":"","qty":1}"#.to_vec(), None),
        (
            "/api/cart",
            format!(r#"{{"sku":"{}","qty":1}}"#, "s".repeat(33)).into_bytes(),
            None,
        ),
        (
            "/api/cart",
            br#"{"sku":"a1","qty":1,"price":0}"#.to_vec(),
            None,
        ),
        ("/api/cart", br#"[{"sku":"a1","qty":1}]"#.to_vec(), None),
        ("/api/cart", deep.into_bytes(), None),
    ];
    for (uri, body, content_type) in &cases {
        for cookie in [Some(a_cookie.as_str()), None] {
            let reply = send_bytes(
                &target.app,
                "POST",
                uri,
                cookie,
                body.clone(),
                content_type.unwrap_or("application/json"),
            )
            .await;
            target.count_one();
            let label = format!(
                "POST {uri} {:?} ({}), cookie {}",
                String::from_utf8_lossy(&body[..body.len().min(40)]),
                content_type.unwrap_or("application/json"),
                cookie.is_some()
            );
            assert!(
                reply.status.is_client_error(),
                "{label}: expected a 4xx, got {}: {}",
                reply.status,
                &reply.body[..reply.body.len().min(200)]
            );
            assert!(
                reply.set_cookies.is_empty(),
                "{label}: a refused body changes no session: {:?}",
                reply.set_cookies
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Victims.

/// A live session made through the API: a login, a cart line, a count.
struct Session {
    value: String,
    user: String,
    count: u64,
}

impl Session {
    async fn make(app: &Router, user: &str, count: u64) -> Self {
        let login = send(
            app,
            "POST",
            "/api/login",
            None,
            Some(&format!(r#"{{"user":"{user}"}}"#)),
        )
        .await;
        assert_eq!(login.status, 200, "{login:?}");
        let cookie = login
            .set_cookies
            .iter()
            .find(|set| !is_removal(set))
            .map(|set| set.split(';').next().unwrap().to_owned())
            .expect("a login sets a cookie");
        let mut cookie = cookie;
        let cart = send(
            app,
            "POST",
            "/api/cart",
            Some(&cookie),
            Some(&format!(r#"{{"sku":"sku-{user}","qty":2}}"#)),
        )
        .await;
        assert_eq!(cart.status, 200, "{cart:?}");
        if let Some(set) = cart.set_cookies.first() {
            set.split(';').next().unwrap().clone_into(&mut cookie);
        }
        for _ in 0..count {
            let incr = send(app, "POST", "/api/counter/incr", Some(&cookie), None).await;
            assert_eq!(incr.status, 200, "{incr:?}");
            if let Some(set) = incr.set_cookies.first() {
                set.split(';').next().unwrap().clone_into(&mut cookie);
            }
        }
        Self {
            value: session_value(&cookie).to_owned(),
            user: user.to_owned(),
            count,
        }
    }

    /// The session (under `value` now, after a re-login) reads exactly as made.
    async fn check(&self, app: &Router, name: &str, value: &str) {
        let cookie = format!("{name}={value}");
        let me = send(app, "GET", "/api/me", Some(&cookie), None).await;
        assert_eq!(me.body, format!(r#"{{"user":"{}"}}"#, self.user), "{me:?}");
        let cart = send(app, "GET", "/api/cart", Some(&cookie), None).await;
        assert_eq!(
            cart.body,
            format!(r#"{{"items":[{{"sku":"sku-{}","qty":2}}]}}"#, self.user),
            "{cart:?}"
        );
        let counter = send(app, "GET", "/api/counter", Some(&cookie), None).await;
        assert_eq!(
            counter.body,
            format!(r#"{{"count":{}}}"#, self.count),
            "{counter:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// One app under attack.

struct Target {
    app: Router,
    /// The layer's cookie name.
    name: &'static str,
    kind: Kind,
    /// Values that are some victim's genuine cookie: never to be handed out.
    genuine: std::sync::Mutex<BTreeSet<String>>,
    /// A's current value, when a re-login moved it.
    moved: std::sync::Mutex<Option<String>>,
    sent: std::sync::atomic::AtomicUsize,
}

impl Target {
    fn new(app: Router, name: &'static str, kind: Kind) -> Self {
        Self {
            app,
            name,
            kind,
            genuine: std::sync::Mutex::default(),
            moved: std::sync::Mutex::default(),
            sent: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    async fn victim(&self, user: &str, count: u64) -> Session {
        let session = Session::make(&self.app, user, count).await;
        self.genuine.lock().unwrap().insert(session.value.clone());
        session
    }

    /// A's session moved to `value` (a re-login rotated its id).
    fn moved_to(&self, value: &str) {
        self.genuine.lock().unwrap().insert(value.to_owned());
        *self.moved.lock().unwrap() = Some(value.to_owned());
    }

    /// A's value as it is now.
    fn victim_value(&self, session: &Session) -> String {
        self.moved
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| session.value.clone())
    }

    fn count_one(&self) {
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn count(&self) -> usize {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `GET /api/me` with one `Cookie` header, for the set-up checks.
    async fn read_once(&self, header: &str) -> String {
        send(&self.app, "GET", "/api/me", Some(header), None)
            .await
            .body
    }

    /// Sends `headers` (one `Cookie` header each) three times and checks
    /// the contract of the module documentation.
    async fn crafted(&self, label: &str, headers: &[Vec<u8>]) {
        self.crafted_expecting(label, headers, None).await;
    }

    /// [`crafted`](Self::crafted), with the read's `Set-Cookie` given
    /// instead of derived.
    async fn crafted_expecting(&self, label: &str, headers: &[Vec<u8>], read_sets: Option<Expect>) {
        let label = format!("[{}] {label}", self.name);
        let values = values_under(self.name, headers);

        // 1. A read.
        let read = self.send_crafted("GET", "/api/me", headers).await;
        assert_eq!(read.status, 200, "{label}: read: {read:?}");
        assert_eq!(read.body, NOBODY, "{label}: read: someone's data");
        match read_sets.unwrap_or_else(|| self.read_expectation(&values)) {
            Expect::Untouched => assert!(
                read.set_cookies.is_empty(),
                "{label}: read: no Set-Cookie expected: {:?}",
                read.set_cookies
            ),
            Expect::Cleared => assert!(
                read.set_cookies.len() == 1
                    && read.set_cookies[0].starts_with(&format!("{}=;", self.name))
                    && is_removal(&read.set_cookies[0]),
                "{label}: read: one removal of {:?} expected: {:?}",
                self.name,
                read.set_cookies
            ),
        }

        // 2. A write.
        let write = self
            .send_crafted("POST", "/api/counter/incr", headers)
            .await;
        assert_eq!(write.status, 200, "{label}: write: {write:?}");
        assert_eq!(
            write.body, r#"{"count":1}"#,
            "{label}: write: someone's counter"
        );
        assert_eq!(
            write.set_cookies.len(),
            1,
            "{label}: write: {:?}",
            write.set_cookies
        );
        let set = &write.set_cookies[0];
        assert!(
            set.starts_with(&format!("{}=", self.name)) && !is_removal(set),
            "{label}: write: a new cookie of ours expected: {set:?}"
        );
        let issued = set.split(';').next().unwrap()[self.name.len() + 1..].to_owned();
        assert!(
            !values.iter().flatten().any(|sent| sent.as_str() == issued),
            "{label}: write: an id the client sent was adopted"
        );
        assert!(
            !self.genuine.lock().unwrap().contains(&issued),
            "{label}: write: another session's cookie handed out"
        );
        if self.kind == Kind::ServerSide {
            assert!(
                well_formed_id(&issued),
                "{label}: write: not a server id: {issued:?}"
            );
        }

        // 3. Nothing was stored under what the client sent.
        let again = self.send_crafted("GET", "/api/counter", headers).await;
        assert_eq!(again.status, 200, "{label}: read again: {again:?}");
        assert_eq!(
            again.body, r#"{"count":0}"#,
            "{label}: the write went under a sent id"
        );
    }

    async fn send_crafted(&self, method: &str, uri: &str, headers: &[Vec<u8>]) -> Reply {
        let mut request = http::Request::builder().method(method).uri(uri);
        for header in headers {
            let value = http::HeaderValue::from_bytes(header)
                .unwrap_or_else(|_| panic!("not a header value a client can send: {header:?}"));
            request = request.header(http::header::COOKIE, value);
        }
        self.count_one();
        reply(&self.app, request.body(Body::empty()).unwrap()).await
    }

    /// What a read with these values under our name must set (see the
    /// module documentation).
    fn read_expectation(&self, values: &[Option<String>]) -> Expect {
        if values.is_empty() {
            return Expect::Untouched;
        }
        let distinct: BTreeSet<&Option<String>> = values.iter().collect();
        if distinct.len() > 4 || self.kind == Kind::Cookie {
            return Expect::Cleared;
        }
        if values.iter().flatten().any(|value| well_formed_id(value)) {
            // An id naming no live session: ignored, not cleared.
            Expect::Untouched
        } else {
            Expect::Cleared
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// No `Set-Cookie`.
    Untouched,
    /// One removal of our cookie.
    Cleared,
}

/// The values sent under `name` (trimmed of ASCII whitespace, `None` when
/// not UTF-8), in the order sent.
fn values_under(name: &str, headers: &[Vec<u8>]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for header in headers {
        for pair in header.split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() != name.as_bytes() {
                continue;
            }
            let value = pair[eq + 1..].trim_ascii();
            out.push(std::str::from_utf8(value).ok().map(str::to_owned));
        }
    }
    out
}

/// Whether `value` is an id as a server-side layer issues them: 22
/// canonical base64url characters, 16 bytes.
fn well_formed_id(value: &str) -> bool {
    value.len() == 22
        && URL_SAFE_NO_PAD
            .decode(value)
            .is_ok_and(|bytes| bytes.len() == 16)
}

fn index_of(c: u8) -> usize {
    ALPHABET
        .iter()
        .position(|&a| a == c)
        .expect("a base64url character")
}

/// `value` with the character at `at` replaced by the next of the alphabet.
fn bump(value: &[u8], at: usize) -> Vec<u8> {
    let mut out = value.to_vec();
    out[at] = ALPHABET[(index_of(out[at]) + 1) % 64];
    out
}

/// The only `name=` pair set by `reply`.
fn only_cookie(reply: &Reply, name: &str) -> String {
    let set = reply.set_cookie().expect("a Set-Cookie");
    assert!(
        set.starts_with(&format!("{name}=")) && !is_removal(set),
        "{set}"
    );
    set.split(';').next().unwrap().to_owned()
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    json: Option<&str>,
) -> Reply {
    send_bytes(
        app,
        method,
        uri,
        cookie,
        json.unwrap_or("").as_bytes().to_vec(),
        "application/json",
    )
    .await
}

async fn send_bytes(
    app: &Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    body: Vec<u8>,
    content_type: &str,
) -> Reply {
    let mut request = http::Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        request = request.header(http::header::COOKIE, cookie);
    }
    if method != "GET" {
        request = request.header(http::header::CONTENT_TYPE, content_type);
    }
    reply(app, request.body(Body::from(body)).unwrap()).await
}

// ---------------------------------------------------------------------------
// The app served on a loopback port, for bytes `http` refuses.

struct Served {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    async fn start(app: Router) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, task }
    }

    /// `GET /api/me` with `cookie` as the raw bytes of the `Cookie` header
    /// line; the status and the body (lossy), read until the server closes.
    async fn get_me(&self, cookie: &[u8]) -> (u16, String) {
        let request = [
            b"GET /api/me HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: ".as_slice(),
            cookie,
            b"\r\n\r\n",
        ]
        .concat();
        let exchange = async {
            let mut stream = TcpStream::connect(self.addr).await.unwrap();
            stream.write_all(&request).await.unwrap();
            let mut answer = Vec::new();
            // A reset after the answer (the server refused the rest) ends it too.
            let _ = stream.read_to_end(&mut answer).await;
            answer
        };
        let answer = tokio::time::timeout(RAW_TIMEOUT, exchange)
            .await
            .expect("the served app answers");
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
            .to_owned();
        (status, body)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------
// The stores.

/// Whether a Redis server can be started here (asked once per test binary).
fn redis_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| RedisServer::start().is_some())
}

/// A `RedisStore` on a private server of its own, on `clock`.
fn redis_store(clock: Arc<ManualClock>) -> Backed<RedisStore> {
    let server = RedisServer::start().expect("redis-server was available a moment ago");
    let store = RedisStore::builder()
        .clock(clock)
        .open_lazy(&server.url())
        .expect("a valid URL");
    Backed::new(store, server)
}

fn cookie_key() -> CookieKey {
    CookieKey::generate().expect("OS randomness")
}

hostile_suite!(memory_store, Kind::ServerSide; |clock| MemoryStore::builder().clock(clock).build());
hostile_suite!(cookie_store_private, Kind::Cookie; |_clock| CookieStore::private(cookie_key()));
hostile_suite!(cookie_store_signed, Kind::Cookie; |_clock| CookieStore::signed(cookie_key()));
hostile_suite!(redis_store_on_a_private_server, Kind::ServerSide, when redis_available(); redis_store);
hostile_suite!(sqlite_store, Kind::ServerSide; |clock| sql::sqlite_store(Some(clock)));
hostile_suite!(postgres_store, Kind::ServerSide, when sql::postgres_available(); |clock| sql::postgres_store(Some(clock)));
