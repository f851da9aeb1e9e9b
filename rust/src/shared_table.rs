//! A fixed table of TAT words in shared memory, keyed by string, that every
//! process mapping it updates with atomic compare-and-swap.
//!
//! Layout (64-bit words): a header, then buckets of [`BUCKET_SLOTS`] slots.
//! A key hashes (SipHash-1-3 under two keys drawn at creation) to a bucket,
//! a 64-bit `check` and a 64-bit `ident`; it lives in one slot of its bucket:
//!
//! ```text
//! bucket: lease | slot 0: check ident tat | slot 1: ... | slot 31
//! ```
//!
//! * `check` is the claim word: 0 = empty. A key claims the first empty slot
//!   of its bucket with `CAS(check, 0, check)`, then `CAS(ident, 0, ident)`;
//!   anyone who finds `check` equal to theirs and `ident` still 0 completes
//!   the second CAS for it, so a claimer that dies between them never blocks
//!   anyone. A slot is a key's when both words match (a 128-bit identity: two
//!   keys with the same `check` but different `ident` are told apart). Slots
//!   never become empty again, so a lookup stops at the first empty one.
//! * `tat` is the TAT as `f64` bits. 0 means "no TAT" (a fresh slot); a real
//!   +0.0 is stored as -0.0. [`MARK`] (a NaN) means "being moved to another
//!   key". Readers check the slot's identity after loading `tat`.
//! * When a bucket has no empty slot, a new key takes over the slot whose
//!   TAT is the oldest one before now (a fully reset cell: dropping it loses
//!   nothing). Takeovers of a bucket hold its `lease` word (pid and a
//!   counter), only for a scan and four stores, never across a system call:
//!   this is what keeps two processes from giving one key two slots. A
//!   process that finds the lease taken spins, then yields; it takes the lease
//!   over from a holder that died (`kill(pid, 0)`) or held it for 2 s. With
//!   no reset slot in the bucket, the lookup fails with [`TableFull`]: it
//!   never waits for a cell to drain and never drops a live one.
//! * The takeover moves `tat` from T (< now) to `MARK`, writes the identity,
//!   then stores now. Every later value of that word is at least that now, so
//!   a process that loaded T before the takeover can never CAS it.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use crate::shm::{Segment, ShmError};
use crate::siphash::siphash13;

/// Slots per bucket: a key lives in one of these.
pub const BUCKET_SLOTS: usize = 32;
const SLOT_WORDS: usize = 3;
const BUCKET_WORDS: usize = 1 + BUCKET_SLOTS * SLOT_WORDS;
const HEADER_WORDS: usize = 16;
const MAGIC: u64 = u64::from_le_bytes(*b"RELAYLIM");
const VERSION: u64 = 1;
// Header words.
const H_MAGIC: usize = 0;
const H_VERSION: usize = 1;
const H_BUCKETS: usize = 2;
const H_SLOTS: usize = 3;
const H_KEYS: usize = 4; // four words
const H_EVICTIONS: usize = 8;
const H_FULL: usize = 9;

/// `tat` of a slot that holds no TAT yet.
pub const NO_TAT: u64 = 0;
/// `tat` of a slot being moved to another key (a NaN: never a real TAT).
pub const MARK: u64 = u64::MAX;
/// A lease held longer than this belongs to a stopped process: take it over.
const STALE_LEASE: Duration = Duration::from_secs(2);

/// `t` as stored (+0.0 becomes -0.0, so that 0 can mean "no TAT").
pub fn encode(t: f64) -> u64 {
    if t.to_bits() == NO_TAT {
        (-0.0f64).to_bits()
    } else {
        t.to_bits()
    }
}

/// The TAT stored in `bits`, if any (None for [`NO_TAT`] and [`MARK`]).
pub fn decode(bits: u64) -> Option<f64> {
    (bits != NO_TAT && bits != MARK).then(|| f64::from_bits(bits))
}

/// A key's place and identity in one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId {
    pub bucket: usize,
    check: u64,
    ident: u64,
}

/// Every slot of a key's bucket holds a live cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFull {
    pub slots: usize,
}

impl std::fmt::Display for TableFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the shared limit table is full: the {BUCKET_SLOTS} slots this key may use \
             (of {}) all hold limits that have not reset; give it more slots",
            self.slots
        )
    }
}

/// One slot's three words.
pub struct Slot<'a> {
    check: &'a AtomicU64,
    ident: &'a AtomicU64,
    pub tat: &'a AtomicU64,
}

impl Slot<'_> {
    /// Whether the slot is `id`'s (completing a claim left half done).
    fn claimed_by(&self, id: KeyId) -> bool {
        let ident = match self.ident.load(SeqCst) {
            0 => match self.ident.compare_exchange(0, id.ident, SeqCst, SeqCst) {
                Ok(_) => id.ident,
                Err(seen) => seen,
            },
            seen => seen,
        };
        ident == id.ident
    }

    /// Whether the slot is `id`'s right now (load `tat` first, then this).
    pub fn owned_by(&self, id: KeyId) -> bool {
        self.check.load(SeqCst) == id.check && self.ident.load(SeqCst) == id.ident
    }
}

