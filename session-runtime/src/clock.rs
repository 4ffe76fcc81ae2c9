//! Time, injectable so that expiry can be tested without sleeping.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time for expiry decisions.
///
/// The default is [`SystemClock`]. Tests can pass their own clock to both
/// [`SessionLayer`](crate::SessionLayer) and [`MemoryStore`](crate::store::MemoryStore)
/// to move time forward without sleeping.
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use typed_sessions::Clock;
///
/// #[derive(Default)]
/// struct ManualClock(AtomicU64);
///
/// impl Clock for ManualClock {
///     fn now(&self) -> SystemTime {
///         UNIX_EPOCH + Duration::from_millis(self.0.load(Ordering::SeqCst))
///     }
/// }
///
/// let clock = ManualClock::default();
/// clock.0.store(5_000, Ordering::SeqCst);
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(5));
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A shared clock handle.
#[derive(Clone)]
pub(crate) struct SharedClock(pub(crate) Arc<dyn Clock>);

impl SharedClock {
    pub(crate) fn system() -> Self {
        Self(Arc::new(SystemClock))
    }

    /// Milliseconds since the Unix epoch; times before it read as 0.
    pub(crate) fn now_ms(&self) -> u64 {
        to_ms(self.0.now())
    }
}

impl fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

pub(crate) fn to_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Saturates instead of panicking where `SystemTime` is narrower than `u64` ms.
pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or_else(|| UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX)))
}

pub(crate) fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
