//! What a schema's values may hold: values the codec cannot read back, and
//! changes made through interior mutability.

use typed_sessions_test_support as common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::{get, post};
use common::{CountingStore, ManualClock, fetch, submit};
use typed_sessions::{Codec, JsonCodec, Session, SessionData, SessionLayer};

#[derive(SessionData, Default)]
#[session(namespace = "floats")]
struct Floats {
    single: f32,
    double: f64,
    many: Vec<f64>,
}

fn float_app(store: &CountingStore, clock: &Arc<ManualClock>) -> Router {
    Router::new()
        .route(
            "/seed",
            post(|mut f: Session<Floats>| async move {
                f.single = 1.5;
                f.double = 2.5;
                f.many = vec![3.5];
            }),
        )
        .route(
            "/set/{which}/{value}",
            post(
                |axum::extract::Path((which, value)): axum::extract::Path<(String, String)>,
                 mut f: Session<Floats>| async move {
                    // As a form field would arrive: "NaN" and "inf" parse.
                    let v: f64 = value.parse().unwrap();
                    match which.as_str() {
                        #[allow(clippy::cast_possible_truncation)]
                        "single" => f.single = v as f32,
                        "double" => f.double = v,
                        _ => f.many.push(v),
                    }
                },
            ),
        )
        .route(
            "/atomic/{value}",
            post(
                |axum::extract::Path(value): axum::extract::Path<f64>,
                 mut f: Session<Floats>| async move {
                    match f.update(|f| f.double = value).await {
                        Ok(()) => (http::StatusCode::OK, String::new()),
                        Err(e) => (e.status(), e.to_string()),
                    }
                },
            ),
        )
        .route(
            "/get",
            get(|f: Session<Floats>| async move {
                format!("{} {} {:?}", f.single, f.double, f.many)
            }),
        )
        .layer(
            SessionLayer::builder(store.clone())
                .clock(clock.clone())
                .on_decode_failure(typed_sessions::DecodeFailurePolicy::Strict)
                .build()
                .unwrap(),
        )
}

#[test]
fn json_codec_refuses_what_it_cannot_decode_back() {
    assert!(JsonCodec::encode(&f64::NAN).is_err());
    assert!(JsonCodec::encode(&f64::INFINITY).is_err());
    assert!(JsonCodec::encode(&f32::NEG_INFINITY).is_err());
    assert!(JsonCodec::encode(&vec![1.0, f64::NAN]).is_err());
    assert!(JsonCodec::encode(&Some(vec![(1, f32::NAN)])).is_err());
    // Finite values, and `null`s that are not floats, still encode.
    assert_eq!(JsonCodec::encode(&vec![1.5, -0.0]).unwrap(), b"[1.5,-0.0]");
    assert_eq!(JsonCodec::encode(&Option::<f64>::None).unwrap(), b"null");
    assert_eq!(JsonCodec::encode("null NaN").unwrap(), b"\"null NaN\"");
}

#[tokio::test]
async fn non_finite_floats_are_refused_before_anything_is_written() {
    let clock = ManualClock::new();
    let store = CountingStore::new(Arc::clone(&clock));
    let app = float_app(&store, &clock);
    let cookie = submit(&app, "/seed", None).await.cookie();
    let saves = store.counts.saves();
    for path in [
        "/set/single/NaN",
        "/set/double/inf",
        "/set/many/-inf",
        "/atomic/NaN",
    ] {
        let reply = submit(&app, path, Some(&cookie)).await;
        assert_eq!(reply.status, 500, "{path}: {}", reply.body);
        assert!(
            reply.set_cookies.is_empty(),
            "{path}: {:?}",
            reply.set_cookies
        );
    }
    assert_eq!(store.counts.saves(), saves, "nothing was written");
    let read = fetch(&app, "/get", Some(&cookie)).await;
    assert_eq!(read.status, 200, "the stored data stays readable");
    assert_eq!(read.body, "1.5 2.5 [3.5]");
}

// ---------------------------------------------------------------------------
// Interior mutability: a namespace is compared with what was loaded when it
// was borrowed mutably (`DerefMut`, or the `&mut T` that `update` hands its
// closure); a change made through `&T` alone is not seen.

#[derive(SessionData, Default)]
#[session(namespace = "cell")]
struct Cell {
    hits: Mutex<u64>,
}

fn bump(cell: &Cell) {
    *cell.hits.lock().unwrap() += 1;
}

#[tokio::test]
async fn interior_mutability_is_saved_exactly_when_the_value_is_borrowed_mutably() {
    let clock = ManualClock::new();
    let store = CountingStore::new(Arc::clone(&clock));
    let app = Router::new()
        .route("/shared", post(|c: Session<Cell>| async move { bump(&c) }))
        .route(
            "/mutable",
            post(|mut c: Session<Cell>| async move {
                // A mutable borrow (DerefMut), even if only read through.
                let cell: &mut Cell = &mut c;
                bump(cell);
            }),
        )
        .route(
            "/update",
            post(|mut c: Session<Cell>| async move { c.update(|c| bump(c)).await.unwrap() }),
        )
        .route(
            "/get",
            get(|c: Session<Cell>| async move { c.hits.lock().unwrap().to_string() }),
        )
        .layer(
            SessionLayer::builder(store.clone())
                .clock(clock)
                .build()
                .unwrap(),
        );
    let cookie = submit(&app, "/mutable", None).await.cookie();
    assert_eq!(fetch(&app, "/get", Some(&cookie)).await.body, "1");
    let shared = submit(&app, "/shared", Some(&cookie)).await;
    assert!(shared.set_cookies.is_empty());
    assert_eq!(
        fetch(&app, "/get", Some(&cookie)).await.body,
        "1",
        "through &T: not saved"
    );
    submit(&app, "/mutable", Some(&cookie)).await;
    assert_eq!(fetch(&app, "/get", Some(&cookie)).await.body, "2");
    submit(&app, "/update", Some(&cookie)).await;
    assert_eq!(fetch(&app, "/get", Some(&cookie)).await.body, "3");
}

/// Every finite float survives `JsonCodec` bit for bit: a stored value
/// read back and written again is the same value (and the same bytes, so
/// an unchanged field is never written). Found by the `decode_fields`
/// fuzz target: 7.444444444444444e48 came back one unit in the last place
/// higher until `serde_json`'s exact float parsing (`float_roundtrip`) was on.
#[test]
fn floats_round_trip_bit_for_bit() {
    use typed_sessions::Codec as _;
    for value in [7.444_444_444_444_444e48_f64, 0.1, 1e-300, f64::MAX, 5e-324] {
        let bytes = JsonCodec::encode(&value).unwrap();
        let back: f64 = JsonCodec::decode(&bytes).unwrap();
        assert_eq!(back.to_bits(), value.to_bits(), "{value:e}");
    }
    proptest::proptest!(|(bits in proptest::prelude::any::<u64>())| {
        let value = f64::from_bits(bits);
        if value.is_finite() {
            let bytes = JsonCodec::encode(&value).unwrap();
            let back: f64 = JsonCodec::decode(&bytes).unwrap();
            proptest::prop_assert_eq!(back.to_bits(), value.to_bits());
        }
    });
}
