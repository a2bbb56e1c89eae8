//! Single-flight: concurrent callers with the same key share one upstream call, and callers that
//! arrive shortly after it finished get its result too.
//!
//! A burst of parallel refreshes of one Oxidex refresh token all carry the same upstream refresh
//! token. Sending it upstream once per caller would, with an upstream that rotates refresh
//! tokens, make every call but the first look like a replay (and many providers then revoke the
//! whole grant). The connector keys the flight by a hash of the upstream token, so the burst
//! makes one upstream call and every caller gets its outcome.
//!
//! Outcomes are kept for `keep` after they complete (a straggler that read the old token from
//! storage just before the first caller stored the new one still hits the cached outcome), then
//! forgotten. A caller that is cancelled mid-flight does not cancel the others: the next waiter
//! runs the call instead.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

struct Slot<V> {
    cell: Arc<OnceCell<V>>,
    created: Instant,
}

/// Shares the outcome of one call among concurrent callers with the same key.
pub(crate) struct SingleFlight<K, V> {
    slots: Mutex<Slots<K, V>>,
    keep: Duration,
}

struct Slots<K, V> {
    map: HashMap<K, Slot<V>>,
    /// When expired outcomes were last dropped. Dropping them walks the whole map, so it happens
    /// at most once per `keep / 4`, not on every call: at a thousand refreshes a second the map
    /// holds thousands of outcomes, and walking them on each call, under the lock, would
    /// serialise every refresh on it.
    pruned: Instant,
}

impl<K, V> std::fmt::Debug for SingleFlight<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight").field("keep", &self.keep).finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// A group whose outcomes stay cached for `keep` after the call started.
    pub(crate) fn new(keep: Duration) -> Self {
        Self { slots: Mutex::new(Slots { map: HashMap::new(), pruned: Instant::now() }), keep }
    }

    /// Runs `call` unless a call with the same key is running or finished within `keep`; returns
    /// its outcome either way. `cacheable` says whether an outcome may be served to later callers
    /// (transient failures should not be); concurrent waiters always share it.
    pub(crate) async fn run<F, Fut>(&self, key: K, cacheable: fn(&V) -> bool, call: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let cell = {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let keep = self.keep;
            if now.duration_since(slots.pruned) >= keep / 4 {
                slots.map.retain(|_, slot| {
                    now.duration_since(slot.created) < keep || (!slot.cell.initialized() && slot.in_use())
                });
                slots.pruned = now;
            }
            // An expired outcome not pruned yet is replaced, never served.
            if slots.map.get(&key).is_some_and(|slot| {
                now.duration_since(slot.created) >= keep && (slot.cell.initialized() || !slot.in_use())
            }) {
                slots.map.remove(&key);
            }
            let slot = slots
                .map
                .entry(key.clone())
                .or_insert_with(|| Slot { cell: Arc::new(OnceCell::new()), created: now });
            slot.cell.clone()
        };
        let value = cell.get_or_init(call).await.clone();
        if !cacheable(&value) {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if slots.map.get(&key).is_some_and(|s| Arc::ptr_eq(&s.cell, &cell)) {
                slots.map.remove(&key);
            }
        }
        value
    }
}

impl<V> Slot<V> {
    /// Whether someone besides the map holds the cell (a call is being awaited).
    fn in_use(&self) -> bool {
        Arc::strong_count(&self.cell) > 1
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_burst_makes_one_call_and_everyone_gets_its_outcome() {
        let flights: Arc<SingleFlight<String, u32>> = Arc::new(SingleFlight::new(Duration::from_secs(5)));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (flights, calls) = (flights.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run(
                        "k".into(),
                        |_| true,
                        || async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            7
                        },
                    )
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A straggler within `keep` gets the cached outcome; another key makes its own call.
        assert_eq!(flights.run("k".into(), |_| true, || async { 8 }).await, 7);
        assert_eq!(flights.run("other".into(), |_| true, || async { 9 }).await, 9);
    }

    #[tokio::test]
    async fn uncacheable_outcomes_and_expired_ones_are_not_served_again() {
        let flights: SingleFlight<&str, Result<u32, ()>> = SingleFlight::new(Duration::from_millis(30));
        assert_eq!(flights.run("k", Result::is_ok, || async { Err(()) }).await, Err(()));
        assert_eq!(flights.run("k", Result::is_ok, || async { Ok(1) }).await, Ok(1));
        assert_eq!(flights.run("k", Result::is_ok, || async { Ok(2) }).await, Ok(1));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(flights.run("k", Result::is_ok, || async { Ok(3) }).await, Ok(3));
    }
}
