//! Tests of the shared table: claims, identity, takeovers, leases.

use super::*;
use std::sync::Arc;

/// A table under a name of its own, removed when dropped.
pub(crate) struct Scratch {
    pub table: Table,
    name: String,
}

impl Scratch {
    pub fn new(tag: &str, slots: usize) -> Scratch {
        let name = format!("relay-test-{tag}-{}", std::process::id());
        let _ = crate::shm::unlink(&name);
        Scratch {
            table: Table::create(&name, slots).unwrap(),
            name,
        }
    }

    pub fn attach(&self) -> Table {
        Table::attach(&self.name).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = crate::shm::unlink(&self.name);
    }
}

fn id(bucket: usize, check: u64, ident: u64) -> KeyId {
    KeyId {
        bucket,
        check,
        ident,
    }
}

fn set_tat(t: &Table, key: KeyId, tat: f64, now: f64) {
    let i = t.locate(key, now, true).unwrap().unwrap();
    t.slot(key.bucket, i).tat.store(encode(tat), SeqCst);
}

#[test]
fn tat_encoding() {
    assert_eq!(decode(encode(0.0)), Some(0.0));
    assert_ne!(encode(0.0), NO_TAT);
    assert_eq!(decode(encode(-3.5)), Some(-3.5));
    assert_eq!((decode(NO_TAT), decode(MARK)), (None, None));
}

#[test]
fn attach_shares_keys_and_cells() {
    let s = Scratch::new("attach", 100);
    assert_eq!(s.table.slots(), 128); // whole buckets
    let other = s.attach();
    assert_eq!(other.key_id("k:1:rpm"), s.table.key_id("k:1:rpm"));
    let k = s.table.key_id("k:1:rpm");
    assert_eq!(other.locate(k, 0.0, false).unwrap(), None);
    let i = s.table.locate(k, 0.0, true).unwrap().unwrap();
    assert_eq!(other.locate(k, 0.0, false).unwrap(), Some(i));
    assert_eq!((s.table.used(), other.used()), (1, 1));
    // Another table draws other hash keys.
    let t = Scratch::new("attach2", 100);
    assert_ne!(t.table.key_id("k:1:rpm"), k);
}

#[test]
fn attach_refuses_what_is_not_a_table() {
    let name = format!("relay-test-junk-{}", std::process::id());
    let _ = crate::shm::unlink(&name);
    let seg = Segment::create(&name, HEADER_WORDS + BUCKET_WORDS).unwrap();
    assert!(matches!(
        Table::attach(&name),
        Err(ShmError::Incompatible(_))
    ));
    drop(seg);
    crate::shm::unlink(&name).unwrap();
    assert!(matches!(Table::attach(&name), Err(ShmError::NotFound(_))));
    assert!(Table::create(&name, 0).is_err());
}

#[test]
fn same_check_other_ident_is_another_key() {
    let s = Scratch::new("collide", 32);
    let (a, b) = (id(0, 7, 1), id(0, 7, 2));
    let ia = s.table.locate(a, 0.0, true).unwrap().unwrap();
    assert_eq!(s.table.locate(b, 0.0, false).unwrap(), None);
    let ib = s.table.locate(b, 0.0, true).unwrap().unwrap();
    assert_ne!(ia, ib);
    assert_eq!(s.table.locate(a, 0.0, false).unwrap(), Some(ia));
}

#[test]
fn a_half_made_claim_is_finished_by_its_key() {
    let s = Scratch::new("half", 32);
    // A process claimed slot 0 for (check 9, ident 5) and died before its ident CAS.
    s.table.slot(0, 0).check.store(9, SeqCst);
    assert_eq!(s.table.locate(id(0, 9, 5), 0.0, false).unwrap(), Some(0));
    assert!(s.table.slot(0, 0).owned_by(id(0, 9, 5)));
    // Slot 0 is (9, 5) for good: (9, 6) goes on to slot 1.
    assert_eq!(s.table.locate(id(0, 9, 6), 0.0, true).unwrap(), Some(1));
}

