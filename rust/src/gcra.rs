//! Generic Cell Rate Algorithm, as a pure function of the stored theoretical
//! arrival time (TAT). Times are seconds as f64 on any clock the caller likes.
//!
//! ```text
//! tau      = emission_interval * burst
//! base     = max(tat, now)
//! new_tat  = base + cost * emission_interval
//! allow_at = new_tat - tau
//! now < allow_at  -> denied: retry_after = allow_at - now, tat unchanged
//! otherwise       -> allowed: tat = new_tat
//! remaining = floor((tau - (tat_after - now)) / emission_interval), >= 0
//! ```
//!
//! The comparison is made on `tat - now` and tolerates float rounding of the
//! order of 1e-9 s plus 1e-12 relative to the magnitudes involved, so that
//! e.g. `burst` requests at the same instant all pass. A request whose cost
//! exceeds the burst can never pass: it is denied with `retry_after = inf`.
//! `cost = 0` is a peek: it never changes the state.

/// Outcome of one GCRA step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    /// TAT to store (the input `tat` when denied).
    pub tat: f64,
    /// Seconds until this request would be allowed; 0 when allowed.
    pub retry_after: f64,
    /// Seconds until the limiter is fully reset: `max(tat - now, 0)`.
    pub reset_after: f64,
    /// Unit-cost requests that would pass right now.
    pub remaining: u64,
}

/// Invalid GCRA parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcraError(pub String);

impl std::fmt::Display for GcraError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GcraError {}

fn invalid(msg: String) -> GcraError {
    GcraError(msg)
}

/// Check the parameters [`gcra`] validates (exposed for the limiter).
pub fn validate(
    tat: f64,
    now: f64,
    emission_interval: f64,
    burst: f64,
    cost: f64,
) -> Result<(), GcraError> {
    if !(emission_interval > 0.0 && emission_interval.is_finite()) {
        return Err(invalid(format!(
            "emission_interval must be a finite number > 0, got {emission_interval}"
        )));
    }
    if !(burst >= 1.0 && burst.is_finite()) {
        return Err(invalid(format!(
            "burst must be a finite number >= 1, got {burst}"
        )));
    }
    if !(cost >= 0.0 && cost.is_finite()) {
        return Err(invalid(format!(
            "cost must be a finite number >= 0, got {cost}"
        )));
    }
    if !now.is_finite() {
        return Err(invalid(format!("now must be finite, got {now}")));
    }
    if !tat.is_finite() {
        return Err(invalid(format!("tat must be finite, got {tat}")));
    }
    // Finite inputs can still overflow: an infinite tau or increment would
    // make `new_ahead - tau` NaN, allow the request and store TAT = inf.
    if !(emission_interval * burst).is_finite() {
        return Err(invalid(format!(
            "emission_interval * burst overflows: {emission_interval} * {burst}"
        )));
    }
    if !(cost * emission_interval).is_finite() {
        return Err(invalid(format!(
            "cost * emission_interval overflows: {cost} * {emission_interval}"
        )));
    }
    Ok(())
}

