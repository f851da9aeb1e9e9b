//! In-process keyed GCRA limiter: a map key -> TAT behind one mutex, so that
//! concurrent checks never overrun the limit.
//!
//! The map holds at most `max_keys` keys. When a new key would exceed it, the
//! keys that are fully reset (TAT <= now) are dropped first; if that frees
//! less than 1/16 of `max_keys`, the keys with the smallest TAT (the closest
//! to reset) are evicted down to `max_keys - 1 - max_keys / 16`. Evicting a
//! key at worst lets it start fresh with a full burst. The slack keeps the
//! cost amortized: one O(n) pass per `max_keys / 16` new keys.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::gcra::{self, Decision, GcraError};

/// Seconds on the monotonic clock the limiter uses by default.
///
/// On Unix this is `CLOCK_MONOTONIC`, the same clock (and epoch) as Python's
/// `time.monotonic()`, so the two can be mixed. Elsewhere it counts from the
/// first call in this process.
pub fn monotonic() -> f64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    }
    #[cfg(not(unix))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        EPOCH.get_or_init(Instant::now).elapsed().as_secs_f64()
    }
}

/// `rate` requests per `period` seconds -> seconds between requests.
pub fn emission_interval(rate: f64, period: f64) -> Result<f64, GcraError> {
    if !(rate > 0.0 && rate.is_finite()) {
        return Err(GcraError(format!(
            "rate must be a finite number > 0, got {rate}"
        )));
    }
    if !(period > 0.0 && period.is_finite()) {
        return Err(GcraError(format!(
            "period must be a finite number > 0, got {period}"
        )));
    }
    Ok(period / rate)
}

