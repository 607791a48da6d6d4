//! Decompressed chunk frames, shared by every reader of every block.
//!
//! Block chunks are stored in zstd frames of ~128 KiB, so a read decompresses whole frames.
//! Dashboards and rules read the same recent series again every few seconds; without this
//! cache, each query over a 7-day range decompressed every frame it touched again (a
//! quarter of its time). Frames are kept least recently used first out, within one byte
//! budget for the whole process, and dropped with their block.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

/// Bytes of decompressed frames the process keeps.
const BUDGET_BYTES: usize = 64 << 20;

/// The process-wide cache.
pub(crate) static FRAMES: LazyLock<FrameCache> = LazyLock::new(|| FrameCache::new(BUDGET_BYTES));

/// A key for each opened block, so that frames of different blocks (and of a block
/// reopened after compaction rewrote its directory) never mix.
pub(crate) fn next_block_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub(crate) struct FrameCache {
    budget: usize,
    inner: Mutex<Inner>,
}

/// A frame and when it was last used (by the cache's clock).
type Entry = (Arc<Vec<u8>>, u64);

#[derive(Default)]
struct Inner {
    /// `(block key, frame offset)` -> frame.
    frames: HashMap<(u64, u64), Entry>,
    bytes: usize,
    clock: u64,
}

impl FrameCache {
    pub(crate) fn new(budget: usize) -> FrameCache {
        FrameCache { budget, inner: Mutex::new(Inner::default()) }
    }

    pub(crate) fn get(&self, block: u64, offset: u64) -> Option<Arc<Vec<u8>>> {
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let now = inner.clock;
        let (frame, used) = inner.frames.get_mut(&(block, offset))?;
        *used = now;
        Some(frame.clone())
    }

    /// Keeps a frame, evicting the least recently used ones beyond the budget. A frame
    /// larger than an eighth of the budget is not kept: it would evict too many others.
    pub(crate) fn insert(&self, block: u64, offset: u64, frame: Arc<Vec<u8>>) {
        let size = frame.len();
        if size > self.budget / 8 {
            return;
        }
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let now = inner.clock;
        if let Some((old, _)) = inner.frames.insert((block, offset), (frame, now)) {
            inner.bytes -= old.len();
        }
        inner.bytes += size;
        if inner.bytes > self.budget {
            let mut by_age: Vec<((u64, u64), u64)> = inner.frames.iter().map(|(k, (_, used))| (*k, *used)).collect();
            by_age.sort_unstable_by_key(|&(_, used)| used);
            for (key, _) in by_age {
                if inner.bytes <= self.budget {
                    break;
                }
                if let Some((old, _)) = inner.frames.remove(&key) {
                    inner.bytes -= old.len();
                }
            }
        }
    }

    /// Drops the frames of a block that is gone.
    pub(crate) fn forget_block(&self, block: u64) {
        let mut inner = self.inner.lock();
        let mut freed = 0;
        inner.frames.retain(|&(b, _), (frame, _)| {
            let keep = b != block;
            if !keep {
                freed += frame.len();
            }
            keep
        });
        inner.bytes -= freed;
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Arc<Vec<u8>> {
        Arc::new(vec![0; len])
    }

    #[test]
    fn keeps_the_most_recently_used_frames_within_its_budget() {
        let cache = FrameCache::new(100);
        cache.insert(1, 0, frame(10));
        cache.insert(1, 10, frame(10));
        cache.insert(2, 0, frame(10));
        assert_eq!(cache.bytes(), 30);
        // Used again: now the newest.
        assert!(cache.get(1, 0).is_some());
        for i in 0..8 {
            cache.insert(3, i, frame(10));
        }
        assert!(cache.bytes() <= 100);
        assert!(cache.get(1, 0).is_some(), "recently used");
        assert!(cache.get(1, 10).is_none(), "least recently used, evicted");
        assert!(cache.get(1, 99).is_none(), "never stored");
        cache.insert(4, 0, frame(13));
        assert!(cache.get(4, 0).is_none(), "larger than an eighth of the budget");
    }

    #[test]
    fn a_forgotten_block_gives_back_its_bytes() {
        let cache = FrameCache::new(1000);
        cache.insert(1, 0, frame(10));
        cache.insert(1, 10, frame(20));
        cache.insert(2, 0, frame(40));
        cache.insert(1, 0, frame(10));
        assert_eq!(cache.bytes(), 70, "a frame stored again is counted once");
        cache.forget_block(1);
        assert_eq!(cache.bytes(), 40);
        assert!(cache.get(1, 10).is_none());
        assert!(cache.get(2, 0).is_some());
    }
}
