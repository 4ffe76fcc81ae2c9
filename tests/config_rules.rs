//! Configuration is checked as strictly as browsers check cookies, and
//! every `ConfigError` names the rule it broke.

use std::time::Duration;

use typed_sessions::stores::{CookieKey, CookieStore, MemoryStore};
use typed_sessions::{ConfigError, SessionLayer, SessionLayerBuilder};

fn builder() -> SessionLayerBuilder {
    SessionLayer::builder(MemoryStore::new())
}

#[test]
fn a_domain_with_a_scheme_port_or_path_is_refused() {
    for bad in [
        "https://example.com",
        "example.com:8443",
        "example.com/app",
        "[::1]",
        "user@example.com",
        "example.com?x",
        "example.com,evil.com",
        "example..com",
        "-bad-.com",
        "*.example.com",
        ".",
        "example.com\\evil",
        "%65xample.com",
        "example.com.",
        "bücher.example",
    ] {
        let err = builder().domain(bad).build().unwrap_err();
        assert_eq!(err, ConfigError::InvalidDomain(bad.to_owned()), "{bad}");
        let text = err.to_string();
        assert!(text.contains("no scheme, port, path"), "{text}");
    }
    for good in [
        "example.com",
        ".example.com",
        "a.b-c.example",
        "localhost",
        "xn--bcher-kva.example",
        "127.0.0.1",
    ] {
        assert!(builder().domain(good).build().is_ok(), "{good}");
    }
}

#[test]
fn lifetimes_over_400_days_are_refused() {
    let cap = Duration::from_hours(400 * 24);
    assert!(builder().idle_timeout(cap).build().is_ok());
    assert!(builder().absolute_timeout(cap).build().is_ok());
    let over = cap + Duration::from_secs(1);
    assert_eq!(
        builder().idle_timeout(over).build().unwrap_err(),
        ConfigError::OverBrowserCap("idle timeout")
    );
    assert_eq!(
        builder().absolute_timeout(over).build().unwrap_err(),
        ConfigError::OverBrowserCap("absolute timeout")
    );
    // Behind a short idle timeout, a long absolute one is fine: the cookie
    // never lives longer than the idle timeout without a refresh.
    assert!(
        builder()
            .idle_timeout(Duration::from_mins(30))
            .absolute_timeout(Duration::from_hours(2 * 365 * 24))
            .build()
            .is_ok()
    );
    let cookie = SessionLayer::builder(CookieStore::private(CookieKey::from_bytes(vec![1; 32])))
        .absolute_timeout(over)
        .build()
        .unwrap_err();
    assert!(cookie.to_string().contains("400 days"), "{cookie}");
}

/// Each error's text names the rule, not only the offending value.
#[test]
fn every_config_error_names_its_rule() {
    let cases: Vec<(ConfigError, &str)> = vec![
        (
            builder().cookie_name("a b").build().unwrap_err(),
            "use letters, digits",
        ),
        (
            builder()
                .cookie_name("__Host-s")
                .path("/app")
                .build()
                .unwrap_err(),
            "needs Secure, Path=/ and no Domain",
        ),
        (
            builder()
                .cookie_name("__Secure-s")
                .secure(false)
                .build()
                .unwrap_err(),
            "needs Secure",
        ),
        (
            builder()
                .same_site(typed_sessions::SameSite::None)
                .secure(false)
                .build()
                .unwrap_err(),
            "needs Secure",
        ),
        (
            builder()
                .partitioned(true)
                .secure(false)
                .build()
                .unwrap_err(),
            "needs Secure",
        ),
        (
            builder().path("app").build().unwrap_err(),
            "starts with `/`",
        ),
        (
            builder().domain("a:1").build().unwrap_err(),
            "bare host name",
        ),
        (
            builder().idle_timeout(Duration::ZERO).build().unwrap_err(),
            "at least one millisecond",
        ),
        (
            builder().refresh_share(0.0).build().unwrap_err(),
            "greater than 0 and at most 1",
        ),
        (
            builder()
                .absolute_timeout(Duration::from_hours(401 * 24))
                .build()
                .unwrap_err(),
            "longest cookie lifetime",
        ),
        (
            SessionLayer::builder(CookieStore::signed(CookieKey::from_bytes(vec![1; 8])))
                .build()
                .unwrap_err(),
            "at least 32 bytes",
        ),
        (
            SessionLayer::builder(
                CookieStore::signed(CookieKey::from_bytes(vec![1; 32])).max_cookie_size(9000),
            )
            .build()
            .unwrap_err(),
            "between",
        ),
    ];
    for (err, rule) in cases {
        let text = err.to_string();
        assert!(text.contains(rule), "{text:?} should name {rule:?}");
    }
}
