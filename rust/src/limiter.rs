//! In-process keyed GCRA limiter: a map key -> TAT behind one mutex, so that
//! concurrent checks never overrun the limit.

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

#[derive(Debug, Default)]
pub struct LocalLimiter {
    tats: Mutex<HashMap<String, f64>>,
}

impl LocalLimiter {
    pub fn new() -> Self {
        Self::default()
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
