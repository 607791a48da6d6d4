//! Engine options, with defaults matching Prometheus where Prometheus has one.

use std::path::PathBuf;
use std::time::Duration;

use crate::TsdbError;

/// When the WAL is fsynced. Either way a batch is `write()`-n to the WAL file before `append`
/// returns, which survives the process being killed (the page cache outlives the process);
/// fsync is what survives power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalSync {
    /// fsync before `append` returns. Concurrent appenders share one fsync (group commit).
    Always,
    /// fsync in the background at this interval; a power loss can lose up to one interval.
    Interval(Duration),
}

#[derive(Debug, Clone)]
pub struct TsdbOptions {
    /// Root directory; tenants live under `<dir>/tenants/<tenant>/`.
    pub dir: PathBuf,
    /// Time range of the blocks cut from the head (Prometheus: 2h). Larger blocks are
    /// compacted from these at 3x, 9x, 27x ... up to a tenth of the retention (at most 31 days).
    pub block_range: Duration,
    /// Blocks whose data is entirely older than `now - retention` are deleted (default 15 days).
    pub retention: Duration,
    /// When set, the oldest blocks (of any tenant) are deleted while all blocks together take
    /// more bytes than this. WAL and head are not counted.
    pub max_bytes: Option<u64>,
    /// How far behind a series' newest sample an older sample is still accepted and merged;
    /// zero rejects out-of-order samples as Prometheus does by default.
    pub out_of_order_window: Duration,
    pub wal_sync: WalSync,
    /// WAL segment size before a new segment file is started.
    pub wal_segment_bytes: u64,
    /// Active head series per tenant; a batch that would create more is refused.
    pub max_series_per_tenant: Option<usize>,
    /// Exemplars kept per tenant (a ring: the oldest are dropped).
    pub max_exemplars_per_tenant: usize,
}

impl TsdbOptions {
    pub fn new(dir: impl Into<PathBuf>) -> TsdbOptions {
        TsdbOptions {
            dir: dir.into(),
            block_range: Duration::from_secs(2 * 3600),
            retention: Duration::from_secs(15 * 24 * 3600),
            max_bytes: None,
            out_of_order_window: Duration::ZERO,
            wal_sync: WalSync::Interval(Duration::from_secs(1)),
            wal_segment_bytes: 128 << 20,
            max_series_per_tenant: None,
            max_exemplars_per_tenant: 100_000,
        }
    }

    pub fn validate(&self) -> Result<(), TsdbError> {
        let bad = |m: &str| Err(TsdbError::InvalidOptions(m.to_string()));
        if self.block_range.as_millis() < 1000 {
            return bad("block_range must be at least 1s (the default is 2h)");
        }
        if self.block_range.as_millis() > i64::MAX as u128 / 1024 {
            return bad("block_range is too large");
        }
        if let WalSync::Interval(d) = self.wal_sync {
            if d.is_zero() {
                return bad("wal_sync interval must be positive; use WalSync::Always to fsync every batch");
            }
        }
        if self.wal_segment_bytes < 64 << 10 {
            return bad("wal_segment_bytes must be at least 64KiB");
        }
        Ok(())
    }

    pub(crate) fn block_range_ms(&self) -> i64 {
        self.block_range.as_millis() as i64
    }

    pub(crate) fn ooo_window_ms(&self) -> i64 {
        self.out_of_order_window.as_millis().min(i64::MAX as u128) as i64
    }

    pub(crate) fn retention_ms(&self) -> i64 {
        self.retention.as_millis().min(i64::MAX as u128 / 2) as i64
    }

    /// Block ranges compaction builds: block_range x 3^k, up to a tenth of the retention
    /// (capped at 31 days), as Prometheus's exponential ranges.
    pub(crate) fn compaction_ranges(&self) -> Vec<i64> {
        let max = (self.retention_ms() / 10).min(31 * 24 * 3600 * 1000);
        let mut ranges = vec![self.block_range_ms()];
        while let Some(next) = ranges.last().and_then(|r| r.checked_mul(3)).filter(|&r| r <= max) {
            ranges.push(next);
        }
        ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_ranges_grow_by_three() {
        let o = TsdbOptions::new("/tmp/x");
        o.validate().unwrap();
        let h = 3600 * 1000;
        assert_eq!(o.compaction_ranges(), vec![2 * h, 6 * h, 18 * h]);
    }
}
