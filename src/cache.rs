//! Caches shared by all sessions, as ElectrumX keeps them: bounded LRU maps (txids and
//! merkle levels per block, fee estimates per chain tip) that count lookups and hits for
//! `getinfo`, and single values that expire (daemon answers good for a minute).
//!
//! Both lock a mutex only to read or store, never while the value is computed: two
//! requests that miss at once both compute it, which is cheaper than making every other
//! request wait behind a slow daemon.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A cache's counters, as ElectrumX reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub lookups: u64,
    pub hits: u64,
    pub entries: usize,
}

/// A map holding at most `capacity` entries; inserting beyond that evicts the entry
/// used least recently.
pub struct LruCache<K, V> {
    capacity: usize,
    state: Mutex<LruState<K, V>>,
}

struct LruState<K, V> {
    /// Each value with the tick of its last use.
    entries: HashMap<K, (V, u64)>,
    /// Keys by the tick of their last use, oldest first.
    by_use: BTreeMap<u64, K>,
    tick: u64,
    lookups: u64,
    hits: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Hash + Eq + Clone, V: Clone> LruCache<K, V> {
    /// `capacity` is at least 1.
    pub fn new(capacity: usize) -> LruCache<K, V> {
        LruCache {
            capacity: capacity.max(1),
            state: Mutex::new(LruState {
                entries: HashMap::new(),
                by_use: BTreeMap::new(),
                tick: 0,
                lookups: 0,
                hits: 0,
            }),
        }
    }

    /// The value for `key`, now the most recently used; counted as a lookup, and as a
    /// hit when found.
    pub fn get(&self, key: &K) -> Option<V> {
        let mut state = lock(&self.state);
        let state = &mut *state;
        state.lookups += 1;
        state.tick += 1;
        let (value, used) = state.entries.get_mut(key)?;
        state.hits += 1;
        state.by_use.remove(used);
        *used = state.tick;
        state.by_use.insert(state.tick, key.clone());
        Some(value.clone())
    }

    /// Stores `value` as the most recently used entry, evicting the least recently used
    /// one if the cache is full.
    pub fn insert(&self, key: K, value: V) {
        let mut state = lock(&self.state);
        let state = &mut *state;
        state.tick += 1;
        if let Some((_, used)) = state.entries.insert(key.clone(), (value, state.tick)) {
            state.by_use.remove(&used);
        }
        state.by_use.insert(state.tick, key);
        while state.entries.len() > self.capacity {
            let Some((_, oldest)) = state.by_use.pop_first() else {
                break;
            };
            state.entries.remove(&oldest);
        }
    }

    pub fn stats(&self) -> CacheStats {
        let state = lock(&self.state);
        CacheStats {
            lookups: state.lookups,
            hits: state.hits,
            entries: state.entries.len(),
        }
    }
}

/// One value that is good for `ttl` after it was fetched.
pub struct Expiring<V> {
    ttl: Duration,
    slot: Mutex<Option<(Instant, V)>>,
}

impl<V: Clone> Expiring<V> {
    pub fn new(ttl: Duration) -> Expiring<V> {
        Expiring {
            ttl,
            slot: Mutex::new(None),
        }
    }

    /// The stored value if still fresh, else what `fetch` returns (stored if it is `Ok`).
    pub fn get_or_fetch<E>(&self, fetch: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        if let Some((fetched, value)) = lock(&self.slot).as_ref()
            && fetched.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        let value = fetch()?;
        *lock(&self.slot) = Some((Instant::now(), value.clone()));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_evicts_the_least_recently_used_and_counts() {
        let cache: LruCache<u32, &str> = LruCache::new(2);
        cache.insert(1, "one");
        cache.insert(2, "two");
        assert_eq!(cache.get(&1), Some("one"));
        cache.insert(3, "three");
        assert_eq!(cache.get(&2), None, "2 was used least recently");
        assert_eq!(cache.get(&1), Some("one"));
        assert_eq!(cache.get(&3), Some("three"));
        assert_eq!(
            cache.stats(),
            CacheStats {
                lookups: 4,
                hits: 3,
                entries: 2
            }
        );
    }

    #[test]
    fn lru_replacing_a_key_keeps_one_entry() {
        let cache: LruCache<u32, u32> = LruCache::new(2);
        cache.insert(1, 10);
        cache.insert(1, 11);
        cache.insert(2, 20);
        assert_eq!(cache.get(&1), Some(11));
        assert_eq!(cache.get(&2), Some(20));
        assert_eq!(cache.stats().entries, 2);
    }

    #[test]
    fn expiring_refetches_after_ttl_and_never_stores_errors() {
        let value: Expiring<u32> = Expiring::new(Duration::from_millis(50));
        assert_eq!(value.get_or_fetch(|| Err::<u32, &str>("down")), Err("down"));
        assert_eq!(value.get_or_fetch(|| Ok::<u32, ()>(1)), Ok(1));
        assert_eq!(
            value.get_or_fetch(|| Ok::<u32, ()>(2)),
            Ok(1),
            "still fresh"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(value.get_or_fetch(|| Ok::<u32, ()>(3)), Ok(3));
    }
}
