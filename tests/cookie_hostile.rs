//! Hostile cookie values against `CookieStore` through the real layer, in
//! both modes (private and signed), starting from a valid cookie of a
//! writing request: every crafted request answers 200 (never a 5xx, never
//! a panic), its handler sees a fresh session (never the original data,
//! never another session's), a value sent under our cookie name is cleared
//! (`Set-Cookie: session=; … Max-Age=0`), and the warning log never holds a
//! cookie value or key bytes.
//!
//! The few requests that are *not* hostile are said so where they are
//! made: a rotated-away cookie still opens (no server state, no
//! revocation, as `CookieStore`'s docs say), and so does a valid cookie
//! among many other cookies. A value of ours with non-UTF-8 bytes, and more
//! than four values under our name, are cleared like any malformed value.
//!
//! Every test prints how many crafted requests it sent per mode
//! (`cargo test --test cookie_hostile -- --nocapture`).

use std::cell::Cell;
use std::collections::HashSet;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use typed_sessions::stores::{CookieKey, CookieStore};
use typed_sessions::{Session, SessionHandle, SessionLayer, SessionLayerBuilder};
use typed_sessions_test_support::{
    ManualClock, Reply, capture_logs, fetch, is_removal, reply, send, session_value,
};

/// Master keys: ASCII, so that a log holding their bytes shows them.
const KEY_A: &[u8; 32] = b"hostile-key-A:0123456789abcdefgh";
const KEY_B: &[u8; 32] = b"hostile-key-B:0123456789abcdefgh";

/// The base64url alphabet, in order.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// What a fresh session answers on `/whoami`: no owner, no id.
const FRESH: &str = "|";

#[derive(typed_sessions::SessionData, Default)]
#[session(namespace = "owner")]
struct Owner {
    name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Private,
    Signed,
}

impl Mode {
    const ALL: [Self; 2] = [Self::Private, Self::Signed];

    fn store(self, key: &[u8]) -> CookieStore {
        let key = CookieKey::from_bytes(key.to_vec());
        match self {
            Self::Private => CookieStore::private(key),
            Self::Signed => CookieStore::signed(key),
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Private => Self::Signed,
            Self::Signed => Self::Private,
        }
    }
}

fn app_with(
    store: CookieStore,
    configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
) -> Router {
    let layer = configure(SessionLayer::builder(store).secure(false))
        .build()
        .expect("a valid layer");
    Router::new()
        .route(
            "/whoami",
            get(|h: SessionHandle, o: Session<Owner>| async move {
                let id = h.id().map(|id| id.to_string()).unwrap_or_default();
                format!("{}|{id}", o.name)
            }),
        )
        .route(
            "/claim",
            post(|mut o: Session<Owner>, name: String| async move {
                o.name = name;
            }),
        )
        .route(
            "/regenerate",
            post(|h: SessionHandle| async move { h.regenerate_id() }),
        )
        .layer(layer)
}

fn app(mode: Mode, key: &[u8]) -> Router {
    app_with(mode.store(key), |b| b)
}

/// The `name=value` pair a writing request sets, claiming the session for `who`.
async fn claim(app: &Router, cookie: Option<&str>, who: &str) -> String {
    let reply = send(app, "POST", "/claim", cookie, Some(who)).await;
    assert_eq!(reply.status, 200, "claim: {reply:?}");
    reply.cookie()
}

/// Key material a log must never show, in the spellings a key travels in.
fn key_spellings() -> Vec<String> {
    let mut out = Vec::new();
    for key in [KEY_A, KEY_B] {
        out.push(String::from_utf8(key[..16].to_vec()).unwrap());
        out.push(hex(&key[..12], "", false));
        out.push(STANDARD.encode(key)[..16].to_owned());
        out.push(URL_SAFE_NO_PAD.encode(key)[..16].to_owned());
    }
    out
}

/// `bytes` in hex, each byte after `prefix`.
fn hex(bytes: &[u8], prefix: &str, upper: bool) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = if upper {
            write!(out, "{prefix}{b:02X}")
        } else {
            write!(out, "{prefix}{b:02x}")
        };
        out
    })
}

