//! The `RedisStore` hash decoder on untrusted bytes, through
//! `session_runtime::store::__redis_fuzz` (no Redis around it): what a
//! session hash read back from Redis decodes to, whatever another writer,
//! an older or newer version, or an operator left in it.
//!
//! The first 8 bytes are the clock (`now`, little-endian); the rest is a
//! list of hash fields, each name and value one length byte followed by
//! that many bytes. `__redis_fuzz::hash` never panics on its own input; a
//! record that decodes must read back the same from the layout the save
//! script writes (asserted inside it).

#![no_main]

use libfuzzer_sys::fuzz_target;
use session_runtime::store::__redis_fuzz;

fuzz_target!(|data: &[u8]| {
    let (clock, rest) = data.split_at(data.len().min(8));
    let mut now = [0_u8; 8];
    now[..clock.len()].copy_from_slice(clock);
    let _ = __redis_fuzz::hash(rest, u64::from_le_bytes(now));
});