/// Default bound on the number of keys.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct LocalLimiter {
    tats: Mutex<HashMap<String, f64>>,
    max_keys: usize,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalLimiter {
    pub fn new() -> Self {
        Self::with_max_keys(DEFAULT_MAX_KEYS).expect("the default is valid")
    }

    /// A limiter that never holds more than `max_keys` (>= 1) keys.
    pub fn with_max_keys(max_keys: usize) -> Result<Self, GcraError> {
        if max_keys == 0 {
            return Err(GcraError("max_keys must be >= 1, got 0".to_owned()));
        }
        Ok(LocalLimiter {
            tats: Mutex::new(HashMap::new()),
            max_keys,
        })
    }

    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, f64>> {
        // The critical sections cannot panic midway, so a poisoned map is intact.
        self.tats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run one GCRA step for `key` and store the new TAT if allowed.
    /// `now = None` reads [`monotonic`] under the lock.
    pub fn check(
        &self,
        key: &str,
        rate: f64,
        period: f64,
        burst: f64,
        cost: f64,
        now: Option<f64>,
    ) -> Result<Decision, GcraError> {
        let t = emission_interval(rate, period)?;
        gcra::validate(0.0, now.unwrap_or(0.0), t, burst, cost)?;
        let mut map = self.lock();
        let now = now.unwrap_or_else(monotonic);
        // An absent key is fully reset, like a TAT of `now`.
        let tat = map.get(key).copied().unwrap_or(now);
        let d = gcra::gcra(tat, now, t, burst, cost)?;
        if d.allowed && cost > 0.0 {
            match map.get_mut(key) {
                Some(v) => *v = d.tat,
                None => {
                    if map.len() >= self.max_keys {
                        make_room(&mut map, self.max_keys, now);
                    }
                    map.insert(key.to_owned(), d.tat);
                }
            }
        }
        Ok(d)
    }

    /// Give back `cost` units: `tat -= cost * interval`, but not below `now`.
    pub fn refund(
        &self,
        key: &str,
        rate: f64,
        period: f64,
        cost: f64,
        now: Option<f64>,
    ) -> Result<(), GcraError> {
        let t = emission_interval(rate, period)?;
        if !(cost >= 0.0 && cost.is_finite()) {
            return Err(GcraError(format!(
                "cost must be a finite number >= 0, got {cost}"
            )));
        }
        if let Some(n) = now {
            if !n.is_finite() {
                return Err(GcraError(format!("now must be finite, got {n}")));
            }
        }
        let mut map = self.lock();
        let now = now.unwrap_or_else(monotonic);
        if let Some(tat) = map.get_mut(key) {
            *tat = (*tat - cost * t).max(now);
        }
        Ok(())
    }

    /// Forget `key`.
    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Drop keys whose TAT is `<= now` (fully reset); returns how many.
    pub fn purge(&self, now: Option<f64>) -> usize {
        let mut map = self.lock();
        let now = now.unwrap_or_else(monotonic);
        let before = map.len();
        map.retain(|_, tat| *tat > now);
        before - map.len()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored TAT of `key`, if any.
    pub fn tat(&self, key: &str) -> Option<f64> {
        self.lock().get(key).copied()
    }
}

/// Called when the map is full: see the module docs.
fn make_room(map: &mut HashMap<String, f64>, max_keys: usize, now: f64) {
    map.retain(|_, tat| *tat > now);
    let target = max_keys - 1 - max_keys / 16;
    if map.len() <= target {
        return; // purging alone freed enough
    }
    let evict = map.len() - target;
    let mut tats: Vec<f64> = map.values().copied().collect();
    let (_, &mut cut, _) = tats.select_nth_unstable_by(evict - 1, f64::total_cmp);
    // Evict every TAT below `cut`, and as many equal to it as still needed.
    let mut ties = evict - tats.iter().filter(|&&t| t < cut).count();
    map.retain(|_, tat| {
        if *tat < cut {
            false
        } else if *tat == cut && ties > 0 {
            ties -= 1;
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn burst_per_key() {
        let l = LocalLimiter::new();
        let now = Some(1000.0);
        // 10 per minute, burst 3.
        let passed = (0..5)
            .filter(|_| l.check("a", 10.0, 60.0, 3.0, 1.0, now).unwrap().allowed)
            .count();
        assert_eq!(passed, 3);
        assert!(l.check("b", 10.0, 60.0, 3.0, 1.0, now).unwrap().allowed);
        assert_eq!(l.len(), 2);
        let d = l.check("a", 10.0, 60.0, 3.0, 1.0, now).unwrap();
        assert!(!d.allowed);
        assert!((d.retry_after - 6.0).abs() < 1e-9);
        assert!(
            l.check("a", 10.0, 60.0, 3.0, 1.0, Some(1006.0))
                .unwrap()
                .allowed
        );
    }

    #[test]
    fn denied_and_peek_do_not_store() {
        let l = LocalLimiter::new();
        assert!(
            !l.check("big", 1.0, 1.0, 2.0, 3.0, Some(0.0))
                .unwrap()
                .allowed
        );
        assert!(
            l.check("peek", 1.0, 1.0, 2.0, 0.0, Some(0.0))
                .unwrap()
                .allowed
        );
        assert!(l.is_empty());
    }

    #[test]
    fn refund_reset_purge() {
        let l = LocalLimiter::new();
        let now = Some(50.0);
        for _ in 0..2 {
            assert!(l.check("k", 1.0, 1.0, 2.0, 1.0, now).unwrap().allowed);
        }
        assert!(!l.check("k", 1.0, 1.0, 2.0, 1.0, now).unwrap().allowed);
        l.refund("k", 1.0, 1.0, 1.0, now).unwrap();
        assert_eq!(l.tat("k"), Some(51.0));
        assert!(l.check("k", 1.0, 1.0, 2.0, 1.0, now).unwrap().allowed);
        l.refund("k", 1.0, 1.0, 100.0, now).unwrap();
        assert_eq!(l.tat("k"), Some(50.0));
        l.refund("missing", 1.0, 1.0, 1.0, now).unwrap();
        assert_eq!(l.len(), 1);
        assert!(l.check("j", 1.0, 1.0, 2.0, 1.0, now).unwrap().allowed); // tat 51
        assert_eq!(l.purge(Some(50.5)), 1); // k (tat 50) goes
        assert_eq!(l.purge(Some(51.0)), 1);
        assert!(l.is_empty());
        assert!(l.check("x", 1.0, 1.0, 2.0, 1.0, now).unwrap().allowed);
        l.reset("x");
        assert!(l.is_empty());
    }

    #[test]
    fn validation() {
        let l = LocalLimiter::new();
        assert!(l.check("k", 0.0, 1.0, 1.0, 1.0, None).is_err());
        assert!(l.check("k", 1.0, -1.0, 1.0, 1.0, None).is_err());
        assert!(l.check("k", 1.0, 1.0, 0.0, 1.0, None).is_err());
        assert!(l.check("k", 1.0, 1.0, 1.0, -1.0, None).is_err());
        assert!(l.check("k", 1.0, 1.0, 1.0, 1.0, Some(f64::NAN)).is_err());
        assert!(l.refund("k", 1.0, 1.0, f64::NAN, None).is_err());
    }

    #[test]
    fn overflowing_parameters_never_corrupt_a_key() {
        let l = LocalLimiter::new();
        let now = Some(0.0);
        assert!(l.check("k", 1.0, 1.0, 2.0, 1.0, now).unwrap().allowed);
        let before = l.tat("k");
        // interval 1e200: burst and cost overflow tau and the increment.
        assert!(l.check("k", 1.0, 1e200, 1e200, 1e200, now).is_err());
        assert!(l.check("k", 1e-200, 1e200, 1.0, 1.0, now).is_err()); // interval = inf
        assert!(l.check("k", 1.0, 1.0, f64::INFINITY, 1.0, now).is_err());
        assert!(l.check("k", 1.0, 1.0, 2.0, f64::INFINITY, now).is_err());
        assert!(l
            .check("k", 1.0, 1.0, 2.0, 1.0, Some(f64::INFINITY))
            .is_err());
        assert!(l.check("k", 1.0, 1e300, 2.0, 1.0, Some(f64::MAX)).is_err());
        assert!(l.check("new", 1.0, 1e200, 1e200, 1e200, now).is_err());
        assert_eq!(l.tat("k"), before);
        assert_eq!(l.len(), 1);
        // The key still works.
        assert!(l.check("k", 1.0, 1.0, 2.0, 1.0, now).unwrap().allowed);
    }

    #[test]
    fn bounded_purges_reset_keys_first() {
        let l = LocalLimiter::with_max_keys(100).unwrap();
        // 100 keys: k0..k49 reset by t=10, k50..k99 not.
        for i in 0..100 {
            let now = if i < 50 { 0.0 } else { 10.0 };
            assert!(
                l.check(&format!("k{i}"), 1.0, 1.0, 5.0, 1.0, Some(now))
                    .unwrap()
                    .allowed
            );
        }
        assert_eq!(l.len(), 100);
        assert!(
            l.check("new", 1.0, 1.0, 5.0, 1.0, Some(10.0))
                .unwrap()
                .allowed
        );
        assert_eq!(l.len(), 51);
        assert!((50..100).all(|i| l.tat(&format!("k{i}")).is_some()));
        assert!(LocalLimiter::with_max_keys(0).is_err());
    }

    #[test]
    fn bounded_evicts_the_keys_closest_to_reset() {
        let l = LocalLimiter::with_max_keys(64).unwrap();
        // Key i has TAT 1000 + i (nobody resets at now = 0).
        for i in 0..64 {
            let cost = 1000.0 + i as f64;
            l.check(&format!("k{i}"), 1.0, 1.0, 2000.0, cost, Some(0.0))
                .unwrap();
        }
        assert_eq!(l.len(), 64);
        l.check("new", 1.0, 1.0, 2000.0, 1500.0, Some(0.0)).unwrap();
        // Down to 64 - 1 - 4 = 59, then the new key: the 5 smallest TATs went.
        assert_eq!(l.len(), 60);
        assert!((0..5).all(|i| l.tat(&format!("k{i}")).is_none()));
        assert!((5..64).all(|i| l.tat(&format!("k{i}")).is_some()));
        assert_eq!(l.tat("new"), Some(1500.0));
        // Equal TATs: exactly as many as needed are evicted.
        let l = LocalLimiter::with_max_keys(3).unwrap();
        for k in ["a", "b", "c", "d", "e"] {
            l.check(k, 1.0, 1.0, 5.0, 1.0, Some(0.0)).unwrap();
            assert!(l.len() <= 3);
        }
        assert_eq!(l.tat("e"), Some(1.0));
        let l = LocalLimiter::with_max_keys(1).unwrap();
        for k in ["a", "b"] {
            l.check(k, 1.0, 1.0, 5.0, 1.0, Some(0.0)).unwrap();
        }
        assert_eq!((l.len(), l.tat("b")), (1, Some(1.0)));
    }

    #[test]
    fn bounded_many_keys_never_exceeds() {
        let l = LocalLimiter::with_max_keys(1000).unwrap();
        for i in 0..20_000 {
            let now = i as f64 * 0.001;
            l.check(&i.to_string(), 1.0, 1.0, 10.0, 1.0, Some(now))
                .unwrap();
            assert!(l.len() <= 1000);
        }
    }

    #[test]
    fn default_clock() {
        let a = monotonic();
        let l = LocalLimiter::new();
        let d = l.check("k", 1.0, 3600.0, 1.0, 1.0, None).unwrap();
        let b = monotonic();
        assert!(d.allowed && d.tat >= a + 3600.0 && d.tat <= b + 3600.0);
        assert!(b >= a);
    }

    #[test]
    fn concurrent_checks_never_overrun() {
        let l = Arc::new(LocalLimiter::new());
        let passed = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (l, passed) = (l.clone(), passed.clone());
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        if l.check("k", 1e-6, 1.0, 37.0, 1.0, None).unwrap().allowed {
                            passed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(passed.load(Ordering::Relaxed), 37);
    }
}