/// One GCRA step; see the module docs.
pub fn gcra(
    tat: f64,
    now: f64,
    emission_interval: f64,
    burst: f64,
    cost: f64,
) -> Result<Decision, GcraError> {
    validate(tat, now, emission_interval, burst, cost)?;
    let t = emission_interval;
    let tau = t * burst;
    let increment = cost * t;
    // Allowance for float rounding when tat/now are large absolute times.
    let eps = 1e-9 + 1e-12 * (now.abs() + tat.abs() + tau);
    let ahead = (tat - now).max(0.0); // how far the stored TAT is in the future
    let new_tat = tat.max(now) + increment;
    if !(eps.is_finite() && ahead.is_finite() && new_tat.is_finite()) {
        return Err(invalid(format!(
            "times out of range: tat={tat}, now={now}, cost * emission_interval={increment}"
        )));
    }
    let remaining_at = |ahead_after: f64| -> u64 {
        let r = ((tau - ahead_after + eps) / t).floor();
        if r > 0.0 {
            r as u64 // saturating cast
        } else {
            0
        }
    };
    if increment > tau + eps {
        return Ok(Decision {
            allowed: false,
            tat,
            retry_after: f64::INFINITY,
            reset_after: ahead,
            remaining: remaining_at(ahead),
        });
    }
    let new_ahead = ahead + increment;
    let wait = new_ahead - tau; // allow_at - now
    if wait > eps {
        return Ok(Decision {
            allowed: false,
            tat,
            retry_after: wait,
            reset_after: ahead,
            remaining: remaining_at(ahead),
        });
    }
    Ok(Decision {
        allowed: true,
        tat: new_tat,
        retry_after: 0.0,
        reset_after: (new_tat - now).max(0.0),
        remaining: remaining_at(new_ahead),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_deny_then_recover() {
        // 1 request per second, burst 3.
        let (t, burst) = (1.0, 3.0);
        let mut tat = 0.0;
        let now = 100.0;
        for expect_remaining in [2, 1, 0] {
            let d = gcra(tat, now, t, burst, 1.0).unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, expect_remaining);
            assert_eq!(d.retry_after, 0.0);
            tat = d.tat;
        }
        assert_eq!(tat, 103.0);
        let d = gcra(tat, now, t, burst, 1.0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.tat, tat);
        assert_eq!(d.retry_after, 1.0);
        assert_eq!(d.reset_after, 3.0);
        assert_eq!(d.remaining, 0);
        let d = gcra(tat, now + 1.0, t, burst, 1.0).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let d = gcra(d.tat, now + 10.0, t, burst, 1.0).unwrap();
        assert!(d.allowed);
        assert_eq!((d.tat, d.remaining, d.reset_after), (111.0, 2, 1.0));
    }

    #[test]
    fn float_rounding_does_not_deny_the_last_burst_slot() {
        for &(t, burst, now) in &[
            (0.06, 5.0, 0.0),
            (0.1, 10.0, 1.7e9),
            (1.0 / 3.0, 7.0, 12345.678),
        ] {
            let mut tat = 0.0;
            for i in 0..burst as usize {
                let d = gcra(tat, now, t, burst, 1.0).unwrap();
                assert!(d.allowed, "t={t} burst={burst} now={now} i={i}");
                assert_eq!(d.remaining, burst as u64 - 1 - i as u64);
                tat = d.tat;
            }
            assert!(!gcra(tat, now, t, burst, 1.0).unwrap().allowed);
        }
    }

    #[test]
    fn fractional_and_zero_cost() {
        let d = gcra(0.0, 10.0, 1.0, 2.0, 0.5).unwrap();
        assert!(d.allowed);
        assert_eq!((d.tat, d.remaining), (10.5, 1));
        let peek = gcra(d.tat, 10.0, 1.0, 2.0, 0.0).unwrap();
        assert!(peek.allowed);
        assert_eq!((peek.tat, peek.remaining), (10.5, 1));
        let d = gcra(d.tat, 10.0, 1.0, 2.0, 1.5).unwrap();
        assert!(d.allowed);
        assert_eq!((d.tat, d.remaining), (12.0, 0));
        let d = gcra(d.tat, 10.0, 1.0, 2.0, 0.5).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, 0.5);
    }

    #[test]
    fn cost_above_burst_never_passes() {
        let d = gcra(0.0, 10.0, 1.0, 3.0, 4.0).unwrap();
        assert!(!d.allowed);
        assert!(d.retry_after.is_infinite());
        assert_eq!((d.tat, d.reset_after, d.remaining), (0.0, 0.0, 3));
        assert!(gcra(0.0, 10.0, 1.0, 3.0, 3.0).unwrap().allowed);
    }

    #[test]
    fn denied_cost_reports_partial_remaining() {
        let d = gcra(12.0, 10.0, 1.0, 5.0, 4.0).unwrap(); // 3 slots free
        assert!(!d.allowed);
        assert_eq!((d.remaining, d.retry_after, d.reset_after), (3, 1.0, 2.0));
    }

    #[test]
    fn validation() {
        for (ei, burst, cost, now, tat) in [
            (0.0, 1.0, 1.0, 0.0, 0.0),
            (-1.0, 1.0, 1.0, 0.0, 0.0),
            (f64::NAN, 1.0, 1.0, 0.0, 0.0),
            (f64::INFINITY, 1.0, 1.0, 0.0, 0.0),
            (1.0, 0.5, 1.0, 0.0, 0.0),
            (1.0, f64::NAN, 1.0, 0.0, 0.0),
            (1.0, 1.0, -1.0, 0.0, 0.0),
            (1.0, 1.0, f64::NAN, 0.0, 0.0),
            (1.0, 1.0, 1.0, f64::NAN, 0.0),
            (1.0, 1.0, 1.0, 0.0, f64::INFINITY),
        ] {
            assert!(
                gcra(tat, now, ei, burst, cost).is_err(),
                "{ei} {burst} {cost} {now} {tat}"
            );
        }
        let e = gcra(0.0, 0.0, 0.0, 1.0, 1.0).unwrap_err();
        assert!(e.0.contains("emission_interval"));
        let e = gcra(0.0, 0.0, 1.0, 0.0, 1.0).unwrap_err();
        assert!(e.0.contains("burst"));
    }

    #[test]
    fn overflow_is_an_error_never_an_infinite_tat() {
        // Each of these used to be allowed with tat = inf (or with NaN math).
        for (tat, now, ei, burst, cost) in [
            (0.0, 0.0, 1e200, 1e200, 1e200),         // tau and increment overflow
            (0.0, 0.0, 1e200, 1e200, 1.0),           // tau overflows
            (0.0, 0.0, 1e300, 1.0, 1e10),            // increment overflows
            (1.79e308, 1.79e308, 1e305, 10.0, 10.0), // new tat overflows
            (1e308, -1e308, 1.0, 1.0, 1.0),          // tat - now overflows
        ] {
            let r = gcra(tat, now, ei, burst, cost);
            assert!(r.is_err(), "{tat} {now} {ei} {burst} {cost}: {r:?}");
        }
        // Large but representable values still work.
        let d = gcra(0.0, 1e6, 1e100, 1e100, 1.0).unwrap();
        assert!(d.allowed && d.tat.is_finite());
    }

    #[test]
    fn old_tat_is_treated_as_now() {
        let d = gcra(-1e9, 5.0, 2.0, 1.0, 1.0).unwrap();
        assert!(d.allowed);
        assert_eq!((d.tat, d.reset_after, d.remaining), (7.0, 2.0, 0));
    }
}
