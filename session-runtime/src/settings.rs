//! The settings a layer was built with, shared by every request through an
//! `Arc`, and the deadline arithmetic of expiry.

use std::time::Duration;

use crate::backend::Backend;
use crate::clock::SharedClock;
use crate::cookie::SessionCookie;
use crate::id::LogSecret;

/// What a request gets when the store cannot be reached to load its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreDownPolicy {
    /// 503 Service Unavailable with `Retry-After` (the default).
    FailClosed {
        /// The `Retry-After` delay sent to the client (whole seconds).
        retry_after: Duration,
    },
    /// Treat the request as anonymous: a fresh, empty session. Writes still
    /// fail with 503 if the store is still down when they are saved.
    FailOpen,
}

impl StoreDownPolicy {
    /// The `Retry-After` delay of a 503 answered for a store failure.
    pub(crate) fn retry_after(self) -> Duration {
        match self {
            Self::FailClosed { retry_after } => retry_after,
            Self::FailOpen => Duration::from_secs(5),
        }
    }
}

/// What happens when a stored field no longer decodes into its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DecodeFailurePolicy {
    /// That namespace reads as `Default` (logged); other namespaces are untouched (the default).
    #[default]
    Reset,
    /// The request fails with 500.
    Strict,
}

/// What happens when a namespace was stored by a newer version of the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NewerVersionPolicy {
    /// The request fails with 500 and the stored data is never overwritten (the default).
    #[default]
    Reject,
    /// The namespace reads as `Default`; a write replaces the newer data.
    Reset,
}

/// Everything a layer was built with.
pub(crate) struct Settings {
    pub(crate) backend: Backend,
    pub(crate) cookie: SessionCookie,
    pub(crate) expiry: Expiry,
    pub(crate) store_down: StoreDownPolicy,
    pub(crate) decode_failure: DecodeFailurePolicy,
    pub(crate) newer_version: NewerVersionPolicy,
    /// How long `update` and the write-back's rebase keep retrying
    /// (`SessionLayerBuilder::update_deadline`).
    pub(crate) update_deadline: Duration,
    pub(crate) clock: SharedClock,
    pub(crate) log_secret: LogSecret,
    /// Add `Vary: Cookie` and `Cache-Control: private`.
    pub(crate) cache_headers: bool,
}

/// The timeouts, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expiry {
    pub(crate) idle_ms: Option<u64>,
    pub(crate) absolute_ms: Option<u64>,
    pub(crate) store_ttl_ms: u64,
    pub(crate) refresh_share: f64,
}

impl Expiry {
    /// Whether the cookie carries `Max-Age` (a timeout is configured).
    pub(crate) fn persistent(&self) -> bool {
        self.idle_ms.is_some() || self.absolute_ms.is_some()
    }

    /// The session's own deadline under the current configuration,
    /// `min(created + absolute, last_seen + idle)`, or `None` for a
    /// browser-session cookie. Both timeouts are applied as configured now,
    /// so a shorter timeout also ends sessions stored before it was set.
    pub(crate) fn session_deadline(&self, created_at_ms: u64, last_seen_ms: u64) -> Option<u64> {
        let absolute = self.absolute_ms.map(|a| created_at_ms.saturating_add(a));
        let idle = self.idle_ms.map(|i| last_seen_ms.saturating_add(i));
        match (absolute, idle) {
            (Some(a), Some(i)) => Some(a.min(i)),
            (a, i) => a.or(i),
        }
    }

    /// Whether a stored session is over at `now`: its own deadline, or the
    /// store's, has passed.
    pub(crate) fn is_over(
        &self,
        created_at_ms: u64,
        last_seen_ms: u64,
        store_deadline_ms: u64,
        now_ms: u64,
    ) -> bool {
        self.cookie_deadline(created_at_ms, last_seen_ms, store_deadline_ms) <= now_ms
    }

    /// The store deadline for a write at `now`: the session's deadline when a
    /// timeout is set, otherwise `now + store TTL`.
    pub(crate) fn write_deadline(&self, created_at_ms: u64, now_ms: u64) -> u64 {
        self.session_deadline(created_at_ms, now_ms)
            .unwrap_or_else(|| now_ms.saturating_add(self.store_ttl_ms))
    }

    /// The deadline the cookie's Max-Age counts down to: the session's own
    /// deadline, never past the store's.
    pub(crate) fn cookie_deadline(
        &self,
        created_at_ms: u64,
        last_seen_ms: u64,
        store_deadline_ms: u64,
    ) -> u64 {
        self.session_deadline(created_at_ms, last_seen_ms)
            .map_or(store_deadline_ms, |d| d.min(store_deadline_ms))
    }

    /// Sliding refresh on a request that writes nothing: the new store
    /// deadline when one is due. The deadline the current configuration asks
    /// for may differ from the stored one: it is lowered at once (a shorter
    /// timeout was configured, and this access counts as the last one),
    /// raised when it is fixed (absolute only: a longer timeout was
    /// configured), and slid for an idle timeout or store TTL at most once
    /// per `refresh_share` of the period since the last write or refresh.
    pub(crate) fn refresh_due(
        &self,
        created_at_ms: u64,
        last_seen_ms: u64,
        store_deadline_ms: u64,
        now_ms: u64,
    ) -> Option<u64> {
        let target = self.write_deadline(created_at_ms, now_ms);
        let due = match (self.idle_ms, self.absolute_ms) {
            _ if target < store_deadline_ms => true,
            _ if target == store_deadline_ms => false,
            (None, Some(_)) => true,
            (idle, _) => {
                let period = idle.unwrap_or(self.store_ttl_ms);
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss,
                    reason = "a share of a period in ms fits easily"
                )]
                let throttle = (period as f64 * self.refresh_share) as u64;
                // Due once the share has passed, or earlier when the store
                // would drop the record before the next due refresh (a
                // longer timeout was configured since it was written).
                now_ms >= last_seen_ms.saturating_add(throttle)
                    || store_deadline_ms.saturating_sub(now_ms) < period - throttle
            }
        };
        due.then_some(target)
    }
}
