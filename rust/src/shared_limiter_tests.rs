//! Tests of the shared limiter: GCRA decisions, all or nothing, adjustments.

use super::*;
use crate::limiter::LocalLimiter;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Scratch {
    lim: SharedLimiter,
    name: String,
}

impl Scratch {
    fn new(tag: &str, slots: usize) -> Scratch {
        let name = format!("relay-test-lim-{tag}-{}", std::process::id());
        let _ = crate::shm::unlink(&name);
        let lim = SharedLimiter::create(&name, slots).unwrap();
        Scratch { lim, name }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = crate::shm::unlink(&self.name);
    }
}

fn c(key: &str, rate: f64, period: f64, burst: f64, cost: f64) -> ChargeSpec<'_> {
    ChargeSpec {
        key,
        rate,
        period,
        burst,
        cost,
    }
}

#[test]
fn decides_like_the_local_limiter() {
    let s = Scratch::new("local", 1024);
    let local = LocalLimiter::new();
    let steps = [
        ("a", 10.0, 60.0, 3.0, 1.0, 1000.0),
        ("a", 10.0, 60.0, 3.0, 1.0, 1000.0),
        ("a", 10.0, 60.0, 3.0, 1.0, 1000.0),
        ("a", 10.0, 60.0, 3.0, 1.0, 1000.0),
        ("b", 1.0, 1.0, 10.0, 7.0, 1000.0),
        ("b", 1.0, 1.0, 10.0, 4.0, 1000.0),
        ("b", 1.0, 1.0, 10.0, 0.0, 1003.0),
        ("a", 10.0, 60.0, 3.0, 1.0, 1005.9),
        ("a", 10.0, 60.0, 3.0, 1.0, 1006.0),
        ("b", 1.0, 1.0, 10.0, 11.0, 1006.0),
        ("c", 0.2, 1.0, 1.0, 1.0, 1006.0),
        ("c", 0.2, 1.0, 1.0, 1.0, 1010.0),
        ("c", 0.2, 1.0, 1.0, 1.0, 1011.0),
    ];
    for (key, rate, period, burst, cost, now) in steps {
        let want = local
            .check(key, rate, period, burst, cost, Some(now))
            .unwrap();
        let got = s
            .lim
            .take(&[c(key, rate, period, burst, cost)], Some(now))
            .unwrap();
        assert_eq!(got.allowed, want.allowed, "{key} {now}");
        assert_eq!(got.cells, vec![CellOut::from(want)], "{key} {now}");
        let retry = if want.allowed { 0.0 } else { want.retry_after };
        assert_eq!(got.retry_after, retry, "{key} {now}");
        assert_eq!(s.lim.tat(key), local.tat(key), "{key} {now}");
    }
}

#[test]
fn all_or_nothing_across_cells() {
    let s = Scratch::new("aon", 1024);
    let now = Some(50.0);
    // "small" holds 2; "big" 100.
    assert!(
        s.lim
            .take(&[c("small", 1.0, 1.0, 2.0, 2.0)], now)
            .unwrap()
            .allowed
    );
    let before = (s.lim.tat("big"), s.lim.tat("small"));
    let d = s
        .lim
        .take(
            &[
                c("big", 1.0, 1.0, 100.0, 5.0),
                c("small", 1.0, 1.0, 2.0, 1.0),
                c("other", 1.0, 1.0, 3.0, 4.0),
            ],
            now,
        )
        .unwrap();
    assert!(!d.allowed);
    assert_eq!((s.lim.tat("big"), s.lim.tat("small")), before); // nothing charged
    assert_eq!(s.lim.tat("other"), None);
    // Each cell as it was; retry_after: when every refused charge fits ("other": never).
    assert_eq!(
        d.cells,
        vec![
            CellOut {
                remaining: 100,
                reset_after: 0.0
            },
            CellOut {
                remaining: 0,
                reset_after: 2.0
            },
            CellOut {
                remaining: 3,
                reset_after: 0.0
            },
        ]
    );
    assert_eq!(d.retry_after, f64::INFINITY);
    let d = s
        .lim
        .take(
            &[
                c("big", 1.0, 1.0, 100.0, 5.0),
                c("small", 1.0, 1.0, 2.0, 1.0),
            ],
            Some(51.0),
        )
        .unwrap();
    assert!(d.allowed);
    assert_eq!(
        (s.lim.tat("big"), s.lim.tat("small")),
        (Some(56.0), Some(53.0))
    );
}