/// Every 16-character window of every cookie value in `header` (values of
/// 16 characters or more): none may reach the log.
fn value_windows(header: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for pair in header.split(|&b| b == b';') {
        let value = pair
            .iter()
            .position(|&b| b == b'=')
            .map_or(pair, |at| &pair[at + 1..]);
        let value = value.trim_ascii();
        if value.len() >= 16 {
            out.extend(value.windows(16).map(<[u8]>::to_vec));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// What a crafted request must get (a fresh session, always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A removal of the cookie we were sent, and a warning that names the
    /// reason.
    Cleared,
    /// A removal of the cookie we were sent (an expired session: logged at
    /// debug level only).
    Expired,
    /// No `Set-Cookie` at all: nothing was sent under our name.
    Untouched,
}

/// One app under attack: sends crafted `Cookie` headers to `GET /whoami`
/// and checks the contract; counts what it sent.
struct Target {
    app: Router,
    /// The layer's cookie name.
    name: String,
    /// Values that must never reach the log (the genuine cookies, the keys).
    secrets: Vec<String>,
    sent: Cell<usize>,
}

impl Target {
    fn new(app: Router, name: &str, genuine: &[&str]) -> Self {
        let mut secrets = key_spellings();
        for cookie in genuine {
            let value = session_value(cookie);
            secrets.extend(
                value
                    .as_bytes()
                    .windows(16)
                    .map(|w| String::from_utf8(w.to_vec()).unwrap()),
            );
        }
        Self {
            app,
            name: name.to_owned(),
            secrets,
            sent: Cell::new(0),
        }
    }

    /// Sends `header` as the request's whole `Cookie` header.
    async fn send(&self, label: &str, header: &[u8]) -> (Reply, String) {
        self.send_all(label, &[header]).await
    }

    /// Sends one `Cookie` header per item of `headers` (as HTTP/2 may).
    async fn send_all(&self, label: &str, headers: &[&[u8]]) -> (Reply, String) {
        let mut request = http::Request::get("/whoami");
        for header in headers {
            let value = http::HeaderValue::from_bytes(header)
                .unwrap_or_else(|_| panic!("{label}: not a header value a client can send"));
            request = request.header(http::header::COOKIE, value);
        }
        let request = request.body(Body::empty()).unwrap();
        let (logs, _guard) = capture_logs(tracing::Level::WARN);
        let app = self.app.clone();
        // Spawned (on this thread: the test runtime is current-thread, so
        // the log capture still sees it), so that a panic becomes this
        // case's failure instead of ending the whole test.
        let outcome = tokio::spawn(async move { reply(&app, request).await }).await;
        self.sent.set(self.sent.get() + 1);
        let reply = match outcome {
            Ok(reply) => reply,
            Err(err) => panic!("{label}: the request panicked: {err}"),
        };
        (reply, logs.text())
    }

    /// Sends a crafted header and checks every rule of the contract.
    async fn hostile(&self, label: &str, header: &[u8], expect: Expect) {
        self.hostile_all(label, &[header], expect).await;
    }

    /// [`hostile`](Self::hostile) with one `Cookie` header per item.
    async fn hostile_all(&self, label: &str, headers: &[&[u8]], expect: Expect) {
        let (reply, log) = self.send_all(label, headers).await;
        assert!(!reply.status.is_server_error(), "{label}: a 5xx: {reply:?}");
        assert_eq!(reply.status, 200, "{label}: {reply:?}");
        assert_eq!(
            reply.body, FRESH,
            "{label}: the handler must see a fresh session"
        );
        let removal =
            |set: &String| set.starts_with(&format!("{}=;", self.name)) && is_removal(set);
        match expect {
            Expect::Cleared | Expect::Expired => {
                assert_eq!(
                    reply.set_cookies.len(),
                    1,
                    "{label}: one removal expected: {:?}",
                    reply.set_cookies
                );
                assert!(
                    removal(&reply.set_cookies[0]),
                    "{label}: not a removal of {:?}: {:?}",
                    self.name,
                    reply.set_cookies
                );
            }
            Expect::Untouched => assert!(
                reply.set_cookies.is_empty(),
                "{label}: nothing was sent under our name, nothing to set: {:?}",
                reply.set_cookies
            ),
        }
        if expect == Expect::Cleared {
            assert!(
                log.contains("WARN") && log.contains("session cookie"),
                "{label}: no warning naming the reason: {log:?}"
            );
        }
        self.no_leak(label, headers, &log);
    }

    /// The log holds no key spelling, no part of a genuine cookie and no
    /// part of what was sent.
    fn no_leak(&self, label: &str, headers: &[&[u8]], log: &str) {
        for secret in &self.secrets {
            assert!(
                !log.contains(secret.as_str()),
                "{label}: the log shows {secret:?}: {log}"
            );
        }
        let logged: HashSet<&[u8]> = log.as_bytes().windows(16).collect();
        for window in headers.iter().flat_map(|header| value_windows(header)) {
            assert!(
                !logged.contains(window.as_slice()),
                "{label}: the log shows part of the sent value {:?}",
                String::from_utf8_lossy(&window)
            );
        }
    }

    /// `name=value` under this target's cookie name.
    fn pair(&self, value: &[u8]) -> Vec<u8> {
        let mut out = self.name.as_bytes().to_vec();
        out.push(b'=');
        out.extend_from_slice(value);
        out
    }

    fn report(&self, test: &str, mode: Mode) -> usize {
        let sent = self.sent.get();
        eprintln!("{test}: {mode:?}: {sent} crafted requests");
        sent
    }
}

/// An app for `mode` with key A, its genuine cookie (owner `victim`) and a
/// second genuine session (owner `mallory`), checked to open.
async fn victim(mode: Mode) -> (Target, String, String) {
    let app = app(mode, KEY_A);
    let cookie = claim(&app, None, "victim").await;
    let other = claim(&app, None, "mallory").await;
    let read = fetch(&app, "/whoami", Some(&cookie)).await;
    assert!(
        read.body.starts_with("victim|") && read.body.len() > 10,
        "{read:?}"
    );
    assert!(read.set_cookies.is_empty(), "a plain read sets nothing");
    let target = Target::new(app, "session", &[&cookie, &other]);
    (
        target,
        session_value(&cookie).to_owned(),
        session_value(&other).to_owned(),
    )
}

fn index_of(c: u8) -> usize {
    ALPHABET
        .iter()
        .position(|&a| a == c)
        .expect("a base64url character")
}

/// Positions spread over the value: the header (format, key id), the nonce
/// (private), the body, and the tag at the end.
fn sample_positions(len: usize) -> Vec<usize> {
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
}

#[tokio::test]
async fn every_single_character_change_reads_as_a_fresh_session_and_is_cleared() {
    for mode in Mode::ALL {
        let (target, value, _) = victim(mode).await;
        let value = value.as_bytes();
        for at in 0..value.len() {
            let index = index_of(value[at]);
            // The next character, and the one with the 6-bit group's top bit
            // flipped: both change the decoded bytes (or the unused low bits
            // of the last character, which base64url must refuse too).
            for other in [ALPHABET[(index + 1) % 64], ALPHABET[index ^ 0x20]] {
                let mut changed = value.to_vec();
                changed[at] = other;
                let label = format!("{mode:?}: char {at} replaced by {:?}", other as char);
                target
                    .hostile(&label, &target.pair(&changed), Expect::Cleared)
                    .await;
            }
            let mut deleted = value.to_vec();
            deleted.remove(at);
            let label = format!("{mode:?}: char {at} deleted");
            target
                .hostile(&label, &target.pair(&deleted), Expect::Cleared)
                .await;
            let mut doubled = value.to_vec();
            doubled.insert(at, value[at]);
            let label = format!("{mode:?}: char {at} duplicated");
            target
                .hostile(&label, &target.pair(&doubled), Expect::Cleared)
                .await;
        }
        for at in sample_positions(value.len()) {
            for outside in [b'+', b'/', b'=', b'%', b' ', b'.'] {
                let mut changed = value.to_vec();
                changed[at] = outside;
                let label = format!("{mode:?}: char {at} replaced by {:?}", outside as char);
                target
                    .hostile(&label, &target.pair(&changed), Expect::Cleared)
                    .await;
            }
        }
        let sent = target.report("single character changes", mode);
        assert!(sent >= 4 * value.len(), "{sent}");
    }
}

#[tokio::test]
async fn truncated_and_extended_values_read_as_fresh_sessions_and_are_cleared() {
    for mode in Mode::ALL {
        let (target, value, other) = victim(mode).await;
        let len = value.len();
        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("first char only", value[..1].to_owned()),
            ("first half", value[..len / 2].to_owned()),
            ("second half", value[len / 2..].to_owned()),
            ("all but the last char", value[..len - 1].to_owned()),
            ("all but the first char", value[1..].to_owned()),
            ("all but the tag", value[..len - 22].to_owned()),
            ("header only", value[..3].to_owned()),
            ("append 1 char", format!("{value}A")),
            ("append 2 chars", format!("{value}AA")),
            ("append 4 chars", format!("{value}Zm9v")),
            ("append 100 chars", format!("{value}{}", "Qx_-".repeat(25))),
            ("append =", format!("{value}=")),
            ("append ==", format!("{value}==")),
            ("value twice", format!("{value}{value}")),
            (
                "another session's value appended",
                format!("{value}{other}"),
            ),
            ("prefix 4 chars", format!("AQID{value}")),
        ];
        for (label, crafted) in cases {
            let label = format!("{mode:?}: {label}");
            target
                .hostile(&label, &target.pair(crafted.as_bytes()), Expect::Cleared)
                .await;
        }
        target.report("truncations and extensions", mode);
    }
}

#[tokio::test]
async fn values_sealed_elsewhere_do_not_open() {
    for mode in Mode::ALL {
        let (target, value, _) = victim(mode).await;
        let other_key = claim(&app(mode, KEY_B), None, "other key").await;
        let other_mode = claim(&app(mode.other(), KEY_A), None, "other mode").await;
        let other_both = claim(&app(mode.other(), KEY_B), None, "other both").await;
        let named_other = claim(
            &app_with(mode.store(KEY_A), |b| b.cookie_name("other")),
            None,
            "other name",
        )
        .await;
        assert!(named_other.starts_with("other="));
        for (label, cookie) in [
            ("sealed by another key", &other_key),
            ("sealed in the other mode", &other_mode),
            ("other key and other mode", &other_both),
            ("sealed for cookie name `other`", &named_other),
        ] {
            let label = format!("{mode:?}: {label}");
            let crafted = target.pair(session_value(cookie).as_bytes());
            target.hostile(&label, &crafted, Expect::Cleared).await;
            // The same value under its own name is not ours: left alone.
            let label = format!("{label}, with our own cookie absent");
            let header = format!("x{}", &cookie[cookie.find('=').unwrap()..]);
            target
                .hostile(&label, header.as_bytes(), Expect::Untouched)
                .await;
        }
        // Another app with the same key and mode, cookie name `sid`: our
        // value moved there does not open, and its value moved here neither.
        let sid_app = app_with(mode.store(KEY_A), |b| b.cookie_name("sid"));
        let sid_cookie = claim(&sid_app, None, "sid user").await;
        let sid = Target::new(sid_app, "sid", &[&sid_cookie]);
        sid.hostile(
            &format!("{mode:?}: session value moved to the `sid` app"),
            &sid.pair(value.as_bytes()),
            Expect::Cleared,
        )
        .await;
        target
            .hostile(
                &format!("{mode:?}: `sid` value moved to the `session` app"),
                &target.pair(session_value(&sid_cookie).as_bytes()),
                Expect::Cleared,
            )
            .await;
        target.report("sealed elsewhere", mode);
        sid.report("sealed elsewhere (sid app)", mode);
    }
}

#[tokio::test]
async fn a_rotated_away_cookie_still_opens_but_a_removed_key_does_not() {
    for mode in Mode::ALL {
        let (target, value, _) = victim(mode).await;
        let old = format!("session={value}");
        let id_before = fetch(&target.app, "/whoami", Some(&old)).await.body;
        let renewed = send(&target.app, "POST", "/regenerate", Some(&old), None).await;
        assert_eq!(renewed.status, 200);
        let renewed = renewed.cookie();
        let id_after = fetch(&target.app, "/whoami", Some(&renewed)).await.body;
        assert!(id_after.starts_with("victim|"), "{id_after}");
        assert_ne!(id_before, id_after, "a new id after regenerate_id()");
        // Documented (CookieStore, "No revocation"): with no server state
        // the replaced cookie keeps opening, under its old id, until its
        // own deadline. Not hostile to the victim beyond what a copy of a
        // cookie already gives; asserted so that a change is noticed.
        let (replay, log) = target
            .send(&format!("{mode:?}: replay"), old.as_bytes())
            .await;
        assert_eq!(replay.status, 200);
        assert_eq!(
            replay.body, id_before,
            "the old cookie opens, with its old id"
        );
        assert!(replay.set_cookies.is_empty(), "{replay:?}");
        assert!(log.is_empty(), "a genuine cookie logs nothing: {log}");

        // A key removed from the ring ends the cookies it sealed.
        let sealed_by_b = claim(&app(mode, KEY_B), None, "sealed by B").await;
        let rotated = app_with(
            mode.store(KEY_A)
                .fallback_key(CookieKey::from_bytes(KEY_B.to_vec())),
            |b| b,
        );
        let read = fetch(&rotated, "/whoami", Some(&sealed_by_b)).await;
        assert!(
            read.body.starts_with("sealed by B|"),
            "the fallback opens: {read:?}"
        );
        assert!(!read.has_removal(), "re-issued, not cleared: {read:?}");
        target
            .hostile(
                &format!("{mode:?}: sealed by a key removed from the ring"),
                sealed_by_b.as_bytes(),
                Expect::Cleared,
            )
            .await;
        target.report("rotation", mode);
    }
}

#[tokio::test]
async fn expired_payloads_read_as_fresh_sessions_and_are_cleared() {
    for mode in Mode::ALL {
        let clock = ManualClock::new();
        // Idle timeout: a minute without a request.
        let idle = app_with(mode.store(KEY_A), |b| {
            b.idle_timeout(Duration::from_mins(1)).clock(clock.clone())
        });
        let cookie = claim(&idle, None, "idle").await;
        let target = Target::new(idle.clone(), "session", &[&cookie]);
        clock.advance(Duration::from_secs(61));
        target
            .hostile(
                &format!("{mode:?}: idle for 61 s of 60"),
                cookie.as_bytes(),
                Expect::Expired,
            )
            .await;

        // Absolute timeout: kept busy (never idle), still over at 120 s.
        let absolute = app_with(mode.store(KEY_A), |b| {
            b.idle_timeout(Duration::from_mins(1))
                .absolute_timeout(Duration::from_mins(2))
                .clock(clock.clone())
        });
        let mut cookie = claim(&absolute, None, "busy").await;
        for _ in 0..2 {
            clock.advance(Duration::from_secs(50));
            cookie = claim(&absolute, Some(&cookie), "busy").await;
        }
        let read = fetch(&absolute, "/whoami", Some(&cookie)).await;
        assert!(
            read.body.starts_with("busy|"),
            "still live at 100 s: {read:?}"
        );
        clock.advance(Duration::from_secs(21));
        let busy = Target::new(absolute, "session", &[&cookie]);
        busy.hostile(
            &format!("{mode:?}: busy but 121 s old of 120"),
            cookie.as_bytes(),
            Expect::Expired,
        )
        .await;

        // Sealed under a long idle timeout, read by an app (same key) whose
        // timeout is now shorter: the reader's timeout applies.
        let long = app_with(mode.store(KEY_A), |b| {
            b.idle_timeout(Duration::from_hours(1)).clock(clock.clone())
        });
        let cookie = claim(&long, None, "long").await;
        clock.advance(Duration::from_mins(2));
        assert!(
            fetch(&long, "/whoami", Some(&cookie))
                .await
                .body
                .starts_with("long|")
        );
        let shorter = Target::new(idle, "session", &[&cookie]);
        shorter
            .hostile(
                &format!("{mode:?}: sealed under 1 h, read under 1 min"),
                cookie.as_bytes(),
                Expect::Expired,
            )
            .await;
        let sent = [&target, &busy, &shorter]
            .iter()
            .map(|t| t.sent.get())
            .sum::<usize>();
        eprintln!("expiry: {mode:?}: {sent} crafted requests");
    }
}

#[tokio::test]
async fn malformed_bytes_in_the_cookie_header_never_open() {
    for mode in Mode::ALL {
        let (target, value, _) = victim(mode).await;
        let v = value.as_bytes();
        let with = |parts: &[&[u8]]| parts.concat();
        let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
            (
                "not base64 at all",
                b"session=not base64!".to_vec(),
                Expect::Cleared,
            ),
            ("at signs", b"session=@@@@@@@@".to_vec(), Expect::Cleared),
            (
                "standard base64 alphabet",
                target.pair(STANDARD.encode(v).as_bytes()),
                Expect::Cleared,
            ),
            (
                "base64url of the value",
                target.pair(URL_SAFE_NO_PAD.encode(v).as_bytes()),
                Expect::Cleared,
            ),
            (
                "a tab inside",
                with(&[b"session=", &v[..20], b"\t", &v[20..]]),
                Expect::Cleared,
            ),
            (
                "every char percent-encoded",
                target.pair(hex(v, "%", true).as_bytes()),
                Expect::Cleared,
            ),
            (
                "one char percent-encoded",
                with(&[
                    b"session=",
                    &v[..5],
                    format!("%{:02X}", v[5]).as_bytes(),
                    &v[6..],
                ]),
                Expect::Cleared,
            ),
            (
                "%41 run",
                b"session=%41%41%41%41%41%41%41%41".to_vec(),
                Expect::Cleared,
            ),
            ("quoted", with(&[b"session=\"", v, b"\""]), Expect::Cleared),
            (
                "quoted, open quote only",
                with(&[b"session=\"", v]),
                Expect::Cleared,
            ),
            ("quoted empty", b"session=\"\"".to_vec(), Expect::Cleared),
            ("two = signs", with(&[b"session==", v]), Expect::Cleared),
            (
                "a comma-joined second cookie",
                with(&[b"session=", v, b", x=1"]),
                Expect::Cleared,
            ),
            // A value of ours with bytes that are not UTF-8 is malformed,
            // and cleared (another application's such cookie is skipped).
            (
                "non-UTF-8 inside the value",
                with(&[b"session=", &v[..10], b"\xff\xfe", &v[10..]]),
                Expect::Cleared,
            ),
            (
                "non-UTF-8 value",
                b"session=\xc3\x28\xa0\xa1".to_vec(),
                Expect::Cleared,
            ),
            (
                "Latin-1 bytes",
                b"session=\xe9t\xe9".to_vec(),
                Expect::Cleared,
            ),
            (
                "non-UTF-8 beside a tampered value",
                with(&[b"x=\xff; session=", &v[1..]]),
                Expect::Cleared,
            ),
        ];
        for (label, header, expect) in cases {
            target
                .hostile(&format!("{mode:?}: {label}"), &header, expect)
                .await;
        }
        // NUL, CR, LF and DEL: `http` refuses them in a header value, so no
        // client can send them; checked so that a change there is noticed.
        for control in [b'\0', b'\r', b'\n', 0x7f] {
            let header = with(&[b"session=", &v[..8], &[control], &v[8..]]);
            assert!(
                http::HeaderValue::from_bytes(&header).is_err(),
                "{control:#04x} is now accepted: test it"
            );
        }
        target.report("malformed bytes", mode);
    }
}