#[test]
fn concurrent_inserts_of_one_key_share_one_slot() {
    let s = Arc::new(Scratch::new("race", 64));
    let key = s.table.key_id("t:1:tpm");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || s.table.locate(key, 0.0, true).unwrap().unwrap())
        })
        .collect();
    let slots: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(slots.iter().all(|&i| i == slots[0]), "{slots:?}");
    assert_eq!(s.table.used(), 1);
}

#[test]
fn a_full_bucket_hands_its_oldest_reset_slot_over() {
    let s = Scratch::new("full", 32);
    let keys: Vec<KeyId> = (1..=32).map(|n| id(0, n, n)).collect();
    for (n, k) in keys.iter().enumerate() {
        // Slot n's TAT is 100 + n: at now = 105.5, slots 0..=5 are reset.
        set_tat(&s.table, *k, 100.0 + n as f64, 0.0);
    }
    let new = id(0, 99, 99);
    assert_eq!(s.table.locate(new, 105.5, false).unwrap(), None);
    assert_eq!(s.table.locate(new, 105.5, true).unwrap(), Some(0)); // TAT 100: the oldest
    assert_eq!(s.table.slot(0, 0).tat.load(SeqCst), encode(105.5));
    assert_eq!(s.table.locate(keys[0], 105.5, false).unwrap(), None);
    assert_eq!(s.table.locate(id(0, 98, 98), 105.5, true).unwrap(), Some(1));
    // A slot that never got a TAT goes before any other.
    s.table.slot(0, 20).tat.store(NO_TAT, SeqCst);
    assert_eq!(
        s.table.locate(id(0, 97, 97), 105.5, true).unwrap(),
        Some(20)
    );
    assert_eq!(s.table.counters(), (3, 0));
    // Nothing reset at now = 101.5 (the new cells are at 105.5): full, and nothing moved.
    let err = s.table.locate(id(0, 96, 96), 101.5, true).unwrap_err();
    assert!(err.to_string().contains("full"), "{err}");
    assert_eq!(s.table.counters(), (3, 1));
    assert_eq!(s.table.locate(keys[10], 101.5, false).unwrap(), Some(10));
    assert_eq!(s.table.lease_word(0), 0);
}

#[test]
fn a_dead_holder_does_not_keep_the_lease() {
    let s = Scratch::new("dead", 32);
    for n in 1..=32u64 {
        set_tat(&s.table, id(0, n, n), 1.0, 0.0);
    }
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    s.table.hold_lease_as(0, dead);
    // It died in a takeover: the slot it marked is left behind.
    s.table.slot(0, 3).tat.store(MARK, SeqCst);
    assert!(s.table.locate(id(0, 50, 50), 2.0, true).unwrap().is_some());
    assert_eq!(s.table.slot(0, 3).tat.load(SeqCst), encode(2.0)); // repaired as reset
    assert_eq!(s.table.lease_word(0), 0);
}

#[test]
fn concurrent_takeovers_never_give_a_key_two_slots() {
    let s = Arc::new(Scratch::new("takeover", 32));
    for round in 0..50u64 {
        // Every slot reset; eight threads insert the same new key at once.
        for n in 1..=32u64 {
            let k = id(0, 1000 * round + n, n);
            set_tat(&s.table, k, round as f64, round as f64);
        }
        let key = id(0, 7_000_000 + round, round + 1);
        let now = round as f64 + 0.5;
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || s.table.locate(key, now, true).unwrap().unwrap())
            })
            .collect();
        let slots: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(slots.iter().all(|&i| i == slots[0]), "{round}: {slots:?}");
        let owners = (0..BUCKET_SLOTS)
            .filter(|&i| s.table.slot(0, i).owned_by(key))
            .count();
        assert_eq!(owners, 1);
    }
}
