//! A token bucket per tenant for samples per second.

use std::time::{SystemTime, UNIX_EPOCH};

/// The source of "now" for rate limiting, in milliseconds.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// Wall-clock time.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// Tokens refill at `rate` per second up to `burst`. A request takes all it needs or nothing.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last_ms: i64,
}

impl TokenBucket {
    pub(crate) fn new(burst: f64, now_ms: i64) -> TokenBucket {
        TokenBucket { tokens: burst, last_ms: now_ms }
    }

    /// Takes `n` tokens if available; otherwise takes none and returns false.
    pub(crate) fn try_take(&mut self, n: f64, rate: f64, burst: f64, now_ms: i64) -> bool {
        let elapsed_s = (now_ms - self.last_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed_s * rate).min(burst);
        self.last_ms = now_ms.max(self.last_ms);
        // A batch larger than the whole burst could never pass; let it through when the
        // bucket is full so a big-but-legal remote_write batch is not refused forever.
        if self.tokens >= n || self.tokens >= burst {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_at_rate_and_caps_at_burst() {
        let mut b = TokenBucket::new(100.0, 0);
        assert!(b.try_take(100.0, 10.0, 100.0, 0));
        assert!(!b.try_take(1.0, 10.0, 100.0, 0));
        assert!(!b.try_take(20.0, 10.0, 100.0, 1000)); // 10 tokens back after 1s
        assert!(b.try_take(10.0, 10.0, 100.0, 1000));
        assert!(b.try_take(100.0, 10.0, 100.0, 1_000_000)); // capped at burst, not 10k
        assert!(!b.try_take(1.0, 10.0, 100.0, 1_000_000));
    }
}