#[tokio::test]
async fn oversized_values_and_headers_read_as_fresh_sessions() {
    for mode in Mode::ALL {
        let (target, value, other) = victim(mode).await;
        let budget_value = CookieStore::MAX_COOKIE_SIZE - "session=".len();
        for (label, crafted) in [
            ("4000 chars", "A".repeat(4000)),
            ("exactly the budget", "A".repeat(budget_value)),
            ("one over the budget", "A".repeat(budget_value + 1)),
            ("4 KiB", "A".repeat(4096)),
            (
                "the value padded to 4 KiB",
                format!("{value}{}", "A".repeat(4096 - value.len())),
            ),
            ("64 KiB", "A".repeat(64 * 1024)),
            (
                "64 KiB of the value repeated",
                value.repeat(64 * 1024 / value.len() + 1),
            ),
        ] {
            let label = format!("{mode:?}: {label}");
            target
                .hostile(&label, &target.pair(crafted.as_bytes()), Expect::Cleared)
                .await;
        }

        // Many other cookies around a tampered value of ours.
        let others: Vec<String> = (0..2000).map(|i| format!("c{i}=v{i}")).collect();
        let tampered = &value[..value.len() - 1];
        let header = format!(
            "{}; session={tampered}; {}",
            others[..1000].join("; "),
            others[1000..].join("; ")
        );
        target
            .hostile(
                &format!("{mode:?}: 2000 cookies around a tampered one"),
                header.as_bytes(),
                Expect::Cleared,
            )
            .await;
        // Many cookies carrying genuine sealed values under other names.
        let header = (0..500)
            .map(|i| format!("session{i}={}", if i % 2 == 0 { &value } else { &other }))
            .collect::<Vec<_>>()
            .join("; ");
        target
            .hostile(
                &format!("{mode:?}: 500 genuine values under other names"),
                header.as_bytes(),
                Expect::Untouched,
            )
            .await;
        // Not hostile: the genuine value among 2000 cookies opens.
        let header = format!(
            "{}; session={value}; {}",
            others[..1000].join("; "),
            others[1000..].join("; ")
        );
        let (read, log) = target.send("genuine among 2000", header.as_bytes()).await;
        assert!(read.body.starts_with("victim|"), "{read:?}");
        assert!(
            read.set_cookies.is_empty() && log.is_empty(),
            "{read:?} {log}"
        );
        target.report("oversized", mode);
    }
}

