//! Allocations per request: the peers of `requests.rs` (from
//! `common/peers.rs`) under a counting global allocator, in a bench target
//! of its own so that `requests`' criterion timings keep the plain
//! allocator. For each scenario and peer: a fresh peer, `ALLOCS_WARMUP`
//! (1,000) requests, then `ALLOCS_REQUESTS` (10,000) counted ones; prints a
//! Markdown table. See `bench/README.md`.

use std::hint::black_box;

#[path = "common/profile.rs"]
mod profile;
use profile::Profile;

#[path = "common/peers.rs"]
mod peers;
use peers::{Case, PEER_NAMES, env_or, json_size, request, runtime, send};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{Counting, Snapshot};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    let warmup: u64 = env_or("ALLOCS_WARMUP", 1_000);
    let requests: u64 = env_or("ALLOCS_REQUESTS", 10_000);
    assert!(requests > 0, "ALLOCS_REQUESTS must be positive");
    let rt = runtime();
    println!(
        "\n## Allocations per request (counting global allocator; {warmup} warm-up then {requests} counted requests per row; session data: Profile, {} bytes as serde_json)\n",
        json_size::<Profile>()
    );
    println!(
        "| scenario | peer | allocations / request | over bare axum | bytes allocated / request | frees / request | bytes kept / request |"
    );
    println!("|---|---|---|---|---|---|---|");
    for case in Case::ALL {
        let mut bare_allocs = None;
        for name in PEER_NAMES {
            let peer = rt.block_on(peers::peer(name));
            rt.block_on(peers::sanity_check(&peer));
            let per_request = rt.block_on(async {
                for _ in 0..warmup {
                    black_box(send(&peer.app, request(case, &peer.cookie)).await);
                }
                let before = Snapshot::now();
                for _ in 0..requests {
                    let (status, body, set_cookie) =
                        send(&peer.app, request(case, &peer.cookie)).await;
                    debug_assert_eq!(status, 200);
                    black_box((body, set_cookie));
                }
                Snapshot::now().since(before)
            });
            let n = requests as f64;
            let allocs = per_request.allocs as f64 / n;
            let bare = *bare_allocs.get_or_insert(allocs);
            println!(
                "| {} | {} | {:.2} | {:+.2} | {:.0} | {:.2} | {:.0} |",
                case.name(),
                name,
                allocs,
                allocs - bare,
                per_request.bytes as f64 / n,
                per_request.frees as f64 / n,
                per_request.live as f64 / n,
            );
        }
    }
    println!(
        "\nEach request includes building it (`Request::builder`, a `HeaderMap`) and draining the response body; bare_axum (scenario A) is that floor. \"bytes kept\" is the growth of live heap bytes (by requested sizes) over the counted requests divided by their number: the store's growth per session for create."
    );
}