#[test]
fn a_key_charged_twice_in_one_take() {
    let s = Scratch::new("twice", 1024);
    let now = Some(10.0);
    let d = s
        .lim
        .take(
            &[c("k", 1.0, 1.0, 3.0, 2.0), c("k", 1.0, 1.0, 3.0, 2.0)],
            now,
        )
        .unwrap();
    assert!(!d.allowed && d.retry_after == 1.0);
    assert_eq!(s.lim.tat("k"), None); // the first charge was undone
    assert_eq!(d.cells[0], d.cells[1]);
    let d = s
        .lim
        .take(
            &[c("k", 1.0, 1.0, 3.0, 2.0), c("k", 1.0, 1.0, 3.0, 1.0)],
            now,
        )
        .unwrap();
    assert!(d.allowed && d.cells[1].remaining == 0);
    assert_eq!(s.lim.tat("k"), Some(13.0));
}

#[test]
fn adjust_gives_back_and_charges_over() {
    let s = Scratch::new("adjust", 1024);
    let now = Some(100.0);
    let tpm = |cost| c("t:1:tpm", 100.0, 60.0, 100.0, cost); // 0.6 s per token
    assert!(s.lim.take(&[tpm(50.0)], now).unwrap().allowed);
    s.lim.adjust(&[tpm(-20.0)], now).unwrap(); // used 30 of the 50 reserved
    assert!((s.lim.tat("t:1:tpm").unwrap() - 118.0).abs() < 1e-9);
    s.lim.adjust(&[tpm(-1000.0)], now).unwrap(); // never below empty
    assert_eq!(s.lim.tat("t:1:tpm"), Some(100.0));
    s.lim.adjust(&[tpm(150.0)], now).unwrap(); // over the burst: 90 s ahead
    assert!((s.lim.tat("t:1:tpm").unwrap() - 190.0).abs() < 1e-9);
    let d = s.lim.take(&[tpm(1.0)], now).unwrap();
    assert!(!d.allowed && (d.retry_after - 30.6).abs() < 1e-9);
    // Giving back to a cell that has none, or nothing at all, stores nothing.
    s.lim
        .adjust(&[c("absent", 1.0, 1.0, 1.0, -5.0)], now)
        .unwrap();
    s.lim
        .adjust(&[c("absent", 1.0, 1.0, 1.0, 0.0)], now)
        .unwrap();
    assert_eq!(s.lim.tat("absent"), None);
    s.lim.adjust(&[c("new", 1.0, 1.0, 1.0, 3.0)], now).unwrap();
    assert_eq!(s.lim.tat("new"), Some(103.0));
}

#[test]
fn invalid_charges_change_nothing() {
    let s = Scratch::new("invalid", 1024);
    let now = Some(0.0);
    assert!(
        s.lim
            .take(&[c("a", 1.0, 1.0, 5.0, 1.0)], now)
            .unwrap()
            .allowed
    );
    for bad in [
        c("b", 0.0, 1.0, 1.0, 1.0),
        c("b", 1.0, 1.0, 0.5, 1.0),
        c("b", 1.0, 1.0, 1.0, -1.0),
        c("b", 1.0, 1.0, 1.0, f64::NAN),
        c("b", 1.0, 1e300, 1e300, 1.0),
    ] {
        let r = s.lim.take(&[c("a", 1.0, 1.0, 5.0, 1.0), bad], now);
        assert!(matches!(r, Err(LimitError::Invalid(_))), "{bad:?}");
    }
    assert!(s
        .lim
        .adjust(&[c("a", 1.0, 1.0, 5.0, f64::INFINITY)], now)
        .is_err());
    assert!(s
        .lim
        .take(&[c("a", 1.0, 1.0, 5.0, 1.0)], Some(f64::NAN))
        .is_err());
    assert_eq!(s.lim.tat("a"), Some(1.0));
    assert_eq!(s.lim.table().used(), 1);
}