/// The 100 values of a duplicate-cookie request: the `genuine` ones spread
/// among garbage (near misses of the genuine values, long runs, values
/// outside the alphabet, splices of two genuine values).
fn hundred_values(genuine: &[&str]) -> Vec<String> {
    let (a, b) = (genuine[0], genuine[genuine.len() - 1]);
    let garbage = |i: usize| match i % 4 {
        0 => format!("{}{i}", &a[..a.len() - 3]),
        1 => "A".repeat(i),
        2 => format!("!{i}!"),
        _ => format!("{}{}", &a[..i % a.len()], &b[i % b.len()..]),
    };
    let mut values: Vec<String> = (0..100 - genuine.len()).map(garbage).collect();
    let step = values.len() / genuine.len();
    for (k, value) in genuine.iter().enumerate() {
        values.insert(k * step + usize::from(k > 0) * 7, (*value).to_owned());
    }
    assert_eq!(values.len(), 100);
    values
}

/// 100 `session=` cookies: our genuine one and another session's among
/// garbage. More distinct values than the layer looks at (4): served as a
/// fresh session, neither the victim's nor mallory's, and the cookie is
/// cleared (the layer looks at no more than four values).
#[tokio::test]
async fn a_hundred_duplicate_session_cookies_give_a_fresh_session() {
    for mode in Mode::ALL {
        let (target, value, other) = victim(mode).await;
        let cases: [(&str, Vec<&str>); 4] = [
            ("victim's first", vec![&value, &other]),
            ("victim's last", vec![&other, &value]),
            ("victim's twice", vec![&value, &value, &other]),
            ("victim's alone", vec![&value]),
        ];
        for (label, genuine) in cases {
            let values = hundred_values(&genuine);
            let header = values
                .iter()
                .map(|v| format!("session={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            target
                .hostile(
                    &format!("{mode:?}: 100 cookies, {label}"),
                    header.as_bytes(),
                    Expect::Cleared,
                )
                .await;
            // One `Cookie` header per value, as HTTP/2 sends them.
            let headers: Vec<Vec<u8>> = values
                .iter()
                .map(|v| format!("session={v}").into_bytes())
                .collect();
            let headers: Vec<&[u8]> = headers.iter().map(Vec::as_slice).collect();
            target
                .hostile_all(
                    &format!("{mode:?}: 100 Cookie headers, {label}"),
                    &headers,
                    Expect::Cleared,
                )
                .await;
        }
        target.report("100 duplicates", mode);
    }
}

#[tokio::test]
async fn host_prefix_names_are_exact_and_bound_into_the_seal() {
    for mode in Mode::ALL {
        let (plain, value, _) = victim(mode).await;
        let host_app = app_with(mode.store(KEY_A), |b| {
            b.cookie_name("__Host-session").secure(true)
        });
        let host_cookie = claim(&host_app, None, "host").await;
        assert!(host_cookie.starts_with("__Host-session="), "{host_cookie}");
        let host_value = session_value(&host_cookie).to_owned();
        assert!(
            fetch(&host_app, "/whoami", Some(&host_cookie))
                .await
                .body
                .starts_with("host|")
        );
        let host = Target::new(host_app, "__Host-session", &[&host_cookie, &value]);
        // Not our name: a `__Host-` layer never reads these.
        for name in [
            "session",
            "__host-session",
            "__HOST-session",
            "__Host-Session",
            "Host-session",
            "__Secure-session",
        ] {
            let header = format!("{name}={host_value}");
            host.hostile(
                &format!("{mode:?}: `{name}=` to the __Host- layer"),
                header.as_bytes(),
                Expect::Untouched,
            )
            .await;
        }
        // Our name with a value sealed for the plain name: the name is
        // authenticated, so it does not open.
        host.hostile(
            &format!("{mode:?}: plain `session` value as `__Host-session=`"),
            &host.pair(value.as_bytes()),
            Expect::Cleared,
        )
        .await;
        // And the other way round: the `__Host-` value under the plain name.
        plain
            .hostile(
                &format!("{mode:?}: `__Host-` value as `session=`"),
                &plain.pair(host_value.as_bytes()),
                Expect::Cleared,
            )
            .await;
        // A layer named with the prefix in lower case (no `__Host-` rules
        // apply to it) does not open what the `__Host-` layer sealed.
        let lower = Target::new(
            app_with(mode.store(KEY_A), |b| b.cookie_name("__host-session")),
            "__host-session",
            &[&host_cookie],
        );
        lower
            .hostile(
                &format!("{mode:?}: `__Host-` value to a `__host-session` layer"),
                &lower.pair(host_value.as_bytes()),
                Expect::Cleared,
            )
            .await;
        host.report("__Host- prefix", mode);
        plain.report("__Host- prefix (plain app)", mode);
        lower.report("__Host- prefix (lower-case app)", mode);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One arbitrary value under our name, in both modes: 200, a fresh
/// session, the value cleared, nothing of it logged.
fn arbitrary_value(value: &str) -> Result<(), TestCaseError> {
    runtime().block_on(async {
        for mode in Mode::ALL {
            let target = Target::new(app(mode, KEY_A), "session", &[]);
            let header = format!("session={value}");
            let (reply, log) = target.send(value, header.as_bytes()).await;
            prop_assert_eq!(reply.status, http::StatusCode::OK);
            prop_assert_eq!(reply.body.as_str(), FRESH);
            prop_assert!(
                reply
                    .set_cookie()
                    .is_some_and(|set| set.starts_with("session=;") && is_removal(set)),
                "{:?}: not cleared: {:?}",
                mode,
                reply.set_cookies
            );
            target.no_leak(value, &[header.as_bytes()], &log);
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_base64url_values_give_a_fresh_session(value in "[A-Za-z0-9_-]{0,400}") {
        arbitrary_value(&value)?;
    }

    #[test]
    fn arbitrary_printable_values_give_a_fresh_session(value in "[ -~]{0,400}") {
        arbitrary_value(&value)?;
    }
}