enum Probe {
    Found(usize),
    Empty(usize),
    Full,
}

/// The table in a mapped segment.
pub struct Table {
    seg: Segment,
    buckets: usize,
    keys: [u64; 4],
}

static LEASES: AtomicU32 = AtomicU32::new(0);

/// Holds a bucket's lease until dropped.
struct Lease<'a> {
    word: &'a AtomicU64,
    token: u64,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // Fails only if the lease was taken over from us: then it is not ours to free.
        let _ = self.word.compare_exchange(self.token, 0, SeqCst, SeqCst);
    }
}

fn alive(pid: u64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let found = unsafe { libc::kill(pid, 0) } == 0;
    found || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn random_keys() -> Result<[u64; 4], ShmError> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| ShmError::Os(format!("cannot read /dev/urandom: {e}")))?;
    let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8"));
    Ok([word(0), word(1), word(2), word(3)])
}

impl Table {
    /// Create the segment `name` with room for at least `slots` keys (rounded
    /// up to whole buckets).
    pub fn create(name: &str, slots: usize) -> Result<Table, ShmError> {
        if slots == 0 || slots > 1 << 30 {
            return Err(ShmError::Os(format!(
                "slots must be between 1 and 2**30, got {slots}"
            )));
        }
        let buckets = slots.div_ceil(BUCKET_SLOTS);
        let seg = Segment::create(name, HEADER_WORDS + buckets * BUCKET_WORDS)?;
        let keys = match random_keys() {
            Ok(k) => k,
            Err(e) => {
                let _ = crate::shm::unlink(name);
                return Err(e);
            }
        };
        let w = seg.words();
        w[H_VERSION].store(VERSION, SeqCst);
        w[H_BUCKETS].store(buckets as u64, SeqCst);
        w[H_SLOTS].store(BUCKET_SLOTS as u64, SeqCst);
        for (i, k) in keys.iter().enumerate() {
            w[H_KEYS + i].store(*k, SeqCst);
        }
        w[H_MAGIC].store(MAGIC, SeqCst); // last: the table is ready
        Ok(Table { seg, buckets, keys })
    }

    /// Map the table another process created as `name`.
    pub fn attach(name: &str) -> Result<Table, ShmError> {
        let seg = Segment::open(name)?;
        let w = seg.words();
        let buckets = match w.get(H_BUCKETS) {
            Some(b) => usize::try_from(b.load(SeqCst)).unwrap_or(0),
            None => 0,
        };
        let fits = buckets > 0
            && buckets.checked_mul(BUCKET_WORDS).map(|n| n + HEADER_WORDS) == Some(w.len());
        if !fits
            || w[H_MAGIC].load(SeqCst) != MAGIC
            || w[H_VERSION].load(SeqCst) != VERSION
            || w[H_SLOTS].load(SeqCst) != BUCKET_SLOTS as u64
        {
            return Err(ShmError::Incompatible(format!(
                "shared memory {name:?} is not a limit table of this version of Relay"
            )));
        }
        let keys = std::array::from_fn(|i| w[H_KEYS + i].load(SeqCst));
        Ok(Table { seg, buckets, keys })
    }

    /// Slots in all (a multiple of [`BUCKET_SLOTS`]).
    pub fn slots(&self) -> usize {
        self.buckets * BUCKET_SLOTS
    }

    /// Slots holding a key (a scan of the whole table: for tests and metrics).
    pub fn used(&self) -> usize {
        (0..self.buckets)
            .flat_map(|b| (0..BUCKET_SLOTS).map(move |i| (b, i)))
            .filter(|&(b, i)| self.slot(b, i).check.load(SeqCst) != 0)
            .count()
    }

    /// Keys that took over a reset slot, and lookups refused with [`TableFull`].
    pub fn counters(&self) -> (u64, u64) {
        let w = self.seg.words();
        (w[H_EVICTIONS].load(SeqCst), w[H_FULL].load(SeqCst))
    }

    pub fn key_id(&self, key: &str) -> KeyId {
        let [k0, k1, k2, k3] = self.keys;
        let check = siphash13(k0, k1, key.as_bytes()).max(1);
        let ident = siphash13(k2, k3, key.as_bytes()).max(1);
        // The high bits of `ident` pick the bucket (a multiply, not a modulo).
        let bucket = ((u128::from(ident) * self.buckets as u128) >> 64) as usize;
        KeyId {
            bucket,
            check,
            ident,
        }
    }