#[test]
fn a_full_table_refuses_to_decide_and_peeks_take_no_slot() {
    let s = Scratch::new("full", 32);
    let keys: Vec<String> = (0..32).map(|i| format!("k{i}")).collect();
    for k in &keys {
        assert!(
            s.lim
                .take(&[c(k, 1.0, 60.0, 5.0, 1.0)], Some(0.0))
                .unwrap()
                .allowed
        );
    }
    let r = s.lim.take(&[c("late", 1.0, 60.0, 5.0, 1.0)], Some(1.0));
    assert!(matches!(r, Err(LimitError::Full(_))));
    // A peek, a refusal of a cost above the burst, and an adjustment giving back need no cell.
    assert!(
        s.lim
            .take(&[c("late", 1.0, 60.0, 5.0, 0.0)], Some(1.0))
            .unwrap()
            .allowed
    );
    assert!(
        !s.lim
            .take(&[c("late", 1.0, 60.0, 5.0, 9.0)], Some(1.0))
            .unwrap()
            .allowed
    );
    s.lim
        .adjust(&[c("late", 1.0, 60.0, 5.0, -1.0)], Some(1.0))
        .unwrap();
    assert!(matches!(
        s.lim.adjust(&[c("late", 1.0, 60.0, 5.0, 1.0)], Some(1.0)),
        Err(LimitError::Full(_))
    ));
    // A refused multi-cell take puts the first cell back.
    let r = s.lim.take(
        &[c("k0", 1.0, 60.0, 5.0, 1.0), c("late", 1.0, 60.0, 5.0, 1.0)],
        Some(1.0),
    );
    assert!(matches!(r, Err(LimitError::Full(_))));
    assert_eq!(s.lim.tat("k0"), Some(60.0));
    // Once the cells reset (60 s per unit), the new key takes the oldest slot.
    assert!(
        s.lim
            .take(&[c("late", 1.0, 60.0, 5.0, 1.0)], Some(61.0))
            .unwrap()
            .allowed
    );
    assert_eq!(s.lim.table().used(), 32);
}

#[test]
fn concurrent_takes_never_overrun() {
    let s = Arc::new(Scratch::new("threads", 1024));
    let passed = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (s, passed) = (s.clone(), passed.clone());
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let d = s.lim.take(&[c("k", 1e-6, 1.0, 37.0, 1.0)], None).unwrap();
                    if d.allowed {
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

#[test]
fn rollbacks_under_contention_leave_exact_counts() {
    // Threads take "wide" alone, or "wide" then "narrow": when "narrow" refuses,
    // the charge on "wide" is undone. "wide" never refills (one unit a day).
    let s = Arc::new(Scratch::new("rollback", 1024));
    let (alone, both) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let (s, alone, both) = (s.clone(), alone.clone(), both.clone());
            std::thread::spawn(move || {
                for i in 0..400 {
                    let wide = c("wide", 1.0, 86400.0, 1000.0, 1.0);
                    let narrow = c("narrow", 1.0, 86400.0, 150.0, 1.0);
                    if (n + i) % 2 == 0 {
                        if s.lim.take(&[wide], None).unwrap().allowed {
                            alone.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if s.lim.take(&[wide, narrow], None).unwrap().allowed {
                        both.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (alone, both) = (alone.load(Ordering::Relaxed), both.load(Ordering::Relaxed));
    assert_eq!(both, 150);
    assert_eq!(alone + both, 1000);
    // The next charge of "wide" is refused: nothing leaked from the rollbacks.
    let d = s
        .lim
        .take(&[c("wide", 1.0, 86400.0, 1000.0, 1.0)], None)
        .unwrap();
    assert!(!d.allowed && d.cells[0].remaining == 0);
}

#[test]
fn processes_share_one_table() {
    let s = Scratch::new("attached", 1024);
    let other = SharedLimiter::attach(&s.name).unwrap();
    let k = c("k", 1.0, 1.0, 2.0, 1.0);
    assert!(s.lim.take(&[k], Some(5.0)).unwrap().allowed);
    assert!(other.take(&[k], Some(5.0)).unwrap().allowed);
    assert!(!s.lim.take(&[k], Some(5.0)).unwrap().allowed);
    assert_eq!(other.tat("k"), Some(7.0));
}

#[test]
fn takeovers_under_contention_keep_every_limit() {
    // One bucket; each round 24 new keys, charged by 4 threads at once, take over
    // the slots of the round before (reset by then): each key passes exactly once.
    let s = Arc::new(Scratch::new("churn", 32));
    for round in 0..40 {
        let now = Some(f64::from(round));
        let threads: Vec<_> = (0..4)
            .map(|n| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut passed = vec![0usize; 24];
                    for i in 0..24 * 8 {
                        let k = (i + n * 7) % 24;
                        let key = format!("r{round}-k{k}");
                        let d = s.lim.take(&[c(&key, 2.0, 1.0, 1.0, 1.0)], now).unwrap();
                        passed[k] += usize::from(d.allowed);
                    }
                    passed
                })
            })
            .collect();
        let passes: Vec<Vec<usize>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for k in 0..24 {
            let total: usize = passes.iter().map(|p| p[k]).sum();
            assert_eq!(total, 1, "round {round} key {k}");
        }
    }
    assert!(s.lim.table().counters().0 >= 24 * 38);
}
