//! Process-wide memo tables for the work dashboards repeat on every refresh: parsing a query
//! text and compiling a label matcher's regular expression. Profiled on a 5-series instant
//! query, the two took about 80% of its time (the parser compiles each regex once more).
//!
//! Bounded: a full table is emptied, which costs one recomputation per entry afterwards and
//! keeps memory independent of how many distinct queries arrive. Only successes are kept.

use std::hash::Hash;
use std::sync::{LazyLock, Mutex};

use rustc_hash::FxHashMap;

/// Distinct entries a table holds before it is emptied.
const CAPACITY: usize = 1024;

pub(crate) struct Memo<K, V>(LazyLock<Mutex<FxHashMap<K, V>>>);

impl<K: Hash + Eq, V: Clone> Memo<K, V> {
    pub const fn new() -> Memo<K, V> {
        Memo(LazyLock::new(|| Mutex::new(FxHashMap::default())))
    }

    /// The value for `key`, computed by `make` (outside the lock) when absent.
    pub fn get_or_try_insert<E>(&self, key: K, make: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        if let Some(v) = self.lock().get(&key) {
            return Ok(v.clone());
        }
        let v = make()?;
        let mut table = self.lock();
        if table.len() >= CAPACITY {
            table.clear();
        }
        table.insert(key, v.clone());
        Ok(v)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FxHashMap<K, V>> {
        // A panic while holding the lock leaves a consistent map (inserts are single calls).
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_once_keeps_only_successes_and_stays_bounded() {
        static MEMO: Memo<usize, usize> = Memo::new();
        let calls = std::cell::Cell::new(0);
        let get = |k: usize| {
            MEMO.get_or_try_insert(k, || {
                calls.set(calls.get() + 1);
                if k == 7 {
                    Err("seven")
                } else {
                    Ok(k * 2)
                }
            })
        };
        assert_eq!(get(1), Ok(2));
        assert_eq!(get(1), Ok(2));
        assert_eq!(get(7), Err("seven"));
        assert_eq!(get(7), Err("seven"));
        assert_eq!(calls.get(), 3, "a success is computed once, a failure every time");
        for k in 0..3 * CAPACITY {
            MEMO.get_or_try_insert(k + 100, || Ok::<_, ()>(k)).unwrap();
            assert!(MEMO.lock().len() <= CAPACITY);
        }
    }
}
