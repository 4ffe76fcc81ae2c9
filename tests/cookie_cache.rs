//! `CookieStore`'s memory of recent values: a value sealed here, or opened
//! with the primary key, opens again from memory (byte-for-byte equal),
//! with exactly the result the keys would give: expiry still applies, a
//! value opened by a fallback key is re-issued every time, a changed
//! value never opens.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use typed_sessions::stores::{CookieKey, CookieStore};
use typed_sessions::{Session, SessionData, SessionLayer};
use typed_sessions_test_support::schemas::{Tracked, decodes};
use typed_sessions_test_support::{ManualClock, fetch, submit};

#[derive(SessionData, Default, Clone)]
#[session(namespace = "visits", cached)]
struct Visits {
    count: Tracked,
}

fn key(byte: u8) -> CookieKey {
    CookieKey::from_bytes(vec![byte; 32])
}

fn modes(byte: u8) -> [CookieStore; 2] {
    [
        CookieStore::private(key(byte)),
        CookieStore::signed(key(byte)),
    ]
}

fn app(store: CookieStore, clock: Option<std::sync::Arc<ManualClock>>) -> Router {
    let mut builder = SessionLayer::builder(store)
        .secure(false)
        .idle_timeout(Duration::from_mins(1));
    if let Some(clock) = clock {
        builder = builder.clock(clock);
    }
    Router::new()
        .route(
            "/incr",
            post(|mut v: Session<Visits>| async move {
                v.count.0 += 1;
                v.count.0.to_string()
            }),
        )
        .route(
            "/count",
            get(|v: Session<Visits>| async move { v.count.0.to_string() }),
        )
        .layer(builder.build().expect("a valid layer"))
}

/// Reads of one cookie share one opened record: the `cached` schema's
/// decoded copy is reused, which only happens when the record is.
#[tokio::test]
async fn reads_of_one_value_share_what_it_opened_to() {
    for store in modes(1) {
        let app = app(store, None);
        let cookie = submit(&app, "/incr", None).await.cookie();
        let before = decodes();
        for _ in 0..4 {
            assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
        }
        assert_eq!(decodes() - before, 1, "decoded once, then shared");
    }
}

#[tokio::test]
async fn a_capacity_of_zero_opens_every_time() {
    for store in modes(1) {
        let app = app(store.cache_capacity(0), None);
        let cookie = submit(&app, "/incr", None).await.cookie();
        let before = decodes();
        for _ in 0..3 {
            assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
        }
        assert_eq!(decodes() - before, 3);
        let next = submit(&app, "/incr", Some(&cookie)).await;
        assert_eq!(next.body, "2");
        assert_eq!(fetch(&app, "/count", Some(&next.cookie())).await.body, "2");
    }
}

#[tokio::test]
async fn a_remembered_value_still_expires() {
    for store in modes(1) {
        let clock = ManualClock::starting_now();
        let app = app(store, Some(clock.clone()));
        let cookie = submit(&app, "/incr", None).await.cookie();
        assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
        clock.advance(Duration::from_secs(61));
        let late = fetch(&app, "/count", Some(&cookie)).await;
        assert_eq!(late.body, "0", "idle timeout from inside the payload");
        assert!(late.has_removal(), "and the cookie is cleared");
    }
}

#[tokio::test]
async fn a_value_opened_by_a_fallback_key_is_reissued_every_time() {
    for (old, new) in [
        (CookieStore::private(key(1)), CookieStore::private(key(2))),
        (CookieStore::signed(key(1)), CookieStore::signed(key(2))),
    ] {
        let old_cookie = submit(&app(old, None), "/incr", None).await.cookie();
        let rotated = app(new.fallback_key(key(1)), None);
        for _ in 0..3 {
            let read = fetch(&rotated, "/count", Some(&old_cookie)).await;
            assert_eq!(read.body, "1");
            assert_ne!(read.cookie(), old_cookie, "re-issued under the primary key");
        }
    }
}

/// Every one-character change of a remembered value (the value itself
/// opens from memory) reads as a fresh session and clears the cookie.
#[tokio::test]
async fn a_changed_copy_of_a_remembered_value_never_opens() {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for store in modes(1) {
        let app = app(store, None);
        let cookie = submit(&app, "/incr", None).await.cookie();
        assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
        let (name, value) = cookie.split_once('=').expect("name=value");
        for (i, byte) in value.bytes().enumerate() {
            let other =
                ALPHABET[(ALPHABET.iter().position(|&c| c == byte).unwrap() + 1 + i % 63) % 64];
            let mut changed = value.as_bytes().to_vec();
            changed[i] = other;
            let changed = format!("{name}={}", String::from_utf8(changed).unwrap());
            let reply = fetch(&app, "/count", Some(&changed)).await;
            assert_eq!(reply.body, "0", "position {i}");
            assert!(reply.has_removal(), "position {i}");
        }
        // Appended and truncated copies too.
        for changed in [format!("{cookie}A"), cookie[..cookie.len() - 1].to_owned()] {
            let reply = fetch(&app, "/count", Some(&changed)).await;
            assert_eq!(reply.body, "0");
        }
        assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "1");
    }
}

/// Each write's new value is remembered when sealed: reading it back
/// decodes nothing more than the write did.
#[tokio::test]
async fn a_sealed_value_is_remembered() {
    for store in modes(1) {
        let app = app(store, None);
        let mut cookie = submit(&app, "/incr", None).await.cookie();
        for n in 2..5 {
            let reply = submit(&app, "/incr", Some(&cookie)).await;
            assert_eq!(reply.body, n.to_string());
            cookie = reply.cookie();
        }
        let before = decodes();
        for _ in 0..3 {
            assert_eq!(fetch(&app, "/count", Some(&cookie)).await.body, "4");
        }
        assert_eq!(decodes() - before, 1, "opened from memory, decoded once");
    }
}
