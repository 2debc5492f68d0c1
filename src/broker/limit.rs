//! Rate limits: one token bucket per route, `count` requests per period,
//! refilled continuously, so a burst of up to `count` is allowed and then
//! one request per `period / count`. A refused request learns how long to
//! wait (the `Retry-After` seconds, rounded up).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::Rate;

/// A token bucket.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: Rate,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    #[must_use]
    pub(crate) fn new(rate: Rate) -> Self {
        Self {
            rate,
            state: Mutex::new((f64::from(rate.count), Instant::now())),
        }
    }

    fn per_token(&self) -> f64 {
        self.rate.per.as_secs_f64() / f64::from(self.rate.count)
    }

    /// Takes one token; `Err` holds how long until one is available.
    pub(crate) fn take(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = &mut *state;
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed / self.per_token()).min(f64::from(self.rate.count));
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - *tokens) * self.per_token()).clamp(0.0, 86_400.0),
            ))
        }
    }

    /// Whole tokens left now (for status).
    #[must_use]
    pub(crate) fn available(&self, now: Instant) -> u32 {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(state.1).as_secs_f64();
        let tokens = (state.0 + elapsed / self.per_token()).min(f64::from(self.rate.count));
        // Bounded by `count`, a u32.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = tokens.floor().max(0.0) as u32;
        whole
    }
}

/// Seconds for `Retry-After`: at least 1, rounded up.
#[must_use]
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval() {
        let b = Bucket::new(Rate {
            count: 2,
            per: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0).is_ok());
        let wait = b.take(t0).expect_err("empty");
        assert_eq!(retry_after_secs(wait), 30);
        assert_eq!(b.available(t0), 0);
        assert!(b.take(t0 + Duration::from_secs(30)).is_ok());
        assert!(b.take(t0 + Duration::from_secs(31)).is_err());
        assert_eq!(b.available(t0 + Duration::from_secs(600)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    }
}