    pub fn slot(&self, bucket: usize, i: usize) -> Slot<'_> {
        let base = HEADER_WORDS + bucket * BUCKET_WORDS + 1 + i * SLOT_WORDS;
        let w = &self.seg.words()[base..base + SLOT_WORDS];
        Slot {
            check: &w[0],
            ident: &w[1],
            tat: &w[2],
        }
    }

    fn probe(&self, id: KeyId) -> Probe {
        for i in 0..BUCKET_SLOTS {
            let s = self.slot(id.bucket, i);
            match s.check.load(SeqCst) {
                0 => return Probe::Empty(i),
                c if c == id.check && s.claimed_by(id) => return Probe::Found(i),
                _ => {}
            }
        }
        Probe::Full
    }

    /// The slot of `id`; with `insert`, claimed (or taken over) when absent.
    /// `now` decides which cells are reset when a takeover is needed.
    pub fn locate(&self, id: KeyId, now: f64, insert: bool) -> Result<Option<usize>, TableFull> {
        loop {
            match self.probe(id) {
                Probe::Found(i) => return Ok(Some(i)),
                _ if !insert => return Ok(None),
                Probe::Empty(i) => {
                    let s = self.slot(id.bucket, i);
                    let won = match s.check.compare_exchange(0, id.check, SeqCst, SeqCst) {
                        Ok(_) => true,
                        Err(c) => c == id.check,
                    };
                    if won && s.claimed_by(id) {
                        return Ok(Some(i));
                    } // else somebody else's now: look again
                }
                Probe::Full => {
                    if let Some(i) = self.take_over(id, now)? {
                        return Ok(Some(i));
                    }
                }
            }
        }
    }

    /// Wait until no takeover is under way in `bucket` (called by whoever
    /// met a [`MARK`]); one abandoned by a dead process is finished as reset.
    pub fn settle(&self, bucket: usize, now: f64) {
        let _lease = self.lease(bucket);
        self.repair(bucket, now);
    }

    fn repair(&self, bucket: usize, now: f64) {
        // Under the lease no takeover is running here: a MARK was abandoned.
        for i in 0..BUCKET_SLOTS {
            let tat = self.slot(bucket, i).tat;
            let _ = tat.compare_exchange(MARK, encode(now), SeqCst, SeqCst);
        }
    }

    /// Under the bucket's lease: `id`'s slot, found or taken over; None if an
    /// empty slot turned up (slots never empty again, unless the memory was
    /// written by something else: then the caller claims it as usual).
    fn take_over(&self, id: KeyId, now: f64) -> Result<Option<usize>, TableFull> {
        let _lease = self.lease(id.bucket);
        self.repair(id.bucket, now);
        loop {
            match self.probe(id) {
                Probe::Found(i) => return Ok(Some(i)), // another process inserted it first
                Probe::Empty(_) => return Ok(None),
                Probe::Full => {}
            }
            let mut oldest: Option<(usize, u64, f64)> = None;
            for i in 0..BUCKET_SLOTS {
                let bits = self.slot(id.bucket, i).tat.load(SeqCst);
                let t = match decode(bits) {
                    Some(t) => t,
                    None if bits == NO_TAT => f64::NEG_INFINITY,
                    None => continue,
                };
                if t < now && oldest.is_none_or(|(_, _, o)| t < o) {
                    oldest = Some((i, bits, t));
                }
            }
            let Some((i, bits, _)) = oldest else {
                self.seg.words()[H_FULL].fetch_add(1, SeqCst);
                return Err(TableFull {
                    slots: self.slots(),
                });
            };
            let s = self.slot(id.bucket, i);
            if s.tat.compare_exchange(bits, MARK, SeqCst, SeqCst).is_err() {
                continue; // charged meanwhile: it is live now
            }
            s.check.store(id.check, SeqCst);
            s.ident.store(id.ident, SeqCst);
            s.tat.store(encode(now), SeqCst);
            self.seg.words()[H_EVICTIONS].fetch_add(1, SeqCst);
            return Ok(Some(i));
        }
    }

    fn lease(&self, bucket: usize) -> Lease<'_> {
        let word = &self.seg.words()[HEADER_WORDS + bucket * BUCKET_WORDS];
        let n = u64::from(LEASES.fetch_add(1, SeqCst));
        let token = (u64::from(std::process::id()) << 32) | n;
        let (mut seen, mut since, mut spins) = (0u64, Instant::now(), 0u32);
        loop {
            let holder = match word.compare_exchange(0, token, SeqCst, SeqCst) {
                Ok(_) => return Lease { word, token },
                Err(h) => h,
            };
            if holder != seen {
                (seen, since, spins) = (holder, Instant::now(), 0);
            }
            spins += 1;
            if spins < 128 {
                std::hint::spin_loop();
                continue;
            }
            std::thread::yield_now(); // the holder may be waiting for this CPU
            if spins % 64 == 0
                && (!alive(holder >> 32) || since.elapsed() > STALE_LEASE)
                && word.compare_exchange(holder, token, SeqCst, SeqCst).is_ok()
            {
                return Lease { word, token };
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn hold_lease_as(&self, bucket: usize, pid: u32) {
        let word = &self.seg.words()[HEADER_WORDS + bucket * BUCKET_WORDS];
        word.store((u64::from(pid) << 32) | 1, SeqCst);
    }

    #[cfg(test)]
    pub(crate) fn lease_word(&self, bucket: usize) -> u64 {
        self.seg.words()[HEADER_WORDS + bucket * BUCKET_WORDS].load(SeqCst)
    }
}

#[cfg(test)]
#[path = "shared_table_tests.rs"]
mod tests;
