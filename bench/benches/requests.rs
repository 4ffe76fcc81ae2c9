//! Scenarios B (read-only request), C (writing request) and D (first
//! request, creating a session) through `Router::oneshot`: typed-sessions
//! (its `MemoryStore`) against bare axum (scenario A, the floor), bare axum
//! behind a no-op layer, and tower-sessions (its `MemoryStore`). See
//! `bench/README.md`.
//!
//! Every peer serves the same three routes with the same handler shape and
//! the same response body (the peers are in `common/peers.rs`):
//! - `GET /read`: reads the profile, answers `"{user_name}:{visits}"`;
//! - `POST /write`: increments `visits`, answers the same body;
//! - `POST /login`, sent without a cookie: stores `Profile::sample()` in a
//!   new session (bare axum: in a process-wide `Mutex`), answers `"ok"`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};

#[path = "common/profile.rs"]
mod profile;
use profile::Profile;

#[path = "common/peers.rs"]
mod peers;
use peers::{Case, Peer, json_size, request, runtime, send};

// ---------------------------------------------------------------- criterion

/// One group per scenario; inside it the peers run one after another in the
/// same process, so the report shows them side by side.
fn scenario(c: &mut Criterion, rt: &tokio::runtime::Runtime, peers: &[Peer], case: Case) {
    let mut group = c.benchmark_group(case.name());
    for peer in peers {
        if case == Case::Create {
            // Every create adds a session to the store: each sample starts
            // from a fresh peer (built outside the timed part), so the store
            // holds at most one sample's sessions and memory stays bounded.
            group.bench_function(peer.name, |b| {
                b.to_async(rt).iter_custom(|iters| async move {
                    let fresh = peers::peer(peer.name).await;
                    let start = Instant::now();
                    for _ in 0..iters {
                        let (status, body, set_cookie) =
                            send(&fresh.app, request(Case::Create, "")).await;
                        debug_assert_eq!(status, 200);
                        black_box((body, set_cookie));
                    }
                    let elapsed: Duration = start.elapsed();
                    drop(fresh);
                    elapsed
                });
            });
            continue;
        }
        group.bench_function(peer.name, |b| {
            b.to_async(rt).iter(|| async {
                let (status, body, set_cookie) = send(&peer.app, request(case, &peer.cookie)).await;
                debug_assert_eq!(status, 200);
                black_box((body, set_cookie))
            });
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    println!(
        "session data: Profile, {} bytes as one serde_json object",
        json_size::<Profile>()
    );
    let peers = rt.block_on(peers::peers());
    for peer in &peers {
        rt.block_on(peers::sanity_check(peer));
    }
    for case in Case::ALL {
        scenario(c, &rt, &peers, case);
    }
}

criterion_group!(requests, benches);

/// `PROFILE_LOOP=<read|write|create>/<peer>:<n>` runs exactly `n` requests
/// of one case without criterion (for `valgrind --tool=callgrind`, where a
/// fixed count makes instruction counts per request comparable); otherwise
/// the criterion benchmarks run as usual.
fn main() {
    if let Ok(spec) = std::env::var("PROFILE_LOOP") {
        profile_loop(&spec);
        return;
    }
    // What `criterion_main!(requests)` expands to.
    requests();
    Criterion::default().configure_from_args().final_summary();
}

fn profile_loop(spec: &str) {
    let (case, count) = spec
        .split_once(':')
        .expect("PROFILE_LOOP=<read|write|create>/<peer>:<n>");
    let (case, name) = case.split_once('/').expect("<read|write|create>/<peer>");
    let case = Case::parse(case);
    let count: u64 = count.parse().expect("a request count");
    let rt = runtime();
    let peer = rt.block_on(peers::peer(name));
    rt.block_on(async {
        for _ in 0..count {
            black_box(send(&peer.app, request(case, &peer.cookie)).await);
        }
    });
}
