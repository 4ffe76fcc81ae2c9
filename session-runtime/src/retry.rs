//! Jittered exponential backoff until a deadline: how `update` and the
//! write-back's rebase wait between attempts that met a concurrent write.

use std::time::{Duration, Instant};

const FIRST_PAUSE: Duration = Duration::from_millis(1);
const LONGEST_PAUSE: Duration = Duration::from_millis(50);

/// Pauses between attempts; gives up once the deadline has passed.
pub(crate) struct Backoff {
    started: Instant,
    deadline: Duration,
    next: Duration,
}

/// The deadline passed.
pub(crate) struct GaveUp {
    /// How long the attempts took.
    pub(crate) waited: Duration,
}

impl Backoff {
    /// Starts the clock now.
    pub(crate) fn new(deadline: Duration) -> Self {
        Self {
            started: Instant::now(),
            deadline,
            next: FIRST_PAUSE,
        }
    }

    /// Waits before the next attempt: a random pause in `[d/2, d]`, `d`
    /// doubling from 1 ms up to 50 ms, so that conflicting writers spread
    /// out. `Err` without waiting once the deadline has passed.
    pub(crate) async fn pause(&mut self) -> Result<(), GaveUp> {
        let waited = self.started.elapsed();
        if waited >= self.deadline {
            return Err(GaveUp { waited });
        }
        tokio::time::sleep(jitter(self.next)).await;
        self.next = (self.next * 2).min(LONGEST_PAUSE);
        Ok(())
    }
}

/// A random delay in `[d/2, d]`.
fn jitter(d: Duration) -> Duration {
    let mut byte = [0u8; 1];
    // Without OS randomness the pause is simply `d/2`.
    let _ = getrandom::fill(&mut byte);
    d / 2 + d / 2 * u32::from(byte[0]) / 255
}
